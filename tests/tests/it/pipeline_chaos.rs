//! The whole pipeline under random faults, from Attio's POST to HubSpot's state:
//!
//! * ingest on moto with 10% of DynamoDB and SQS calls failing (half after the write happened)
//!   and 5% of requests "killed" at a random point (the request future is dropped mid-flight);
//!   Attio's retries are simulated: anything but a 2xx is sent again later;
//! * the records, notes and tasks consumers, driven from moto's queues the way Lambda's event
//!   source mapping drives them (partial batch responses, redrive to the DLQ after
//!   maxReceiveCount), with 5% of invocations killed at a random point;
//! * Attio (wiremock) answering 10% of calls with 429 + Retry-After, 503 or too late;
//! * HubSpot (wiremock) answering 10% of calls with 429, 502, too late, or doing the write and
//!   then losing the answer (504 or too late).
//!
//! Invariant: every delivery is eventually acknowledged, nothing is left on a queue or a DLQ,
//! every record, note and task reaches HubSpot with its current values, and the only duplicates
//! in HubSpot are notes or tasks whose create happened but whose answer never came back (no
//! idempotent create exists for them; see README "What the consumers do"). The counts are printed.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use aws_config::SdkConfig;
use http::StatusCode;
use integration_tests::event_source::{self, EventSource};
use integration_tests::fake_apis::{self, FakeAttio, FakeHubSpot, FaultDice};
use integration_tests::faults::{self, FaultyQueue, FaultyStore, ManualClock};
use integration_tests::fixtures::ids::{PEOPLE, WORKSPACE as WS};
use integration_tests::fixtures::{self, SECRET, body_only_headers, post, with_key};
use integration_tests::moto;
use relay_attio::{AttioClient, AttioConfig};
use relay_consumer::{BatchHandler, SqsDeadLetters, handle_sqs_event};
use relay_crm::{CrmId, CrmObject, HubSpotConfig, HubSpotSink};
use relay_events::EventFamily;
use relay_idempotency::DynamoDbStore;
use relay_mappings::{DynamoDbMappings, IdMappings, MappingError, Reservation, UnixSeconds};
use relay_queue::SqsQueue;
use relay_sync::{FieldMapping, NotesHandler, RecordsHandler, SyncContext, TasksHandler};
use serde_json::json;

const PEOPLE_COUNT: usize = 60;
const NOTE_COUNT: usize = 30;
const TASK_COUNT: usize = 30;
/// Lambda's redelivery after a killed invocation: the queue's visibility timeout (SAM: 360 s).
const VISIBILITY_TIMEOUT_SECS: i64 = 360;

/// Id mappings whose clock the test can move: a killed consumer's create reservation lapses
/// after `CREATE_LEASE`, and Lambda only redelivers after the visibility timeout, which is longer.
#[derive(Debug, Clone)]
struct ShiftedMappings {
    inner: DynamoDbMappings,
    offset: Arc<AtomicI64>,
}

impl IdMappings for ShiftedMappings {
    async fn get(&self, object: CrmObject, attio_id: &str) -> Result<Option<CrmId>, MappingError> {
        self.inner.get(object, attio_id).await
    }

    async fn reserve(
        &self,
        object: CrmObject,
        attio_id: &str,
        now: UnixSeconds,
        lease: Duration,
    ) -> Result<Reservation, MappingError> {
        let now = now + self.offset.load(Ordering::SeqCst);
        self.inner.reserve(object, attio_id, now, lease).await
    }

    async fn put(
        &self,
        object: CrmObject,
        attio_id: &str,
        crm_id: &CrmId,
    ) -> Result<(), MappingError> {
        self.inner.put(object, attio_id, crm_id).await
    }

    async fn remove(&self, object: CrmObject, attio_id: &str) -> Result<(), MappingError> {
        self.inner.remove(object, attio_id).await
    }
}

type Ctx = SyncContext<HubSpotSink, ShiftedMappings>;

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn delivery(event: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"webhook_id": "5f4c6e0c-0a3b-4c2e-9d38-5b6f0c1d2e3f", "events": [event]}),
    )
    .expect("json")
}

fn actor() -> serde_json::Value {
    json!({"type": "workspace-member", "id": "061b809a-2423-4955-94c9-07c16d05be79"})
}

/// The test's Attio workspace: people, notes on them, tasks linked to them.
struct Workspace {
    people: Vec<String>,
    notes: Vec<(String, String)>,
    tasks: Vec<(String, String, bool)>,
}

impl Workspace {
    fn new() -> Self {
        let people: Vec<String> = (0..PEOPLE_COUNT).map(|_| uuid()).collect();
        let notes = (0..NOTE_COUNT)
            .map(|i| (uuid(), people[i % PEOPLE_COUNT].clone()))
            .collect();
        let tasks = (0..TASK_COUNT)
            .map(|i| (uuid(), people[(i * 5) % PEOPLE_COUNT].clone(), i % 3 == 0))
            .collect();
        Self {
            people,
            notes,
            tasks,
        }
    }

    /// Every webhook delivery Attio sends for this workspace's changes, one event each.
    fn deliveries(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (i, person) in self.people.iter().enumerate() {
            for attribute in ["name", "job_title"].iter().take(1 + i % 2) {
                out.push(delivery(json!({
                    "event_type": "record.updated",
                    "id": {"workspace_id": WS, "object_id": PEOPLE, "record_id": person, "attribute_id": format!("{attribute}-attr")},
                    "actor": actor()
                })));
            }
        }
        for (i, (note, person)) in self.notes.iter().enumerate() {
            let kinds: &[&str] = if i % 3 == 0 {
                &["note.created", "note.updated"]
            } else {
                &["note.created"]
            };
            for kind in kinds {
                out.push(delivery(json!({
                    "event_type": kind,
                    "id": {"workspace_id": WS, "note_id": note},
                    "parent_object_id": PEOPLE, "parent_record_id": person,
                    "actor": actor()
                })));
            }
        }
        for (task, _, completed) in &self.tasks {
            let kinds: &[&str] = if *completed {
                &["task.created", "task.updated"]
            } else {
                &["task.created"]
            };
            for kind in kinds {
                out.push(delivery(json!({
                    "event_type": kind,
                    "id": {"workspace_id": WS, "task_id": task},
                    "actor": actor()
                })));
            }
        }
        out
    }
}

/// Counts of what the run did, printed at the end.
#[derive(Debug, Default)]
struct Counts {
    ingest_attempts: AtomicUsize,
    ingest_killed: AtomicUsize,
    invocations: AtomicUsize,
    consumers_killed: AtomicUsize,
    redeliveries: AtomicUsize,
}

/// Attio's side of ingest: send every delivery, retry whatever did not get a 2xx.
async fn deliver_with_retries(
    service: &Arc<
        relay_ingest::IngestService<
            FaultyStore<DynamoDbStore>,
            FaultyQueue<SqsQueue>,
            relay_ingest::StaticSecrets,
            ManualClock,
        >,
    >,
    clock: &ManualClock,
    bodies: &[Vec<u8>],
    counts: &Counts,
) {
    let mut rng = fastrand::Rng::with_seed(11);
    let mut pending: Vec<usize> = (0..bodies.len()).collect();
    for _round in 0..12 {
        let mut still = Vec::new();
        for &n in &pending {
            let headers = with_key(body_only_headers(SECRET, &bodies[n]), &format!("pipe-{n}"));
            counts.ingest_attempts.fetch_add(1, Ordering::SeqCst);
            let handled = service.handle(post(&headers, &bodies[n]));
            let status = if rng.f64() < 0.05 {
                // The process dies at a random point: Attio sees no answer and retries.
                let budget = Duration::from_micros(rng.u64(0..20_000));
                match tokio::time::timeout(budget, handled).await {
                    Ok(answer) => answer.status,
                    Err(_) => {
                        counts.ingest_killed.fetch_add(1, Ordering::SeqCst);
                        StatusCode::BAD_GATEWAY
                    }
                }
            } else {
                handled.await.status
            };
            assert!(
                !status.is_client_error() || status == StatusCode::CONFLICT,
                "delivery {n} refused with {status}"
            );
            if !status.is_success() {
                still.push(n);
            }
        }
        pending = still;
        if pending.is_empty() {
            return;
        }
        // Attio's backoff is minutes to hours: past the idempotency lease.
        clock.advance(61);
    }
    panic!("deliveries never acknowledged: {pending:?}");
}

/// Lambda's SQS event source mapping for one queue: receive a batch, invoke, delete what
/// succeeded, make the failures visible again (here at once, instead of after the visibility
/// timeout). Some invocations are killed at a random point and delete nothing.
async fn drive_consumer<H: BatchHandler>(
    config: &SdkConfig,
    url: &str,
    dlq: &str,
    handler: &H,
    mapping_clock: &AtomicI64,
    counts: &Counts,
    seed: u64,
) {
    let sqs = aws_sdk_sqs::Client::new(config);
    let dead_letters = SqsDeadLetters::new(sqs.clone(), dlq);
    let source = EventSource::new(sqs, url);
    let mut rng = fastrand::Rng::with_seed(seed);
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
        let invocation = handle_sqs_event(event, handler, &dead_letters);
        let failed: Option<Vec<String>> = if rng.f64() < 0.05 {
            let budget = Duration::from_millis(rng.u64(0..40));
            match tokio::time::timeout(budget, invocation).await {
                Ok(response) => Some(
                    response
                        .batch_item_failures
                        .into_iter()
                        .map(|f| f.item_identifier)
                        .collect(),
                ),
                Err(_) => None,
            }
        } else {
            Some(
                invocation
                    .await
                    .batch_item_failures
                    .into_iter()
                    .map(|f| f.item_identifier)
                    .collect(),
            )
        };
        if failed.is_none() {
            // Killed: nothing is deleted; Lambda redelivers after the visibility timeout, by
            // which time a create reservation the dead invocation held has lapsed.
            counts.consumers_killed.fetch_add(1, Ordering::SeqCst);
            mapping_clock.fetch_add(VISIBILITY_TIMEOUT_SECS + 1, Ordering::SeqCst);
        }
        source.settle(&received, failed.as_deref()).await;
    }
    panic!("the {url} queue never drained");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_loses_nothing_under_random_faults_everywhere() {
    let config = moto::sdk_config().await;
    let table = moto::fresh_table(&config).await;
    let mappings_table =
        moto::fresh_table_keyed(&config, "mappings", relay_mappings::KEY_ATTRIBUTE).await;
    let queues = moto::fresh_queues(&config, 10).await;
    let workspace = Workspace::new();

    // Ingest with faults in DynamoDB and SQS.
    let (store, queue) =
        faults::randomly_faulty_aws(&config, &table, queues.urls.clone(), 0.10, 21);
    let clock = ManualClock::now_real();
    let service = Arc::new(fixtures::service(store, queue, clock.clone()));
    let counts = Counts::default();
    let bodies = workspace.deliveries();
    deliver_with_retries(&service, &clock, &bodies, &counts).await;

    // Attio and HubSpot, each failing 10% of calls.
    let mut attio_fake =
        FakeAttio::from_fixtures("attio-chaos-token", PEOPLE, FaultDice::new(0.10, 31));
    attio_fake.hang = Duration::from_millis(800);
    for (note, person) in &workspace.notes {
        attio_fake = attio_fake.with_note(note, person);
    }
    for (task, person, completed) in &workspace.tasks {
        attio_fake = attio_fake.with_task(task, person, *completed);
    }
    let attio_fake = Arc::new(attio_fake);
    let mut hubspot_fake = FakeHubSpot::new("hubspot-chaos-token", FaultDice::new(0.10, 32));
    hubspot_fake.hang = Duration::from_millis(800);
    // The portal already holds every other person (created by hand): they must be adopted.
    let preexisting: Vec<(String, String)> = workspace
        .people
        .iter()
        .step_by(2)
        .map(|p| (p.clone(), hubspot_fake.seed_contact(&FakeAttio::email(p))))
        .collect();
    let hubspot_fake = Arc::new(hubspot_fake);
    let attio = fake_apis::serve(&attio_fake).await;
    let hubspot = fake_apis::serve(&hubspot_fake).await;

    let mut attio_config = AttioConfig::new("attio-chaos-token");
    attio_config.base_url = format!("{}/v2", attio.uri());
    attio_config.request_timeout = Duration::from_millis(250);
    attio_config.backoff_base = Duration::from_millis(5);
    attio_config.backoff_cap = Duration::from_millis(50);
    attio_config.call_budget = Duration::from_secs(5);
    attio_config.breaker_cooldown = Duration::from_millis(200);
    attio_config.read_rate = None;
    attio_config.write_rate = None;
    let mut hubspot_config = HubSpotConfig::new("hubspot-chaos-token");
    hubspot_config.base_url = hubspot.uri();
    hubspot_config.request_timeout = Duration::from_millis(250);
    hubspot_config.backoff = Duration::from_millis(10);
    hubspot_config.max_wait = Duration::from_secs(5);
    let mapping_clock = Arc::new(AtomicI64::new(0));
    let ctx: Arc<Ctx> = Arc::new(SyncContext::new(
        AttioClient::new(attio_config).expect("attio client"),
        HubSpotSink::new(hubspot_config).expect("hubspot client"),
        ShiftedMappings {
            inner: DynamoDbMappings::new(aws_sdk_dynamodb::Client::new(&config), &mappings_table),
            offset: Arc::clone(&mapping_clock),
        },
        FieldMapping::default(),
    ));

    let url = |family| queues.urls.get(family).expect("queue url").to_owned();
    let dlq = |family: EventFamily| queues.dlqs[&family].clone();
    let (records, notes, tasks) = (
        RecordsHandler::new(Arc::clone(&ctx)),
        NotesHandler::new(Arc::clone(&ctx)),
        TasksHandler::new(Arc::clone(&ctx)),
    );
    let (records_url, notes_url, tasks_url) = (
        url(EventFamily::Records),
        url(EventFamily::Notes),
        url(EventFamily::Tasks),
    );
    let (records_dlq, notes_dlq, tasks_dlq) = (
        dlq(EventFamily::Records),
        dlq(EventFamily::Notes),
        dlq(EventFamily::Tasks),
    );
    tokio::join!(
        drive_consumer(
            &config,
            &records_url,
            &records_dlq,
            &records,
            &mapping_clock,
            &counts,
            41
        ),
        drive_consumer(
            &config,
            &notes_url,
            &notes_dlq,
            &notes,
            &mapping_clock,
            &counts,
            42
        ),
        drive_consumer(
            &config,
            &tasks_url,
            &tasks_dlq,
            &tasks,
            &mapping_clock,
            &counts,
            43
        ),
    );

    // Nothing parked anywhere: every queue and every DLQ is empty.
    let sqs = aws_sdk_sqs::Client::new(&config);
    for family in EventFamily::ALL {
        let dead = moto::drain(&config, &dlq(family)).await;
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
        assert_eq!(
            EventSource::new(sqs.clone(), url(family)).depth().await,
            0,
            "{family} queue is empty"
        );
    }
    let unexpected_attio = attio_fake.unexpected.lock().expect("lock").clone();
    assert!(
        unexpected_attio.is_empty(),
        "unexpected Attio calls: {unexpected_attio:?}"
    );

    // HubSpot holds every person, note and task with its current values.
    let state = hubspot_fake.state.lock().expect("state");
    assert!(
        state.unexpected.is_empty(),
        "unexpected HubSpot calls: {:?}",
        state.unexpected
    );
    let mut lost = 0;
    for person in &workspace.people {
        match state.contacts.get(person) {
            Some(contact) => assert_eq!(
                contact.properties.get("jobtitle"),
                Some(&json!(FakeAttio::job_title(person))),
                "contact {person} carries the current job title"
            ),
            None => lost += 1,
        }
    }
    assert!(
        state.unowned_contacts.is_empty(),
        "every pre-existing contact was adopted"
    );
    for (person, id) in &preexisting {
        if let Some(contact) = state.contacts.get(person) {
            assert_eq!(&contact.id, id, "{person} adopted, not duplicated");
        }
    }
    let mut duplicates = 0;
    for (object, items) in [
        (
            "notes",
            workspace
                .notes
                .iter()
                .map(|(id, person)| (id, person, None))
                .collect::<Vec<_>>(),
        ),
        (
            "tasks",
            workspace
                .tasks
                .iter()
                .map(|(id, person, completed)| (id, person, Some(*completed)))
                .collect(),
        ),
    ] {
        for (id, person, completed) in items {
            let copies = state.engagements_for(object, id);
            if copies.is_empty() {
                lost += 1;
                continue;
            }
            duplicates += copies.len() - 1;
            let contact_id = &state.contacts[person].id;
            for copy in &copies {
                assert!(
                    copy.associations.iter().any(|(_, to)| to == contact_id),
                    "{object} {id} is associated with its person's contact"
                );
                if let Some(completed) = completed {
                    let status = if completed {
                        "COMPLETED"
                    } else {
                        "NOT_STARTED"
                    };
                    assert_eq!(copy.properties.get("hs_task_status"), Some(&json!(status)));
                }
            }
        }
    }
    let explained = state.lost_create_answers + counts.consumers_killed.load(Ordering::SeqCst);
    let aws_faults = service.store().injected() + service.queue().plan.injected();
    println!(
        "pipeline chaos: deliveries={} ingest_attempts={} ingest_killed={} aws_faults_injected={aws_faults} \
         attio_faults_injected={} hubspot_faults_injected={} consumer_invocations={} consumers_killed={} \
         redeliveries={} hubspot_lost_create_answers={} crm_duplicates={duplicates} lost={lost}",
        bodies.len(),
        counts.ingest_attempts.load(Ordering::SeqCst),
        counts.ingest_killed.load(Ordering::SeqCst),
        attio_fake.dice.injected(),
        hubspot_fake.dice.injected(),
        counts.invocations.load(Ordering::SeqCst),
        counts.consumers_killed.load(Ordering::SeqCst),
        counts.redeliveries.load(Ordering::SeqCst),
        state.lost_create_answers,
    );
    assert!(aws_faults > 5, "faults were injected into DynamoDB and SQS");
    assert!(
        attio_fake.dice.injected() > 5,
        "faults were injected into Attio"
    );
    assert!(
        hubspot_fake.dice.injected() > 5,
        "faults were injected into HubSpot"
    );
    assert!(
        counts.ingest_killed.load(Ordering::SeqCst) > 0,
        "some ingest requests were killed mid-flight"
    );
    assert!(
        counts.consumers_killed.load(Ordering::SeqCst) > 0,
        "some consumer invocations were killed mid-flight"
    );
    assert_eq!(lost, 0, "every acknowledged delivery reached HubSpot");
    assert!(
        duplicates <= explained,
        "{duplicates} duplicate notes/tasks, but only {explained} creates lost their answer"
    );
}
