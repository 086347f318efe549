//! The records handler: coalescing, one query per object and one upsert per 100 records of a
//! CRM object, archive on delete (not on a 404 or an absence from the query), 207 refusals,
//! and how each failure is classified.

use std::sync::Arc;
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
async fn many_events_of_two_records_cost_one_query_and_one_batched_upsert() {
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
        record_calls(&ctx),
        [AttioCall::records("people", &[ADA, GRACE])],
        "one query for both people"
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

/// Deliberately changed with batched reads: the object's query fails as a whole, so its
/// failure settles every record of the object alike (a rate limit: all retried).
#[tokio::test]
async fn attio_failures_are_retried_when_transient_and_dead_lettered_when_permanent() {
    let ctx = with_people();
    ctx.attio.fail_next_query(
        "people",
        AttioError::RateLimited {
            retry_after: Duration::from_secs(3),
            path: "/objects/people/records/query".into(),
        },
    );
    let batch = [
        inbound("a", record_event("record.updated", PEOPLE, ADA)),
        inbound("g", record_event("record.updated", PEOPLE, GRACE)),
    ];
    let handler = RecordsHandler::new(ctx.clone());

    let outcomes = by_message(handler.handle(&batch).await);

    for id in ["a", "g"] {
        assert!(
            is_retry(&outcomes[id], "Attio: Attio rate-limited"),
            "{outcomes:?}"
        );
    }
    assert_eq!(record_calls(&ctx).len(), 1, "no single reads after a 429");
    assert!(ctx.crm.calls().is_empty());

    // A refusal (here 400) is permanent for every record the query was for.
    ctx.attio
        .fail_next_query("people", attio_api(400, "/objects/people/records/query"));
    let outcomes = by_message(handler.handle(&batch).await);
    for id in ["a", "g"] {
        assert!(
            is_dead_letter(&outcomes[id], "Attio: Attio answered 400"),
            "{outcomes:?}"
        );
    }
    assert_eq!(record_calls(&ctx).len(), 2);
    assert!(ctx.crm.calls().is_empty());
}

fn company(record_id: &str, name: &str) -> relay_attio::Record {
    serde_json::from_value(json!({
        "id": {"workspace_id": WS, "object_id": COMPANIES, "record_id": record_id},
        "created_at": "2026-11-02T09:12:44Z",
        "values": {"name": [{"active_from": "2026-11-02T09:12:44Z", "active_until": null,
            "attribute_type": "text", "value": name}]}
    }))
    .expect("company")
}

/// `n` record ids, distinct per `prefix` (UUID-shaped, as events carry them).
fn ids(prefix: u32, n: u32) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix:08x}-0000-4000-8000-{i:012x}"))
        .collect()
}

/// People and companies in Attio, a message per update spread over them round-robin.
fn two_objects(
    people: &[String],
    companies: &[String],
    messages: usize,
) -> (Arc<Ctx>, Vec<InboundEvent>) {
    let ctx = context();
    for (i, id) in people.iter().enumerate() {
        let email = format!("p{i}@example.com");
        ctx.attio.put_record("people", person(id, &email, "P"));
    }
    for (i, id) in companies.iter().enumerate() {
        ctx.attio
            .put_record("companies", company(id, &format!("C{i}")));
    }
    let all: Vec<(&str, &String)> = people
        .iter()
        .map(|id| (PEOPLE, id))
        .chain(companies.iter().map(|id| (COMPANIES, id)))
        .collect();
    let batch = (0..messages)
        .map(|m| {
            let (object, id) = all[m % all.len()];
            inbound(&format!("m{m}"), record_event("record.updated", object, id))
        })
        .collect();
    (ctx, batch)
}

#[tokio::test]
async fn a_hundred_messages_over_thirty_records_of_two_objects_cost_two_queries_and_an_upsert_per_object()
 {
    let (people, companies) = (ids(1, 18), ids(2, 12));
    let (ctx, batch) = two_objects(&people, &companies, 100);

    let outcomes = by_message(RecordsHandler::new(ctx.clone()).handle(&batch).await);

    assert_eq!(outcomes.len(), 100);
    assert!(
        outcomes.values().all(|d| *d == Disposition::Done),
        "{outcomes:?}"
    );
    let calls = record_calls(&ctx);
    let queried = |object: &str| -> Vec<String> {
        calls
            .iter()
            .filter_map(|c| match c {
                AttioCall::Records {
                    object: o,
                    record_ids,
                } if o == object => Some(record_ids.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    };
    assert_eq!(calls.len(), 2, "one query per object: {calls:?}");
    assert_eq!(queried("people"), people, "each person asked once");
    assert_eq!(queried("companies"), companies);
    let crm_calls = ctx.crm.calls();
    let upserted: Vec<(CrmObject, usize)> = upserts(&crm_calls)
        .into_iter()
        .map(|c| match c {
            OutboxEntry::Upsert { object, records } => (*object, records.len()),
            _ => unreachable!("upserts only"),
        })
        .collect();
    assert_eq!(
        upserted,
        [(CrmObject::Contacts, 18), (CrmObject::Companies, 12)],
        "one upsert per CRM object, each record once"
    );
    for id in people.iter().chain(&companies) {
        let object = if people.contains(id) {
            CrmObject::Contacts
        } else {
            CrmObject::Companies
        };
        assert!(
            ctx.mappings.get(object, id).await.expect("get").is_some(),
            "{id} mapped"
        );
    }
}

#[tokio::test]
async fn upserts_carry_at_most_a_hundred_records() {
    let people = ids(3, 250);
    let (ctx, batch) = two_objects(&people, &[], 250);

    let outcomes = by_message(RecordsHandler::new(ctx.clone()).handle(&batch).await);

    assert!(outcomes.values().all(|d| *d == Disposition::Done));
    assert_eq!(record_calls(&ctx).len(), 1, "250 ids fit one query");
    let sizes: Vec<usize> = upserts(&ctx.crm.calls())
        .into_iter()
        .map(|c| match c {
            OutboxEntry::Upsert { records, .. } => records.len(),
            _ => unreachable!("upserts only"),
        })
        .collect();
    assert_eq!(sizes, [100, 100, 50]);
}

/// Absent from the query's answer is what Attio answers for a deleted record and for a
/// merged-away original alike: one GET confirms it, and nothing is archived (as for a 404).
#[tokio::test]
async fn a_record_missing_from_the_query_is_confirmed_by_one_get_and_not_archived() {
    let ctx = with_people();
    const GONE: &str = "9d0e1f2a-3b4c-4d5e-8f60-718293a4b5c6";
    ctx.mappings
        .put(CrmObject::Contacts, GONE, &contact("77"))
        .await
        .expect("put");
    let batch = [
        inbound("a", record_event("record.updated", PEOPLE, ADA)),
        inbound("x", record_event("record.updated", PEOPLE, GONE)),
        inbound("g", record_event("record.updated", PEOPLE, GRACE)),
    ];

    let outcomes = by_message(RecordsHandler::new(ctx.clone()).handle(&batch).await);

    assert!(
        outcomes.values().all(|d| *d == Disposition::Done),
        "{outcomes:?}"
    );
    assert_eq!(
        record_calls(&ctx),
        [
            AttioCall::records("people", &[ADA, GONE, GRACE]),
            AttioCall::record("people", GONE)
        ]
    );
    let crm_calls = ctx.crm.calls();
    assert!(
        !crm_calls
            .iter()
            .any(|c| matches!(c, OutboxEntry::Archive { .. }))
    );
    let [OutboxEntry::Upsert { records, .. }] = crm_calls.as_slice() else {
        panic!("one upsert: {crm_calls:?}");
    };
    let upserted: Vec<&str> = records.iter().map(|r| r.attio_record_id.as_str()).collect();
    assert_eq!(upserted, [ADA, GRACE]);
    let kept = ctx
        .mappings
        .get(CrmObject::Contacts, GONE)
        .await
        .expect("get");
    assert_eq!(kept, Some(contact("77")));
}

/// The new record of a merge still being applied is absent from a query too, but its GET
/// says `merge_in_progress`: retried, never taken for gone.
#[tokio::test]
async fn a_record_missing_from_the_query_while_its_merge_runs_is_retried() {
    let ctx = with_people();
    const MERGED: &str = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f";
    ctx.attio.fail_next(
        AttioCall::record("people", MERGED),
        AttioError::not_found(
            format!("/objects/people/records/{MERGED}"),
            relay_attio::MERGE_IN_PROGRESS_CODE,
            "Record is being merged.",
        ),
    );
    let batch = [
        inbound("a", record_event("record.updated", PEOPLE, ADA)),
        inbound("m", record_event("record.updated", PEOPLE, MERGED)),
    ];

    let outcomes = by_message(RecordsHandler::new(ctx.clone()).handle(&batch).await);

    assert_eq!(outcomes["a"], Disposition::Done);
    assert!(
        is_retry(&outcomes["m"], "merge_in_progress"),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn a_failed_query_retries_only_its_objects_messages() {
    let (people, companies) = (ids(4, 3), ids(5, 2));
    let (ctx, batch) = two_objects(&people, &companies, 10);
    ctx.attio.fail_next_query(
        "companies",
        AttioError::CircuitOpen {
            object: "companies".into(),
            until: std::time::SystemTime::now() + Duration::from_secs(30),
        },
    );

    let outcomes = by_message(RecordsHandler::new(ctx.clone()).handle(&batch).await);

    for (m, event) in batch.iter().enumerate() {
        let d = &outcomes[&format!("m{m}")];
        let relay_events::Subject::Record { object_id, .. } = &event.event.subject else {
            panic!("record event");
        };
        if object_id == COMPANIES {
            assert!(is_retry(d, "paused after repeated failures"), "{d:?}");
        } else {
            assert_eq!(*d, Disposition::Done);
        }
    }
    assert!(ctx.crm.objects(CrmObject::Companies).is_empty());
    assert_eq!(ctx.crm.objects(CrmObject::Contacts).len(), 3);
    assert_eq!(
        record_calls(&ctx).len(),
        2,
        "no single reads after an open circuit"
    );
}

/// A query one record can break (here a 5xx after the client's retries) is read again one
/// record at a time: the poison record fails alone instead of taking its object's batch to
/// the DLQ with it.
#[tokio::test]
async fn a_query_one_record_can_break_is_read_record_by_record_and_fails_only_that_record() {
    let ctx = with_people();
    ctx.attio
        .fail_next_query("people", attio_api(500, "/objects/people/records/query"));
    ctx.attio
        .fail_next(AttioCall::record("people", GRACE), attio_api(500, "/x"));
    let batch = [
        inbound("a", record_event("record.updated", PEOPLE, ADA)),
        inbound("g", record_event("record.updated", PEOPLE, GRACE)),
    ];

    let outcomes = by_message(RecordsHandler::new(ctx.clone()).handle(&batch).await);

    assert_eq!(outcomes["a"], Disposition::Done);
    assert!(
        is_retry(&outcomes["g"], "Attio answered 500"),
        "{outcomes:?}"
    );
    assert_eq!(
        record_calls(&ctx),
        [
            AttioCall::records("people", &[ADA, GRACE]),
            AttioCall::record("people", ADA),
            AttioCall::record("people", GRACE)
        ]
    );
    assert_eq!(ctx.crm.objects(CrmObject::Contacts).len(), 1);
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
