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
//!   then losing the answer (504 or too late), and a quarter of the other note and task
//!   creates done with their answer lost;
//! * a portal that already holds every other person (contacts made by hand, to be adopted);
//! * then, once the first sync is done, merges in Attio in both of its models (a NEW record
//!   whose first reads answer 404 `merge_in_progress`, two `record.merged` events; or a
//!   surviving original, one event), delivered with updates of the originals and the merged
//!   records on both sides of the merge's events
//!   (which now read 404 `not_found`) through the same faults;
//! * then deletes in Attio of a few notes, tasks and people, each delivered after an update of
//!   the same id, then updates handled after the delete while Attio still answers the id (reads
//!   that raced the delete), then the updates again once it reads 404.
//!
//! Invariant: every delivery is eventually acknowledged, nothing is left on a queue or a DLQ,
//! every record, note and task reaches HubSpot with its current values, and none is there
//! twice: a create whose answer was lost is found by its marker before anything is created
//! again (see README "What the consumers do"). Each merged record
//! ends as exactly one HubSpot contact, at the id HubSpot's merge answered, mapped from it and
//! both originals, holding the notes and tasks of both. Nothing deleted is left active: the
//! deleted people have no contact, and a deleted note or task keeps no copy but the unmapped
//! duplicates of lost create answers. The counts are printed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use integration_tests::fake_apis::{
    self, AttioMerge, FakeAttio, FakeHubSpot, FaultDice, HubSpotState, MergeModel,
};
use integration_tests::faults::{self, ManualClock};
use integration_tests::fixtures::ids::{PEOPLE, WORKSPACE as WS};
use integration_tests::moto;
use integration_tests::pipeline::{
    self, Consumer, Counts, Ctx, actor, deliver_with_retries, delivery, drive_consumer,
};
use relay_crm::{CrmId, CrmObject};
use relay_events::EventFamily;
use relay_mappings::IdMappings;
use relay_sync::{NotesHandler, RecordsHandler, TasksHandler};
use serde_json::json;

const PEOPLE_COUNT: usize = 60;
const NOTE_COUNT: usize = 30;
const TASK_COUNT: usize = 30;
/// Share of ingest requests and consumer invocations killed mid-flight.
const KILL_SHARE: f64 = 0.05;
/// Share of the note and task creates HubSpot applies whose answer is then lost (on top of
/// the 10% of every call that fails).
const LOST_CREATE_SHARE: f64 = 0.25;

/// The merges Attio makes after the first sync: (model, primary, other), as indexes into the
/// workspace's people. Even people were in HubSpot before the relay (adopted), odd ones were
/// created by it; people 0–29 have a note, every fifth person has tasks.
const MERGES: [(MergeModel, usize, usize); 4] = [
    (MergeModel::NewRecord, 0, 5),
    (MergeModel::NewRecord, 15, 10),
    (MergeModel::Survivor, 20, 25),
    (MergeModel::Survivor, 35, 30),
];

/// What Attio deletes after the merges, as indexes: notes and tasks (of people no merge
/// touches) and people without notes or tasks.
const DELETED_NOTES: [usize; 2] = [3, 7];
const DELETED_TASKS: [usize; 2] = [8, 9];
const DELETED_PEOPLE: [usize; 2] = [41, 43];

/// Reads of a new merged record that answer `merge_in_progress` (the merge runs in the
/// background, Attio's 202).
const MERGE_IN_PROGRESS_READS: usize = 2;

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The test's Attio workspace: people, notes on them, tasks linked to them.
struct Workspace {
    people: Vec<String>,
    notes: Vec<(String, String)>,
    tasks: Vec<(String, String, bool)>,
}

fn record_updated(person: &str, attribute: &str) -> serde_json::Value {
    json!({
        "event_type": "record.updated",
        "id": {"workspace_id": WS, "object_id": PEOPLE, "record_id": person, "attribute_id": format!("{attribute}-attr")},
        "actor": actor()
    })
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
                out.push(delivery(record_updated(person, attribute)));
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

    /// The notes and tasks of `person`: (object, Attio id).
    fn engagements_of<'a>(&'a self, person: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        let notes = self.notes.iter().filter(move |(_, p)| p == person);
        let tasks = self.tasks.iter().filter(move |(_, p, _)| p == person);
        notes
            .map(|(id, _)| ("notes", id.as_str()))
            .chain(tasks.map(|(id, _, _)| ("tasks", id.as_str())))
    }
}

/// The deliveries of Attio's merges: each merge's `record.merged` events.
fn merge_deliveries(merges: &[AttioMerge]) -> Vec<Vec<u8>> {
    let events = merges.iter().flat_map(|m| m.events(WS, PEOPLE, &actor()));
    events.map(delivery).collect()
}

/// Updates racing the merge: of the merged-away originals (they read 404 `not_found` and must
/// archive nothing) and of the merged record itself (its email may still be held by an
/// original's contact until the merge is handled: retried, never dead-lettered). Delivered
/// just before the merge's events and again after them, so the consumers meet them on both
/// sides of the merge.
fn updates_racing_the_merge(merges: &[AttioMerge]) -> Vec<Vec<u8>> {
    let gone = merges.iter().flat_map(AttioMerge::gone);
    let merged = merges.iter().map(|m| m.merged.as_str());
    gone.chain(merged)
        .map(|id| delivery(record_updated(id, "job_title")))
        .collect()
}

/// The ids Attio deletes: (event kind — `note`, `task`, `record` —, Attio id).
fn doomed(workspace: &Workspace) -> Vec<(&'static str, String)> {
    let notes = DELETED_NOTES.map(|i| ("note", workspace.notes[i].0.clone()));
    let tasks = DELETED_TASKS.map(|i| ("task", workspace.tasks[i].0.clone()));
    let people = DELETED_PEOPLE.map(|i| ("record", workspace.people[i].clone()));
    notes.into_iter().chain(tasks).chain(people).collect()
}

/// One event about a doomed id: `{kind}.updated` or `{kind}.deleted`.
fn doomed_event(kind: &str, id: &str, change: &str) -> serde_json::Value {
    match (kind, change) {
        ("record", "updated") => record_updated(id, "job_title"),
        ("record", _) => json!({
            "event_type": "record.deleted",
            "id": {"workspace_id": WS, "object_id": PEOPLE, "record_id": id},
            "actor": actor()
        }),
        (_, change) => {
            let mut ids = json!({"workspace_id": WS});
            ids[format!("{kind}_id")] = json!(id);
            json!({"event_type": format!("{kind}.{change}"), "id": ids, "actor": actor()})
        }
    }
}

/// Runs the records, notes and tasks consumers until their queues are empty.
async fn drain_consumers(
    config: &aws_config::SdkConfig,
    queues: &moto::TestQueues,
    ctx: &Arc<Ctx>,
    mapping_clock: &AtomicI64,
    counts: &Counts,
    seed: u64,
) {
    let url = |family| queues.urls.get(family).expect("queue url").to_owned();
    let (records_url, notes_url, tasks_url) = (
        url(EventFamily::Records),
        url(EventFamily::Notes),
        url(EventFamily::Tasks),
    );
    let (records, notes, tasks) = (
        RecordsHandler::new(Arc::clone(ctx)),
        NotesHandler::new(Arc::clone(ctx)),
        TasksHandler::new(Arc::clone(ctx)),
    );
    let dlq = |family: EventFamily| queues.dlqs[&family].as_str();
    tokio::join!(
        drive_consumer(
            config,
            Consumer {
                queue_url: &records_url,
                dlq_url: dlq(EventFamily::Records),
                handler: &records,
                kill_share: KILL_SHARE,
                seed,
            },
            mapping_clock,
            counts
        ),
        drive_consumer(
            config,
            Consumer {
                queue_url: &notes_url,
                dlq_url: dlq(EventFamily::Notes),
                handler: &notes,
                kill_share: KILL_SHARE,
                seed: seed + 1,
            },
            mapping_clock,
            counts
        ),
        drive_consumer(
            config,
            Consumer {
                queue_url: &tasks_url,
                dlq_url: dlq(EventFamily::Tasks),
                handler: &tasks,
                kill_share: KILL_SHARE,
                seed: seed + 2,
            },
            mapping_clock,
            counts
        ),
    );
}

/// The contact every id of the merges (merged records, originals) is mapped to.
async fn mappings_of(ctx: &Ctx, merges: &[AttioMerge]) -> BTreeMap<String, Option<CrmId>> {
    let mut out = BTreeMap::new();
    for merge in merges {
        for id in merge.originals.iter().chain([&merge.merged]) {
            let mapped = ctx.mappings.get(CrmObject::Contacts, id).await;
            out.insert(id.clone(), mapped.expect("mapping"));
        }
    }
    out
}

/// What the merges must have left in HubSpot and the mappings: per merge, one contact for the
/// merged record, at an id HubSpot's merge answered, that both originals' contacts became,
/// mapped from every id of the merge, holding both originals' notes and tasks.
fn check_merges(
    state: &HubSpotState,
    mapped: &BTreeMap<String, Option<CrmId>>,
    workspace: &Workspace,
    merges: &[AttioMerge],
    synced: &BTreeMap<String, String>,
) {
    for merge in merges {
        let [primary, other] = &merge.originals;
        let contact = state
            .contacts
            .get(&merge.merged)
            .unwrap_or_else(|| panic!("a contact carries merged record {}", merge.merged));
        assert!(
            state.merges.answered(&contact.id),
            "{:?}: contact {} is an id HubSpot's merge answered",
            merge.model,
            contact.id
        );
        assert_eq!(
            contact.properties.get("jobtitle"),
            Some(&json!(FakeAttio::job_title(&merge.merged))),
            "the merged record's values"
        );
        assert_eq!(
            contact.properties.get("email"),
            Some(&json!(FakeAttio::email(primary))),
            "the primary's email"
        );
        for original in [primary, other] {
            assert_eq!(
                state.merges.resolve(&synced[original]),
                contact.id,
                "{:?}: the contact of original {original} became the merged one",
                merge.model
            );
        }
        for gone in merge.gone() {
            assert!(
                !state.contacts.contains_key(gone),
                "no contact carries merged-away {gone}"
            );
        }
        for id in merge.gone().into_iter().chain([merge.merged.as_str()]) {
            assert_eq!(
                mapped[id],
                Some(CrmId(contact.id.clone())),
                "{:?}: {id} is mapped to the merged contact",
                merge.model
            );
        }
        for original in [primary, other] {
            for (object, id) in workspace.engagements_of(original) {
                let copies = state.engagements_for(object, id);
                assert!(
                    !copies.is_empty(),
                    "{object} {id} of {original} reached HubSpot"
                );
                for copy in copies {
                    assert!(
                        copy.associations.iter().any(|(_, to)| *to == contact.id),
                        "{object} {id} of {original} moved to the merged contact {}: {:?}",
                        contact.id,
                        copy.associations
                    );
                }
            }
        }
    }
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
    let service = Arc::new(integration_tests::fixtures::service(
        store,
        queue,
        clock.clone(),
    ));
    let counts = Counts::default();
    let bodies = workspace.deliveries();
    deliver_with_retries(&service, &clock, &bodies, "pipe", KILL_SHARE, &counts).await;

    // Attio and HubSpot, each failing 10% of calls.
    let mut attio_fake =
        FakeAttio::from_fixtures("attio-chaos-token", PEOPLE, FaultDice::new(0.10, 31));
    attio_fake.hang = std::time::Duration::from_millis(800);
    for (note, person) in &workspace.notes {
        attio_fake = attio_fake.with_note(note, person);
    }
    for (task, person, completed) in &workspace.tasks {
        attio_fake = attio_fake.with_task(task, person, *completed);
    }
    let attio_fake = Arc::new(attio_fake);
    let mut hubspot_fake = FakeHubSpot::new("hubspot-chaos-token", FaultDice::new(0.10, 32));
    hubspot_fake.hang = std::time::Duration::from_millis(800);
    // A quarter of the note and task creates that pass lose their answer after the write:
    // the faults that duplicate unless an earlier attempt is looked up before creating again.
    hubspot_fake.create_dice = Some(FaultDice::new(LOST_CREATE_SHARE, 33));
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
    let mapping_clock = Arc::new(AtomicI64::new(0));
    let ctx = pipeline::sync_context(
        &config,
        &mappings_table,
        (&attio.uri(), "attio-chaos-token"),
        (&hubspot.uri(), "hubspot-chaos-token"),
        &mapping_clock,
    );

    drain_consumers(&config, &queues, &ctx, &mapping_clock, &counts, 41).await;
    pipeline::assert_nothing_parked(&config, &queues).await;

    // Attio merges people the first sync put in HubSpot; the merge deliveries go through the
    // same faults.
    let synced: BTreeMap<String, String> = {
        let state = hubspot_fake.state.lock().expect("state");
        let contacts = state.contacts.iter();
        contacts.map(|(p, c)| (p.clone(), c.id.clone())).collect()
    };
    let merges: Vec<AttioMerge> = MERGES
        .iter()
        .map(|(model, primary, other)| {
            let (primary, other) = (&workspace.people[*primary], &workspace.people[*other]);
            for original in [primary, other] {
                assert!(
                    synced.contains_key(original),
                    "{original} synced before the merge"
                );
            }
            attio_fake.merge(*model, primary, other, MERGE_IN_PROGRESS_READS)
        })
        .collect();
    let racing = updates_racing_the_merge(&merges);
    deliver_with_retries(&service, &clock, &racing, "early", KILL_SHARE, &counts).await;
    let merge_bodies = merge_deliveries(&merges);
    deliver_with_retries(
        &service,
        &clock,
        &merge_bodies,
        "merge",
        KILL_SHARE,
        &counts,
    )
    .await;
    drain_consumers(&config, &queues, &ctx, &mapping_clock, &counts, 51).await;
    deliver_with_retries(&service, &clock, &racing, "late", KILL_SHARE, &counts).await;
    drain_consumers(&config, &queues, &ctx, &mapping_clock, &counts, 61).await;

    // Attio deletes a few notes, tasks and people. Each delete is delivered after an update,
    // then updates that still read the id (fetched before the delete: Attio answers them
    // here) are handled after it, then the updates come again once it reads 404. Before: each
    // note's and task's mapped copy.
    let doomed = doomed(&workspace);
    let mut before_delete = BTreeMap::new();
    for (kind, id) in doomed.iter().filter(|(k, _)| *k != "record") {
        let object = if *kind == "note" { "notes" } else { "tasks" };
        let crm_object = CrmObject::parse(object).expect("object");
        let mapped = ctx.mappings.get(crm_object, id).await.expect("mapping");
        let state = hubspot_fake.state.lock().expect("state");
        let copies: BTreeSet<String> = state
            .engagements_for(object, id)
            .iter()
            .map(|c| c.id.clone())
            .collect();
        before_delete.insert(id.clone(), (object, mapped.expect("synced").0, copies));
    }
    let racing_deletes: Vec<Vec<u8>> = doomed
        .iter()
        .flat_map(|(kind, id)| {
            ["updated", "deleted"].map(|change| delivery(doomed_event(kind, id, change)))
        })
        .collect();
    deliver_with_retries(
        &service,
        &clock,
        &racing_deletes,
        "delete",
        KILL_SHARE,
        &counts,
    )
    .await;
    drain_consumers(&config, &queues, &ctx, &mapping_clock, &counts, 71).await;
    // Updates whose read raced the delete, handled after it (Attio still answers them).
    let stale: Vec<Vec<u8>> = doomed
        .iter()
        .map(|(kind, id)| delivery(doomed_event(kind, id, "updated")))
        .collect();
    deliver_with_retries(&service, &clock, &stale, "stale", KILL_SHARE, &counts).await;
    drain_consumers(&config, &queues, &ctx, &mapping_clock, &counts, 75).await;
    for (_, id) in &doomed {
        attio_fake.delete(id);
    }
    deliver_with_retries(&service, &clock, &stale, "after", KILL_SHARE, &counts).await;
    drain_consumers(&config, &queues, &ctx, &mapping_clock, &counts, 81).await;
    let deleted_people: BTreeSet<&str> = DELETED_PEOPLE
        .iter()
        .map(|i| workspace.people[*i].as_str())
        .collect();

    // Nothing parked anywhere: every queue and every DLQ is empty.
    pipeline::assert_nothing_parked(&config, &queues).await;
    let unexpected_attio = attio_fake.unexpected.lock().expect("lock").clone();
    assert!(
        unexpected_attio.is_empty(),
        "unexpected Attio calls: {unexpected_attio:?}"
    );

    // HubSpot holds every person, note and task with its current values.
    let mapped = mappings_of(&ctx, &merges).await;
    let state = hubspot_fake.state.lock().expect("state");
    assert!(
        state.unexpected.is_empty(),
        "unexpected HubSpot calls: {:?}",
        state.unexpected
    );
    check_merges(&state, &mapped, &workspace, &merges, &synced);
    let gone: BTreeSet<&str> = merges.iter().flat_map(AttioMerge::gone).collect();
    // The contact a person's notes and tasks belong to: a merged-away person's is the merged
    // record's.
    let contact_of = |person: &str| {
        let owner = merges
            .iter()
            .find(|m| m.originals.iter().any(|o| o == person))
            .map_or(person, |m| m.merged.as_str());
        state.contacts.get(owner).map(|c| c.id.clone())
    };
    let mut lost = 0;
    for person in &deleted_people {
        assert!(
            !state.contacts.contains_key(*person),
            "deleted person {person} has no active contact"
        );
    }
    for person in workspace
        .people
        .iter()
        .filter(|p| !gone.contains(p.as_str()) && !deleted_people.contains(p.as_str()))
    {
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
    for archived in state.archived_contacts.values() {
        let owner = archived
            .properties
            .get("attio_record_id")
            .and_then(|v| v.as_str());
        assert!(
            owner.is_some_and(|o| deleted_people.contains(o)),
            "only deleted people's contacts are archived: {archived:?}"
        );
    }
    let new_records = merges
        .iter()
        .filter(|m| m.model == MergeModel::NewRecord)
        .count();
    assert_eq!(
        state.contacts.len(),
        PEOPLE_COUNT - gone.len() + new_records - deleted_people.len(),
        "one contact per live Attio person"
    );
    assert_eq!(
        state.merges.made.len(),
        merges.len(),
        "one HubSpot merge per Attio merge: {:?}",
        state.merges.made
    );
    for (person, id) in &preexisting {
        if let Some(contact) = state.contacts.get(person) {
            // A survivor's contact is the one its adopted contact was merged into.
            let adopted = state.merges.resolve(id);
            assert_eq!(contact.id, adopted, "{person} adopted, not duplicated");
        }
    }
    let mut duplicates = 0;
    let mut deleted_left_active = 0;
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
            if let Some((_, mapped, before)) = before_delete.get(id) {
                // Deleted: its mapped copy is archived and nothing new is active; what stays is
                // a duplicate an unanswered create left before the delete (no mapping names it).
                for copy in &copies {
                    assert!(
                        copy.id != *mapped && before.contains(&copy.id),
                        "deleted {object} {id} left active: {copy:?}"
                    );
                }
                deleted_left_active += copies.len();
                continue;
            }
            if copies.is_empty() {
                lost += 1;
                continue;
            }
            duplicates += copies.len() - 1;
            let contact_id = contact_of(person).expect("the person's contact");
            for copy in &copies {
                assert!(
                    copy.associations.iter().any(|(_, to)| *to == contact_id),
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
    let aws_faults = service.store().injected() + service.queue().plan.injected();
    println!(
        "pipeline chaos: deliveries={} ingest_attempts={} ingest_killed={} aws_faults_injected={aws_faults} \
         attio_faults_injected={} hubspot_faults_injected={} consumer_invocations={} consumers_killed={} \
         redeliveries={} hubspot_lost_create_answers={} marker_searches={} crm_duplicates={duplicates} lost={lost} \
         attio_deletes={} deleted_left_active={deleted_left_active} \
         attio_merges={} merge_deliveries={} hubspot_merges={} contacts={}",
        bodies.len()
            + merge_bodies.len()
            + 2 * racing.len()
            + racing_deletes.len()
            + 2 * stale.len(),
        Counts::get(&counts.ingest_attempts),
        Counts::get(&counts.ingest_killed),
        attio_fake.dice.injected(),
        hubspot_fake.dice.injected(),
        Counts::get(&counts.invocations),
        Counts::get(&counts.consumers_killed),
        Counts::get(&counts.redeliveries),
        state.lost_create_answers,
        state.marker_searches,
        doomed.len(),
        merges.len(),
        merge_bodies.len(),
        state.merges.made.len(),
        state.contacts.len(),
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
        Counts::get(&counts.ingest_killed) > 0,
        "some ingest requests were killed mid-flight"
    );
    assert!(
        Counts::get(&counts.consumers_killed) > 0,
        "some consumer invocations were killed mid-flight"
    );
    assert_eq!(lost, 0, "every acknowledged delivery reached HubSpot");
    assert!(
        state.lost_create_answers >= 5,
        "creates lost their answer ({}), so a blind retry would have duplicated",
        state.lost_create_answers
    );
    assert_eq!(
        duplicates, 0,
        "no note or task twice in HubSpot, though {} creates lost their answer",
        state.lost_create_answers
    );
    assert_eq!(
        deleted_left_active, 0,
        "nothing Attio deleted is left active in HubSpot"
    );
}
