//! Reconcile what webhooks missed, shared by `attio-relay reconcile` and the scheduled
//! reconcile Lambda (`functions/reconcile`).
//!
//! Attio retries a failed delivery for about 3 days, then marks the webhook degraded and later
//! inactive (<https://docs.attio.com/api-reference/webhooks/get-a-webhook>); what it gave up on
//! never reaches the queues. Reconcile therefore does two things:
//!
//! 1. [`status`]: reads each relay webhook's state in Attio; one that is not `active` becomes
//!    an [`Attention`] with what to do, and in Lambda a logged [`ALARM_EVENT`] line that the
//!    template's metric filter turns into the `webhook-not-active` alarm.
//! 2. [`walk`]: re-syncs every record of the mapped objects through the records consumer's
//!    mapping and upsert, page by page at a [`Share`] of the rate budgets, saving its
//!    [`SyncPosition`] after each page ([`position`]: a file for the CLI, the mappings table in
//!    Lambda) and starting no page past a deadline, so a pass longer than one Lambda
//!    invocation continues in the next.
//!
//! Ports with adapters beside them: [`RecordPageSource`] (`AttioClient`, [`MemoryRecords`]),
//! [`PositionStore`] ([`DynamoDbPositions`], [`FilePositions`], [`MemoryPositions`]); the
//! clock is passed in ([`relay_events::clock::Clock`]).

pub mod lambda;
pub mod position;
pub mod settings;
mod share;
pub mod status;
pub mod walk;

pub use position::{
    DynamoDbPositions, FilePositions, MemoryPositions, PositionError, PositionStore, SyncPosition,
};
pub use share::{NotAShare, Share};
pub use status::{ALARM_EVENT, Attention, StatusCheckError, WebhookCheck, attention};
pub use walk::{
    MemoryRecords, ObjectResult, PassReport, Quiet, RecordPageSource, WalkError, WalkObserver,
    WalkOptions, WalkOutcome, walk_object, walk_objects,
};

#[cfg(test)]
mod tests;
