//! The consumers, run in-process by `attio-relay dev` against the embedded queue: the same
//! batch logic as the Lambda functions (`relay_consumer::settle`), with the local queue's
//! receive, delete, visibility and dead-letter operations standing in for SQS's.
//!
//! Each family's poller keeps up to [`Polling::in_flight`] batches running at once, so while
//! one batch waits on HubSpot the next is received and already reading Attio: one batch at a
//! time would never overlap the two APIs' waits. What stays as in Lambda:
//! * every message is settled once, by the batch that holds it (done and deleted, retried with
//!   a back-off, or dead-lettered), and a batch renews its messages' lease while it runs, so a
//!   slow batch is never received a second time by the other slot; if the process dies, the
//!   lease lapses and the messages come back, as after a Lambda timeout;
//! * two batches in flight never share a subject (a record, a list entry's parent, a note, a
//!   task): handlers re-read current state, and a batch that read before another wrote could
//!   otherwise write older values last. A message whose subject is held waits in the poller
//!   (its lease renewed, no extra receive counted) and joins the next batch.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use relay_consumer::{BatchHandler, DeadLetterError, DeadLetters, RawMessage, settle};
use relay_events::{EventFamily, QueuedEvent, Subject};
use relay_queue::{ReceivedMessage, SqliteQueue};
use tokio::task::JoinSet;
use tokio::time::Instant;

#[cfg(test)]
mod tests;

/// How often an idle poller looks for new messages.
const IDLE_POLL: Duration = Duration::from_millis(300);

/// How one family's poller takes and runs batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Polling {
    /// Most messages per batch (Lambda's `BatchSize`).
    pub batch_size: usize,
    /// How long a batch keeps gathering once a message is visible (Lambda's batching window).
    pub window: Duration,
    /// Batches running at once.
    pub in_flight: usize,
    /// How long a received message stays hidden unless its batch renews it (the SQS
    /// visibility timeout); batches renew at a third of it.
    pub visibility: Duration,
}

impl Polling {
    /// The other families: a note or task is one create each, a list entry one upsert, so
    /// bigger batches buy nothing; 10, as SQS hands Lambda without a window.
    pub const SMALL: Self = Self {
        batch_size: 10,
        window: Duration::ZERO,
        in_flight: 2,
        visibility: Duration::from_secs(60),
    };

    /// The records family: a batch is coalesced per record and upserted 100 to a HubSpot
    /// call, so it pays to fill it; the window is short because the dev server's ingest fills
    /// 100 in well under it during a burst, and a lone change should not wait.
    pub fn records(batch_size: usize, window: Duration, in_flight: usize) -> Self {
        Self {
            batch_size: batch_size.max(1),
            window,
            in_flight: in_flight.max(1),
            ..Self::SMALL
        }
    }

    fn renew_every(&self) -> Duration {
        (self.visibility / 3).max(Duration::from_millis(10))
    }
}

/// Dead letters move to `<queue>-dlq` by receipt handle.
struct LocalDeadLetters<'a> {
    queue: &'a SqliteQueue,
    received: &'a [ReceivedMessage],
}

impl DeadLetters for LocalDeadLetters<'_> {
    async fn forward(&self, message: &RawMessage, reason: &str) -> Result<(), DeadLetterError> {
        let receipt = self
            .received
            .iter()
            .find(|r| r.message.message_id == message.message_id)
            .map(|r| r.receipt_handle.clone())
            .ok_or_else(|| {
                DeadLetterError::Send("message is no longer held by this batch".into())
            })?;
        match self.queue.dead_letter(&receipt, reason).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(DeadLetterError::Send("receipt expired".into())),
            Err(e) => Err(DeadLetterError::Send(e.into())),
        }
    }
}

/// What a message is about, for keeping two batches in flight off the same subject; none for
/// events no handler syncs per subject (attribute events) or that do not parse (dead-lettered
/// by whichever batch gets them).
fn subjects(body: &str) -> Vec<String> {
    let Some(event) = QueuedEvent::from_body(body)
        .ok()
        .and_then(|q| q.parse_event().ok())
    else {
        return Vec::new();
    };
    let record = |object: &str, record: &str| format!("record/{object}/{record}");
    match event.subject {
        Subject::Record {
            object_id,
            record_id,
            ..
        } => vec![record(&object_id, &record_id)],
        Subject::MergedRecord {
            object_id,
            record_id,
            duplicate,
        } => vec![
            record(&object_id, &record_id),
            record(&duplicate.object_id, &duplicate.record_id),
        ],
        Subject::ListEntry {
            parent: Some(parent),
            ..
        } => vec![record(&parent.object_id, &parent.record_id)],
        Subject::Note { note_id, .. } => vec![format!("note/{note_id}")],
        Subject::Task { task_id } => vec![format!("task/{task_id}")],
        _ => Vec::new(),
    }
}

/// Settles one received batch and acknowledges each message: deleted when done (or already
/// moved to the DLQ), made visible again after a back-off when it is to be retried. The
/// batch's lease is renewed while the handler runs.
async fn run_batch(
    queue: &SqliteQueue,
    handler: &impl BatchHandler,
    received: &[ReceivedMessage],
    polling: Polling,
) -> anyhow::Result<()> {
    let raw: Vec<RawMessage> = received
        .iter()
        .map(|r| RawMessage {
            message_id: r.message.message_id.clone(),
            body: r.message.body.clone(),
            attributes: r
                .message
                .attributes
                .pairs()
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
            receive_count: r.message.receive_count,
            receipt_handle: None,
        })
        .collect();
    let receipts: Vec<String> = received.iter().map(|r| r.receipt_handle.clone()).collect();
    let dead_letters = LocalDeadLetters { queue, received };
    let settling = settle(raw, handler, &dead_letters);
    tokio::pin!(settling);
    let mut renew = tokio::time::interval_at(
        Instant::now() + polling.renew_every(),
        polling.renew_every(),
    );
    let retry = loop {
        tokio::select! {
            retry = &mut settling => break retry,
            _ = renew.tick() => {
                if let Err(err) = queue.extend_visibility(&receipts, polling.visibility).await {
                    tracing::warn!(error = %err, "could not renew a local batch's lease");
                }
            }
        }
    };
    for message in received {
        if retry.contains(&message.message.message_id) {
            // Back off like a redelivery would: longer after every receive.
            let delay =
                Duration::from_secs(2u64.saturating_pow(message.message.receive_count.min(6)));
            queue
                .change_visibility(&message.receipt_handle, delay)
                .await?;
        } else {
            // Done, or already moved to the DLQ (then the receipt is gone and this is a no-op).
            queue.delete(&message.receipt_handle).await?;
        }
    }
    Ok(())
}

/// A received message and what it is about.
struct Held {
    message: ReceivedMessage,
    subjects: Vec<String>,
}

/// One family's poller: the batches in flight, the subjects they hold, and the messages
/// waiting for a held subject to be released.
struct Poller<H> {
    queue: SqliteQueue,
    family: EventFamily,
    handler: Arc<H>,
    polling: Polling,
    running: JoinSet<(Vec<String>, usize, anyhow::Result<()>)>,
    busy: HashSet<String>,
    waiting: Vec<Held>,
    waiting_renewed: Instant,
}

impl<H: BatchHandler + 'static> Poller<H> {
    fn new(queue: SqliteQueue, family: EventFamily, handler: H, polling: Polling) -> Self {
        Self {
            queue,
            family,
            handler: Arc::new(handler),
            polling,
            running: JoinSet::new(),
            busy: HashSet::new(),
            waiting: Vec::new(),
            waiting_renewed: Instant::now(),
        }
    }

    /// Starts a batch when a slot is free: waiting messages whose subjects were released
    /// first, then newly received ones. Returns whether it started one.
    async fn start_batch(&mut self) -> anyhow::Result<bool> {
        let size = self.polling.batch_size;
        let mut batch: Vec<Held> = Vec::new();
        let waiting = std::mem::take(&mut self.waiting);
        for held in waiting {
            if batch.len() < size && !held.subjects.iter().any(|s| self.busy.contains(s)) {
                batch.push(held);
            } else {
                self.waiting.push(held);
            }
        }
        // Receive only while the waiting list is short, so it stays bounded.
        if batch.len() < size && self.waiting.len() < size {
            let received = self
                .queue
                .receive_batch(
                    self.family.as_str(),
                    size - batch.len(),
                    self.polling.visibility,
                    self.polling.window,
                )
                .await?;
            for message in received {
                let subjects = subjects(&message.message.body);
                let held = Held { message, subjects };
                if held.subjects.iter().any(|s| self.busy.contains(s)) {
                    if self.waiting.is_empty() {
                        self.waiting_renewed = Instant::now();
                    }
                    self.waiting.push(held);
                } else {
                    batch.push(held);
                }
            }
        }
        if batch.is_empty() {
            return Ok(false);
        }
        let subjects: Vec<String> = batch.iter().flat_map(|h| h.subjects.clone()).collect();
        self.busy.extend(subjects.iter().cloned());
        let received: Vec<ReceivedMessage> = batch.into_iter().map(|h| h.message).collect();
        let (queue, handler, polling) =
            (self.queue.clone(), Arc::clone(&self.handler), self.polling);
        self.running.spawn(async move {
            let result = run_batch(&queue, handler.as_ref(), &received, polling).await;
            (subjects, received.len(), result)
        });
        Ok(true)
    }

    /// Releases a finished batch's subjects.
    fn finished(
        &mut self,
        joined: Result<(Vec<String>, usize, anyhow::Result<()>), tokio::task::JoinError>,
    ) {
        let queue = self.family.as_str();
        match joined {
            Ok((subjects, n, result)) => {
                for subject in &subjects {
                    self.busy.remove(subject);
                }
                match result {
                    Ok(()) => tracing::debug!(queue, messages = n, "batch settled"),
                    Err(err) => {
                        tracing::error!(queue, error = %err, "local consumer failed; its messages come back after their lease")
                    }
                }
            }
            // A panicking handler: its subjects stay held until the process restarts, and its
            // messages come back once their lease lapses (as after a crashed invocation).
            Err(err) => tracing::error!(queue, error = %err, "local batch panicked"),
        }
    }

    /// Keeps the waiting messages hidden while they wait for their subjects.
    async fn renew_waiting(&mut self) {
        if self.waiting.is_empty() || self.waiting_renewed.elapsed() < self.polling.renew_every() {
            return;
        }
        let receipts: Vec<String> = self
            .waiting
            .iter()
            .map(|h| h.message.receipt_handle.clone())
            .collect();
        if let Err(err) = self
            .queue
            .extend_visibility(&receipts, self.polling.visibility)
            .await
        {
            tracing::warn!(queue = self.family.as_str(), error = %err, "could not renew waiting messages");
        }
        self.waiting_renewed = Instant::now();
    }

    async fn run(mut self) {
        loop {
            while let Some(joined) = self.running.try_join_next() {
                self.finished(joined);
            }
            self.renew_waiting().await;
            let started = if self.running.len() < self.polling.in_flight {
                match self.start_batch().await {
                    Ok(started) => started,
                    Err(err) => {
                        tracing::error!(queue = self.family.as_str(), error = %err, "local consumer failed; retrying");
                        tokio::time::sleep(IDLE_POLL * 10).await;
                        false
                    }
                }
            } else {
                false
            };
            if started {
                continue;
            }
            // Full, idle, or everything received waits on a held subject: until a batch ends
            // or the next look.
            let pause = if self.running.len() < self.polling.in_flight && self.waiting.is_empty() {
                IDLE_POLL
            } else {
                self.polling.renew_every().min(IDLE_POLL)
            };
            if self.running.is_empty() {
                tokio::time::sleep(pause).await;
            } else {
                tokio::select! {
                    Some(joined) = self.running.join_next() => self.finished(joined),
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// Polls one family's queue until the process stops.
pub async fn poll_forever(
    queue: SqliteQueue,
    family: EventFamily,
    handler: impl BatchHandler + 'static,
    polling: Polling,
) {
    Poller::new(queue, family, handler, polling).run().await;
}
