//! Deletes racing writes in flight (`tombstones.rs`): two consumer containers share Attio,
//! HubSpot and the mappings store; the writer's HubSpot call runs the other container's delete
//! at the racy moment (a hook on that call), or the steps of a crashed writer are run by hand
//! in the racy order. Nothing deleted may end active in HubSpot, and merges still re-point.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use relay_attio::AttioCall;
use relay_crm::{
    Association, CrmId, CrmObject, CrmOp, CrmSink, ID_PROPERTY, OutboxEntry, Properties,
    RecordUpsert, UpsertReport,
};
use relay_mappings::{IdMappings, Reservation, Tombstones};
use serde_json::{Value, json};

use super::*;
use crate::{BatchHandler, CREATE_LEASE, NotesHandler, RecordsHandler, TasksHandler};

const NOTE: &str = "ff3f3bd4-40f4-4f80-8187-cd02385af424";
const TASK: &str = "649e34f4-c39a-4f4d-99ef-48a36bef8f04";
/// The record Attio's merge of Ada and Grace made (current model).
const MERGED: &str = "9e9e9e9e-0000-4000-8000-000000000009";

type Hook = Pin<Box<dyn Future<Output = ()> + Send>>;

/// When the hook runs, relative to the HubSpot call it is set on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// The call was sent but not yet applied (the writer read Attio before the delete).
    Before,
    /// The call was applied, its answer not yet back (no mapping written yet).
    After,
}

/// One container's view of the shared portal: every call goes to `crm`; the first call of the
/// hooked kind runs the hook (another container's work) at the chosen moment.
struct Racing {
    crm: Arc<MemoryCrm>,
    hook: Mutex<Option<(CrmOp, At, Hook)>>,
}

impl Racing {
    fn new(crm: &Arc<MemoryCrm>) -> Self {
        Self {
            crm: Arc::clone(crm),
            hook: Mutex::new(None),
        }
    }

    fn on(&self, op: CrmOp, at: At, hook: Hook) {
        *self.hook.lock().expect("hook") = Some((op, at, hook));
    }

    async fn run(&self, op: CrmOp, at: At) {
        let hook = {
            let mut slot = self.hook.lock().expect("hook");
            match slot.take() {
                Some((o, a, hook)) if o == op && a == at => Some(hook),
                other => {
                    *slot = other;
                    None
                }
            }
        };
        if let Some(hook) = hook {
            hook.await;
        }
    }
}

impl CrmSink for Racing {
    async fn upsert_records(
        &self,
        object: CrmObject,
        records: &[RecordUpsert],
    ) -> Result<UpsertReport, relay_crm::CrmError> {
        self.run(CrmOp::Upsert, At::Before).await;
        let report = self.crm.upsert_records(object, records).await;
        self.run(CrmOp::Upsert, At::After).await;
        report
    }

    async fn create(
        &self,
        object: CrmObject,
        properties: &Properties,
        associations: &[Association],
    ) -> Result<CrmId, relay_crm::CrmError> {
        self.run(CrmOp::Create, At::Before).await;
        let id = self.crm.create(object, properties, associations).await;
        self.run(CrmOp::Create, At::After).await;
        id
    }

    async fn update(
        &self,
        object: CrmObject,
        id: &CrmId,
        properties: &Properties,
    ) -> Result<(), relay_crm::CrmError> {
        self.run(CrmOp::Update, At::Before).await;
        let updated = self.crm.update(object, id, properties).await;
        self.run(CrmOp::Update, At::After).await;
        updated
    }

    async fn read(
        &self,
        object: CrmObject,
        id: &CrmId,
        properties: &[&str],
    ) -> Result<Option<Properties>, relay_crm::CrmError> {
        self.crm.read(object, id, properties).await
    }

    async fn archive(&self, object: CrmObject, id: &CrmId) -> Result<(), relay_crm::CrmError> {
        self.crm.archive(object, id).await
    }

    async fn find_by_marker(
        &self,
        object: CrmObject,
        attio_id: &str,
    ) -> Result<Vec<CrmId>, relay_crm::CrmError> {
        self.crm.find_by_marker(object, attio_id).await
    }

    async fn merge(
        &self,
        object: CrmObject,
        primary: &CrmId,
        duplicate: &CrmId,
    ) -> Result<CrmId, relay_crm::CrmError> {
        self.crm.merge(object, primary, duplicate).await
    }

    async fn associate(
        &self,
        from: CrmObject,
        from_id: &CrmId,
        to: CrmObject,
        to_id: &CrmId,
    ) -> Result<(), relay_crm::CrmError> {
        self.crm.associate(from, from_id, to, to_id).await
    }

    async fn dissociate(
        &self,
        from: CrmObject,
        from_id: &CrmId,
        to: CrmObject,
        to_id: &CrmId,
    ) -> Result<(), relay_crm::CrmError> {
        self.crm.dissociate(from, from_id, to, to_id).await
    }
}

type RacingCtx = SyncContext<Racing, MemoryMappings, relay_attio::MemoryAttio>;

/// Two containers (the writer and the deleter) over one workspace, portal and mappings store,
/// with Ada and Grace in Attio's people. Returns them and the portal.
fn two_containers() -> (Arc<RacingCtx>, Arc<RacingCtx>, Arc<MemoryCrm>) {
    let base = with_people();
    let crm = Arc::new(MemoryCrm::new());
    let make = |attio| {
        Arc::new(SyncContext::with_attio(
            attio,
            Racing::new(&crm),
            base.mappings.clone(),
            FieldMapping::default(),
        ))
    };
    let writer = make(base.attio.another_container());
    let deleter = make(base.attio.another_container());
    (writer, deleter, crm)
}

/// Runs `events` through `handler` inside a hook, keeping the outcomes for the test to read.
fn in_hook<H: BatchHandler + Send + Sync + 'static>(
    handler: H,
    events: Vec<InboundEvent>,
    seen: &Arc<Mutex<Vec<MessageOutcome>>>,
) -> Hook {
    let seen = Arc::clone(seen);
    Box::pin(async move {
        let outcomes = handler.handle(&events).await;
        seen.lock().expect("seen").extend(outcomes);
    })
}

fn note_event(kind: &str) -> Value {
    json!({"event_type": kind,
        "id": {"workspace_id": WS, "note_id": NOTE},
        "parent_object_id": PEOPLE, "parent_record_id": ADA, "actor": actor()})
}

fn task_event(kind: &str) -> Value {
    json!({"event_type": kind, "id": {"workspace_id": WS, "task_id": TASK}, "actor": actor()})
}

fn created(crm: &MemoryCrm, object: CrmObject) -> usize {
    let calls = crm.calls();
    let creates = calls
        .iter()
        .filter(|c| matches!(c, OutboxEntry::Create { object: o, .. } if *o == object));
    creates.count()
}

/// The portal's active contacts that carry `record_id`.
fn contacts_of(crm: &MemoryCrm, record_id: &str) -> Vec<CrmId> {
    let contacts = crm.objects(CrmObject::Contacts).into_iter();
    contacts
        .filter(|(_, p)| p.get(ID_PROPERTY).is_some_and(|v| v == record_id))
        .map(|(id, _)| id)
        .collect()
}

fn all_done(outcomes: &BTreeMap<String, Disposition>) -> bool {
    outcomes.values().all(|d| *d == Disposition::Done)
}

#[tokio::test]
async fn a_note_deleted_while_its_create_is_in_flight_leaves_no_orphan() {
    for at in [At::Before, At::After] {
        let (writer, deleter, crm) = two_containers();
        writer.attio.put_note(note(NOTE, "people", ADA));
        // The deleter handles note.deleted while HubSpot is creating the note.
        let seen = Arc::default();
        let delete = vec![inbound("d", note_event("note.deleted"))];
        let hook = in_hook(NotesHandler::new(deleter.clone()), delete.clone(), &seen);
        writer.crm.on(CrmOp::Create, at, hook);

        let create = [inbound("c", note_event("note.created"))];
        let outcomes = by_message(NotesHandler::new(writer.clone()).handle(&create).await);

        assert!(all_done(&outcomes), "{at:?}: {outcomes:?}");
        let raced = by_message(seen.lock().expect("seen").clone());
        assert!(
            is_retry(&raced["d"], "another invocation creates it"),
            "{at:?}: the delete waits for the create it raced: {raced:?}"
        );
        assert_eq!(created(&crm, CrmObject::Notes), 1, "{at:?}");
        assert!(
            crm.objects(CrmObject::Notes).is_empty(),
            "{at:?}: the creator archived its note"
        );
        // The delete's retry and a redelivered create find nothing to do.
        let handler = NotesHandler::new(deleter.clone());
        assert!(all_done(&by_message(handler.handle(&delete).await)));
        let late = [inbound("u", note_event("note-content.updated"))];
        assert!(all_done(&by_message(handler.handle(&late).await)));
        assert!(all_done(&by_message(handler.handle(&create).await)));
        assert_eq!(
            created(&crm, CrmObject::Notes),
            1,
            "{at:?}: never recreated"
        );
        assert!(crm.objects(CrmObject::Notes).is_empty());
        let mapped = deleter.mappings.get(CrmObject::Notes, NOTE).await;
        assert_eq!(mapped.expect("get"), None);
    }
}

#[tokio::test]
async fn a_creator_that_dies_after_mapping_its_note_is_cleaned_up_by_the_deletes_retry() {
    let ctx = with_people();
    ctx.attio.put_note(note(NOTE, "people", ADA));
    let handler = NotesHandler::new(ctx.clone());
    let notes = CrmObject::Notes;
    // 1. A creator reserves the note ...
    let held = ctx
        .mappings
        .reserve(notes, NOTE, relay_events::clock::unix_now(), CREATE_LEASE)
        .await;
    assert_eq!(held.expect("reserve"), Reservation::Reserved);
    // 2. ... the delete comes meanwhile: buried, and retried while the create is in flight.
    let delete = [inbound("d", note_event("note.deleted"))];
    let first = by_message(handler.handle(&delete).await);
    assert!(
        is_retry(&first["d"], "another invocation creates it"),
        "{first:?}"
    );
    let buried = ctx
        .mappings
        .is_buried(notes, NOTE, relay_events::clock::unix_now())
        .await;
    assert!(buried.expect("is_buried"));
    // 3. ... the creator creates and maps its note, then dies before its tombstone check.
    let id = ctx.crm.create(notes, &Properties::new(), &[]).await;
    let id = id.expect("create");
    ctx.mappings.put(notes, NOTE, &id).await.expect("put");

    // 4. The delete's redelivery archives it; the creator's redelivered event writes nothing.
    let retried = by_message(handler.handle(&delete).await);
    assert!(all_done(&retried), "{retried:?}");
    assert!(ctx.crm.objects(notes).is_empty(), "no orphan");
    let create = [inbound("c", note_event("note.created"))];
    assert!(all_done(&by_message(handler.handle(&create).await)));
    assert!(ctx.crm.objects(notes).is_empty());
    assert_eq!(created(&ctx.crm, notes), 1);
    // Skipped before the write: Attio was not even asked.
    let asked = ctx.attio.calls().into_iter();
    assert_eq!(asked.filter(|c| matches!(c, AttioCall::Note(_))).count(), 0);
}

#[tokio::test]
async fn a_task_deleted_while_an_update_is_in_flight_stays_archived() {
    let (writer, deleter, crm) = two_containers();
    writer
        .attio
        .put_task(task(TASK, "Call Ada", false, &[(PEOPLE, ADA)]));
    let tasks = TasksHandler::new(writer.clone());
    let first = [inbound("c", task_event("task.created"))];
    assert!(all_done(&by_message(tasks.handle(&first).await)));
    assert_eq!(crm.objects(CrmObject::Tasks).len(), 1);

    // The deleter archives the task after the writer fetched it, before its PATCH lands.
    let seen = Arc::default();
    let delete = vec![inbound("d", task_event("task.deleted"))];
    let hook = in_hook(TasksHandler::new(deleter.clone()), delete, &seen);
    writer.crm.on(CrmOp::Update, At::Before, hook);
    let update = [inbound("u", task_event("task.updated"))];
    let raced = by_message(tasks.handle(&update).await);
    assert!(all_done(&by_message(seen.lock().expect("seen").clone())));

    // HubSpot answers the PATCH of the archived task 404; the writer must not recreate it:
    // this receive or its retry ends done, and nothing is created again.
    if !all_done(&raced) {
        assert!(is_retry(&raced["u"], ""), "{raced:?}");
        assert!(all_done(&by_message(tasks.handle(&update).await)));
    }
    assert!(crm.objects(CrmObject::Tasks).is_empty(), "stays archived");
    assert_eq!(created(&crm, CrmObject::Tasks), 1);
}

#[tokio::test]
async fn an_attio_not_found_for_a_note_buries_it() {
    let ctx = with_people();
    let handler = NotesHandler::new(ctx.clone());
    // Gone from Attio before the relay ever read it: Attio answers 404 `not_found`.
    let update = [inbound("u", note_event("note.updated"))];
    assert!(all_done(&by_message(handler.handle(&update).await)));
    let buried = ctx
        .mappings
        .is_buried(CrmObject::Notes, NOTE, relay_events::clock::unix_now())
        .await;
    assert!(buried.expect("is_buried"));
    assert!(ctx.crm.objects(CrmObject::Notes).is_empty());
}

/// Ada synced to one contact by the writer. Returns the contact.
async fn ada_synced(writer: &Arc<RacingCtx>, crm: &MemoryCrm) -> CrmId {
    let created = [inbound("c", record_event("record.created", PEOPLE, ADA))];
    let outcomes = by_message(RecordsHandler::new(writer.clone()).handle(&created).await);
    assert!(all_done(&outcomes), "{outcomes:?}");
    let contacts = contacts_of(crm, ADA);
    assert_eq!(contacts.len(), 1);
    contacts[0].clone()
}

#[tokio::test]
async fn a_record_deleted_while_its_update_is_in_flight_stays_archived() {
    for at in [At::Before, At::After] {
        let (writer, deleter, crm) = two_containers();
        let contact = ada_synced(&writer, &crm).await;
        // The writer has read Ada; Ada is deleted in Attio and the deleter handles it while
        // the writer's batch upsert is on its way (Before: HubSpot then creates a new contact
        // on attio_record_id, since the archived one no longer holds it).
        let seen = Arc::default();
        let delete = vec![inbound("d", record_event("record.deleted", PEOPLE, ADA))];
        let hook = in_hook(RecordsHandler::new(deleter.clone()), delete, &seen);
        writer.crm.on(CrmOp::Upsert, at, hook);

        let update = [inbound("u", record_event("record.updated", PEOPLE, ADA))];
        let outcomes = by_message(RecordsHandler::new(writer.clone()).handle(&update).await);

        assert!(all_done(&outcomes), "{at:?}: {outcomes:?}");
        assert!(all_done(&by_message(seen.lock().expect("seen").clone())));
        assert!(
            contacts_of(&crm, ADA).is_empty(),
            "{at:?}: no active contact for the deleted record: {:?}",
            crm.objects(CrmObject::Contacts)
        );
        assert_eq!(crm.current_id(CrmObject::Contacts, &contact), None);
        let mapped = writer.mappings.get(CrmObject::Contacts, ADA).await;
        assert_eq!(mapped.expect("get"), None, "{at:?}");
    }
}

#[tokio::test]
async fn a_redelivered_update_after_the_delete_recreates_nothing() {
    let ctx = with_people();
    let records = RecordsHandler::new(ctx.clone());
    let update = [inbound("u", record_event("record.updated", PEOPLE, ADA))];
    assert!(all_done(&by_message(records.handle(&update).await)));
    let delete = [inbound("d", record_event("record.deleted", PEOPLE, ADA))];
    assert!(all_done(&by_message(records.handle(&delete).await)));
    assert!(contacts_of(&ctx.crm, ADA).is_empty());
    let upserts_before = upserts(&ctx.crm.calls()).len();

    // The old update again, while Attio still answers the record (a read that raced the
    // delete): nothing is written, and Attio is not even asked.
    let reads_before = record_fetches(&ctx).len();
    assert!(all_done(&by_message(records.handle(&update).await)));
    assert!(contacts_of(&ctx.crm, ADA).is_empty(), "not recreated");
    assert_eq!(upserts(&ctx.crm.calls()).len(), upserts_before);
    assert_eq!(record_fetches(&ctx).len(), reads_before);

    // A note naming the deleted record syncs it as a parent: the upsert is archived again
    // right after, and the note waits (retried) instead of linking to a deleted contact.
    ctx.attio.put_note(note(NOTE, "people", ADA));
    let create = [inbound("c", note_event("note.created"))];
    let outcomes = by_message(NotesHandler::new(ctx.clone()).handle(&create).await);
    assert!(is_retry(&outcomes["c"], "gone"), "{outcomes:?}");
    assert!(contacts_of(&ctx.crm, ADA).is_empty(), "not recreated");
    assert!(ctx.crm.objects(CrmObject::Notes).is_empty());
}

#[tokio::test]
async fn a_merge_still_re_points_its_originals_and_buries_nothing() {
    let ctx = with_people();
    let records = RecordsHandler::new(ctx.clone());
    let created = [
        inbound("ca", record_event("record.created", PEOPLE, ADA)),
        inbound("cg", record_event("record.created", PEOPLE, GRACE)),
    ];
    assert!(all_done(&by_message(records.handle(&created).await)));
    ctx.attio.remove_record("people", ADA);
    ctx.attio.remove_record("people", GRACE);
    ctx.attio
        .put_record("people", person(MERGED, "ada@example.com", "Ada"));
    let merged_event = |duplicate: &str| {
        let mut event = record_event("record.merged", PEOPLE, MERGED);
        event["duplicate_object_id"] = json!(PEOPLE);
        event["duplicate_record_id"] = json!(duplicate);
        event
    };
    let merges = [
        inbound("m1", merged_event(ADA)),
        inbound("m2", merged_event(GRACE)),
    ];
    assert!(all_done(&by_message(records.handle(&merges).await)));
    // A late update of an original (it reads 404) archives nothing and buries nothing.
    let late = [inbound("u", record_event("record.updated", PEOPLE, ADA))];
    assert!(all_done(&by_message(records.handle(&late).await)));
    let contacts = contacts_of(&ctx.crm, MERGED);
    assert_eq!(
        contacts.len(),
        1,
        "{:?}",
        ctx.crm.objects(CrmObject::Contacts)
    );
    for original in [ADA, GRACE] {
        let buried = ctx.mappings.is_buried(
            CrmObject::Contacts,
            original,
            relay_events::clock::unix_now(),
        );
        assert!(!buried.await.expect("is_buried"), "{original}");
        let mapped = ctx.mappings.get(CrmObject::Contacts, original).await;
        assert_eq!(
            mapped.expect("get").as_ref(),
            Some(&contacts[0]),
            "{original}"
        );
    }

    // The merged record deleted later: archived, and a redelivered merge does not bring it
    // back even while Attio still answers the record.
    let delete = [inbound("d", record_event("record.deleted", PEOPLE, MERGED))];
    assert!(all_done(&by_message(records.handle(&delete).await)));
    assert!(all_done(&by_message(records.handle(&merges[..1]).await)));
    assert!(
        contacts_of(&ctx.crm, MERGED).is_empty(),
        "{:?}",
        ctx.crm.objects(CrmObject::Contacts)
    );
}
