//! The ingest handler against real SQS and DynamoDB protocols (moto_server), with faults
//! injected between the steps. The invariant under test: every delivery answered 2xx is on its
//! queue; every other delivery leaves nothing marked done, so Attio's retry queues it once.

use std::collections::HashMap;
use std::sync::Arc;

use aws_config::SdkConfig;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use integration_tests::faults::{Fault, FaultyQueue, FaultyStore, ManualClock};
use integration_tests::fixtures::{
    self, SECRET, body_only_headers, post, timestamped_headers, with_key,
};
use integration_tests::moto::{self, TestQueues};
use relay_events::{EventFamily, QueuedEvent};
use relay_idempotency::DynamoDbStore;
use relay_ingest::{IngestRequest, IngestService, StaticSecrets};
use relay_queue::SqsQueue;

type MotoService =
    IngestService<FaultyStore<DynamoDbStore>, FaultyQueue<SqsQueue>, StaticSecrets, ManualClock>;

struct Harness {
    config: SdkConfig,
    table: String,
    queues: TestQueues,
    clock: ManualClock,
    service: Arc<MotoService>,
}

impl Harness {
    async fn new() -> Self {
        let config = moto::sdk_config().await;
        let table = moto::fresh_table(&config).await;
        let queues = moto::fresh_queues(&config, 3).await;
        let clock = ManualClock::now_real();
        let store = FaultyStore::new(DynamoDbStore::new(
            aws_sdk_dynamodb::Client::new(&config),
            &table,
        ));
        let queue = FaultyQueue::new(SqsQueue::new(
            aws_sdk_sqs::Client::new(&config),
            queues.urls.clone(),
        ));
        let service = Arc::new(fixtures::service(store, queue, clock.clone()));
        Self {
            config,
            table,
            queues,
            clock,
            service,
        }
    }

    /// The status ingest answers a delivery with.
    async fn status(&self, headers: &HeaderMap, body: &[u8]) -> StatusCode {
        self.send(headers, body).await.0
    }

    /// Sends a delivery and asserts it is accepted with `outcome` (`queued` or `duplicate`).
    async fn accepted_as(&self, headers: &HeaderMap, body: &[u8], outcome: &str) {
        let (status, json) = self.send(headers, body).await;
        assert_eq!(
            (status, json["status"].as_str()),
            (StatusCode::OK, Some(outcome)),
            "{json}"
        );
    }

    /// How many messages are on `family`'s queue (drained).
    async fn queued_on(&self, family: EventFamily) -> usize {
        self.drain().await[&family].len()
    }

    async fn send(&self, headers: &HeaderMap, body: &[u8]) -> (StatusCode, serde_json::Value) {
        let response = self.service.handle(post(headers, body)).await;
        let json = serde_json::from_str(&response.body).expect("responses are JSON");
        (response.status, json)
    }

    /// Drains every queue; returns messages per family.
    async fn drain(&self) -> HashMap<EventFamily, Vec<moto::Received>> {
        moto::drain_all(&self.config, &self.queues.urls).await
    }

    async fn total_queued(&self) -> usize {
        self.drain().await.values().map(Vec::len).sum()
    }

    async fn items(&self) -> Vec<(String, String)> {
        moto::table_items(&self.config, &self.table).await
    }
}

/// The sample delivery `name`, signed with the fixture secret and sent with Attio's
/// `Idempotency-Key` header `key`.
fn keyed(name: &str, key: &str) -> (Vec<u8>, HeaderMap) {
    let body = fixtures::delivery(name);
    let headers = with_key(body_only_headers(SECRET, &body), key);
    (body, headers)
}

#[tokio::test]
async fn a_valid_delivery_is_queued_once_on_its_family_queue() {
    let h = Harness::new().await;
    let (body, headers) = keyed("record-updated", "attio-msg-1");

    let (status, json) = h.send(&headers, &body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["status"], "queued");
    assert_eq!(json["idempotency_key"], "h:attio-msg-1");

    let mut queued = h.drain().await;
    let records = queued.remove(&EventFamily::Records).unwrap_or_default();
    assert_eq!(records.len(), 1);
    assert!(
        queued.values().all(Vec::is_empty),
        "nothing on other queues: {queued:?}"
    );

    let message = QueuedEvent::from_body(&records[0].body).expect("queued body parses");
    assert_eq!(message.event_type.as_str(), "record.updated");
    assert_eq!(message.idempotency_key, "h:attio-msg-1");
    // The event is Attio's JSON exactly as it appeared in the signed body.
    let body_text = String::from_utf8(body.clone()).expect("utf8");
    assert!(
        body_text.contains(message.event.get()),
        "event kept verbatim"
    );
    assert_eq!(records[0].attributes["event_type"], "record.updated");
    assert_eq!(records[0].attributes["idempotency_key"], "h:attio-msg-1");
    assert!(!records[0].attributes["workspace_id"].is_empty());

    assert_eq!(
        h.items().await,
        vec![("h:attio-msg-1".to_owned(), "COMPLETED".to_owned())]
    );
}

#[tokio::test]
async fn five_concurrent_copies_of_one_delivery_queue_it_once() {
    {
        let h = Harness::new().await;
        let body = fixtures::delivery("batch-mixed");
        let headers = with_key(body_only_headers(SECRET, &body), "attio-concurrent");
        let sends = (0..5).map(|_| {
            let service = Arc::clone(&h.service);
            let (headers, body) = (headers.clone(), body.clone());
            tokio::spawn(async move { service.handle(post(&headers, &body)).await.status })
        });
        let statuses: Vec<StatusCode> = futures::future::join_all(sends)
            .await
            .into_iter()
            .map(|r| r.expect("task"))
            .collect();
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT),
            "{statuses:?}"
        );
        // Attio retries the 409s later: they now see the completed key.
        for status in &statuses {
            if *status == StatusCode::CONFLICT {
                h.accepted_as(&headers, &body, "duplicate").await;
            }
        }
        let queued = h.drain().await;
        let counts: HashMap<_, _> = queued.iter().map(|(f, m)| (*f, m.len())).collect();
        assert_eq!(counts[&EventFamily::Records], 1, "{counts:?}");
        assert_eq!(counts[&EventFamily::ListEntries], 1);
        assert_eq!(counts[&EventFamily::Notes], 1);
        assert_eq!(counts[&EventFamily::Tasks], 1);
        assert_eq!(counts[&EventFamily::Other], 0);
    }
}

/// Once the signature has passed the delivery is authentic: one event that does not read (no
/// `workspace_id`) is parked on `other`, the good ones are queued, and Attio gets its 2xx.
#[tokio::test]
async fn an_authentic_delivery_with_one_odd_event_queues_the_good_ones_and_parks_the_odd_one() {
    let h = Harness::new().await;
    let good = fixtures::delivery("record-updated");
    let good: serde_json::Value = serde_json::from_slice(&good).expect("sample");
    let body = serde_json::to_vec(&serde_json::json!({
        "webhook_id": "w-odd",
        "events": [
            good["events"][0].clone(),
            {"event_type": "task.created", "id": {"task_id": "t-without-workspace"}},
        ]
    }))
    .expect("json");
    let headers = with_key(body_only_headers(SECRET, &body), "attio-odd-1");
    let (status, json) = h.send(&headers, &body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["events"], 2, "{json}");
    let queued = h.drain().await;
    assert_eq!(queued[&EventFamily::Records].len(), 1);
    let parked = &queued[&EventFamily::Other];
    assert_eq!(parked.len(), 1);
    assert!(
        parked[0].body.contains("t-without-workspace"),
        "the odd event is parked verbatim: {}",
        parked[0].body
    );
    assert_eq!(parked[0].attributes["event_type"], "task.created");
    assert!(!parked[0].attributes.contains_key("workspace_id"));
}

#[tokio::test]
async fn every_sample_delivery_lands_on_the_queue_of_its_family() {
    let expected: &[(&str, &[(EventFamily, usize)])] = &[
        ("record-created", &[(EventFamily::Records, 1)]),
        ("record-updated", &[(EventFamily::Records, 1)]),
        ("record-deleted", &[(EventFamily::Records, 1)]),
        ("record-merged", &[(EventFamily::Records, 1)]),
        ("list-entry-created", &[(EventFamily::ListEntries, 1)]),
        ("list-entry-updated", &[(EventFamily::ListEntries, 1)]),
        ("list-entry-deleted", &[(EventFamily::ListEntries, 1)]),
        ("note-created", &[(EventFamily::Notes, 1)]),
        ("note-updated", &[(EventFamily::Notes, 1)]),
        ("note-deleted", &[(EventFamily::Notes, 1)]),
        ("note-content-updated", &[(EventFamily::Notes, 1)]),
        ("task-created", &[(EventFamily::Tasks, 1)]),
        ("task-updated", &[(EventFamily::Tasks, 1)]),
        ("task-deleted", &[(EventFamily::Tasks, 1)]),
        ("comment-created", &[(EventFamily::Other, 1)]),
        ("list-created", &[(EventFamily::Other, 1)]),
        ("object-attribute-created", &[(EventFamily::Records, 1)]),
        ("list-attribute-updated", &[(EventFamily::ListEntries, 1)]),
        ("workspace-member-created", &[(EventFamily::Other, 1)]),
        ("call-recording-created", &[(EventFamily::Other, 1)]),
        ("unknown-future-event", &[(EventFamily::Other, 1)]),
        ("bare-event", &[(EventFamily::Records, 1)]),
        (
            "batch-mixed",
            &[
                (EventFamily::Records, 1),
                (EventFamily::ListEntries, 1),
                (EventFamily::Notes, 1),
                (EventFamily::Tasks, 1),
            ],
        ),
    ];
    let samples = fixtures::all_deliveries();
    assert_eq!(
        samples.len(),
        expected.len(),
        "a new sample needs a routing expectation"
    );

    let h = Harness::new().await;
    for (name, want) in expected {
        let body = fixtures::delivery(name);
        let (status, json) = h.send(&body_only_headers(SECRET, &body), &body).await;
        assert_eq!(status, StatusCode::OK, "{name}: {json}");
        let got: HashMap<EventFamily, usize> = h
            .drain()
            .await
            .into_iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(f, m)| (f, m.len()))
            .collect();
        let want: HashMap<EventFamily, usize> = want.iter().copied().collect();
        assert_eq!(got, want, "{name}");
    }
}

#[tokio::test]
async fn bad_input_gets_a_4xx_and_queues_nothing() {
    let h = Harness::new().await;
    let body = fixtures::delivery("record-updated");
    let now = h.clock.get();
    let signed = |b: &[u8]| body_only_headers(SECRET, b);
    let oversized = {
        let mut big = b"{\"webhook_id\":\"w\",\"events\":[],\"pad\":\"".to_vec();
        big.resize(300 * 1024, b'x');
        big.extend_from_slice(b"\"}");
        big
    };
    let mut conflicting = signed(&body);
    conflicting.insert(
        "x-attio-signature",
        HeaderValue::from_static(
            "0000000000000000000000000000000000000000000000000000000000000000",
        ),
    );
    let mut truncated = signed(&body);
    truncated.remove("x-attio-signature");
    truncated.insert("attio-signature", HeaderValue::from_static("abcdef"));

    let cases: Vec<(&str, HeaderMap, Vec<u8>, StatusCode, &str)> = vec![
        (
            "no signature",
            HeaderMap::new(),
            body.clone(),
            StatusCode::UNAUTHORIZED,
            "missing_signature",
        ),
        (
            "wrong secret",
            body_only_headers("not-the-secret", &body),
            body.clone(),
            StatusCode::UNAUTHORIZED,
            "signature_mismatch",
        ),
        (
            "body changed after signing",
            signed(&body),
            [&body[..], b" "].concat(),
            StatusCode::UNAUTHORIZED,
            "signature_mismatch",
        ),
        (
            "truncated signature",
            truncated,
            body.clone(),
            StatusCode::UNAUTHORIZED,
            "malformed_signature",
        ),
        (
            "headers disagree",
            conflicting,
            body.clone(),
            StatusCode::UNAUTHORIZED,
            "conflicting_signatures",
        ),
        (
            "stale timestamp",
            timestamped_headers(SECRET, now - 301, &body),
            body.clone(),
            StatusCode::UNAUTHORIZED,
            "stale_timestamp",
        ),
        (
            "future timestamp",
            timestamped_headers(SECRET, now + 3600, &body),
            body.clone(),
            StatusCode::UNAUTHORIZED,
            "future_timestamp",
        ),
        (
            "malformed JSON",
            signed(b"{\"events\": [}"),
            b"{\"events\": [}".to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "not a delivery",
            signed(b"[1,2,3]"),
            b"[1,2,3]".to_vec(),
            StatusCode::BAD_REQUEST,
            "not_a_delivery",
        ),
        (
            "no events",
            signed(b"{\"webhook_id\":\"w\",\"events\":[]}"),
            b"{\"webhook_id\":\"w\",\"events\":[]}".to_vec(),
            StatusCode::BAD_REQUEST,
            "no_events",
        ),
        (
            "oversized body",
            signed(&oversized),
            oversized.clone(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
    ];
    for (name, headers, body, status, code) in cases {
        let (got, json) = h.send(&headers, &body).await;
        assert_eq!(
            (got, json["error"].as_str()),
            (status, Some(code)),
            "{name}: {json}"
        );
        assert!(
            json["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name} explains itself"
        );
    }
    let get = h
        .service
        .handle(IngestRequest {
            method: &Method::GET,
            headers: &signed(&body),
            body: &body,
        })
        .await;
    assert_eq!(
        (get.status, get.allow),
        (StatusCode::METHOD_NOT_ALLOWED, Some("POST"))
    );

    assert_eq!(h.total_queued().await, 0, "nothing queued for bad input");
    assert!(
        h.items().await.is_empty(),
        "no idempotency key taken for bad input"
    );
}

#[tokio::test]
async fn responses_never_echo_secrets_or_signatures() {
    let h = Harness::new().await;
    let body = fixtures::delivery("record-updated");
    let headers = body_only_headers("wrong-secret", &body);
    let signature = headers["attio-signature"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let response = h.service.handle(post(&headers, &body)).await;
    assert!(!response.body.contains(&signature[..16]));
    assert!(!response.body.contains(SECRET) && !response.body.contains("wrong-secret"));
}

#[tokio::test]
async fn timestamped_deliveries_are_accepted_and_deduplicated_by_their_header() {
    let h = Harness::new().await;
    let body = fixtures::delivery("note-created");
    let headers = with_key(
        timestamped_headers(SECRET, h.clock.get() - 5, &body),
        "attio-ts-1",
    );
    assert_eq!(h.status(&headers, &body).await, StatusCode::OK);
    h.accepted_as(&headers, &body, "duplicate").await;
    assert_eq!(h.queued_on(EventFamily::Notes).await, 1);
}

/// Events carry ids only: a deal stage moved A→B and then B→C sends two byte-identical bodies,
/// signed in the same second when quick. Without Attio's `Idempotency-Key` nothing tells the
/// second change from a retry, so both are queued (the consumer re-reads current state; a
/// swallowed one would leave HubSpot at B).
#[tokio::test]
async fn without_the_header_a_second_identical_change_is_queued_not_swallowed() {
    let h = Harness::new().await;
    let body = fixtures::delivery("record-updated");
    for headers in [
        body_only_headers(SECRET, &body),
        timestamped_headers(SECRET, h.clock.get() - 5, &body),
    ] {
        h.accepted_as(&headers, &body, "queued").await;
        h.accepted_as(&headers, &body, "queued").await;
    }
    assert_eq!(h.queued_on(EventFamily::Records).await, 4);
    assert!(
        h.items().await.is_empty(),
        "nothing claimed without the header"
    );
}

#[tokio::test]
async fn an_sqs_failure_after_the_claim_answers_503_releases_the_key_and_the_retry_queues_once() {
    let h = Harness::new().await;
    let (body, headers) = keyed("task-updated", "attio-sqs-down");

    h.service.queue().plan.then(Fault::Fail);
    let (status, json) = h.send(&headers, &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    assert_eq!(h.service.queue().plan.injected(), 1);
    assert!(
        h.items().await.is_empty(),
        "the key was released, not left done"
    );
    assert_eq!(h.total_queued().await, 0);

    h.accepted_as(&headers, &body, "queued").await;
    assert_eq!(h.queued_on(EventFamily::Tasks).await, 1);
}

#[tokio::test]
async fn a_failure_to_release_still_answers_503_and_the_retry_succeeds_after_the_lease() {
    let h = Harness::new().await;
    let (body, headers) = keyed("task-created", "attio-release-fails");
    h.service.queue().plan.then(Fault::Fail);
    h.service.store().release.then(Fault::Fail);

    assert_eq!(
        h.status(&headers, &body).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        h.items().await,
        vec![("h:attio-release-fails".into(), "IN_PROGRESS".into())]
    );
    assert_eq!(
        h.status(&headers, &body).await,
        StatusCode::CONFLICT,
        "lease still live"
    );
    h.clock.advance(61);
    assert_eq!(h.status(&headers, &body).await, StatusCode::OK);
    assert_eq!(h.queued_on(EventFamily::Tasks).await, 1);
}

#[tokio::test]
async fn a_crash_between_claim_and_send_is_recovered_after_the_lease() {
    let h = Harness::new().await;
    let (body, headers) = keyed("record-created", "attio-crash");

    // The first invocation claims the key, then dies inside the SQS call.
    h.service.queue().plan.then(Fault::Hang);
    let doomed = {
        let service = Arc::clone(&h.service);
        let (headers, body) = (headers.clone(), body.clone());
        tokio::spawn(async move { service.handle(post(&headers, &body)).await })
    };
    h.service.queue().plan.hanging.notified().await;
    doomed.abort();
    assert!(doomed.await.is_err_and(|e| e.is_cancelled()));
    assert_eq!(
        h.items().await,
        vec![("h:attio-crash".into(), "IN_PROGRESS".into())]
    );

    // Attio retries while the lease is live: told to come back, nothing queued.
    let response = h.service.handle(post(&headers, &body)).await;
    assert_eq!(response.status, StatusCode::CONFLICT);
    assert!(response.retry_after_secs.is_some_and(|s| s > 0 && s <= 60));
    assert_eq!(h.total_queued().await, 0);

    // After the lease, the retry owns the key and queues the event once.
    h.clock.advance(61);
    h.accepted_as(&headers, &body, "queued").await;
    assert_eq!(h.queued_on(EventFamily::Records).await, 1);
    assert_eq!(
        h.items().await,
        vec![("h:attio-crash".into(), "COMPLETED".into())]
    );
}

#[tokio::test]
async fn a_dynamodb_failure_answers_503_and_queues_nothing() {
    let h = Harness::new().await;
    let body = fixtures::delivery("record-deleted");
    let headers = with_key(body_only_headers(SECRET, &body), "attio-ddb-down");
    h.service.store().claim.then(Fault::Fail);
    assert_eq!(
        h.status(&headers, &body).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(h.total_queued().await, 0);
    assert_eq!(h.status(&headers, &body).await, StatusCode::OK);
    assert_eq!(h.total_queued().await, 1);
}

#[tokio::test]
async fn a_missing_table_is_a_503_from_the_real_protocol() {
    let config = moto::sdk_config().await;
    let queues = moto::fresh_queues(&config, 3).await;
    let service = fixtures::service(
        DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&config), "no-such-table"),
        SqsQueue::new(aws_sdk_sqs::Client::new(&config), queues.urls.clone()),
        ManualClock::now_real(),
    );
    let body = fixtures::delivery("record-updated");
    let response = service
        .handle(post(
            &with_key(body_only_headers(SECRET, &body), "attio-no-table"),
            &body,
        ))
        .await;
    fixtures::assert_retry_later(&response);
    let queued: usize = moto::drain_all(&config, &queues.urls)
        .await
        .values()
        .map(Vec::len)
        .sum();
    assert_eq!(queued, 0);
}

#[tokio::test]
async fn a_missing_queue_is_a_503_and_releases_the_key() {
    let config = moto::sdk_config().await;
    let table = moto::fresh_table(&config).await;
    let queues = moto::fresh_queues(&config, 3).await;
    let broken = queues.urls.clone().with(
        EventFamily::Notes,
        format!("{}/000000000000/no-such-queue", moto::endpoint()),
    );
    let service = fixtures::service(
        DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&config), &table),
        SqsQueue::new(aws_sdk_sqs::Client::new(&config), broken),
        ManualClock::now_real(),
    );
    let body = fixtures::delivery("note-created");
    let response = service
        .handle(post(&body_only_headers(SECRET, &body), &body))
        .await;
    fixtures::assert_retry_later(&response);
    assert!(moto::table_items(&config, &table).await.is_empty());
}

#[tokio::test]
async fn a_failed_completion_still_answers_200_because_the_events_are_queued() {
    let h = Harness::new().await;
    let (body, headers) = keyed("list-entry-created", "attio-complete-fails");
    h.service.store().complete.then(Fault::Fail);

    h.accepted_as(&headers, &body, "queued").await;
    assert_eq!(h.queued_on(EventFamily::ListEntries).await, 1, "not lost");
    // The key stays leased, then a retry may queue again: a duplicate, never a loss.
    assert_eq!(h.status(&headers, &body).await, StatusCode::CONFLICT);
    h.clock.advance(61);
    assert_eq!(h.status(&headers, &body).await, StatusCode::OK);
    assert_eq!(h.queued_on(EventFamily::ListEntries).await, 1);
    assert_eq!(
        h.items().await,
        vec![("h:attio-complete-fails".into(), "COMPLETED".into())]
    );
}

#[tokio::test]
async fn an_sqs_answer_lost_after_the_send_is_retried_as_a_duplicate_not_a_loss() {
    let h = Harness::new().await;
    let (body, headers) = keyed("note-updated", "attio-answer-lost");
    h.service.queue().plan.then(Fault::FailAfter);
    assert_eq!(
        h.status(&headers, &body).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(h.status(&headers, &body).await, StatusCode::OK);
    // At-least-once: the event is there (twice); consumers are idempotent.
    assert_eq!(h.queued_on(EventFamily::Notes).await, 2);
}

#[tokio::test]
async fn a_rotated_secret_and_the_previous_one_are_both_accepted() {
    let h = Harness::new().await;
    for (secret, name) in [
        (SECRET, "task-created"),
        (fixtures::PREVIOUS_SECRET, "task-deleted"),
    ] {
        let body = fixtures::delivery(name);
        assert_eq!(
            h.send(&body_only_headers(secret, &body), &body).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(h.queued_on(EventFamily::Tasks).await, 2);
}
