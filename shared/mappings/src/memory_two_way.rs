//! [`SyncLedger`] and [`ConflictStore`] in memory, for tests of the two-way sync without a
//! store: one type for both, as the mapping stores keep the ledger beside the mappings.
//! Clones share the maps, as clones of the real adapters share a table.
//!
//! Every ledger read is counted ([`MemoryTwoWay::ledger_reads`]) so tests can hold the records
//! path to one ledger read per batch, and calls can be made to fail as an unavailable store
//! fails ([`MemoryTwoWay::fail_next`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use relay_crm::CrmObject;

use crate::{
    Conflict, ConflictFilter, ConflictPage, ConflictStore, Ledger, MappingError, RecordLocks,
    Resolution, SyncLedger, UnixSeconds, ledger_key, lock_key,
};

#[derive(Debug, Clone, Default)]
pub struct MemoryTwoWay {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// By [`ledger_key`].
    ledgers: HashMap<String, Ledger>,
    conflicts: BTreeMap<String, Conflict>,
    /// Every `ledgers` call: how many ids it asked for.
    ledger_reads: Vec<usize>,
    /// Calls left to fail before the store answers again.
    failures: usize,
    /// By [`lock_key`]: holder and until (seconds).
    locks: HashMap<String, (String, i64)>,
}

#[derive(Debug, thiserror::Error)]
#[error("MemoryTwoWay was told to fail this call")]
struct Injected;

impl MemoryTwoWay {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next `calls` calls fail as an unavailable store does.
    pub fn fail_next(&self, calls: usize) {
        self.state().failures += calls;
    }

    fn call(&self, operation: &'static str) -> Result<MutexGuard<'_, State>, MappingError> {
        let mut state = self.state();
        if state.failures > 0 {
            state.failures -= 1;
            return Err(MappingError::unavailable(operation, Injected));
        }
        Ok(state)
    }

    /// The ids each ledger read asked for, one entry per call, in order.
    pub fn ledger_reads(&self) -> Vec<usize> {
        self.state().ledger_reads.clone()
    }

    /// One record's ledger as stored (empty when nothing was synced).
    pub fn ledger(&self, object: CrmObject, attio_record_id: &str) -> Ledger {
        let key = ledger_key(object, attio_record_id);
        self.state().ledgers.get(&key).cloned().unwrap_or_default()
    }

    /// Every conflict stored, by id.
    pub fn conflicts(&self) -> Vec<Conflict> {
        self.state().conflicts.values().cloned().collect()
    }
}

impl SyncLedger for MemoryTwoWay {
    async fn ledgers(
        &self,
        object: CrmObject,
        attio_record_ids: &[String],
    ) -> Result<BTreeMap<String, Ledger>, MappingError> {
        let mut state = self.call("ledger read")?;
        state.ledger_reads.push(attio_record_ids.len());
        Ok(attio_record_ids
            .iter()
            .filter_map(|id| {
                let ledger = state.ledgers.get(&ledger_key(object, id))?;
                Some((id.clone(), ledger.clone()))
            })
            .collect())
    }

    async fn record(
        &self,
        object: CrmObject,
        attio_record_id: &str,
        entries: &Ledger,
    ) -> Result<(), MappingError> {
        let mut state = self.call("ledger write")?;
        // As the stores: recording nothing makes no ledger (the contract test holds all three).
        if entries.is_empty() {
            return Ok(());
        }
        let ledger = state
            .ledgers
            .entry(ledger_key(object, attio_record_id))
            .or_default();
        ledger.extend(entries.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(())
    }
}

/// The DynamoDB adapter's rule: taken when absent, lapsed or already the holder's.
impl RecordLocks for MemoryTwoWay {
    async fn lock(
        &self,
        object: CrmObject,
        attio_record_id: &str,
        holder: &str,
        now: UnixSeconds,
        lease: std::time::Duration,
    ) -> Result<bool, MappingError> {
        let mut state = self.call("lock")?;
        let key = lock_key(object, attio_record_id);
        if let Some((held_by, until)) = state.locks.get(&key)
            && held_by != holder
            && *until >= now
        {
            return Ok(false);
        }
        let until = now.saturating_add(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX));
        state.locks.insert(key, (holder.to_owned(), until));
        Ok(true)
    }

    async fn unlock(
        &self,
        object: CrmObject,
        attio_record_id: &str,
        holder: &str,
    ) -> Result<(), MappingError> {
        let mut state = self.call("unlock")?;
        let key = lock_key(object, attio_record_id);
        if state.locks.get(&key).is_some_and(|(h, _)| h == holder) {
            state.locks.remove(&key);
        }
        Ok(())
    }
}

impl ConflictStore for MemoryTwoWay {
    async fn record(&self, conflict: &Conflict) -> Result<(), MappingError> {
        let mut state = self.call("conflict record")?;
        state
            .conflicts
            .entry(conflict.id.clone())
            .or_insert_with(|| conflict.clone());
        Ok(())
    }

    /// Newest detected first (ties by id); `after` is the last id of the previous page.
    async fn list(
        &self,
        filter: ConflictFilter,
        limit: usize,
        after: Option<&str>,
    ) -> Result<ConflictPage, MappingError> {
        let state = self.call("conflict list")?;
        let mut all: Vec<&Conflict> = state
            .conflicts
            .values()
            .filter(|c| match filter {
                ConflictFilter::Open => c.resolution.is_none(),
                ConflictFilter::Resolved => c.resolution.is_some(),
                ConflictFilter::All => true,
            })
            .collect();
        all.sort_by(|a, b| {
            b.detected_at_ms
                .cmp(&a.detected_at_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        let start = after
            .and_then(|after| all.iter().position(|c| c.id == after))
            .map_or(0, |i| i + 1);
        let page: Vec<Conflict> = all
            .iter()
            .skip(start)
            .take(limit)
            .map(|c| (*c).clone())
            .collect();
        let next = (start + page.len() < all.len())
            .then(|| page.last().map(|c| c.id.clone()))
            .flatten();
        Ok(ConflictPage {
            conflicts: page,
            next,
        })
    }

    async fn get(&self, id: &str) -> Result<Option<Conflict>, MappingError> {
        Ok(self.call("conflict get")?.conflicts.get(id).cloned())
    }

    async fn resolve(&self, id: &str, resolution: &Resolution) -> Result<(), MappingError> {
        let mut state = self.call("conflict resolve")?;
        // As the stores: an unknown id is refused, not created.
        let conflict = state
            .conflicts
            .get_mut(id)
            .ok_or_else(|| MappingError::UnknownConflict { id: id.to_owned() })?;
        conflict.resolution = Some(resolution.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConflictValue, Side, SyncDirection, Synced, fingerprint};

    fn synced(value: &str, at_ms: i64) -> Synced {
        Synced {
            fingerprint: fingerprint(Some(value)),
            at_ms,
            direction: SyncDirection::AttioToHubspot,
            attio_fingerprint: None,
        }
    }

    #[tokio::test]
    async fn ledgers_merge_per_field_and_are_read_in_one_call() {
        let store = MemoryTwoWay::new();
        let first: Ledger = [("firstname".to_owned(), synced("Ada", 1))].into();
        let second: Ledger = [("jobtitle".to_owned(), synced("CTO", 2))].into();
        SyncLedger::record(&store, CrmObject::Contacts, "r1", &first)
            .await
            .unwrap();
        SyncLedger::record(&store, CrmObject::Contacts, "r1", &second)
            .await
            .unwrap();
        let ids = vec!["r1".to_owned(), "r2".to_owned()];
        let read = store.ledgers(CrmObject::Contacts, &ids).await.unwrap();
        assert_eq!(read.len(), 1, "r2 has no ledger");
        assert_eq!(read["r1"].len(), 2, "fields not named are kept");
        assert_eq!(store.ledger_reads(), [2]);
        assert!(
            store
                .ledgers(CrmObject::Companies, &ids)
                .await
                .unwrap()
                .is_empty()
        );
        store.fail_next(1);
        assert!(store.ledgers(CrmObject::Contacts, &ids).await.is_err());
    }

    fn conflict(object_id: &str, detected_at_ms: i64) -> Conflict {
        let value = |v: &str, at| ConflictValue {
            value: Some(v.into()),
            changed_at_ms: at,
        };
        Conflict {
            id: Conflict::derive_id(CrmObject::Contacts, object_id, "firstname", 1, 2),
            object: CrmObject::Contacts,
            attio_record_id: object_id.into(),
            crm_id: "7".into(),
            property: "firstname".into(),
            attribute: "name.first_name".into(),
            attio: value("Ada", 1),
            hubspot: value("Augusta", 2),
            winner: Side::Hubspot,
            detected_at_ms,
            resolution: None,
        }
    }

    #[tokio::test]
    async fn conflicts_are_idempotent_listed_newest_first_in_pages_and_resolved() {
        let store = MemoryTwoWay::new();
        for (id, at) in [("a", 10), ("b", 30), ("c", 20)] {
            ConflictStore::record(&store, &conflict(id, at))
                .await
                .unwrap();
        }
        ConflictStore::record(&store, &conflict("a", 99))
            .await
            .unwrap();
        assert_eq!(
            store.conflicts().len(),
            3,
            "the same conflict again changes nothing"
        );
        let page = store.list(ConflictFilter::Open, 2, None).await.unwrap();
        let names: Vec<&str> = page
            .conflicts
            .iter()
            .map(|c| c.attio_record_id.as_str())
            .collect();
        assert_eq!(names, ["b", "c"]);
        let rest = store
            .list(ConflictFilter::Open, 2, page.next.as_deref())
            .await
            .unwrap();
        assert_eq!(rest.conflicts.len(), 1);
        assert_eq!(rest.next, None);
        let id = conflict("b", 0).id;
        let kept = Resolution {
            kept: Side::Attio,
            at_ms: 5,
        };
        store.resolve(&id, &kept).await.unwrap();
        assert_eq!(
            store.get(&id).await.unwrap().unwrap().resolution,
            Some(kept)
        );
        let resolved = store
            .list(ConflictFilter::Resolved, 10, None)
            .await
            .unwrap();
        assert_eq!(resolved.conflicts.len(), 1);
        assert_eq!(
            store
                .list(ConflictFilter::Open, 10, None)
                .await
                .unwrap()
                .conflicts
                .len(),
            2
        );
    }
}
