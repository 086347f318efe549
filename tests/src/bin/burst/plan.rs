//! The event stream: N `record.updated` deliveries over M people, the same for every design,
//! and sending it as Attio does — each update made in the Attio stand-in just before its
//! delivery goes out, signed with the webhook secret, with its own `Idempotency-Key`, at a
//! given rate or as fast as ingest answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use relay_signature::{WebhookSecret, sign_body};
use serde_json::json;

use crate::attio::{AttioStandin, JOB_TITLE_ATTRIBUTE_ID, PEOPLE_OBJECT_ID, WORKSPACE_ID};

/// Which record each event updates, in sending order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub record_ids: Vec<String>,
    /// event index → index into `record_ids`.
    pub events: Vec<usize>,
}

impl Plan {
    /// `events` updates spread over `records` people: every person gets ⌊N/M⌋ or ⌈N/M⌉, in
    /// an order shuffled from `seed` (an import touches people in no particular order).
    pub fn new(events: usize, records: usize, seed: u64) -> Self {
        let record_ids = (0..records)
            .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
            .collect();
        let mut order: Vec<usize> = (0..events).map(|i| i % records.max(1)).collect();
        fastrand::Rng::with_seed(seed).shuffle(&mut order);
        Self {
            record_ids,
            events: order,
        }
    }

    /// The version each record ends at: the number of updates it gets.
    pub fn final_versions(&self) -> Vec<u64> {
        let mut versions = vec![0; self.record_ids.len()];
        for &record in &self.events {
            versions[record] += 1;
        }
        versions
    }

    /// The delivery for event `index`, as Attio sends it: one event, ids only.
    pub fn delivery(&self, index: usize) -> Vec<u8> {
        let record_id = &self.record_ids[self.events[index]];
        let body = json!({
            "webhook_id": "6b0d5a4e-8d9e-4a57-9a3e-2f0c1d5b7a10",
            "events": [{
                "event_type": "record.updated",
                "id": {"workspace_id": WORKSPACE_ID, "object_id": PEOPLE_OBJECT_ID,
                       "record_id": record_id, "attribute_id": JOB_TITLE_ATTRIBUTE_ID},
                "actor": {"type": "workspace-member", "id": "061b809a-2423-4955-94c9-07c16d05be79"}
            }]
        });
        serde_json::to_vec(&body).expect("a delivery serialises")
    }
}

/// What sending measured.
#[derive(Debug, Default)]
pub struct Sent {
    pub started: Option<Instant>,
    /// When the last delivery was acknowledged.
    pub acknowledged_at: Option<Instant>,
    /// record index → when its last update was made (and its delivery sent).
    pub last_update: Vec<Option<Instant>>,
    pub failed: u64,
}

/// Progress shared with the progress line.
#[derive(Debug, Default)]
pub struct SendProgress {
    pub sent: AtomicUsize,
    pub acknowledged: AtomicUsize,
    pub retried: AtomicU64,
}

/// Sends every event of `plan` to `url`. `rate` deliveries per second, or `None` for as fast
/// as `concurrency` connections get answers. A delivery not answered 2xx is sent again with
/// the same key after a short wait (as Attio retries), up to 5 times.
pub async fn send(
    plan: Arc<Plan>,
    attio: Arc<AttioStandin>,
    url: reqwest::Url,
    secret: WebhookSecret,
    rate: Option<f64>,
    concurrency: usize,
    progress: Arc<SendProgress>,
) -> anyhow::Result<Sent> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .context("HTTP client")?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let next = Arc::new(AtomicUsize::new(0));
    let last_update = Arc::new(std::sync::Mutex::new(vec![None; plan.record_ids.len()]));
    let started = Instant::now();
    let workers = match rate {
        // Paced: enough senders that a slow answer never holds the schedule back.
        Some(_) => concurrency.max(4),
        None => concurrency.max(1),
    };
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (plan, attio, url, secret, client, run) = (
            Arc::clone(&plan),
            Arc::clone(&attio),
            url.clone(),
            secret.clone(),
            client.clone(),
            run.clone(),
        );
        let (next, last_update, progress) = (
            Arc::clone(&next),
            Arc::clone(&last_update),
            Arc::clone(&progress),
        );
        tasks.push(tokio::spawn(async move {
            let mut failed = 0u64;
            loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                if index >= plan.events.len() {
                    return failed;
                }
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64(index as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let record = plan.events[index];
                // Attio changes the record, then sends the webhook.
                attio.update(&plan.record_ids[record]);
                last_update.lock().expect("last update")[record] = Some(Instant::now());
                let body = plan.delivery(index);
                let signature = sign_body(&secret, &body);
                let key = format!("burst-{run}-{index:07}");
                progress.sent.fetch_add(1, Ordering::Relaxed);
                let mut ok = false;
                for attempt in 0..5u32 {
                    if attempt > 0 {
                        progress.retried.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    }
                    let answer = client
                        .post(url.clone())
                        .header("content-type", "application/json")
                        .header("attio-signature", &signature)
                        .header("x-attio-signature", &signature)
                        .header("idempotency-key", &key)
                        .body(body.clone())
                        .send()
                        .await;
                    if answer.is_ok_and(|a| a.status().is_success()) {
                        ok = true;
                        break;
                    }
                }
                if ok {
                    progress.acknowledged.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed += 1;
                }
            }
        }));
    }
    let mut failed = 0;
    for task in tasks {
        failed += task.await.context("a sender panicked")?;
    }
    let last_update = last_update.lock().expect("last update").clone();
    Ok(Sent {
        started: Some(started),
        acknowledged_at: Some(Instant::now()),
        last_update,
        failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_gets_its_share_of_the_updates() {
        let plan = Plan::new(5_000, 1_000, 7);
        assert_eq!(plan.events.len(), 5_000);
        assert!(plan.final_versions().iter().all(|&v| v == 5));
        let uneven = Plan::new(7, 3, 7);
        let mut versions = uneven.final_versions();
        versions.sort_unstable();
        assert_eq!(versions, [2, 2, 3]);
        // Shuffled, yet the same for the same seed: every design gets the same stream.
        assert_ne!(plan.events[..10], (0..10).collect::<Vec<_>>()[..]);
        assert_eq!(plan.events, Plan::new(5_000, 1_000, 7).events);
    }

    #[test]
    fn a_delivery_is_a_record_updated_event_ingest_reads() {
        let plan = Plan::new(3, 2, 1);
        let body = plan.delivery(1);
        let delivery = relay_events::Delivery::parse(&body).expect("parses");
        assert_eq!(delivery.events.len(), 1);
        assert_eq!(
            delivery.events[0].event_type,
            relay_events::EventType::RecordUpdated
        );
        assert_eq!(
            delivery.events[0].family(),
            relay_events::EventFamily::Records
        );
    }
}
