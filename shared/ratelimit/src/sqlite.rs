//! The buckets in the local SQLite file (`attio-relay dev`, and `backfill` / `reconcile` run
//! without a mappings table): table `rate_budgets`, one row per API, written only when its
//! version is still the one read — the DynamoDB adapter's rule, so two processes on one file
//! share one budget. A window's grants are one TEXT column (`encode_grants`).

use relay_embedded::LocalDb;
use rusqlite::{OptionalExtension, params};

use crate::{
    BucketState, BudgetError, RateBudget, Saved, StoreFuture, Versioned, decode_grants,
    encode_grants,
};

#[derive(Debug, Clone)]
pub struct SqliteBudget {
    db: LocalDb,
}

impl SqliteBudget {
    pub fn new(db: LocalDb) -> Self {
        Self { db }
    }
}

const SELECT: &str =
    "SELECT tokens, updated_ms, cut_rate, cut_ms, version, grants FROM rate_budgets WHERE api = ?1";

/// The row, if any. A `grants` text that does not read (not written by this crate) reads as an
/// empty window: the next write replaces it.
fn read(conn: &rusqlite::Connection, key: &str) -> rusqlite::Result<Option<Versioned>> {
    conn.query_row(SELECT, params![key], |row| {
        let grants: String = row.get(5)?;
        Ok(Versioned {
            state: BucketState {
                tokens: row.get(0)?,
                updated_ms: row.get(1)?,
                cut_rate: row.get(2)?,
                cut_ms: row.get(3)?,
                grants: decode_grants(&grants).unwrap_or_default(),
            },
            version: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
        })
    })
    .optional()
}

impl RateBudget for SqliteBudget {
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Versioned>> {
        let key = key.to_owned();
        Box::pin(async move {
            self.db
                .call(move |conn| read(conn, &key))
                .await
                .map_err(|e| BudgetError::new("read", e))
        })
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        state: BucketState,
        expected: Option<u64>,
    ) -> StoreFuture<'a, Saved> {
        let key = key.to_owned();
        Box::pin(async move {
            self.db
                .call(move |conn| {
                    let grants = encode_grants(&state.grants);
                    let written = match expected {
                        None => conn.execute(
                            "INSERT OR IGNORE INTO rate_budgets (api, tokens, updated_ms, cut_rate, cut_ms, version, grants) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6)",
                            params![key, state.tokens, state.updated_ms, state.cut_rate, state.cut_ms, grants],
                        )?,
                        Some(version) => conn.execute(
                            "UPDATE rate_budgets SET tokens = ?2, updated_ms = ?3, cut_rate = ?4, cut_ms = ?5, grants = ?7, version = version + 1 WHERE api = ?1 AND version = ?6",
                            params![
                                key,
                                state.tokens,
                                state.updated_ms,
                                state.cut_rate,
                                state.cut_ms,
                                i64::try_from(version).unwrap_or(i64::MAX),
                                grants
                            ],
                        )?,
                    };
                    if written == 1 {
                        Ok(Saved::Written(expected.map_or(1, |v| v + 1)))
                    } else {
                        Ok(Saved::Conflict(read(conn, &key)?))
                    }
                })
                .await
                .map_err(|e| BudgetError::new("write", e))
        })
    }
}

#[cfg(test)]
mod tests {
    //! Two processes on one file share one budget: this test binary runs itself twice as
    //! children (the `child` test, which does nothing unless told the file), each with
    //! several takers, and checks the calls of both together.

    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::Duration;

    use super::*;
    use crate::{ApiBudget, Limits, MillisClock, SystemMillis};

    const FILE_VAR: &str = "RELAY_RATELIMIT_TEST_DB";

    fn limits() -> Limits {
        Limits {
            key: "test-api".into(),
            published_per_s: 50.0,
            rate_per_s: 40.0,
            capacity: 4.0,
            max_block: 4,
            lease: Duration::from_millis(100),
            min_rate_per_s: 1.0,
            recovery_per_s: 1.0,
            cut_cooldown: Duration::from_secs(1),
            window: None,
        }
    }

    /// Takers on their own connection to `path` for `run`: every call's wall-clock time.
    async fn take_for(path: &std::path::Path, run: Duration) -> Vec<i64> {
        let db = LocalDb::open(path).expect("open");
        let budget = ApiBudget::new(Arc::new(SqliteBudget::new(db)), limits());
        let end = SystemMillis.now_ms() + i64::try_from(run.as_millis()).expect("ms");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let (budget, calls) = (budget.clone(), Arc::clone(&calls));
                tokio::spawn(async move {
                    while SystemMillis.now_ms() < end {
                        match budget.acquire(Duration::from_secs(2)).await {
                            Ok(()) => {
                                let now = SystemMillis.now_ms();
                                if now < end {
                                    calls
                                        .lock()
                                        .unwrap_or_else(PoisonError::into_inner)
                                        .push(now);
                                }
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            Err(denied) => tokio::time::sleep(denied.wait).await,
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("taker");
        }
        calls.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    #[tokio::test]
    async fn a_window_keeps_its_grants_and_writes_only_on_the_version_read() {
        let store = SqliteBudget::new(LocalDb::in_memory().expect("db"));
        let limits = Limits::hubspot(100.0, 0.85);
        let now = SystemMillis.now_ms();
        let (first, _) = limits
            .take(&limits.fresh(now), now, 5, Duration::ZERO)
            .expect("take");
        assert_eq!(
            store
                .save(&limits.key, first.clone(), None)
                .await
                .expect("v1"),
            Saved::Written(1)
        );
        let (second, _) = limits
            .take(&first, now + 20, 3, Duration::ZERO)
            .expect("take");
        assert_eq!(second.grants.len(), 2);
        assert_eq!(
            store
                .save(&limits.key, second.clone(), Some(1))
                .await
                .expect("v2"),
            Saved::Written(2)
        );
        // A stale writer loses and is handed the winner's grants.
        match store
            .save(&limits.key, first, Some(1))
            .await
            .expect("stale")
        {
            Saved::Conflict(Some(stored)) => assert_eq!(stored.state, second),
            other => panic!("{other:?}"),
        }
        let stored = store.load(&limits.key).await.expect("load").expect("row");
        assert_eq!((stored.version, stored.state), (2, second));
    }

    /// The child's half: runs only when the parent names the file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn child() {
        let Ok(path) = std::env::var(FILE_VAR) else {
            return;
        };
        for call in take_for(std::path::Path::new(&path), Duration::from_millis(2_500)).await {
            println!("CALL {call}");
        }
    }

    #[test]
    fn two_processes_on_one_file_share_one_budget() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("relay.db");
        LocalDb::open(&path).expect("create");
        let exe = std::env::current_exe().expect("test binary");
        let children: Vec<_> = (0..2)
            .map(|_| {
                std::process::Command::new(&exe)
                    .args([
                        "sqlite::tests::child",
                        "--exact",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .env(FILE_VAR, &path)
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .expect("child process")
            })
            .collect();
        let mut calls: Vec<i64> = Vec::new();
        let mut per_child = Vec::new();
        for child in children {
            let out = child.wait_with_output().expect("child output");
            assert!(out.status.success(), "child failed");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let mine: Vec<i64> = text
                .lines()
                .filter_map(|l| l.strip_prefix("CALL ")?.trim().parse().ok())
                .collect();
            per_child.push(mine.len());
            calls.extend(mine);
        }
        calls.sort_unstable();
        let limits = limits();
        let mut most = 0;
        let mut first = 0;
        for (i, t) in calls.iter().enumerate() {
            while calls[first] <= t - 1_000 {
                first += 1;
            }
            most = most.max(i + 1 - first);
        }
        assert!(
            most as f64 <= limits.ceiling_over(Duration::from_secs(1)),
            "{most} calls in one second from two processes"
        );
        // Both processes got calls through, and together they used the budget (2.5 s at
        // 40/s is 100, plus the burst), not twice it.
        assert!(per_child.iter().all(|n| *n >= 10), "{per_child:?}");
        assert!((80..=110).contains(&calls.len()), "{} calls", calls.len());
    }
}
