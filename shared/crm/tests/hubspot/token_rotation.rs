//! A rotated private app token reaches a running sink: HubSpot answers 401 to the old one
//! (its documented body), the token's store is re-read once and the call sent again with the
//! new token; a store that still holds the refused token leaves the 401 (an auth failure) after
//! one request, never a loop.

use std::time::Duration;

use relay_credentials::{Credential, MemoryTokenStore};
use relay_crm::{CrmObject, CrmSink, ErrorClass, HubSpotConfig, HubSpotSink, Properties};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// HubSpot's answer to a token it does not accept
/// (<https://developers.hubspot.com/docs/api-reference/error-handling>).
fn unauthorized() -> ResponseTemplate {
    ResponseTemplate::new(401).set_body_json(json!({
        "status": "error",
        "message": "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        "correlationId": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
        "category": "INVALID_AUTHENTICATION"}))
}

async fn sink(server: &MockServer, store: &MemoryTokenStore) -> HubSpotSink {
    let token = Credential::stored(store.clone(), Duration::from_secs(300))
        .await
        .expect("token read");
    let mut config = HubSpotConfig::new(token);
    config.base_url = server.uri();
    config.backoff = Duration::from_millis(10);
    HubSpotSink::new(config).expect("client")
}

fn create_note(token: &str) -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/notes"))
        .and(header("authorization", format!("Bearer {token}").as_str()))
}

fn note() -> Properties {
    [("hs_note_body".to_owned(), "<b>Call</b>".to_owned())].into()
}

#[tokio::test]
async fn a_401_re_reads_the_token_once_and_the_create_succeeds_with_the_new_one() {
    let server = MockServer::start().await;
    create_note("pat-old")
        .respond_with(unauthorized())
        .expect(1)
        .mount(&server)
        .await;
    create_note("pat-new")
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "7001"})))
        .expect(2)
        .mount(&server)
        .await;
    let store = MemoryTokenStore::new("pat-old");
    let sink = sink(&server, &store).await;
    store.set("pat-new");

    let id = sink.create(CrmObject::Notes, &note(), &[]).await;

    assert_eq!(id.expect("created after the re-read").0, "7001");
    sink.create(CrmObject::Notes, &note(), &[])
        .await
        .expect("the next call sends the new token at once");
    assert_eq!(store.reads(), 2, "read at start, re-read on the 401");
    let requests = server.received_requests().await.expect("recording");
    assert_eq!(requests.len(), 3, "one refused request, two created notes");
}

#[tokio::test]
async fn a_token_its_store_still_holds_is_an_auth_failure_after_one_request() {
    let server = MockServer::start().await;
    create_note("pat-revoked")
        .respond_with(unauthorized())
        .expect(1)
        .mount(&server)
        .await;
    let store = MemoryTokenStore::new("pat-revoked");
    let sink = sink(&server, &store).await;

    let err = sink
        .create(CrmObject::Notes, &note(), &[])
        .await
        .expect_err("401 stands");

    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    assert_eq!(store.reads(), 2);
}

#[tokio::test]
async fn the_token_never_appears_in_debug_output() {
    let store = MemoryTokenStore::new("pat-na1-very-secret");
    let server = MockServer::start().await;
    let sink = sink(&server, &store).await;
    let shown = format!("{sink:?}");
    assert!(!shown.contains("very-secret"), "{shown}");
}
