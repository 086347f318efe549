//! What the consumer functions do with queued Attio events.
//!
//! Events carry ids only, so every handler fetches current state from Attio and writes it to
//! the CRM through the [`relay_crm::CrmSink`] port. Each message ends with a [`Disposition`]:
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
mod list_entries;
mod notes;
mod record_source;
pub use record_source::RecordValues;
mod records;
mod tasks;

pub use backfill::PageReport;
pub use batch::RecordRef;
pub use context::{CREATE_LEASE, StepError, SyncContext};
pub use disposition::{BatchHandler, Disposition, InboundEvent, MessageOutcome};
pub use engagements::{Engagement, EngagementHandler};
pub use field_mapping::{AttributeSource, FieldMapping, FieldMappingError};
pub use list_entries::ListEntriesHandler;
pub use notes::{Notes, NotesHandler};
pub use records::RecordsHandler;
pub use tasks::{Tasks, TasksHandler};

#[cfg(test)]
mod tests;
