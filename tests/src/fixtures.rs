//! The sample deliveries in `events/` and requests signed as Attio signs them.

use std::path::PathBuf;

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use relay_ingest::{IngestConfig, IngestRequest, IngestResponse, IngestService, StaticSecrets};
use relay_signature::{SchemePolicy, Verifier, WebhookSecret, sign_body, sign_timestamped};

use crate::faults::ManualClock;

/// The secret the fixtures in `events/` are signed with.
pub const SECRET: &str = "whsec_fixture_current";
/// A second valid secret, as during a rotation.
pub const PREVIOUS_SECRET: &str = "whsec_fixture_previous";

/// The ids in the Attio fixtures (`tests/fixtures/attio/` and `events/deliveries/`): the
/// workspace, its `people` object, and Ada Lovelace, the person record.
pub mod ids {
    pub const WORKSPACE: &str = "a9f6fd20-80d5-4bd1-b8fe-60a7c5a9178a";
    pub const PEOPLE: &str = "f436cad2-7090-4b86-8ae2-27260febbefe";
    pub const ADA: &str = "443d9969-4842-451e-96bc-ffb9ad6744df";
}

/// The repository's `events/` folder.
pub fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// The exact bytes of `events/deliveries/<name>.json`.
pub fn delivery(name: &str) -> Vec<u8> {
    let path = events_dir().join("deliveries").join(format!("{name}.json"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every sample delivery, by file stem.
pub fn all_deliveries() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(events_dir().join("deliveries"))
        .expect("events/deliveries exists")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let stem = path
                .file_stem()
                .expect("stem")
                .to_string_lossy()
                .into_owned();
            (stem, std::fs::read(&path).expect("read delivery"))
        })
        .collect();
    out.sort();
    out
}

pub fn secret(value: &str) -> WebhookSecret {
    WebhookSecret::new(value).expect("non-empty secret")
}

/// Headers for Attio's body-only scheme (both header names, as Attio sends).
pub fn body_only_headers(secret_value: &str, body: &[u8]) -> HeaderMap {
    let signature = sign_body(&secret(secret_value), body);
    signed_json(&[
        ("attio-signature", &signature),
        ("x-attio-signature", &signature),
    ])
}

/// Headers for the timestamped scheme.
pub fn timestamped_headers(secret_value: &str, timestamp: i64, body: &[u8]) -> HeaderMap {
    let signature = sign_timestamped(&secret(secret_value), timestamp, body);
    signed_json(&[
        ("attio-signature", &signature),
        ("x-attio-timestamp", &timestamp.to_string()),
    ])
}

/// A JSON content type and the given signature headers.
fn signed_json(signature_headers: &[(&'static str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    for (name, value) in signature_headers {
        headers.insert(
            *name,
            HeaderValue::from_str(value).expect("ascii header value"),
        );
    }
    headers
}

/// Adds Attio's `Idempotency-Key` header.
pub fn with_key(mut headers: HeaderMap, key: &str) -> HeaderMap {
    headers.insert(
        "idempotency-key",
        HeaderValue::from_str(key).expect("ascii key"),
    );
    headers
}

/// A POST request over borrowed parts.
pub fn post<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> IngestRequest<'a> {
    static POST: Method = Method::POST;
    IngestRequest {
        method: &POST,
        headers,
        body,
    }
}

/// Asserts that ingest answered 503 (Attio retries the delivery later), with the body it
/// answered when it did not.
pub fn assert_retry_later(response: &IngestResponse) {
    assert_eq!(
        response.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        response.body
    );
}

/// Verifier with both fixture secrets, accepting either scheme.
pub fn fixture_secrets() -> StaticSecrets {
    StaticSecrets::new(Verifier::new(
        vec![secret(SECRET), secret(PREVIOUS_SECRET)],
        SchemePolicy::AcceptEither,
    ))
}

/// An ingest service over any store and queue, with the fixture secrets and a manual clock.
pub fn service<S, Q>(
    store: S,
    queue: Q,
    clock: ManualClock,
) -> IngestService<S, Q, StaticSecrets, ManualClock> {
    IngestService::with_clock(
        store,
        queue,
        fixture_secrets(),
        IngestConfig::default(),
        clock,
    )
}

/// A sample Attio API response from `tests/fixtures/attio/<name>`.
pub fn attio(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/attio")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Serves the Attio fixtures on a stand-in Attio: the `people` object (which the consumers read
/// to map a person, any number of times) and Ada's record, which must be read exactly `reads`
/// times — by the batched read the consumers make ([`mount_ada_query`]).
pub async fn mount_people_and_ada(server: &wiremock::MockServer, reads: u64) {
    mount_people(server).await;
    mount_ada_query(server, reads).await;
}

/// The `people` object, any number of times.
pub async fn mount_people(server: &wiremock::MockServer) {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    Mock::given(method("GET"))
        .and(path(format!("/v2/objects/{}", ids::PEOPLE)))
        .respond_with(ResponseTemplate::new(200).set_body_json(attio("people-object.json")))
        .mount(server)
        .await;
}

/// Ada's record answered to the query the consumers batch their reads with, exactly as Attio's
/// filtering guide has it (`{"filter": {"record_id": {"$in": [Ada]}}, "limit": 1, ...}`:
/// <https://docs.attio.com/rest-api/guides/filtering-and-sorting>), exactly `reads` times;
/// the answer is `{"data": [record]}`, the record as its GET answers it.
pub async fn mount_ada_query(server: &wiremock::MockServer, reads: u64) {
    use wiremock::matchers::{body_json, method, path};
    use wiremock::{Mock, ResponseTemplate};
    let person = attio("person.json");
    Mock::given(method("POST"))
        .and(path("/v2/objects/people/records/query"))
        .and(body_json(serde_json::json!({
            "filter": {"record_id": {"$in": [ids::ADA]}}, "limit": 1, "offset": 0
        })))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"data": [person["data"]]})),
        )
        .expect(reads)
        .mount(server)
        .await;
}
