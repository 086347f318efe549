//! Creates of notes and tasks against a wiremock HubSpot: sent once whatever the failure, since
//! `POST /crm/v3/objects/{type}` is not idempotent; earlier attempts found by their marker with
//! the CRM search API; the marker properties made by setup.

use std::time::Duration;

use relay_crm::{CrmError, CrmId, CrmObject, CrmSink, HubSpotConfig, HubSpotSink, Properties};
use serde_json::json;
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn sink(server: &MockServer) -> HubSpotSink {
    let mut config = HubSpotConfig::new("pat-test-token");
    config.base_url = server.uri();
    config.backoff = Duration::from_millis(10);
    config.request_timeout = Duration::from_millis(300);
    HubSpotSink::new(config).expect("client")
}

fn note() -> Properties {
    [
        ("hs_note_body".to_owned(), "Call went well".to_owned()),
        ("attio_note_id".to_owned(), "n-attio".to_owned()),
    ]
    .into()
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.expect("recording").len()
}

#[tokio::test]
async fn a_create_answered_502_is_not_sent_again_and_its_outcome_is_unknown() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/notes"))
        .respond_with(ResponseTemplate::new(502).set_body_string("Bad Gateway"))
        .mount(&server)
        .await;
    let err = sink(&server)
        .create(CrmObject::Notes, &note(), &[])
        .await
        .expect_err("502");
    assert!(matches!(err, CrmError::OutcomeUnknown { .. }), "{err}");
    assert!(
        !err.is_permanent(),
        "the message is retried, after a lookup"
    );
    assert_eq!(requests(&server).await, 1, "a create is sent once");
}

#[tokio::test]
async fn a_create_that_times_out_is_not_sent_again() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/tasks"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": "t-1"}))
                .set_delay(Duration::from_secs(2)),
        )
        .mount(&server)
        .await;
    let err = sink(&server)
        .create(CrmObject::Tasks, &Properties::new(), &[])
        .await
        .expect_err("timeout");
    assert!(matches!(err, CrmError::OutcomeUnknown { .. }), "{err}");
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test]
async fn a_create_refused_with_429_was_not_done_and_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/notes"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "0")
                .set_body_json(json!({"status": "error", "category": "RATE_LIMITS",
                    "policyName": "TEN_SECONDLY_ROLLING", "message": "You have reached your ten_secondly_rolling limit."})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/notes"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "n-9"})))
        .mount(&server)
        .await;
    let id = sink(&server)
        .create(CrmObject::Notes, &note(), &[])
        .await
        .expect("created after the 429");
    assert_eq!(id, CrmId("n-9".into()));
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn a_refused_create_is_rejected_and_a_success_without_an_id_is_unknown() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/notes"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "status": "error", "category": "VALIDATION_ERROR",
            "message": "Property values were not valid: attio_note_id does not exist"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/tasks"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&server)
        .await;
    let sink = sink(&server);
    let err = sink
        .create(CrmObject::Notes, &note(), &[])
        .await
        .expect_err("400");
    assert!(
        err.is_permanent() && err.to_string().contains("attio_note_id"),
        "{err}"
    );
    let err = sink
        .create(CrmObject::Tasks, &Properties::new(), &[])
        .await
        .expect_err("no body");
    assert!(matches!(err, CrmError::OutcomeUnknown { .. }), "{err}");
}

/// `POST /crm/v3/objects/{type}/search` with an EQ filter on the marker
/// (https://developers.hubspot.com/docs/api/crm/search); results oldest first.
#[tokio::test]
async fn earlier_attempts_are_searched_by_marker() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/notes/search"))
        .and(body_json(json!({
            "filterGroups": [{"filters": [{"propertyName": "attio_note_id", "operator": "EQ", "value": "n-attio"}]}],
            "properties": ["attio_note_id"],
            "limit": 20
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "total": 2,
            "results": [
                {"id": "1200", "properties": {"attio_note_id": "n-attio", "hs_object_id": "1200"}},
                {"id": "987", "properties": {"attio_note_id": "n-attio", "hs_object_id": "987"}}
            ]
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/tasks/search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"total": 0, "results": []})))
        .expect(1)
        .mount(&server)
        .await;
    let sink = sink(&server);
    let found = sink
        .find_by_marker(CrmObject::Notes, "n-attio")
        .await
        .expect("search");
    assert_eq!(found, [CrmId("987".into()), CrmId("1200".into())]);
    let none = sink
        .find_by_marker(CrmObject::Tasks, "t-attio")
        .await
        .expect("search");
    assert!(none.is_empty());
}

#[tokio::test]
async fn setup_creates_the_marker_in_the_group_of_the_notes_body() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/properties/notes/attio_note_id"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"status": "error"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/properties/notes/hs_note_body"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "name": "hs_note_body", "type": "string", "groupName": "engagement"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/properties/notes"))
        .and(body_json(json!({
            "name": "attio_note_id",
            "label": "Attio note ID",
            "description": "The Attio note this note is synced from (set by attio-relay; finds a create whose answer was lost).",
            "type": "string",
            "fieldType": "text",
            "groupName": "engagement",
            "hasUniqueValue": false
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"name": "attio_note_id"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/properties/tasks/attio_task_id"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"name": "attio_task_id", "type": "string"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let sink = sink(&server);
    assert!(
        sink.ensure_marker_property(CrmObject::Notes)
            .await
            .expect("created")
    );
    assert!(
        !sink
            .ensure_marker_property(CrmObject::Tasks)
            .await
            .expect("exists")
    );
    assert!(
        sink.ensure_marker_property(CrmObject::Contacts)
            .await
            .is_err()
    );
}
