//! `record.merged` in both of Attio's models: HubSpot ends with one object for the merged
//! record, mapped from it and both originals to the id HubSpot's merge answered, however the
//! two events of a merge arrive; `merge_in_progress` and a proxy's 404 are retried, never
//! archived.

use relay_attio::{AttioCall, AttioError, MERGE_IN_PROGRESS_CODE};
use relay_crm::{Association, CrmId, CrmObject, ID_PROPERTY, OutboxEntry};
use relay_mappings::IdMappings;
use serde_json::{Value, json};

use super::*;
use crate::{BatchHandler, NotesHandler, RecordsHandler};

/// The record Attio's merge of Ada and Grace made (current model).
const MERGED: &str = "9e9e9e9e-0000-4000-8000-000000000009";
const NOTE: &str = "ff3f3bd4-40f4-4f80-8187-cd02385af424";

fn merged_event(record_id: &str, duplicate: &str) -> Value {
    let mut event = record_event("record.merged", PEOPLE, record_id);
    event["duplicate_object_id"] = json!(PEOPLE);
    event["duplicate_record_id"] = json!(duplicate);
    event
}

async fn mapped(ctx: &Ctx, record_id: &str) -> Option<CrmId> {
    ctx.mappings
        .get(CrmObject::Contacts, record_id)
        .await
        .expect("get")
}

fn merge_calls(ctx: &Ctx) -> Vec<(CrmId, CrmId)> {
    ctx.crm
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            OutboxEntry::Merge {
                primary, duplicate, ..
            } => Some((primary, duplicate)),
            _ => None,
        })
        .collect()
}

/// Ada and Grace synced to two contacts; then Attio merges them into a new record with Ada's
/// email, and both originals read 404. Returns their contacts.
async fn synced_then_merged_in_attio(ctx: &Arc<Ctx>) -> (CrmId, CrmId) {
    let created = [
        inbound("ca", record_event("record.created", PEOPLE, ADA)),
        inbound("cg", record_event("record.created", PEOPLE, GRACE)),
    ];
    let outcomes = by_message(RecordsHandler::new(ctx.clone()).handle(&created).await);
    assert!(outcomes.values().all(|d| *d == Disposition::Done));
    let ada = mapped(ctx, ADA).await.expect("Ada synced");
    let grace = mapped(ctx, GRACE).await.expect("Grace synced");
    ctx.attio.remove_record("people", ADA);
    ctx.attio.remove_record("people", GRACE);
    ctx.attio
        .put_record("people", person(MERGED, "ada@example.com", "Ada"));
    (ada, grace)
}

/// One contact in the portal, carrying `record_id`, with every id of the merge mapped to it,
/// made by exactly one merge call. Returns it.
async fn one_contact_for(ctx: &Ctx, record_id: &str, ids: &[&str]) -> CrmId {
    let contacts = ctx.crm.objects(CrmObject::Contacts);
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    let (id, values) = contacts.into_iter().next().expect("one contact");
    assert_eq!(values[ID_PROPERTY], record_id);
    for attio_id in ids {
        assert_eq!(
            mapped(ctx, attio_id).await.as_ref(),
            Some(&id),
            "{attio_id}"
        );
    }
    assert_eq!(merge_calls(ctx).len(), 1, "{:?}", merge_calls(ctx));
    id
}

#[tokio::test]
async fn both_events_in_one_batch_end_with_one_contact_at_the_id_hubspot_answered() {
    let ctx = with_people();
    let (ada, grace) = synced_then_merged_in_attio(&ctx).await;
    let batch = [
        inbound("m1", merged_event(MERGED, ADA)),
        inbound("m2", merged_event(MERGED, GRACE)),
    ];

    let outcomes = by_message(RecordsHandler::new(ctx.clone()).handle(&batch).await);

    assert!(
        outcomes.values().all(|d| *d == Disposition::Done),
        "{outcomes:?}"
    );
    let merged = one_contact_for(&ctx, MERGED, &[MERGED, ADA, GRACE]).await;
    assert!(
        merged != ada && merged != grace,
        "HubSpot's merge made a new id"
    );
    assert_eq!(ctx.crm.current_id(CrmObject::Contacts, &ada), Some(merged));
}

#[tokio::test]
async fn the_two_events_in_two_batches_converge_in_either_order() {
    for (first, second) in [(ADA, GRACE), (GRACE, ADA)] {
        let ctx = with_people();
        synced_then_merged_in_attio(&ctx).await;
        let handler = RecordsHandler::new(ctx.clone());

        let one = by_message(
            handler
                .handle(&[inbound("m1", merged_event(MERGED, first))])
                .await,
        );
        assert_eq!(one["m1"], Disposition::Done, "first {first}");
        // Ada's contact holds the merged record's email: whichever event comes first takes
        // it; Grace's first event folds Ada's contact in at once (Ada reads 404 in Attio).
        let contact = mapped(&ctx, MERGED)
            .await
            .expect("the merged record is mapped");
        assert_eq!(mapped(&ctx, first).await, Some(contact));

        let two = by_message(
            handler
                .handle(&[inbound("m2", merged_event(MERGED, second))])
                .await,
        );
        assert_eq!(two["m2"], Disposition::Done, "second {second}");
        let merged = one_contact_for(&ctx, MERGED, &[MERGED, ADA, GRACE]).await;

        // A redelivered event finds the work done: no second merge, no error on dead ids.
        let again = by_message(
            handler
                .handle(&[inbound("m3", merged_event(MERGED, first))])
                .await,
        );
        assert_eq!(again["m3"], Disposition::Done);
        assert_eq!(
            one_contact_for(&ctx, MERGED, &[MERGED, ADA, GRACE]).await,
            merged
        );
    }
}

#[tokio::test]
async fn the_older_model_keeps_an_original_as_the_survivor() {
    for preserve in [false, true] {
        let ctx = with_people();
        if preserve {
            ctx.crm.preserve_primary_ids();
        }
        let created = [
            inbound("ca", record_event("record.created", PEOPLE, ADA)),
            inbound("cg", record_event("record.created", PEOPLE, GRACE)),
        ];
        RecordsHandler::new(ctx.clone()).handle(&created).await;
        let ada = mapped(&ctx, ADA).await.expect("Ada synced");
        // Ada survives with Grace's values merged in; Grace is gone.
        ctx.attio.remove_record("people", GRACE);

        let outcomes = by_message(
            RecordsHandler::new(ctx.clone())
                .handle(&[inbound("m", merged_event(ADA, GRACE))])
                .await,
        );

        assert_eq!(outcomes["m"], Disposition::Done);
        let merged = one_contact_for(&ctx, ADA, &[ADA, GRACE]).await;
        assert_eq!(
            merged == ada,
            preserve,
            "HubSpot's answer is what is mapped"
        );
    }
}

#[tokio::test]
async fn a_merge_still_in_progress_is_retried_then_synced_and_nothing_is_archived() {
    let ctx = with_people();
    synced_then_merged_in_attio(&ctx).await;
    let path = format!("/objects/people/records/{MERGED}");
    for _ in 0..2 {
        ctx.attio.fail_next(
            AttioCall::record("people", MERGED),
            AttioError::not_found(&path, MERGE_IN_PROGRESS_CODE, "Merge in progress."),
        );
    }
    let batch = [
        inbound("m1", merged_event(MERGED, ADA)),
        inbound("m2", merged_event(MERGED, GRACE)),
    ];
    let handler = RecordsHandler::new(ctx.clone());
    let calls_before = ctx.crm.calls().len();

    let first = by_message(handler.handle(&batch).await);

    assert!(is_retry(&first["m1"], "merge_in_progress"), "{first:?}");
    assert_eq!(first["m1"], first["m2"]);
    assert_eq!(
        ctx.crm.calls().len(),
        calls_before,
        "no CRM call while merging"
    );
    assert_eq!(ctx.crm.objects(CrmObject::Contacts).len(), 2);

    // The message comes back with the same error once more, then the merge is done.
    let second = by_message(handler.handle(&batch).await);
    assert!(is_retry(&second["m1"], "merge_in_progress"));
    let third = by_message(handler.handle(&batch).await);
    assert!(third.values().all(|d| *d == Disposition::Done), "{third:?}");
    one_contact_for(&ctx, MERGED, &[MERGED, ADA, GRACE]).await;
}

#[tokio::test]
async fn a_proxys_404_or_an_unknown_object_archives_nothing() {
    let ctx = with_people();
    let handler = RecordsHandler::new(ctx.clone());
    let created = [inbound("c", record_event("record.created", PEOPLE, ADA))];
    handler.handle(&created).await;
    let ada = mapped(&ctx, ADA).await.expect("synced");
    // The update's read is the object's batched query (`record_batch.rs`): a 404 there is
    // about the path or the object, never a record gone.
    let path = "/objects/people/records/query".to_owned();
    ctx.attio.fail_next_query(
        "people",
        AttioError::NotFound {
            path: path.clone(),
            code: None,
            message: "<html><body><h1>404 Not Found</h1></body></html>".into(),
        },
    );
    ctx.attio.fail_next_query(
        "people",
        AttioError::not_found(
            &path,
            "not_found",
            "Object with slug/ID \"people\" not found.",
        ),
    );
    let updated = |id: &str| [inbound(id, record_event("record.updated", PEOPLE, ADA))];

    let proxied = by_message(handler.handle(&updated("u1")).await);
    let unknown = by_message(handler.handle(&updated("u2")).await);

    assert!(is_retry(&proxied["u1"], "404 Not Found"), "{proxied:?}");
    assert!(
        is_dead_letter(&unknown["u2"], "Object with slug/ID"),
        "{unknown:?}"
    );
    let archived = ctx.crm.calls().into_iter();
    assert!(
        !archived
            .into_iter()
            .any(|c| matches!(c, OutboxEntry::Archive { .. }))
    );
    assert_eq!(mapped(&ctx, ADA).await, Some(ada.clone()));
    assert!(ctx.crm.objects(CrmObject::Contacts).contains_key(&ada));
}

#[tokio::test]
async fn notes_of_the_originals_follow_the_merge_and_late_original_events_archive_nothing() {
    let ctx = with_people();
    let (ada, _) = synced_then_merged_in_attio(&ctx).await;
    // A note on Ada made before the merge, associated with Ada's contact.
    ctx.attio.put_note(note(NOTE, "people", ADA));
    let note_event = |kind: &str| {
        json!({"event_type": kind, "id": {"workspace_id": WS, "note_id": NOTE},
            "parent_object_id": PEOPLE, "parent_record_id": ADA, "actor": actor()})
    };
    let notes = NotesHandler::new(ctx.clone());
    let created = by_message(
        notes
            .handle(&[inbound("n1", note_event("note.created"))])
            .await,
    );
    assert_eq!(created["n1"], Disposition::Done);
    let note_id = ctx
        .mappings
        .get(CrmObject::Notes, NOTE)
        .await
        .expect("get")
        .expect("note mapped");

    let batch = [
        inbound("m1", merged_event(MERGED, ADA)),
        inbound("m2", merged_event(MERGED, GRACE)),
    ];
    RecordsHandler::new(ctx.clone()).handle(&batch).await;
    let merged = one_contact_for(&ctx, MERGED, &[MERGED, ADA, GRACE]).await;
    assert_eq!(
        ctx.crm.current_id(CrmObject::Contacts, &ada),
        Some(merged.clone()),
        "the note's association moved with HubSpot's merge"
    );

    // The note changes after the merge: updated in place, not created again.
    let updated = by_message(
        notes
            .handle(&[inbound("n2", note_event("note.updated"))])
            .await,
    );
    assert_eq!(updated["n2"], Disposition::Done);
    let calls = ctx.crm.calls();
    let last_update = calls
        .iter()
        .rev()
        .find(|c| matches!(c, OutboxEntry::Update { .. }));
    assert!(
        matches!(last_update, Some(OutboxEntry::Update { id, .. }) if *id == note_id),
        "{calls:?}"
    );
    // Its association is the merged contact's, and only that one.
    let links: Vec<_> = ctx.crm.associations();
    let note_links: Vec<_> = links.iter().filter(|l| l.1 == note_id).collect();
    assert_eq!(
        note_links,
        [&(
            CrmObject::Notes,
            note_id.clone(),
            CrmObject::Contacts,
            merged.clone()
        )]
    );
    // A new note on an original lands on the merged contact.
    let second = "0a0a0a0a-0000-4000-8000-00000000000a";
    ctx.attio.put_note(note(second, "people", GRACE));
    let mut event = note_event("note.created");
    event["id"]["note_id"] = json!(second);
    event["parent_record_id"] = json!(GRACE);
    let outcome = by_message(notes.handle(&[inbound("n3", event)]).await);
    assert_eq!(outcome["n3"], Disposition::Done);
    let last = ctx.crm.calls().pop().expect("a call");
    let OutboxEntry::Create { associations, .. } = last else {
        panic!("a create, got {last:?}");
    };
    assert_eq!(
        associations,
        [Association {
            to: CrmObject::Contacts,
            id: merged.clone()
        }]
    );

    // A late update of an original reads 404: the merged contact is not archived.
    let late = [inbound("u", record_event("record.updated", PEOPLE, ADA))];
    let outcome = by_message(RecordsHandler::new(ctx.clone()).handle(&late).await);
    assert_eq!(outcome["u"], Disposition::Done);
    assert_eq!(
        one_contact_for(&ctx, MERGED, &[MERGED, ADA, GRACE]).await,
        merged
    );
}

/// SQS keeps no order: an original's late update reads 404 before the merge is handled. It
/// archives nothing, and the merge then ends with one contact holding everything.
#[tokio::test]
async fn an_originals_update_handled_before_the_merge_archives_nothing() {
    let ctx = with_people();
    let (ada, grace) = synced_then_merged_in_attio(&ctx).await;
    let late = [
        inbound("ua", record_event("record.updated", PEOPLE, ADA)),
        inbound("ug", record_event("record.updated", PEOPLE, GRACE)),
    ];
    let outcomes = by_message(RecordsHandler::new(ctx.clone()).handle(&late).await);
    assert!(
        outcomes.values().all(|d| *d == Disposition::Done),
        "{outcomes:?}"
    );
    assert!(
        !ctx.crm
            .calls()
            .iter()
            .any(|c| matches!(c, OutboxEntry::Archive { .. })),
        "{:?}",
        ctx.crm.calls()
    );

    let batch = [
        inbound("m1", merged_event(MERGED, ADA)),
        inbound("m2", merged_event(MERGED, GRACE)),
    ];
    let outcomes = by_message(RecordsHandler::new(ctx.clone()).handle(&batch).await);
    assert!(
        outcomes.values().all(|d| *d == Disposition::Done),
        "{outcomes:?}"
    );
    let merged = one_contact_for(&ctx, MERGED, &[MERGED, ADA, GRACE]).await;
    assert_eq!(
        ctx.crm.current_id(CrmObject::Contacts, &ada),
        Some(merged.clone())
    );
    assert_eq!(
        ctx.crm.current_id(CrmObject::Contacts, &grace),
        Some(merged)
    );
}

/// The merged record's own update (or a note naming it) can come before its `record.merged`:
/// its email is still held by an original's contact, whose record Attio no longer has. That
/// is retried — the merge settles it — not dead-lettered as two people sharing an email.
#[tokio::test]
async fn the_merged_records_update_before_its_merge_is_retried_then_converges() {
    let ctx = with_people();
    synced_then_merged_in_attio(&ctx).await;
    let early = [inbound("u", record_event("record.updated", PEOPLE, MERGED))];
    let outcomes = by_message(RecordsHandler::new(ctx.clone()).handle(&early).await);
    assert!(
        matches!(&outcomes["u"], Disposition::Retry { .. }),
        "{outcomes:?}"
    );

    let batch = [
        inbound("m1", merged_event(MERGED, ADA)),
        inbound("m2", merged_event(MERGED, GRACE)),
    ];
    RecordsHandler::new(ctx.clone()).handle(&batch).await;
    let merged = one_contact_for(&ctx, MERGED, &[MERGED, ADA, GRACE]).await;
    let again = by_message(RecordsHandler::new(ctx.clone()).handle(&early).await);
    assert_eq!(again["u"], Disposition::Done);
    assert_eq!(one_contact_for(&ctx, MERGED, &[MERGED]).await, merged);
}
