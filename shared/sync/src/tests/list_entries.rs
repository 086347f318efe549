//! The list-entries handler: each parent record re-synced once per batch, the parents read
//! with one query per object and written in one batched upsert.

use relay_attio::AttioCall;
use relay_crm::{CrmObject, OutboxEntry};
use serde_json::{Value, json};

use super::*;
use crate::{BatchHandler, ListEntriesHandler};

const LIST: &str = "33ebdbe9-e529-47c9-b894-0ba25e9c15c0";

fn entry_event(kind: &str, entry: &str, parent: Option<&str>) -> Value {
    let mut event = json!({"event_type": kind,
        "id": {"workspace_id": WS, "list_id": LIST, "entry_id": entry}, "actor": actor()});
    if kind == "list-entry.updated" {
        event["id"]["attribute_id"] = json!("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d");
    }
    if let Some(record) = parent {
        event["parent_object_id"] = json!(PEOPLE);
        event["parent_record_id"] = json!(record);
    }
    event
}

#[tokio::test]
async fn each_parent_is_resynced_once_per_batch() {
    let ctx = with_people();
    let batch = [
        inbound("a1", entry_event("list-entry.created", "e1", Some(ADA))),
        inbound("g1", entry_event("list-entry.updated", "e2", Some(GRACE))),
        inbound("a2", entry_event("list-entry.updated", "e1", Some(ADA))),
        inbound("a3", entry_event("list-entry.updated", "e3", Some(ADA))),
        inbound("x", entry_event("list-entry.deleted", "e4", None)),
    ];

    let outcomes = by_message(ListEntriesHandler::new(ctx.clone()).handle(&batch).await);

    for id in ["a1", "a2", "a3", "g1"] {
        assert_eq!(outcomes[id], Disposition::Done, "{outcomes:?}");
    }
    assert_eq!(
        outcomes["x"],
        Disposition::dead_letter("list-entry.deleted does not carry the id this consumer needs")
    );
    // The parents' reads and writes are batched like the records consumer's: one query for
    // both people, one upsert for both contacts (each parent once).
    assert_eq!(
        record_calls(&ctx),
        [AttioCall::records("people", &[ADA, GRACE])]
    );
    let upserted: Vec<_> = ctx
        .crm
        .calls()
        .into_iter()
        .map(|c| match c {
            OutboxEntry::Upsert { object, records } => {
                let ids: Vec<String> = records.iter().map(|r| r.attio_record_id.clone()).collect();
                (object, ids)
            }
            other => panic!("only upserts expected: {other:?}"),
        })
        .collect();
    assert_eq!(
        upserted,
        [(CrmObject::Contacts, vec![ADA.to_owned(), GRACE.to_owned()])]
    );
}

#[tokio::test]
async fn a_parent_that_fails_transiently_retries_all_its_messages() {
    let ctx = context();
    ctx.attio.fail_next(
        AttioCall::record("people", ADA),
        attio_api(503, "/objects/people/records"),
    );
    let batch = [
        inbound("a1", entry_event("list-entry.created", "e1", Some(ADA))),
        inbound("a2", entry_event("list-entry.updated", "e1", Some(ADA))),
    ];

    let outcomes = by_message(ListEntriesHandler::new(ctx.clone()).handle(&batch).await);

    assert!(
        outcomes.values().all(|d| is_retry(d, "Attio answered 503")),
        "{outcomes:?}"
    );
    assert!(ctx.crm.calls().is_empty());
}
