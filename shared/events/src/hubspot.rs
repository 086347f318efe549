//! HubSpot webhook requests: a JSON array of up to 100 events, each as HubSpot documents it
//! (<https://developers.hubspot.com/docs/api/webhooks>, "Webhook payloads"): `eventId`,
//! `subscriptionId`, `portalId`, `appId`, `occurredAt` (ms), `subscriptionType` (for example
//! `contact.propertyChange`, `contact.creation`, `contact.deletion`, `contact.merge`,
//! `contact.associationChange`), `attemptNumber`, `objectId`, `propertyName`, `propertyValue`,
//! `changeSource`, `sourceId`, and per type more (`mergedObjectIds`, `fromObjectId`, ...).
//!
//! Only what the relay routes and deduplicates by is read into fields; each event's exact JSON
//! text is kept and queued as received, so nothing HubSpot adds later is lost and the future
//! consumer reads every field (echo suppression needs `changeSource` and `sourceId`).

use serde::Deserialize;
use serde_json::value::RawValue;

/// Why a (verified) HubSpot request was refused: a 400, nothing queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubSpotParseError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is not a JSON array of HubSpot events")]
    NotAnArray,
    #[error("the request has no events")]
    Empty,
}

impl HubSpotParseError {
    /// A stable, machine-readable code for responses and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "invalid_json",
            Self::NotAnArray => "not_an_event_array",
            Self::Empty => "no_events",
        }
    }
}

/// The fields the relay reads; the rest stays in [`HubSpotEvent::raw`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fields {
    event_id: u64,
    subscription_type: String,
    portal_id: u64,
    occurred_at: i64,
    #[serde(default)]
    subscription_id: Option<u64>,
    #[serde(default)]
    object_id: Option<u64>,
    #[serde(default)]
    attempt_number: Option<u32>,
}

/// One HubSpot webhook event.
#[derive(Debug, Clone)]
pub struct HubSpotEvent {
    pub event_id: u64,
    pub subscription_type: String,
    pub portal_id: u64,
    /// Milliseconds since the epoch, as HubSpot sends it.
    pub occurred_at: i64,
    pub subscription_id: Option<u64>,
    pub object_id: Option<u64>,
    pub attempt_number: Option<u32>,
    /// Why the event does not read, when it does not (its fields are then zero): it is queued
    /// as received all the same, for an operator to look at.
    pub unreadable: Option<String>,
    /// The event's JSON exactly as received.
    pub raw: Box<RawValue>,
}

impl HubSpotEvent {
    /// The idempotency key of this event: the same on every retry of it, different for any
    /// other change.
    ///
    /// Why more than `eventId`: HubSpot's docs describe `eventId` as the id of the event that
    /// triggered the notification and do not promise it unique across subscriptions or
    /// portals, and a swallowed genuine change is lost for good, while a repeat only costs
    /// the consumer a re-read. So the key is every field HubSpot repeats unchanged on a retry
    /// — portal, subscription, event id, occurrence time, object — and never `attemptNumber`,
    /// which grows on each retry.
    pub fn dedupe_key(&self) -> String {
        if self.unreadable.is_some() {
            // No fields to trust: the text itself (a retry that only bumps `attemptNumber` is
            // queued again, which costs a look, never a loss).
            use sha2::Digest;
            let digest = sha2::Sha256::digest(self.raw.get().as_bytes());
            return format!("hs:unreadable:{}", hex::encode(digest));
        }
        let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        format!(
            "hs:{}:{}:{}:{}:{}",
            self.portal_id,
            opt(self.subscription_id),
            self.event_id,
            self.occurred_at,
            opt(self.object_id)
        )
    }

    /// The queue message body: the event as received plus where and when it was taken in.
    pub fn to_body(&self, dedupe_key: &str, received_at: i64) -> String {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            source: &'static str,
            dedupe_key: &'a str,
            received_at: i64,
            event: &'a RawValue,
        }
        serde_json::to_string(&Body {
            source: "hubspot",
            dedupe_key,
            received_at,
            event: &self.raw,
        })
        .unwrap_or_else(|_| self.raw.get().to_owned())
    }
}

/// Parses a HubSpot webhook body. Only the body as a whole can be refused (not JSON, not an
/// array, empty): an event that lacks the fields the relay routes and deduplicates by is kept
/// with [`HubSpotEvent::unreadable`] set. The request is signed, so it is authentic, and
/// HubSpot does not retry a 4xx (<https://developers.hubspot.com/docs/api/webhooks#retries>):
/// refusing the request for one odd event would lose the other 99.
pub fn parse_events(body: &[u8]) -> Result<Vec<HubSpotEvent>, HubSpotParseError> {
    let value: Box<RawValue> =
        serde_json::from_slice(body).map_err(|e| HubSpotParseError::NotJson(e.to_string()))?;
    let items: Vec<Box<RawValue>> =
        serde_json::from_str(value.get()).map_err(|_| HubSpotParseError::NotAnArray)?;
    if items.is_empty() {
        return Err(HubSpotParseError::Empty);
    }
    Ok(items.into_iter().map(read_event).collect())
}

/// One event of the array, readable or not.
fn read_event(raw: Box<RawValue>) -> HubSpotEvent {
    let fields = serde_json::from_str::<Fields>(raw.get())
        .map_err(|e| e.to_string())
        .and_then(|fields| {
            if fields.subscription_type.trim().is_empty() {
                Err("subscriptionType is empty".to_owned())
            } else {
                Ok(fields)
            }
        });
    match fields {
        Ok(fields) => HubSpotEvent {
            event_id: fields.event_id,
            subscription_type: fields.subscription_type,
            portal_id: fields.portal_id,
            occurred_at: fields.occurred_at,
            subscription_id: fields.subscription_id,
            object_id: fields.object_id,
            attempt_number: fields.attempt_number,
            unreadable: None,
            raw,
        },
        Err(reason) => HubSpotEvent {
            event_id: 0,
            subscription_type: "unreadable".to_owned(),
            portal_id: 0,
            occurred_at: 0,
            subscription_id: None,
            object_id: None,
            attempt_number: None,
            unreadable: Some(reason),
            raw,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../../events/hubspot/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("sample")
    }

    #[test]
    fn the_samples_parse_with_their_fields_and_raw_text() {
        let events = parse_events(&sample("contact-changes.json")).unwrap();
        let types: Vec<_> = events
            .iter()
            .map(|e| e.subscription_type.as_str())
            .collect();
        assert_eq!(
            types,
            [
                "contact.propertyChange",
                "contact.creation",
                "contact.deletion"
            ]
        );
        assert_eq!(events[0].event_id, 1001);
        assert_eq!(events[0].object_id, Some(123));
        assert_eq!(
            events[0].dedupe_key(),
            "hs:62515:25001:1001:1763000000000:123"
        );
        assert!(events[0].raw.get().contains(r#""propertyValue":"Ada""#));

        let events = parse_events(&sample("contact-merge-association.json")).unwrap();
        assert_eq!(events[0].attempt_number, Some(1));
        // An association change has no objectId; its key still names it.
        assert_eq!(events[1].object_id, None);
        assert_eq!(
            events[1].dedupe_key(),
            "hs:62515:25005:2002:1763000003000:-"
        );
    }

    #[test]
    fn a_retry_has_the_same_key_and_another_change_a_different_one() {
        let event = |attempt: u32, occurred: i64, value: &str| {
            let body = format!(
                r#"[{{"eventId":7,"subscriptionId":1,"portalId":2,"occurredAt":{occurred},"subscriptionType":"contact.propertyChange","attemptNumber":{attempt},"objectId":3,"propertyName":"email","propertyValue":"{value}"}}]"#
            );
            parse_events(body.as_bytes())
                .unwrap()
                .remove(0)
                .dedupe_key()
        };
        assert_eq!(event(0, 100, "a@x"), event(3, 100, "a@x"));
        assert_ne!(event(0, 100, "a@x"), event(0, 101, "b@x"));
    }

    #[test]
    fn the_queued_body_carries_the_event_verbatim() {
        let events = parse_events(&sample("contact-changes.json")).unwrap();
        let body = events[0].to_body("k", 42);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["source"], "hubspot");
        assert_eq!(json["received_at"], 42);
        assert_eq!(json["event"]["sourceId"], "userId:45678");
        assert!(body.contains(events[0].raw.get()));
    }

    #[test]
    fn bad_bodies_are_named() {
        let code = |body: &str| parse_events(body.as_bytes()).unwrap_err().code();
        assert_eq!(code("not json"), "invalid_json");
        assert_eq!(code(r#"{"eventId":1}"#), "not_an_event_array");
        assert_eq!(code("[]"), "no_events");
    }

    #[test]
    fn an_odd_event_is_kept_unreadable_beside_the_good_ones() {
        let good =
            r#"{"eventId":7,"subscriptionType":"contact.creation","portalId":1,"occurredAt":5}"#;
        for odd in [
            r#"{"eventId":1}"#,
            r#"{"eventId":"x","subscriptionType":"a","portalId":1,"occurredAt":1}"#,
            r#"{"eventId":1,"subscriptionType":" ","portalId":1,"occurredAt":1}"#,
            "42",
        ] {
            let body = format!("[{good},{odd}]");
            let events = parse_events(body.as_bytes()).unwrap();
            assert_eq!(events.len(), 2, "{odd}");
            assert_eq!(events[0].unreadable, None);
            assert!(events[1].unreadable.is_some(), "{odd}");
            assert_eq!(events[1].raw.get(), odd);
            assert!(events[1].dedupe_key().starts_with("hs:unreadable:"));
            assert_ne!(events[1].dedupe_key(), events[0].dedupe_key());
        }
    }
}
