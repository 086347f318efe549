use std::fmt;
use std::future::Future;

use relay_events::{Event, EventType, ParseError, QueuedEvent};

use crate::two_way::{HubspotHandler, HubspotMessage};

use crate::Budget;

/// How one queue message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Handled; delete the message.
    Done,
    /// A transient failure; leave the message for SQS to redeliver.
    Retry { reason: String },
    /// Retrying cannot succeed; move the message to the DLQ now, with this reason.
    DeadLetter { reason: String },
    /// The CRM refused the relay's credentials (401/403: bad or expired token, missing scope).
    /// Nothing succeeds until an operator fixes them, and the message itself is fine: keep it,
    /// out of sight for a long, growing while (the consumer's hold), so neither the DLQ fills
    /// at once nor the receives burn in minutes.
    Hold { reason: String },
    /// Not started: the invocation's deadline was too near to begin this message's group
    /// ([`Budget`]). Nothing was attempted, so it goes back to the queue at once, costing only
    /// the receive it was delivered with.
    Deferred,
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

    pub fn hold(reason: impl fmt::Display) -> Self {
        Self::Hold {
            reason: reason.to_string(),
        }
    }

    /// The disposition for a failure of class `class`.
    pub fn for_class(class: relay_crm::ErrorClass, reason: impl fmt::Display) -> Self {
        match class {
            relay_crm::ErrorClass::Transient => Self::retry(reason),
            relay_crm::ErrorClass::Permanent => Self::dead_letter(reason),
            relay_crm::ErrorClass::Auth => Self::hold(format!(
                "{reason} (fix the HubSpot token or grant the missing scope; held messages then sync on their next receive)"
            )),
        }
    }

    /// What the CRM refusing one record of a batch means for its message.
    pub fn for_refused(failure: &relay_crm::ItemFailure) -> Self {
        let category = failure
            .category
            .as_deref()
            .map(|c| format!("{c}: "))
            .unwrap_or_default();
        let reason = format!(
            "CRM refused record {}: {category}{}",
            failure.attio_record_id, failure.message
        );
        Self::for_class(failure.class, reason)
    }

    pub fn label(&self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Retry { .. } => "retry",
            Self::DeadLetter { .. } => "dead_letter",
            Self::Hold { .. } => "hold",
            Self::Deferred => "deferred",
        }
    }

    /// The worse of two outcomes, for a message whose work was split
    /// (dead letter > hold > retry > deferred > done).
    pub fn worst(self, other: Self) -> Self {
        match (&self, &other) {
            (Self::DeadLetter { .. }, _) => self,
            (_, Self::DeadLetter { .. }) => other,
            (Self::Hold { .. }, _) => self,
            (_, Self::Hold { .. }) => other,
            (Self::Retry { .. }, _) => self,
            (_, Self::Retry { .. }) => other,
            (Self::Deferred, _) | (_, Self::Deferred) => Self::Deferred,
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

    /// [`Self::handle`] under a deadline: groups are started only while `budget` allows
    /// ([`Budget::may_start`]); the messages of groups left unstarted end
    /// [`Disposition::Deferred`]. Handlers that do their work in groups override this (and
    /// make `handle` call it with [`Budget::unlimited`]); the default ignores the budget.
    fn handle_within(
        &self,
        events: &[InboundEvent],
        budget: &Budget,
    ) -> impl Future<Output = Vec<MessageOutcome>> + Send {
        let _ = budget;
        self.handle(events)
    }

    /// Why a message of type `event_type` that this handler cannot read is dead-lettered: its
    /// event does not parse, or does not name what this family syncs. One text per handler,
    /// whichever of the two it was, so operators see one reason for one problem.
    fn unreadable(&self, event_type: &EventType) -> String {
        format!("{event_type} does not carry the id this consumer needs")
    }
}

/// A queue's consumer, whatever its messages are: what the one SQS partial-batch runner
/// (`relay_consumer::settle`, the Lambda loop and `attio-relay dev`'s pollers) drives. Why one
/// trait over two kinds of message: the `hubspot` queue's consumer must get exactly what the
/// Attio consumers get — a body parsed once, unreadable ones dead-lettered with a reason,
/// the deadline ([`Budget`]), holds, deferrals and settlement — without a second runner to
/// keep in step. Every [`BatchHandler`] is one (its messages are queued Attio events, typed as
/// [`InboundEvent`]); [`HubspotHandler`] is one over [`HubspotMessage`]s.
pub trait QueueHandler: Send + Sync {
    /// A message as the handler reads it.
    type Message: Send + Sync;

    /// Reads one message's body; `Err` is why the message is dead-lettered (retrying cannot
    /// make a body readable).
    fn parse_message(&self, message_id: &str, body: &str) -> Result<Self::Message, String>;

    /// Handles a batch under `budget` ([`BatchHandler::handle_within`]): one outcome per
    /// message; messages of groups left unstarted end [`Disposition::Deferred`].
    fn handle_messages(
        &self,
        messages: &[Self::Message],
        budget: &Budget,
    ) -> impl Future<Output = Vec<MessageOutcome>> + Send;
}

impl<H: BatchHandler> QueueHandler for H {
    type Message = InboundEvent;

    /// An envelope that parses around an event that does not is the handler's kind of
    /// unreadable message, with the handler's reason ([`BatchHandler::unreadable`]).
    fn parse_message(&self, message_id: &str, body: &str) -> Result<InboundEvent, String> {
        let queued = QueuedEvent::from_body(body)
            .map_err(|err| format!("message body is not a queued Attio event: {err}"))?;
        let event_type = queued.event_type.clone();
        InboundEvent::from_queued(message_id.to_owned(), queued).map_err(|err| {
            tracing::warn!(message_id, error = %err, "queued event does not parse");
            self.unreadable(&event_type)
        })
    }

    fn handle_messages(
        &self,
        messages: &[InboundEvent],
        budget: &Budget,
    ) -> impl Future<Output = Vec<MessageOutcome>> + Send {
        self.handle_within(messages, budget)
    }
}

impl<S, M, A> QueueHandler for HubspotHandler<S, M, A>
where
    S: relay_crm::CrmSink,
    M: relay_mappings::IdMappings,
    A: relay_attio::AttioApi + relay_attio::AttioWriter,
{
    type Message = HubspotMessage;

    /// Only the envelope is checked here (`{"source":"hubspot","event":{"subscriptionType":…}}`,
    /// as the HubSpot ingest queues it): a body that is not one is dead-lettered with why. An
    /// event of a kind that is not synced back is the handler's to acknowledge.
    fn parse_message(&self, message_id: &str, body: &str) -> Result<HubspotMessage, String> {
        HubspotMessage::check(message_id, body)
    }

    fn handle_messages(
        &self,
        messages: &[HubspotMessage],
        budget: &Budget,
    ) -> impl Future<Output = Vec<MessageOutcome>> + Send {
        self.handle_within(messages, budget)
    }
}
