//! The part every consumer function shares: an SQS batch in, a partial batch response out.
//!
//! Each body is parsed here, once, into the typed [`InboundEvent`] handlers read. Messages
//! whose body is not a [`QueuedEvent`] (or whose event does not parse) never reach the handler;
//! they, and every message the handler marks [`Disposition::DeadLetter`], are sent to the
//! dead-letter queue at once with a `failure_reason` attribute (so operators see why), then
//! deleted from the source queue. [`Disposition::Retry`] messages are reported in `batchItemFailures`, so only they are
//! redelivered; SQS moves them to the DLQ after `maxReceiveCount`. If forwarding a dead letter
//! fails, the message is retried instead: nothing is dropped.

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use relay_events::QueuedEvent;
pub use relay_sync::{BatchHandler, InboundEvent};
use relay_sync::{Disposition, MessageOutcome};

mod dead_letters;
pub mod lambda;
mod settings;
pub use dead_letters::{DeadLetterError, DeadLetters, SqsDeadLetters};
pub use settings::{ConsumerSettings, SettingsError, TokenSource};

/// A raw message as received, kept for forwarding to the DLQ unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    pub message_id: String,
    pub body: String,
    pub attributes: BTreeMap<String, String>,
    pub receive_count: u32,
}

impl RawMessage {
    pub fn from_sqs(message: &SqsMessage) -> Self {
        Self {
            message_id: message.message_id.clone().unwrap_or_default(),
            body: message.body.clone().unwrap_or_default(),
            attributes: message
                .message_attributes
                .iter()
                .filter_map(|(k, v)| v.string_value.clone().map(|s| (k.clone(), s)))
                .collect(),
            receive_count: message
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1),
        }
    }
}

/// Parses a message body once, into the typed event handlers read; `Err` is why it is
/// dead-lettered. An envelope that parses around an event that does not is the handler's kind
/// of unreadable message, with the handler's reason.
fn parse(message: &RawMessage, handler: &impl BatchHandler) -> Result<InboundEvent, String> {
    let queued = QueuedEvent::from_body(&message.body)
        .map_err(|err| format!("message body is not a queued Attio event: {err}"))?;
    let event_type = queued.event_type.clone();
    InboundEvent::from_queued(message.message_id.clone(), queued).map_err(|err| {
        tracing::warn!(message_id = %message.message_id, error = %err, "queued event does not parse");
        handler.unreadable(&event_type)
    })
}

/// Runs `handler` over raw messages and settles every message: returns the ids to retry.
pub async fn settle(
    messages: Vec<RawMessage>,
    handler: &impl BatchHandler,
    dead_letters: &impl DeadLetters,
) -> Vec<String> {
    let mut inbound = Vec::with_capacity(messages.len());
    let mut outcomes = Vec::with_capacity(messages.len());
    for message in &messages {
        let id = &message.message_id;
        match parse(message, handler) {
            Ok(event) => inbound.push(event),
            Err(reason) => outcomes.push(MessageOutcome {
                message_id: id.clone(),
                disposition: Disposition::DeadLetter { reason },
            }),
        }
    }
    outcomes.extend(handler.handle(&inbound).await);

    let mut retry = Vec::new();
    for message in &messages {
        let disposition = outcomes
            .iter()
            .filter(|o| o.message_id == message.message_id)
            .map(|o| o.disposition.clone())
            .reduce(Disposition::worst)
            // A handler that forgot a message must not lose it.
            .unwrap_or_else(|| Disposition::retry("handler returned no outcome for this message"));
        match disposition {
            Disposition::Done => {}
            Disposition::Retry { reason } => {
                tracing::warn!(message_id = %message.message_id, receive_count = message.receive_count, reason, "message will be retried");
                retry.push(message.message_id.clone());
            }
            Disposition::DeadLetter { reason } => {
                tracing::error!(message_id = %message.message_id, reason, "message sent to the dead-letter queue");
                if let Err(err) = dead_letters.forward(message, &reason).await {
                    tracing::error!(message_id = %message.message_id, error = %err, "could not forward to the DLQ; retrying instead");
                    retry.push(message.message_id.clone());
                }
            }
        }
    }
    retry
}

/// The Lambda entry: an SQS event in, `batchItemFailures` out.
pub async fn handle_sqs_event(
    event: SqsEvent,
    handler: &impl BatchHandler,
    dead_letters: &impl DeadLetters,
) -> SqsBatchResponse {
    let messages = event.records.iter().map(RawMessage::from_sqs).collect();
    let mut response = SqsBatchResponse::default();
    for id in settle(messages, handler, dead_letters).await {
        response.add_failure(id);
    }
    response
}
