//! Tombstones: which Attio notes, tasks and records were deleted, remembered for a while.
//!
//! A delete races the writes in flight for the same object: a `note.created` that fetched the
//! note before it was deleted creates its HubSpot copy after the `note.deleted` archived
//! nothing (no mapping yet), and a `record.updated` that fetched the record before it was
//! deleted upserts on `attio_record_id` — which creates a NEW contact, since the archived one
//! no longer counts. Events carry no time and SQS keeps no order, so the only way to tell a
//! late write from a live one is to remember the delete: the delete buries the id first, and
//! every write checks the tombstone AFTER it wrote (and mapped) what it wrote, archiving it when
//! the id is buried. Each side writes before it reads the other's write, so at least one of
//! them sees the other, whatever the interleaving (`relay_sync`'s `tombstones.rs`).
//!
//! A tombstone is kept for [`TOMBSTONE_RETENTION`]: longer than any message naming the id can
//! still be handled. Attio retries a delivery for about 3 days, a queue keeps a message 4
//! days, and a dead-letter queue keeps it until 14 days after it was first queued ("the
//! expiration of a message is always based on its original enqueue timestamp",
//! <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/setting-up-dead-letter-queue-retention.html>);
//! a replay sends it anew, for up to 4 more days. Attio never reuses an id, so a tombstone
//! can never hide a live object.
//!
//! Adapters: the three mapping stores. DynamoDB deletes an expired tombstone with its TTL
//! (`expires_at`), which is lazy ("typically within a few days",
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/TTL.html>), so every
//! adapter also compares `expires_at` with the clock it is given.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use relay_crm::CrmObject;

use crate::{MappingError, UnixSeconds};

/// How long a delete is remembered: 3 days of Attio retries + 14 days of queue and DLQ
/// retention + a replay's 4 days, rounded up with room to spare.
pub const TOMBSTONE_RETENTION: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The number attribute (DynamoDB) or column (SQLite) holding when a tombstone expires, in
/// seconds since the epoch: the mappings table's TTL attribute.
pub const EXPIRES_ATTRIBUTE: &str = "expires_at";

/// The storage key of a tombstone: `"{crm object}#{attio id}#deleted"`, a derived key beside
/// the mapping's own (`"{crm object}#{attio id}"`), as `#links` and `#merged-from` are.
pub fn tombstone_key(object: CrmObject, attio_id: &str) -> String {
    format!("{object}#{attio_id}#deleted")
}

/// Deleted Attio ids, by the CRM object type their copies are.
pub trait Tombstones: Send + Sync {
    /// Remembers that `attio_id` was deleted, until `now + retention`. Burying again extends
    /// the retention; it never fails because the id is buried already.
    fn bury(
        &self,
        object: CrmObject,
        attio_id: &str,
        now: UnixSeconds,
        retention: Duration,
    ) -> impl Future<Output = Result<(), MappingError>> + Send;

    /// True when `attio_id` was deleted and its tombstone has not expired at `now`. A strongly
    /// consistent read: a tombstone written before this call began is seen.
    fn is_buried(
        &self,
        object: CrmObject,
        attio_id: &str,
        now: UnixSeconds,
    ) -> impl Future<Output = Result<bool, MappingError>> + Send;

    /// Which of `attio_ids` are buried at `now`, with [`Self::is_buried`]'s consistency: a
    /// batch's records checked at once. One call per id unless the adapter does better (the
    /// SQLite one reads them in one round trip: a records batch checks 100 ids twice, and on
    /// the connection `attio-relay dev` shares with ingest each round trip waits its turn).
    fn buried_among(
        &self,
        object: CrmObject,
        attio_ids: &[String],
        now: UnixSeconds,
    ) -> impl Future<Output = Result<HashSet<String>, MappingError>> + Send {
        async move {
            let mut buried = HashSet::new();
            for id in attio_ids {
                if self.is_buried(object, id, now).await? {
                    buried.insert(id.clone());
                }
            }
            Ok(buried)
        }
    }
}

/// When a tombstone written at `now` expires.
pub(crate) fn expiry(now: UnixSeconds, retention: Duration) -> UnixSeconds {
    now.saturating_add(i64::try_from(retention.as_secs()).unwrap_or(i64::MAX))
}
