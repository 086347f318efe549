//! Schema invalidation: attribute events drop the cached definition here and bump the
//! generation; other containers (contexts over the same store) drop theirs on their next
//! batch; a store that cannot be read leaves the cache to its TTL.

use relay_attio::AttioCall;
use relay_mappings::SchemaGenerations;
use serde_json::{Value, json};

use super::*;
use crate::{BatchHandler, ListEntriesHandler, RecordsHandler, SchemaAware};

const LIST: &str = "33ebdbe9-e529-47c9-b894-0ba25e9c15c0";
const ATTRIBUTE: &str = "41252299-f8c7-4b5e-99c9-4ff8321d2f96";

/// A container: its own slug cache over the shared `attio` workspace, and `store`.
fn container(attio: MemoryAttio, store: &MemoryMappings) -> Arc<Ctx> {
    Arc::new(SyncContext::with_attio(
        attio,
        MemoryCrm::new(),
        store.clone(),
        FieldMapping::default(),
    ))
}

/// Two containers over one workspace (Ada in people) and one mapping store.
fn two_containers() -> (Arc<Ctx>, Arc<Ctx>, MemoryMappings) {
    let a = MemoryAttio::new().with_schema_cache();
    a.add_object(PEOPLE, "people");
    a.put_record("people", person(ADA, "ada@example.com", "Ada"));
    let b = a.another_container();
    let store = MemoryMappings::new();
    (container(a, &store), container(b, &store), store)
}

fn records(
    ctx: &Arc<Ctx>,
) -> SchemaAware<
    RecordsHandler<MemoryCrm, MemoryMappings, MemoryAttio>,
    MemoryCrm,
    MemoryMappings,
    MemoryAttio,
> {
    SchemaAware::new(ctx.clone(), RecordsHandler::new(ctx.clone()))
}

fn object_attribute(kind: &str, object_id: &str) -> Value {
    json!({"event_type": kind,
        "id": {"workspace_id": WS, "object_id": object_id, "attribute_id": ATTRIBUTE},
        "actor": actor()})
}

/// The slug lookups that reached Attio from this container.
fn slug_lookups(ctx: &Ctx) -> usize {
    let calls = ctx.attio.calls();
    calls
        .iter()
        .filter(|c| matches!(c, AttioCall::Slug(_)))
        .count()
}

async fn sync_ada(handler: &impl BatchHandler, message_id: &str) {
    let batch = [inbound(
        message_id,
        record_event("record.updated", PEOPLE, ADA),
    )];
    let outcomes = by_message(handler.handle(&batch).await);
    assert_eq!(outcomes[message_id], Disposition::Done, "{outcomes:?}");
}

#[tokio::test]
async fn an_attribute_event_drops_the_object_here_before_the_batch_syncs_and_bumps_once() {
    let (ctx, _, store) = two_containers();
    let handler = records(&ctx);
    sync_ada(&handler, "r1").await;
    sync_ada(&handler, "r2").await;
    assert_eq!(slug_lookups(&ctx), 1, "cached between batches");

    let batch = [
        inbound("s1", object_attribute("object-attribute.updated", PEOPLE)),
        inbound("s2", object_attribute("object-attribute.created", PEOPLE)),
        inbound("r3", record_event("record.updated", PEOPLE, ADA)),
    ];
    let outcomes = by_message(handler.handle(&batch).await);
    assert!(
        outcomes.values().all(|d| *d == Disposition::Done),
        "{outcomes:?}"
    );
    assert_eq!(
        slug_lookups(&ctx),
        2,
        "the record in the same batch saw a fresh definition"
    );
    assert_eq!(
        store.schema_generation().await.ok(),
        Some(1),
        "one bump per batch"
    );
    assert_eq!(upserts(&ctx.crm.calls()).len(), 3);

    // Its own bump does not make this container drop everything again.
    sync_ada(&handler, "r4").await;
    assert_eq!(slug_lookups(&ctx), 2);
}

#[tokio::test]
async fn unknown_objects_and_lists_are_acked_without_a_call_to_attio() {
    let (ctx, _, store) = two_containers();
    let unknown = "0c4f1c6e-2b7a-4d8e-9f10-1a2b3c4d5e6f";
    let batch = [inbound(
        "s1",
        object_attribute("object-attribute.updated", unknown),
    )];
    let outcomes = by_message(records(&ctx).handle(&batch).await);
    assert_eq!(outcomes["s1"], Disposition::Done);

    let list_attribute = json!({"event_type": "list-attribute.updated",
        "id": {"workspace_id": WS, "list_id": LIST, "attribute_id": ATTRIBUTE}, "actor": actor()});
    let list_entries = SchemaAware::new(ctx.clone(), ListEntriesHandler::new(ctx.clone()));
    let outcomes = by_message(list_entries.handle(&[inbound("l1", list_attribute)]).await);
    assert_eq!(outcomes["l1"], Disposition::Done);

    assert!(ctx.attio.calls().is_empty(), "{:?}", ctx.attio.calls());
    assert!(ctx.crm.calls().is_empty());
    assert_eq!(store.schema_generation().await.ok(), Some(2));
}

#[tokio::test]
async fn a_bump_in_one_container_makes_another_refetch_once() {
    let (a, b) = {
        let (a, b, _) = two_containers();
        (a, b)
    };
    let (on_a, on_b) = (records(&a), records(&b));
    sync_ada(&on_b, "b1").await;
    sync_ada(&on_b, "b2").await;
    assert_eq!(slug_lookups(&b), 1);

    let batch = [inbound(
        "s1",
        object_attribute("object-attribute.updated", PEOPLE),
    )];
    assert_eq!(
        by_message(on_a.handle(&batch).await)["s1"],
        Disposition::Done
    );
    assert_eq!(slug_lookups(&b), 1, "b has not run a batch yet");

    sync_ada(&on_b, "b3").await;
    assert_eq!(
        slug_lookups(&b),
        2,
        "b saw the generation move and asked Attio again"
    );
    sync_ada(&on_b, "b4").await;
    assert_eq!(slug_lookups(&b), 2, "once per move, then cached again");
}

#[tokio::test]
async fn an_unreadable_generation_falls_back_to_the_ttl_and_never_fails_the_batch() {
    let (a, b, store) = two_containers();
    let (on_a, on_b) = (records(&a), records(&b));
    sync_ada(&on_b, "b1").await;
    let batch = [inbound(
        "s1",
        object_attribute("object-attribute.updated", PEOPLE),
    )];
    assert_eq!(
        by_message(on_a.handle(&batch).await)["s1"],
        Disposition::Done
    );

    store.fail_next(1);
    sync_ada(&on_b, "b2").await;
    assert_eq!(
        slug_lookups(&b),
        1,
        "the cache is kept while the store cannot say"
    );
    sync_ada(&on_b, "b3").await;
    assert_eq!(slug_lookups(&b), 2, "the next read sees the move");
}

#[tokio::test]
async fn a_failed_bump_retries_the_event_after_dropping_the_definition_here() {
    let (ctx, _, store) = two_containers();
    let handler = records(&ctx);
    sync_ada(&handler, "r1").await;

    // The generation read and the bump both fail; the record still syncs.
    store.fail_next(2);
    let batch = [
        inbound("s1", object_attribute("object-attribute.updated", PEOPLE)),
        inbound("r2", record_event("record.updated", PEOPLE, ADA)),
    ];
    let outcomes = by_message(handler.handle(&batch).await);
    assert!(is_retry(&outcomes["s1"], "schema changed"), "{outcomes:?}");
    assert_eq!(outcomes["r2"], Disposition::Done);
    assert_eq!(slug_lookups(&ctx), 2, "dropped here all the same");
    assert_eq!(store.schema_generation().await.ok(), Some(0));

    // The redelivery bumps.
    let batch = [inbound(
        "s1",
        object_attribute("object-attribute.updated", PEOPLE),
    )];
    assert_eq!(
        by_message(handler.handle(&batch).await)["s1"],
        Disposition::Done
    );
    assert_eq!(store.schema_generation().await.ok(), Some(1));
}

#[tokio::test]
async fn unwrapped_events_reach_the_family_handler_unchanged() {
    let (ctx, _, store) = two_containers();
    // A task event on the records queue is still the records handler's to refuse.
    let batch = [inbound(
        "t1",
        json!({"event_type": "task.created", "id": {"workspace_id": WS, "task_id": "t"}, "actor": actor()}),
    )];
    let outcomes = by_message(records(&ctx).handle(&batch).await);
    assert!(
        is_dead_letter(&outcomes["t1"], "not a record event"),
        "{outcomes:?}"
    );
    assert_eq!(store.schema_generation().await.ok(), Some(0));
}
