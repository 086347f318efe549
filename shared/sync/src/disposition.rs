use std::fmt;
use std::future::Future;

use relay_events::{Event, EventType, ParseError, QueuedEvent};

/// How one queue message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Handled; delete the message.
    Done,
    /// A transient failure; leave the message for SQS to redeliver.
    Retry { reason: String },
    /// Retrying cannot succeed; move the message to the DLQ now, with this reason.
    DeadLetter { reason: String },
}

impl Disposition {
    pub fn retry(reason: impl fmt::Display) -> Self {
        Self::Retry {
            reason: reason.to_string(),
        }
    }

    pub fn dead_letter(reason: impl fmt::Display) -> Self {
        Self::DeadLetter {
            reason: reason.to_string(),
        }
    }

    /// What the CRM refusing one record of a batch means for its message.
    pub fn for_refused(failure: &relay_crm::ItemFailure) -> Self {
        let reason = format!(
            "CRM refused record {}: {}",
            failure.attio_record_id, failure.message
        );
        if failure.permanent {
            Self::dead_letter(reason)
        } else {
            Self::retry(reason)
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Retry { .. } => "retry",
            Self::DeadLetter { .. } => "dead_letter",
        }
    }

    /// The worse of two outcomes, for a message whose work was split (dead letter > retry > done).
    pub fn worst(self, other: Self) -> Self {
        match (&self, &other) {
            (Self::DeadLetter { .. }, _) => self,
            (_, Self::DeadLetter { .. }) => other,
            (Self::Retry { .. }, _) => self,
            (_, Self::Retry { .. }) => other,
            _ => Self::Done,
        }
    }
}

/// The disposition of one message of a batch, by the id the queue gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageOutcome {
    pub message_id: String,
    pub disposition: Disposition,
}

/// One message of a batch, parsed once (by `relay_consumer::settle`): handlers read the typed
/// event and never parse the body again.
#[derive(Debug, Clone)]
pub struct InboundEvent {
    pub message_id: String,
    /// The envelope as queued: idempotency key, family, the event's JSON verbatim.
    pub queued: QueuedEvent,
    /// The event, typed.
    pub event: Event,
}

impl InboundEvent {
    /// Types the queued event; a body that does not parse is the caller's to dead-letter.
    pub fn from_queued(message_id: String, queued: QueuedEvent) -> Result<Self, ParseError> {
        let event = queued.parse_event()?;
        Ok(Self {
            message_id,
            queued,
            event,
        })
    }
}

/// A family's sync logic, over a whole batch so it can coalesce events.
pub trait BatchHandler: Send + Sync {
    /// Returns one outcome per message id it was given.
    fn handle(&self, events: &[InboundEvent]) -> impl Future<Output = Vec<MessageOutcome>> + Send;

    /// Why a message of type `event_type` that this handler cannot read is dead-lettered: its
    /// event does not parse, or does not name what this family syncs. One text per handler,
    /// whichever of the two it was, so operators see one reason for one problem.
    fn unreadable(&self, event_type: &EventType) -> String {
        format!("{event_type} does not carry the id this consumer needs")
    }
}
