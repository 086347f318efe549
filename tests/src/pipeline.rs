//! The whole pipeline in one process, for the pipeline tests (`pipeline_chaos`, `first_sync`):
//! Attio's side of ingest (send every delivery, retry whatever did not get a 2xx), Lambda's
//! SQS event source mapping for the consumers (partial batch responses, redrive to the DLQ),
//! and the consumers' sync context over the real Attio and HubSpot clients pointed at the
//! stand-ins in [`crate::fake_apis`]. Each can kill a share of requests or invocations at a
//! random point, as a crashed process would.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use aws_config::SdkConfig;
use http::StatusCode;
use relay_attio::{AttioClient, AttioConfig};
use relay_consumer::{QueueHandler, SqsDeadLetters, handle_sqs_event};
use relay_crm::{HubSpotConfig, HubSpotSink};
use relay_events::EventFamily;
use relay_events::clock::{Clock, UnixSeconds};
use relay_idempotency::DynamoDbStore;
use relay_mappings::DynamoDbMappings;
use relay_queue::SqsQueue;
use relay_sync::{FieldMapping, SyncContext};
use serde_json::{Value, json};

use crate::event_source::{self, EventSource};
use crate::faults::{FaultyQueue, FaultyStore, ManualClock};
use crate::fixtures::{SECRET, body_only_headers, post, with_key};
use crate::moto;

pub mod two_way;

/// Lambda's redelivery after a killed invocation: the queue's visibility timeout (SAM: 360 s).
pub const VISIBILITY_TIMEOUT_SECS: i64 = 360;

/// The consumers' clock, moved by the test: Lambda redelivers a failed or killed invocation's
/// messages only after the visibility timeout, by which time a create reservation has lapsed
/// (`CREATE_LEASE`) and an earlier create attempt has settled (`CREATE_SETTLE`); tombstones
/// are read on it too, so one outlives every redelivery the test makes. Real seconds plus the
/// test's offset.
#[derive(Debug, Clone)]
pub struct ShiftedClock {
    offset: Arc<AtomicI64>,
}

impl Clock for ShiftedClock {
    fn now(&self) -> UnixSeconds {
        relay_events::clock::unix_now() + self.offset.load(Ordering::SeqCst)
    }
}

/// The consumers' context in the pipeline tests.
pub type Ctx = SyncContext<HubSpotSink, DynamoDbMappings>;

/// Ingest on moto, with its DynamoDB and SQS adapters wrapped to fail on command.
pub type Ingest = relay_ingest::IngestService<
    FaultyStore<DynamoDbStore>,
    FaultyQueue<SqsQueue>,
    relay_ingest::StaticSecrets,
    ManualClock,
>;

/// A delivery body as Attio sends it, with one event.
pub fn delivery(event: Value) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"webhook_id": "5f4c6e0c-0a3b-4c2e-9d38-5b6f0c1d2e3f", "events": [event]}),
    )
    .expect("json")
}

/// The workspace member every test event is made by.
pub fn actor() -> Value {
    json!({"type": "workspace-member", "id": "061b809a-2423-4955-94c9-07c16d05be79"})
}

/// Counts of what a run did, printed at the end.
#[derive(Debug, Default)]
pub struct Counts {
    pub ingest_attempts: AtomicUsize,
    pub ingest_killed: AtomicUsize,
    pub invocations: AtomicUsize,
    pub consumers_killed: AtomicUsize,
    pub redeliveries: AtomicUsize,
}

impl Counts {
    pub fn get(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

/// Attio's side of ingest: send every delivery (idempotency key `{key_prefix}-{n}`), kill
/// `kill_share` of the requests at a random point, retry whatever did not get a 2xx.
pub async fn deliver_with_retries(
    service: &Arc<Ingest>,
    clock: &ManualClock,
    bodies: &[Vec<u8>],
    key_prefix: &str,
    kill_share: f64,
    counts: &Counts,
) {
    let mut rng = fastrand::Rng::with_seed(11);
    let send = |n: usize| {
        let body = &bodies[n];
        let headers = with_key(
            body_only_headers(SECRET, body),
            &format!("{key_prefix}-{n}"),
        );
        async move { service.handle(post(&headers, body)).await.status }
    };
    Sender::new("Attio delivery", kill_share, clock, counts)
        .until_acknowledged(bodies.len(), &mut rng, send)
        .await;
}

/// A webhook sender's retries (Attio's or HubSpot's), the same for both ingests: `kill_share`
/// of the requests killed at a random point (the process dies: the sender sees no answer),
/// whatever did not get a 2xx sent again after moving `clock` past the idempotency lease.
#[derive(Debug)]
pub struct Sender<'a> {
    /// What a request is, in the failure messages.
    pub what: &'static str,
    pub kill_share: f64,
    pub clock: &'a ManualClock,
    pub counts: &'a Counts,
}

impl<'a> Sender<'a> {
    pub fn new(
        what: &'static str,
        kill_share: f64,
        clock: &'a ManualClock,
        counts: &'a Counts,
    ) -> Self {
        Self {
            what,
            kill_share,
            clock,
            counts,
        }
    }

    /// Sends requests `0..requests` with `send` (which answers the ingest's status) until each
    /// got a 2xx, at most 12 rounds; a 4xx other than 409 fails the test. `rng` decides the
    /// kills, so a seeded test replays the same ones.
    pub async fn until_acknowledged<F: Future<Output = StatusCode>>(
        &self,
        requests: usize,
        rng: &mut fastrand::Rng,
        mut send: impl FnMut(usize) -> F,
    ) {
        let what = self.what;
        let mut pending: Vec<usize> = (0..requests).collect();
        for _round in 0..12 {
            let mut still = Vec::new();
            for &n in &pending {
                self.counts.ingest_attempts.fetch_add(1, Ordering::SeqCst);
                let handled = send(n);
                let status = if rng.f64() < self.kill_share {
                    let budget = Duration::from_micros(rng.u64(0..20_000));
                    match tokio::time::timeout(budget, handled).await {
                        Ok(status) => status,
                        Err(_) => {
                            self.counts.ingest_killed.fetch_add(1, Ordering::SeqCst);
                            StatusCode::BAD_GATEWAY
                        }
                    }
                } else {
                    handled.await
                };
                assert!(
                    !status.is_client_error() || status == StatusCode::CONFLICT,
                    "{what} {n} refused with {status}"
                );
                if !status.is_success() {
                    still.push(n);
                }
            }
            pending = still;
            if pending.is_empty() {
                return;
            }
            // Both senders back off for minutes: past the idempotency lease of a killed request
            // (and within HubSpot's 5-minute signature window).
            self.clock.advance(61);
        }
        panic!("{what}s never acknowledged: {pending:?}");
    }
}

/// One consumer function and the queue Lambda drives it from.
#[derive(Debug)]
pub struct Consumer<'a, H> {
    pub queue_url: &'a str,
    pub dlq_url: &'a str,
    pub handler: &'a H,
    /// Share of invocations killed at a random point.
    pub kill_share: f64,
    pub seed: u64,
}

/// Lambda's SQS event source mapping for one queue: receive a batch, invoke, delete what
/// succeeded, make the failures visible again (here at once, instead of after the visibility
/// timeout). Killed invocations delete nothing. Both move `mapping_clock` past the visibility
/// timeout, when Lambda would redeliver: the consumers see the time that would have passed.
pub async fn drive_consumer<H: QueueHandler>(
    config: &SdkConfig,
    consumer: Consumer<'_, H>,
    mapping_clock: &AtomicI64,
    counts: &Counts,
) {
    let sqs = aws_sdk_sqs::Client::new(config);
    let dead_letters = SqsDeadLetters::new(sqs.clone(), consumer.dlq_url);
    let source = EventSource::new(sqs, consumer.queue_url);
    let mut rng = fastrand::Rng::with_seed(consumer.seed);
    for _ in 0..400 {
        // Lambda's batches vary in size with the queue's depth.
        let received = source.receive(rng.i32(1..=10)).await;
        if received.is_empty() {
            if source.depth().await == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let redelivered = received
            .iter()
            .filter(|m| event_source::received_count(m).is_some_and(|c| c != "1"))
            .count();
        counts.redeliveries.fetch_add(redelivered, Ordering::SeqCst);
        let event = event_source::sqs_event(&received, true);
        counts.invocations.fetch_add(1, Ordering::SeqCst);
        let invocation = handle_sqs_event(event, consumer.handler, &dead_letters);
        let failures = |response: aws_lambda_events::event::sqs::SqsBatchResponse| {
            let failed = response.batch_item_failures.into_iter();
            failed.map(|f| f.item_identifier).collect::<Vec<_>>()
        };
        let failed: Option<Vec<String>> = if rng.f64() < consumer.kill_share {
            let budget = Duration::from_millis(rng.u64(0..40));
            tokio::time::timeout(budget, invocation)
                .await
                .ok()
                .map(failures)
        } else {
            Some(failures(invocation.await))
        };
        if failed.is_none() {
            // Killed: nothing is deleted; Lambda redelivers after the visibility timeout, by
            // which time a create reservation the dead invocation held has lapsed.
            counts.consumers_killed.fetch_add(1, Ordering::SeqCst);
        }
        if failed.as_ref().is_none_or(|f| !f.is_empty()) {
            mapping_clock.fetch_add(VISIBILITY_TIMEOUT_SECS + 1, Ordering::SeqCst);
        }
        source.settle(&received, failed.as_deref()).await;
    }
    panic!("the {} queue never drained", consumer.queue_url);
}

/// The consumers' context: the real Attio and HubSpot clients pointed at the stand-ins (short
/// timeouts and backoffs, no pacing), and mappings in `mappings_table`, on a clock moved by
/// `mapping_clock`.
pub fn sync_context(
    config: &SdkConfig,
    mappings_table: &str,
    attio: (&str, &str),
    hubspot: (&str, &str),
    mapping_clock: &Arc<AtomicI64>,
) -> Arc<Ctx> {
    let fields = FieldMapping::default();
    Arc::new(sync_context_with(
        config,
        mappings_table,
        attio,
        hubspot,
        mapping_clock,
        fields,
    ))
}

/// [`sync_context`] with a field mapping of the test's, unshared, so a test can add two-way
/// sync ([`two_way_context`]) before sharing it.
pub fn sync_context_with(
    config: &SdkConfig,
    mappings_table: &str,
    (attio_url, attio_token): (&str, &str),
    (hubspot_url, hubspot_token): (&str, &str),
    mapping_clock: &Arc<AtomicI64>,
    fields: FieldMapping,
) -> Ctx {
    let mut attio_config = AttioConfig::new(attio_token);
    attio_config.base_url = format!("{attio_url}/v2");
    attio_config.request_timeout = Duration::from_millis(250);
    attio_config.backoff_base = Duration::from_millis(5);
    attio_config.backoff_cap = Duration::from_millis(50);
    attio_config.call_budget = Duration::from_secs(5);
    attio_config.breaker_cooldown = Duration::from_millis(200);
    attio_config.read_rate = None;
    attio_config.write_rate = None;
    let mut hubspot_config = HubSpotConfig::new(hubspot_token);
    hubspot_config.base_url = hubspot_url.to_owned();
    hubspot_config.request_timeout = Duration::from_millis(250);
    hubspot_config.backoff = Duration::from_millis(10);
    hubspot_config.max_wait = Duration::from_secs(5);
    let clock = ShiftedClock {
        offset: Arc::clone(mapping_clock),
    };
    SyncContext::new(
        AttioClient::new(attio_config).expect("attio client"),
        HubSpotSink::new(hubspot_config).expect("hubspot client"),
        DynamoDbMappings::new(aws_sdk_dynamodb::Client::new(config), mappings_table),
        fields,
    )
    .with_clock(clock)
}

/// Asserts that every queue and every DLQ of `queues` is empty, naming the dead letters'
/// failure reasons when one is not.
pub async fn assert_nothing_parked(config: &SdkConfig, queues: &moto::TestQueues) {
    let sqs = aws_sdk_sqs::Client::new(config);
    let families = EventFamily::EVERY.into_iter();
    for family in families.filter(|f| queues.dlqs.contains_key(f)) {
        let dead = moto::drain(config, &queues.dlqs[&family]).await;
        let reasons: Vec<_> = dead
            .iter()
            .map(|m| {
                m.attributes
                    .get(relay_events::attribute::FAILURE_REASON)
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        assert!(
            dead.is_empty(),
            "{family} DLQ holds {} messages: {reasons:?}",
            dead.len()
        );
        let url = queues.urls.get(family).expect("queue url").to_owned();
        assert_eq!(
            EventSource::new(sqs.clone(), url).depth().await,
            0,
            "{family} queue is empty"
        );
    }
}
