//! [`IdMappings`] in a map, with the DynamoDB adapter's reservation rule, for tests of the sync
//! handlers without a store. Clones share the map, as clones of the real adapters share a table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use relay_crm::{CrmId, CrmObject};

use crate::tombstone::expiry;
use crate::{
    IdMappings, MappingError, Reservation, SchemaGenerations, Tombstones, UnixSeconds, mapping_key,
    tombstone_key,
};

#[derive(Debug, Clone, Default)]
pub struct MemoryMappings {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// The schema generation counter.
    generation: u64,
    /// Tombstone key → when it expires.
    tombstones: HashMap<String, UnixSeconds>,
    /// Calls left to fail before the store answers again.
    failures: usize,
}

/// One item: a CRM id once created; a reservation while a create is in flight, and when a
/// create was last sent under it.
#[derive(Debug, Clone, Default)]
struct Entry {
    crm_id: Option<CrmId>,
    reserved_until: Option<UnixSeconds>,
    create_attempted_at: Option<UnixSeconds>,
}

#[derive(Debug, thiserror::Error)]
#[error("MemoryMappings was told to fail this call")]
struct Injected;

impl MemoryMappings {
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

    /// Takes the state for one call of `operation`, or its injected failure.
    fn call(&self, operation: &'static str) -> Result<MutexGuard<'_, State>, MappingError> {
        let mut state = self.state();
        if state.failures > 0 {
            state.failures -= 1;
            return Err(MappingError::unavailable(operation, Injected));
        }
        Ok(state)
    }
}

impl IdMappings for MemoryMappings {
    async fn get(&self, object: CrmObject, attio_id: &str) -> Result<Option<CrmId>, MappingError> {
        let state = self.call("get")?;
        Ok(state
            .entries
            .get(&mapping_key(object, attio_id))
            .and_then(|e| e.crm_id.clone()))
    }

    /// Same condition as DynamoDB's: the item is absent, or has no CRM id and its
    /// reservation lapsed before `now`.
    async fn reserve(
        &self,
        object: CrmObject,
        attio_id: &str,
        now: UnixSeconds,
        lease: Duration,
    ) -> Result<Reservation, MappingError> {
        let until = now.saturating_add(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX));
        let mut state = self.call("reserve")?;
        let entry = state
            .entries
            .entry(mapping_key(object, attio_id))
            .or_default();
        Ok(match (&entry.crm_id, entry.reserved_until) {
            (Some(id), _) => Reservation::Mapped(id.clone()),
            (None, Some(reserved)) if reserved >= now => Reservation::Busy,
            (None, _) => {
                entry.reserved_until = Some(until);
                match entry.create_attempted_at {
                    Some(attempted_at) => Reservation::Unresolved { attempted_at },
                    None => Reservation::Reserved,
                }
            }
        })
    }

    /// Same condition as DynamoDB's: the item has no CRM id and is reserved until `at` or later.
    async fn record_create_attempt(
        &self,
        object: CrmObject,
        attio_id: &str,
        at: UnixSeconds,
    ) -> Result<(), MappingError> {
        let key = mapping_key(object, attio_id);
        let mut state = self.call("record_create_attempt")?;
        match state.entries.get_mut(&key) {
            Some(entry)
                if entry.crm_id.is_none() && entry.reserved_until.is_some_and(|r| r >= at) =>
            {
                entry.create_attempted_at = Some(at);
                Ok(())
            }
            _ => Err(MappingError::ReservationLost { key }),
        }
    }

    async fn put(
        &self,
        object: CrmObject,
        attio_id: &str,
        crm_id: &CrmId,
    ) -> Result<(), MappingError> {
        let entry = Entry {
            crm_id: Some(crm_id.clone()),
            ..Entry::default()
        };
        self.call("put")?
            .entries
            .insert(mapping_key(object, attio_id), entry);
        Ok(())
    }

    async fn remove(&self, object: CrmObject, attio_id: &str) -> Result<(), MappingError> {
        self.call("remove")?
            .entries
            .remove(&mapping_key(object, attio_id));
        Ok(())
    }
}

impl Tombstones for MemoryMappings {
    async fn bury(
        &self,
        object: CrmObject,
        attio_id: &str,
        now: UnixSeconds,
        retention: Duration,
    ) -> Result<(), MappingError> {
        self.call("bury")?
            .tombstones
            .insert(tombstone_key(object, attio_id), expiry(now, retention));
        Ok(())
    }

    async fn is_buried(
        &self,
        object: CrmObject,
        attio_id: &str,
        now: UnixSeconds,
    ) -> Result<bool, MappingError> {
        let state = self.call("is_buried")?;
        let expires = state.tombstones.get(&tombstone_key(object, attio_id));
        Ok(expires.is_some_and(|&at| at >= now))
    }
}

impl SchemaGenerations for MemoryMappings {
    async fn schema_generation(&self) -> Result<u64, MappingError> {
        Ok(self.call("schema_generation")?.generation)
    }

    async fn bump_schema_generation(&self) -> Result<u64, MappingError> {
        let mut state = self.call("bump_schema_generation")?;
        state.generation += 1;
        Ok(state.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(120);

    #[tokio::test]
    async fn reservations_follow_the_dynamodb_rule() {
        let m = MemoryMappings::new();
        let n = CrmObject::Notes;
        assert_eq!(
            m.reserve(n, "a", 1000, LEASE).await.ok(),
            Some(Reservation::Reserved)
        );
        // Held until 1120 inclusive, as `reserved_until < :now` is the takeover condition.
        assert_eq!(
            m.reserve(n, "a", 1120, LEASE).await.ok(),
            Some(Reservation::Busy)
        );
        assert_eq!(
            m.reserve(n, "a", 1121, LEASE).await.ok(),
            Some(Reservation::Reserved)
        );
        m.put(n, "a", &CrmId("7".into())).await.expect("put");
        assert_eq!(
            m.reserve(n, "a", 9999, LEASE).await.ok(),
            Some(Reservation::Mapped(CrmId("7".into())))
        );
        // Keys are per CRM object.
        assert_eq!(m.get(CrmObject::Tasks, "a").await.ok(), Some(None));
        m.clone().remove(n, "a").await.expect("remove");
        assert_eq!(m.get(n, "a").await.ok(), Some(None));
    }

    #[tokio::test]
    async fn tombstones_expire_and_are_no_mappings() {
        let m = MemoryMappings::new();
        let n = CrmObject::Notes;
        assert_eq!(m.is_buried(n, "a", 1000).await.ok(), Some(false));
        m.bury(n, "a", 1000, Duration::from_secs(60))
            .await
            .expect("bury");
        let other = m.clone();
        assert_eq!(other.is_buried(n, "a", 1060).await.ok(), Some(true));
        assert_eq!(other.is_buried(n, "a", 1061).await.ok(), Some(false));
        assert_eq!(
            m.is_buried(CrmObject::Tasks, "a", 1000).await.ok(),
            Some(false)
        );
        // A tombstone neither maps nor reserves the id.
        assert_eq!(m.get(n, "a").await.ok(), Some(None));
        assert_eq!(
            m.reserve(n, "a", 1000, LEASE).await.ok(),
            Some(Reservation::Reserved)
        );
    }

    #[tokio::test]
    async fn clones_share_one_schema_generation() {
        let (a, b) = (MemoryMappings::new(), MemoryMappings::new());
        let a2 = a.clone();
        assert_eq!(a.schema_generation().await.ok(), Some(0));
        assert_eq!(a.bump_schema_generation().await.ok(), Some(1));
        assert_eq!(a2.bump_schema_generation().await.ok(), Some(2));
        assert_eq!(a.schema_generation().await.ok(), Some(2));
        assert_eq!(b.schema_generation().await.ok(), Some(0), "another store");
        a.fail_next(1);
        assert!(a2.schema_generation().await.is_err());
        assert_eq!(a2.schema_generation().await.ok(), Some(2));
    }

    #[tokio::test]
    async fn injected_failures_are_unavailable_then_the_store_answers() {
        let m = MemoryMappings::new();
        m.fail_next(1);
        assert!(matches!(
            m.get(CrmObject::Contacts, "r").await,
            Err(MappingError::Unavailable {
                operation: "get",
                ..
            })
        ));
        assert_eq!(m.get(CrmObject::Contacts, "r").await.ok(), Some(None));
    }
}
