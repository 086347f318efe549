//! The Attio port: exactly the reads the sync handlers make, so they can run against the HTTP
//! client in production and against [`MemoryAttio`](crate::MemoryAttio) in tests.
//!
//! Events name objects by id while API paths and field mappings use slugs, so resolving an
//! object to its slug is part of the port. [`CachedAttio`] is the production adapter: the HTTP
//! client with slugs resolved through a [`SchemaCache`] (one request per object per TTL).
//! [`AttioClient`] implements the port too, uncached, for one-off tools.

use std::future::Future;

use crate::schema::looks_like_uuid;
use crate::{AttioClient, AttioError, Note, Record, SchemaCache, Task, WorkspaceMember};

/// What the consumers read from Attio.
pub trait AttioApi: Send + Sync {
    /// A record by object (id or slug) and record id; [`AttioError::NotFound`] once deleted.
    fn get_record(
        &self,
        object: &str,
        record_id: &str,
    ) -> impl Future<Output = Result<Record, AttioError>> + Send;

    /// The records of `object` (id or slug) among `record_ids`, in one query per 500 distinct
    /// ids (`POST /objects/{object}/records/query`, `record_id` `$in`), in any order. A record
    /// absent from the answer is not held by Attio under that id now (deleted, merged away —
    /// or the new record of a merge still being applied, which [`Self::get_record`] tells
    /// apart with `merge_in_progress`): callers that act on "gone" confirm it with
    /// [`Self::get_record`]. An error fails the read of every id.
    fn get_records(
        &self,
        object: &str,
        record_ids: &[String],
    ) -> impl Future<Output = Result<Vec<Record>, AttioError>> + Send;

    fn get_note(&self, note_id: &str) -> impl Future<Output = Result<Note, AttioError>> + Send;

    fn get_task(&self, task_id: &str) -> impl Future<Output = Result<Task, AttioError>> + Send;

    /// A workspace member (a record owner, task assignee or note author), for its email:
    /// owners in the CRM are matched by email. [`AttioError::NotFound`] for an unknown id.
    /// Uncached in every adapter: the sync caches member emails with a TTL of its own.
    fn workspace_member(
        &self,
        workspace_member_id: &str,
    ) -> impl Future<Output = Result<WorkspaceMember, AttioError>> + Send;

    /// The slug to use for `object` in API paths and the field mapping. A slug is returned as
    /// is; an object id is looked up.
    fn object_slug(&self, object: &str) -> impl Future<Output = Result<String, AttioError>> + Send;

    /// Forgets what this adapter caches about `object` (an object or list, by id or slug), so
    /// the next lookup asks Attio: its attributes changed (`object-attribute.*`,
    /// `list-attribute.*` webhooks). An id it never cached is no error.
    fn forget_schema_of(&self, object: &str);

    /// Forgets every cached definition: some container saw the schema change, and which
    /// objects it touched is not known here.
    fn forget_schema(&self);
}

impl AttioApi for AttioClient {
    async fn get_record(&self, object: &str, record_id: &str) -> Result<Record, AttioError> {
        AttioClient::get_record(self, object, record_id).await
    }

    async fn get_records(&self, object: &str, ids: &[String]) -> Result<Vec<Record>, AttioError> {
        AttioClient::get_records(self, object, ids).await
    }

    async fn get_note(&self, note_id: &str) -> Result<Note, AttioError> {
        AttioClient::get_note(self, note_id).await
    }

    async fn get_task(&self, task_id: &str) -> Result<Task, AttioError> {
        AttioClient::get_task(self, task_id).await
    }

    async fn workspace_member(&self, id: &str) -> Result<WorkspaceMember, AttioError> {
        self.get_workspace_member(id).await
    }

    /// Uncached: one request per id. Long-lived callers use [`CachedAttio`].
    async fn object_slug(&self, object: &str) -> Result<String, AttioError> {
        if !looks_like_uuid(object) {
            return Ok(object.to_owned());
        }
        Ok(self.get_object(object).await?.slug().to_owned())
    }

    /// Nothing is cached.
    fn forget_schema_of(&self, _object: &str) {}

    fn forget_schema(&self) {}
}

/// The production adapter: the HTTP client, with object slugs cached per container. Cheap to
/// clone; clones share the connection pool, breakers, pacer and cache.
#[derive(Debug, Clone)]
pub struct CachedAttio {
    client: AttioClient,
    schema: SchemaCache,
}

impl CachedAttio {
    pub fn new(client: AttioClient) -> Self {
        Self {
            schema: SchemaCache::new(client.clone()),
            client,
        }
    }

    /// The client itself, for calls outside the port (record pages, webhooks, writes).
    pub fn client(&self) -> &AttioClient {
        &self.client
    }

    /// The schema cache the slugs come from (the port's `forget_schema*` invalidate it).
    pub fn schema(&self) -> &SchemaCache {
        &self.schema
    }
}

impl From<AttioClient> for CachedAttio {
    fn from(client: AttioClient) -> Self {
        Self::new(client)
    }
}

impl AttioApi for CachedAttio {
    async fn get_record(&self, object: &str, record_id: &str) -> Result<Record, AttioError> {
        self.client.get_record(object, record_id).await
    }

    async fn get_records(&self, object: &str, ids: &[String]) -> Result<Vec<Record>, AttioError> {
        self.client.get_records(object, ids).await
    }

    async fn get_note(&self, note_id: &str) -> Result<Note, AttioError> {
        self.client.get_note(note_id).await
    }

    async fn get_task(&self, task_id: &str) -> Result<Task, AttioError> {
        self.client.get_task(task_id).await
    }

    async fn workspace_member(&self, id: &str) -> Result<WorkspaceMember, AttioError> {
        self.client.get_workspace_member(id).await
    }

    async fn object_slug(&self, object: &str) -> Result<String, AttioError> {
        self.schema.slug_for(object).await
    }

    fn forget_schema_of(&self, object: &str) {
        self.schema.invalidate(object);
    }

    fn forget_schema(&self) {
        self.schema.invalidate_all();
    }
}
