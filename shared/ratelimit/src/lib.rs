//! One rate budget per API for the whole deployment.
//!
//! Attio allows about 100 reads/s and 25 writes/s per workspace; HubSpot 100–190 requests per
//! 10 s per portal, shared with every other app. On Lambda up to five record containers (and
//! the list-entry, note and task consumers, and a reconcile) call the same APIs at once, so a
//! pacer per container cannot keep them under the limit together. Here every container draws
//! from one budget per API, stored where all of them reach it:
//!
//! * [`RateBudget`] is the port: load a budget, write it back only if nobody wrote in between.
//!   Adapters: [`DynamoDbBudget`] (an item per API in the mappings table, conditional
//!   `UpdateItem` on a version), `SqliteBudget` (feature `sqlite`; `attio-relay dev`, a
//!   table in the local file, same rule) and [`MemoryBudget`] (tests).
//! * [`Limits`] holds one API's numbers and the rules, the same for every adapter, one of two
//!   by how the API publishes its limit:
//!   - HubSpot's is "N requests per 10 seconds", a rolling window (`window.rs`): at most 85%
//!     of it granted in any window (plus the lease), so an import's 20 batch upserts go at
//!     once instead of being spread at 8.5/s.
//!   - Attio's is "100 reads / 25 writes per second", counted per clock second: it keeps
//!     the token bucket (`bucket.rs`) at 80% of the rate with a small burst (at most
//!     8 + 80 × 1.1 = 96 reads in any second, on any clock, and 80/s sustained). A 1 s
//!     rolling window would be as safe (any second of Attio's clock is a second of ours) but
//!     buys nothing here: its one gain is a whole second's allowance at once, and an import
//!     does not wait on Attio (one query reads up to 500 records: 21 queries for 5,000
//!     events), while with the 100 ms lease counted it sustains less (80 per 1.1 s: 73/s).
//!
//!   Both: headroom below the published limit, a halving of the rate on 429 at most once per
//!   cooldown, and an additive climb back.
//! * [`ApiBudget`] is a container's handle on one budget: it takes calls in small blocks (up
//!   to 8 Attio reads, 3 writes, 5 HubSpot calls) so the store sees a fraction of the calls,
//!   and lets a block's calls lapse after a short lease so held calls never add up to a
//!   burst. [`ApiBudget::with_share`] caps a taker (backfill, reconcile) at a share of the
//!   rate in force, on top of drawing from the same budget.
//!
//! Time is a port ([`MillisClock`]): wall-clock milliseconds, the same in every container.

mod bucket;
mod budget;
mod dynamodb;
mod memory;
mod settings;
#[cfg(feature = "sqlite")]
mod sqlite;
mod window;

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};

pub use bucket::{BucketState, Grant, Limits, Versioned, decode_grants, encode_grants};
pub use budget::{ApiBudget, BudgetStats, Denied};
pub use dynamodb::{BUDGET_KEY_PREFIX, DynamoDbBudget};
pub use memory::MemoryBudget;
pub use settings::{BudgetSettings, Budgets, SettingsError};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteBudget;

/// Why the store could not be read or written. Always transient: the caller's message goes
/// back to its queue (the same store holds the mappings every sync needs anyway).
#[derive(Debug, Clone, thiserror::Error)]
#[error("rate budget store: {operation} failed: {message}")]
pub struct BudgetError {
    pub operation: String,
    pub message: String,
}

impl BudgetError {
    pub fn new(operation: &str, message: impl ToString) -> Self {
        Self {
            operation: operation.to_owned(),
            message: message.to_string(),
        }
    }
}

/// The outcome of a conditional write.
#[derive(Debug, Clone, PartialEq)]
pub enum Saved {
    /// Written; the new version.
    Written(u64),
    /// Someone wrote first: the state now stored, when the store said.
    Conflict(Option<Versioned>),
}

/// A boxed future, so clients hold any adapter behind one `Arc<dyn RateBudget>`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BudgetError>> + Send + 'a>>;

/// The port: where the deployment's buckets live. Writes are compare-and-set on the version,
/// so concurrent takers from any number of processes never both spend the same tokens.
pub trait RateBudget: Send + Sync + Debug {
    /// The bucket named `key`, or `None` before its first write.
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Versioned>>;

    /// Writes `state` if the stored version is still `expected` (`None`: no item yet).
    fn save<'a>(
        &'a self,
        key: &'a str,
        state: BucketState,
        expected: Option<u64>,
    ) -> StoreFuture<'a, Saved>;
}

/// Wall-clock milliseconds since the Unix epoch; a port so tests run on tokio's paused time.
pub trait MillisClock: Send + Sync + Debug {
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemMillis;

impl MillisClock for SystemMillis {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// Milliseconds on tokio's clock (from a fixed origin), so `tokio::time::pause` and `advance`
/// move it: for tests of waits without waiting.
#[derive(Debug, Clone, Copy)]
pub struct TokioMillis {
    origin: tokio::time::Instant,
    base_ms: i64,
}

impl TokioMillis {
    pub fn new(base_ms: i64) -> Self {
        Self {
            origin: tokio::time::Instant::now(),
            base_ms,
        }
    }
}

impl MillisClock for TokioMillis {
    fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.origin.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.base_ms.saturating_add(elapsed)
    }
}

#[cfg(test)]
mod tests;
