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
//!   otherwise write older values last. A message whose subject is held waits in the pool
//!   (its lease renewed, no extra receive counted) and joins a later batch.
//!
//! **Batches are cut by subject, from a pool** ([`Polling::pool`] messages, leases renewed).
//! Why: during an import, a record's updates are spread over the whole burst (one event per
//! changed attribute, from every row), so batches of 100 *messages* held 87 distinct records,
//! and a record's five updates landed in several batches: 55 HubSpot upserts for 1,000
//! records where 10 would do, each spending a token of the portal's 100–190 per 10 s (the
//! drain's real limit, BENCHMARKS.md "Burst"). The poller receives whatever is visible into
//! the pool and starts a batch of up to [`Polling::batch_size`] *subjects* with every pooled
//! message of each, so a record's queued updates cost one read and one upsert input however
//! many they are. Which subjects go first: any whose oldest message waited past [`OVERDUE`]
//! (no subject starves while others keep changing), then the ones quiet longest — a record
//! still changing is likely to change again, and syncing it now spends a HubSpot call that
//! its next update repeats. A batch starts as soon as a full one is free (no window wait);
//! a partial one once its oldest message waited [`Polling::window`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use relay_consumer::{DeadLetterError, DeadLetters, QueueHandler, RawMessage, settle};
use relay_events::{EventFamily, QueuedEvent, Subject};
use relay_queue::{ReceivedMessage, SqliteQueue};
use relay_sync::two_way::HubspotChange;
use tokio::task::JoinSet;
use tokio::time::Instant;

#[cfg(test)]
mod tests;

/// How often an idle poller looks for new messages.
const IDLE_POLL: Duration = Duration::from_millis(300);

/// How often a poller whose window is open looks for more (the queue's own window poll).
const WINDOW_POLL: Duration = Duration::from_millis(20);

/// A subject whose oldest message waited this long goes before the quiet ones: under a
/// sustained stream of changes to more records than a batch takes, quiet-first alone could
/// leave a busy record behind indefinitely. Well under the 2 s freshness goal at 25/s, where
/// pools are small and everything pooled goes in the next batch anyway.
const OVERDUE: Duration = Duration::from_secs(1);

/// Messages pooled per subject of a records batch: enough to hold an import's backlog across
/// receives (1,000 records × 5 updates fits in 2,000 messages at a time plus what is running).
const RECORDS_POOL_PER_SUBJECT: usize = 20;

/// How one family's poller takes and runs batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Polling {
    /// Most subjects per batch (for records, 100 fill one HubSpot batch upsert); a batch holds
    /// every pooled message of each. Lambda's `BatchSize` counts messages instead: there a
    /// batch is what one receive hands over.
    pub batch_size: usize,
    /// Most messages received and not yet in a batch (the pool); at least `batch_size`.
    pub pool: usize,
    /// How long a partial batch keeps gathering once a message is pooled (Lambda's batching
    /// window); a full one starts at once.
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
        pool: 10,
        window: Duration::ZERO,
        in_flight: 2,
        visibility: Duration::from_secs(60),
    };

    /// The records family: a batch is coalesced per record and upserted 100 to a HubSpot
    /// call, so it pays to fill it, from a pool deep enough to gather a record's updates
    /// across receives; the window is short because during a burst the pool holds 100 records
    /// in well under it, and a lone change should not wait.
    pub fn records(batch_size: usize, window: Duration, in_flight: usize) -> Self {
        let batch_size = batch_size.max(1);
        Self {
            batch_size,
            pool: batch_size * RECORDS_POOL_PER_SUBJECT,
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
        // The `hubspot` queue's events are about one HubSpot object each: two batches writing
        // the same object's changes to Attio at once could record ledgers out of order.
        return HubspotChange::parse(body)
            .map(|c| vec![format!("hubspot/{}/{}", c.object, c.object_id.0)])
            .unwrap_or_default();
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
    handler: &impl QueueHandler,
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
    let mut done = Vec::with_capacity(received.len());
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
            done.push(message.receipt_handle.clone());
        }
    }
    // One transaction for the batch's settled messages.
    queue.delete_batch(&done).await?;
    Ok(())
}

/// A received message and what it is about.
struct Held {
    message: ReceivedMessage,
    subjects: Vec<String>,
    /// When this poller received it: what the batching window counts from.
    received: Instant,
}

impl Held {
    /// What the picker groups by: its first subject, or the message itself when it names none.
    fn key(&self) -> &str {
        self.subjects
            .first()
            .map_or(self.message.message.message_id.as_str(), String::as_str)
    }
}

/// What one look at the pool came to.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// A batch was started.
    Started,
    /// Fewer free subjects than a batch takes, and the window is still open this much longer.
    Gathering(Duration),
    /// Nothing to start: the pool is empty, or every pooled message waits on a held subject.
    Idle,
}

/// One pooled subject, as the picker weighs it.
struct Candidate {
    key: String,
    /// The newest of its messages (queue send time, ms): the longer a subject has been quiet,
    /// the likelier its pending change is its last one for a while.
    newest_sent_ms: i64,
    /// When its oldest pooled message was received.
    oldest: Instant,
}

/// Picks the next batch from `pool` (module docs): at most `batch_size` subjects that no
/// running batch holds, with every pooled message of each; subjects that waited past
/// [`OVERDUE`] first, then the ones quiet longest. `None` with the step to report instead when
/// nothing is to start yet. Messages not picked stay in `pool`.
fn pick(
    pool: &mut Vec<Held>,
    busy: &HashSet<String>,
    polling: Polling,
    now: Instant,
) -> Result<Vec<Held>, Step> {
    let free = |held: &Held| !held.subjects.iter().any(|s| busy.contains(s));
    let mut candidates: HashMap<&str, Candidate> = HashMap::new();
    for held in pool.iter().filter(|h| free(h)) {
        let sent = held.message.message.sent_at_ms;
        let entry = candidates.entry(held.key()).or_insert_with(|| Candidate {
            key: held.key().to_owned(),
            newest_sent_ms: sent,
            oldest: held.received,
        });
        entry.newest_sent_ms = entry.newest_sent_ms.max(sent);
        entry.oldest = entry.oldest.min(held.received);
    }
    let Some(oldest) = candidates.values().map(|c| c.oldest).min() else {
        return Err(Step::Idle);
    };
    let waited = now.saturating_duration_since(oldest);
    if candidates.len() < polling.batch_size && waited < polling.window {
        return Err(Step::Gathering(polling.window - waited));
    }
    let mut ranked: Vec<Candidate> = candidates.into_values().collect();
    ranked.sort_by_key(|c| {
        let overdue = now.saturating_duration_since(c.oldest) >= OVERDUE;
        (!overdue, c.newest_sent_ms, c.oldest)
    });
    let chosen: HashSet<String> = ranked
        .into_iter()
        .take(polling.batch_size)
        .map(|c| c.key)
        .collect();
    let (batch, rest): (Vec<Held>, Vec<Held>) = std::mem::take(pool)
        .into_iter()
        .partition(|h| free(h) && chosen.contains(h.key()));
    *pool = rest;
    Ok(batch)
}

/// One family's poller: the batches in flight, the subjects they hold, and the pool of
/// received messages not yet in a batch.
struct Poller<H> {
    queue: SqliteQueue,
    family: EventFamily,
    handler: Arc<H>,
    polling: Polling,
    running: JoinSet<(Vec<String>, usize, anyhow::Result<()>)>,
    busy: HashSet<String>,
    pool: Vec<Held>,
    pool_renewed: Instant,
}

impl<H: QueueHandler + 'static> Poller<H> {
    fn new(queue: SqliteQueue, family: EventFamily, handler: H, polling: Polling) -> Self {
        Self {
            queue,
            family,
            handler: Arc::new(handler),
            polling,
            running: JoinSet::new(),
            busy: HashSet::new(),
            pool: Vec::new(),
            pool_renewed: Instant::now(),
        }
    }

    /// Receives whatever is visible, up to the pool's room (no window: the picker keeps it).
    async fn absorb(&mut self) -> anyhow::Result<()> {
        let room = self.polling.pool.saturating_sub(self.pool.len());
        if room == 0 {
            return Ok(());
        }
        let received = self
            .queue
            .receive_batch(
                self.family.as_str(),
                room,
                self.polling.visibility,
                Duration::ZERO,
            )
            .await?;
        let now = Instant::now();
        if self.pool.is_empty() {
            self.pool_renewed = now;
        }
        for message in received {
            let subjects = subjects(&message.message.body);
            self.pool.push(Held {
                message,
                subjects,
                received: now,
            });
        }
        Ok(())
    }

    /// Starts a batch from the pool when one is due.
    fn start_batch(&mut self) -> Step {
        let batch = match pick(&mut self.pool, &self.busy, self.polling, Instant::now()) {
            Ok(batch) => batch,
            Err(step) => return step,
        };
        let subjects: Vec<String> = batch
            .iter()
            .flat_map(|h| h.subjects.iter().cloned())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        self.busy.extend(subjects.iter().cloned());
        let received: Vec<ReceivedMessage> = batch.into_iter().map(|h| h.message).collect();
        tracing::debug!(
            queue = self.family.as_str(),
            messages = received.len(),
            subjects = subjects.len(),
            pooled = self.pool.len(),
            "batch started"
        );
        let (queue, handler, polling) =
            (self.queue.clone(), Arc::clone(&self.handler), self.polling);
        self.running.spawn(async move {
            let result = run_batch(&queue, handler.as_ref(), &received, polling).await;
            (subjects, received.len(), result)
        });
        Step::Started
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

    /// Keeps the pooled messages hidden while they wait.
    async fn renew_pool(&mut self) {
        if self.pool.is_empty() || self.pool_renewed.elapsed() < self.polling.renew_every() {
            return;
        }
        let receipts: Vec<String> = self
            .pool
            .iter()
            .map(|h| h.message.receipt_handle.clone())
            .collect();
        if let Err(err) = self
            .queue
            .extend_visibility(&receipts, self.polling.visibility)
            .await
        {
            tracing::warn!(queue = self.family.as_str(), error = %err, "could not renew pooled messages");
        }
        self.pool_renewed = Instant::now();
    }

    async fn run(mut self) {
        loop {
            while let Some(joined) = self.running.try_join_next() {
                self.finished(joined);
            }
            self.renew_pool().await;
            if let Err(err) = self.absorb().await {
                tracing::error!(queue = self.family.as_str(), error = %err, "local consumer failed; retrying");
                tokio::time::sleep(IDLE_POLL * 10).await;
                continue;
            }
            let slot_free = self.running.len() < self.polling.in_flight;
            let step = if slot_free {
                self.start_batch()
            } else {
                Step::Idle
            };
            // Until a batch ends, or the next look: soon while a window is open, at the idle
            // pace when nothing is pooled, and in time to renew what is.
            let pause = match step {
                Step::Started => continue,
                Step::Gathering(left) => left.min(WINDOW_POLL),
                Step::Idle if slot_free && self.pool.is_empty() => IDLE_POLL,
                Step::Idle => self.polling.renew_every().min(IDLE_POLL),
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
    handler: impl QueueHandler + 'static,
    polling: Polling,
) {
    Poller::new(queue, family, handler, polling).run().await;
}
