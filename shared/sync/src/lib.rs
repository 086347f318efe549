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
//! Each message ends with a [`Disposition`]:
//!
//! | Outcome | Disposition | Why |
//! |---|---|---|
//! | written (or nothing to write: unmapped object, parked type) | `Done` | |
//! | Attio says 404 | `Done` after archiving the CRM copy | the object was deleted; retrying cannot help |
//! | 429, 5xx, timeout, open circuit, store unavailable | `Retry` | SQS redelivers after the visibility timeout; after `maxReceiveCount` it lands in the DLQ |
//! | HubSpot 400, unmapped deal stage, unreadable message | `DeadLetter` | a configuration or data problem: sent to the DLQ at once with the reason, for an operator to fix and replay |

mod backfill;
mod batch;
mod context;
mod disposition;
mod engagements;
pub mod field_mapping;
pub mod formats;
mod list_entries;
mod notes;
mod owners;
mod property_spec;
mod record_source;
pub use record_source::RecordValues;
mod records;
mod tasks;

pub use backfill::PageReport;
pub use batch::RecordRef;
pub use context::{CREATE_LEASE, StepError, SyncContext};
pub use disposition::{BatchHandler, Disposition, InboundEvent, MessageOutcome};
pub use engagements::{Engagement, EngagementHandler};
pub use field_mapping::{
    AttributeSource, FieldMapping, FieldMappingError, Format, OwnerIds, Pick, PropertySpec,
    StageMapping, StageTarget,
};
pub use list_entries::ListEntriesHandler;
pub use notes::{Notes, NotesHandler};
pub use owners::{DEFAULT_OWNER_TTL, OWNER_PROPERTY, OwnerResolver};
pub use records::RecordsHandler;
pub use tasks::{Tasks, TasksHandler};

#[cfg(test)]
mod tests;
