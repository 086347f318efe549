use std::fmt;

use sha2::{Digest, Sha256};

use crate::Delivery;

/// Header keys longer than this are hashed so stored keys stay small and printable.
pub const MAX_HEADER_KEY_LEN: usize = 128;

/// Where a delivery's key came from. Only a [`KeySource::Header`] key is claimed in the
/// idempotency store: a derived key cannot tell Attio's retry from the next genuine change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeySource {
    /// Attio's `Idempotency-Key` header: the same across every retry of one message.
    Header,
    /// Derived from the events and a signed timestamp (names the delivery in logs and messages).
    DerivedSigned,
    /// Derived from the events alone: two genuine updates of the same attribute look identical.
    DerivedUnsigned,
    /// One HubSpot webhook event (see [`crate::hubspot::HubSpotEvent::dedupe_key`]): the same
    /// across HubSpot's retries of it, claimed per event.
    HubSpotEvent,
}

/// Identifies one delivery across Attio's retries; the DynamoDB partition key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    value: String,
    source: KeySource,
}

impl IdempotencyKey {
    /// The key for a delivery: the `Idempotency-Key` header when present, else derived from
    /// the delivery (webhook id, signed timestamp, and each event's type and ids). A body hash
    /// alone would be wrong: two real updates of one attribute have byte-identical bodies.
    pub fn for_delivery(
        header: Option<&str>,
        delivery: &Delivery,
        signed_timestamp: Option<i64>,
    ) -> Self {
        if let Some(header) = header.map(str::trim).filter(|h| !h.is_empty()) {
            let printable = header.bytes().all(|b| b.is_ascii_graphic());
            let value = if printable && header.len() <= MAX_HEADER_KEY_LEN {
                format!("h:{header}")
            } else {
                format!("h#{}", sha256_hex(header.as_bytes()))
            };
            return Self {
                value,
                source: KeySource::Header,
            };
        }

        let mut hasher = Sha256::new();
        hasher.update(b"attio-relay/v1\n");
        hasher.update(delivery.webhook_id.as_deref().unwrap_or("").as_bytes());
        hasher.update(b"\n");
        if let Some(ts) = signed_timestamp {
            hasher.update(ts.to_string().as_bytes());
        }
        hasher.update(b"\n");
        for event in &delivery.events {
            hasher.update(event.event_type.as_str().as_bytes());
            for (name, id) in event.identity() {
                hasher.update(b"\x1f");
                hasher.update(name.as_bytes());
                hasher.update(b"=");
                hasher.update(id.as_bytes());
            }
            hasher.update(b"\x1e");
        }
        Self {
            value: format!("d:{}", hex::encode(hasher.finalize())),
            source: if signed_timestamp.is_some() {
                KeySource::DerivedSigned
            } else {
                KeySource::DerivedUnsigned
            },
        }
    }

    /// The key of one HubSpot event, from [`crate::hubspot::HubSpotEvent::dedupe_key`].
    pub fn for_hubspot_event(event: &crate::hubspot::HubSpotEvent) -> Self {
        Self {
            value: event.dedupe_key(),
            source: KeySource::HubSpotEvent,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }

    pub fn source(&self) -> KeySource {
        self.source
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(attribute: &str) -> Delivery {
        let body = format!(
            r#"{{"webhook_id":"w1","events":[{{"event_type":"record.updated","id":{{"workspace_id":"ws","object_id":"o","record_id":"r","attribute_id":"{attribute}"}},"actor":{{"type":"system","id":null}}}}]}}"#
        );
        Delivery::parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn the_header_wins_and_is_kept_readable() {
        let key = IdempotencyKey::for_delivery(Some(" 5f2c-retry-key "), &delivery("a"), None);
        assert_eq!(key.as_str(), "h:5f2c-retry-key");
        assert_eq!(key.source(), KeySource::Header);
    }

    #[test]
    fn long_or_unprintable_header_keys_are_hashed() {
        let long = "k".repeat(MAX_HEADER_KEY_LEN + 1);
        let key = IdempotencyKey::for_delivery(Some(&long), &delivery("a"), None);
        assert!(key.as_str().starts_with("h#") && key.as_str().len() == 66);
        let key = IdempotencyKey::for_delivery(Some("a key with spaces"), &delivery("a"), None);
        assert!(key.as_str().starts_with("h#"));
    }

    #[test]
    fn derived_keys_depend_on_ids_and_timestamp() {
        let a = IdempotencyKey::for_delivery(None, &delivery("a"), None);
        assert_eq!(
            a,
            IdempotencyKey::for_delivery(Some("  "), &delivery("a"), None)
        );
        assert_eq!(a.source(), KeySource::DerivedUnsigned);
        assert_ne!(a, IdempotencyKey::for_delivery(None, &delivery("b"), None));
        let signed = IdempotencyKey::for_delivery(None, &delivery("a"), Some(1_763_000_000));
        assert_eq!(signed.source(), KeySource::DerivedSigned);
        assert_ne!(a.as_str(), signed.as_str());
        assert_ne!(
            signed,
            IdempotencyKey::for_delivery(None, &delivery("a"), Some(1_763_000_001))
        );
    }
}
