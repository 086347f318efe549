//! The client against a wiremock Attio: exact requests, realistic responses, and the retry,
//! rate-limit and circuit-breaker policy. Every mock states how often it must be hit, so a test
//! cannot pass without the requests it claims.
//!
//! * [`decode`]: each endpoint's request and its response decoded (records, pages, lists,
//!   notes, tasks, schema).
//! * [`policy`]: errors classified, 429s waited out, retries, timeouts, the circuit breaker.
//! * [`schema`]: the object/attribute cache.
//! * [`budget`]: containers drawing from one shared rate budget, cut on a 429.
//! * [`writes`]: the way back's asserts and updates (`AttioWriter`).

mod budget;
mod decode;
mod policy;
mod rotation;
mod schema;
mod writes;

use std::time::{Duration, Instant, SystemTime};

use relay_attio::{
    AttioClient, AttioConfig, AttioError, NoteTag, RecordQuery, SchemaCache, Status, Value,
};
use serde_json::{Value as Json, json};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

pub(crate) const TOKEN: &str = "attio-test-token";
pub(crate) const PEOPLE_ID: &str = "97052eb9-e65e-443f-a297-f2d9a4a7f795";
pub(crate) const RECORD_ID: &str = "bf071e1f-6035-429d-b874-d83ea64ea13b";

pub(crate) fn fixture(name: &str) -> Json {
    let file = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&file).expect("fixture exists");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// Test configuration: the mock server, tiny backoffs, production everything else.
pub(crate) fn config(server: &MockServer) -> AttioConfig {
    let mut config = AttioConfig::new(TOKEN);
    config.base_url = format!("{}/v2", server.uri());
    config.backoff_base = Duration::from_millis(1);
    config.backoff_cap = Duration::from_millis(5);
    config
}

pub(crate) fn client(server: &MockServer) -> AttioClient {
    AttioClient::new(config(server)).expect("client")
}

/// A request as Attio must receive it: method, path, bearer token, JSON accepted.
pub(crate) fn attio(verb: &str, route: &str) -> MockBuilder {
    Mock::given(method(verb))
        .and(path(route))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("accept", "application/json"))
}

/// Attio's GET of the fixture person record ([`RECORD_ID`]), to be answered by the test.
pub(crate) fn get_the_record() -> MockBuilder {
    attio("GET", &format!("/v2/objects/people/records/{RECORD_ID}"))
}

/// Attio's answer holding `record-every-type.json`, a record with every value type.
pub(crate) fn every_type_record() -> ResponseTemplate {
    json_response(200, fixture("record-every-type.json"))
}

/// Reads the fixture person record with a client on `server`.
pub(crate) async fn read_the_record(
    server: &MockServer,
) -> Result<relay_attio::Record, AttioError> {
    client(server).get_record("people", RECORD_ID).await
}

pub(crate) fn json_response(status: u16, body: Json) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

pub(crate) fn attio_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
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

pub(crate) async fn request_count(server: &MockServer) -> usize {
    server.received_requests().await.expect("recording").len()
}

pub(crate) fn record(n: usize) -> Json {
    json!({
        "id": {"workspace_id": "w", "object_id": PEOPLE_ID, "record_id": format!("record-{n}")},
        "created_at": "2026-11-21T13:22:49.061281000Z",
        "web_url": format!("https://app.attio.com/acme/person/record-{n}"),
        "values": {}
    })
}

pub(crate) fn records(range: std::ops::Range<usize>) -> Json {
    json!({"data": range.map(record).collect::<Vec<_>>()})
}
