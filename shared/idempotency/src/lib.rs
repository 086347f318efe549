//! Records each Attio delivery once.
//!
//! Ingest takes a delivery's [`IdempotencyKey`] with [`IdempotencyStore::claim`] *before*
//! queueing, marks it [`IdempotencyStore::complete`] only *after* the queue acknowledged every
//! event, and [`IdempotencyStore::release`]s it when queueing failed. A crash between the steps
//! leaves the key `IN_PROGRESS` under a lease; once the lease expires, Attio's retry claims it
//! again. So a key is never `COMPLETED` for events that were not queued.
//!
//! One conditional write decides who owns a key:
//! `attribute_not_exists OR expired OR (IN_PROGRESS AND lease expired)`. Expiry is checked in
//! the condition itself because DynamoDB deletes TTL'd items lazily (and moto never does).
//!
//! Adapters: [`DynamoDbStore`] in Lambda; `SqliteIdempotencyStore` (feature `sqlite`) for local
//! runs, with the same rule as one upsert. `tests/tests/it/idempotency_contract.rs` holds both
//! to one contract.

use std::fmt;
use std::future::Future;
use std::time::Duration;

pub use relay_events::IdempotencyKey;

mod dynamodb;
pub use dynamodb::{DynamoDbStore, KEY_ATTRIBUTE, TTL_ATTRIBUTE};
#[cfg(any(test, feature = "sqlite"))]
mod sqlite;
#[cfg(any(test, feature = "sqlite"))]
pub use sqlite::{IdempotencyRow, SqliteIdempotencyStore};

/// Wall-clock seconds since the Unix epoch; passed in so tests control time.
pub use relay_events::clock::UnixSeconds;

/// Proof of ownership of a claimed key: only the owner may complete or release it, so a slow
/// invocation whose lease expired cannot overwrite the state a retry has since written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToken(String);

impl ClaimToken {
    /// A fresh random owner id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn from_stored(owner: impl Into<String>) -> Self {
        Self(owner.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The outcome of trying to take a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This caller owns the key until `lease_expires_at`.
    Acquired(ClaimToken),
    /// The delivery was already queued: answer 2xx and do nothing.
    AlreadyCompleted,
    /// Another invocation holds a live lease: ask Attio to retry later.
    InProgress { lease_expires_at: UnixSeconds },
}

/// The status column's values, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    InProgress,
    Completed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "IN_PROGRESS" => Some(Self::InProgress),
            "COMPLETED" => Some(Self::Completed),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing store failed or timed out; the caller must answer 5xx so Attio retries.
    #[error("idempotency store {operation} failed: {source}")]
    Unavailable {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The key is no longer ours (lease expired and another invocation took it, or it is gone).
    #[error("idempotency key {key} is no longer owned by this invocation")]
    NotOwner { key: String },
    /// An item exists but is not in a shape this code wrote.
    #[error("idempotency item {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}

impl StoreError {
    pub fn unavailable(
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Unavailable {
            operation,
            source: source.into(),
        }
    }
}

/// The port ingest talks to; adapters: [`DynamoDbStore`] (AWS) and the SQLite store in
/// `relay-embedded` (local runs).
pub trait IdempotencyStore: Send + Sync {
    /// Takes `key` for `lease` unless it is completed or leased by someone else. A key whose
    /// `expires_at` has passed counts as absent. Abandoned claims are remembered for `retain`.
    fn claim(
        &self,
        key: &IdempotencyKey,
        now: UnixSeconds,
        lease: Duration,
        retain: Duration,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Marks the key done and remembers it until `now + retain`. Fails with
    /// [`StoreError::NotOwner`] when the claim was lost.
    fn complete(
        &self,
        key: &IdempotencyKey,
        token: &ClaimToken,
        now: UnixSeconds,
        retain: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives up an in-progress claim so Attio's retry can take it at once.
    fn release(
        &self,
        key: &IdempotencyKey,
        token: &ClaimToken,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Adds whole seconds to a timestamp, saturating.
pub fn after(now: UnixSeconds, duration: Duration) -> UnixSeconds {
    now.saturating_add(i64::try_from(duration.as_secs()).unwrap_or(i64::MAX))
}
