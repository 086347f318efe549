//! The SQS adapter: `SendMessageBatch`, at most 10 entries and 1 MiB per call, with the
//! failed entries of a partial failure retried before giving up.

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};

use crate::{EventQueue, OutgoingMessage, QueueError, QueueUrls, RejectedEntry, by_family};
use relay_events::EventFamily;

/// SQS allows at most 10 entries per batch.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// SQS's limit for one message and for a whole batch (body plus attributes).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
pub const MAX_BATCH_BYTES: usize = MAX_MESSAGE_BYTES;

/// Attempts per batch at re-sending entries SQS failed on its side.
const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// [`EventQueue`] on SQS queues, one per family.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    urls: QueueUrls,
}

impl SqsQueue {
    pub fn new(client: Client, urls: QueueUrls) -> Self {
        Self { client, urls }
    }

    pub fn urls(&self) -> &QueueUrls {
        &self.urls
    }

    /// Sends one batch, re-sending only the entries SQS failed on its side.
    async fn send_batch(
        &self,
        family: EventFamily,
        url: &str,
        batch: &[&OutgoingMessage],
    ) -> Result<(), QueueError> {
        let mut pending: Vec<&OutgoingMessage> = batch.to_vec();
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            let entries = pending
                .iter()
                .map(|m| entry(m))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| QueueError::Unavailable {
                    family,
                    source: e.into(),
                })?;
            let output = self
                .client
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| QueueError::Unavailable {
                    family,
                    source: e.into_service_error().into(),
                })?;
            let rejected: Vec<RejectedEntry> = output
                .failed
                .into_iter()
                .map(|f| RejectedEntry {
                    entry_id: f.id,
                    code: f.code,
                    message: f.message.unwrap_or_default(),
                    sender_fault: f.sender_fault,
                })
                .collect();
            if rejected.is_empty() {
                return Ok(());
            }
            let permanent = rejected.iter().any(|r| r.sender_fault);
            tracing::warn!(
                queue = family.as_str(),
                attempt,
                failed = rejected.len(),
                permanent,
                "SQS refused part of a batch"
            );
            if permanent || attempt == ATTEMPTS {
                return Err(QueueError::Rejected { family, rejected });
            }
            pending.retain(|m| rejected.iter().any(|r| r.entry_id == m.entry_id));
            tokio::time::sleep(backoff).await;
            backoff *= 4;
        }
        Ok(())
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, aws_sdk_sqs::error::BuildError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
}

fn entry(
    message: &OutgoingMessage,
) -> Result<SendMessageBatchRequestEntry, aws_sdk_sqs::error::BuildError> {
    let mut builder = SendMessageBatchRequestEntry::builder()
        .id(&message.entry_id)
        .message_body(&message.body);
    // SQS refuses empty attribute values; the workspace id is always present on parsed events.
    for (name, value) in message.attributes.pairs() {
        if !value.is_empty() {
            builder = builder.message_attributes(name, string_attribute(value)?);
        }
    }
    builder.build()
}

/// Approximate size SQS counts for a message: body plus attribute names, types and values.
pub(crate) fn message_bytes(message: &OutgoingMessage) -> usize {
    message.body.len()
        + message
            .attributes
            .pairs()
            .iter()
            .map(|(name, value)| name.len() + "String".len() + value.len())
            .sum::<usize>()
}

/// Splits one family's messages into batches within SQS's count and size limits.
pub(crate) fn batches<'a>(
    messages: &[&'a OutgoingMessage],
) -> Result<Vec<Vec<&'a OutgoingMessage>>, QueueError> {
    let mut batches: Vec<Vec<&OutgoingMessage>> = Vec::new();
    let mut current: Vec<&OutgoingMessage> = Vec::new();
    let mut current_bytes = 0;
    for message in messages {
        let bytes = message_bytes(message);
        if bytes > MAX_MESSAGE_BYTES {
            return Err(QueueError::TooLarge {
                entry_id: message.entry_id.clone(),
                bytes,
                limit: MAX_MESSAGE_BYTES,
            });
        }
        if current.len() == MAX_BATCH_ENTRIES || current_bytes + bytes > MAX_BATCH_BYTES {
            batches.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current.push(message);
        current_bytes += bytes;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    Ok(batches)
}

impl EventQueue for SqsQueue {
    async fn send(&self, messages: &[OutgoingMessage]) -> Result<(), QueueError> {
        for (family, group) in by_family(messages) {
            let url = self.urls.get(family).ok_or(QueueError::NoQueue(family))?;
            for batch in batches(&group)? {
                self.send_batch(family, url, &batch).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_events::MessageAttributes;

    fn message(index: usize, body_len: usize) -> OutgoingMessage {
        OutgoingMessage {
            family: EventFamily::Records,
            entry_id: format!("event-{index}"),
            body: "x".repeat(body_len),
            attributes: MessageAttributes {
                event_type: "record.updated".into(),
                workspace_id: "ws".into(),
                idempotency_key: "h:k".into(),
            },
        }
    }

    #[test]
    fn batches_respect_the_entry_count_and_the_byte_limit() {
        let small: Vec<_> = (0..23).map(|i| message(i, 10)).collect();
        let refs: Vec<_> = small.iter().collect();
        let sizes: Vec<_> = batches(&refs).unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![10, 10, 3]);

        let big: Vec<_> = (0..3).map(|i| message(i, 400 * 1024)).collect();
        let refs: Vec<_> = big.iter().collect();
        let sizes: Vec<_> = batches(&refs).unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![2, 1]);
    }

    #[test]
    fn a_message_over_the_limit_is_refused_before_sending() {
        let huge = message(0, MAX_MESSAGE_BYTES);
        let err = batches(&[&huge]).unwrap_err();
        assert!(matches!(err, QueueError::TooLarge { .. }), "{err}");
    }
}
