//! Which CRM object an Attio object became.
//!
//! HubSpot notes and tasks have no idempotent create, so the consumers remember the HubSpot id
//! of every note and task they created and update it on later events — a retried
//! `note.created` must not create a second note. Creating is guarded by a short reservation:
//! when `note.created` and `note-content.updated` are handled at once by two invocations, one
//! reserves and creates, the other is told the id is [`Reservation::Busy`] and retries later,
//! when it finds the mapping and updates.
//!
//! A create can also end without an answer (HubSpot's 502 after the write, a timeout) or be
//! followed by a crash before its id is stored. So the creator records the attempt
//! ([`IdMappings::record_create_attempt`]) before it sends the create, and the item keeps that
//! time until the id is stored: whoever takes the reservation over next is told
//! [`Reservation::Unresolved`] and must look the earlier attempt up in the CRM before creating
//! — the reservation never lapses into a blind second create.
//!
//! Records are upserted on `attio_record_id` and need no guard, but their HubSpot ids are
//! stored too: notes and tasks are associated with, and deletes and merges applied to, them.
//!
//! Adapters: [`DynamoDbMappings`] in Lambda, `SqliteMappings` (feature `sqlite`) for local runs,
//! [`MemoryMappings`] for unit tests — one reservation rule in all three. The same stores keep
//! the [`SchemaGenerations`] counter that tells every consumer container when Attio's schema
//! changed (`generation.rs`), and the [`Tombstones`] of deleted notes, tasks and records that
//! stop a late create or update from bringing them back (`tombstone.rs`).

use std::future::Future;
use std::time::Duration;

use relay_crm::{CrmId, CrmObject};

mod conflicts;
mod conflicts_dynamodb;
mod dynamodb;
mod generation;
mod ledger;
mod ledger_dynamodb;
mod lock;
mod memory;
mod memory_two_way;
mod tombstone;
pub use conflicts::{
    Conflict, ConflictFilter, ConflictPage, ConflictStore, ConflictValue, Resolution, Side,
};
pub use conflicts_dynamodb::{CONFLICT_KEY_ATTRIBUTE, DynamoDbConflicts};
pub use dynamodb::{DynamoDbMappings, KEY_ATTRIBUTE};
pub use generation::{GENERATION_ATTRIBUTE, SCHEMA_GENERATION_KEY, SchemaGenerations};
pub use ledger::{Ledger, SyncDirection, SyncLedger, Synced, fingerprint, ledger_key};
pub use ledger_dynamodb::LEDGER_ATTRIBUTE;
pub use lock::{RecordLocks, lock_key};
pub use memory::MemoryMappings;
pub use memory_two_way::MemoryTwoWay;
pub use tombstone::{EXPIRES_ATTRIBUTE, TOMBSTONE_RETENTION, Tombstones, tombstone_key};
#[cfg(any(test, feature = "sqlite"))]
mod sqlite;
#[cfg(any(test, feature = "sqlite"))]
pub use sqlite::SqliteMappings;
#[cfg(any(test, feature = "sqlite"))]
mod two_way_sqlite;
#[cfg(any(test, feature = "sqlite"))]
pub use two_way_sqlite::SqliteConflicts;

/// Seconds since the Unix epoch.
pub use relay_events::clock::UnixSeconds;

/// The answer to "may I create this object?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Nobody created it yet: create it, then [`IdMappings::put`] its id.
    Reserved,
    /// It exists: update this id instead of creating.
    Mapped(CrmId),
    /// Another invocation is creating it right now: retry this event later.
    Busy,
    /// Reserved, but an earlier create was attempted at `attempted_at` and its outcome is
    /// unknown (its answer was lost, or its creator died before storing the id): find that
    /// attempt in the CRM before creating, then [`IdMappings::put`] what was found or created.
    Unresolved { attempted_at: UnixSeconds },
}

#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("mapping store {operation} failed: {source}")]
    Unavailable {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The create reservation this invocation held lapsed or was taken over (or the id was
    /// stored meanwhile): it must not create. Retried like an unavailable store.
    #[error("the create reservation of {key} is no longer held")]
    ReservationLost { key: String },
    /// [`ConflictStore::resolve`] named a conflict that is not stored (a mistyped or
    /// truncated id): retrying cannot help, and nothing was written.
    #[error("no conflict {id}")]
    UnknownConflict { id: String },
}

impl MappingError {
    /// Whether retrying the same call cannot succeed (an unknown conflict); an unavailable
    /// store or a lost reservation may succeed on a retry.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::UnknownConflict { .. })
    }

    pub fn unavailable(
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Unavailable {
            operation,
            source: source.into(),
        }
    }
}

/// The storage key of one mapping: `"{crm object}#{attio id}"`.
pub fn mapping_key(object: CrmObject, attio_id: &str) -> String {
    format!("{object}#{attio_id}")
}

/// Attio id → CRM id. Adapters: [`DynamoDbMappings`], the SQLite one in `relay-embedded`, and
/// [`MemoryMappings`] for tests. Every mapping store keeps the [`Tombstones`] of deleted ids
/// too: the sync checks them after each write, through the same port.
pub trait IdMappings: Tombstones + Send + Sync {
    fn get(
        &self,
        object: CrmObject,
        attio_id: &str,
    ) -> impl Future<Output = Result<Option<CrmId>, MappingError>> + Send;

    /// Reserves the right to create, for `lease` (a crashed creator's reservation lapses).
    fn reserve(
        &self,
        object: CrmObject,
        attio_id: &str,
        now: UnixSeconds,
        lease: Duration,
    ) -> impl Future<Output = Result<Reservation, MappingError>> + Send;

    /// Records, under a reservation still held at `at`, that a create is about to be sent at
    /// `at`; kept until [`Self::put`] or [`Self::remove`], so a later reservation is
    /// [`Reservation::Unresolved`]. [`MappingError::ReservationLost`] when the reservation is
    /// no longer held (then nothing may be created).
    fn record_create_attempt(
        &self,
        object: CrmObject,
        attio_id: &str,
        at: UnixSeconds,
    ) -> impl Future<Output = Result<(), MappingError>> + Send;

    /// Records the CRM id (after a create, upsert or merge); clears any reservation and
    /// recorded attempt.
    fn put(
        &self,
        object: CrmObject,
        attio_id: &str,
        crm_id: &CrmId,
    ) -> impl Future<Output = Result<(), MappingError>> + Send;

    /// [`Self::put`] for several records of one CRM object (a batch upsert's answers), all
    /// or none on failure. One call per record unless the adapter does better (the SQLite one
    /// writes them in one transaction).
    fn put_many(
        &self,
        object: CrmObject,
        ids: &[(String, CrmId)],
    ) -> impl Future<Output = Result<(), MappingError>> + Send {
        async move {
            for (attio_id, crm_id) in ids {
                self.put(object, attio_id, crm_id).await?;
            }
            Ok(())
        }
    }

    /// Forgets a mapping (after the CRM object was archived, or a failed create).
    fn remove(
        &self,
        object: CrmObject,
        attio_id: &str,
    ) -> impl Future<Output = Result<(), MappingError>> + Send;
}
