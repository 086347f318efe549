//! What Lambda's SQS event source mapping does for a consumer, done by hand against moto
//! (moto has no event source mappings): receive a batch, hand it over as an [`SqsEvent`],
//! delete what the function did not report failed, and make the failures visible again.
//!
//! Hand-built events for tests that need no queue come from [`sqs_message`].

use std::collections::HashMap;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};

/// The system attribute Lambda copies into each record, and the consumers read.
pub const RECEIVE_COUNT: &str = "ApproximateReceiveCount";

/// One hand-built SQS record, as Lambda would deliver it on its `receive_count`th receive.
pub fn sqs_message(id: &str, body: impl Into<String>, receive_count: Option<u32>) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(id.to_owned());
    message.receipt_handle = Some(format!("receipt-{id}"));
    message.body = Some(body.into());
    if let Some(count) = receive_count {
        message.attributes = HashMap::from([(RECEIVE_COUNT.to_owned(), count.to_string())]);
    }
    message
}

/// Lambda's event for messages received from SQS. With `receive_count`, each record carries
/// the `ApproximateReceiveCount` SQS reported (receive with [`MessageSystemAttributeName::All`]).
pub fn sqs_event(received: &[Message], receive_count: bool) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = received
        .iter()
        .map(|m| {
            let mut message = SqsMessage::default();
            message.message_id = m.message_id.clone();
            message.receipt_handle = m.receipt_handle.clone();
            message.body = m.body.clone();
            if receive_count && let Some(count) = received_count(m) {
                message
                    .attributes
                    .insert(RECEIVE_COUNT.to_owned(), count.to_owned());
            }
            message
        })
        .collect();
    event
}

/// The `ApproximateReceiveCount` SQS gave a received message, if it was asked for.
pub fn received_count(message: &Message) -> Option<&str> {
    message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .map(String::as_str)
}

/// One queue, polled the way the event source mapping polls it.
#[derive(Debug, Clone)]
pub struct EventSource {
    pub sqs: Client,
    pub url: String,
}

impl EventSource {
    pub fn new(sqs: Client, url: impl Into<String>) -> Self {
        Self {
            sqs,
            url: url.into(),
        }
    }

    /// Receives up to `max` (1 to 10) messages with their system and message attributes.
    pub async fn receive(&self, max: i32) -> Vec<Message> {
        self.sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default()
    }

    /// Settles a batch as Lambda does after the function returned: messages in `failed`
    /// become visible again at once (a zero visibility timeout stands in for waiting it out),
    /// the rest are deleted. `failed = None` is an invocation that died: nothing is deleted.
    pub async fn settle(&self, received: &[Message], failed: Option<&[String]>) {
        for m in received {
            let id = m.message_id().unwrap_or_default();
            let receipt = m.receipt_handle().unwrap_or_default();
            if failed.is_none_or(|f| f.iter().any(|x| x == id)) {
                self.sqs
                    .change_message_visibility()
                    .queue_url(&self.url)
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .expect("release");
            } else {
                self.sqs
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }

    /// Visible plus in-flight messages.
    pub async fn depth(&self) -> usize {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .unwrap_or_default();
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .filter_map(|name| attributes.get(name)?.parse::<usize>().ok())
        .sum()
    }
}
