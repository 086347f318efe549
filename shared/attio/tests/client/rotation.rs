//! A rotated token reaches a running client: a 401 re-reads the token's store once and the
//! call is sent again with the new token; an unchanged store leaves the 401 standing after one
//! request, never a loop.

use std::time::Duration;

use relay_attio::{AttioClient, AttioError, Credential, MemoryTokenStore};

use super::*;

const NOTE_ID: &str = "ff3f3bd4-40f4-4f80-8187-cd02385af424";

fn with_token(route: &str, token: &str) -> MockBuilder {
    Mock::given(method("GET"))
        .and(path(route))
        .and(header("authorization", format!("Bearer {token}").as_str()))
}

async fn rotating_client(server: &MockServer, store: &MemoryTokenStore) -> AttioClient {
    let mut config = config(server);
    config.token = Credential::stored(store.clone(), Duration::from_secs(300))
        .await
        .expect("token read");
    AttioClient::new(config).expect("client")
}

#[tokio::test]
async fn a_401_re_reads_the_token_once_and_the_call_succeeds_with_the_new_one() {
    let server = MockServer::start().await;
    let route = format!("/v2/notes/{NOTE_ID}");
    with_token(&route, "revoked-token")
        .respond_with(attio_error(401, "unauthorized", "Invalid API token."))
        .expect(1)
        .mount(&server)
        .await;
    with_token(&route, "rotated-token")
        .respond_with(json_response(200, fixture("note.json")))
        .expect(2)
        .mount(&server)
        .await;
    let store = MemoryTokenStore::new("revoked-token");
    let client = rotating_client(&server, &store).await;
    store.set("rotated-token");

    let note = client.get_note(NOTE_ID).await.expect("note after re-read");
    assert_eq!(note.id.note_id, NOTE_ID);
    // The next call sends the new token straight away.
    client.get_note(NOTE_ID).await.expect("note");
    assert_eq!(store.reads(), 2, "read at start, re-read on the 401");
    assert_eq!(request_count(&server).await, 3);
}

#[tokio::test]
async fn a_token_its_store_still_holds_fails_after_one_request_and_one_re_read() {
    let server = MockServer::start().await;
    let route = format!("/v2/notes/{NOTE_ID}");
    with_token(&route, "revoked-token")
        .respond_with(attio_error(401, "unauthorized", "Invalid API token."))
        .expect(1)
        .mount(&server)
        .await;
    let store = MemoryTokenStore::new("revoked-token");
    let client = rotating_client(&server, &store).await;

    let err = client.get_note(NOTE_ID).await.unwrap_err();

    assert!(
        matches!(err, AttioError::Api { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(store.reads(), 2);
    assert_eq!(request_count(&server).await, 1);
}

#[tokio::test]
async fn a_fixed_token_is_refused_without_a_retry() {
    let server = MockServer::start().await;
    attio("GET", &format!("/v2/notes/{NOTE_ID}"))
        .respond_with(attio_error(401, "unauthorized", "Invalid API token."))
        .expect(1)
        .mount(&server)
        .await;

    let err = client(&server).get_note(NOTE_ID).await.unwrap_err();

    assert!(err.is_permanent(), "{err:?}");
}
