//! The HubSpot ingest over the embedded SQLite store and queue (the local run's adapters), with
//! switches that make them fail, a fixed clock, and requests signed as HubSpot signs them.

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use relay_embedded::LocalDb;
use relay_idempotency::{IdempotencyKey, IdempotencyStore, SqliteIdempotencyStore};
use relay_queue::SqliteQueue;
use relay_signature::WebhookSecret;
use relay_signature::hubspot::sign_v3;

use super::*;
use crate::testing::{Fault, FixedClock, NOW, Queue, Store};

const APP_SECRET: &str = "hs-unit-test-app-secret";
const URL: &str = "https://relay.example.com/hubspot/webhooks";

type Service = HubSpotIngest<Store, Queue, StaticHubSpotSecrets, FixedClock>;

fn service() -> Service {
    let db = LocalDb::in_memory().expect("sqlite");
    HubSpotIngest::with_clock(
        Store {
            inner: SqliteIdempotencyStore::new(db.clone()),
            fail_claim: Fault::default(),
            fail_complete: Fault::default(),
        },
        Queue {
            inner: SqliteQueue::new(db, 3),
            fail: Fault::default(),
        },
        StaticHubSpotSecrets::new(vec![
            WebhookSecret::new("hs-previous-secret").expect("secret"),
            WebhookSecret::new(APP_SECRET).expect("secret"),
        ]),
        IngestConfig::default(),
        FixedClock,
    )
}

fn event(id: u64, object: u64, occurred: i64) -> String {
    format!(
        r#"{{"eventId":{id},"subscriptionId":9,"portalId":62515,"occurredAt":{occurred},"subscriptionType":"contact.propertyChange","attemptNumber":0,"objectId":{object},"propertyName":"email","propertyValue":"a{id}@example.com","changeSource":"CRM_UI","sourceId":"userId:1"}}"#
    )
}

fn batch(events: &[String]) -> Vec<u8> {
    format!("[{}]", events.join(",")).into_bytes()
}

fn headers_signed(secret: &str, body: &[u8], ts_ms: i64) -> HeaderMap {
    let secret = WebhookSecret::new(secret).expect("secret");
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-hubspot-signature-v3",
        HeaderValue::from_str(&sign_v3(&secret, "POST", URL, body, ts_ms)).expect("b64"),
    );
    headers.insert(
        "x-hubspot-request-timestamp",
        HeaderValue::from_str(&ts_ms.to_string()).expect("ts"),
    );
    headers
}

async fn send(service: &Service, headers: &HeaderMap, body: &[u8]) -> HubSpotOutcome {
    service
        .process(HubSpotIngestRequest {
            method: &Method::POST,
            uri: URL,
            headers,
            body,
        })
        .await
}

async fn queued(service: &Service) -> Vec<(String, String)> {
    service.queue().contents().await
}

#[tokio::test]
async fn a_signed_batch_queues_each_event_once_on_the_hubspot_queue() {
    let s = service();
    let body = batch(&[event(1, 10, 1000), event(2, 11, 1001), event(3, 12, 1002)]);
    let headers = headers_signed(APP_SECRET, &body, NOW * 1000);
    assert_eq!(
        send(&s, &headers, &body).await,
        HubSpotOutcome::Queued {
            events: 3,
            duplicates: 0
        }
    );
    let on_queue = queued(&s).await;
    assert_eq!(on_queue.len(), 3);
    assert!(on_queue.iter().all(|(queue, _)| queue == "hubspot"));
    assert_eq!(on_queue[0].1, "hs:62515:9:1:1000:10");

    // The message carries the event verbatim, typed and with its portal.
    let message = &s.queue().inner.peek("hubspot").await.expect("peek")[0];
    assert_eq!(message.attributes.event_type, "contact.propertyChange");
    assert_eq!(message.attributes.workspace_id, "62515");
    assert!(
        message.body.contains(&event(1, 10, 1000)),
        "{}",
        message.body
    );

    // The same request again (HubSpot's retry): nothing queued a second time.
    assert_eq!(
        send(&s, &headers, &body).await,
        HubSpotOutcome::Duplicate { events: 3 }
    );
    assert_eq!(queued(&s).await.len(), 3);
}

#[tokio::test]
async fn a_retried_event_batched_with_new_ones_queues_only_the_new_ones() {
    let s = service();
    let first = batch(&[event(1, 10, 1000)]);
    send(&s, &headers_signed(APP_SECRET, &first, NOW * 1000), &first).await;
    // HubSpot retries event 1 (attemptNumber grows) beside a genuine new change of the same
    // contact and property: the retry is dropped, the change is not.
    let retry = event(1, 10, 1000).replace(r#""attemptNumber":0"#, r#""attemptNumber":2"#);
    let body = batch(&[retry, event(4, 10, 2000)]);
    assert_eq!(
        send(&s, &headers_signed(APP_SECRET, &body, NOW * 1000), &body).await,
        HubSpotOutcome::Queued {
            events: 1,
            duplicates: 1
        }
    );
    let keys: Vec<String> = queued(&s).await.into_iter().map(|(_, k)| k).collect();
    assert_eq!(keys, ["hs:62515:9:1:1000:10", "hs:62515:9:4:2000:10"]);
}

#[tokio::test]
async fn forged_stale_and_replayed_requests_get_401_and_queue_nothing() {
    let s = service();
    let body = batch(&[event(1, 10, 1000)]);
    let cases = [
        (
            "unknown secret",
            headers_signed("someone-else", &body, NOW * 1000),
        ),
        (
            "stale",
            headers_signed(APP_SECRET, &body, NOW * 1000 - 300_001),
        ),
        ("no headers", HeaderMap::new()),
    ];
    for (name, headers) in cases {
        let outcome = send(&s, &headers, &body).await;
        assert!(
            matches!(
                outcome,
                HubSpotOutcome::Rejected(HubSpotRejection::Signature(_))
            ),
            "{name}: {outcome:?}"
        );
        assert_eq!(
            outcome.to_response().status,
            StatusCode::UNAUTHORIZED,
            "{name}"
        );
    }
    // A valid request's signature over another body (a tampered replay).
    let other = batch(&[event(2, 10, 1000)]);
    let outcome = send(&s, &headers_signed(APP_SECRET, &body, NOW * 1000), &other).await;
    assert_eq!(outcome.to_response().status, StatusCode::UNAUTHORIZED);
    assert!(queued(&s).await.is_empty());
}

#[tokio::test]
async fn the_signed_uri_is_the_configured_target_url_when_set() {
    let s = service().with_target_url(Some(URL.to_owned()));
    let body = batch(&[event(1, 10, 1000)]);
    let headers = headers_signed(APP_SECRET, &body, NOW * 1000);
    let outcome = s
        .process(HubSpotIngestRequest {
            method: &Method::POST,
            uri: "https://internal-host/hubspot/webhooks",
            headers: &headers,
            body: &body,
        })
        .await;
    assert!(
        matches!(outcome, HubSpotOutcome::Queued { events: 1, .. }),
        "{outcome:?}"
    );
    // Without it, the same request on that host does not verify.
    let outcome = service()
        .process(HubSpotIngestRequest {
            method: &Method::POST,
            uri: "https://internal-host/hubspot/webhooks",
            headers: &headers,
            body: &body,
        })
        .await;
    assert_eq!(outcome.to_response().status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_input_after_a_valid_signature_is_a_clear_400() {
    let s = service();
    for (body, code) in [
        (&b"{\"eventId\":1}"[..], "not_an_event_array"),
        (b"[]", "no_events"),
        (b"nope", "invalid_json"),
    ] {
        let outcome = send(&s, &headers_signed(APP_SECRET, body, NOW * 1000), body).await;
        let response = outcome.to_response();
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{code}");
        assert!(response.body.contains(code), "{}", response.body);
    }
    assert!(queued(&s).await.is_empty());
}

/// The request is signed, so authentic, and HubSpot does not retry a 4xx: one odd event is
/// queued as received beside the good ones, and the request answered 2xx.
#[tokio::test]
async fn one_odd_event_is_parked_and_the_others_queued() {
    let s = service();
    let body = format!("[{},{{\"eventId\":2}}]", event(1, 10, 1000)).into_bytes();
    let outcome = send(&s, &headers_signed(APP_SECRET, &body, NOW * 1000), &body).await;
    assert!(outcome.to_response().status.is_success(), "{outcome:?}");
    let queued = queued(&s).await;
    assert_eq!(queued.len(), 2, "{queued:?}");
    assert!(queued.iter().any(|(_, key)| key == "hs:62515:9:1:1000:10"));
    assert!(
        queued
            .iter()
            .any(|(_, key)| key.starts_with("hs:unreadable:")),
        "the odd event is parked: {queued:?}"
    );
}

#[tokio::test]
async fn a_queue_failure_answers_503_and_the_retry_queues_everything() {
    let s = service();
    let body = batch(&[event(1, 10, 1000), event(2, 11, 1001)]);
    let headers = headers_signed(APP_SECRET, &body, NOW * 1000);
    s.queue().fail.set(true);
    let outcome = send(&s, &headers, &body).await;
    let response = outcome.to_response();
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.retry_after_secs, Some(5));
    s.queue().fail.set(false);
    // The keys were released: HubSpot's retry queues both at once, not after a lease.
    assert_eq!(
        send(&s, &headers, &body).await,
        HubSpotOutcome::Queued {
            events: 2,
            duplicates: 0
        }
    );
    assert_eq!(queued(&s).await.len(), 2);
}

#[tokio::test]
async fn a_store_failure_answers_503_with_nothing_queued() {
    let s = service();
    let body = batch(&[event(1, 10, 1000)]);
    s.store().fail_claim.set(true);
    let outcome = send(&s, &headers_signed(APP_SECRET, &body, NOW * 1000), &body).await;
    assert_eq!(
        outcome.to_response().status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(queued(&s).await.is_empty());
}

#[tokio::test]
async fn an_event_in_flight_elsewhere_makes_the_request_409_and_the_rest_is_queued_once() {
    let s = service();
    let body = batch(&[event(1, 10, 1000), event(2, 11, 1001)]);
    let events = parse_events(&body).expect("parse");
    // Another invocation holds event 2.
    let held = IdempotencyKey::for_hubspot_event(&events[1]);
    s.store()
        .inner
        .claim(&held, NOW, s.config().lease, s.config().retain)
        .await
        .expect("claim");
    let outcome = send(&s, &headers_signed(APP_SECRET, &body, NOW * 1000), &body).await;
    let response = outcome.to_response();
    assert_eq!(response.status, StatusCode::CONFLICT);
    assert_eq!(response.retry_after_secs, Some(60));
    // Event 1 was claimable: queued and completed now, so HubSpot's retry of the whole
    // request only needs event 2 (progress is kept across attempts).
    assert_eq!(queued(&s).await.len(), 1);
    let alone = batch(&[event(1, 10, 1000)]);
    assert_eq!(
        send(&s, &headers_signed(APP_SECRET, &alone, NOW * 1000), &alone).await,
        HubSpotOutcome::Duplicate { events: 1 }
    );
}

#[tokio::test]
async fn method_and_size_are_checked_first() {
    let s = service();
    let outcome = s
        .process(HubSpotIngestRequest {
            method: &Method::GET,
            uri: URL,
            headers: &HeaderMap::new(),
            body: b"",
        })
        .await;
    let response = outcome.to_response();
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.allow, Some("POST"));
    let big = vec![b' '; IngestConfig::default().max_body_bytes + 1];
    let outcome = send(&s, &HeaderMap::new(), &big).await;
    assert_eq!(outcome.to_response().status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn the_request_url_is_rebuilt_as_hubspot_called_it() {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("127.0.0.1:8787"));
    assert_eq!(
        request_url(&headers, "http", "/hubspot/webhooks?a=1"),
        "http://127.0.0.1:8787/hubspot/webhooks?a=1"
    );
    headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    assert_eq!(
        request_url(&headers, "http", "/hubspot/webhooks"),
        "https://127.0.0.1:8787/hubspot/webhooks"
    );
}
