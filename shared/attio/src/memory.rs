//! An in-memory [`AttioApi`]: records, notes, tasks and object slugs held in maps, every call
//! logged, and any call made to answer a chosen [`AttioError`] — so the sync handlers can be
//! tested alone, without an HTTP server.
//!
//! Missing things answer [`AttioError::NotFound`], as Attio answers 404 for deleted ones; a
//! batched read ([`AttioApi::get_records`]) leaves them out of its answer, as Attio's query
//! does, and is logged as one [`AttioCall::Records`] per 500 distinct ids, as the client
//! sends them.
//!
//! By default every slug lookup reaches the maps. [`MemoryAttio::with_schema_cache`] caches
//! them as the production adapter does (until `forget_schema*`), and
//! [`MemoryAttio::another_container`] gives a second view of the same workspace with a cache
//! of its own — so tests can see which container asks Attio again after a schema change.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

#[path = "memory_writes.rs"]
mod writes;
pub use writes::MsClock;

use crate::schema::looks_like_uuid;
use crate::{AttioApi, AttioError, Note, Record, Task, WorkspaceMember};

/// One call made through the port, as the caller named it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AttioCall {
    Record {
        object: String,
        record_id: String,
    },
    /// One batched read of `object`: the ids it asked for (distinct, at most 500).
    Records {
        object: String,
        record_ids: Vec<String>,
    },
    Note(String),
    Task(String),
    Slug(String),
    Member(String),
    /// An assert (`PUT /objects/{object}/records?matching_attribute=…`): a write.
    Assert {
        object: String,
        matching_attribute: String,
    },
    /// An update (`PUT /objects/{object}/records/{record_id}`): a write.
    Update {
        object: String,
        record_id: String,
    },
    /// A delete (`DELETE /objects/{object}/records/{record_id}`): a write.
    Delete {
        object: String,
        record_id: String,
    },
}

impl AttioCall {
    pub fn record(object: &str, record_id: &str) -> Self {
        Self::Record {
            object: object.to_owned(),
            record_id: record_id.to_owned(),
        }
    }

    /// A batched read of `object` asking for `record_ids`.
    pub fn records(object: &str, record_ids: &[&str]) -> Self {
        Self::Records {
            object: object.to_owned(),
            record_ids: record_ids.iter().map(|id| (*id).to_owned()).collect(),
        }
    }

    /// The key queued failures of every batched read of `object` are kept under.
    fn any_query_of(object: &str) -> Self {
        Self::records(object, &[])
    }

    fn path(&self) -> String {
        match self {
            Self::Record { object, record_id } => format!("/objects/{object}/records/{record_id}"),
            Self::Records { object, .. } => format!("/objects/{object}/records/query"),
            Self::Note(id) => format!("/notes/{id}"),
            Self::Task(id) => format!("/tasks/{id}"),
            Self::Slug(object) => format!("/objects/{object}"),
            Self::Member(id) => format!("/workspace_members/{id}"),
            Self::Assert { object, .. } => format!("/objects/{object}/records"),
            Self::Update { object, record_id } | Self::Delete { object, record_id } => {
                format!("/objects/{object}/records/{record_id}")
            }
        }
    }
}

/// Attio in memory. Shared by reference; interior state behind a mutex.
#[derive(Debug, Default)]
pub struct MemoryAttio {
    /// The workspace, shared with [`MemoryAttio::another_container`]'s views.
    state: Arc<Mutex<State>>,
    /// Object → slug, when caching like the production adapter; per view.
    slug_cache: Option<Mutex<HashMap<String, String>>>,
    /// Every call this view made.
    calls: Mutex<Vec<AttioCall>>,
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
    /// The writer's clock, actor and record counter (`memory_writes.rs`).
    writes: writes::WriteState,
}

impl State {
    /// The slug of `object` (an id this view has resolved, or a slug as given): the key the
    /// records are held under.
    fn slug<'a>(&'a self, object: &'a str) -> &'a str {
        self.slugs.get(object).map_or(object, String::as_str)
    }
}

impl MemoryAttio {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Plain maps: a panicking test thread cannot leave them half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Caches object slugs in this view until `forget_schema*`, as `CachedAttio` does: a
    /// cached slug is answered without a call (and without a queued failure).
    pub fn with_schema_cache(mut self) -> Self {
        self.slug_cache = Some(Mutex::default());
        self
    }

    /// A second view of the same workspace (records, objects, queued failures), as another
    /// warm Lambda container sees it: its own call log, and its own empty slug cache when this
    /// view caches.
    pub fn another_container(&self) -> Self {
        Self {
            state: Arc::clone(&self.state),
            slug_cache: self.slug_cache.as_ref().map(|_| Mutex::default()),
            calls: Mutex::default(),
        }
    }

    fn slug_cache(&self) -> Option<MutexGuard<'_, HashMap<String, String>>> {
        let cache = self.slug_cache.as_ref()?;
        Some(cache.lock().unwrap_or_else(PoisonError::into_inner))
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

    /// The next batched read of `object` ([`AttioApi::get_records`], whatever ids it asks
    /// for) answers `error` instead. Failures queued for single records
    /// ([`AttioCall::Record`]) answer single reads only: a query fails as a whole.
    pub fn fail_next_query(&self, object: &str, error: AttioError) {
        self.fail_next(AttioCall::any_query_of(object), error);
    }

    /// Every call this view made so far, in order.
    pub fn calls(&self) -> Vec<AttioCall> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Logs `call` and answers a queued failure for it, if any.
    fn begin(&self, call: &AttioCall) -> Result<(), AttioError> {
        self.begin_keyed(call, call)
    }

    /// Logs `call` and answers a failure queued under `key`, if any.
    fn begin_keyed(&self, call: &AttioCall, key: &AttioCall) -> Result<(), AttioError> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(call.clone());
        let mut state = self.state();
        match state.failures.get_mut(key).and_then(VecDeque::pop_front) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// Attio's 404 for what `call` names, worded as Attio words it (the object for a slug lookup,
/// the record, note or task otherwise).
fn not_found(call: &AttioCall) -> AttioError {
    let message = match call {
        AttioCall::Record { record_id, .. }
        | AttioCall::Update { record_id, .. }
        | AttioCall::Delete { record_id, .. } => {
            format!("Record with ID \"{record_id}\" not found.")
        }
        AttioCall::Records { .. } | AttioCall::Assert { .. } => {
            "The referenced object was not found.".to_owned()
        }
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
        let slug = state.slug(object);
        state
            .records
            .get(&(slug.to_owned(), record_id.to_owned()))
            .cloned()
            .ok_or_else(|| not_found(&call))
    }

    /// Like Attio's query: the records held among the ids, absent ones left out; one call
    /// logged per 500 distinct ids.
    async fn get_records(&self, object: &str, ids: &[String]) -> Result<Vec<Record>, AttioError> {
        let ids = crate::batch_reads::distinct(ids);
        let mut found = Vec::new();
        for chunk in ids.chunks(crate::MAX_IDS_PER_QUERY) {
            let call = AttioCall::records(object, chunk);
            self.begin_keyed(&call, &AttioCall::any_query_of(object))?;
            let state = self.state();
            let slug = state.slug(object);
            found.extend(chunk.iter().filter_map(|id| {
                let key = (slug.to_owned(), (*id).to_owned());
                state.records.get(&key).cloned()
            }));
        }
        Ok(found)
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
        if let Some(slug) = self.slug_cache().and_then(|c| c.get(object).cloned()) {
            return Ok(slug);
        }
        let call = AttioCall::Slug(object.to_owned());
        self.begin(&call)?;
        let slug = match self.state().slugs.get(object) {
            Some(slug) => slug.clone(),
            None if !looks_like_uuid(object) => object.to_owned(),
            None => return Err(not_found(&call)),
        };
        if let Some(mut cache) = self.slug_cache() {
            cache.insert(object.to_owned(), slug.clone());
        }
        Ok(slug)
    }

    /// Drops `object`, by whichever name it was cached under.
    fn forget_schema_of(&self, object: &str) {
        if let Some(mut cache) = self.slug_cache() {
            cache.retain(|name, slug| name != object && slug != object);
        }
    }

    fn forget_schema(&self) {
        if let Some(mut cache) = self.slug_cache() {
            cache.clear();
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

    fn person(id: &str) -> Record {
        serde_json::from_value(serde_json::json!({
            "id": {"workspace_id": "ws", "object_id": PEOPLE, "record_id": id},
            "created_at": "2026-11-02T09:12:44Z",
            "values": {}
        }))
        .expect("record")
    }

    #[tokio::test]
    async fn a_batched_read_answers_what_it_holds_in_calls_of_500_and_fails_whole() {
        let attio = MemoryAttio::new();
        attio.add_object(PEOPLE, "people");
        let held: Vec<String> = (0..600).map(|i| format!("r{i}")).collect();
        for id in &held {
            attio.put_record("people", person(id));
        }
        let mut asked = held.clone();
        asked.push("gone".into());
        asked.push("r1".into());

        let found = attio.get_records(PEOPLE, &asked).await.expect("records");

        assert_eq!(found.len(), 600, "the absent id is left out, r1 read once");
        let calls = attio.calls();
        let sizes: Vec<usize> = calls
            .iter()
            .map(|c| match c {
                AttioCall::Records { object, record_ids } if object == PEOPLE => record_ids.len(),
                other => panic!("only batched reads expected: {other:?}"),
            })
            .collect();
        assert_eq!(sizes, [500, 101]);

        attio.fail_next_query(
            PEOPLE,
            AttioError::RateLimited {
                retry_after: std::time::Duration::from_secs(1),
                path: "/objects/people/records/query".into(),
            },
        );
        let failed = attio.get_records(PEOPLE, &held[..2]).await;
        assert!(matches!(failed, Err(AttioError::RateLimited { .. })));
        // A failure queued for a single record answers single reads only.
        attio.fail_next(AttioCall::record(PEOPLE, "r0"), attio_503());
        assert_eq!(
            attio
                .get_records(PEOPLE, &held[..1])
                .await
                .expect("ok")
                .len(),
            1
        );
        assert!(attio.get_record(PEOPLE, "r0").await.is_err());
    }

    fn attio_503() -> AttioError {
        AttioError::Api {
            status: 503,
            code: None,
            message: "down".into(),
            path: "/x".into(),
        }
    }

    #[tokio::test]
    async fn a_caching_view_asks_once_until_it_forgets_and_views_cache_apart() {
        let a = MemoryAttio::new().with_schema_cache();
        let b = a.another_container();
        a.add_object(PEOPLE, "people");
        for _ in 0..2 {
            assert_eq!(a.object_slug(PEOPLE).await.expect("slug"), "people");
        }
        assert_eq!(a.calls(), [AttioCall::Slug(PEOPLE.into())]);
        // The workspace is shared, the cache is not: a rename reaches b, not a's cache.
        a.add_object(PEOPLE, "humans");
        assert_eq!(b.object_slug(PEOPLE).await.expect("slug"), "humans");
        assert_eq!(a.object_slug(PEOPLE).await.expect("slug"), "people");
        a.forget_schema_of("people");
        assert_eq!(a.object_slug(PEOPLE).await.expect("slug"), "humans");
        b.forget_schema();
        assert_eq!(b.object_slug(PEOPLE).await.expect("slug"), "humans");
        assert_eq!(a.calls().len(), 2);
        assert_eq!(b.calls().len(), 2);
        // The uncached default asks every time, and forgetting is a no-op.
        let plain = MemoryAttio::new();
        plain.forget_schema();
        plain.object_slug("deals").await.expect("slug");
        plain.object_slug("deals").await.expect("slug");
        assert_eq!(plain.calls().len(), 2);
    }
}
