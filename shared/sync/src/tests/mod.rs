//! Handler tests without servers: every handler over `MemoryAttio`, `MemoryCrm` and
//! `MemoryMappings`, checking the calls each batch makes and each message's disposition.

mod adoption;
mod deadline;
mod engagements;
mod field_formats;
mod formats;
mod links;
mod list_entries;
mod merges;
mod owners;
mod records;
mod schema;
mod tombstones;
mod two_way;
mod two_way_archive;
mod two_way_review;

use std::collections::BTreeMap;
use std::sync::Arc;

use relay_attio::{AttioCall, AttioError, MemoryAttio, Note, Record, Task};
use relay_crm::{CrmError, MemoryCrm, OutboxEntry};
use relay_events::QueuedEvent;
use relay_mappings::MemoryMappings;
use serde_json::{Value, json};

use crate::{Disposition, FieldMapping, InboundEvent, MessageOutcome, SyncContext};

pub const WS: &str = "a9f6fd20-80d5-4bd1-b8fe-60a7c5a9178a";
pub const PEOPLE: &str = "f436cad2-7090-4b86-8ae2-27260febbefe";
pub const COMPANIES: &str = "0b7e5a8c-3f7e-4d55-9a43-2b1f6c8d9e01";
/// A custom object the default field mapping does not name.
pub const PROJECTS: &str = "7c2d4e6f-8a9b-4c0d-9e1f-2a3b4c5d6e7f";
pub const ADA: &str = "443d9969-4842-451e-96bc-ffb9ad6744df";
pub const GRACE: &str = "5a1c2e3d-4b5f-4a6b-8c7d-9e0f1a2b3c4d";

pub type Ctx = SyncContext<MemoryCrm, MemoryMappings, MemoryAttio>;

/// A context over the in-memory adapters, with people, companies and projects declared.
pub fn context() -> Arc<Ctx> {
    Arc::new(unshared_context())
}

/// [`context`] measuring reservations and create attempts by `clock`.
pub fn context_at(clock: impl relay_events::clock::Clock + 'static) -> Arc<Ctx> {
    Arc::new(unshared_context().with_clock(clock))
}

fn unshared_context() -> Ctx {
    let attio = MemoryAttio::new();
    attio.add_object(PEOPLE, "people");
    attio.add_object(COMPANIES, "companies");
    attio.add_object(PROJECTS, "projects");
    SyncContext::with_attio(
        attio,
        MemoryCrm::new(),
        MemoryMappings::new(),
        FieldMapping::default(),
    )
}

/// [`context`] with Ada and Grace in Attio's people.
pub fn with_people() -> Arc<Ctx> {
    let ctx = context();
    ctx.attio
        .put_record("people", person(ADA, "ada@example.com", "Ada"));
    ctx.attio
        .put_record("people", person(GRACE, "grace@example.com", "Grace"));
    ctx
}

/// The records read so far, single or batched: one `AttioCall::Record` per record per call
/// (a batched read names each of its ids), for tests about *which* records were read.
pub fn record_fetches(ctx: &Ctx) -> Vec<AttioCall> {
    let mut reads = Vec::new();
    for call in ctx.attio.calls() {
        match call {
            AttioCall::Record { .. } => reads.push(call),
            AttioCall::Records { object, record_ids } => {
                reads.extend(record_ids.iter().map(|id| AttioCall::record(&object, id)))
            }
            _ => {}
        }
    }
    reads
}

/// The record reads made so far as calls (a batched read is one), for tests about how many
/// requests Attio received.
pub fn record_calls(ctx: &Ctx) -> Vec<AttioCall> {
    let calls = ctx.attio.calls().into_iter();
    calls
        .filter(|c| matches!(c, AttioCall::Record { .. } | AttioCall::Records { .. }))
        .collect()
}

/// A message as ingest queues it and `relay_consumer::settle` parses it.
pub fn inbound(message_id: &str, event: Value) -> InboundEvent {
    let raw = serde_json::to_vec(&event).expect("json");
    let queued = QueuedEvent::first_of(&raw, message_id, 1_763_000_000).expect("event");
    InboundEvent::from_queued(message_id.to_owned(), queued).expect("event parses")
}

pub fn actor() -> Value {
    json!({"type": "workspace-member", "id": "061b809a-2423-4955-94c9-07c16d05be79"})
}

pub fn record_event(kind: &str, object_id: &str, record_id: &str) -> Value {
    let mut id = json!({"workspace_id": WS, "object_id": object_id, "record_id": record_id});
    if kind == "record.updated" {
        id["attribute_id"] = json!("d9b3c6b1-1a2b-4c3d-8e9f-0a1b2c3d4e5f");
    }
    json!({"event_type": kind, "id": id, "actor": actor()})
}

pub fn person(record_id: &str, email: &str, first_name: &str) -> Record {
    let current = |extra: Value| {
        let mut value = json!({"active_from": "2026-11-02T09:12:44Z", "active_until": null});
        value
            .as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        json!([value])
    };
    serde_json::from_value(json!({
        "id": {"workspace_id": WS, "object_id": PEOPLE, "record_id": record_id},
        "created_at": "2026-11-02T09:12:44Z",
        "values": {
            "email_addresses": current(json!({
                "attribute_type": "email-address", "email_address": email,
                "original_email_address": email, "email_domain": "example.com",
                "email_root_domain": "example.com", "email_local_specifier": first_name})),
            "name": current(json!({
                "attribute_type": "personal-name", "first_name": first_name,
                "last_name": "Example", "full_name": format!("{first_name} Example")})),
        }
    }))
    .expect("record")
}

pub fn note(note_id: &str, parent_object: &str, parent_record_id: &str) -> Note {
    serde_json::from_value(json!({
        "id": {"workspace_id": WS, "note_id": note_id},
        "parent_object": parent_object,
        "parent_record_id": parent_record_id,
        "title": "Call notes",
        "content_plaintext": "Discussed the engine.",
        "created_at": "2026-11-03T10:00:00Z"
    }))
    .expect("note")
}

pub fn task(task_id: &str, content: &str, completed: bool, linked: &[(&str, &str)]) -> Task {
    let linked: Vec<Value> = linked
        .iter()
        .map(|(o, r)| json!({"target_object_id": o, "target_record_id": r}))
        .collect();
    serde_json::from_value(json!({
        "id": {"workspace_id": WS, "task_id": task_id},
        "content_plaintext": content,
        "deadline_at": null,
        "is_completed": completed,
        "linked_records": linked,
        "created_at": "2026-11-04T08:00:00Z"
    }))
    .expect("task")
}

/// Each message's disposition; a message given two outcomes fails the test.
pub fn by_message(outcomes: Vec<MessageOutcome>) -> BTreeMap<String, Disposition> {
    let mut out = BTreeMap::new();
    for o in outcomes {
        let twice = out.insert(o.message_id.clone(), o.disposition);
        assert!(twice.is_none(), "{} has two outcomes", o.message_id);
    }
    out
}

pub fn is_retry(d: &Disposition, text: &str) -> bool {
    matches!(d, Disposition::Retry { reason } if reason.contains(text))
}

pub fn is_dead_letter(d: &Disposition, text: &str) -> bool {
    matches!(d, Disposition::DeadLetter { reason } if reason.contains(text))
}

pub fn attio_api(status: u16, path: &str) -> AttioError {
    AttioError::Api {
        status,
        code: None,
        message: format!("HTTP {status}"),
        path: path.to_owned(),
    }
}

pub fn crm_unavailable(operation: &str) -> CrmError {
    CrmError::Unavailable {
        operation: operation.to_owned(),
        message: "HTTP 502".into(),
    }
}

pub fn upserts(calls: &[OutboxEntry]) -> Vec<&OutboxEntry> {
    calls
        .iter()
        .filter(|c| matches!(c, OutboxEntry::Upsert { .. }))
        .collect()
}
