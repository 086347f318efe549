use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{Delivery, Event, EventFamily, EventType, IdempotencyKey, ParseError};

/// The body of one queue message: one Attio event plus where it came from.
///
/// `event` is Attio's JSON verbatim, so consumers see exactly what was signed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueuedEvent {
    /// Format version of this envelope, bumped on incompatible change.
    pub version: u32,
    pub idempotency_key: String,
    pub webhook_id: Option<String>,
    /// Position of the event in its delivery; with the key it names the message uniquely.
    pub event_index: usize,
    /// When ingest accepted the delivery (unix seconds).
    pub received_at: i64,
    pub event_type: EventType,
    pub family: EventFamily,
    pub event: Box<RawValue>,
}

/// Names of the SQS message attributes, in one place: ingest sets the first three on every
/// message, consumers add the dead-letter ones when they give up on a message, and the CLI
/// filters and shows by them.
pub mod attribute {
    pub const EVENT_TYPE: &str = "event_type";
    pub const WORKSPACE_ID: &str = "workspace_id";
    pub const IDEMPOTENCY_KEY: &str = "idempotency_key";
    /// Why a consumer dead-lettered the message (absent when SQS redrove it after
    /// `maxReceiveCount`).
    pub const FAILURE_REASON: &str = "failure_reason";
    /// When the consumer dead-lettered it (unix seconds).
    pub const FAILED_AT: &str = "failed_at";
    /// The message id it had on the source queue.
    pub const SOURCE_MESSAGE_ID: &str = "source_message_id";
}

/// Attributes sent alongside the body so operators can filter without parsing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAttributes {
    pub event_type: String,
    pub workspace_id: String,
    pub idempotency_key: String,
}

impl MessageAttributes {
    /// The attributes as (SQS attribute name, value) pairs, in one order everywhere.
    pub fn pairs(&self) -> [(&'static str, &str); 3] {
        [
            (attribute::EVENT_TYPE, &self.event_type),
            (attribute::IDEMPOTENCY_KEY, &self.idempotency_key),
            (attribute::WORKSPACE_ID, &self.workspace_id),
        ]
    }
}

impl QueuedEvent {
    pub const VERSION: u32 = 1;

    pub fn new(
        key: &IdempotencyKey,
        webhook_id: Option<&str>,
        event_index: usize,
        received_at: i64,
        event: &Event,
    ) -> Self {
        Self {
            version: Self::VERSION,
            idempotency_key: key.as_str().to_owned(),
            webhook_id: webhook_id.map(str::to_owned),
            event_index,
            received_at,
            event_type: event.event_type.clone(),
            family: event.family(),
            event: event.raw().to_owned(),
        }
    }

    /// The message ingest queues for the first event of `body` (a delivery or a bare event)
    /// when the request carried `Idempotency-Key: header_key`: for tools and tests that feed a
    /// consumer without going through ingest.
    pub fn first_of(body: &[u8], header_key: &str, received_at: i64) -> Result<Self, ParseError> {
        let delivery = Delivery::parse(body)?;
        let key = IdempotencyKey::for_delivery(Some(header_key), &delivery, None);
        let event = delivery.events.first().ok_or(ParseError::NoEvents)?;
        Ok(Self::new(
            &key,
            delivery.webhook_id.as_deref(),
            0,
            received_at,
            event,
        ))
    }

    /// The JSON text sent as the message body.
    pub fn to_body(&self) -> String {
        // Serialising owned strings, numbers and an already-valid RawValue cannot fail.
        serde_json::to_string(self).unwrap_or_else(|e| unreachable!("QueuedEvent serialises: {e}"))
    }

    pub fn from_body(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }

    /// The queued event, typed again: exactly the event ingest routed (see [`Event::from_raw`]).
    pub fn parse_event(&self) -> Result<Event, crate::ParseError> {
        Event::from_raw(&self.event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Delivery;

    #[test]
    fn the_body_round_trips_and_keeps_the_event_verbatim() {
        let raw = r#"{"event_type":"task.created","id":{"workspace_id":"ws","task_id":"t"},"actor":{"type":"api-token","id":"k"}}"#;
        let queued = QueuedEvent::first_of(raw.as_bytes(), "k1", 1_763_000_000).unwrap();
        let back = QueuedEvent::from_body(&queued.to_body()).unwrap();
        assert_eq!(back.event.get(), raw);
        assert_eq!(back.family, EventFamily::Tasks);
        assert_eq!(back.event_type, EventType::TaskCreated);
        assert_eq!(back.idempotency_key, "h:k1");
    }

    /// Regressions from `fuzz/regressions/parse_delivery/`: keys that look like an envelope
    /// inside an event are data, so the consumer reads back the event ingest routed.
    #[test]
    fn a_queued_event_reads_back_as_the_event_ingest_routed() {
        for body in [
            include_str!("../../../fuzz/regressions/parse_delivery/reparse-nested-events.json"),
            include_str!(
                "../../../fuzz/regressions/parse_delivery/reparse-webhook-id-not-a-string.json"
            ),
            r#"{"events":[{"event_type":"task.created","id":{"workspace_id":"w","task_id":"t"},"events":[]}]}"#,
            r#"{"events":[{"event_type":"task.created","id":{"workspace_id":"w","task_id":"t"},"events":1}]}"#,
        ] {
            let delivery = Delivery::parse(body.trim().as_bytes()).unwrap();
            let event = &delivery.events[0];
            let key = IdempotencyKey::for_delivery(Some("k"), &delivery, None);
            let queued =
                QueuedEvent::from_body(&QueuedEvent::new(&key, None, 0, 0, event).to_body())
                    .unwrap();
            let back = queued.parse_event().unwrap();
            assert_eq!(back.subject, event.subject, "{body}");
            assert_eq!(back.event_type, event.event_type);
            assert_eq!(back.workspace_id, event.workspace_id);
            assert_eq!(back.raw().get(), event.raw().get());
        }
    }
}
