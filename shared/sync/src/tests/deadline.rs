//! The deadline cut: each handler starts groups only while its [`Budget`] allows, and the
//! messages of the groups it did not start end `Deferred` — never half-done. The budget here
//! has no time left at all, so only the first group (always started) runs.

use std::time::Duration;

use relay_attio::AttioCall;
use relay_crm::{CrmObject, OutboxEntry};
use serde_json::json;
use tokio::time::Instant;

use super::*;
use crate::{BatchHandler, Budget, ListEntriesHandler, NotesHandler, RecordsHandler};

fn spent() -> Budget {
    Budget::until(Instant::now(), Duration::from_secs(30))
}

#[tokio::test]
async fn records_not_started_are_deferred_and_the_started_one_is_upserted_whole() {
    let ctx = with_people();
    let batch = [
        inbound("a1", record_event("record.updated", PEOPLE, ADA)),
        inbound("g", record_event("record.updated", PEOPLE, GRACE)),
        inbound("a2", record_event("record.updated", PEOPLE, ADA)),
    ];

    let outcomes = RecordsHandler::new(ctx.clone())
        .handle_within(&batch, &spent())
        .await;
    let outcomes = by_message(outcomes);

    // Ada's group (both of her messages) started first and finished; Grace's never started.
    assert_eq!(outcomes["a1"], Disposition::Done);
    assert_eq!(outcomes["a2"], Disposition::Done);
    assert_eq!(outcomes["g"], Disposition::Deferred);
    assert_eq!(record_fetches(&ctx), [AttioCall::record("people", ADA)]);
    let upserted: Vec<String> = upserts(&ctx.crm.calls())
        .into_iter()
        .flat_map(|c| match c {
            OutboxEntry::Upsert { records, .. } => {
                records.iter().map(|r| r.attio_record_id.clone()).collect()
            }
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(upserted, [ADA]);
}

#[tokio::test]
async fn list_entry_parents_not_started_are_deferred() {
    let ctx = with_people();
    let entry = |record: &str| {
        json!({"event_type": "list-entry.created",
            "id": {"workspace_id": WS, "list_id": "33ebdbe9-e529-47c9-b894-0ba25e9c15c0",
                "entry_id": format!("e-{record}")},
            "parent_object_id": PEOPLE, "parent_record_id": record, "actor": actor()})
    };
    let batch = [inbound("a", entry(ADA)), inbound("g", entry(GRACE))];

    let outcomes = ListEntriesHandler::new(ctx.clone())
        .handle_within(&batch, &spent())
        .await;

    let outcomes = by_message(outcomes);
    assert_eq!(outcomes["a"], Disposition::Done);
    assert_eq!(outcomes["g"], Disposition::Deferred);
    assert_eq!(record_fetches(&ctx), [AttioCall::record("people", ADA)]);
}

#[tokio::test]
async fn notes_not_started_are_neither_fetched_nor_created() {
    let ctx = with_people();
    let ids = ["n1", "n2", "n3"];
    for id in ids {
        ctx.attio.put_note(note(id, "people", ADA));
    }
    let event = |id: &str| {
        json!({"event_type": "note.created", "id": {"workspace_id": WS, "note_id": id},
            "parent_object_id": PEOPLE, "parent_record_id": ADA, "actor": actor()})
    };
    let batch: Vec<_> = ids.iter().map(|id| inbound(id, event(id))).collect();

    let outcomes = by_message(
        NotesHandler::new(ctx.clone())
            .handle_within(&batch, &spent())
            .await,
    );

    assert_eq!(outcomes["n1"], Disposition::Done);
    assert_eq!(outcomes["n2"], Disposition::Deferred);
    assert_eq!(outcomes["n3"], Disposition::Deferred);
    let notes_read = ctx.attio.calls().into_iter();
    let notes_read: Vec<_> = notes_read
        .filter(|c| matches!(c, AttioCall::Note(_)))
        .collect();
    assert_eq!(notes_read, [AttioCall::Note("n1".into())]);
    assert_eq!(ctx.crm.objects(CrmObject::Notes).len(), 1);

    // With time left, every group starts.
    let plenty = Budget::until(
        Instant::now() + Duration::from_secs(60),
        Duration::from_secs(30),
    );
    let outcomes = by_message(
        NotesHandler::new(ctx.clone())
            .handle_within(&batch[1..], &plenty)
            .await,
    );
    assert!(outcomes.values().all(|d| *d == Disposition::Done));
    assert_eq!(ctx.crm.objects(CrmObject::Notes).len(), 3);
}

#[test]
fn deferred_ranks_above_done_and_below_retry() {
    let retry = Disposition::retry("x");
    assert_eq!(
        Disposition::Deferred.worst(Disposition::Done),
        Disposition::Deferred
    );
    assert_eq!(
        Disposition::Done.worst(Disposition::Deferred),
        Disposition::Deferred
    );
    assert_eq!(Disposition::Deferred.worst(retry.clone()), retry);
    assert_eq!(Disposition::Deferred.label(), "deferred");
}
