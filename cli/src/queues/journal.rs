//! The SQS replay journal: message ids of one DLQ already sent back to their source queue.
//!
//! SQS cannot send and delete in one step, so replay sends a batch, records its ids here
//! (flushed to disk), then deletes it from the DLQ. A run that stops between sending and
//! deleting leaves the ids behind; the next run finds those messages in the DLQ again, sees
//! them here, and only deletes them. A finished replay removes the file.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

#[derive(Debug)]
pub(super) struct Journal {
    path: PathBuf,
    sent: HashSet<String>,
}

impl Journal {
    /// Opens (without creating) the journal of `dlq` in `data_dir`.
    pub(super) fn open(data_dir: &Path, dlq: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let path = data_dir.join(format!("replay-journal-{dlq}.log"));
        let sent = match std::fs::read_to_string(&path) {
            Ok(text) => text.lines().map(str::to_owned).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashSet::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Ok(Self { path, sent })
    }

    /// Whether an earlier (or this) run already sent `message_id`.
    pub(super) fn contains(&self, message_id: &str) -> bool {
        self.sent.contains(message_id)
    }

    /// Records `ids` as sent, on disk before returning: the delete that follows may never run.
    pub(super) fn record(&mut self, ids: &[String]) -> anyhow::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        for id in ids {
            writeln!(file, "{id}")?;
        }
        file.sync_all()?;
        self.sent.extend(ids.iter().cloned());
        Ok(())
    }

    /// A finished replay leaves nothing to resume.
    pub(super) fn clear(self) -> anyhow::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_one_run_records_the_next_run_sees_until_cleared() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut first = Journal::open(dir.path(), "p-records-dlq")?;
        assert!(!first.contains("m1"));
        first.record(&["m1".into(), "m2".into()])?;
        assert!(first.contains("m2"));
        drop(first);

        let second = Journal::open(dir.path(), "p-records-dlq")?;
        assert!(second.contains("m1") && second.contains("m2"));
        assert!(
            !Journal::open(dir.path(), "p-notes-dlq")?.contains("m1"),
            "one journal per DLQ"
        );
        second.clear()?;
        assert!(!Journal::open(dir.path(), "p-records-dlq")?.contains("m1"));
        Ok(())
    }
}
