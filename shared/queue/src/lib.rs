//! Queues Attio events, one message per event, on the queue of the event's family.
//!
//! [`EventQueue::send`] succeeds only when *every* message was accepted. A partial failure is
//! retried here a few times and otherwise reported as an error, so ingest releases the
//! delivery's key and answers 5xx: Attio's retry then re-sends the whole delivery. Messages that
//! were accepted before the failure are sent again on that retry — delivery is at-least-once
//! and consumers are idempotent — but nothing is ever marked done without being queued.
//!
//! Adapters: [`SqsQueue`] in Lambda; `SqliteQueue` (feature `sqlite`) for local runs, with the
//! same visibility timeout, receive count and dead-letter queue semantics as SQS.

use std::collections::BTreeMap;
use std::future::Future;

use relay_events::{EventFamily, MessageAttributes, QueuedEvent};

mod sqs;
pub use sqs::{MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, MAX_MESSAGE_BYTES, SqsQueue};
#[cfg(any(test, feature = "sqlite"))]
mod sqlite;
#[cfg(any(test, feature = "sqlite"))]
pub use sqlite::{LocalMessage, ReceivedMessage, SqliteQueue, dlq_name};

/// One message ready to send.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    pub family: EventFamily,
    /// Unique within one [`EventQueue::send`] call (SQS batch entry id).
    pub entry_id: String,
    pub body: String,
    pub attributes: MessageAttributes,
}

impl OutgoingMessage {
    pub fn new(event: &QueuedEvent, workspace_id: &str) -> Self {
        Self {
            family: event.family,
            entry_id: format!("event-{}", event.event_index),
            body: event.to_body(),
            attributes: MessageAttributes {
                event_type: event.event_type.as_str().to_owned(),
                workspace_id: workspace_id.to_owned(),
                idempotency_key: event.idempotency_key.clone(),
            },
        }
    }
}

/// One entry the queue refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedEntry {
    pub entry_id: String,
    pub code: String,
    pub message: String,
    /// The sender's fault (bad input): retrying the same message will not help.
    pub sender_fault: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("no queue is configured for {0} events")]
    NoQueue(EventFamily),
    #[error("message {entry_id} is {bytes} bytes, over the {limit} byte queue limit")]
    TooLarge {
        entry_id: String,
        bytes: usize,
        limit: usize,
    },
    #[error("sending to the {family} queue failed: {source}")]
    Unavailable {
        family: EventFamily,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the {family} queue refused {} message(s): {}", rejected.len(), summary(rejected))]
    Rejected {
        family: EventFamily,
        rejected: Vec<RejectedEntry>,
    },
}

fn summary(rejected: &[RejectedEntry]) -> String {
    rejected
        .iter()
        .map(|r| format!("{} ({}: {})", r.entry_id, r.code, r.message))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The port ingest sends through; adapters: [`SqsQueue`] and the SQLite queue in
/// `relay-embedded`.
pub trait EventQueue: Send + Sync {
    /// Sends every message, or fails. See the crate docs for what a failure means.
    fn send(
        &self,
        messages: &[OutgoingMessage],
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// Queue address per family (SQS URLs, or names locally).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueUrls(BTreeMap<EventFamily, String>);

impl QueueUrls {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, family: EventFamily, url: impl Into<String>) -> Self {
        self.0.insert(family, url.into());
        self
    }

    pub fn get(&self, family: EventFamily) -> Option<&str> {
        self.0.get(&family).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (EventFamily, &str)> {
        self.0.iter().map(|(family, url)| (*family, url.as_str()))
    }

    /// The environment variable that names each family's queue URL.
    pub fn env_var(family: EventFamily) -> &'static str {
        match family {
            EventFamily::Records => "RECORDS_QUEUE_URL",
            EventFamily::ListEntries => "LIST_ENTRIES_QUEUE_URL",
            EventFamily::Notes => "NOTES_QUEUE_URL",
            EventFamily::Tasks => "TASKS_QUEUE_URL",
            EventFamily::Other => "OTHER_QUEUE_URL",
            EventFamily::Hubspot => "HUBSPOT_QUEUE_URL",
        }
    }

    /// Reads every family's URL through `lookup` (the environment, in functions); all five are
    /// required so no event type can arrive with nowhere to go.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut urls = Self::new();
        let mut missing = Vec::new();
        for family in EventFamily::ALL {
            match lookup(Self::env_var(family)).filter(|v| !v.trim().is_empty()) {
                Some(url) => urls = urls.with(family, url.trim()),
                None => missing.push(Self::env_var(family)),
            }
        }
        if missing.is_empty() {
            Ok(urls)
        } else {
            Err(format!("set {} to the SQS queue URLs", missing.join(", ")))
        }
    }
}

/// Groups messages by family, keeping their order within a family.
pub fn by_family(messages: &[OutgoingMessage]) -> BTreeMap<EventFamily, Vec<&OutgoingMessage>> {
    let mut groups: BTreeMap<EventFamily, Vec<&OutgoingMessage>> = BTreeMap::new();
    for message in messages {
        groups.entry(message.family).or_default().push(message);
    }
    groups
}
