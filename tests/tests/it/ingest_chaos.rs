//! Ingest under random faults: 10% of DynamoDB and SQS calls (on moto) fail, half of them
//! after the write happened. Attio's retry behaviour is simulated: a non-2xx is retried later.
//! Invariant: every delivery Attio got a 2xx for is on its queue; every other delivery
//! succeeds on a retry; nothing is silently dropped. The counts are printed.

use std::collections::HashMap;
use std::sync::Arc;

use http::StatusCode;
use integration_tests::faults::{self, ManualClock};
use integration_tests::fixtures::{self, SECRET, body_only_headers, post, with_key};
use integration_tests::moto;
use relay_events::QueuedEvent;

const DELIVERIES: usize = 150;

#[tokio::test]
async fn random_faults_never_lose_a_delivery() {
    let config = moto::sdk_config().await;
    let table = moto::fresh_table(&config).await;
    let queues = moto::fresh_queues(&config, 3).await;
    let (store, queue) = faults::randomly_faulty_aws(&config, &table, queues.urls.clone(), 0.10, 1);
    let clock = ManualClock::now_real();
    let service = Arc::new(fixtures::service(store, queue, clock.clone()));

    let samples = [
        "record-updated",
        "note-created",
        "task-updated",
        "list-entry-created",
        "batch-mixed",
    ];
    let bodies: Vec<Vec<u8>> = samples.iter().map(|s| fixtures::delivery(s)).collect();
    let events_per_body: Vec<usize> = samples
        .iter()
        .map(|s| if *s == "batch-mixed" { 4 } else { 1 })
        .collect();

    let mut pending: Vec<usize> = (0..DELIVERIES).collect();
    let mut acknowledged = [false; DELIVERIES];
    let mut attempts = 0;
    // Attio retries about ten times over three days; leases expire in between.
    for _round in 0..10 {
        let mut still = Vec::new();
        for &n in &pending {
            let body = &bodies[n % bodies.len()];
            let headers = with_key(body_only_headers(SECRET, body), &format!("chaos-{n}"));
            attempts += 1;
            let status = service.handle(post(&headers, body)).await.status;
            assert!(
                matches!(
                    status,
                    StatusCode::OK | StatusCode::CONFLICT | StatusCode::SERVICE_UNAVAILABLE
                ),
                "unexpected {status}"
            );
            if status == StatusCode::OK {
                acknowledged[n] = true;
            } else {
                still.push(n);
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        clock.advance(61);
    }
    assert!(pending.is_empty(), "deliveries never accepted: {pending:?}");

    // Attio sometimes re-sends a delivery it already got a 2xx for: deduplicated.
    for n in (0..DELIVERIES).step_by(10) {
        let body = &bodies[n % bodies.len()];
        let headers = with_key(body_only_headers(SECRET, body), &format!("chaos-{n}"));
        let status = service.handle(post(&headers, body)).await.status;
        // A duplicate is answered 200, or a retryable 409/503 under injected faults; never 4xx.
        assert!(
            !status.is_client_error() || status == StatusCode::CONFLICT,
            "{status}"
        );
    }

    let mut per_key: HashMap<String, usize> = HashMap::new();
    for messages in moto::drain_all(&config, &queues.urls).await.values() {
        for m in messages {
            *per_key
                .entry(
                    QueuedEvent::from_body(&m.body)
                        .expect("body")
                        .idempotency_key,
                )
                .or_default() += 1;
        }
    }
    let mut lost = 0;
    let mut duplicates = 0;
    for n in 0..DELIVERIES {
        let expected = events_per_body[n % bodies.len()];
        let got = per_key.get(&format!("h:chaos-{n}")).copied().unwrap_or(0);
        if got < expected {
            lost += 1;
        }
        duplicates += got.saturating_sub(expected);
    }
    let faults = service.store().injected() + service.queue().plan.injected();
    println!(
        "chaos: deliveries={DELIVERIES} attempts={attempts} acknowledged={} faults_injected={faults} duplicates_sent={duplicates} lost={lost}",
        acknowledged.iter().filter(|a| **a).count()
    );
    assert!(faults > 10, "the test injected faults: {faults}");
    assert_eq!(lost, 0, "every acknowledged delivery is queued");
}
