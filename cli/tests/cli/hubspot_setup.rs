//! `attio-relay hubspot setup` against a wiremock HubSpot answering the properties API as
//! documented (`GET /crm/v3/properties/{objectType}/{propertyName}`: the definition with
//! `hasUniqueValue`, or 404; `POST /crm/v3/properties/{objectType}` to create).

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::relay;

fn property(unique: bool) -> Value {
    json!({
        "name": "attio_record_id",
        "label": "Attio record ID",
        "type": "string",
        "fieldType": "text",
        "groupName": "contactinformation",
        "hasUniqueValue": unique,
        "hidden": false,
        "modificationMetadata": {"archivable": true, "readOnlyDefinition": false, "readOnlyValue": false}
    })
}

fn setup(hubspot: &MockServer) -> integration_tests::cli::Output {
    relay().env("HUBSPOT_TOKEN", "hubspot-token").run(&[
        "hubspot",
        "setup",
        "--api-url",
        &hubspot.uri(),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_refuses_an_existing_property_without_unique_values_and_says_how_to_replace_it() {
    let hubspot = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/properties/contacts/attio_record_id"))
        .respond_with(ResponseTemplate::new(200).set_body_json(property(false)))
        .mount(&hubspot)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/properties/companies/attio_record_id"))
        .respond_with(ResponseTemplate::new(200).set_body_json(property(true)))
        .mount(&hubspot)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/properties/deals/attio_record_id"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "status": "error", "message": "Unable to find property attio_record_id", "category": "OBJECT_NOT_FOUND"
        })))
        .mount(&hubspot)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/properties/deals"))
        .respond_with(ResponseTemplate::new(201).set_body_json(property(true)))
        .expect(1)
        .mount(&hubspot)
        .await;

    let out = setup(&hubspot);
    let text = out.text();
    assert!(!out.ok, "an unusable property fails setup: {text}");
    assert!(
        text.contains("contacts  attio_record_id: UNUSABLE: it does not require unique values"),
        "{text}"
    );
    assert!(
        text.contains("companies attio_record_id: already there (unique)"),
        "{text}"
    );
    assert!(
        text.contains("deals     attio_record_id: created (unique)"),
        "{text}"
    );
    let delete = format!(
        "{}/crm/v3/properties/contacts/attio_record_id",
        hubspot.uri()
    );
    assert!(text.contains(&delete), "the fix names the call: {text}");
    assert!(
        !text.contains("properties/companies/attio_record_id\n"),
        "{text}"
    );
    assert!(
        text.contains("cannot make an existing property unique"),
        "{text}"
    );

    let requests = hubspot.received_requests().await.expect("recording");
    let created = requests
        .iter()
        .find(|r| r.method.as_str() == "POST")
        .expect("create");
    let body: Value = serde_json::from_slice(&created.body).expect("json");
    assert_eq!(body["hasUniqueValue"], true);
    assert!(
        requests
            .iter()
            .all(|r| !matches!(r.method.as_str(), "DELETE" | "PATCH")),
        "setup never deletes or changes a property itself"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_passes_when_every_property_is_unique() {
    let hubspot = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(property(true)))
        .mount(&hubspot)
        .await;
    let out = setup(&hubspot);
    assert!(out.ok, "{}", out.text());
    assert_eq!(out.text().matches("already there (unique)").count(), 3);
}

/// Notes and tasks get their marker (a plain string, not unique: HubSpot has no unique values
/// on them) in the group of their own body or subject property.
#[tokio::test(flavor = "multi_thread")]
async fn setup_creates_the_note_and_task_markers_where_missing() {
    let hubspot = MockServer::start().await;
    for object in ["contacts", "companies", "deals"] {
        Mock::given(method("GET"))
            .and(path(format!("/crm/v3/properties/{object}/attio_record_id")))
            .respond_with(ResponseTemplate::new(200).set_body_json(property(true)))
            .mount(&hubspot)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/crm/v3/properties/notes/attio_note_id"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "status": "error", "message": "Unable to find property attio_note_id", "category": "OBJECT_NOT_FOUND"
        })))
        .mount(&hubspot)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/properties/notes/hs_note_body"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "name": "hs_note_body", "type": "string", "fieldType": "html", "groupName": "engagement"
        })))
        .mount(&hubspot)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/properties/notes"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"name": "attio_note_id"})))
        .expect(1)
        .mount(&hubspot)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/properties/tasks/attio_task_id"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "name": "attio_task_id", "type": "string", "fieldType": "text", "groupName": "task"
        })))
        .mount(&hubspot)
        .await;

    let out = setup(&hubspot);
    let text = out.text();
    assert!(out.ok, "{text}");
    assert!(text.contains("notes     attio_note_id: created"), "{text}");
    assert!(
        text.contains("tasks     attio_task_id: already there"),
        "{text}"
    );
    let requests = hubspot.received_requests().await.expect("recording");
    let created = requests
        .iter()
        .find(|r| r.method.as_str() == "POST")
        .expect("create");
    let body: Value = serde_json::from_slice(&created.body).expect("json");
    assert_eq!(body["name"], "attio_note_id");
    assert_eq!(body["type"], "string");
    assert_eq!(body["groupName"], "engagement");
    assert_eq!(body["hasUniqueValue"], false);
}
