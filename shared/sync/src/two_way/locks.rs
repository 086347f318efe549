//! The per-record lock both two-way consumers hold across read → write → ledger
//! ([`relay_mappings::RecordLocks`]): the records consumer (and list entries, through the same
//! batch path) for the records of objects with `both` properties, from before Attio is read
//! until the ledger is written; the hubspot consumer for every record it settles, from before
//! HubSpot's state it compares is read (a second batch read, under the lock) until its ledger
//! write. A chunk's locks are taken in parallel (one conditional write each, all at once), so
//! a batch pays one round trip for them, not one per record; a record whose lock is held
//! elsewhere is retried (its message comes back after the visibility timeout), the rest go on.
//!
//! **What it covers, and what not.** Two relay syncs of one record never interleave while both
//! hold the lock, so a stale upsert can no longer land after a newer one, nor the reverse
//! consumer write HubSpot's value over Attio's newer one that the records consumer is sending.
//! Left open: (a) a holder that outlives [`LOCK_LEASE`] (3 minutes, longer than any consumer's
//! Lambda timeout — 120 s — so only a stalled local process, or container clocks minutes
//! apart, can get there); (b) people editing either side during a sync: their edit is not
//! locked out, it arrives as a new event and is compared then (a write can still overwrite an
//! edit made between the read and the write: review finding 10, not handled); (c) paths that
//! do not take the lock — a record synced on demand for a note or task and the merge paths
//! never send `both` properties (`forward.rs`), and reconcile's `sync_page` is outside this
//! module.

use std::collections::BTreeMap;
use std::time::Duration;

use relay_crm::CrmObject;

use crate::Disposition;
use crate::context::SyncContext;

/// How long a record's lock lasts unless given back: past every consumer's Lambda timeout.
pub(crate) const LOCK_LEASE: Duration = Duration::from_secs(180);

/// Locks taken for one batch; give them back with [`SyncContext::unlock_records`].
#[derive(Debug, Default)]
pub(crate) struct Held {
    holder: String,
    held: Vec<(CrmObject, String)>,
}

impl<S, M, A> SyncContext<S, M, A> {
    /// Takes the locks of `ids` in parallel for `held`. Returns why each record that could not
    /// be locked is retried (held elsewhere, or the store failing); without two-way sync,
    /// nothing is locked and nothing refused.
    pub(crate) async fn lock_records(
        &self,
        object: CrmObject,
        ids: &[String],
        held: &mut Held,
    ) -> BTreeMap<String, Disposition> {
        let mut refused = BTreeMap::new();
        let Some(two_way) = &self.two_way else {
            return refused;
        };
        if held.holder.is_empty() {
            held.holder = uuid::Uuid::new_v4().to_string();
        }
        let now = self.clock.now();
        let holder = held.holder.clone();
        let tries = ids.iter().map(|id| {
            let holder = holder.as_str();
            async move { (id, two_way.stores.lock(object, id, holder, now).await) }
        });
        for (id, taken) in futures::future::join_all(tries).await {
            match taken {
                Ok(true) => held.held.push((object, id.clone())),
                Ok(false) => {
                    refused.insert(
                        id.clone(),
                        Disposition::retry(format!(
                            "record {id} is being synced by another consumer right now"
                        )),
                    );
                }
                Err(err) => {
                    refused.insert(id.clone(), Disposition::retry(err));
                }
            }
        }
        refused
    }

    /// Gives every lock of `held` back, in parallel. A failure is logged only: the lock
    /// lapses after [`LOCK_LEASE`] anyway.
    pub(crate) async fn unlock_records(&self, held: Held) {
        let Some(two_way) = &self.two_way else {
            return;
        };
        let holder = held.holder.as_str();
        let gives = held.held.iter().map(|(object, id)| async move {
            (id, two_way.stores.unlock(*object, id, holder).await)
        });
        for (id, given) in futures::future::join_all(gives).await {
            if let Err(err) = given {
                tracing::warn!(record_id = %id, error = %err, "record lock not given back; it lapses on its own");
            }
        }
    }
}
