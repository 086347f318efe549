//! Where a walk of one object stands, kept between runs so a walk longer than one run (a Lambda
//! invocation lasts at most 15 minutes; an operator may stop the CLI) resumes instead of
//! starting over.
//!
//! Adapters: [`FilePositions`] (the CLI: `backfill-<object>.json` in the data folder, shared by
//! `backfill` and `reconcile`), [`DynamoDbPositions`] (the Lambda: one item per object in the
//! mappings table, which the function already reads and writes), [`MemoryPositions`] (tests).

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use relay_events::clock::UnixSeconds;
use serde::{Deserialize, Serialize};

/// Where a walk of one object stands; saved after every page.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SyncPosition {
    pub object: String,
    /// Records before this offset are synced in the current pass; 0 between passes.
    pub offset: u32,
    pub records_synced: u64,
    pub records_failed: u64,
    pub started_at: u64,
    /// When the last pass that reached the end finished (unix seconds).
    pub last_full_sync: Option<u64>,
}

impl SyncPosition {
    /// A pass of `object` started at `now`, remembering when the previous one finished.
    pub fn start(object: &str, now: UnixSeconds, last_full_sync: Option<u64>) -> Self {
        Self {
            object: object.to_owned(),
            started_at: u64::try_from(now).unwrap_or(0),
            last_full_sync,
            ..Self::default()
        }
    }

    /// True when a pass stopped halfway: the next run continues it.
    pub fn in_progress(&self) -> bool {
        self.offset > 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PositionError {
    /// The store did not answer: the next run tries again.
    #[error("position store {operation} failed: {source}")]
    Unavailable {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A saved position that does not parse: retrying cannot help; start the object over.
    #[error("the saved position {place} is corrupt ({message}); start over (`--restart`)")]
    Corrupt { place: String, message: String },
}

impl PositionError {
    pub fn unavailable(
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Unavailable {
            operation,
            source: source.into(),
        }
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Corrupt { .. })
    }
}

/// Saved walk positions, one per Attio object.
pub trait PositionStore: Send + Sync {
    fn load(
        &self,
        object: &str,
    ) -> impl Future<Output = Result<Option<SyncPosition>, PositionError>> + Send;

    fn save(
        &self,
        position: &SyncPosition,
    ) -> impl Future<Output = Result<(), PositionError>> + Send;
}

/// Positions in a map, for tests. Clones share the map.
#[derive(Debug, Clone, Default)]
pub struct MemoryPositions {
    saved: Arc<Mutex<HashMap<String, SyncPosition>>>,
}

impl MemoryPositions {
    pub fn new() -> Self {
        Self::default()
    }

    /// The saved position of `object`, as the next run would load it.
    pub fn get(&self, object: &str) -> Option<SyncPosition> {
        self.saved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(object)
            .cloned()
    }
}

impl PositionStore for MemoryPositions {
    async fn load(&self, object: &str) -> Result<Option<SyncPosition>, PositionError> {
        Ok(self.get(object))
    }

    async fn save(&self, position: &SyncPosition) -> Result<(), PositionError> {
        self.saved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(position.object.clone(), position.clone());
        Ok(())
    }
}

/// Positions as `backfill-<object>.json` files in a folder (the CLI's data folder).
#[derive(Debug, Clone)]
pub struct FilePositions {
    dir: PathBuf,
}

impl FilePositions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path(&self, object: &str) -> PathBuf {
        self.dir.join(format!("backfill-{object}.json"))
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)?;
    // Rename is atomic: a crash leaves the old position or the new one, never half of one.
    std::fs::rename(&tmp, path)
}

impl PositionStore for FilePositions {
    async fn load(&self, object: &str) -> Result<Option<SyncPosition>, PositionError> {
        let path = self.path(object);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| PositionError::Corrupt {
                        place: path.display().to_string(),
                        message: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PositionError::unavailable("read", e)),
        }
    }

    async fn save(&self, position: &SyncPosition) -> Result<(), PositionError> {
        let bytes = serde_json::to_vec_pretty(position)
            .map_err(|e| PositionError::unavailable("serialise", e))?;
        std::fs::create_dir_all(&self.dir).map_err(|e| PositionError::unavailable("mkdir", e))?;
        write_atomically(&self.path(&position.object), &bytes).map_err(|e| {
            PositionError::unavailable(
                "write",
                format!("{}: {e}", self.path(&position.object).display()),
            )
        })
    }
}

/// The item attribute holding the position as JSON.
pub const POSITION_ATTRIBUTE: &str = "position";

/// Positions in the mappings table: item `reconcile-position#<object>` (partition key
/// `mapping_key`, as every mapping), the position as JSON in [`POSITION_ATTRIBUTE`]. No CRM
/// object is called `reconcile-position`, so these keys never meet an id mapping's
/// (`{crm object}#{attio id}`).
#[derive(Debug, Clone)]
pub struct DynamoDbPositions {
    client: Client,
    table: String,
}

impl DynamoDbPositions {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn key(object: &str) -> String {
        format!("reconcile-position#{object}")
    }
}

impl PositionStore for DynamoDbPositions {
    async fn load(&self, object: &str) -> Result<Option<SyncPosition>, PositionError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(
                relay_mappings::KEY_ATTRIBUTE,
                AttributeValue::S(Self::key(object)),
            )
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| PositionError::unavailable("GetItem", e.into_service_error()))?;
        let Some(json) = out
            .item
            .as_ref()
            .and_then(|item| item.get(POSITION_ATTRIBUTE))
            .and_then(|v| v.as_s().ok())
        else {
            return Ok(None);
        };
        serde_json::from_str(json)
            .map(Some)
            .map_err(|e| PositionError::Corrupt {
                place: format!("{} in table {}", Self::key(object), self.table),
                message: e.to_string(),
            })
    }

    async fn save(&self, position: &SyncPosition) -> Result<(), PositionError> {
        let json = serde_json::to_string(position)
            .map_err(|e| PositionError::unavailable("serialise", e))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item(
                relay_mappings::KEY_ATTRIBUTE,
                AttributeValue::S(Self::key(&position.object)),
            )
            .item(POSITION_ATTRIBUTE, AttributeValue::S(json))
            .send()
            .await
            .map_err(|e| PositionError::unavailable("PutItem", e.into_service_error()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_position_survives_a_new_store_and_a_corrupt_one_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FilePositions::new(dir.path());
        assert_eq!(store.load("people").await.expect("load"), None);
        let mut position = SyncPosition::start("people", 1_700_000_000, Some(5));
        position.offset = 500;
        store.save(&position).await.expect("save");
        let again = FilePositions::new(dir.path());
        assert_eq!(again.load("people").await.expect("load"), Some(position));
        assert!(
            dir.path().join("backfill-people.json").exists(),
            "the CLI's file name"
        );

        std::fs::write(dir.path().join("backfill-deals.json"), b"{not json").expect("write");
        let err = again.load("deals").await.expect_err("corrupt");
        assert!(
            err.is_permanent() && err.to_string().contains("--restart"),
            "{err}"
        );
    }
}
