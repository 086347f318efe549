//! [`IdempotencyStore`] in SQLite, with the DynamoDB adapter's claim rule as one upsert.

use std::time::Duration;

use crate::{
    Claim, ClaimToken, IdempotencyKey, IdempotencyStore, Status, StoreError, UnixSeconds, after,
};
use rusqlite::{OptionalExtension, params};

use relay_embedded::{LocalDb, LocalDbError};

/// The embedded idempotency store.
#[derive(Debug, Clone)]
pub struct SqliteIdempotencyStore {
    db: LocalDb,
}

/// One stored key, for `status` output and the local dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRow {
    pub key: String,
    pub status: String,
    pub lease_expires_at: UnixSeconds,
    pub expires_at: UnixSeconds,
    pub created_at: UnixSeconds,
}

impl SqliteIdempotencyStore {
    pub fn new(db: LocalDb) -> Self {
        Self { db }
    }

    /// The most recently claimed keys, newest first.
    pub async fn recent(&self, limit: usize) -> Result<Vec<IdempotencyRow>, LocalDbError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .call(move |conn| {
                let mut stmt = conn.prepare(
                    "SELECT idempotency_key, status, lease_expires_at, expires_at, created_at
                     FROM idempotency ORDER BY created_at DESC, rowid DESC LIMIT ?1",
                )?;
                let rows = stmt.query_map([limit], |row| {
                    Ok(IdempotencyRow {
                        key: row.get(0)?,
                        status: row.get(1)?,
                        lease_expires_at: row.get(2)?,
                        expires_at: row.get(3)?,
                        created_at: row.get(4)?,
                    })
                })?;
                rows.collect()
            })
            .await
    }
}

fn unavailable(operation: &'static str) -> impl FnOnce(LocalDbError) -> StoreError {
    move |e| StoreError::unavailable(operation, e)
}

impl IdempotencyStore for SqliteIdempotencyStore {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        now: UnixSeconds,
        lease: Duration,
        retain: Duration,
    ) -> Result<Claim, StoreError> {
        let key = key.as_str().to_owned();
        let token = ClaimToken::generate();
        let owner = token.as_str().to_owned();
        let (lease_until, expires_at) = (after(now, lease), after(now, retain));
        let found = self
            .db
            .call(move |conn| {
                let tx = conn.transaction()?;
                let taken = tx.execute(
                    "INSERT INTO idempotency
                         (idempotency_key, status, owner, lease_expires_at, expires_at, created_at)
                     VALUES (?1, 'IN_PROGRESS', ?2, ?3, ?4, ?5)
                     ON CONFLICT (idempotency_key) DO UPDATE SET
                         status = 'IN_PROGRESS', owner = excluded.owner,
                         lease_expires_at = excluded.lease_expires_at,
                         expires_at = excluded.expires_at, created_at = excluded.created_at,
                         completed_at = NULL
                     WHERE idempotency.expires_at < ?5
                        OR (idempotency.status = 'IN_PROGRESS' AND idempotency.lease_expires_at < ?5)",
                    params![key, owner, lease_until, expires_at, now],
                )?;
                let current = if taken == 1 {
                    None
                } else {
                    tx.query_row(
                        "SELECT status, lease_expires_at FROM idempotency WHERE idempotency_key = ?1",
                        [&key],
                        |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)),
                    )
                    .optional()?
                };
                tx.commit()?;
                Ok((taken == 1, current))
            })
            .await
            .map_err(unavailable("claim"))?;
        match found {
            (true, _) => Ok(Claim::Acquired(token)),
            (false, Some((status, lease_expires_at))) => match Status::parse(&status) {
                Some(Status::Completed) => Ok(Claim::AlreadyCompleted),
                Some(Status::InProgress) => Ok(Claim::InProgress { lease_expires_at }),
                None => Err(StoreError::Corrupt {
                    key: status,
                    reason: "unknown status".into(),
                }),
            },
            (false, None) => Err(StoreError::unavailable(
                "claim",
                "row vanished while claiming; retry",
            )),
        }
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: &ClaimToken,
        now: UnixSeconds,
        retain: Duration,
    ) -> Result<(), StoreError> {
        let (k, owner) = (key.as_str().to_owned(), token.as_str().to_owned());
        let expires_at = after(now, retain);
        let changed = self
            .db
            .call(move |conn| {
                conn.execute(
                    "UPDATE idempotency SET status = 'COMPLETED', expires_at = ?3, completed_at = ?4
                     WHERE idempotency_key = ?1 AND owner = ?2",
                    params![k, owner, expires_at, now],
                )
            })
            .await
            .map_err(unavailable("complete"))?;
        if changed == 1 {
            Ok(())
        } else {
            Err(StoreError::NotOwner {
                key: key.as_str().to_owned(),
            })
        }
    }

    async fn release(&self, key: &IdempotencyKey, token: &ClaimToken) -> Result<(), StoreError> {
        let (k, owner) = (key.as_str().to_owned(), token.as_str().to_owned());
        let changed = self
            .db
            .call(move |conn| {
                conn.execute(
                    "DELETE FROM idempotency
                     WHERE idempotency_key = ?1 AND owner = ?2 AND status = 'IN_PROGRESS'",
                    params![k, owner],
                )
            })
            .await
            .map_err(unavailable("release"))?;
        if changed == 1 {
            Ok(())
        } else {
            Err(StoreError::NotOwner {
                key: key.as_str().to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_events::Delivery;

    const LEASE: Duration = Duration::from_secs(60);
    const RETAIN: Duration = Duration::from_secs(3600);
    const NOW: i64 = 1_763_000_000;

    fn key(name: &str) -> IdempotencyKey {
        let delivery = Delivery::parse(
            br#"{"event_type":"task.created","id":{"workspace_id":"w","task_id":"t"}}"#,
        )
        .unwrap();
        IdempotencyKey::for_delivery(Some(name), &delivery, None)
    }

    fn store() -> SqliteIdempotencyStore {
        SqliteIdempotencyStore::new(LocalDb::in_memory().unwrap())
    }

    #[tokio::test]
    async fn one_claim_wins_then_completed_keys_stay_completed() {
        let store = store();
        let Claim::Acquired(token) = store.claim(&key("a"), NOW, LEASE, RETAIN).await.unwrap()
        else {
            panic!("first claim must win");
        };
        assert_eq!(
            store
                .claim(&key("a"), NOW + 1, LEASE, RETAIN)
                .await
                .unwrap(),
            Claim::InProgress {
                lease_expires_at: NOW + 60
            }
        );
        store
            .complete(&key("a"), &token, NOW + 2, RETAIN)
            .await
            .unwrap();
        assert_eq!(
            store
                .claim(&key("a"), NOW + 3, LEASE, RETAIN)
                .await
                .unwrap(),
            Claim::AlreadyCompleted
        );
        // Long after expiry the key is free again (TTL semantics without relying on deletion).
        assert!(matches!(
            store
                .claim(&key("a"), NOW + 2 + 3601, LEASE, RETAIN)
                .await
                .unwrap(),
            Claim::Acquired(_)
        ));
    }

    #[tokio::test]
    async fn an_abandoned_claim_is_retaken_after_its_lease() {
        let store = store();
        let Claim::Acquired(crashed) = store.claim(&key("b"), NOW, LEASE, RETAIN).await.unwrap()
        else {
            panic!()
        };
        let Claim::Acquired(retry) = store
            .claim(&key("b"), NOW + 61, LEASE, RETAIN)
            .await
            .unwrap()
        else {
            panic!("expired lease must be retaken")
        };
        // The crashed owner can neither complete nor release what is no longer its own.
        assert!(matches!(
            store.complete(&key("b"), &crashed, NOW + 62, RETAIN).await,
            Err(StoreError::NotOwner { .. })
        ));
        assert!(matches!(
            store.release(&key("b"), &crashed).await,
            Err(StoreError::NotOwner { .. })
        ));
        store
            .complete(&key("b"), &retry, NOW + 62, RETAIN)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn release_frees_the_key_at_once() {
        let store = store();
        let Claim::Acquired(token) = store.claim(&key("c"), NOW, LEASE, RETAIN).await.unwrap()
        else {
            panic!()
        };
        store.release(&key("c"), &token).await.unwrap();
        assert!(matches!(
            store
                .claim(&key("c"), NOW + 1, LEASE, RETAIN)
                .await
                .unwrap(),
            Claim::Acquired(_)
        ));
        assert_eq!(store.recent(10).await.unwrap().len(), 1);
    }
}
