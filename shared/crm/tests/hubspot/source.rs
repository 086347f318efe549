//! [`CrmSource`] on HubSpot against a wiremock HubSpot answering as the docs show: the batch
//! read with `propertiesWithHistory` (a 207 whose `errors` name the missing ids), chunks of
//! 100, the list endpoint's `paging.next.after`, 429s, refusals and a rotated token.

use std::time::Duration;

use relay_credentials::{Credential, MemoryTokenStore};
use relay_crm::{CrmError, CrmId, CrmObject, CrmSource, ErrorClass, HubSpotConfig, HubSpotSink};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "pat-source-token";

fn sink(server: &MockServer) -> HubSpotSink {
    let mut config = HubSpotConfig::new(TOKEN);
    config.base_url = server.uri();
    config.backoff = Duration::from_millis(10);
    HubSpotSink::new(config).expect("client")
}

fn ids(ids: &[&str]) -> Vec<CrmId> {
    ids.iter().map(|id| CrmId((*id).to_owned())).collect()
}

/// A batch read result as HubSpot answers it: newest history entry first.
fn contact(id: &str, email: &str, history: Value) -> Value {
    json!({
        "id": id,
        "properties": {"email": email, "firstname": null, "hs_object_id": id},
        "propertiesWithHistory": {"email": history},
        "createdAt": "2026-01-02T03:04:05.000Z",
        "updatedAt": "2026-03-01T10:00:00.000Z",
        "archived": false
    })
}

fn batch_read() -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/batch/read"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
}

#[tokio::test]
async fn a_batch_read_asks_for_history_and_keeps_the_newest_change() {
    let server = MockServer::start().await;
    batch_read()
        .and(body_json(json!({
            "properties": ["email", "firstname"],
            "propertiesWithHistory": ["email", "firstname"],
            "inputs": [{"id": "101"}, {"id": "102"}]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "COMPLETE",
            "results": [
                contact("101", "ada@analytical.example", json!([
                    {"value": "ada@analytical.example", "timestamp": "2026-03-01T10:00:00.250Z",
                     "sourceType": "CRM_UI", "sourceId": "userId:45678", "sourceLabel": "Ada",
                     "updatedByUserId": 45678},
                    {"value": "ada@old.example", "timestamp": "2026-01-02T03:04:05.000Z",
                     "sourceType": "INTEGRATION", "sourceId": "54321"}
                ])),
                contact("102", "charles@analytical.example", json!([
                    {"value": "charles@analytical.example", "timestamp": "2026-02-01T00:00:00Z",
                     "sourceType": "INTEGRATION", "sourceId": "54321"}
                ]))
            ],
            "startedAt": "2026-03-01T10:00:01Z", "completedAt": "2026-03-01T10:00:01Z"
        })))
        .expect(1)
        .mount(&server)
        .await;

    let states = sink(&server)
        .read_batch(
            CrmObject::Contacts,
            &ids(&["101", "102", "101"]),
            &["email", "firstname"],
        )
        .await
        .expect("read");

    assert_eq!(states.len(), 2);
    let ada = &states[0];
    assert_eq!(ada.id, CrmId("101".into()));
    assert_eq!(
        ada.properties["email"].as_deref(),
        Some("ada@analytical.example")
    );
    assert_eq!(ada.properties["firstname"], None);
    assert!(
        !ada.properties.contains_key("hs_object_id"),
        "only what was asked"
    );
    let change = &ada.changes["email"];
    assert_eq!(change.at_ms, 1_772_359_200_250);
    assert_eq!(change.source_type.as_deref(), Some("CRM_UI"));
    assert_eq!(change.source_id.as_deref(), Some("userId:45678"));
    let charles = &states[1].changes["email"];
    assert_eq!(charles.source_type.as_deref(), Some("INTEGRATION"));
    assert_eq!(charles.source_id.as_deref(), Some("54321"));
}

#[tokio::test]
async fn ids_hubspot_does_not_hold_are_absent_not_an_error() {
    let server = MockServer::start().await;
    batch_read()
        .respond_with(ResponseTemplate::new(207).set_body_json(json!({
            "status": "COMPLETE",
            "results": [contact("101", "ada@analytical.example", json!([]))],
            "numErrors": 1,
            "errors": [{
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.",
                "context": {"ids": ["999"]}
            }]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let states = sink(&server)
        .read_batch(CrmObject::Contacts, &ids(&["101", "999"]), &["email"])
        .await
        .expect("read");

    assert_eq!(states.len(), 1);
    assert_eq!(states[0].id, CrmId("101".into()));
    assert!(
        states[0].changes.is_empty(),
        "an empty history gives no change"
    );
}

#[tokio::test]
async fn another_per_input_error_fails_the_read_with_its_category() {
    let server = MockServer::start().await;
    batch_read()
        .respond_with(ResponseTemplate::new(207).set_body_json(json!({
            "status": "COMPLETE", "results": [],
            "errors": [{"status": "error", "category": "VALIDATION_ERROR",
                        "message": "Property \"nope\" does not exist"}]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let err = sink(&server)
        .read_batch(CrmObject::Contacts, &ids(&["101"]), &["nope"])
        .await
        .expect_err("refused");

    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test]
async fn more_than_100_ids_are_read_in_chunks_of_100() {
    let server = MockServer::start().await;
    batch_read()
        .respond_with(|request: &Request| {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
            if inputs.len() > 100 {
                return ResponseTemplate::new(400).set_body_json(json!({
                    "status": "error", "category": "VALIDATION_ERROR",
                    "message": "Batch input size exceeds 100"}));
            }
            let results: Vec<Value> = inputs
                .iter()
                .map(|i| {
                    contact(
                        i["id"].as_str().unwrap_or_default(),
                        "x@y.example",
                        json!([]),
                    )
                })
                .collect();
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": "COMPLETE", "results": results}))
        })
        .expect(3)
        .mount(&server)
        .await;
    let wanted: Vec<CrmId> = (0..250).map(|n| CrmId(format!("{}", 1000 + n))).collect();

    let states = sink(&server)
        .read_batch(CrmObject::Contacts, &wanted, &["email"])
        .await
        .expect("read");

    let got: Vec<CrmId> = states.into_iter().map(|s| s.id).collect();
    assert_eq!(got, wanted);
}

#[tokio::test]
async fn a_429_is_waited_out_and_a_5xx_retried_on_a_read() {
    let server = MockServer::start().await;
    batch_read()
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                    "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    batch_read()
        .respond_with(
            ResponseTemplate::new(502)
                .set_body_json(json!({"status": "error", "message": "bad gateway"})),
        )
        .up_to_n_times(1)
        .with_priority(2)
        .expect(1)
        .mount(&server)
        .await;
    batch_read()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "COMPLETE", "results": [contact("101", "ada@analytical.example", json!([]))]})))
        .expect(1)
        .mount(&server)
        .await;

    let started = std::time::Instant::now();
    let states = sink(&server)
        .read_batch(CrmObject::Contacts, &ids(&["101"]), &["email"])
        .await
        .expect("read after the waits");
    assert!(started.elapsed() >= Duration::from_millis(950));
    assert_eq!(states.len(), 1);
}

#[tokio::test]
async fn a_401_re_reads_the_token_once_for_a_read() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/batch/read"))
        .and(header("authorization", "Bearer old-token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "status": "error", "message": "Authentication credentials not found.",
            "category": "INVALID_AUTHENTICATION"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/batch/read"))
        .and(header("authorization", "Bearer new-token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"status": "COMPLETE", "results": []})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let store = MemoryTokenStore::new("old-token");
    let token = Credential::stored(store.clone(), Duration::from_secs(300))
        .await
        .expect("token");
    let mut config = HubSpotConfig::new(token);
    config.base_url = server.uri();
    let sink = HubSpotSink::new(config).expect("client");
    store.set("new-token");

    let states = sink
        .read_batch(CrmObject::Contacts, &ids(&["101"]), &["email"])
        .await
        .expect("read with the new token");
    assert!(states.is_empty());
}

#[tokio::test]
async fn listing_pages_follow_paging_next_after() {
    let server = MockServer::start().await;
    let list = || {
        Mock::given(method("GET"))
            .and(path("/crm/v3/objects/companies"))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .and(query_param("limit", "100"))
            .and(query_param("properties", "domain,name"))
    };
    list()
        .and(query_param("after", "NTI1Cg=="))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "results": [{"id": "3", "properties": {"domain": "", "name": "Babbage & Co"},
                         "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
                         "archived": false}]
        })))
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    list()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "results": [
                {"id": "1", "properties": {"domain": "analytical.example", "name": "Analytical"}},
                {"id": "2", "properties": {"domain": "engine.example", "name": null}}
            ],
            "paging": {"next": {"after": "NTI1Cg==",
                "link": "https://api.hubapi.com/crm/v3/objects/companies?after=NTI1Cg%3D%3D"}}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let sink = sink(&server);

    let first = sink
        .list_page(CrmObject::Companies, &["domain", "name"], None)
        .await
        .expect("first page");
    assert_eq!(first.records.len(), 2);
    assert_eq!(
        first.records[0].properties["domain"].as_deref(),
        Some("analytical.example")
    );
    assert_eq!(first.records[1].properties["name"], None);
    assert!(first.records.iter().all(|r| r.changes.is_empty()));
    assert_eq!(first.after.as_deref(), Some("NTI1Cg=="));

    let last = sink
        .list_page(
            CrmObject::Companies,
            &["domain", "name"],
            first.after.as_deref(),
        )
        .await
        .expect("last page");
    assert_eq!(last.records[0].id, CrmId("3".into()));
    assert_eq!(
        last.records[0].properties["domain"], None,
        "empty is no value"
    );
    assert_eq!(last.after, None);
}

#[tokio::test]
async fn a_refused_listing_is_classified() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/objects/contacts"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "status": "error", "category": "MISSING_SCOPES",
            "message": "This app hasn't been granted all required scopes to make this call."})))
        .expect(1)
        .mount(&server)
        .await;

    let err = sink(&server)
        .list_page(CrmObject::Contacts, &["email"], None)
        .await
        .expect_err("refused");
    assert!(
        matches!(err, CrmError::Rejected { status: 403, .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Auth);
}

/// `?archived=true` answers only archived objects (the docs' `archived: true`, `archivedAt`);
/// a live or merged-away id comes back as a 207 `OBJECT_NOT_FOUND` and is simply absent.
#[tokio::test]
async fn an_archived_read_asks_archived_true_and_leaves_out_ids_not_in_the_bin() {
    let server = MockServer::start().await;
    batch_read()
        .and(query_param("archived", "true"))
        .and(body_json(json!({
            "properties": ["attio_record_id"],
            "inputs": [{"id": "101"}, {"id": "102"}]
        })))
        .respond_with(ResponseTemplate::new(207).set_body_json(json!({
            "status": "COMPLETE",
            "results": [{
                "id": "101", "archived": true, "archivedAt": "2026-03-01T10:00:00Z",
                "properties": {"attio_record_id": "rec-ada", "hs_object_id": "101"},
                "createdAt": "2026-01-02T03:04:05.000Z", "updatedAt": "2026-03-01T10:00:00Z"
            }],
            "numErrors": 1,
            "errors": [{"status": "error", "category": "OBJECT_NOT_FOUND",
                        "message": "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.",
                        "context": {"ids": ["102"]}}],
            "startedAt": "2026-03-01T10:00:01Z", "completedAt": "2026-03-01T10:00:01Z"
        })))
        .expect(1)
        .mount(&server)
        .await;

    let states = sink(&server)
        .read_archived(
            CrmObject::Contacts,
            &ids(&["101", "102"]),
            &["attio_record_id"],
        )
        .await
        .expect("read");

    assert_eq!(states.len(), 1, "{states:?}");
    assert_eq!(states[0].id, CrmId("101".into()));
    assert_eq!(
        states[0].properties["attio_record_id"].as_deref(),
        Some("rec-ada")
    );
}
