//! The queue admin on the local run's SQLite queues (`attio-relay dev`), named by family:
//! `<family>` and `<family>-dlq`. A local replay moves the messages back in one transaction,
//! so it cannot half-happen and needs no journal.

use std::path::Path;

use anyhow::Context;
use relay_events::EventFamily;

use super::{Depth, Purged, QueueMessage, QueuePair, Selector, age_secs, now_ms};

// The one place the CLI names the embedded queue's crate: when it moves, this line moves.
pub use relay_embedded::LocalDb;
pub use relay_queue::{LocalMessage, SqliteQueue, dlq_name};

/// The admin never receives, so the queue's redrive count is never used; this is `dev`'s default.
const MAX_RECEIVE_COUNT: u32 = 5;

#[derive(Debug, Clone)]
pub struct LocalAdmin {
    db: LocalDb,
    queue: SqliteQueue,
}

fn shown(message: LocalMessage, with_body: bool) -> QueueMessage {
    QueueMessage {
        queue: message.queue,
        message_id: message.message_id,
        event_type: Some(message.attributes.event_type),
        idempotency_key: Some(message.attributes.idempotency_key),
        receive_count: Some(message.receive_count),
        failure_reason: message.failure_reason,
        sent_at: Some(message.sent_at_ms.to_string()),
        body: with_body.then_some(message.body),
    }
}

impl LocalAdmin {
    /// The queues of the local run in `data_dir`; an error when there is none (rather than an
    /// empty new database that would show nothing and hide the mistake).
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let path = crate::dev::database_file(data_dir);
        anyhow::ensure!(
            path.exists(),
            "{} does not exist: no local run here (see attio-relay dev)",
            path.display()
        );
        let db = LocalDb::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        let queue = SqliteQueue::new(db.clone(), MAX_RECEIVE_COUNT);
        Ok(Self::new(db, queue))
    }

    /// The admin of queues already open (the dev server's own).
    pub fn new(db: LocalDb, queue: SqliteQueue) -> Self {
        Self { db, queue }
    }

    /// The database the queues live in, for the run's other tables.
    pub fn db(&self) -> &LocalDb {
        &self.db
    }

    pub(super) fn pair(&self, family: EventFamily) -> QueuePair {
        QueuePair {
            family,
            source: family.as_str().to_owned(),
            dlq: dlq_name(family.as_str()),
        }
    }

    pub(super) async fn depths(&self, queues: &[String]) -> anyhow::Result<Vec<Depth>> {
        let counts = self.queue.depths().await?;
        let oldest = self.queue.oldest().await?;
        let now = now_ms();
        let find = |list: &[(String, i64)], name: &str| {
            list.iter().find(|(q, _)| q == name).map(|(_, n)| *n)
        };
        Ok(queues
            .iter()
            .map(|name| Depth {
                queue: name.clone(),
                visible: find(&counts, name).map_or(0, |n| u64::try_from(n).unwrap_or(0)),
                in_flight: 0,
                oldest_age_secs: find(&oldest, name).map(|sent| age_secs(now, sent)),
            })
            .collect())
    }

    pub(super) async fn peek(
        &self,
        queue: &str,
        max: usize,
        with_body: bool,
    ) -> anyhow::Result<Vec<QueueMessage>> {
        Ok(self
            .queue
            .peek(queue)
            .await?
            .into_iter()
            .take(max)
            .map(|m| shown(m, with_body))
            .collect())
    }

    /// Moves the selected messages of `pair.dlq` back; how many moved.
    pub(super) async fn replay(
        &self,
        pair: &QueuePair,
        selector: &Selector,
    ) -> anyhow::Result<usize> {
        let selected: Vec<String> = self
            .queue
            .peek(&pair.dlq)
            .await?
            .into_iter()
            .filter(|m| selector.matches(Some(&m.message_id), Some(&m.attributes.event_type)))
            .map(|m| m.message_id)
            .collect();
        // The queue reads an empty list as "all of them".
        if selected.is_empty() {
            return Ok(0);
        }
        Ok(self.queue.replay(&pair.dlq, &selected).await?)
    }

    pub(super) async fn purge(&self, queue: &str) -> anyhow::Result<Purged> {
        let purged = self.queue.purge(queue).await?;
        Ok(Purged {
            count: u64::try_from(purged).unwrap_or(u64::MAX),
            approximate: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use relay_events::MessageAttributes;
    use relay_queue::{EventQueue, OutgoingMessage};

    use super::super::{QueueAdmin, ReplayRequest, Replayed};
    use super::*;

    fn message(family: EventFamily, event_type: &str, n: usize) -> OutgoingMessage {
        OutgoingMessage {
            family,
            entry_id: format!("e{n}"),
            body: format!("{{\"n\":{n}}}"),
            attributes: MessageAttributes {
                event_type: event_type.to_owned(),
                workspace_id: "w".to_owned(),
                idempotency_key: format!("h:{n}"),
            },
        }
    }

    /// An admin over an in-memory queue holding two live records messages and three notes
    /// dead letters (two note.created, one note.deleted).
    async fn admin() -> anyhow::Result<QueueAdmin> {
        let db = LocalDb::in_memory()?;
        let queue = SqliteQueue::new(db.clone(), MAX_RECEIVE_COUNT);
        queue
            .send(&[
                message(EventFamily::Records, "record.updated", 0),
                message(EventFamily::Records, "record.updated", 1),
            ])
            .await?;
        queue
            .send(&[
                message(EventFamily::Notes, "note.created", 2),
                message(EventFamily::Notes, "note.created", 3),
                message(EventFamily::Notes, "note.deleted", 4),
            ])
            .await?;
        for received in queue.receive("notes", 10, Duration::from_secs(30)).await? {
            assert!(
                queue
                    .dead_letter(&received.receipt_handle, "CRM: HTTP 400")
                    .await?
            );
        }
        Ok(QueueAdmin::Local(LocalAdmin::new(db, queue)))
    }

    fn notes(admin: &QueueAdmin) -> QueuePair {
        admin.pairs(Some(EventFamily::Notes)).remove(0)
    }

    fn request(selector: Selector) -> ReplayRequest<'static> {
        ReplayRequest {
            selector,
            native: false,
            visibility_timeout: 30,
            journal_dir: Path::new("unused-by-the-local-queue"),
            progress: false,
        }
    }

    #[tokio::test]
    async fn local_queues_are_named_by_family() -> anyhow::Result<()> {
        let admin = admin().await?;
        let pairs = admin.pairs(None);
        assert_eq!(pairs.len(), EventFamily::EVERY.len());
        assert_eq!(
            notes(&admin),
            QueuePair {
                family: EventFamily::Notes,
                source: "notes".into(),
                dlq: "notes-dlq".into()
            }
        );
        Ok(())
    }

    #[tokio::test]
    async fn depths_count_each_named_queue() -> anyhow::Result<()> {
        let admin = admin().await?;
        let names = ["records", "notes", "notes-dlq"].map(String::from);
        let depths = admin.depths(&names).await?;
        let visible: Vec<u64> = depths.iter().map(|d| d.visible).collect();
        assert_eq!(visible, [2, 0, 3]);
        assert_eq!(depths[1].oldest_age_secs, None, "an empty queue has no age");
        assert!(depths[2].oldest_age_secs.is_some());
        assert_eq!(depths[0].queue, "records");
        Ok(())
    }

    #[tokio::test]
    async fn peek_is_bounded_and_leaves_the_messages() -> anyhow::Result<()> {
        let admin = admin().await?;
        let peeked = admin.peek("notes-dlq", 2, false).await?;
        assert_eq!(peeked.len(), 2);
        assert!(peeked.iter().all(|m| m.body.is_none()));
        assert_eq!(peeked[0].failure_reason.as_deref(), Some("CRM: HTTP 400"));
        assert_eq!(peeked[0].idempotency_key.as_deref(), Some("h:2"));
        assert_eq!(admin.peek("notes-dlq", 10, false).await?.len(), 3);

        let id = peeked[1].message_id.clone();
        let found = admin.find("notes-dlq", &id, 50).await?.expect("found");
        assert_eq!(found.body.as_deref(), Some("{\"n\":3}"));
        assert!(admin.find("notes", &id, 50).await?.is_none());
        Ok(())
    }

    #[tokio::test]
    async fn replay_moves_only_the_selected_dead_letters_back() -> anyhow::Result<()> {
        let admin = admin().await?;
        let pair = notes(&admin);
        let by_type = Selector {
            event_type: Some("note.deleted".into()),
            ..Selector::default()
        };
        let replayed = admin.replay(&pair, &request(by_type)).await?;
        assert!(matches!(replayed, Replayed::Moved { replayed: 1 }));
        let back = admin.peek("notes", 10, false).await?;
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].event_type.as_deref(), Some("note.deleted"));
        assert_eq!(
            back[0].failure_reason, None,
            "a replayed message starts clean"
        );

        let nothing = Selector {
            ids: ["no-such-id".to_owned()].into(),
            ..Selector::default()
        };
        let replayed = admin.replay(&pair, &request(nothing)).await?;
        assert_eq!(
            replayed.count(),
            0,
            "an unknown id moves nothing, not everything"
        );
        assert_eq!(admin.peek("notes-dlq", 10, false).await?.len(), 2);

        let replayed = admin.replay(&pair, &request(Selector::default())).await?;
        assert_eq!(replayed.count(), 2);
        assert!(admin.peek("notes-dlq", 10, false).await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn purge_empties_one_queue_and_counts_exactly() -> anyhow::Result<()> {
        let admin = admin().await?;
        let purged = admin.purge("notes-dlq").await?;
        assert_eq!(
            purged,
            Purged {
                count: 3,
                approximate: false
            }
        );
        assert!(admin.peek("notes-dlq", 10, false).await?.is_empty());
        assert_eq!(admin.peek("records", 10, false).await?.len(), 2);
        Ok(())
    }
}
