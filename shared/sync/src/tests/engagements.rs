//! Notes and tasks through the one engagement handler: created once then updated, archived on
//! delete, retried while another invocation creates, completion carried to the CRM.

use std::time::Duration;

use relay_attio::AttioCall;
use relay_crm::{Association, CrmError, CrmId, CrmObject, CrmOp, CrmSink, OutboxEntry, Properties};
use relay_events::clock::Clock;
use relay_mappings::{IdMappings, Reservation};
use serde_json::{Value, json};

use super::*;
use crate::{BatchHandler, CREATE_LEASE, NotesHandler, TasksHandler};
use relay_events::clock::unix_now as now;

const NOTE: &str = "ff3f3bd4-40f4-4f80-8187-cd02385af424";
const TASK: &str = "649e34f4-c39a-4f4d-99ef-48a36bef8f04";

fn note_event(kind: &str) -> Value {
    json!({"event_type": kind,
        "id": {"workspace_id": WS, "note_id": NOTE},
        "parent_object_id": PEOPLE, "parent_record_id": ADA, "actor": actor()})
}

fn task_event(kind: &str) -> Value {
    json!({"event_type": kind, "id": {"workspace_id": WS, "task_id": TASK}, "actor": actor()})
}

fn creates(calls: &[OutboxEntry]) -> Vec<(Properties, Vec<Association>)> {
    calls
        .iter()
        .filter_map(|c| match c {
            OutboxEntry::Create {
                properties,
                associations,
                ..
            } => Some((properties.clone(), associations.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_note_is_created_once_with_its_parent_then_updated() {
    let ctx = context();
    ctx.attio.put_note(note(NOTE, "people", ADA));
    ctx.attio
        .put_record("people", person(ADA, "ada@example.com", "Ada"));
    let handler = NotesHandler::new(ctx.clone());

    let first = [
        inbound("c", note_event("note.created")),
        inbound("u", note_event("note-content.updated")),
    ];
    let outcomes = by_message(handler.handle(&first).await);
    assert!(
        outcomes.values().all(|d| *d == Disposition::Done),
        "{outcomes:?}"
    );
    let calls = ctx.crm.calls();
    let created = creates(&calls);
    assert_eq!(created.len(), 1, "{calls:?}");
    let (properties, associations) = &created[0];
    // HTML with the title in bold; the time in epoch milliseconds (2026-11-03T10:00:00Z).
    assert_eq!(
        properties["hs_note_body"],
        "<p><strong>Call notes</strong></p><p>Discussed the engine.</p>"
    );
    assert_eq!(properties["hs_timestamp"], "1793700000000");
    // The parent was never synced: it is upserted first so the note can point at it.
    assert_eq!(upserts(&calls).len(), 1);
    let parent = ctx
        .mappings
        .get(CrmObject::Contacts, ADA)
        .await
        .expect("get");
    assert_eq!(
        associations,
        &[Association {
            to: CrmObject::Contacts,
            id: parent.expect("parent mapped")
        }]
    );
    let note_id = ctx.mappings.get(CrmObject::Notes, NOTE).await.expect("get");
    let note_id = note_id.expect("the note's HubSpot id is kept");

    let retried = by_message(
        handler
            .handle(&[inbound("r", note_event("note.updated"))])
            .await,
    );
    assert_eq!(retried["r"], Disposition::Done);
    let calls = ctx.crm.calls();
    assert_eq!(
        creates(&calls).len(),
        1,
        "a retry must not create a second note"
    );
    // The update only: the create made the parent's association and confirmed it, and the
    // parent has not changed, so no association call is repeated.
    let last = calls.last().expect("a call");
    assert!(
        matches!(last, OutboxEntry::Update { id, .. } if *id == note_id),
        "{last:?}"
    );
    let notes_read = ctx
        .attio
        .calls()
        .iter()
        .filter(|c| matches!(c, AttioCall::Note(_)))
        .count();
    assert_eq!(notes_read, 2, "one read per batch");
}

#[tokio::test]
async fn deleted_notes_and_tasks_archive_their_copies_and_forget_them() {
    let ctx = context();
    for (object, id, crm) in [
        (CrmObject::Notes, NOTE, "31"),
        (CrmObject::Tasks, TASK, "32"),
    ] {
        let crm = CrmId(crm.into());
        ctx.mappings.put(object, id, &crm).await.expect("put");
    }
    let notes = NotesHandler::new(ctx.clone());
    let tasks = TasksHandler::new(ctx.clone());
    // An update in the same batch as the delete is moot.
    let note_batch = [
        inbound("nu", note_event("note.updated")),
        inbound("nd", note_event("note.deleted")),
    ];
    assert!(
        by_message(notes.handle(&note_batch).await)
            .values()
            .all(|d| *d == Disposition::Done)
    );
    // A task Attio answers 404 for was deleted too.
    let task_batch = [inbound("tu", task_event("task.updated"))];
    assert_eq!(
        by_message(tasks.handle(&task_batch).await)["tu"],
        Disposition::Done
    );

    let archived: Vec<_> = ctx.crm.calls();
    assert_eq!(
        archived,
        [
            OutboxEntry::Archive {
                object: CrmObject::Notes,
                id: CrmId("31".into())
            },
            OutboxEntry::Archive {
                object: CrmObject::Tasks,
                id: CrmId("32".into())
            },
        ]
    );
    assert_eq!(
        ctx.mappings.get(CrmObject::Notes, NOTE).await.expect("get"),
        None
    );
    assert_eq!(
        ctx.mappings.get(CrmObject::Tasks, TASK).await.expect("get"),
        None
    );
    assert_eq!(ctx.attio.calls(), [AttioCall::Task(TASK.into())]);
}

#[tokio::test]
async fn a_create_in_flight_elsewhere_is_retried_and_a_failed_create_releases_its_claim() {
    let ctx = context();
    ctx.attio.put_task(task(TASK, "Call Ada", false, &[]));
    let handler = TasksHandler::new(ctx.clone());
    let batch = [inbound("t", task_event("task.created"))];
    let held = ctx
        .mappings
        .reserve(CrmObject::Tasks, TASK, now(), CREATE_LEASE);
    assert_eq!(held.await.expect("reserve"), Reservation::Reserved);

    let busy = by_message(handler.handle(&batch).await);
    assert!(
        is_retry(&busy["t"], "being created by another invocation"),
        "{busy:?}"
    );
    assert!(ctx.crm.calls().is_empty());

    // The other creator's lease lapses; this create fails, and gives its claim back.
    ctx.mappings
        .remove(CrmObject::Tasks, TASK)
        .await
        .expect("remove");
    ctx.crm
        .fail_next(CrmOp::Create, crm_unavailable("create tasks"));
    assert!(is_retry(
        &by_message(handler.handle(&batch).await)["t"],
        "CRM:"
    ));
    let claim = ctx
        .mappings
        .reserve(CrmObject::Tasks, TASK, now(), Duration::ZERO);
    assert_eq!(claim.await.expect("reserve"), Reservation::Reserved);
}

#[tokio::test]
async fn an_update_of_a_copy_deleted_in_the_crm_forgets_it_so_the_retry_recreates() {
    let ctx = context();
    ctx.attio.put_task(task(TASK, "Call Ada", false, &[]));
    let copy = CrmId("40".into());
    ctx.mappings
        .put(CrmObject::Tasks, TASK, &copy)
        .await
        .expect("put");
    let gone = CrmError::NotFound {
        operation: "update tasks".into(),
    };
    ctx.crm.fail_next(CrmOp::Update, gone);
    let batch = [inbound("t", task_event("task.updated"))];

    let outcome = by_message(TasksHandler::new(ctx.clone()).handle(&batch).await);

    assert!(
        is_retry(&outcome["t"], "HubSpot tasks 40 was deleted; recreating"),
        "{outcome:?}"
    );
    assert_eq!(
        ctx.mappings.get(CrmObject::Tasks, TASK).await.expect("get"),
        None
    );
}

#[tokio::test]
async fn task_completion_and_subject_reach_the_crm() {
    let ctx = context();
    let long_first_line = "x".repeat(250);
    let content = format!("{long_first_line}\nsecond line");
    ctx.attio.put_task(task(
        TASK,
        &content,
        false,
        &[(PROJECTS, "p1"), (PEOPLE, ADA)],
    ));
    ctx.attio
        .put_record("people", person(ADA, "ada@example.com", "Ada"));
    let handler = TasksHandler::new(ctx.clone());
    let batch = [inbound("t", task_event("task.created"))];
    assert_eq!(
        by_message(handler.handle(&batch).await)["t"],
        Disposition::Done
    );

    ctx.attio
        .put_task(task(TASK, &content, true, &[(PEOPLE, ADA)]));
    let batch = [inbound("done", task_event("task.updated"))];
    assert_eq!(
        by_message(handler.handle(&batch).await)["done"],
        Disposition::Done
    );

    let calls = ctx.crm.calls();
    let created = creates(&calls);
    let (properties, associations) = &created[0];
    assert_eq!(properties["hs_task_status"], "NOT_STARTED");
    assert_eq!(properties["hs_task_subject"].chars().count(), 200);
    assert_eq!(
        properties["hs_task_body"],
        format!("<p>{long_first_line}<br>second line</p>")
    );
    // No deadline: due when created (2026-11-04T08:00:00Z), in epoch milliseconds.
    assert_eq!(properties["hs_timestamp"], "1793779200000");
    // The unmapped project is left out of the associations; the person is associated.
    assert_eq!(associations.len(), 1);
    assert_eq!(associations[0].to, CrmObject::Contacts);
    let mut updates = calls.iter().rev();
    let last_update = updates.find(|c| matches!(c, OutboxEntry::Update { .. }));
    let Some(OutboxEntry::Update { properties, .. }) = last_update else {
        panic!("the completion is an update: {calls:?}");
    };
    assert_eq!(properties["hs_task_status"], "COMPLETED");
}

#[tokio::test]
async fn a_date_only_deadline_is_due_at_midnight_utc_and_markup_is_escaped() {
    let ctx = context();
    let mut due = task(TASK, "Review <contract> & sign\nby Friday", false, &[]);
    due.deadline_at = Some("2026-12-01".into());
    ctx.attio.put_task(due);
    let handler = TasksHandler::new(ctx.clone());
    let batch = [inbound("t", task_event("task.created"))];
    assert_eq!(
        by_message(handler.handle(&batch).await)["t"],
        Disposition::Done
    );
    let calls = ctx.crm.calls();
    let (properties, _) = &creates(&calls)[0];
    assert_eq!(properties["hs_timestamp"], "1796083200000");
    assert_eq!(properties["hs_task_subject"], "Review <contract> & sign");
    assert_eq!(
        properties["hs_task_body"],
        "<p>Review &lt;contract&gt; &amp; sign<br>by Friday</p>"
    );
}

#[tokio::test]
async fn events_without_the_id_are_dead_lettered() {
    let ctx = context();
    let batch = [inbound("r", record_event("record.created", PEOPLE, ADA))];
    let outcome = by_message(NotesHandler::new(ctx.clone()).handle(&batch).await);
    assert_eq!(
        outcome["r"],
        Disposition::dead_letter("record.created does not carry the id this consumer needs")
    );
    assert!(ctx.attio.calls().is_empty() && ctx.crm.calls().is_empty());
}

/// The records the CRM task `id` is associated with, by CRM id.
fn task_links(ctx: &Ctx, id: &CrmId) -> Vec<CrmId> {
    let links = ctx.crm.associations().into_iter();
    links
        .filter(|(from, from_id, _, _)| *from == CrmObject::Tasks && from_id == id)
        .map(|(_, _, _, to_id)| to_id)
        .collect()
}

async fn contact_of(ctx: &Ctx, record_id: &str) -> CrmId {
    let id = ctx.mappings.get(CrmObject::Contacts, record_id).await;
    id.expect("get").expect("the person is synced")
}

#[tokio::test]
async fn a_tasks_linked_records_follow_attio_and_hand_made_links_stay() {
    let ctx = with_people();
    ctx.attio
        .put_task(task(TASK, "Call", false, &[(PEOPLE, ADA), (PEOPLE, GRACE)]));
    let handler = TasksHandler::new(ctx.clone());
    let done = |outcomes: Vec<crate::MessageOutcome>, m: &str| {
        assert_eq!(by_message(outcomes)[m], Disposition::Done);
    };
    done(
        handler
            .handle(&[inbound("c", task_event("task.created"))])
            .await,
        "c",
    );
    let task_id = ctx.mappings.get(CrmObject::Tasks, TASK).await.expect("get");
    let task_id = task_id.expect("task mapped");
    let (ada, grace) = (contact_of(&ctx, ADA).await, contact_of(&ctx, GRACE).await);
    let mut both = vec![ada.clone(), grace.clone()];
    both.sort();
    assert_eq!(task_links(&ctx, &task_id), both);
    // A HubSpot user links the task to a contact the relay knows nothing of.
    let by_hand = CrmId("hand-made".into());
    ctx.crm.associate_by_hand((
        CrmObject::Tasks,
        task_id.clone(),
        CrmObject::Contacts,
        by_hand.clone(),
    ));

    // Grace is unlinked in Attio: her link goes, Ada's and the hand-made one stay.
    ctx.attio
        .put_task(task(TASK, "Call", false, &[(PEOPLE, ADA)]));
    for delivery in ["u", "u-again"] {
        done(
            handler
                .handle(&[inbound(delivery, task_event("task.updated"))])
                .await,
            delivery,
        );
    }

    let mut expected = vec![ada, by_hand];
    expected.sort();
    assert_eq!(task_links(&ctx, &task_id), expected);
    let removed: Vec<_> = ctx
        .crm
        .calls()
        .into_iter()
        .filter(|c| matches!(c, OutboxEntry::Dissociate { .. }))
        .collect();
    assert_eq!(
        removed,
        [OutboxEntry::Dissociate {
            from: CrmObject::Tasks,
            from_id: task_id,
            to: CrmObject::Contacts,
            to_id: grace,
        }],
        "removed once, although delivered twice"
    );
}

#[tokio::test]
async fn an_update_linking_a_record_never_synced_syncs_it_first_or_retries() {
    let ctx = with_people();
    ctx.attio
        .put_task(task(TASK, "Call", false, &[(PEOPLE, ADA)]));
    let handler = TasksHandler::new(ctx.clone());
    let created = handler
        .handle(&[inbound("c", task_event("task.created"))])
        .await;
    assert_eq!(by_message(created)["c"], Disposition::Done);
    let task_id = ctx.mappings.get(CrmObject::Tasks, TASK).await.expect("get");
    let task_id = task_id.expect("task mapped");

    // Grace, never synced, is linked in Attio; reading her fails once (she is read as the
    // records consumer reads: the query, then her own GET when the query fails a 5xx).
    ctx.attio
        .put_task(task(TASK, "Call", true, &[(PEOPLE, ADA), (PEOPLE, GRACE)]));
    ctx.attio
        .fail_next_query("people", attio_api(503, "/v2/objects/people/records/query"));
    ctx.attio.fail_next(
        relay_attio::AttioCall::record("people", GRACE),
        attio_api(503, "/v2/objects/people/records"),
    );
    let calls_before = ctx.crm.calls().len();
    let first = handler
        .handle(&[inbound("u", task_event("task.updated"))])
        .await;
    let first = by_message(first);
    assert!(is_retry(&first["u"], "503"), "{first:?}");
    assert_eq!(
        ctx.crm.calls().len(),
        calls_before,
        "nothing is written before the linked record is synced"
    );

    let retried = handler
        .handle(&[inbound("u", task_event("task.updated"))])
        .await;
    assert_eq!(by_message(retried)["u"], Disposition::Done);
    let grace = contact_of(&ctx, GRACE).await;
    assert!(task_links(&ctx, &task_id).contains(&grace));
    let status = &ctx.crm.objects(CrmObject::Tasks)[&task_id]["hs_task_status"];
    assert_eq!(status, "COMPLETED");
}

/// A clock the test steps: the reservation lease and the settle delay pass without sleeping.
#[derive(Debug, Clone)]
struct StepClock(Arc<std::sync::atomic::AtomicI64>);

impl StepClock {
    const T0: i64 = 1_790_000_000;

    fn new() -> Self {
        Self(Arc::new(Self::T0.into()))
    }

    fn at(&self, secs_after_t0: i64) {
        self.0.store(
            Self::T0 + secs_after_t0,
            std::sync::atomic::Ordering::SeqCst,
        );
    }
}

impl relay_events::clock::Clock for StepClock {
    fn now(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Ada's note in Attio, Ada already in the CRM, and a context on a stepped clock at T0.
async fn note_on_a_clock() -> (Arc<Ctx>, StepClock, CrmId) {
    let clock = StepClock::new();
    let ctx = context_at(clock.clone());
    ctx.attio.put_note(note(NOTE, "people", ADA));
    ctx.attio
        .put_record("people", person(ADA, "ada@example.com", "Ada"));
    let contact = ctx.crm.seed(CrmObject::Contacts, Properties::new());
    ctx.mappings
        .put(CrmObject::Contacts, ADA, &contact)
        .await
        .expect("put");
    (ctx, clock, contact)
}

/// What an invocation that died after HubSpot made the note leaves: the reservation taken and
/// the attempt recorded at `reserved + attempted_after`, the note in HubSpot with its marker,
/// no mapping.
async fn a_dead_creator(ctx: &Ctx, clock: &StepClock, attempted_after: i64) {
    let n = CrmObject::Notes;
    let reserved = ctx.mappings.reserve(n, NOTE, clock.now(), CREATE_LEASE);
    assert_eq!(reserved.await.expect("reserve"), Reservation::Reserved);
    let at = clock.now() + attempted_after;
    let recorded = ctx.mappings.record_create_attempt(n, NOTE, at);
    recorded.await.expect("record the attempt");
}

fn marker_of(properties: &Properties) -> Option<&str> {
    properties.get("attio_note_id").map(String::as_str)
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_found_by_its_marker_and_never_made_twice() {
    let (ctx, clock, contact) = note_on_a_clock().await;
    let handler = NotesHandler::new(ctx.clone());
    ctx.crm.lose_next_create_answers(1);

    let first = by_message(
        handler
            .handle(&[inbound("c", note_event("note.created"))])
            .await,
    );
    assert!(is_retry(&first["c"], "outcome unknown"), "{first:?}");
    let made = ctx.crm.objects(CrmObject::Notes);
    assert_eq!(made.len(), 1, "HubSpot made the note");
    let (copy, props) = made.into_iter().next().expect("one note");
    assert_eq!(
        marker_of(&props),
        Some(NOTE),
        "every create carries the marker"
    );
    assert_eq!(
        ctx.mappings.get(CrmObject::Notes, NOTE).await.expect("get"),
        None
    );

    // Inside the lease: still the first creator's.
    clock.at(60);
    let busy = by_message(
        handler
            .handle(&[inbound("u", note_event("note.updated"))])
            .await,
    );
    assert!(is_retry(&busy["u"], "being created"), "{busy:?}");

    // SQS redelivers after the visibility timeout: the earlier attempt is looked up first.
    clock.at(361);
    let again = by_message(
        handler
            .handle(&[inbound("c", note_event("note.created"))])
            .await,
    );
    assert_eq!(again["c"], Disposition::Done, "{again:?}");
    assert_eq!(creates(&ctx.crm.calls()).len(), 1, "no second note");
    assert_eq!(ctx.crm.objects(CrmObject::Notes).len(), 1);
    assert_eq!(ctx.crm.searches(), [(CrmObject::Notes, NOTE.to_owned())]);
    assert_eq!(
        ctx.mappings.get(CrmObject::Notes, NOTE).await.expect("get"),
        Some(copy.clone()),
        "the copy is adopted"
    );
    let updated = ctx
        .crm
        .calls()
        .into_iter()
        .any(|c| matches!(c, OutboxEntry::Update { id, .. } if id == copy));
    assert!(updated, "the adopted copy gets the current values");
    assert!(ctx.crm.associations().contains(&(
        CrmObject::Notes,
        copy,
        CrmObject::Contacts,
        contact
    )));

    // From now on it is mapped: later events update without searching.
    clock.at(900);
    let later = by_message(
        handler
            .handle(&[inbound("l", note_event("note.updated"))])
            .await,
    );
    assert_eq!(later["l"], Disposition::Done);
    assert_eq!(ctx.crm.searches().len(), 1);
    assert_eq!(creates(&ctx.crm.calls()).len(), 1);
}

#[tokio::test]
async fn a_note_made_by_an_invocation_that_died_before_its_mapping_is_adopted() {
    let (ctx, clock, contact) = note_on_a_clock().await;
    a_dead_creator(&ctx, &clock, 1).await;
    let mut props: Properties = [("hs_note_body".to_owned(), "old".to_owned())].into();
    props.insert("attio_note_id".into(), NOTE.into());
    let association = [Association {
        to: CrmObject::Contacts,
        id: contact,
    }];
    let made = ctx.crm.create(CrmObject::Notes, &props, &association);
    let copy = made.await.expect("the dead invocation's create");

    clock.at(361);
    let handler = NotesHandler::new(ctx.clone());
    let out = by_message(
        handler
            .handle(&[inbound("c", note_event("note.created"))])
            .await,
    );
    assert_eq!(out["c"], Disposition::Done, "{out:?}");
    assert_eq!(
        creates(&ctx.crm.calls()).len(),
        1,
        "only the dead invocation's"
    );
    assert_eq!(
        ctx.mappings.get(CrmObject::Notes, NOTE).await.expect("get"),
        Some(copy.clone())
    );
    let held = ctx.crm.objects(CrmObject::Notes);
    assert_eq!(
        held[&copy]["hs_note_body"],
        "<p><strong>Call notes</strong></p><p>Discussed the engine.</p>",
        "updated to Attio's current content"
    );
}

#[tokio::test]
async fn an_attempt_younger_than_the_settle_delay_is_retried_without_a_search() {
    let (ctx, clock, _) = note_on_a_clock().await;
    // A slow creator recorded its attempt 100 s into its 120 s lease, then died.
    a_dead_creator(&ctx, &clock, 100).await;
    let handler = NotesHandler::new(ctx.clone());

    clock.at(121);
    let young = by_message(
        handler
            .handle(&[inbound("c", note_event("note.created"))])
            .await,
    );
    assert!(is_retry(&young["c"], "21 s ago"), "{young:?}");
    assert!(ctx.crm.searches().is_empty(), "search is not trusted yet");
    assert!(creates(&ctx.crm.calls()).is_empty());

    // Once settled (and the retry's own lease lapsed) the search answers.
    clock.at(100 + 121 + 60);
    let settled = by_message(
        handler
            .handle(&[inbound("c", note_event("note.created"))])
            .await,
    );
    assert_eq!(settled["c"], Disposition::Done, "{settled:?}");
    assert_eq!(ctx.crm.searches().len(), 1);
}

#[tokio::test]
async fn an_earlier_attempt_not_found_after_the_settle_delay_is_created_once() {
    let (ctx, clock, _) = note_on_a_clock().await;
    // Died after recording the attempt, before the create was sent.
    a_dead_creator(&ctx, &clock, 0).await;
    let handler = NotesHandler::new(ctx.clone());

    clock.at(361);
    let out = by_message(
        handler
            .handle(&[inbound("c", note_event("note.created"))])
            .await,
    );
    assert_eq!(out["c"], Disposition::Done, "{out:?}");
    assert_eq!(ctx.crm.searches(), [(CrmObject::Notes, NOTE.to_owned())]);
    let made = creates(&ctx.crm.calls());
    assert_eq!(made.len(), 1);
    assert_eq!(marker_of(&made[0].0), Some(NOTE));
    let mapped = ctx.mappings.get(CrmObject::Notes, NOTE).await.expect("get");
    assert!(mapped.is_some(), "mapped to the new copy");
}

#[tokio::test]
async fn a_refused_create_gives_the_reservation_back_but_an_unknown_one_keeps_it() {
    let (ctx, clock, _) = note_on_a_clock().await;
    let handler = NotesHandler::new(ctx.clone());
    let refused = CrmError::Rejected {
        operation: "create notes".into(),
        status: 400,
        category: Some("VALIDATION_ERROR".into()),
        message: "hs_timestamp is invalid".into(),
    };
    ctx.crm.fail_next(CrmOp::Create, refused);
    let out = by_message(
        handler
            .handle(&[inbound("c", note_event("note.created"))])
            .await,
    );
    assert!(is_dead_letter(&out["c"], "hs_timestamp"), "{out:?}");
    let n = CrmObject::Notes;
    let next = ctx.mappings.reserve(n, NOTE, clock.now(), CREATE_LEASE);
    assert_eq!(
        next.await.expect("reserve"),
        Reservation::Reserved,
        "nothing was made"
    );
    ctx.mappings.remove(n, NOTE).await.expect("remove");

    ctx.crm.lose_next_create_answers(1);
    let out = by_message(
        handler
            .handle(&[inbound("c", note_event("note.created"))])
            .await,
    );
    assert!(is_retry(&out["c"], "outcome unknown"), "{out:?}");
    clock.at(CREATE_LEASE.as_secs() as i64 + 1);
    let next = ctx.mappings.reserve(n, NOTE, clock.now(), CREATE_LEASE);
    assert_eq!(
        next.await.expect("reserve"),
        Reservation::Unresolved {
            attempted_at: StepClock::T0
        }
    );
}
