//! The buckets in memory, for unit tests: clones share the map, as containers share a table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::{BucketState, RateBudget, Saved, StoreFuture, Versioned};

#[derive(Debug, Clone, Default)]
pub struct MemoryBudget {
    buckets: Arc<Mutex<HashMap<String, Versioned>>>,
}

impl MemoryBudget {
    pub fn new() -> Self {
        Self::default()
    }
}

impl RateBudget for MemoryBudget {
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Versioned>> {
        let found = self
            .buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned();
        Box::pin(async move {
            // A store round trip: lets other takers run in between, as a network call would.
            tokio::task::yield_now().await;
            Ok(found)
        })
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        state: BucketState,
        expected: Option<u64>,
    ) -> StoreFuture<'a, Saved> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
            let stored = buckets.get(key).cloned();
            if stored.as_ref().map(|v| v.version) != expected {
                return Ok(Saved::Conflict(stored));
            }
            let version = expected.map_or(1, |v| v + 1);
            buckets.insert(key.to_owned(), Versioned { state, version });
            Ok(Saved::Written(version))
        })
    }
}
