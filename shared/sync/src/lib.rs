//! What the consumer functions do with queued Attio events.
//!
//! Events carry ids only, so every handler fetches current state from Attio through the
//! [`relay_attio::AttioApi`] port and writes it to the CRM through the [`relay_crm::CrmSink`]
//! port, remembering CRM ids in [`relay_mappings::IdMappings`]; [`SyncContext`] holds the three.
//! Each port has an in-memory adapter beside it, so every handler is tested without servers.
//!
//! Shape: a handler receives a batch of [`InboundEvent`]s (parsed once, by the consumer),
//! groups it by what the events are about (`batch.rs`: a record, a parent record, a note or
//! task id), does the work once per group, and gives each message its group's outcome.
//! [`RecordsHandler`] batches the CRM upserts; [`ListEntriesHandler`] re-syncs parents;
//! notes and tasks share [`EngagementHandler`], differing only by their [`Engagement`].
//! Every consumer runs its handler inside [`SchemaAware`], which turns Attio's attribute events
//! into cache invalidation in every container (`schema.rs`).
//!
//! Each message ends with a [`Disposition`]:
//!
//! | Outcome | Disposition | Why |
//! |---|---|---|
//! | written (or nothing to write: unmapped object, parked type) | `Done` | |
//! | `object-attribute.*` / `list-attribute.*` (any object or list, known or not) | `Done` after dropping the cached definition and bumping the schema generation; `Retry` if the bump fails | the other containers must hear of it; the TTL is only the fallback |
//! | `record.deleted`, `note.deleted`, `task.deleted`, or a late write of an id deleted since | `Done` after leaving a tombstone and archiving the copy (a write checks the tombstone after writing: `tombstones.rs`); a note or task delete whose create is in flight is `Retry` | a delete racing a write must not leave an orphan or a recreated contact |
//! | a contact with the record's email already exists in HubSpot and carries no other Attio id | `Done` after adopting it (`SyncContext::adopt`) | every real portal already holds contacts: never a second one for an email |
//! | Attio says 404 `not_found` for the record, note or task | `Done` after archiving the CRM copy | it was deleted (or merged away); retrying cannot help |
//! | Attio says 404 `merge_in_progress`, or a 404 that is not Attio's error body | `Retry` | the merged record is being made; a proxy answered |
//! | 429, 5xx, timeout, open circuit, store unavailable | `Retry` | SQS redelivers after the visibility timeout; after `maxReceiveCount` it lands in the DLQ |
//! | HubSpot 401/403 (token, scope) | `Hold` | nothing succeeds until an operator fixes the token: the consumer hides the message for a growing time and an alarm fires, instead of burning its receives |
//! | the invocation's deadline is too near to start the message's group ([`Budget`]) | `Deferred` | a timeout would fail the whole batch and redo finished work; unstarted messages go back to the queue at once |
//! | HubSpot 400, a conflict retrying cannot solve (an email another Attio record holds), unmapped deal stage, unreadable message | `DeadLetter` | a configuration or data problem: sent to the DLQ at once with the reason, for an operator to fix and replay |

mod backfill;
mod batch;
mod budget;
mod context;
mod disposition;
mod engagements;
pub mod field_mapping;
pub mod formats;
mod links;
mod list_entries;
mod merges;
mod notes;
mod owners;
mod property_spec;
mod record_batch;
mod record_source;
pub use record_source::RecordValues;
mod records;
mod schema;
mod tasks;
mod tombstones;
pub mod two_way;

pub use backfill::PageReport;
pub use batch::RecordRef;
pub use budget::Budget;
pub use context::{CREATE_LEASE, CREATE_SETTLE, StepError, SyncClock, SyncContext};
pub use disposition::{BatchHandler, Disposition, InboundEvent, MessageOutcome, QueueHandler};
pub use engagements::{Engagement, EngagementHandler};
pub use field_mapping::{
    AttributeSource, Direction, FieldMapping, FieldMappingError, Format, OwnerIds, Pick,
    PropertySpec, StageMapping, StageTarget,
};
pub use list_entries::ListEntriesHandler;
pub use notes::{Notes, NotesHandler};
pub use owners::{DEFAULT_OWNER_TTL, OWNER_PROPERTY, OwnerResolver};
pub use records::RecordsHandler;
pub use schema::SchemaAware;
pub use tasks::{Tasks, TasksHandler};

#[cfg(test)]
mod tests;
