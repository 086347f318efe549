//! The SQS replay journal: message ids of one DLQ sent back to their source queue and not yet
//! seen deleted from the DLQ.
//!
//! SQS cannot send and delete in one step, so replay sends a batch, records its ids here
//! (flushed to disk), then deletes it from the DLQ and records that too. A run that stops
//! between sending and deleting leaves ids *outstanding*; a later run that finds those
//! messages in the DLQ again sees them here and only deletes them.
//!
//! An id is forgotten only once its delete is recorded, never because a run finished: a
//! filtered run (`--event-type`, `--id`) never receives — let alone deletes — the messages of
//! an earlier interrupted run that its filter leaves out, so wiping the journal at its end
//! would let the next full run send them a second time. A finished run rewrites the file with
//! the outstanding ids only, and removes it when none are left.
//!
//! File format, one entry a line: `sent <id>` and `deleted <id>`. A bare `<id>` (the format
//! before deletes were recorded) reads as `sent <id>`, so a journal left by an older version
//! is still honoured.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

#[derive(Debug)]
pub(super) struct Journal {
    path: PathBuf,
    /// Sent and not seen deleted: these must never be sent again.
    outstanding: HashSet<String>,
}

impl Journal {
    /// Opens (without creating) the journal of `dlq` in `data_dir`.
    pub(super) fn open(data_dir: &Path, dlq: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let path = data_dir.join(format!("replay-journal-{dlq}.log"));
        let mut outstanding = HashSet::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    match line.split_once(' ') {
                        Some(("deleted", id)) => {
                            outstanding.remove(id);
                        }
                        Some(("sent", id)) => {
                            outstanding.insert(id.to_owned());
                        }
                        // The older format: ids only, each one sent.
                        _ => {
                            outstanding.insert(line.to_owned());
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
        Ok(Self { path, outstanding })
    }

    /// Whether an earlier (or this) run sent `message_id` and its delete is not recorded.
    pub(super) fn contains(&self, message_id: &str) -> bool {
        self.outstanding.contains(message_id)
    }

    /// How many sent messages have no recorded delete.
    pub(super) fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Records `ids` as sent, on disk before returning: the delete that follows may never run.
    pub(super) fn record_sent(&mut self, ids: &[String]) -> anyhow::Result<()> {
        self.append("sent", ids)?;
        self.outstanding.extend(ids.iter().cloned());
        Ok(())
    }

    /// Records that SQS confirmed deleting `ids` from the DLQ: they cannot come back, so the
    /// journal may forget them.
    pub(super) fn record_deleted(&mut self, ids: &[String]) -> anyhow::Result<()> {
        self.append("deleted", ids)?;
        for id in ids {
            self.outstanding.remove(id);
        }
        Ok(())
    }

    fn append(&self, verb: &str, ids: &[String]) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        for id in ids {
            writeln!(file, "{verb} {id}")?;
        }
        file.sync_all()?;
        Ok(())
    }

    /// At the end of a run: keeps only the outstanding ids (written to a new file, then
    /// renamed over the old one, so a crash leaves one or the other whole), or removes the
    /// file when nothing is outstanding.
    pub(super) fn compact(self) -> anyhow::Result<()> {
        if self.outstanding.is_empty() {
            return match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            };
        }
        let fresh = self.path.with_extension("log.new");
        {
            let mut file = std::fs::File::create(&fresh)
                .with_context(|| format!("cannot write {}", fresh.display()))?;
            let mut ids: Vec<&String> = self.outstanding.iter().collect();
            ids.sort();
            for id in ids {
                writeln!(file, "sent {id}")?;
            }
            file.sync_all()?;
        }
        std::fs::rename(&fresh, &self.path)
            .with_context(|| format!("cannot replace {}", self.path.display()))
    }

    /// Forgets every id: only for a run that saw the whole DLQ empty, so none of them can
    /// come back (a delete confirmed but whose answer was lost, a purge, a message expired).
    pub(super) fn forget_all(mut self) -> anyhow::Result<()> {
        self.outstanding.clear();
        self.compact()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn what_one_run_records_the_next_run_sees_until_deleted() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut first = Journal::open(dir.path(), "p-records-dlq")?;
        assert!(!first.contains("m1"));
        first.record_sent(&ids(&["m1", "m2"]))?;
        assert!(first.contains("m2"));
        drop(first);

        let mut second = Journal::open(dir.path(), "p-records-dlq")?;
        assert!(second.contains("m1") && second.contains("m2"));
        assert!(
            !Journal::open(dir.path(), "p-notes-dlq")?.contains("m1"),
            "one journal per DLQ"
        );
        second.record_deleted(&ids(&["m1"]))?;
        drop(second);
        let third = Journal::open(dir.path(), "p-records-dlq")?;
        assert!(!third.contains("m1"), "a recorded delete forgets the id");
        assert!(third.contains("m2"), "an unrecorded delete does not");
        Ok(())
    }

    #[test]
    fn a_finished_run_keeps_what_is_outstanding_and_removes_an_empty_journal() -> anyhow::Result<()>
    {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("replay-journal-q.log");
        let mut run = Journal::open(dir.path(), "q")?;
        run.record_sent(&ids(&["a", "b", "c"]))?;
        run.record_deleted(&ids(&["a", "c"]))?;
        run.compact()?;
        assert_eq!(std::fs::read_to_string(&path)?, "sent b\n");
        let reopened = Journal::open(dir.path(), "q")?;
        assert_eq!(reopened.outstanding(), 1);
        assert!(reopened.contains("b"));

        let mut last = Journal::open(dir.path(), "q")?;
        last.record_deleted(&ids(&["b"]))?;
        last.compact()?;
        assert!(!path.exists(), "nothing outstanding, no file");

        let mut purged = Journal::open(dir.path(), "q")?;
        purged.record_sent(&ids(&["z"]))?;
        purged.forget_all()?;
        assert!(!path.exists());
        Ok(())
    }

    #[test]
    fn a_journal_of_the_older_format_is_still_honoured() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("replay-journal-q.log"), "m1\nm2\n")?;
        let mut journal = Journal::open(dir.path(), "q")?;
        assert!(journal.contains("m1") && journal.contains("m2"));
        journal.record_deleted(&ids(&["m1"]))?;
        let reopened = Journal::open(dir.path(), "q")?;
        assert!(!reopened.contains("m1") && reopened.contains("m2"));
        Ok(())
    }
}
