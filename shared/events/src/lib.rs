//! Attio webhook deliveries as the rest of attio-relay sees them.
//!
//! * [`delivery`] parses a raw body — Attio's `{"webhook_id", "events": [...]}` envelope or the
//!   older bare event — into typed [`Event`]s, keeping each event's exact JSON text.
//! * [`EventType`] names every event type Attio documents; anything else is
//!   [`EventType::Unknown`] and is parked, never rejected.
//! * [`EventFamily`] says which queue (and so which consumer) an event goes to.
//! * [`IdempotencyKey`] identifies one delivery across Attio's retries.
//! * [`QueuedEvent`] is the SQS message body the consumers read; [`attribute`] names the SQS
//!   message attributes set beside it.
//! * [`clock`] is the relay's one reading of wall-clock time.
//! * [`hubspot`] parses HubSpot webhook requests (the HubSpot → Attio direction).
//!
//! Events carry ids only (no values, no timestamp, no event id): consumers fetch current state.

pub mod clock;
pub mod delivery;
mod event_type;
mod family;
pub mod hubspot;
mod key;
mod message;

pub use delivery::{Actor, Delivery, Event, ParseError, RecordPointer, Subject};
pub use event_type::EventType;
pub use family::EventFamily;
pub use key::{IdempotencyKey, KeySource, MAX_HEADER_KEY_LEN};
pub use message::{MessageAttributes, QueuedEvent, attribute};
