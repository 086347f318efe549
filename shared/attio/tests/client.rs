//! The client against a wiremock Attio: exact requests, realistic responses, and the retry,
//! rate-limit and circuit-breaker policy. Every mock states how often it must be hit, so a test
//! cannot pass without the requests it claims.

use std::time::{Duration, Instant, SystemTime};

use relay_attio::{
    AttioClient, AttioConfig, AttioError, NoteTag, RecordQuery, SchemaCache, Status, Value,
};
use serde_json::{Value as Json, json};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

const TOKEN: &str = "attio-test-token";
const PEOPLE_ID: &str = "97052eb9-e65e-443f-a297-f2d9a4a7f795";
const RECORD_ID: &str = "bf071e1f-6035-429d-b874-d83ea64ea13b";

fn fixture(name: &str) -> Json {
    let file = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&file).expect("fixture exists");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// Test configuration: the mock server, tiny backoffs, production everything else.
fn config(server: &MockServer) -> AttioConfig {
    let mut config = AttioConfig::new(TOKEN);
    config.base_url = format!("{}/v2", server.uri());
    config.backoff_base = Duration::from_millis(1);
    config.backoff_cap = Duration::from_millis(5);
    config
}

fn client(server: &MockServer) -> AttioClient {
    AttioClient::new(config(server)).expect("client")
}

/// A request as Attio must receive it: method, path, bearer token, JSON accepted.
fn attio(verb: &str, route: &str) -> MockBuilder {
    Mock::given(method(verb))
        .and(path(route))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("accept", "application/json"))
}

fn json_response(status: u16, body: Json) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

fn attio_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    let kind = if status == 429 {
        "rate_limit_error"
    } else {
        "invalid_request_error"
    };
    json_response(
        status,
        json!({"status_code": status, "type": kind, "code": code, "message": message}),
    )
}

async fn request_count(server: &MockServer) -> usize {
    server.received_requests().await.expect("recording").len()
}

fn record(n: usize) -> Json {
    json!({
        "id": {"workspace_id": "w", "object_id": PEOPLE_ID, "record_id": format!("record-{n}")},
        "created_at": "2026-11-21T13:22:49.061281000Z",
        "web_url": format!("https://app.attio.com/acme/person/record-{n}"),
        "values": {}
    })
}

fn records(range: std::ops::Range<usize>) -> Json {
    json!({"data": range.map(record).collect::<Vec<_>>()})
}

#[tokio::test]
async fn get_record_decodes_every_value_type_and_keeps_unknown_ones() {
    let server = MockServer::start().await;
    attio("GET", &format!("/v2/objects/people/records/{RECORD_ID}"))
        .respond_with(json_response(200, fixture("record-every-type.json")))
        .expect(1)
        .mount(&server)
        .await;

    let record = client(&server)
        .get_record("people", RECORD_ID)
        .await
        .expect("record");

    assert_eq!(record.record_id(), RECORD_ID);
    assert_eq!(record.object_id(), PEOPLE_ID);
    assert_eq!(record.created_at, "2026-11-21T13:22:49.061281000Z");
    let text = |slug| record.first_text(slug);

    // Only current values count: the third, ended address is history.
    assert_eq!(
        record.emails("email_addresses").collect::<Vec<_>>(),
        vec!["ada@analytical.example", "ada@engines.example"]
    );
    assert_eq!(record.values["email_addresses"].len(), 3);
    let Some(Value::Email(email)) = record.first("email_addresses") else {
        panic!("email");
    };
    assert_eq!(email.original_email_address, "Ada@Analytical.example");
    assert_eq!(email.email_domain, "analytical.example");
    assert_eq!(email.email_root_domain, "analytical.example");
    assert_eq!(email.email_local_specifier, "ada");

    let name = record.personal_name().expect("personal name");
    assert_eq!(
        (name.first_name.as_str(), name.last_name.as_str()),
        ("Ada", "Lovelace")
    );
    assert_eq!(record.name().as_deref(), Some("Ada Lovelace"));

    let Some(Value::PhoneNumber(phone)) = record.first("phone_numbers") else {
        panic!("phone");
    };
    assert_eq!(phone.original_phone_number, "07700 900123");
    assert_eq!(phone.country_code.as_deref(), Some("GB"));
    assert_eq!(
        record.phone_numbers("phone_numbers").collect::<Vec<_>>(),
        vec!["+447700900123"]
    );

    let Some(Value::Domain(domain)) = record.first("domains") else {
        panic!("domain");
    };
    assert_eq!(domain.root_domain, "analytical.example");
    assert_eq!(
        record.domains("domains").collect::<Vec<_>>(),
        vec!["app.analytical.example"]
    );

    assert_eq!(
        record.first("stage"),
        Some(&Value::Status(Status {
            id: "11f07f01-c10f-4e05-a522-33e050bc52ee".into(),
            title: "In Progress".into(),
            is_archived: false,
        }))
    );
    let Some(Value::Select(option)) = record.first("priority") else {
        panic!("select");
    };
    assert_eq!(option.id, "08c2c59a-c18e-40c6-8dc4-95415313b2ea");
    assert_eq!(option.title, "Medium");

    let Some(Value::Currency(currency)) = record.first("value") else {
        panic!("currency");
    };
    assert_eq!(currency.currency_value, 12500.5);
    assert_eq!(currency.currency_code.as_deref(), Some("GBP"));

    let company = record.references("company").next().expect("reference");
    assert_eq!(company.target_object, "companies");
    assert_eq!(
        company.target_record_id,
        "891dcbfc-9141-415d-9b2a-2238a6cc012d"
    );

    // Every type as the string a CRM mapper would write.
    assert_eq!(
        text("email_addresses").as_deref(),
        Some("ada@analytical.example")
    );
    assert_eq!(text("name").as_deref(), Some("Ada Lovelace"));
    assert_eq!(text("phone_numbers").as_deref(), Some("+447700900123"));
    assert_eq!(text("domains").as_deref(), Some("app.analytical.example"));
    assert_eq!(text("stage").as_deref(), Some("In Progress"));
    assert_eq!(text("priority").as_deref(), Some("Medium"));
    assert_eq!(text("value").as_deref(), Some("12500.5"));
    assert_eq!(
        text("company").as_deref(),
        Some("891dcbfc-9141-415d-9b2a-2238a6cc012d")
    );
    assert_eq!(text("job_title").as_deref(), Some("Chief Engine Officer"));
    assert_eq!(text("employee_count").as_deref(), Some("42"));
    assert_eq!(text("rating").as_deref(), Some("4"));
    assert_eq!(text("birthday").as_deref(), Some("1815-12-10"));
    assert_eq!(text("newsletter").as_deref(), Some("true"));
    assert_eq!(
        text("created_at").as_deref(),
        Some("2026-11-21T13:22:49.061281000Z")
    );
    assert_eq!(
        text("created_by").as_deref(),
        Some("50cf242c-7fa3-4cad-87d0-75b1af71c57b")
    );
    assert_eq!(
        text("primary_location").as_deref(),
        Some("12 St James's Square, London, SW1Y 4LB, GB")
    );
    assert_eq!(
        text("last_email_interaction").as_deref(),
        Some("2026-11-23T09:00:00.000000000Z")
    );
    assert_eq!(text("description"), None, "no values");
    assert_eq!(text("no_such_attribute"), None);
    assert_eq!(record.texts("job_title"), vec!["Chief Engine Officer"]);

    assert_eq!(record.first("employee_count"), Some(&Value::Number(42.0)));
    assert_eq!(record.first("rating"), Some(&Value::Rating(4.0)));
    assert_eq!(record.first("newsletter"), Some(&Value::Checkbox(true)));
    assert_eq!(
        record.first("birthday"),
        Some(&Value::Date("1815-12-10".into()))
    );
    assert!(matches!(
        record.first("created_at"),
        Some(Value::Timestamp(_))
    ));
    assert!(matches!(
        record.first("created_by"),
        Some(Value::ActorReference(a)) if a.referenced_actor_type == "workspace-member"
    ));
    assert!(matches!(
        record.first("last_email_interaction"),
        Some(Value::Interaction(i)) if i.interaction_type == "email"
    ));

    // A type Attio may add later: kept, whole, never a decode failure.
    let unknown = &record.values["favourite_engine"][0];
    assert_eq!(unknown.attribute_type, "steam-engine");
    assert!(unknown.is_current());
    let Value::Other(raw) = &unknown.value else {
        panic!("unknown types are Other");
    };
    assert_eq!(raw["engine"], json!({"model": "analytical", "cards": 3}));
    assert_eq!(unknown.as_display_string(), None);
    assert_eq!(
        unknown
            .created_by_actor
            .as_ref()
            .and_then(|a| a.kind.as_deref()),
        Some("app")
    );

    // The envelope of a historic value.
    let old = &record.values["job_title"][1];
    assert!(!old.is_current());
    assert_eq!(
        old.active_until.as_deref(),
        Some("2026-11-22T10:00:00.000000000Z")
    );
    assert_eq!(old.active_from, "2026-11-21T13:22:49.061281000Z");
}

#[tokio::test]
async fn requests_carry_exactly_the_bearer_token_and_accept_json() {
    let server = MockServer::start().await;
    attio("GET", &format!("/v2/objects/{PEOPLE_ID}"))
        .respond_with(json_response(200, fixture("object-people.json")))
        .expect(1)
        .mount(&server)
        .await;

    client(&server).get_object(PEOPLE_ID).await.expect("object");

    let requests = server.received_requests().await.expect("recording");
    let [request] = requests.as_slice() else {
        panic!("one request, got {}", requests.len());
    };
    let values = |name| {
        request
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("?").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(values("authorization"), vec![format!("Bearer {TOKEN}")]);
    assert_eq!(values("accept"), vec!["application/json"]);
    assert_eq!(request.url.query(), None);
    assert!(request.body.is_empty(), "GET has no body");
}

#[tokio::test]
async fn query_pages_walk_the_offsets_until_a_short_page() {
    let server = MockServer::start().await;
    let filter = json!({"email_addresses": {"email_domain": {"$eq": "analytical.example"}}});
    attio("POST", "/v2/objects/people/records/query")
        .and(header("content-type", "application/json"))
        .and(body_json(
            json!({"filter": filter, "limit": 500, "offset": 0}),
        ))
        .respond_with(json_response(200, records(0..500)))
        .expect(1)
        .mount(&server)
        .await;
    attio("POST", "/v2/objects/people/records/query")
        .and(body_json(
            json!({"filter": filter, "limit": 500, "offset": 500}),
        ))
        .respond_with(json_response(200, records(500..503)))
        .expect(1)
        .mount(&server)
        .await;

    let mut pages = client(&server).query_all_records("people", Some(filter.clone()), 500);
    assert_eq!(pages.offset(), 0);
    let first = pages.next_page().await.expect("page 1").expect("records");
    assert_eq!(first.len(), 500);
    assert_eq!(first[0].record_id(), "record-0");
    assert_eq!(pages.offset(), 500, "saved after page 1, resumes at 500");
    assert!(!pages.is_done());

    let second = pages.next_page().await.expect("page 2").expect("records");
    assert_eq!(second.len(), 3);
    assert_eq!(second[2].record_id(), "record-502");
    assert_eq!(pages.offset(), 503);
    assert!(pages.is_done());

    assert!(pages.next_page().await.expect("end").is_none());
    assert_eq!(
        request_count(&server).await,
        2,
        "no request after a short page"
    );
}

#[tokio::test]
async fn a_walk_resumes_from_a_saved_offset_with_its_sort_and_stops_on_an_empty_page() {
    let server = MockServer::start().await;
    let sort = json!({"direction": "asc", "attribute": "created_at"});
    attio("POST", "/v2/objects/people/records/query")
        .and(body_json(
            json!({"sorts": [sort], "limit": 100, "offset": 1200}),
        ))
        .respond_with(json_response(200, json!({"data": []})))
        .expect(1)
        .mount(&server)
        .await;

    let query = RecordQuery::new()
        .sort(sort.clone())
        .limit(100)
        .offset(1200);
    let mut pages = client(&server).record_pages("people", query);
    assert!(pages.next_page().await.expect("page").is_none());
    assert!(pages.is_done());
    assert_eq!(pages.offset(), 1200);
}

#[tokio::test]
async fn query_records_clamps_the_limit_and_sends_no_filter_or_sorts_when_unset() {
    let server = MockServer::start().await;
    attio("POST", "/v2/objects/companies/records/query")
        .respond_with(json_response(200, records(0..2)))
        .expect(1)
        .mount(&server)
        .await;

    let query = RecordQuery::new().limit(2000);
    let found = client(&server)
        .query_records("companies", &query)
        .await
        .expect("records");
    assert_eq!(found.len(), 2);

    let requests = server.received_requests().await.expect("recording");
    let body: Json = requests[0].body_json().expect("JSON body");
    assert_eq!(body, json!({"limit": 500, "offset": 0}));
}

#[tokio::test]
async fn assert_record_puts_the_values_with_the_matching_attribute() {
    let server = MockServer::start().await;
    let values = json!({
        "email_addresses": ["ada@analytical.example"],
        "name": [{"first_name": "Ada", "last_name": "Lovelace", "full_name": "Ada Lovelace"}]
    });
    attio("PUT", "/v2/objects/people/records")
        .and(query_param("matching_attribute", "email_addresses"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({"data": {"values": values}})))
        .respond_with(json_response(200, fixture("record-every-type.json")))
        .expect(1)
        .mount(&server)
        .await;

    let record = client(&server)
        .assert_record("people", "email_addresses", values.clone())
        .await
        .expect("asserted");
    assert_eq!(record.record_id(), RECORD_ID);

    let requests = server.received_requests().await.expect("recording");
    assert_eq!(
        requests[0].url.query(),
        Some("matching_attribute=email_addresses")
    );
}

#[tokio::test]
async fn list_entries_decode_with_their_current_entry_values() {
    let server = MockServer::start().await;
    let list = "33ebdbe9-e529-47c9-b894-0ba25e9c15c0";
    let entry_id = "2e6e29ea-c4e0-4f44-842d-78a891f8c156";
    attio("GET", &format!("/v2/lists/{list}/entries/{entry_id}"))
        .respond_with(json_response(200, fixture("list-entry.json")))
        .expect(1)
        .mount(&server)
        .await;

    let entry = client(&server)
        .get_list_entry(list, entry_id)
        .await
        .expect("entry");
    assert_eq!(entry.id.list_id, list);
    assert_eq!(entry.id.entry_id, entry_id);
    assert_eq!(
        entry.id.workspace_id,
        "14beef7a-99f7-4534-a87e-70b564330a4c"
    );
    assert_eq!(entry.parent_object, "companies");
    assert_eq!(
        entry.parent_record_id,
        "891dcbfc-9141-415d-9b2a-2238a6cc012d"
    );
    assert_eq!(entry.created_at, "2026-11-21T13:22:49.061281000Z");
    assert_eq!(entry.entry_values["stage"].len(), 2);
    assert_eq!(entry.first_text("stage").as_deref(), Some("Qualified"));
    assert_eq!(entry.texts("stage"), vec!["Qualified"]);
    let Some(Value::Currency(size)) = entry.current("deal_size").next() else {
        panic!("currency");
    };
    assert_eq!(size.currency_value, 9000.0);
    assert_eq!(size.currency_code, None);
}

#[tokio::test]
async fn notes_decode() {
    let server = MockServer::start().await;
    let note_id = "ff3f3bd4-40f4-4f80-8187-cd02385af424";
    attio("GET", &format!("/v2/notes/{note_id}"))
        .respond_with(json_response(200, fixture("note.json")))
        .expect(1)
        .mount(&server)
        .await;

    let note = client(&server).get_note(note_id).await.expect("note");
    assert_eq!(note.id.note_id, note_id);
    assert_eq!(note.parent_object, "people");
    assert_eq!(note.parent_record_id, RECORD_ID);
    assert_eq!(note.title, "Intro call");
    assert_eq!(
        note.content_plaintext,
        "Wants the analytical engine in Q1.\nFollow up in January."
    );
    assert!(
        note.content_markdown
            .as_deref()
            .is_some_and(|md| md.contains("**analytical engine**"))
    );
    assert_eq!(note.meeting_id, None);
    assert_eq!(note.created_at, "2026-11-21T14:00:00.000000000Z");
    assert_eq!(
        note.tags[1],
        NoteTag::Record {
            object: "companies".into(),
            record_id: "891dcbfc-9141-415d-9b2a-2238a6cc012d".into()
        }
    );
    assert_eq!(
        note.created_by_actor.and_then(|a| a.kind).as_deref(),
        Some("workspace-member")
    );
}

#[tokio::test]
async fn completed_tasks_decode() {
    let server = MockServer::start().await;
    let task_id = "649e34f4-c39a-4f4d-99ef-48a36bef8f04";
    attio("GET", &format!("/v2/tasks/{task_id}"))
        .respond_with(json_response(200, fixture("task.json")))
        .expect(1)
        .mount(&server)
        .await;

    let task = client(&server).get_task(task_id).await.expect("task");
    assert_eq!(task.id.task_id, task_id);
    assert!(task.is_completed);
    assert_eq!(task.content_plaintext, "Send the engine spec");
    assert_eq!(
        task.deadline_at.as_deref(),
        Some("2026-11-30T17:00:00.000000000Z")
    );
    assert_eq!(task.linked_records.len(), 1);
    assert_eq!(task.linked_records[0].target_object_id, PEOPLE_ID);
    assert_eq!(task.linked_records[0].target_record_id, RECORD_ID);
    assert_eq!(task.assignees[0].referenced_actor_type, "workspace-member");
    assert_eq!(
        task.assignees[0].referenced_actor_id,
        "50cf242c-7fa3-4cad-87d0-75b1af71c57b"
    );
    assert_eq!(task.created_at, "2026-11-21T08:00:00.000000000Z");
}

#[tokio::test]
async fn objects_and_attributes_decode() {
    let server = MockServer::start().await;
    attio("GET", "/v2/objects/people")
        .respond_with(json_response(200, fixture("object-people.json")))
        .expect(1)
        .mount(&server)
        .await;
    attio("GET", "/v2/objects/people/attributes")
        .respond_with(json_response(200, fixture("attributes-people.json")))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);

    let object = client.get_object("people").await.expect("object");
    assert_eq!(object.id.object_id, PEOPLE_ID);
    assert_eq!(object.api_slug.as_deref(), Some("people"));
    assert_eq!(object.slug(), "people");
    assert_eq!(object.singular_noun.as_deref(), Some("Person"));
    assert_eq!(object.plural_noun.as_deref(), Some("People"));

    let attributes = client.list_attributes("people").await.expect("attributes");
    assert_eq!(attributes.len(), 2);
    let email = &attributes[0];
    assert_eq!(
        email.id.attribute_id,
        "41252299-f8c7-4b5e-99c9-4ff8321d2f96"
    );
    assert_eq!(email.id.object_id, PEOPLE_ID);
    assert_eq!(email.api_slug, "email_addresses");
    assert_eq!(email.title, "Email addresses");
    assert_eq!(email.attribute_type, "email-address");
    assert!(email.is_multiselect && email.is_unique && email.is_system_attribute);
    assert_eq!(email.description, None);
    let company = &attributes[1];
    assert_eq!(company.attribute_type, "record-reference");
    assert!(!company.is_multiselect);
    assert_eq!(
        company.description.as_deref(),
        Some("The person's employer")
    );
}

#[tokio::test]
async fn not_found_is_permanent_and_not_retried() {
    let server = MockServer::start().await;
    attio("GET", "/v2/objects/people/records/gone")
        .respond_with(attio_error(
            404,
            "not_found",
            "Record with ID \"gone\" not found.",
        ))
        .expect(1)
        .mount(&server)
        .await;

    let err = client(&server)
        .get_record("people", "gone")
        .await
        .expect_err("404");
    let AttioError::NotFound { path, message } = &err else {
        panic!("NotFound, got {err:?}");
    };
    assert_eq!(path, "/objects/people/records/gone");
    assert_eq!(message, "Record with ID \"gone\" not found.");
    assert!(err.is_permanent());
}

#[tokio::test]
async fn a_bad_request_is_decoded_permanent_and_not_retried() {
    let server = MockServer::start().await;
    attio("POST", "/v2/objects/people/records/query")
        .respond_with(attio_error(400, "filter_error", "Error in filter."))
        .expect(1)
        .mount(&server)
        .await;

    let query = RecordQuery::new().filter(json!({"$nonsense": true}));
    let err = client(&server)
        .query_records("people", &query)
        .await
        .expect_err("400");
    let AttioError::Api {
        status,
        code,
        message,
        path,
    } = &err
    else {
        panic!("Api, got {err:?}");
    };
    assert_eq!(*status, 400);
    assert_eq!(code.as_deref(), Some("filter_error"));
    assert_eq!(message, "Error in filter.");
    assert_eq!(path, "/objects/people/records/query");
    assert!(err.is_permanent());
}

#[tokio::test]
async fn an_undecodable_success_is_permanent() {
    let server = MockServer::start().await;
    attio("GET", "/v2/tasks/t1")
        .respond_with(json_response(
            200,
            json!({"data": {"id": "not an id object"}}),
        ))
        .expect(1)
        .mount(&server)
        .await;

    let err = client(&server).get_task("t1").await.expect_err("decode");
    assert!(matches!(err, AttioError::Decode { .. }), "{err:?}");
    assert!(err.is_permanent());
}

#[tokio::test]
async fn a_429_with_a_retry_after_date_is_waited_out() {
    let server = MockServer::start().await;
    let reset = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    attio("GET", "/v2/notes/n1")
        .respond_with(
            attio_error(
                429,
                "rate_limit_exceeded",
                "Rate limit exceeded, please try again later",
            )
            .insert_header("retry-after", reset.as_str()),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    attio("GET", "/v2/notes/n1")
        .respond_with(json_response(200, fixture("note.json")))
        .expect(1)
        .mount(&server)
        .await;

    let started = Instant::now();
    let note = client(&server)
        .get_note("n1")
        .await
        .expect("note after the wait");
    assert_eq!(note.title, "Intro call");
    // Coarse sanity only: the date is one to two seconds ahead at one-second resolution.
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(request_count(&server).await, 2);
}

#[tokio::test]
async fn a_429_beyond_the_budget_returns_rate_limited_without_waiting() {
    let server = MockServer::start().await;
    let reset = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(90));
    attio("GET", "/v2/tasks/t1")
        .respond_with(
            attio_error(429, "rate_limit_exceeded", "Rate limit exceeded")
                .insert_header("retry-after", reset.as_str()),
        )
        .expect(1)
        .mount(&server)
        .await;

    let started = Instant::now();
    let err = client(&server).get_task("t1").await.expect_err("limited");
    assert!(started.elapsed() < Duration::from_secs(5), "did not sleep");
    let AttioError::RateLimited { retry_after, path } = &err else {
        panic!("RateLimited, got {err:?}");
    };
    assert!(*retry_after > Duration::from_secs(80) && *retry_after <= Duration::from_secs(90));
    assert_eq!(path, "/tasks/t1");
    assert!(!err.is_permanent());
    assert_eq!(err.retry_after(), Some(*retry_after));
}

#[tokio::test]
async fn a_retry_after_in_seconds_is_understood() {
    let server = MockServer::start().await;
    attio("GET", "/v2/tasks/t1")
        .respond_with(
            attio_error(429, "rate_limit_exceeded", "Rate limit exceeded")
                .insert_header("retry-after", "120"),
        )
        .expect(1)
        .mount(&server)
        .await;

    let err = client(&server).get_task("t1").await.expect_err("limited");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)), "{err:?}");
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let server = MockServer::start().await;
    attio("GET", &format!("/v2/objects/people/records/{RECORD_ID}"))
        .respond_with(attio_error(500, "internal_error", "Something went wrong"))
        .up_to_n_times(2)
        .with_priority(1)
        .expect(2)
        .mount(&server)
        .await;
    attio("GET", &format!("/v2/objects/people/records/{RECORD_ID}"))
        .respond_with(json_response(200, fixture("record-every-type.json")))
        .expect(1)
        .mount(&server)
        .await;

    let record = client(&server)
        .get_record("people", RECORD_ID)
        .await
        .expect("third attempt succeeds");
    assert_eq!(record.record_id(), RECORD_ID);
    assert_eq!(request_count(&server).await, 3);
}

#[tokio::test]
async fn a_write_conflict_is_retried() {
    let server = MockServer::start().await;
    let values = json!({"domains": ["analytical.example"]});
    attio("PUT", "/v2/objects/companies/records")
        .and(query_param("matching_attribute", "domains"))
        .respond_with(attio_error(
            409,
            "concurrent_write_conflict",
            "The record was modified by another request while this write was being validated. Please try again.",
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    attio("PUT", "/v2/objects/companies/records")
        .and(body_json(json!({"data": {"values": values}})))
        .respond_with(json_response(200, fixture("record-every-type.json")))
        .expect(1)
        .mount(&server)
        .await;

    client(&server)
        .assert_record("companies", "domains", values.clone())
        .await
        .expect("second attempt succeeds");
}

#[tokio::test]
async fn persistent_server_errors_exhaust_the_attempts() {
    let server = MockServer::start().await;
    attio("GET", "/v2/notes/n1")
        .respond_with(attio_error(503, "unavailable", "Service unavailable"))
        .expect(5)
        .mount(&server)
        .await;

    let err = client(&server).get_note("n1").await.expect_err("exhausted");
    let AttioError::BudgetExhausted {
        path,
        attempts,
        last,
    } = &err
    else {
        panic!("BudgetExhausted, got {err:?}");
    };
    assert_eq!(path, "/notes/n1");
    assert_eq!(*attempts, 5);
    assert!(
        matches!(**last, AttioError::Api { status: 503, .. }),
        "{last:?}"
    );
    assert!(!err.is_permanent());
}

#[tokio::test]
async fn timeouts_are_retried_but_never_past_the_budget() {
    let server = MockServer::start().await;
    attio("GET", "/v2/tasks/slow")
        .respond_with(json_response(200, fixture("task.json")).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.request_timeout = Duration::from_millis(100);
    config.call_budget = Duration::from_millis(350);
    config.max_attempts = 50;
    config.breaker_threshold = 1000;
    let client = AttioClient::new(config).expect("client");

    let started = Instant::now();
    let err = client.get_task("slow").await.expect_err("out of budget");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the budget cut it short"
    );
    let AttioError::BudgetExhausted { attempts, last, .. } = &err else {
        panic!("BudgetExhausted, got {err:?}");
    };
    assert!((2..50).contains(attempts), "{attempts} attempts");
    assert!(matches!(**last, AttioError::Timeout { .. }), "{last:?}");
    let received = request_count(&server).await;
    assert!(received >= 2, "retried after a timeout: {received}");
}

#[tokio::test]
async fn the_circuit_opens_after_five_failed_calls_and_fails_fast() {
    let server = MockServer::start().await;
    attio("GET", &format!("/v2/objects/{PEOPLE_ID}/records/r1"))
        .respond_with(attio_error(502, "bad_gateway", "Bad gateway"))
        .expect(5)
        .mount(&server)
        .await;
    attio("GET", "/v2/objects/companies/records/c1")
        .respond_with(json_response(200, fixture("record-every-type.json")))
        .expect(1)
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.max_attempts = 1;
    let client = AttioClient::new(config).expect("client");

    for _ in 0..5 {
        let err = client.get_record(PEOPLE_ID, "r1").await.expect_err("fails");
        assert!(
            matches!(err, AttioError::BudgetExhausted { attempts: 1, .. }),
            "{err:?}"
        );
    }
    assert_eq!(request_count(&server).await, 5);

    // Open: no request is made, for this client or any clone of it.
    for c in [client.clone(), client.clone()] {
        let err = c.get_record(PEOPLE_ID, "r1").await.expect_err("open");
        let AttioError::CircuitOpen { object, until } = &err else {
            panic!("CircuitOpen, got {err:?}");
        };
        assert_eq!(object, PEOPLE_ID);
        assert!(*until > SystemTime::now() + Duration::from_secs(25));
        assert!(!err.is_permanent());
    }
    assert_eq!(request_count(&server).await, 5, "failed fast");

    // Other objects have their own circuit.
    client
        .get_record("companies", "c1")
        .await
        .expect("companies unaffected");
}

#[tokio::test]
async fn one_call_exhausting_its_retries_does_not_open_the_circuit() {
    let server = MockServer::start().await;
    attio("GET", &format!("/v2/objects/{PEOPLE_ID}/records/broken"))
        .respond_with(attio_error(500, "internal_error", "Something went wrong"))
        .expect(5)
        .mount(&server)
        .await;
    attio("GET", &format!("/v2/objects/{PEOPLE_ID}/records/fine"))
        .respond_with(json_response(200, fixture("record-every-type.json")))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    let err = client
        .get_record(PEOPLE_ID, "broken")
        .await
        .expect_err("exhausted");
    assert!(
        matches!(err, AttioError::BudgetExhausted { attempts: 5, .. }),
        "{err:?}"
    );
    client
        .get_record(PEOPLE_ID, "fine")
        .await
        .expect("one broken record does not block its object");
}

#[tokio::test]
async fn after_the_cooldown_one_trial_call_closes_the_circuit() {
    let server = MockServer::start().await;
    attio("GET", "/v2/tasks/t1")
        .respond_with(attio_error(500, "internal_error", "Something went wrong"))
        .up_to_n_times(5)
        .with_priority(1)
        .expect(5)
        .mount(&server)
        .await;
    attio("GET", "/v2/tasks/t1")
        .respond_with(json_response(200, fixture("task.json")))
        .expect(2)
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.breaker_cooldown = Duration::from_millis(100);
    config.max_attempts = 1;
    let client = AttioClient::new(config).expect("client");

    for _ in 0..5 {
        client.get_task("t1").await.expect_err("exhausted");
    }
    let open = client.get_task("t1").await.expect_err("open");
    assert!(matches!(open, AttioError::CircuitOpen { .. }), "{open:?}");

    tokio::time::sleep(Duration::from_millis(150)).await;
    client.get_task("t1").await.expect("the trial succeeds");
    client.get_task("t1").await.expect("closed again");
    assert_eq!(request_count(&server).await, 7);
}

#[tokio::test]
async fn the_schema_cache_looks_each_object_up_once() {
    let server = MockServer::start().await;
    attio("GET", &format!("/v2/objects/{PEOPLE_ID}"))
        .respond_with(json_response(200, fixture("object-people.json")))
        .expect(2)
        .mount(&server)
        .await;
    let cache = SchemaCache::new(client(&server));

    assert_eq!(cache.slug_for(PEOPLE_ID).await.expect("slug"), "people");
    assert_eq!(
        cache.clone().slug_for(PEOPLE_ID).await.expect("slug"),
        "people"
    );
    assert_eq!(request_count(&server).await, 1, "second lookup cached");
    assert_eq!(cache.slug_for("people").await.expect("slug"), "people");
    assert_eq!(request_count(&server).await, 1, "slugs need no lookup");

    cache.invalidate(PEOPLE_ID);
    assert_eq!(cache.slug_for(PEOPLE_ID).await.expect("slug"), "people");
    assert_eq!(
        request_count(&server).await,
        2,
        "refetched after invalidate"
    );
}

#[tokio::test]
async fn concurrent_schema_lookups_share_one_request() {
    let server = MockServer::start().await;
    attio("GET", &format!("/v2/objects/{PEOPLE_ID}"))
        .respond_with(
            json_response(200, fixture("object-people.json")).set_delay(Duration::from_millis(200)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let cache = SchemaCache::new(client(&server));

    let (a, b, c, d) = tokio::join!(
        cache.slug_for(PEOPLE_ID),
        cache.slug_for(PEOPLE_ID),
        cache.object(PEOPLE_ID),
        cache.slug_for(PEOPLE_ID),
    );
    for slug in [a, b, d] {
        assert_eq!(slug.expect("slug"), "people");
    }
    assert_eq!(c.expect("object").id.object_id, PEOPLE_ID);
    assert_eq!(request_count(&server).await, 1);
}

#[tokio::test]
async fn cached_attributes_are_dropped_when_their_object_id_is_invalidated() {
    let server = MockServer::start().await;
    attio("GET", "/v2/objects/people/attributes")
        .respond_with(json_response(200, fixture("attributes-people.json")))
        .expect(2)
        .mount(&server)
        .await;
    let cache = SchemaCache::new(client(&server));

    assert_eq!(
        cache.attributes("people").await.expect("attributes").len(),
        2
    );
    let company = cache
        .attribute("people", "7d1f3c2a-9a8b-4c6d-8e1f-2a3b4c5d6e7f")
        .await
        .expect("lookup")
        .expect("found by id");
    assert_eq!(company.api_slug, "company");
    assert!(
        cache
            .attribute("people", "nope")
            .await
            .expect("lookup")
            .is_none()
    );
    assert_eq!(request_count(&server).await, 1);

    // object-attribute.* events name the object by id; the cache was filled by slug.
    cache.invalidate(PEOPLE_ID);
    assert_eq!(
        cache.attributes("people").await.expect("attributes").len(),
        2
    );
    assert_eq!(request_count(&server).await, 2);
}

#[tokio::test]
async fn a_failed_schema_lookup_is_not_cached() {
    let server = MockServer::start().await;
    attio("GET", &format!("/v2/objects/{PEOPLE_ID}"))
        .respond_with(attio_error(
            403,
            "unauthorized",
            "Missing scope object_configuration:read",
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    attio("GET", &format!("/v2/objects/{PEOPLE_ID}"))
        .respond_with(json_response(200, fixture("object-people.json")))
        .expect(1)
        .mount(&server)
        .await;
    let cache = SchemaCache::new(client(&server));

    let err = cache.slug_for(PEOPLE_ID).await.expect_err("403");
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(cache.slug_for(PEOPLE_ID).await.expect("slug"), "people");
}

#[tokio::test]
async fn connection_failures_are_transient_and_say_why() {
    // A port nothing listens on: bind, note the port, close.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let mut config = AttioConfig::new(TOKEN);
    config.base_url = format!("http://127.0.0.1:{port}/v2");
    config.backoff_base = Duration::from_millis(1);
    config.backoff_cap = Duration::from_millis(5);
    config.max_attempts = 2;
    let client = AttioClient::new(config).expect("client");

    let err = client.get_note("n1").await.expect_err("no server");
    let AttioError::BudgetExhausted { attempts, last, .. } = &err else {
        panic!("BudgetExhausted, got {err:?}");
    };
    assert_eq!(*attempts, 2);
    assert!(matches!(**last, AttioError::Transport { .. }), "{last:?}");
    assert!(!err.is_permanent());
    let shown = err.to_string().to_lowercase();
    assert!(
        shown.contains("refused") || shown.contains("connect"),
        "{shown}"
    );
}
