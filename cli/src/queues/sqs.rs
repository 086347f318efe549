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

use anyhow::{Context, bail};
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
    pub native_task: Option<String>,
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
        )
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

    async fn receive(&self, url: &str, visibility: i32) -> anyhow::Result<Vec<Message>> {
        Ok(self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(visibility)
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
        let url = self.url(queue).await?;
        let mut seen = HashSet::new();
        let mut messages = Vec::new();
        let mut receipts = Vec::new();
        while messages.len() < max {
            let batch = self.receive(&url, 30).await?;
            if batch.is_empty() {
                break;
            }
            for message in batch {
                receipts.extend(message.receipt_handle().map(str::to_owned));
                if seen.insert(message.message_id().unwrap_or_default().to_owned())
                    && messages.len() < max
                {
                    messages.push(shown(queue, &message, with_body));
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
        let mut skipped_receipts: Vec<String> = Vec::new();
        let mut skipped_ids: HashSet<String> = HashSet::new();
        let mut idle_rounds = 0;
        loop {
            let batch = self.receive(dlq, visibility).await?;
            if batch.is_empty() {
                // Messages an interrupted run was holding come back after the visibility timeout.
                let (_, in_flight) = self.counts(dlq).await?;
                let others = in_flight.saturating_sub(skipped_ids.len() as u64);
                // Half-second polls for up to the visibility timeout plus a margin.
                if others == 0 || idle_rounds > (visibility.max(1) + 5) * 2 {
                    if others > 0 {
                        progress.suspend(|| {
                            eprintln!(
                                "{others} message(s) are still held by another reader; run the replay again after its visibility timeout"
                            );
                        });
                    }
                    break;
                }
                idle_rounds += 1;
                progress.set_message(format!("waiting for {others} in-flight message(s)"));
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            idle_rounds = 0;
            let (chosen, skipped): (Vec<Message>, Vec<Message>) = batch
                .into_iter()
                .partition(|m| selected(&request.selector, m));
            for m in skipped {
                if skipped_ids.insert(m.message_id().unwrap_or_default().to_owned()) {
                    summary.skipped += 1;
                }
                skipped_receipts.extend(m.receipt_handle().map(str::to_owned));
            }
            if chosen.is_empty() {
                continue;
            }
            let (resumed, to_send): (Vec<&Message>, Vec<&Message>) = chosen
                .iter()
                .partition(|m| m.message_id().is_some_and(|id| journal.contains(id)));
            if !to_send.is_empty() {
                self.send_all(source, &to_send).await?;
                let ids: Vec<String> = to_send
                    .iter()
                    .filter_map(|m| m.message_id().map(str::to_owned))
                    .collect();
                journal.record(&ids)?;
            }
            self.delete_replayed(dlq, &chosen).await?;
            summary.resumed += resumed.len();
            summary.replayed += to_send.len();
            progress.inc(chosen.len() as u64);
        }
        self.release(dlq, skipped_receipts).await;
        progress.finish_and_clear();
        journal.clear()?;
        Ok(summary)
    }

    /// Deletes a sent and journalled batch from the DLQ. On failure the journal keeps it, and
    /// the next run deletes it without resending.
    async fn delete_replayed(&self, dlq: &str, messages: &[Message]) -> anyhow::Result<()> {
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
        let deleted = self
            .sqs
            .delete_message_batch()
            .queue_url(dlq)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "deleting replayed messages ({}); they are journalled: run the replay again to finish",
                    e.into_service_error()
                )
            })?;
        if !deleted.failed.is_empty() {
            bail!(
                "{} replayed message(s) could not be deleted from the DLQ; run the replay again to finish",
                deleted.failed.len()
            );
        }
        Ok(())
    }

    /// Sends copies to the source queue (body and attributes unchanged but for the failure
    /// ones, plus where they came from), retrying entries SQS failed on its side.
    async fn send_all(&self, source: &str, messages: &[&Message]) -> anyhow::Result<()> {
        let replayed_at = (now_ms() / 1000).to_string();
        let mut pending: Vec<&Message> = messages.to_vec();
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
            if out.failed.is_empty() {
                return Ok(());
            }
            let failed: HashSet<usize> = out
                .failed
                .iter()
                .filter_map(|f| f.id.strip_prefix('r').and_then(|i| i.parse().ok()))
                .collect();
            if attempt == 3 || out.failed.iter().any(|f| f.sender_fault) {
                bail!(
                    "SQS refused {} replayed message(s): {}",
                    failed.len(),
                    out.failed[0].message.clone().unwrap_or_default()
                );
            }
            pending = pending
                .into_iter()
                .enumerate()
                .filter(|(i, _)| failed.contains(i))
                .map(|(_, m)| m)
                .collect();
            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
        }
        Ok(())
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
