//! The embedded database local runs keep everything in: one SQLite file, so a newcomer runs the
//! whole pipeline with no AWS account and no servers.
//!
//! This crate is only the shared connection and the file's schema. The adapters live beside
//! their ports, each behind its crate's `sqlite` feature so the Lambda binaries never link
//! SQLite:
//!
//! * `relay_idempotency::SqliteIdempotencyStore` — table `idempotency`: the same
//!   claim/complete/release rules as the DynamoDB table.
//! * `relay_queue::SqliteQueue` — table `messages`: SQS-like queues with visibility timeout,
//!   receive count, and a dead-letter queue per family after `max_receive_count` receives.
//! * `relay_mappings::SqliteMappings` — table `mappings`: Attio id → CRM id, with the same
//!   create reservation as DynamoDB; table `counters`: the schema generation the consumers
//!   watch to drop their cached Attio schema; table `tombstones`: deleted Attio ids, until
//!   they expire; tables `sync_ledger` and `conflicts`: two-way sync's last synced values
//!   (`SyncLedger`) and `relay_mappings::SqliteConflicts`.
//! * `relay_ratelimit::SqliteBudget` — table `rate_budgets`: one budget per API, the
//!   same versioned writes as the DynamoDB items, so every local process shares one budget.
//!
//! They share one [`LocalDb`] connection; SQLite calls run on tokio's blocking pool.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

/// Why a local database call failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalDbError {
    #[error("local database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("local database worker stopped: {0}")]
    Worker(#[from] tokio::task::JoinError),
    #[error("cannot create {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("local database lock poisoned by an earlier panic")]
    Poisoned,
}

/// One SQLite connection shared by the embedded adapters.
#[derive(Clone)]
pub struct LocalDb {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for LocalDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalDb")
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS idempotency (
    idempotency_key  TEXT PRIMARY KEY,
    status           TEXT NOT NULL,
    owner            TEXT NOT NULL,
    lease_expires_at INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    completed_at     INTEGER
);
CREATE TABLE IF NOT EXISTS messages (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id        TEXT NOT NULL UNIQUE,
    queue             TEXT NOT NULL,
    body              TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    workspace_id      TEXT NOT NULL,
    idempotency_key   TEXT NOT NULL,
    sent_at_ms        INTEGER NOT NULL,
    visible_at_ms     INTEGER NOT NULL,
    receive_count     INTEGER NOT NULL DEFAULT 0,
    receipt_handle    TEXT,
    source_queue      TEXT,
    failure_reason    TEXT
);
CREATE TABLE IF NOT EXISTS mappings (
    mapping_key     TEXT PRIMARY KEY,
    crm_id              TEXT,
    reserved_until      INTEGER,
    create_attempted_at INTEGER
);
CREATE TABLE IF NOT EXISTS tombstones (
    tombstone_key  TEXT PRIMARY KEY,
    expires_at     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rate_budgets (
    api         TEXT PRIMARY KEY,
    tokens      REAL NOT NULL,
    updated_ms  INTEGER NOT NULL,
    cut_rate    REAL NOT NULL,
    cut_ms      INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    grants      TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS sync_ledger (
    ledger_key   TEXT NOT NULL,
    property     TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    at_ms        INTEGER NOT NULL,
    direction    TEXT NOT NULL,
    PRIMARY KEY (ledger_key, property)
);
CREATE TABLE IF NOT EXISTS conflicts (
    id                     TEXT PRIMARY KEY,
    object                 TEXT NOT NULL,
    attio_record_id        TEXT NOT NULL,
    crm_id                 TEXT NOT NULL,
    property               TEXT NOT NULL,
    attribute              TEXT NOT NULL,
    attio_value            TEXT,
    attio_changed_at_ms    INTEGER NOT NULL,
    hubspot_value          TEXT,
    hubspot_changed_at_ms  INTEGER NOT NULL,
    winner                 TEXT NOT NULL,
    detected_at_ms         INTEGER NOT NULL,
    resolved_kept          TEXT,
    resolved_at_ms         INTEGER
);
CREATE INDEX IF NOT EXISTS conflicts_by_time ON conflicts (detected_at_ms, id);
CREATE TABLE IF NOT EXISTS counters (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages (queue, visible_at_ms, seq);
CREATE INDEX IF NOT EXISTS messages_by_receipt ON messages (receipt_handle);
";

impl LocalDb {
    /// Opens (creating if needed) a database file; WAL so a second process can read it live.
    pub fn open(path: &Path) -> Result<Self, LocalDbError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| LocalDbError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        Self::init(conn)
    }

    /// A private in-memory database, for tests.
    pub fn in_memory() -> Result<Self, LocalDbError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, LocalDbError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        // Files made before failure reasons were kept gain the column (an error means it exists).
        let _ = conn.execute("ALTER TABLE messages ADD COLUMN failure_reason TEXT", []);
        // Files made before create attempts were recorded gain theirs the same way.
        let _ = conn.execute(
            "ALTER TABLE mappings ADD COLUMN create_attempted_at INTEGER",
            [],
        );
        // And files made before the rolling-window budget gain its grants (empty: no grants).
        let _ = conn.execute(
            "ALTER TABLE rate_budgets ADD COLUMN grants TEXT NOT NULL DEFAULT ''",
            [],
        );
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn call<T, F>(&self, f: F) -> Result<T, LocalDbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| LocalDbError::Poisoned)?;
            f(&mut guard).map_err(LocalDbError::from)
        })
        .await?
    }
}
