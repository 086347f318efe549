//! The two-way stores in the local SQLite file (`attio-relay dev`): [`SyncLedger`] on
//! [`SqliteMappings`] (table `sync_ledger`, one row per record and property, so recording a
//! field touches only its own row, as DynamoDB's nested `SET` does) and [`SqliteConflicts`]
//! (table `conflicts`). Both tables are in `relay_embedded`'s schema, created with
//! `CREATE TABLE IF NOT EXISTS`, so files made before two-way sync gain them when opened.

use std::collections::BTreeMap;

use relay_crm::CrmObject;
use relay_embedded::{LocalDb, LocalDbError};
use rusqlite::{OptionalExtension, Row, params};

use crate::conflicts::{
    Conflict, ConflictFilter, ConflictPage, ConflictStore, ConflictValue, Resolution, Side,
};
use crate::ledger::{Ledger, SyncDirection, SyncLedger, Synced, ledger_key};
use crate::{MappingError, RecordLocks, SqliteMappings, UnixSeconds, lock_key};

/// Record locks in their own table, made on first use (files made before locks gain it).
const LOCKS_TABLE: &str = "CREATE TABLE IF NOT EXISTS record_locks (
    lock_key TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    until    INTEGER NOT NULL
)";

/// The DynamoDB adapter's rule, as one conditional upsert.
impl RecordLocks for SqliteMappings {
    async fn lock(
        &self,
        object: CrmObject,
        attio_record_id: &str,
        holder: &str,
        now: UnixSeconds,
        lease: std::time::Duration,
    ) -> Result<bool, MappingError> {
        let key = lock_key(object, attio_record_id);
        let holder = holder.to_owned();
        let until = now.saturating_add(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX));
        self.db()
            .call(move |conn| {
                conn.execute_batch(LOCKS_TABLE)?;
                let changed = conn.execute(
                    "INSERT INTO record_locks (lock_key, holder, until) VALUES (?1, ?2, ?3)
                     ON CONFLICT (lock_key) DO UPDATE SET holder = excluded.holder,
                         until = excluded.until
                     WHERE record_locks.until < ?4 OR record_locks.holder = excluded.holder",
                    params![key, holder, until, now],
                )?;
                Ok(changed == 1)
            })
            .await
            .map_err(unavailable("lock"))
    }

    async fn unlock(
        &self,
        object: CrmObject,
        attio_record_id: &str,
        holder: &str,
    ) -> Result<(), MappingError> {
        let key = lock_key(object, attio_record_id);
        let holder = holder.to_owned();
        self.db()
            .call(move |conn| {
                conn.execute_batch(LOCKS_TABLE)?;
                conn.execute(
                    "DELETE FROM record_locks WHERE lock_key = ?1 AND holder = ?2",
                    params![key, holder],
                )?;
                Ok(())
            })
            .await
            .map_err(unavailable("unlock"))
    }
}

fn unavailable(operation: &'static str) -> impl FnOnce(LocalDbError) -> MappingError {
    move |e| MappingError::unavailable(operation, e)
}

/// Adds `sync_ledger.attio_fingerprint` (Attio's form of a value, `Synced::attio_fingerprint`)
/// to files made before it; `NULL` reads as "the same as `fingerprint`".
fn with_attio_fingerprint(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let has: bool = conn
        .prepare_cached(
            "SELECT 1 FROM pragma_table_info('sync_ledger') WHERE name = 'attio_fingerprint'",
        )?
        .exists([])?;
    if !has {
        conn.execute_batch("ALTER TABLE sync_ledger ADD COLUMN attio_fingerprint TEXT")?;
    }
    Ok(())
}

impl SyncLedger for SqliteMappings {
    async fn ledgers(
        &self,
        object: CrmObject,
        attio_record_ids: &[String],
    ) -> Result<BTreeMap<String, Ledger>, MappingError> {
        let keys: Vec<(String, String)> = attio_record_ids
            .iter()
            .map(|id| (ledger_key(object, id), id.clone()))
            .collect();
        self.db()
            .call(move |conn| {
                with_attio_fingerprint(conn)?;
                let mut select = conn.prepare_cached(
                    "SELECT property, fingerprint, at_ms, direction, attio_fingerprint
                     FROM sync_ledger WHERE ledger_key = ?1",
                )?;
                let mut ledgers = BTreeMap::new();
                for (key, id) in keys {
                    let rows = select.query_map([key], |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, i64>(2)?,
                            row.get::<_, String>(3)?,
                            row.get::<_, Option<String>>(4)?,
                        ))
                    })?;
                    let mut ledger = Ledger::new();
                    for row in rows {
                        let (property, fingerprint, at_ms, direction, attio_fingerprint) = row?;
                        // A direction this version does not know: as if never synced (the
                        // DynamoDB adapter's rule).
                        if let Some(direction) = SyncDirection::parse(&direction) {
                            let synced = Synced {
                                fingerprint,
                                at_ms,
                                direction,
                                attio_fingerprint,
                            };
                            ledger.insert(property, synced);
                        }
                    }
                    if !ledger.is_empty() {
                        ledgers.insert(id, ledger);
                    }
                }
                Ok(ledgers)
            })
            .await
            .map_err(unavailable("ledgers"))
    }

    async fn record(
        &self,
        object: CrmObject,
        attio_record_id: &str,
        entries: &Ledger,
    ) -> Result<(), MappingError> {
        let key = ledger_key(object, attio_record_id);
        let entries = entries.clone();
        self.db()
            .call(move |conn| {
                with_attio_fingerprint(conn)?;
                let tx = conn.transaction()?;
                {
                    let mut upsert = tx.prepare_cached(
                        "INSERT INTO sync_ledger
                             (ledger_key, property, fingerprint, at_ms, direction, attio_fingerprint)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                         ON CONFLICT (ledger_key, property) DO UPDATE SET
                             fingerprint = excluded.fingerprint, at_ms = excluded.at_ms,
                             direction = excluded.direction,
                             attio_fingerprint = excluded.attio_fingerprint",
                    )?;
                    for (property, synced) in &entries {
                        upsert.execute(params![
                            key,
                            property,
                            synced.fingerprint,
                            synced.at_ms,
                            synced.direction.as_str(),
                            synced.attio_fingerprint
                        ])?;
                    }
                }
                tx.commit()
            })
            .await
            .map_err(unavailable("record ledger"))
    }
}

/// [`ConflictStore`] in the local file. Unlike DynamoDB's scan, a listing here is ordered
/// across pages too: newest detected first (ties by id), the `next` token being the last
/// row's `{detected_at_ms}:{id}`.
#[derive(Debug, Clone)]
pub struct SqliteConflicts {
    db: LocalDb,
}

impl SqliteConflicts {
    pub fn new(db: LocalDb) -> Self {
        Self { db }
    }
}

const COLUMNS: &str = "id, object, attio_record_id, crm_id, property, attribute, attio_value,
    attio_changed_at_ms, hubspot_value, hubspot_changed_at_ms, winner, detected_at_ms,
    resolved_kept, resolved_at_ms";

/// A row as a conflict; a row that does not read (edited by hand) is a conversion error naming
/// the column.
fn conflict(row: &Row<'_>) -> rusqlite::Result<Conflict> {
    fn bad(column: usize, what: &str) -> rusqlite::Error {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Text,
            format!("not {what}").into(),
        )
    }
    let object: String = row.get(1)?;
    let winner: String = row.get(10)?;
    let kept: Option<String> = row.get(12)?;
    let resolved_at: Option<i64> = row.get(13)?;
    let resolution = match (kept, resolved_at) {
        (Some(kept), Some(at_ms)) => Some(Resolution {
            kept: Side::parse(&kept).ok_or_else(|| bad(12, "a side"))?,
            at_ms,
        }),
        _ => None,
    };
    Ok(Conflict {
        id: row.get(0)?,
        object: CrmObject::parse(&object).ok_or_else(|| bad(1, "a CRM object"))?,
        attio_record_id: row.get(2)?,
        crm_id: row.get(3)?,
        property: row.get(4)?,
        attribute: row.get(5)?,
        attio: ConflictValue {
            value: row.get(6)?,
            changed_at_ms: row.get(7)?,
        },
        hubspot: ConflictValue {
            value: row.get(8)?,
            changed_at_ms: row.get(9)?,
        },
        winner: Side::parse(&winner).ok_or_else(|| bad(10, "a side"))?,
        detected_at_ms: row.get(11)?,
        resolution,
    })
}

impl ConflictStore for SqliteConflicts {
    /// `INSERT OR IGNORE`: the same id again keeps what is stored (and its resolution).
    async fn record(&self, conflict: &Conflict) -> Result<(), MappingError> {
        let c = conflict.clone();
        self.db
            .call(move |conn| {
                conn.execute(
                    &format!(
                        "INSERT OR IGNORE INTO conflicts ({COLUMNS})
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
                    ),
                    params![
                        c.id,
                        c.object.as_str(),
                        c.attio_record_id,
                        c.crm_id,
                        c.property,
                        c.attribute,
                        c.attio.value,
                        c.attio.changed_at_ms,
                        c.hubspot.value,
                        c.hubspot.changed_at_ms,
                        c.winner.as_str(),
                        c.detected_at_ms,
                        c.resolution.as_ref().map(|r| r.kept.as_str()),
                        c.resolution.as_ref().map(|r| r.at_ms),
                    ],
                )
                .map(drop)
            })
            .await
            .map_err(unavailable("record conflict"))
    }

    async fn list(
        &self,
        filter: ConflictFilter,
        limit: usize,
        after: Option<&str>,
    ) -> Result<ConflictPage, MappingError> {
        let limit = limit.max(1);
        // A token that does not read starts from the top, as no token does.
        let (after_ms, after_id) = after
            .and_then(|t| t.split_once(':'))
            .and_then(|(ms, id)| Some((ms.parse::<i64>().ok()?, id.to_owned())))
            .unwrap_or((i64::MAX, "\u{10FFFF}".to_owned()));
        let status = match filter {
            ConflictFilter::Open => "resolved_kept IS NULL",
            ConflictFilter::Resolved => "resolved_kept IS NOT NULL",
            ConflictFilter::All => "1",
        };
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
        let mut conflicts = self
            .db
            .call(move |conn| {
                let mut select = conn.prepare(&format!(
                    "SELECT {COLUMNS} FROM conflicts
                     WHERE {status} AND (detected_at_ms < ?1 OR (detected_at_ms = ?1 AND id < ?2))
                     ORDER BY detected_at_ms DESC, id DESC LIMIT ?3"
                ))?;
                let rows = select.query_map(params![after_ms, after_id, fetch], conflict)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await
            .map_err(unavailable("list conflicts"))?;
        // One row more than the page tells whether another page follows.
        let next = (conflicts.len() > limit).then(|| {
            conflicts.truncate(limit);
            conflicts
                .last()
                .map(|c| format!("{}:{}", c.detected_at_ms, c.id))
                .unwrap_or_default()
        });
        Ok(ConflictPage { conflicts, next })
    }

    async fn get(&self, id: &str) -> Result<Option<Conflict>, MappingError> {
        let id = id.to_owned();
        self.db
            .call(move |conn| {
                conn.query_row(
                    &format!("SELECT {COLUMNS} FROM conflicts WHERE id = ?1"),
                    [id],
                    conflict,
                )
                .optional()
            })
            .await
            .map_err(unavailable("get conflict"))
    }

    async fn resolve(&self, id: &str, resolution: &Resolution) -> Result<(), MappingError> {
        let (key, kept, at) = (id.to_owned(), resolution.kept.as_str(), resolution.at_ms);
        let updated = self
            .db
            .call(move |conn| {
                conn.execute(
                    "UPDATE conflicts SET resolved_kept = ?2, resolved_at_ms = ?3 WHERE id = ?1",
                    params![key, kept, at],
                )
            })
            .await
            .map_err(unavailable("resolve conflict"))?;
        if updated == 1 {
            Ok(())
        } else {
            Err(MappingError::UnknownConflict { id: id.to_owned() })
        }
    }
}
