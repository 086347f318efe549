//! Forwarding a message to its dead-letter queue, with why; and holding one back (a long
//! visibility timeout) while the CRM refuses the relay's credentials.

use std::future::Future;
use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use relay_events::attribute;

use crate::RawMessage;

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("sending to the dead-letter queue failed: {0}")]
    Send(Box<dyn std::error::Error + Send + Sync>),
    #[error("holding the message failed: {0}")]
    Hold(String),
}

/// Where messages go that leave the normal retry cycle: permanently failing ones to the DLQ,
/// and ones held back while the CRM refuses the credentials.
pub trait DeadLetters: Send + Sync {
    fn forward(
        &self,
        message: &RawMessage,
        reason: &str,
    ) -> impl Future<Output = Result<(), DeadLetterError>> + Send;

    /// Keeps `message` invisible for `duration` (it is also reported as a batch failure, so
    /// it is not deleted). Queues that cannot do this say so; the message then comes back
    /// after the queue's own visibility timeout, like any retry.
    fn hold(
        &self,
        message: &RawMessage,
        duration: Duration,
    ) -> impl Future<Output = Result<(), DeadLetterError>> + Send {
        let _ = (message, duration);
        std::future::ready(Err(DeadLetterError::Hold(
            "this queue cannot hold messages".into(),
        )))
    }
}

/// The family's SQS dead-letter queue (and, for holds, its source queue).
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: aws_sdk_sqs::Client,
    dlq_url: String,
    source_queue_url: Option<String>,
}

impl SqsDeadLetters {
    pub fn new(client: aws_sdk_sqs::Client, dlq_url: impl Into<String>) -> Self {
        Self {
            client,
            dlq_url: dlq_url.into(),
            source_queue_url: None,
        }
    }

    /// The queue the messages are received from: `ChangeMessageVisibility` needs its URL.
    pub fn with_source_queue(mut self, url: impl Into<String>) -> Self {
        self.source_queue_url = Some(url.into());
        self
    }
}

/// SQS attribute values are limited; reasons are cut to a readable length.
const MAX_REASON: usize = 1000;

fn text(value: &str) -> Result<MessageAttributeValue, DeadLetterError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| DeadLetterError::Send(e.into()))
}

impl DeadLetters for SqsDeadLetters {
    async fn forward(&self, message: &RawMessage, reason: &str) -> Result<(), DeadLetterError> {
        let reason: String = reason.chars().take(MAX_REASON).collect();
        let failed_at = relay_events::clock::unix_now();
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(&message.body)
            .message_attributes(attribute::FAILURE_REASON, text(&reason)?)
            .message_attributes(attribute::FAILED_AT, text(&failed_at.to_string())?)
            .message_attributes(attribute::SOURCE_MESSAGE_ID, text(&message.message_id)?);
        for (name, value) in message.attributes.iter().filter(|(_, v)| !v.is_empty()) {
            request = request.message_attributes(name, text(value)?);
        }
        request
            .send()
            .await
            .map_err(|e| DeadLetterError::Send(e.into_service_error().into()))?;
        Ok(())
    }

    async fn hold(&self, message: &RawMessage, duration: Duration) -> Result<(), DeadLetterError> {
        let (Some(queue), Some(receipt)) = (&self.source_queue_url, &message.receipt_handle) else {
            return Err(DeadLetterError::Hold(
                "no SOURCE_QUEUE_URL or receipt handle to change the visibility with".into(),
            ));
        };
        let secs = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX);
        self.client
            .change_message_visibility()
            .queue_url(queue)
            .receipt_handle(receipt)
            .visibility_timeout(secs)
            .send()
            .await
            .map_err(|e| DeadLetterError::Hold(e.into_service_error().to_string()))?;
        Ok(())
    }
}
