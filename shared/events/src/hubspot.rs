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
    #[error("event {index} is not a HubSpot event: {reason}")]
    InvalidEvent { index: usize, reason: String },
}

impl HubSpotParseError {
    /// A stable, machine-readable code for responses and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "invalid_json",
            Self::NotAnArray => "not_an_event_array",
            Self::Empty => "no_events",
            Self::InvalidEvent { .. } => "invalid_event",
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

/// Parses a HubSpot webhook body. Every event must carry the fields the relay deduplicates and
/// routes by; one that does not makes the whole request a 400 (nothing queued), so HubSpot's
/// own retry and its delivery log show it rather than the event vanishing.
pub fn parse_events(body: &[u8]) -> Result<Vec<HubSpotEvent>, HubSpotParseError> {
    let value: Box<RawValue> =
        serde_json::from_slice(body).map_err(|e| HubSpotParseError::NotJson(e.to_string()))?;
    let items: Vec<Box<RawValue>> =
        serde_json::from_str(value.get()).map_err(|_| HubSpotParseError::NotAnArray)?;
    if items.is_empty() {
        return Err(HubSpotParseError::Empty);
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, raw)| {
            let fields: Fields =
                serde_json::from_str(raw.get()).map_err(|e| HubSpotParseError::InvalidEvent {
                    index,
                    reason: e.to_string(),
                })?;
            if fields.subscription_type.trim().is_empty() {
                return Err(HubSpotParseError::InvalidEvent {
                    index,
                    reason: "subscriptionType is empty".into(),
                });
            }
            Ok(HubSpotEvent {
                event_id: fields.event_id,
                subscription_type: fields.subscription_type,
                portal_id: fields.portal_id,
                occurred_at: fields.occurred_at,
                subscription_id: fields.subscription_id,
                object_id: fields.object_id,
                attempt_number: fields.attempt_number,
                raw,
            })
        })
        .collect()
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
        assert_eq!(code(r#"[{"eventId":1}]"#), "invalid_event");
        assert_eq!(
            code(r#"[{"eventId":"x","subscriptionType":"a","portalId":1,"occurredAt":1}]"#),
            "invalid_event"
        );
        assert_eq!(
            code(r#"[{"eventId":1,"subscriptionType":" ","portalId":1,"occurredAt":1}]"#),
            "invalid_event"
        );
    }
}
