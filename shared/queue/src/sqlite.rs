//! SQS-like queues in SQLite: one table, a `queue` column per family and its DLQ.
//!
//! Receiving hides a message for the visibility timeout and counts the receive; a message
//! received `max_receive_count` times and still not deleted moves to `<queue>-dlq` on its next
//! receive, as SQS's redrive policy does.

use std::time::Duration;

use crate::{EventQueue, OutgoingMessage, QueueError};
use relay_events::MessageAttributes;
use rusqlite::params;

use relay_embedded::{LocalDb, LocalDbError};
use relay_events::clock::unix_now_millis as now_millis;

/// How often [`SqliteQueue::receive_batch`] looks again while its window is open.
const WINDOW_POLL: Duration = Duration::from_millis(20);

/// The dead-letter queue of a local queue.
pub fn dlq_name(queue: &str) -> String {
    format!("{queue}-dlq")
}

/// A message as stored, for inspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMessage {
    pub message_id: String,
    pub queue: String,
    pub body: String,
    pub attributes: MessageAttributes,
    pub receive_count: u32,
    pub sent_at_ms: i64,
    /// The queue it was moved from, for messages in a DLQ.
    pub source_queue: Option<String>,
    /// Why a consumer gave up on it, for messages it dead-lettered.
    pub failure_reason: Option<String>,
}

/// A message handed to a consumer; delete it with its receipt handle once handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message: LocalMessage,
    pub receipt_handle: String,
}

/// The embedded queue.
#[derive(Debug, Clone)]
pub struct SqliteQueue {
    db: LocalDb,
    max_receive_count: u32,
}

const COLUMNS: &str = "message_id, queue, body, event_type, workspace_id, idempotency_key, \
                       receive_count, sent_at_ms, source_queue, failure_reason";

fn read_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<LocalMessage> {
    Ok(LocalMessage {
        message_id: row.get(0)?,
        queue: row.get(1)?,
        body: row.get(2)?,
        attributes: MessageAttributes {
            event_type: row.get(3)?,
            workspace_id: row.get(4)?,
            idempotency_key: row.get(5)?,
        },
        receive_count: row.get(6)?,
        sent_at_ms: row.get(7)?,
        source_queue: row.get(8)?,
        failure_reason: row.get(9)?,
    })
}

impl SqliteQueue {
    /// `max_receive_count` is the redrive policy's maxReceiveCount.
    pub fn new(db: LocalDb, max_receive_count: u32) -> Self {
        Self {
            db,
            max_receive_count: max_receive_count.max(1),
        }
    }

    /// Receives up to `max` visible messages, moving over-received ones to the DLQ first.
    pub async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, LocalDbError> {
        let queue = queue.to_owned();
        let max_receives = self.max_receive_count;
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let hide_ms = i64::try_from(visibility.as_millis()).unwrap_or(i64::MAX);
        self.db
            .call(move |conn| {
                let now = now_millis();
                let tx = conn.transaction()?;
                tx.execute(
                    "UPDATE messages SET queue = ?2, source_queue = ?1, receipt_handle = NULL,
                            visible_at_ms = ?3
                     WHERE queue = ?1 AND visible_at_ms <= ?3 AND receive_count >= ?4",
                    params![queue, dlq_name(&queue), now, max_receives],
                )?;
                let mut picked: Vec<LocalMessage> = {
                    let mut stmt = tx.prepare(&format!(
                        "SELECT {COLUMNS} FROM messages
                         WHERE queue = ?1 AND visible_at_ms <= ?2 ORDER BY seq LIMIT ?3"
                    ))?;
                    stmt.query_map(params![queue, now, max], read_message)?
                        .collect::<rusqlite::Result<_>>()?
                };
                let mut received = Vec::with_capacity(picked.len());
                for mut message in picked.drain(..) {
                    let receipt = uuid::Uuid::new_v4().to_string();
                    tx.execute(
                        "UPDATE messages SET receive_count = receive_count + 1,
                                visible_at_ms = ?2, receipt_handle = ?3
                         WHERE message_id = ?1",
                        params![message.message_id, now.saturating_add(hide_ms), receipt],
                    )?;
                    message.receive_count += 1;
                    received.push(ReceivedMessage {
                        message,
                        receipt_handle: receipt,
                    });
                }
                tx.commit()?;
                Ok(received)
            })
            .await
    }

    /// Receives like [`Self::receive`], but once something is visible keeps gathering for up to
    /// `window` until `max` messages are held: Lambda's batching window
    /// (`MaximumBatchingWindowInSeconds`), so a burst fills a batch instead of being cut into
    /// whatever was visible at one instant, while a lone message waits at most `window`. Every
    /// message is hidden from its own receive on, as SQS hides the ones Lambda gathers.
    pub async fn receive_batch(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
        window: Duration,
    ) -> Result<Vec<ReceivedMessage>, LocalDbError> {
        let mut batch = self.receive(queue, max, visibility).await?;
        if batch.is_empty() || window.is_zero() {
            return Ok(batch);
        }
        let closes = tokio::time::Instant::now() + window;
        while batch.len() < max {
            let left = closes.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(left.min(WINDOW_POLL)).await;
            let more = self.receive(queue, max - batch.len(), visibility).await?;
            batch.extend(more);
        }
        Ok(batch)
    }

    /// Hides the messages of these receipts for `visibility` from now (a consumer still working
    /// on them renews its lease, as a long SQS consumer calls ChangeMessageVisibility); returns
    /// how many receipts were still current. One transaction for the whole batch.
    pub async fn extend_visibility(
        &self,
        receipt_handles: &[String],
        visibility: Duration,
    ) -> Result<usize, LocalDbError> {
        let receipts = receipt_handles.to_vec();
        let hide_ms = i64::try_from(visibility.as_millis()).unwrap_or(i64::MAX);
        self.db
            .call(move |conn| {
                let until = now_millis().saturating_add(hide_ms);
                let tx = conn.transaction()?;
                let mut renewed = 0;
                for receipt in &receipts {
                    renewed += tx.execute(
                        "UPDATE messages SET visible_at_ms = ?2 WHERE receipt_handle = ?1",
                        params![receipt, until],
                    )?;
                }
                tx.commit()?;
                Ok(renewed)
            })
            .await
    }

    /// Deletes a received message; false when the receipt is stale (it was received again).
    pub async fn delete(&self, receipt_handle: &str) -> Result<bool, LocalDbError> {
        let receipt = receipt_handle.to_owned();
        self.db
            .call(move |conn| {
                conn.execute("DELETE FROM messages WHERE receipt_handle = ?1", [receipt])
                    .map(|n| n == 1)
            })
            .await
    }

    /// Deletes the messages of these receipts in one transaction (a settled batch: one round
    /// trip to the shared connection instead of one per message, which at an import's 250
    /// messages per batch was most of a batch's local time); how many receipts were current.
    pub async fn delete_batch(&self, receipt_handles: &[String]) -> Result<usize, LocalDbError> {
        if receipt_handles.is_empty() {
            return Ok(0);
        }
        let receipts = receipt_handles.to_vec();
        self.db
            .call(move |conn| {
                let tx = conn.transaction()?;
                let mut deleted = 0;
                {
                    let mut delete =
                        tx.prepare_cached("DELETE FROM messages WHERE receipt_handle = ?1")?;
                    for receipt in &receipts {
                        deleted += delete.execute([receipt])?;
                    }
                }
                tx.commit()?;
                Ok(deleted)
            })
            .await
    }

    /// Makes a received message visible again after `delay` (zero: at once).
    pub async fn change_visibility(
        &self,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<bool, LocalDbError> {
        let receipt = receipt_handle.to_owned();
        let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        self.db
            .call(move |conn| {
                conn.execute(
                    "UPDATE messages SET visible_at_ms = ?2 WHERE receipt_handle = ?1",
                    params![receipt, now_millis().saturating_add(delay_ms)],
                )
                .map(|n| n == 1)
            })
            .await
    }

    /// Moves a received message to the queue's DLQ at once, with the reason (what a consumer
    /// does with a message that cannot succeed). False when the receipt is stale.
    pub async fn dead_letter(
        &self,
        receipt_handle: &str,
        reason: &str,
    ) -> Result<bool, LocalDbError> {
        let (receipt, reason) = (receipt_handle.to_owned(), reason.to_owned());
        self.db
            .call(move |conn| {
                conn.execute(
                    "UPDATE messages SET source_queue = queue, queue = queue || '-dlq',
                            failure_reason = ?2, receipt_handle = NULL, visible_at_ms = ?3
                     WHERE receipt_handle = ?1 AND queue NOT LIKE '%-dlq'",
                    params![receipt, reason, now_millis()],
                )
                .map(|n| n == 1)
            })
            .await
    }

    /// Moves messages from a dead-letter queue back to the queue they came from, in one
    /// transaction (locally a replay cannot half-happen). `ids` empty means all of them.
    /// Returns how many moved.
    pub async fn replay(&self, dlq: &str, ids: &[String]) -> Result<usize, LocalDbError> {
        let (dlq, ids) = (dlq.to_owned(), ids.to_vec());
        self.db
            .call(move |conn| {
                let tx = conn.transaction()?;
                let selected: Vec<String> = if ids.is_empty() {
                    let mut stmt = tx.prepare("SELECT message_id FROM messages WHERE queue = ?1")?;
                    stmt.query_map([&dlq], |row| row.get(0))?.collect::<rusqlite::Result<_>>()?
                } else {
                    ids
                };
                let mut moved = 0;
                for id in &selected {
                    moved += tx.execute(
                        "UPDATE messages SET queue = COALESCE(source_queue, replace(queue, '-dlq', '')),
                                source_queue = NULL, failure_reason = NULL, receive_count = 0,
                                receipt_handle = NULL, visible_at_ms = ?3
                         WHERE message_id = ?1 AND queue = ?2",
                        params![id, dlq, now_millis()],
                    )?;
                }
                tx.commit()?;
                Ok(moved)
            })
            .await
    }

    /// Deletes every message in `queue`; returns how many.
    pub async fn purge(&self, queue: &str) -> Result<usize, LocalDbError> {
        let queue = queue.to_owned();
        self.db
            .call(move |conn| conn.execute("DELETE FROM messages WHERE queue = ?1", [queue]))
            .await
    }

    /// Every message in `queue`, oldest first, without receiving them.
    pub async fn peek(&self, queue: &str) -> Result<Vec<LocalMessage>, LocalDbError> {
        let queue = queue.to_owned();
        self.db
            .call(move |conn| {
                let mut stmt = conn.prepare(&format!(
                    "SELECT {COLUMNS} FROM messages WHERE queue = ?1 ORDER BY seq"
                ))?;
                stmt.query_map([queue], read_message)?.collect()
            })
            .await
    }

    /// Send time (ms) of the oldest message in each queue that has any, by name.
    pub async fn oldest(&self) -> Result<Vec<(String, i64)>, LocalDbError> {
        self.db
            .call(|conn| {
                let mut stmt = conn.prepare(
                    "SELECT queue, MIN(sent_at_ms) FROM messages GROUP BY queue ORDER BY queue",
                )?;
                stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect()
            })
            .await
    }

    /// Number of messages in each queue that has any, by name.
    pub async fn depths(&self) -> Result<Vec<(String, i64)>, LocalDbError> {
        self.db
            .call(|conn| {
                let mut stmt = conn.prepare(
                    "SELECT queue, COUNT(*) FROM messages GROUP BY queue ORDER BY queue",
                )?;
                stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect()
            })
            .await
    }
}

impl EventQueue for SqliteQueue {
    async fn send(&self, messages: &[OutgoingMessage]) -> Result<(), QueueError> {
        let Some(first) = messages.first() else {
            return Ok(());
        };
        let family = first.family;
        let rows: Vec<_> = messages
            .iter()
            .map(|m| {
                (
                    uuid::Uuid::new_v4().to_string(),
                    m.family.as_str().to_owned(),
                    m.body.clone(),
                    m.attributes.clone(),
                )
            })
            .collect();
        // All messages of a call go in one transaction: all queued or none.
        self.db
            .call(move |conn| {
                let now = now_millis();
                let tx = conn.transaction()?;
                {
                    let mut insert = tx.prepare(
                        "INSERT INTO messages (message_id, queue, body, event_type, workspace_id,
                             idempotency_key, sent_at_ms, visible_at_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                    )?;
                    for (id, queue, body, attrs) in &rows {
                        insert.execute(params![
                            id,
                            queue,
                            body,
                            attrs.event_type,
                            attrs.workspace_id,
                            attrs.idempotency_key,
                            now
                        ])?;
                    }
                }
                tx.commit()
            })
            .await
            .map_err(|e| QueueError::Unavailable {
                family,
                source: Box::new(e),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_events::EventFamily;

    fn message(family: EventFamily, n: usize) -> OutgoingMessage {
        OutgoingMessage {
            family,
            entry_id: format!("event-{n}"),
            body: format!("{{\"n\":{n}}}"),
            attributes: MessageAttributes {
                event_type: "record.updated".into(),
                workspace_id: "ws".into(),
                idempotency_key: format!("h:{n}"),
            },
        }
    }

    #[tokio::test]
    async fn messages_land_on_their_family_queue_in_order() {
        let queue = SqliteQueue::new(LocalDb::in_memory().unwrap(), 3);
        queue
            .send(&[
                message(EventFamily::Records, 0),
                message(EventFamily::Tasks, 1),
                message(EventFamily::Records, 2),
            ])
            .await
            .unwrap();
        let records = queue.peek("records").await.unwrap();
        assert_eq!(
            records.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            ["{\"n\":0}", "{\"n\":2}"]
        );
        assert_eq!(queue.peek("tasks").await.unwrap().len(), 1);
        assert_eq!(
            queue.depths().await.unwrap(),
            vec![("records".to_owned(), 2), ("tasks".to_owned(), 1)]
        );
    }

    #[tokio::test]
    async fn received_messages_hide_until_deleted_or_timed_out() {
        let queue = SqliteQueue::new(LocalDb::in_memory().unwrap(), 3);
        queue.send(&[message(EventFamily::Notes, 0)]).await.unwrap();
        let got = queue
            .receive("notes", 10, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].message.receive_count, 1);
        assert!(
            queue
                .receive("notes", 10, Duration::from_secs(30))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            queue
                .change_visibility(&got[0].receipt_handle, Duration::ZERO)
                .await
                .unwrap()
        );
        let again = queue
            .receive("notes", 10, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(again[0].message.receive_count, 2);
        assert!(
            !queue.delete(&got[0].receipt_handle).await.unwrap(),
            "stale receipt"
        );
        assert!(queue.delete(&again[0].receipt_handle).await.unwrap());
        assert!(queue.peek("notes").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_batch_window_gathers_what_arrives_while_it_is_open() {
        let queue = SqliteQueue::new(LocalDb::in_memory().unwrap(), 3);
        let hide = Duration::from_secs(30);
        // Nothing visible: no wait at all, however long the window.
        let started = std::time::Instant::now();
        let none = queue.receive_batch("records", 100, hide, Duration::from_secs(5));
        assert!(none.await.unwrap().is_empty());
        assert!(started.elapsed() < Duration::from_secs(1));
        // One message, then more while the window is open: one batch holds them all.
        queue
            .send(&[message(EventFamily::Records, 0)])
            .await
            .unwrap();
        let sender = queue.clone();
        let later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(60)).await;
            let more: Vec<_> = (1..4).map(|n| message(EventFamily::Records, n)).collect();
            sender.send(&more).await.unwrap();
        });
        let window = Duration::from_millis(400);
        let batch = queue.receive_batch("records", 100, hide, window).await;
        later.await.unwrap();
        let bodies: Vec<_> = batch.unwrap().into_iter().map(|r| r.message.body).collect();
        assert_eq!(bodies, ["{\"n\":0}", "{\"n\":1}", "{\"n\":2}", "{\"n\":3}"]);
        // A full batch returns at once, window or not; the rest waits for the next receive.
        let more: Vec<_> = (4..9).map(|n| message(EventFamily::Records, n)).collect();
        queue.send(&more).await.unwrap();
        let started = std::time::Instant::now();
        let full = queue.receive_batch("records", 3, hide, Duration::from_secs(5));
        assert_eq!(full.await.unwrap().len(), 3);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(queue.receive("records", 10, hide).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_renewed_lease_keeps_messages_hidden_and_a_stale_receipt_renews_nothing() {
        let queue = SqliteQueue::new(LocalDb::in_memory().unwrap(), 3);
        queue
            .send(&[
                message(EventFamily::Tasks, 0),
                message(EventFamily::Tasks, 1),
            ])
            .await
            .unwrap();
        let got = queue.receive("tasks", 10, Duration::ZERO).await.unwrap();
        let receipts: Vec<String> = got.iter().map(|r| r.receipt_handle.clone()).collect();
        // Visible again at once (zero visibility) until the lease is renewed.
        let hide = Duration::from_secs(30);
        assert_eq!(queue.extend_visibility(&receipts, hide).await.unwrap(), 2);
        assert!(queue.receive("tasks", 10, hide).await.unwrap().is_empty());
        // Received again by someone else: the old receipts renew nothing.
        queue
            .extend_visibility(&receipts, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(queue.receive("tasks", 10, hide).await.unwrap().len(), 2);
        assert_eq!(queue.extend_visibility(&receipts, hide).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_message_received_too_often_moves_to_the_dlq() {
        let queue = SqliteQueue::new(LocalDb::in_memory().unwrap(), 2);
        queue.send(&[message(EventFamily::Tasks, 0)]).await.unwrap();
        for _ in 0..2 {
            assert_eq!(
                queue
                    .receive("tasks", 1, Duration::ZERO)
                    .await
                    .unwrap()
                    .len(),
                1
            );
        }
        assert!(
            queue
                .receive("tasks", 1, Duration::ZERO)
                .await
                .unwrap()
                .is_empty()
        );
        let dead = queue.peek("tasks-dlq").await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].source_queue.as_deref(), Some("tasks"));
        assert_eq!(dead[0].receive_count, 2);
        assert_eq!(dead[0].failure_reason, None);
    }

    #[tokio::test]
    async fn dead_letters_replay_to_their_source_queue_and_purge() {
        let queue = SqliteQueue::new(LocalDb::in_memory().unwrap(), 5);
        queue
            .send(&[
                message(EventFamily::Notes, 0),
                message(EventFamily::Notes, 1),
            ])
            .await
            .unwrap();
        for got in queue
            .receive("notes", 10, Duration::from_secs(30))
            .await
            .unwrap()
        {
            queue
                .dead_letter(&got.receipt_handle, "boom")
                .await
                .unwrap();
        }
        let dead = queue.peek("notes-dlq").await.unwrap();
        assert_eq!(
            queue
                .replay("notes-dlq", &[dead[0].message_id.clone()])
                .await
                .unwrap(),
            1
        );
        let back = queue.peek("notes").await.unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(
            (back[0].receive_count, back[0].failure_reason.as_deref()),
            (0, None)
        );
        assert_eq!(queue.replay("notes-dlq", &[]).await.unwrap(), 1);
        assert_eq!(queue.purge("notes").await.unwrap(), 2);
        assert!(queue.depths().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_consumer_can_dead_letter_a_message_with_its_reason() {
        let queue = SqliteQueue::new(LocalDb::in_memory().unwrap(), 5);
        queue.send(&[message(EventFamily::Notes, 0)]).await.unwrap();
        let got = queue
            .receive("notes", 1, Duration::from_secs(30))
            .await
            .unwrap();
        assert!(
            queue
                .dead_letter(&got[0].receipt_handle, "HubSpot said 400")
                .await
                .unwrap()
        );
        assert!(queue.peek("notes").await.unwrap().is_empty());
        let dead = queue.peek("notes-dlq").await.unwrap();
        assert_eq!(dead[0].failure_reason.as_deref(), Some("HubSpot said 400"));
        assert_eq!(dead[0].source_queue.as_deref(), Some("notes"));
    }
}
