//! Forwarding a message to its dead-letter queue, with why.

use std::future::Future;

use aws_sdk_sqs::types::MessageAttributeValue;
use relay_events::attribute;

use crate::RawMessage;

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("sending to the dead-letter queue failed: {0}")]
    Send(Box<dyn std::error::Error + Send + Sync>),
}

/// Where permanently failing messages go.
pub trait DeadLetters: Send + Sync {
    fn forward(
        &self,
        message: &RawMessage,
        reason: &str,
    ) -> impl Future<Output = Result<(), DeadLetterError>> + Send;
}

/// The family's SQS dead-letter queue.
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: aws_sdk_sqs::Client,
    dlq_url: String,
}

impl SqsDeadLetters {
    pub fn new(client: aws_sdk_sqs::Client, dlq_url: impl Into<String>) -> Self {
        Self {
            client,
            dlq_url: dlq_url.into(),
        }
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
}
