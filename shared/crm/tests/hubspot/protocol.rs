//! The HubSpot adapter against a wiremock HubSpot that checks the exact requests and answers as
//! HubSpot's docs say (multi-status errors keyed by `objectWriteTraceId`, the email conflict,
//! 401/403 bodies).

use std::time::Duration;

use relay_crm::{
    Association, CrmError, CrmId, CrmObject, CrmSink, ErrorClass, HubSpotConfig, HubSpotSink,
    Properties, RecordUpsert,
};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param};
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
            "objectWriteTraceId": "0",
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

/// A HubSpot batch upsert as the docs describe it: each input carries an `objectWriteTraceId`;
/// inputs whose email another contact holds are refused with `CONFLICT` "Contact already
/// exists. Existing ID: N" and `context.existingId`, invalid emails with `VALIDATION_ERROR`;
/// every error names its input in `context.objectWriteTraceId`, every result in
/// `objectWriteTraceId` (and, as real results do, without echoing our properties). 207 when
/// some inputs failed. https://developers.hubspot.com/docs/api-reference/error-handling
fn portal_upsert(
    existing: &'static [(&'static str, &'static str)],
) -> impl Fn(&wiremock::Request) -> ResponseTemplate {
    move |req: &wiremock::Request| {
        let body: Value = serde_json::from_slice(&req.body).expect("json");
        let (mut results, mut errors) = (Vec::new(), Vec::new());
        for (n, input) in body["inputs"]
            .as_array()
            .expect("inputs")
            .iter()
            .enumerate()
        {
            let trace = input["objectWriteTraceId"]
                .as_str()
                .expect("every input is traced");
            let email = input["properties"]["email"].as_str().unwrap_or("");
            if let Some((id, _)) = existing.iter().find(|(_, e)| *e == email) {
                errors.push(json!({"status": "error", "category": "CONFLICT",
                    "message": format!("Contact already exists. Existing ID: {id}"),
                    "context": {"objectWriteTraceId": [trace], "existingId": [id]}}));
            } else if !email.contains('@') {
                errors.push(json!({"status": "error", "category": "VALIDATION_ERROR",
                    "message": "Property values were not valid: email",
                    "context": {"objectWriteTraceId": [trace]}}));
            } else {
                results.push(json!({"id": format!("90{n}"), "objectWriteTraceId": trace,
                    "properties": {"hs_object_id": format!("90{n}")}, "new": true}));
            }
        }
        let status = if errors.is_empty() { 200 } else { 207 };
        ResponseTemplate::new(status).set_body_json(json!({
            "status": "COMPLETE", "results": results, "numErrors": errors.len(), "errors": errors}))
    }
}

#[tokio::test]
async fn a_207_fails_only_the_inputs_its_errors_name_by_trace_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/batch/upsert"))
        .respond_with(portal_upsert(&[("5101", "ada@example.com")]))
        .expect(1)
        .mount(&server)
        .await;
    let report = sink(&server)
        .upsert_records(
            CrmObject::Contacts,
            &[
                record("taken-1", "ada@example.com"),
                record("ok-1", "grace@example.com"),
                record("bad-1", "not-an-email"),
                record("ok-2", "linus@example.com"),
            ],
        )
        .await
        .expect("upsert");
    assert_eq!(report.ids["ok-1"], CrmId("901".into()));
    assert_eq!(report.ids["ok-2"], CrmId("903".into()));
    assert_eq!(report.ids.len(), 2);
    let failure = |id: &str| {
        report
            .failures
            .iter()
            .find(|f| f.attio_record_id == id)
            .unwrap_or_else(|| panic!("{id} not refused: {report:?}"))
    };
    let bad = failure("bad-1");
    assert_eq!(bad.class, ErrorClass::Permanent);
    assert_eq!(bad.category.as_deref(), Some("VALIDATION_ERROR"));
    assert!(bad.existing.is_none());
    let taken = failure("taken-1");
    assert_eq!(taken.category.as_deref(), Some("CONFLICT"));
    assert_eq!(taken.existing, Some(CrmId("5101".into())));
    assert_eq!(report.failures.len(), 2);
    let sent = bodies(&server).await;
    let traces: Vec<&str> = sent[0]["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|i| i["objectWriteTraceId"].as_str().expect("trace"))
        .collect();
    assert_eq!(traces, ["0", "1", "2", "3"]);
}

#[tokio::test]
async fn a_create_with_an_existing_email_answers_the_documented_conflict() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "status": "error", "category": "CONFLICT",
            "message": "Contact already exists. Existing ID: 5101",
            "correlationId": "7fb83cfe-cddc-452c-a990-d90f81515f6b"})))
        .expect(1)
        .mount(&server)
        .await;
    let props: Properties = [("email".to_owned(), "ada@example.com".to_owned())].into();
    let err = sink(&server)
        .create(CrmObject::Contacts, &props, &[])
        .await
        .expect_err("conflict");
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert!(err.to_string().contains("CONFLICT"), "{err}");
}

#[tokio::test]
async fn a_batch_refused_as_a_whole_is_split_so_only_the_bad_input_fails() {
    let server = MockServer::start().await;
    // Some answers name no input: a 409 for the whole batch when one email is taken.
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/batch/upsert"))
        .respond_with(|req: &wiremock::Request| {
            let body: Value = serde_json::from_slice(&req.body).expect("json");
            let inputs = body["inputs"].as_array().expect("inputs");
            if inputs
                .iter()
                .any(|i| i["properties"]["email"] == "ada@example.com")
            {
                return ResponseTemplate::new(409).set_body_json(json!({
                    "status": "error", "category": "CONFLICT",
                    "message": "Contact already exists. Existing ID: 5101"}));
            }
            let results: Vec<Value> = inputs
                .iter()
                .map(|i| json!({"id": "902", "objectWriteTraceId": i["objectWriteTraceId"]}))
                .collect();
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": "COMPLETE", "results": results}))
        })
        .expect(3)
        .mount(&server)
        .await;
    let report = sink(&server)
        .upsert_records(
            CrmObject::Contacts,
            &[
                record("taken", "ada@example.com"),
                record("fine", "grace@example.com"),
            ],
        )
        .await
        .expect("upsert");
    assert_eq!(report.ids["fine"], CrmId("902".into()));
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].attio_record_id, "taken");
    assert_eq!(report.failures[0].existing, Some(CrmId("5101".into())));
}

#[tokio::test]
async fn bad_tokens_and_missing_scopes_are_auth_failures_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/batch/upsert"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "status": "error",
            "message": "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            "correlationId": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
            "category": "INVALID_AUTHENTICATION"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/notes"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "status": "error",
            "message": "This app hasn't been granted all required scopes to make this call.",
            "category": "MISSING_SCOPES",
            "errors": [{"message": "One or more of the following scopes are required.",
                        "context": {"requiredGranularScopes": ["crm.objects.contacts.write"]}}]})))
        .expect(1)
        .mount(&server)
        .await;
    let sink = sink(&server);
    let err = sink
        .upsert_records(CrmObject::Contacts, &[record("a", "a@example.com")])
        .await
        .expect_err("401 fails the whole call");
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    assert!(!err.is_permanent());
    let err = sink
        .create(CrmObject::Notes, &Properties::new(), &[])
        .await
        .expect_err("403");
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    assert!(err.to_string().contains("MISSING_SCOPES"), "{err}");
}

#[tokio::test]
async fn a_locked_answer_is_retried_after_the_two_second_lock() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/crm/v3/objects/companies/8"))
        .respond_with(ResponseTemplate::new(423).set_body_json(json!({
            "status": "error", "category": "LOCKED", "message": "locked"})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/crm/v3/objects/companies/8"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "8"})))
        .with_priority(2)
        .mount(&server)
        .await;
    let started = std::time::Instant::now();
    sink(&server)
        .update(CrmObject::Companies, &CrmId("8".into()), &Properties::new())
        .await
        .expect("updated after the lock");
    assert!(started.elapsed() >= Duration::from_secs(2));
}

#[tokio::test]
async fn read_returns_the_asked_properties_or_none_when_missing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/objects/contacts/5101"))
        .and(query_param("properties", "attio_record_id,email"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "5101",
            "properties": {"attio_record_id": "rec-9", "email": "ada@example.com", "hs_object_id": "5101", "phone": null}})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/objects/contacts/404"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "status": "error", "category": "OBJECT_NOT_FOUND", "message": "Object not found."})))
        .mount(&server)
        .await;
    let sink = sink(&server);
    let props = sink
        .read(
            CrmObject::Contacts,
            &CrmId("5101".into()),
            &["attio_record_id", "email"],
        )
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(props["attio_record_id"], "rec-9");
    assert!(!props.contains_key("phone"));
    let gone = sink
        .read(CrmObject::Contacts, &CrmId("404".into()), &["email"])
        .await
        .expect("read");
    assert!(gone.is_none());
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

/// The v4 default association: a PUT without a body, answered with the batch-style result
/// (https://developers.hubspot.com/docs/api-reference/crm-associations-v4/basic/put-crm-v4-objects-fromObjectType-fromObjectId-associations-default-toObjectType-toObjectId);
/// a 404 for a record that is gone is permanent, a 5xx is retried, a 403 is an auth failure.
#[tokio::test]
async fn links_are_the_v4_default_association_put() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path(
            "/crm/v4/objects/contacts/901/associations/default/companies/77",
        ))
        .and(header("authorization", "Bearer pat-test-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "COMPLETE",
            "results": [{"associationSpec": {"associationCategory": "HUBSPOT_DEFINED",
                "associationTypeId": 279}, "from": {"id": "901"}, "to": {"id": "77"}}],
            "startedAt": "2026-11-07T05:31:56Z", "completedAt": "2026-11-07T05:31:56Z"
        })))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(
            "/crm/v4/objects/deals/5/associations/default/contacts/404",
        ))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "status": "error", "category": "OBJECT_NOT_FOUND", "message": "Object not found"})))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(
            "/crm/v4/objects/deals/5/associations/default/companies/1",
        ))
        .respond_with(ResponseTemplate::new(503))
        .expect(4)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(
            "/crm/v4/objects/deals/5/associations/default/companies/2",
        ))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "status": "error", "category": "MISSING_SCOPES", "message": "missing scopes"})))
        .expect(1)
        .mount(&server)
        .await;

    let hubspot = sink(&server);
    let (contact, company) = (CrmId("901".into()), CrmId("77".into()));
    for _ in 0..2 {
        // Idempotent: the second PUT of the same pair is as good as the first.
        hubspot
            .associate(
                CrmObject::Contacts,
                &contact,
                CrmObject::Companies,
                &company,
            )
            .await
            .expect("associated");
    }
    let deal = CrmId("5".into());
    let gone = hubspot
        .associate(
            CrmObject::Deals,
            &deal,
            CrmObject::Contacts,
            &CrmId("404".into()),
        )
        .await
        .expect_err("not found");
    assert!(matches!(gone, CrmError::NotFound { .. }), "{gone:?}");
    assert_eq!(gone.class(), ErrorClass::Permanent);
    let down = hubspot
        .associate(
            CrmObject::Deals,
            &deal,
            CrmObject::Companies,
            &CrmId("1".into()),
        )
        .await
        .expect_err("unavailable");
    assert_eq!(down.class(), ErrorClass::Transient);
    let scopes = hubspot
        .associate(
            CrmObject::Deals,
            &deal,
            CrmObject::Companies,
            &CrmId("2".into()),
        )
        .await
        .expect_err("scopes");
    assert_eq!(scopes.class(), ErrorClass::Auth);
    let puts = server.received_requests().await.expect("recording");
    assert!(puts.iter().all(|r| r.body.is_empty()), "no body is sent");
}

/// Removing links: the v4 pair DELETE, no body, 204 without a body
/// (https://developers.hubspot.com/docs/api-reference/2026-03/crm/associations/associate-records/delete-association.md);
/// a 404 (a record gone) is success, a 403 an auth failure, a 5xx retried.
#[tokio::test]
async fn links_are_removed_with_the_v4_pair_delete_and_a_404_is_gone_already() {
    let server = MockServer::start().await;
    let delete = |p: &str, answer: ResponseTemplate| {
        Mock::given(method("DELETE"))
            .and(path(p.to_owned()))
            .and(header("authorization", "Bearer pat-test-token"))
            .respond_with(answer)
    };
    delete(
        "/crm/v4/objects/contacts/901/associations/companies/77",
        ResponseTemplate::new(204),
    )
    .expect(1)
    .mount(&server)
    .await;
    delete(
        "/crm/v4/objects/tasks/8/associations/contacts/404",
        ResponseTemplate::new(404).set_body_json(json!({
            "status": "error", "category": "OBJECT_NOT_FOUND", "message": "Object not found"})),
    )
    .expect(1)
    .mount(&server)
    .await;
    delete(
        "/crm/v4/objects/deals/5/associations/contacts/1",
        ResponseTemplate::new(403).set_body_json(json!({
            "status": "error", "category": "MISSING_SCOPES", "message": "missing scopes"})),
    )
    .expect(1)
    .mount(&server)
    .await;
    delete(
        "/crm/v4/objects/deals/5/associations/contacts/2",
        ResponseTemplate::new(502),
    )
    .expect(4)
    .mount(&server)
    .await;

    let hubspot = sink(&server);
    let id = |s: &str| CrmId(s.into());
    hubspot
        .dissociate(
            CrmObject::Contacts,
            &id("901"),
            CrmObject::Companies,
            &id("77"),
        )
        .await
        .expect("removed");
    hubspot
        .dissociate(CrmObject::Tasks, &id("8"), CrmObject::Contacts, &id("404"))
        .await
        .expect("a record that is gone has no association left");
    let scopes = hubspot
        .dissociate(CrmObject::Deals, &id("5"), CrmObject::Contacts, &id("1"))
        .await
        .expect_err("scopes");
    assert_eq!(scopes.class(), ErrorClass::Auth);
    let down = hubspot
        .dissociate(CrmObject::Deals, &id("5"), CrmObject::Contacts, &id("2"))
        .await
        .expect_err("unavailable");
    assert_eq!(down.class(), ErrorClass::Transient);
    let sent = server.received_requests().await.expect("recording");
    assert!(sent.iter().all(|r| r.body.is_empty()), "no body is sent");
}
