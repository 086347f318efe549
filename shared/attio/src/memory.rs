//! An in-memory [`AttioApi`]: records, notes, tasks and object slugs held in maps, every call
//! logged, and any call made to answer a chosen [`AttioError`] — so the sync handlers can be
//! tested alone, without an HTTP server.
//!
//! Missing things answer [`AttioError::NotFound`], as Attio answers 404 for deleted ones.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::schema::looks_like_uuid;
use crate::{AttioApi, AttioError, Note, Record, Task, WorkspaceMember};

/// One call made through the port, as the caller named it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AttioCall {
    Record { object: String, record_id: String },
    Note(String),
    Task(String),
    Slug(String),
    Member(String),
}

impl AttioCall {
    pub fn record(object: &str, record_id: &str) -> Self {
        Self::Record {
            object: object.to_owned(),
            record_id: record_id.to_owned(),
        }
    }

    fn path(&self) -> String {
        match self {
            Self::Record { object, record_id } => format!("/objects/{object}/records/{record_id}"),
            Self::Note(id) => format!("/notes/{id}"),
            Self::Task(id) => format!("/tasks/{id}"),
            Self::Slug(object) => format!("/objects/{object}"),
            Self::Member(id) => format!("/workspace_members/{id}"),
        }
    }
}

/// Attio in memory. Shared by reference; interior state behind a mutex.
#[derive(Debug, Default)]
pub struct MemoryAttio {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// By (object slug, record id).
    records: HashMap<(String, String), Record>,
    notes: HashMap<String, Note>,
    tasks: HashMap<String, Task>,
    members: HashMap<String, WorkspaceMember>,
    /// Object id → slug.
    slugs: HashMap<String, String>,
    /// Answers queued for particular calls, used up one per call.
    failures: HashMap<AttioCall, VecDeque<AttioError>>,
    calls: Vec<AttioCall>,
}

impl MemoryAttio {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Plain maps: a panicking test thread cannot leave them half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Declares an object: events name it by `object_id`, paths use `slug`.
    pub fn add_object(&self, object_id: &str, slug: &str) {
        self.state()
            .slugs
            .insert(object_id.to_owned(), slug.to_owned());
    }

    /// Stores (or replaces) a record of the object `slug`.
    pub fn put_record(&self, slug: &str, record: Record) {
        let key = (slug.to_owned(), record.record_id().to_owned());
        self.state().records.insert(key, record);
    }

    /// Deletes a record: later reads answer 404.
    pub fn remove_record(&self, slug: &str, record_id: &str) {
        self.state()
            .records
            .remove(&(slug.to_owned(), record_id.to_owned()));
    }

    pub fn put_note(&self, note: Note) {
        self.state().notes.insert(note.id.note_id.clone(), note);
    }

    pub fn put_task(&self, task: Task) {
        self.state().tasks.insert(task.id.task_id.clone(), task);
    }

    /// Adds a workspace member (by its `workspace_member_id`).
    pub fn put_member(&self, member: WorkspaceMember) {
        self.state()
            .members
            .insert(member.id.workspace_member_id.clone(), member);
    }

    /// The next `call` answers `error` instead (queue several for several calls).
    pub fn fail_next(&self, call: AttioCall, error: AttioError) {
        self.state()
            .failures
            .entry(call)
            .or_default()
            .push_back(error);
    }

    /// Every call made so far, in order.
    pub fn calls(&self) -> Vec<AttioCall> {
        self.state().calls.clone()
    }

    /// Logs `call` and answers a queued failure for it, if any.
    fn begin(&self, call: &AttioCall) -> Result<(), AttioError> {
        let mut state = self.state();
        state.calls.push(call.clone());
        match state.failures.get_mut(call).and_then(VecDeque::pop_front) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// Attio's 404 for what `call` names, worded as Attio words it (the object for a slug lookup,
/// the record, note or task otherwise).
fn not_found(call: &AttioCall) -> AttioError {
    let message = match call {
        AttioCall::Record { record_id, .. } => format!("Record with ID \"{record_id}\" not found."),
        AttioCall::Note(id) => format!("Note with ID \"{id}\" not found."),
        AttioCall::Task(id) => format!("Task with ID \"{id}\" not found."),
        AttioCall::Slug(object) => format!("Object with slug/ID \"{object}\" not found."),
        AttioCall::Member(id) => format!("Workspace member with ID \"{id}\" not found."),
    };
    AttioError::not_found(call.path(), crate::error::NOT_FOUND_CODE, message)
}

impl AttioApi for MemoryAttio {
    async fn get_record(&self, object: &str, record_id: &str) -> Result<Record, AttioError> {
        let call = AttioCall::record(object, record_id);
        self.begin(&call)?;
        let state = self.state();
        let slug = state.slugs.get(object).map_or(object, String::as_str);
        state
            .records
            .get(&(slug.to_owned(), record_id.to_owned()))
            .cloned()
            .ok_or_else(|| not_found(&call))
    }

    async fn get_note(&self, note_id: &str) -> Result<Note, AttioError> {
        let call = AttioCall::Note(note_id.to_owned());
        self.begin(&call)?;
        self.state()
            .notes
            .get(note_id)
            .cloned()
            .ok_or_else(|| not_found(&call))
    }

    async fn get_task(&self, task_id: &str) -> Result<Task, AttioError> {
        let call = AttioCall::Task(task_id.to_owned());
        self.begin(&call)?;
        self.state()
            .tasks
            .get(task_id)
            .cloned()
            .ok_or_else(|| not_found(&call))
    }

    async fn workspace_member(&self, id: &str) -> Result<WorkspaceMember, AttioError> {
        let call = AttioCall::Member(id.to_owned());
        self.begin(&call)?;
        self.state()
            .members
            .get(id)
            .cloned()
            .ok_or_else(|| not_found(&call))
    }

    /// Like the production adapter: slugs pass through, ids are looked up (404 when unknown).
    async fn object_slug(&self, object: &str) -> Result<String, AttioError> {
        let call = AttioCall::Slug(object.to_owned());
        self.begin(&call)?;
        match self.state().slugs.get(object) {
            Some(slug) => Ok(slug.clone()),
            None if !looks_like_uuid(object) => Ok(object.to_owned()),
            None => Err(not_found(&call)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEOPLE: &str = "f436cad2-7090-4b86-8ae2-27260febbefe";

    fn task(id: &str) -> Task {
        serde_json::from_value(serde_json::json!({
            "id": {"workspace_id": "ws", "task_id": id},
            "content_plaintext": "Call Ada",
            "is_completed": false,
            "created_at": "2026-11-02T09:12:44Z"
        }))
        .expect("task")
    }

    #[tokio::test]
    async fn answers_what_it_holds_404_otherwise_and_queued_failures_once() {
        let attio = MemoryAttio::new();
        attio.add_object(PEOPLE, "people");
        attio.put_task(task("t1"));
        assert_eq!(attio.object_slug(PEOPLE).await.expect("slug"), "people");
        assert_eq!(attio.object_slug("deals").await.expect("slug"), "deals");
        let unknown = attio.object_slug("00000000-0000-0000-0000-000000000000");
        assert!(matches!(unknown.await, Err(AttioError::NotFound { .. })));

        attio.fail_next(
            AttioCall::Task("t1".into()),
            AttioError::Api {
                status: 503,
                code: None,
                message: "down".into(),
                path: "/tasks/t1".into(),
            },
        );
        let failed = attio.get_task("t1").await.expect_err("queued failure");
        assert!(!failed.is_permanent());
        assert_eq!(attio.get_task("t1").await.expect("task").id.task_id, "t1");
        assert!(matches!(
            attio.get_note("n1").await,
            Err(AttioError::NotFound { .. })
        ));
        assert_eq!(attio.calls().len(), 6);
    }
}
