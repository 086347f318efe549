//! The records handler: coalescing, archive on delete (not on a 404), 207 refusals, and how
//! each failure is classified.

use std::time::Duration;

use relay_attio::{AttioCall, AttioError};
use relay_crm::{CrmError, CrmId, CrmObject, CrmOp, OutboxEntry};
use relay_mappings::IdMappings;
use serde_json::json;

use super::*;
use crate::{BatchHandler, RecordsHandler};

fn contact(id: &str) -> CrmId {
    CrmId(id.to_owned())
}

#[tokio::test]
async fn many_events_of_one_record_cost_one_fetch_and_one_batched_upsert() {
    let ctx = with_people();
    let mut batch = vec![inbound("c", record_event("record.created", PEOPLE, ADA))];
    batch.extend((0..8).map(|i| {
        inbound(
            &format!("u{i}"),
            record_event("record.updated", PEOPLE, ADA),
        )
    }));
    batch.push(inbound("g", record_event("record.updated", PEOPLE, GRACE)));

    let outcomes = by_message(RecordsHandler::new(ctx.clone()).handle(&batch).await);

    assert_eq!(outcomes.len(), 10);
    assert!(
        outcomes.values().all(|d| *d == Disposition::Done),
        "{outcomes:?}"
    );
    assert_eq!(
        record_fetches(&ctx),
        [
            AttioCall::record("people", ADA),
            AttioCall::record("people", GRACE)
        ]
    );
    let calls = ctx.crm.calls();
    let [OutboxEntry::Upsert { object, records }] = calls.as_slice() else {
        panic!("one upsert expected: {calls:?}");
    };
    assert_eq!(*object, CrmObject::Contacts);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].attio_record_id, ADA);
    assert_eq!(records[0].properties["email"], "ada@example.com");
    assert_eq!(records[0].properties["firstname"], "Ada");
    let mapped = ctx
        .mappings
        .get(CrmObject::Contacts, ADA)
        .await
        .expect("get");
    assert!(
        mapped.is_some(),
        "the HubSpot id is recorded for notes and tasks"
    );
}

#[tokio::test]
async fn a_delete_archives_the_crm_copy_without_reading_attio() {
    let ctx = context();
    let mappings = &ctx.mappings;
    mappings
        .put(CrmObject::Contacts, ADA, &contact("55"))
        .await
        .expect("put");
    let batch = [
        inbound("u", record_event("record.updated", PEOPLE, ADA)),
        inbound("d", record_event("record.deleted", PEOPLE, ADA)),
        // Never synced: nothing to archive, and still done.
        inbound("n", record_event("record.deleted", PEOPLE, GRACE)),
    ];

    let outcomes = by_message(RecordsHandler::new(ctx.clone()).handle(&batch).await);

    assert!(
        outcomes.values().all(|d| *d == Disposition::Done),
        "{outcomes:?}"
    );
    assert_eq!(
        ctx.crm.calls(),
        [OutboxEntry::Archive {
            object: CrmObject::Contacts,
            id: contact("55")
        }]
    );
    assert!(
        !ctx.attio
            .calls()
            .iter()
            .any(|c| matches!(c, AttioCall::Record { .. }))
    );
    let gone = mappings.get(CrmObject::Contacts, ADA).await.expect("get");
    assert_eq!(gone, None);
}

/// Attio answers a deleted record and an original merged into another alike (404
/// `not_found`), and SQS keeps no order: an update that reads 404 archives nothing; the
/// record's own `record.deleted` or `record.merged` settles its copy.
#[tokio::test]
async fn a_record_attio_answers_404_for_is_left_to_its_delete_or_merge_event() {
    let ctx = context();
    ctx.mappings
        .put(CrmObject::Contacts, ADA, &contact("55"))
        .await
        .expect("put");
    let batch = [inbound("u", record_event("record.updated", PEOPLE, ADA))];

    let outcomes = by_message(RecordsHandler::new(ctx.clone()).handle(&batch).await);

    assert_eq!(outcomes["u"], Disposition::Done);
    assert_eq!(ctx.crm.calls(), []);
    let kept = ctx
        .mappings
        .get(CrmObject::Contacts, ADA)
        .await
        .expect("get");
    assert_eq!(kept, Some(contact("55")));
}

#[tokio::test]
async fn a_refused_input_fails_only_its_own_messages() {
    let ctx = context();
    ctx.attio
        .put_record("people", person(ADA, "ada@example.com", "Ada"));
    ctx.attio
        .put_record("people", person(GRACE, "not-an-email", "Grace"));
    ctx.crm.refuse(GRACE, "INVALID_EMAIL", true);
    let batch = [
        inbound("a", record_event("record.updated", PEOPLE, ADA)),
        inbound("g1", record_event("record.updated", PEOPLE, GRACE)),
        inbound("g2", record_event("record.created", PEOPLE, GRACE)),
    ];

    let outcomes = by_message(RecordsHandler::new(ctx.clone()).handle(&batch).await);

    assert_eq!(outcomes["a"], Disposition::Done);
    for id in ["g1", "g2"] {
        let expected = format!("CRM refused record {GRACE}: INVALID_EMAIL");
        assert!(is_dead_letter(&outcomes[id], &expected), "{outcomes:?}");
    }
    assert_eq!(upserts(&ctx.crm.calls()).len(), 1, "one batch for both");

    // A refusal HubSpot says may pass later is retried instead.
    ctx.crm
        .refuse(GRACE, "rate of writes to this object", false);
    let again = by_message(RecordsHandler::new(ctx).handle(&batch[1..2]).await);
    assert!(is_retry(&again["g1"], "rate of writes"), "{again:?}");
}

#[tokio::test]
async fn attio_failures_are_retried_when_transient_and_dead_lettered_when_permanent() {
    let ctx = with_people();
    ctx.attio.fail_next(
        AttioCall::record("people", ADA),
        AttioError::RateLimited {
            retry_after: Duration::from_secs(3),
            path: "/objects/people".into(),
        },
    );
    ctx.attio
        .fail_next(AttioCall::record("people", GRACE), attio_api(400, "/x"));
    let batch = [
        inbound("a", record_event("record.updated", PEOPLE, ADA)),
        inbound("g", record_event("record.updated", PEOPLE, GRACE)),
    ];

    let outcomes = by_message(RecordsHandler::new(ctx.clone()).handle(&batch).await);

    assert!(
        is_retry(&outcomes["a"], "Attio: Attio rate-limited"),
        "{outcomes:?}"
    );
    assert!(
        is_dead_letter(&outcomes["g"], "Attio: Attio answered 400"),
        "{outcomes:?}"
    );
    assert!(ctx.crm.calls().is_empty());
}

#[tokio::test]
async fn crm_and_mapping_failures_are_classified_too() {
    let ctx = context();
    ctx.attio
        .put_record("people", person(ADA, "ada@example.com", "Ada"));
    let batch = [inbound("a", record_event("record.updated", PEOPLE, ADA))];
    let handler = RecordsHandler::new(ctx.clone());

    ctx.crm
        .fail_next(CrmOp::Upsert, crm_unavailable("batch upsert"));
    assert!(is_retry(
        &by_message(handler.handle(&batch).await)["a"],
        "CRM:"
    ));

    let rejected = CrmError::Rejected {
        operation: "batch upsert".into(),
        status: 400,
        category: Some("VALIDATION_ERROR".into()),
        message: "Property jobtitle does not exist".into(),
    };
    ctx.crm.fail_next(CrmOp::Upsert, rejected);
    let outcome = by_message(handler.handle(&batch).await);
    assert!(is_dead_letter(&outcome["a"], "jobtitle"), "{outcome:?}");

    // The mapping store is down after the upsert: the message is retried (upserts are idempotent).
    ctx.mappings.fail_next(1);
    assert!(is_retry(
        &by_message(handler.handle(&batch).await)["a"],
        "mapping store"
    ));
    assert_eq!(
        by_message(handler.handle(&batch).await)["a"],
        Disposition::Done
    );
}

#[tokio::test]
async fn records_of_an_unmapped_object_are_skipped_and_other_events_dead_lettered() {
    let ctx = context();
    let task_event = json!({"event_type": "task.created",
        "id": {"workspace_id": WS, "task_id": "t1"}, "actor": actor()});
    let batch = [
        inbound("p", record_event("record.updated", PROJECTS, ADA)),
        inbound("t", task_event),
    ];

    let outcomes = by_message(RecordsHandler::new(ctx.clone()).handle(&batch).await);

    assert_eq!(outcomes["p"], Disposition::Done);
    assert_eq!(
        outcomes["t"],
        Disposition::dead_letter("task.created is not a record event with object_id and record_id")
    );
    assert!(ctx.crm.calls().is_empty());
    assert_eq!(ctx.attio.calls(), [AttioCall::Slug(PROJECTS.into())]);
}
