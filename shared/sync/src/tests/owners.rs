//! Owners through the handlers: a deal's `owner` and a task's first assignee reach HubSpot as
//! `hubspot_owner_id` (matched by the workspace member's email), a member without a HubSpot
//! owner leaves the property out without failing anything, and lookups are cached.

use relay_attio::{AttioCall, WorkspaceMember};
use relay_crm::{CrmObject, OutboxEntry, Properties};
use serde_json::{Value, json};

use super::*;
use crate::{BatchHandler, NotesHandler, RecordValues, RecordsHandler, TasksHandler};

const DEALS: &str = "3c1d2e4f-5a6b-4c7d-8e9f-a0b1c2d3e4f5";
const DEAL: &str = "8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a";
const DEAL2: &str = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b";
const TASK: &str = "649e34f4-c39a-4f4d-99ef-48a36bef8f04";
const NOTE: &str = "ff3f3bd4-40f4-4f80-8187-cd02385af424";
const SUSAN: &str = "50cf242c-7fa3-4cad-87d0-75b1af71c57b";
const BILL: &str = "6a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
const TOKEN: &str = "0d1e2f3a-4b5c-4d6e-8f7a-9b0c1d2e3f4a";

fn member(id: &str, email: &str) -> WorkspaceMember {
    serde_json::from_value(json!({
        "id": {"workspace_id": WS, "workspace_member_id": id},
        "first_name": "F", "last_name": "L", "avatar_url": null, "email_address": email,
        "created_at": "2022-11-21T13:22:49.061281000Z", "access_level": "member"
    }))
    .expect("member")
}

/// A context where Susan has a HubSpot owner (41629779) and Bill has none.
fn owners_context() -> Arc<Ctx> {
    let ctx = context();
    ctx.attio.add_object(DEALS, "deals");
    ctx.attio
        .put_member(member(SUSAN, "Susan.Kare@example.com"));
    ctx.attio.put_member(member(BILL, "bill@example.com"));
    ctx.crm.add_owner("susan.kare@example.com", "41629779");
    ctx
}

fn owner_value(actor_type: &str, id: &str) -> Value {
    json!({"active_from": "2026-11-02T09:12:44Z", "active_until": null,
           "created_by_actor": {"type": "system", "id": null},
           "attribute_type": "actor-reference",
           "referenced_actor_type": actor_type, "referenced_actor_id": id})
}

fn deal(record_id: &str, owner: Value) -> Record {
    serde_json::from_value(json!({
        "id": {"workspace_id": WS, "object_id": DEALS, "record_id": record_id},
        "created_at": "2026-11-02T09:12:44Z",
        "values": {
            "name": [{"active_from": "2026-11-02T09:12:44Z", "active_until": null,
                      "attribute_type": "text", "value": "Engine"}],
            "owner": [owner]
        }
    }))
    .expect("deal")
}

fn upserted(calls: &[OutboxEntry]) -> BTreeMap<String, Properties> {
    calls
        .iter()
        .filter_map(|c| match c {
            OutboxEntry::Upsert { records, .. } => Some(records.clone()),
            _ => None,
        })
        .flatten()
        .map(|r| (r.attio_record_id, r.properties))
        .collect()
}

fn created(calls: &[OutboxEntry], object: CrmObject) -> Vec<Properties> {
    calls
        .iter()
        .filter_map(|c| match c {
            OutboxEntry::Create {
                object: o,
                properties,
                ..
            } if *o == object => Some(properties.clone()),
            _ => None,
        })
        .collect()
}

fn member_reads(ctx: &Ctx) -> usize {
    let calls = ctx.attio.calls().into_iter();
    calls.filter(|c| matches!(c, AttioCall::Member(_))).count()
}

#[tokio::test]
async fn a_deal_owner_becomes_its_hubspot_owner_and_is_looked_up_once() {
    let ctx = owners_context();
    ctx.attio
        .put_record("deals", deal(DEAL, owner_value("workspace-member", SUSAN)));
    ctx.attio
        .put_record("deals", deal(DEAL2, owner_value("workspace-member", SUSAN)));
    let handler = RecordsHandler::new(ctx.clone());
    let batch = [
        inbound("a", record_event("record.updated", DEALS, DEAL)),
        inbound("b", record_event("record.created", DEALS, DEAL2)),
    ];
    let outcomes = by_message(handler.handle(&batch).await);
    assert!(
        outcomes.values().all(|d| *d == Disposition::Done),
        "{outcomes:?}"
    );
    let sent = upserted(&ctx.crm.calls());
    assert_eq!(sent[DEAL]["hubspot_owner_id"], "41629779");
    assert_eq!(sent[DEAL2]["hubspot_owner_id"], "41629779");
    assert_eq!(sent[DEAL]["dealname"], "Engine");
    // Two deals of one owner: one member read, one owner lookup.
    assert_eq!((member_reads(&ctx), ctx.crm.owner_lookups().len()), (1, 1));
}

#[tokio::test]
async fn a_deal_whose_owner_has_no_hubspot_owner_syncs_without_one() {
    let ctx = owners_context();
    ctx.attio
        .put_record("deals", deal(DEAL, owner_value("workspace-member", BILL)));
    // An API token is an actor but no one's owner: not even looked up.
    ctx.attio
        .put_record("deals", deal(DEAL2, owner_value("api-token", TOKEN)));
    let handler = RecordsHandler::new(ctx.clone());
    let batch = [
        inbound("a", record_event("record.updated", DEALS, DEAL)),
        inbound("b", record_event("record.updated", DEALS, DEAL2)),
    ];
    let outcomes = by_message(handler.handle(&batch).await);
    assert!(
        outcomes.values().all(|d| *d == Disposition::Done),
        "{outcomes:?}"
    );
    let sent = upserted(&ctx.crm.calls());
    assert_eq!(sent.len(), 2);
    assert!(
        sent.values().all(|p| !p.contains_key("hubspot_owner_id")),
        "{sent:?}"
    );
    assert_eq!(ctx.crm.owner_lookups(), ["bill@example.com"]);
    assert_eq!(member_reads(&ctx), 1);
    // The negative answer is cached: the next sync of Bill's deal asks no one.
    handler
        .handle(&[inbound("c", record_event("record.updated", DEALS, DEAL))])
        .await;
    assert_eq!((member_reads(&ctx), ctx.crm.owner_lookups().len()), (1, 1));
}

fn task_with_assignees(assignees: Value) -> Task {
    let mut task = json!({
        "id": {"workspace_id": WS, "task_id": TASK},
        "content_plaintext": "Send the proposal",
        "deadline_at": "2026-12-01",
        "is_completed": false,
        "linked_records": [],
        "assignees": assignees,
        "created_at": "2026-11-04T08:00:00Z"
    });
    task["created_by_actor"] = json!({"type": "workspace-member", "id": BILL});
    serde_json::from_value(task).expect("task")
}

fn task_event() -> Value {
    json!({"event_type": "task.created", "id": {"workspace_id": WS, "task_id": TASK},
           "actor": actor()})
}

#[tokio::test]
async fn a_task_is_owned_by_its_first_assigned_workspace_member() {
    let ctx = owners_context();
    ctx.attio.put_task(task_with_assignees(json!([
        {"referenced_actor_type": "api-token", "referenced_actor_id": TOKEN},
        {"referenced_actor_type": "workspace-member", "referenced_actor_id": SUSAN},
        {"referenced_actor_type": "workspace-member", "referenced_actor_id": BILL}
    ])));
    let handler = TasksHandler::new(ctx.clone());
    let outcome = by_message(handler.handle(&[inbound("t", task_event())]).await);
    assert_eq!(outcome["t"], Disposition::Done);
    let tasks = created(&ctx.crm.calls(), CrmObject::Tasks);
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["hubspot_owner_id"], "41629779");
    assert_eq!(tasks[0]["hs_task_subject"], "Send the proposal");
}

#[tokio::test]
async fn a_task_without_an_owner_in_hubspot_is_created_without_one() {
    let ctx = owners_context();
    ctx.attio.put_task(task_with_assignees(json!([
        {"referenced_actor_type": "workspace-member", "referenced_actor_id": BILL}
    ])));
    let handler = TasksHandler::new(ctx.clone());
    let outcome = by_message(handler.handle(&[inbound("t", task_event())]).await);
    assert_eq!(outcome["t"], Disposition::Done);
    let tasks = created(&ctx.crm.calls(), CrmObject::Tasks);
    assert_eq!(tasks.len(), 1);
    assert!(!tasks[0].contains_key("hubspot_owner_id"), "{:?}", tasks[0]);
    // No assignee: nothing to look up.
    let ctx = owners_context();
    ctx.attio.put_task(task_with_assignees(json!([])));
    TasksHandler::new(ctx.clone())
        .handle(&[inbound("t", task_event())])
        .await;
    assert_eq!((member_reads(&ctx), ctx.crm.owner_lookups().len()), (0, 0));
}

#[tokio::test]
async fn a_note_written_by_a_member_is_owned_by_them() {
    let ctx = owners_context();
    ctx.attio
        .put_record("people", person(ADA, "ada@example.com", "Ada"));
    let mut written = note(NOTE, "people", ADA);
    written.created_by_actor =
        serde_json::from_value(json!({"type": "workspace-member", "id": SUSAN})).expect("actor");
    ctx.attio.put_note(written);
    let event = json!({"event_type": "note.created",
        "id": {"workspace_id": WS, "note_id": NOTE},
        "parent_object_id": PEOPLE, "parent_record_id": ADA, "actor": actor()});
    let outcome = by_message(
        NotesHandler::new(ctx.clone())
            .handle(&[inbound("n", event)])
            .await,
    );
    assert_eq!(outcome["n"], Disposition::Done);
    let notes = created(&ctx.crm.calls(), CrmObject::Notes);
    assert_eq!(notes[0]["hubspot_owner_id"], "41629779");
}

#[test]
fn an_owner_property_names_only_workspace_members_and_is_left_out_unresolved() {
    let mapping = FieldMapping::from_toml(
        "[objects.companies]\ncrm_object = \"companies\"\n[objects.companies.properties]\nname = \"name\"\nhubspot_owner_id = { attribute = \"owner\", format = \"owner\" }\n",
    )
    .expect("mapping");
    let company = deal(DEAL, owner_value("workspace-member", SUSAN));
    let values = RecordValues(&company.values);
    assert_eq!(mapping.owner_actors("companies", &values), [SUSAN]);
    let owners: crate::OwnerIds = [(SUSAN.to_owned(), "7".to_owned())].into();
    let (_, props) = mapping
        .map_record_with("companies", DEAL, &values, &owners)
        .expect("maps")
        .expect("mapped");
    assert_eq!(props["hubspot_owner_id"], "7");
    let (_, props) = mapping
        .map_record("companies", DEAL, &values)
        .expect("maps")
        .expect("mapped");
    assert!(!props.contains_key("hubspot_owner_id"));
    let system = deal(DEAL, owner_value("api-token", TOKEN));
    assert!(
        mapping
            .owner_actors("companies", &RecordValues(&system.values))
            .is_empty()
    );
    let bad = FieldMapping::from_toml(
        "[objects.deals]\ncrm_object = \"deals\"\n[objects.deals.properties]\nx = { attribute = \"owner\", format = \"owners\" }\n",
    );
    assert!(bad.is_err_and(|e| e.to_string().contains("owner")));
}
