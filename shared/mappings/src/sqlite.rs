//! [`IdMappings`] in SQLite.

use std::time::Duration;

use crate::{IdMappings, MappingError, Reservation, UnixSeconds, mapping_key};
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
                    Reservation::Reserved
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
                     ON CONFLICT (mapping_key) DO UPDATE SET crm_id = excluded.crm_id, reserved_until = NULL",
                    params![key, id],
                )
                .map(drop)
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
