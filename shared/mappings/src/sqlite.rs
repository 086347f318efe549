//! [`IdMappings`] in SQLite; the schema generation in the `counters` table beside it, and
//! [`Tombstones`] in the `tombstones` table. The sync ledger is in `two_way_sqlite.rs`.

use std::collections::HashSet;
use std::time::Duration;

use crate::tombstone::expiry;
use crate::{
    IdMappings, MappingError, Reservation, SCHEMA_GENERATION_KEY, SchemaGenerations, Tombstones,
    UnixSeconds, mapping_key, tombstone_key,
};
use relay_crm::{CrmId, CrmObject};
use rusqlite::{OptionalExtension, params};

use relay_embedded::{LocalDb, LocalDbError};

#[derive(Debug, Clone)]
pub struct SqliteMappings {
    db: LocalDb,
}

impl SqliteMappings {
    pub fn new(db: LocalDb) -> Self {
        Self { db }
    }

    pub(crate) fn db(&self) -> &LocalDb {
        &self.db
    }
}

fn unavailable(operation: &'static str) -> impl FnOnce(LocalDbError) -> MappingError {
    move |e| MappingError::unavailable(operation, e)
}

impl IdMappings for SqliteMappings {
    async fn get(&self, object: CrmObject, attio_id: &str) -> Result<Option<CrmId>, MappingError> {
        let key = mapping_key(object, attio_id);
        self.db
            .call(move |conn| {
                conn.query_row(
                    "SELECT crm_id FROM mappings WHERE mapping_key = ?1",
                    [key],
                    |row| row.get::<_, Option<String>>(0),
                )
                .optional()
                .map(|found| found.flatten().map(CrmId))
            })
            .await
            .map_err(unavailable("get"))
    }

    async fn reserve(
        &self,
        object: CrmObject,
        attio_id: &str,
        now: UnixSeconds,
        lease: Duration,
    ) -> Result<Reservation, MappingError> {
        let key = mapping_key(object, attio_id);
        let until = now.saturating_add(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX));
        self.db
            .call(move |conn| {
                let tx = conn.transaction()?;
                let taken = tx.execute(
                    "INSERT INTO mappings (mapping_key, reserved_until) VALUES (?1, ?2)
                     ON CONFLICT (mapping_key) DO UPDATE SET reserved_until = excluded.reserved_until
                     WHERE mappings.crm_id IS NULL AND mappings.reserved_until < ?3",
                    params![key, until, now],
                )?;
                let outcome = if taken == 1 {
                    let attempted: Option<i64> = tx.query_row(
                        "SELECT create_attempted_at FROM mappings WHERE mapping_key = ?1",
                        [&key],
                        |row| row.get(0),
                    )?;
                    attempted.map_or(Reservation::Reserved, |attempted_at| {
                        Reservation::Unresolved { attempted_at }
                    })
                } else {
                    let crm_id: Option<String> = tx
                        .query_row("SELECT crm_id FROM mappings WHERE mapping_key = ?1", [&key], |row| row.get(0))
                        .optional()?
                        .flatten();
                    crm_id.map_or(Reservation::Busy, |id| Reservation::Mapped(CrmId(id)))
                };
                tx.commit()?;
                Ok(outcome)
            })
            .await
            .map_err(unavailable("reserve"))
    }

    async fn record_create_attempt(
        &self,
        object: CrmObject,
        attio_id: &str,
        at: UnixSeconds,
    ) -> Result<(), MappingError> {
        let key = mapping_key(object, attio_id);
        let held = key.clone();
        let marked = self
            .db
            .call(move |conn| {
                conn.execute(
                    "UPDATE mappings SET create_attempted_at = ?2
                     WHERE mapping_key = ?1 AND crm_id IS NULL AND reserved_until >= ?2",
                    params![held, at],
                )
            })
            .await
            .map_err(unavailable("record_create_attempt"))?;
        if marked == 1 {
            Ok(())
        } else {
            Err(MappingError::ReservationLost { key })
        }
    }

    async fn put(
        &self,
        object: CrmObject,
        attio_id: &str,
        crm_id: &CrmId,
    ) -> Result<(), MappingError> {
        let (key, id) = (mapping_key(object, attio_id), crm_id.0.clone());
        self.db
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO mappings (mapping_key, crm_id) VALUES (?1, ?2)
                     ON CONFLICT (mapping_key) DO UPDATE SET crm_id = excluded.crm_id, reserved_until = NULL,
                         create_attempted_at = NULL",
                    params![key, id],
                )
                .map(drop)
            })
            .await
            .map_err(unavailable("put"))
    }

    async fn put_many(
        &self,
        object: CrmObject,
        ids: &[(String, CrmId)],
    ) -> Result<(), MappingError> {
        let rows: Vec<(String, String)> = ids
            .iter()
            .map(|(attio_id, crm_id)| (mapping_key(object, attio_id), crm_id.0.clone()))
            .collect();
        self.db
            .call(move |conn| {
                let tx = conn.transaction()?;
                {
                    let mut put = tx.prepare_cached(
                        "INSERT INTO mappings (mapping_key, crm_id) VALUES (?1, ?2)
                         ON CONFLICT (mapping_key) DO UPDATE SET crm_id = excluded.crm_id, reserved_until = NULL,
                             create_attempted_at = NULL",
                    )?;
                    for (key, id) in &rows {
                        put.execute(params![key, id])?;
                    }
                }
                tx.commit()
            })
            .await
            .map_err(unavailable("put"))
    }

    async fn remove(&self, object: CrmObject, attio_id: &str) -> Result<(), MappingError> {
        let key = mapping_key(object, attio_id);
        self.db
            .call(move |conn| {
                conn.execute("DELETE FROM mappings WHERE mapping_key = ?1", [key])
                    .map(drop)
            })
            .await
            .map_err(unavailable("remove"))
    }
}

impl Tombstones for SqliteMappings {
    async fn bury(
        &self,
        object: CrmObject,
        attio_id: &str,
        now: UnixSeconds,
        retention: Duration,
    ) -> Result<(), MappingError> {
        let (key, until) = (tombstone_key(object, attio_id), expiry(now, retention));
        self.db
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO tombstones (tombstone_key, expires_at) VALUES (?1, ?2)
                     ON CONFLICT (tombstone_key) DO UPDATE SET expires_at = excluded.expires_at",
                    params![key, until],
                )
                .map(drop)
            })
            .await
            .map_err(unavailable("bury"))
    }

    async fn is_buried(
        &self,
        object: CrmObject,
        attio_id: &str,
        now: UnixSeconds,
    ) -> Result<bool, MappingError> {
        let key = tombstone_key(object, attio_id);
        self.db
            .call(move |conn| {
                conn.query_row(
                    "SELECT 1 FROM tombstones WHERE tombstone_key = ?1 AND expires_at >= ?2",
                    params![key, now],
                    |_| Ok(()),
                )
                .optional()
                .map(|found| found.is_some())
            })
            .await
            .map_err(unavailable("is_buried"))
    }

    async fn buried_among(
        &self,
        object: CrmObject,
        attio_ids: &[String],
        now: UnixSeconds,
    ) -> Result<HashSet<String>, MappingError> {
        let keys: Vec<(String, String)> = attio_ids
            .iter()
            .map(|id| (tombstone_key(object, id), id.clone()))
            .collect();
        self.db
            .call(move |conn| {
                let mut read = conn.prepare_cached(
                    "SELECT 1 FROM tombstones WHERE tombstone_key = ?1 AND expires_at >= ?2",
                )?;
                let mut buried = HashSet::new();
                for (key, id) in keys {
                    if read.exists(params![key, now])? {
                        buried.insert(id);
                    }
                }
                Ok(buried)
            })
            .await
            .map_err(unavailable("is_buried"))
    }
}

/// SQLite integers are signed; the counter starts at 0 and only goes up.
fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

impl SchemaGenerations for SqliteMappings {
    async fn schema_generation(&self) -> Result<u64, MappingError> {
        self.db
            .call(|conn| {
                conn.query_row(
                    "SELECT value FROM counters WHERE name = ?1",
                    [SCHEMA_GENERATION_KEY],
                    |row| row.get::<_, i64>(0),
                )
                .optional()
                .map(|value| count(value.unwrap_or_default()))
            })
            .await
            .map_err(unavailable("schema_generation"))
    }

    /// One statement: SQLite runs it atomically, as DynamoDB runs `ADD`.
    async fn bump_schema_generation(&self) -> Result<u64, MappingError> {
        self.db
            .call(|conn| {
                conn.query_row(
                    "INSERT INTO counters (name, value) VALUES (?1, 1)
                     ON CONFLICT (name) DO UPDATE SET value = value + 1
                     RETURNING value",
                    [SCHEMA_GENERATION_KEY],
                    |row| row.get::<_, i64>(0),
                )
                .map(count)
            })
            .await
            .map_err(unavailable("bump_schema_generation"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_schema_generation_counts_bumps_from_every_handle() {
        let db = LocalDb::in_memory().expect("sqlite");
        let (a, b) = (SqliteMappings::new(db.clone()), SqliteMappings::new(db));
        assert_eq!(a.schema_generation().await.ok(), Some(0));
        assert_eq!(a.bump_schema_generation().await.ok(), Some(1));
        assert_eq!(b.bump_schema_generation().await.ok(), Some(2));
        assert_eq!(a.schema_generation().await.ok(), Some(2));
        // The counter is no mapping.
        assert_eq!(a.get(CrmObject::Contacts, "x").await.ok(), Some(None));
    }
}
