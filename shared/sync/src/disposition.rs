use std::fmt;
use std::future::Future;

use relay_events::QueuedEvent;

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

/// One message of a batch, decoded.
#[derive(Debug, Clone)]
pub struct InboundEvent {
    pub message_id: String,
    pub event: QueuedEvent,
}

/// A family's sync logic, over a whole batch so it can coalesce events.
pub trait BatchHandler: Send + Sync {
    /// Returns one outcome per message id it was given.
    fn handle(&self, events: &[InboundEvent]) -> impl Future<Output = Vec<MessageOutcome>> + Send;
}
