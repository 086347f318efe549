//! Properties of the ingest handler over random input (proptest), on the embedded adapters:
//! whatever arrives, the handler never panics and never answers 5xx; anything it refuses
//! leaves nothing queued and no key taken; anything it accepts is queued event for event.

use http::{HeaderMap, HeaderValue, Method};
use integration_tests::faults::ManualClock;
use integration_tests::fixtures::{self, SECRET};
use proptest::prelude::*;
use relay_embedded::LocalDb;
use relay_idempotency::SqliteIdempotencyStore;
use relay_ingest::{IngestRequest, IngestService, StaticSecrets};
use relay_queue::SqliteQueue;
use relay_signature::{WebhookSecret, sign_body};

type Local = IngestService<SqliteIdempotencyStore, SqliteQueue, StaticSecrets, ManualClock>;

fn service() -> (Local, SqliteQueue, SqliteIdempotencyStore) {
    let db = LocalDb::in_memory().expect("sqlite");
    let queue = SqliteQueue::new(db.clone(), 3);
    let store = SqliteIdempotencyStore::new(db);
    let service = fixtures::service(store.clone(), queue.clone(), ManualClock::now_real());
    (service, queue, store)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Header values of every kind: absent, garbage, hex of the wrong length, 64 hex characters.
fn header_value() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        "[ -~]{0,80}".prop_map(Some),
        "[0-9a-f]{1,63}".prop_map(Some),
        "[0-9a-f]{64}".prop_map(Some),
        "[0-9]{1,12}".prop_map(Some),
    ]
}

/// JSON that is sometimes a delivery and often nearly one.
fn delivery_like() -> impl Strategy<Value = serde_json::Value> {
    let id = proptest::collection::btree_map(
        prop_oneof![
            Just("workspace_id".to_owned()),
            Just("record_id".to_owned()),
            Just("object_id".to_owned()),
            "[a-z_]{1,12}"
        ],
        prop_oneof![
            Just(serde_json::Value::Null),
            "[a-z0-9-]{0,36}".prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from)
        ],
        0..5,
    );
    let event = (
        prop_oneof![
            Just("record.updated".to_owned()),
            Just("task.created".to_owned()),
            Just("note.deleted".to_owned()),
            "[a-z.-]{0,24}"
        ],
        id,
        any::<bool>(),
    )
        .prop_map(|(event_type, id, with_type)| {
            let mut event = serde_json::json!({ "id": id });
            if with_type {
                event["event_type"] = serde_json::Value::from(event_type);
            }
            event
        });
    prop_oneof![
        proptest::collection::vec(event.clone(), 0..4)
            .prop_map(|events| serde_json::json!({"webhook_id": "w", "events": events})),
        event,
        Just(serde_json::json!([1, 2, 3])),
        Just(serde_json::json!("just a string")),
    ]
}

async fn nothing_recorded(queue: &SqliteQueue, store: &SqliteIdempotencyStore) -> bool {
    queue.depths().await.expect("depths").is_empty()
        && store.recent(1).await.expect("recent").is_empty()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn unsigned_or_forged_requests_get_a_4xx_and_leave_nothing(
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        signature in header_value(),
        legacy in header_value(),
        timestamp in header_value(),
        get in any::<bool>(),
    ) {
        let rt = runtime();
        let (service, queue, store) = service();
        let mut headers = HeaderMap::new();
        for (name, value) in [("attio-signature", signature), ("x-attio-signature", legacy), ("x-attio-timestamp", timestamp)] {
            if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(name, value);
            }
        }
        let method = if get { Method::GET } else { Method::POST };
        let response = rt.block_on(service.handle(IngestRequest { method: &method, headers: &headers, body: &body }));
        prop_assert!(response.status.is_client_error(), "{} {}", response.status, response.body);
        prop_assert!(rt.block_on(nothing_recorded(&queue, &store)));
    }

    #[test]
    fn signed_random_bytes_are_refused_cleanly(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let rt = runtime();
        let (service, queue, store) = service();
        let headers = fixtures::body_only_headers(SECRET, &body);
        let response = rt.block_on(service.handle(fixtures::post(&headers, &body)));
        // Random bytes that parse as a delivery are astronomically unlikely.
        prop_assert!(response.status.is_client_error(), "{} {}", response.status, response.body);
        prop_assert!(rt.block_on(nothing_recorded(&queue, &store)));
    }

    #[test]
    fn signed_near_deliveries_are_queued_whole_or_not_at_all(value in delivery_like()) {
        let rt = runtime();
        let (service, queue, store) = service();
        let body = serde_json::to_vec(&value).expect("json");
        let secret = WebhookSecret::new(SECRET).expect("secret");
        let mut headers = HeaderMap::new();
        headers.insert("attio-signature", HeaderValue::from_str(&sign_body(&secret, &body)).expect("hex"));
        let response = rt.block_on(service.handle(fixtures::post(&headers, &body)));
        let queued: i64 = rt.block_on(queue.depths()).expect("depths").iter().map(|(_, n)| n).sum();
        if response.status.is_success() {
            let answer: serde_json::Value = serde_json::from_str(&response.body).expect("json");
            prop_assert_eq!(answer["events"].as_i64(), Some(queued));
            prop_assert!(queued > 0);
        } else {
            prop_assert_eq!(response.status.as_u16(), 400, "{}", response.body);
            prop_assert!(rt.block_on(nothing_recorded(&queue, &store)));
        }
    }
}
