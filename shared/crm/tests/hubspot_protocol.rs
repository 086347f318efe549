//! The HubSpot adapter against a wiremock HubSpot that checks the exact requests.

use std::time::Duration;

use relay_crm::{
    Association, CrmError, CrmId, CrmObject, CrmSink, HubSpotConfig, HubSpotSink, Properties,
    RecordUpsert,
};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn sink(server: &MockServer) -> HubSpotSink {
    let mut config = HubSpotConfig::new("pat-test-token");
    config.base_url = server.uri();
    config.backoff = Duration::from_millis(10);
    HubSpotSink::new(config).expect("client")
}

fn record(id: &str, email: &str) -> RecordUpsert {
    RecordUpsert {
        attio_record_id: id.into(),
        properties: [("email".to_owned(), email.to_owned())].into(),
    }
}

fn result(hubspot_id: &str, attio_id: &str) -> Value {
    json!({"id": hubspot_id, "properties": {"attio_record_id": attio_id}, "new": true})
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .expect("recording")
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
        .collect()
}

#[tokio::test]
async fn upserts_are_keyed_on_attio_record_id_with_the_exact_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/batch/upsert"))
        .and(header("authorization", "Bearer pat-test-token"))
        .and(body_json(json!({"inputs": [{
            "id": "rec-1",
            "idProperty": "attio_record_id",
            "properties": {"email": "ada@example.com", "attio_record_id": "rec-1"}
        }]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "COMPLETE", "results": [result("901", "rec-1")]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let report = sink(&server)
        .upsert_records(CrmObject::Contacts, &[record("rec-1", "ada@example.com")])
        .await
        .expect("upsert");
    assert_eq!(report.ids["rec-1"], CrmId("901".into()));
    assert!(report.failures.is_empty());
}

#[tokio::test]
async fn more_than_100_inputs_are_split_into_batches_of_100() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/companies/batch/upsert"))
        .respond_with(|req: &wiremock::Request| {
            let body: Value = serde_json::from_slice(&req.body).expect("json");
            let results: Vec<Value> = body["inputs"]
                .as_array()
                .expect("inputs")
                .iter()
                .map(|i| {
                    result(
                        &format!("hs-{}", i["id"].as_str().expect("id")),
                        i["id"].as_str().expect("id"),
                    )
                })
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({"results": results}))
        })
        .expect(2)
        .mount(&server)
        .await;
    let records: Vec<_> = (0..150)
        .map(|i| record(&format!("c{i}"), "x@example.com"))
        .collect();
    let report = sink(&server)
        .upsert_records(CrmObject::Companies, &records)
        .await
        .expect("upsert");
    assert_eq!(report.ids.len(), 150);
    let sizes: Vec<usize> = bodies(&server)
        .await
        .iter()
        .map(|b| b["inputs"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(sizes, vec![100, 50]);
}

#[tokio::test]
async fn a_207_reports_the_refused_inputs_with_their_reason() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/batch/upsert"))
        .respond_with(ResponseTemplate::new(207).set_body_json(json!({
            "status": "COMPLETE",
            "results": [result("901", "ok-1")],
            "numErrors": 1,
            "errors": [{"status": "error", "category": "VALIDATION_ERROR",
                        "message": "Property values were not valid: email", "context": {}}]
        })))
        .mount(&server)
        .await;
    let report = sink(&server)
        .upsert_records(
            CrmObject::Contacts,
            &[
                record("ok-1", "a@example.com"),
                record("bad-1", "not-an-email"),
            ],
        )
        .await
        .expect("upsert");
    assert_eq!(report.ids.len(), 1);
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].attio_record_id, "bad-1");
    assert!(report.failures[0].permanent);
    assert!(report.failures[0].message.contains("VALIDATION_ERROR"));
}

#[tokio::test]
async fn a_ten_secondly_429_is_waited_out() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/crm/v3/objects/deals/77"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                                      "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/crm/v3/objects/deals/77"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "77"})))
        .with_priority(2)
        .mount(&server)
        .await;
    let props: Properties = [("dealstage".to_owned(), "closedwon".to_owned())].into();
    sink(&server)
        .update(CrmObject::Deals, &CrmId("77".into()), &props)
        .await
        .expect("update after waiting");
    assert_eq!(
        server.received_requests().await.expect("recording").len(),
        2
    );
}

#[tokio::test]
async fn a_daily_429_is_returned_at_once_for_sqs_to_retry_later() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "status": "error", "message": "daily limit", "policyName": "DAILY"})))
        .expect(1)
        .mount(&server)
        .await;
    let err = sink(&server)
        .archive(CrmObject::Contacts, &CrmId("5".into()))
        .await
        .expect_err("limited");
    assert!(
        matches!(err, CrmError::RateLimited { ref policy, .. } if policy == "DAILY"),
        "{err}"
    );
    assert!(!err.is_permanent());
}

#[tokio::test]
async fn notes_are_created_with_the_default_association_types() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/notes"))
        .and(body_json(json!({
            "properties": {"hs_note_body": "Call went well", "hs_timestamp": "2026-11-20T10:00:00Z"},
            "associations": [
                {"to": {"id": "901"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]},
                {"to": {"id": "55"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}]}
            ]
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "n-1"})))
        .expect(1)
        .mount(&server)
        .await;
    let props: Properties = [
        ("hs_note_body".to_owned(), "Call went well".to_owned()),
        ("hs_timestamp".to_owned(), "2026-11-20T10:00:00Z".to_owned()),
    ]
    .into();
    let id = sink(&server)
        .create(
            CrmObject::Notes,
            &props,
            &[
                Association {
                    to: CrmObject::Contacts,
                    id: CrmId("901".into()),
                },
                Association {
                    to: CrmObject::Deals,
                    id: CrmId("55".into()),
                },
            ],
        )
        .await
        .expect("create");
    assert_eq!(id, CrmId("n-1".into()));
}

#[tokio::test]
async fn archive_merge_and_errors_follow_the_api() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/crm/v3/objects/contacts/1"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/crm/v3/objects/contacts/2"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/merge"))
        .and(body_json(
            json!({"primaryObjectId": "1", "objectIdToMerge": "3"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "1"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/crm/v3/objects/tasks/9"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "status": "error", "category": "VALIDATION_ERROR", "message": "hs_task_status is not valid"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/crm/v3/objects/tasks/10"))
        .respond_with(ResponseTemplate::new(503))
        .expect(4)
        .mount(&server)
        .await;

    let sink = sink(&server);
    sink.archive(CrmObject::Contacts, &CrmId("1".into()))
        .await
        .expect("archive");
    sink.archive(CrmObject::Contacts, &CrmId("2".into()))
        .await
        .expect("archiving a missing object succeeds");
    let kept = sink
        .merge(CrmObject::Contacts, &CrmId("1".into()), &CrmId("3".into()))
        .await
        .expect("merge");
    assert_eq!(kept, CrmId("1".into()));
    let props: Properties = [("hs_task_status".to_owned(), "DONE".to_owned())].into();
    let err = sink
        .update(CrmObject::Tasks, &CrmId("9".into()), &props)
        .await
        .expect_err("400");
    assert!(
        err.is_permanent() && err.to_string().contains("hs_task_status"),
        "{err}"
    );
    let err = sink
        .update(CrmObject::Tasks, &CrmId("10".into()), &props)
        .await
        .expect_err("503");
    assert!(!err.is_permanent(), "{err}");
}

#[tokio::test]
async fn setup_creates_the_unique_id_property_only_where_missing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/properties/contacts/attio_record_id"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"status": "error", "message": "not found"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/properties/contacts"))
        .and(body_json(json!({
            "name": "attio_record_id",
            "label": "Attio record ID",
            "description": "The Attio record this object is synced from (set by attio-relay).",
            "type": "string",
            "fieldType": "text",
            "groupName": "contactinformation",
            "hasUniqueValue": true
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"name": "attio_record_id"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/properties/companies/attio_record_id"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"name": "attio_record_id", "hasUniqueValue": true})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let sink = sink(&server);
    assert!(
        sink.ensure_id_property(CrmObject::Contacts)
            .await
            .expect("created")
    );
    assert!(
        !sink
            .ensure_id_property(CrmObject::Companies)
            .await
            .expect("exists")
    );
}
