//! The queue admin on SQS, with the queues named as the SAM template names them:
//! `<prefix>-<family>` and `<prefix>-<family>-dlq`.
//!
//! Replay is receive → send to the source queue → record in the [journal](super::journal) →
//! delete, one batch of 10 at a time. Stopping anywhere loses nothing: a message is deleted
//! from the DLQ only after the source queue accepted it, and the journal makes the next run
//! finish an interrupted batch without sending it twice. (A run killed while a send is in
//! flight cannot know whether SQS accepted it; such a message may be sent again — consumers
//! are idempotent.) `--native` instead asks SQS to move the messages (StartMessageMoveTask),
//! which emulators lack.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_config::SdkConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use indicatif::{ProgressBar, ProgressStyle};
use relay_events::{EventFamily, attribute};
use serde::Serialize;

use super::journal::Journal;
use super::{Depth, Purged, QueueMessage, QueuePair, ReplayRequest, Selector, age_secs, now_ms};

/// Message attributes a consumer adds when it dead-letters a message; a replayed copy drops
/// them so it does not look failed already.
const FAILURE_ATTRIBUTES: [&str; 3] = [
    attribute::FAILURE_REASON,
    attribute::FAILED_AT,
    attribute::SOURCE_MESSAGE_ID,
];

/// Seconds each replay or peek receive waits for messages. Long polling asks every SQS
/// server; a short poll (no wait) samples a subset and can answer empty while messages remain
/// — which ended replays early:
/// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/best-practices-setting-up-long-polling.html>.
/// The minimum (1 s) already makes it a long poll; only the last receive of a run waits it out.
const LONG_POLL_SECS: i32 = 1;

/// The messages a replay leaves in the DLQ and holds until it ends, so it does not receive
/// them over and over: those the filters leave out and those the source queue refused.
#[derive(Debug, Default)]
struct Held {
    ids: HashSet<String>,
    receipts: Vec<String>,
    refused: HashSet<String>,
}

impl Held {
    /// Holds `message` (its newest receipt too); `true` the first time its id is held.
    fn hold(&mut self, message: &Message) -> bool {
        self.receipts
            .extend(message.receipt_handle().map(str::to_owned));
        self.ids
            .insert(message.message_id().unwrap_or_default().to_owned())
    }

    fn refuse(&mut self, message: &Message) {
        self.refused
            .insert(message.message_id().unwrap_or_default().to_owned());
    }

    /// Whether this run holds `message` already.
    fn has(&self, message: &Message) -> bool {
        message.message_id().is_some_and(|id| self.ids.contains(id))
    }

    /// Whether the source queue refused `message` in this run: it is not tried again.
    fn refused(&self, message: &Message) -> bool {
        message
            .message_id()
            .is_some_and(|id| self.refused.contains(id))
    }
}

/// What a DeleteMessageBatch did: the ids SQS confirmed deleted, and whether all were.
struct Deleted {
    ids: Vec<String>,
    result: anyhow::Result<()>,
}

/// The index of a batch entry from the id it was given (`r3` → 3).
fn entry_index(id: &str, prefix: char) -> Option<usize> {
    id.strip_prefix(prefix).and_then(|i| i.parse().ok())
}

#[derive(Debug, Clone)]
pub struct SqsAdmin {
    sqs: Client,
    /// Shared, not inline: the config is large and the admin is passed around by value.
    config: Arc<SdkConfig>,
    prefix: String,
}

/// What an SQS replay did; the JSON shape `dlq replay --json` prints.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JournalledReplay {
    pub replayed: usize,
    /// Sent by an earlier, interrupted run; only deleted now.
    pub resumed: usize,
    /// Received but not matching the filters; left in the DLQ.
    pub skipped: usize,
    /// Refused by the source queue (SendMessageBatch's `Failed` entries); left in the DLQ for
    /// the next run.
    pub refused: usize,
    /// SQS's reason for the first refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Sent by this or an earlier run but not yet seen deleted from the DLQ (a filtered run
    /// leaves an interrupted run's other messages); the journal keeps them so they are never
    /// sent again.
    #[serde(skip_serializing_if = "is_zero")]
    pub journal_outstanding: usize,
    pub native_task: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl fmt::Display for JournalledReplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(task) = &self.native_task {
            return write!(f, "SQS move task started ({task})");
        }
        write!(
            f,
            "replayed {} message(s); {} finished from an interrupted run; {} left (not matching)",
            self.replayed, self.resumed, self.skipped
        )?;
        if self.refused > 0 {
            write!(
                f,
                "; {} refused by the source queue and left in the DLQ ({})",
                self.refused,
                self.refusal.as_deref().unwrap_or("no reason given")
            )?;
        }
        if self.journal_outstanding > 0 {
            write!(
                f,
                "; {} sent earlier still in the DLQ (journalled: never sent again)",
                self.journal_outstanding
            )?;
        }
        Ok(())
    }
}

fn message_attribute(message: &Message, name: &str) -> Option<String> {
    message
        .message_attributes()
        .and_then(|a| a.get(name))
        .and_then(|v| v.string_value())
        .map(str::to_owned)
}

fn shown(queue: &str, message: &Message, with_body: bool) -> QueueMessage {
    let system =
        |name: MessageSystemAttributeName| message.attributes().and_then(|a| a.get(&name)).cloned();
    QueueMessage {
        queue: queue.to_owned(),
        message_id: message.message_id().unwrap_or_default().to_owned(),
        event_type: message_attribute(message, attribute::EVENT_TYPE),
        idempotency_key: message_attribute(message, attribute::IDEMPOTENCY_KEY),
        receive_count: system(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|c| c.parse().ok()),
        failure_reason: message_attribute(message, attribute::FAILURE_REASON),
        sent_at: system(MessageSystemAttributeName::SentTimestamp),
        body: with_body.then(|| message.body().unwrap_or_default().to_owned()),
    }
}

fn selected(selector: &Selector, message: &Message) -> bool {
    selector.matches(
        message.message_id(),
        message_attribute(message, attribute::EVENT_TYPE).as_deref(),
    )
}

fn string_attribute(
    value: String,
) -> Result<MessageAttributeValue, aws_sdk_sqs::error::BuildError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
}

impl SqsAdmin {
    /// Clients from the AWS environment, at `endpoint_url` when given (an emulator).
    pub async fn connect(endpoint_url: Option<&str>, prefix: String) -> Self {
        let mut loader = aws_config::from_env();
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let config = loader.load().await;
        Self {
            sqs: Client::new(&config),
            config: Arc::new(config),
            prefix,
        }
    }

    /// The AWS configuration, for the stage's other resources (its idempotency table).
    pub fn config(&self) -> &SdkConfig {
        &self.config
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(super) fn pair(&self, family: EventFamily) -> QueuePair {
        QueuePair {
            family,
            source: format!("{}-{family}", self.prefix),
            dlq: format!("{}-{family}-dlq", self.prefix),
        }
    }

    async fn url(&self, name: &str) -> anyhow::Result<String> {
        self.sqs
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "queue {name} not found ({}): check --stage/--queue-prefix, the region, and your AWS credentials",
                    e.into_service_error()
                )
            })?
            .queue_url
            .context("SQS returned no queue URL")
    }

    /// (visible, in flight) message counts.
    async fn counts(&self, url: &str) -> anyhow::Result<(u64, u64)> {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("reading {url}: {}", e.into_service_error()))?;
        let attrs = out.attributes.unwrap_or_default();
        let read =
            |name: QueueAttributeName| attrs.get(&name).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok((
            read(QueueAttributeName::ApproximateNumberOfMessages),
            read(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        ))
    }

    /// Messages in `name`, visible and in flight (SQS's approximate counts).
    pub(super) async fn total(&self, name: &str) -> anyhow::Result<u64> {
        let (visible, in_flight) = self.counts(&self.url(name).await?).await?;
        Ok(visible + in_flight)
    }

    pub(super) async fn depth(&self, name: &str) -> anyhow::Result<Depth> {
        let url = self.url(name).await?;
        let (visible, in_flight) = self.counts(&url).await?;
        // SQS has no "oldest message" attribute; sample without hiding (visibility 0). A
        // failed sample only loses the age, not the depth.
        let sample = self
            .sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .ok()
            .and_then(|o| o.messages)
            .unwrap_or_default();
        let oldest = sample
            .iter()
            .filter_map(|m| {
                m.attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
            })
            .filter_map(|t| t.parse::<i64>().ok())
            .min();
        let now = now_ms();
        Ok(Depth {
            queue: name.to_owned(),
            visible,
            in_flight,
            oldest_age_secs: oldest.map(|sent| age_secs(now, sent)),
        })
    }

    /// Up to 10 messages, hidden for `visibility` seconds; waits up to `wait` seconds for
    /// some (0: a short poll).
    async fn receive(&self, url: &str, visibility: i32, wait: i32) -> anyhow::Result<Vec<Message>> {
        Ok(self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(visibility)
            .wait_time_seconds(wait)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("receiving from {url}: {}", e.into_service_error()))?
            .messages
            .unwrap_or_default())
    }

    /// Makes received messages visible again at once (best effort: the visibility timeout
    /// does it anyway).
    async fn release(&self, url: &str, receipts: Vec<String>) {
        for receipt in receipts {
            let _ = self
                .sqs
                .change_message_visibility()
                .queue_url(url)
                .receipt_handle(receipt)
                .visibility_timeout(0)
                .send()
                .await;
        }
    }

    /// Reads up to `max` messages without consuming them: each is received, then made visible
    /// again at once.
    pub(super) async fn peek(
        &self,
        queue: &str,
        max: usize,
        with_body: bool,
    ) -> anyhow::Result<Vec<QueueMessage>> {
        self.scan(queue, max, with_body, None).await
    }

    /// The message `message_id`, whole, if it is among the first `limit` read: a search of a
    /// large DLQ stops there (or as soon as it is found) instead of holding every message.
    pub(super) async fn find(
        &self,
        queue: &str,
        message_id: &str,
        limit: usize,
    ) -> anyhow::Result<Option<QueueMessage>> {
        Ok(self
            .scan(queue, limit, true, Some(message_id))
            .await?
            .into_iter()
            .next())
    }

    /// Reads up to `limit` distinct messages, keeping them all or only `wanted` (and stopping
    /// once it is found), then makes every one visible again.
    async fn scan(
        &self,
        queue: &str,
        limit: usize,
        with_body: bool,
        wanted: Option<&str>,
    ) -> anyhow::Result<Vec<QueueMessage>> {
        let url = self.url(queue).await?;
        let mut seen = HashSet::new();
        let mut messages = Vec::new();
        let mut receipts = Vec::new();
        let mut found = false;
        while seen.len() < limit && !found {
            let batch = self.receive(&url, 30, LONG_POLL_SECS).await?;
            if batch.is_empty() {
                break;
            }
            // Every receipt is kept, even past the limit: all of them are released below.
            for message in batch {
                receipts.extend(message.receipt_handle().map(str::to_owned));
                let id = message.message_id().unwrap_or_default();
                if found || seen.len() >= limit || !seen.insert(id.to_owned()) {
                    continue;
                }
                if wanted.is_none_or(|w| w == id) {
                    messages.push(shown(queue, &message, with_body));
                    found = wanted.is_some();
                }
            }
        }
        self.release(&url, receipts).await;
        Ok(messages)
    }

    pub(super) async fn purge(&self, queue: &str) -> anyhow::Result<Purged> {
        let url = self.url(queue).await?;
        let (visible, _) = self.counts(&url).await?;
        self.sqs
            .purge_queue()
            .queue_url(&url)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("purging {queue}: {}", e.into_service_error()))?;
        Ok(Purged {
            count: visible,
            approximate: true,
        })
    }

    pub(super) async fn replay(
        &self,
        pair: &QueuePair,
        request: &ReplayRequest<'_>,
    ) -> anyhow::Result<JournalledReplay> {
        let dlq = self.url(&pair.dlq).await?;
        let source = self.url(&pair.source).await?;
        if request.native {
            return self.native_move(&dlq, &source).await;
        }
        let journal = Journal::open(request.journal_dir, &pair.dlq)?;
        self.journalled_replay(&dlq, &source, request, journal)
            .await
    }

    async fn journalled_replay(
        &self,
        dlq: &str,
        source: &str,
        request: &ReplayRequest<'_>,
        mut journal: Journal,
    ) -> anyhow::Result<JournalledReplay> {
        let visibility = request.visibility_timeout;
        let (visible, _) = self.counts(dlq).await?;
        let progress = if request.progress {
            ProgressBar::new(visible)
        } else {
            ProgressBar::hidden()
        };
        progress.set_style(
            ProgressStyle::with_template(
                "{spinner} replaying [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let mut summary = JournalledReplay::default();
        // Messages this run leaves in the DLQ (not matching, or refused by the source queue):
        // held until the end, then made visible again.
        let mut held = Held::default();
        let mut idle_rounds = 0;
        let drained = loop {
            let batch = self.receive(dlq, visibility, LONG_POLL_SECS).await?;
            // Held messages come back once their visibility timeout lapses; a receive of
            // nothing else is as good as an empty one.
            if batch.iter().all(|m| held.has(m)) {
                for m in &batch {
                    held.hold(m);
                }
                // An empty receive is not proof of an empty queue: ask SQS how many remain.
                // Messages an interrupted run was holding come back after its visibility
                // timeout.
                let (visible, in_flight) = self.counts(dlq).await?;
                let remaining = (visible + in_flight).saturating_sub(held.ids.len() as u64);
                if remaining == 0 {
                    break visible + in_flight == 0;
                }
                // Half-second polls for up to the visibility timeout plus a margin.
                if idle_rounds > (visibility.max(1) + 5) * 2 {
                    progress.suspend(|| {
                        eprintln!(
                            "{remaining} message(s) still in the DLQ (held by another reader?); run the replay again after its visibility timeout"
                        );
                    });
                    break false;
                }
                idle_rounds += 1;
                progress.set_message(format!("waiting for {remaining} message(s)"));
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            idle_rounds = 0;
            let (chosen, skipped): (Vec<Message>, Vec<Message>) = batch
                .into_iter()
                .partition(|m| selected(&request.selector, m) && !held.refused(m));
            for m in skipped {
                if held.hold(&m) && !held.refused(&m) {
                    summary.skipped += 1;
                }
            }
            if chosen.is_empty() {
                continue;
            }
            let (resumed, to_send): (Vec<&Message>, Vec<&Message>) = chosen
                .iter()
                .partition(|m| m.message_id().is_some_and(|id| journal.contains(id)));
            let mut to_delete = resumed.clone();
            if !to_send.is_empty() {
                // Journals what the source queue accepted as it answers, even when a later
                // attempt fails: those must never be sent again.
                let refused = self.send_all(source, &to_send, &mut journal).await?;
                for (m, reason) in refused {
                    held.hold(m);
                    held.refuse(m);
                    summary.refused += 1;
                    summary.refusal.get_or_insert(reason);
                }
                let accepted: Vec<&Message> = to_send
                    .into_iter()
                    .filter(|m| m.message_id().is_some_and(|id| journal.contains(id)))
                    .collect();
                summary.replayed += accepted.len();
                to_delete.extend(accepted);
            }
            let deleted = self.delete_replayed(dlq, &to_delete).await;
            journal.record_deleted(&deleted.ids)?;
            deleted.result?;
            summary.resumed += resumed.len();
            progress.inc(chosen.len() as u64);
        };
        self.release(dlq, held.receipts).await;
        progress.finish_and_clear();
        if drained && held.ids.is_empty() {
            // The whole DLQ is gone: no journalled message can come back.
            journal.forget_all()?;
        } else {
            summary.journal_outstanding = journal.outstanding();
            journal.compact()?;
        }
        Ok(summary)
    }

    /// Deletes sent and journalled messages from the DLQ, answering the ids SQS confirmed
    /// deleted even when it failed some (the journal keeps the others, and the next run
    /// deletes them without resending).
    async fn delete_replayed(&self, dlq: &str, messages: &[&Message]) -> Deleted {
        if messages.is_empty() {
            return Deleted {
                ids: Vec::new(),
                result: Ok(()),
            };
        }
        let entries: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
                    .ok()
            })
            .collect();
        let out = match self
            .sqs
            .delete_message_batch()
            .queue_url(dlq)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return Deleted {
                    ids: Vec::new(),
                    result: Err(anyhow::anyhow!(
                        "deleting replayed messages ({}); they are journalled: run the replay again to finish",
                        e.into_service_error()
                    )),
                };
            }
        };
        let ids = out
            .successful
            .iter()
            .filter_map(|s| entry_index(&s.id, 'm'))
            .filter_map(|i| messages.get(i))
            .filter_map(|m| m.message_id().map(str::to_owned))
            .collect();
        let result = if out.failed.is_empty() {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "{} replayed message(s) could not be deleted from the DLQ; they are journalled: run the replay again to finish",
                out.failed.len()
            ))
        };
        Deleted { ids, result }
    }

    /// Sends copies to the source queue (body and attributes unchanged but for the failure
    /// ones, plus where they came from), retrying entries SQS failed on its side.
    ///
    /// SendMessageBatch answers per entry (`Successful`, and `Failed` with `SenderFault`):
    /// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html>.
    /// Every accepted entry is journalled as soon as its answer arrives, so neither a refused
    /// neighbour nor a later failed attempt can make the next run send it again. Answers the
    /// messages still refused (with SQS's reason): the sender's fault at once, SQS's after
    /// three attempts.
    async fn send_all<'m>(
        &self,
        source: &str,
        messages: &[&'m Message],
        journal: &mut Journal,
    ) -> anyhow::Result<Vec<(&'m Message, String)>> {
        let replayed_at = (now_ms() / 1000).to_string();
        let mut pending: Vec<&Message> = messages.to_vec();
        let mut refused = Vec::new();
        for attempt in 1u64..=3 {
            let entries = pending
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let mut entry = SendMessageBatchRequestEntry::builder()
                        .id(format!("r{i}"))
                        .message_body(m.body().unwrap_or_default());
                    for (name, value) in m.message_attributes().into_iter().flatten() {
                        if !FAILURE_ATTRIBUTES.contains(&name.as_str()) {
                            entry = entry.message_attributes(name.clone(), value.clone());
                        }
                    }
                    entry
                        .message_attributes(
                            "replayed_from",
                            string_attribute(m.message_id().unwrap_or_default().to_owned())?,
                        )
                        .message_attributes("replayed_at", string_attribute(replayed_at.clone())?)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .sqs
                .send_message_batch()
                .queue_url(source)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("sending to {source}: {}", e.into_service_error()))?;
            let accepted: Vec<String> = out
                .successful
                .iter()
                .filter_map(|s| entry_index(&s.id, 'r'))
                .filter_map(|i| pending.get(i))
                .filter_map(|m| m.message_id().map(str::to_owned))
                .collect();
            journal.record_sent(&accepted)?;
            let mut retry = Vec::new();
            for failure in &out.failed {
                let Some(m) = entry_index(&failure.id, 'r').and_then(|i| pending.get(i)) else {
                    continue;
                };
                let reason = format!(
                    "{}: {}",
                    failure.code,
                    failure.message.as_deref().unwrap_or("no message")
                );
                if failure.sender_fault || attempt == 3 {
                    refused.push((*m, reason));
                } else {
                    retry.push(*m);
                }
            }
            if retry.is_empty() {
                break;
            }
            pending = retry;
            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
        }
        Ok(refused)
    }

    async fn native_move(&self, dlq: &str, source: &str) -> anyhow::Result<JournalledReplay> {
        let (dlq_arn, source_arn) = (self.arn(dlq).await?, self.arn(source).await?);
        let task = self
            .sqs
            .start_message_move_task()
            .source_arn(&dlq_arn)
            .destination_arn(&source_arn)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "StartMessageMoveTask failed ({}); emulators do not support it: replay without --native",
                    e.into_service_error()
                )
            })?;
        Ok(JournalledReplay {
            native_task: task.task_handle,
            ..JournalledReplay::default()
        })
    }

    async fn arn(&self, url: &str) -> anyhow::Result<String> {
        self.sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .ok()
            .and_then(|o| o.attributes)
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .with_context(|| format!("cannot read the ARN of {url}"))
    }
}
