//! The `hubspot` queue's messages: `{"source":"hubspot","dedupe_key":…,"received_at":…,
//! "event":{…}}` as the HubSpot ingest queues them (`relay_events::hubspot`), the event as
//! HubSpot sent it (<https://developers.hubspot.com/docs/api/webhooks>, "Webhook payloads":
//! `subscriptionType`, `objectId`, `propertyName`, `propertyValue`, `changeSource`, `sourceId`,
//! `occurredAt`).
//!
//! **Which events the relay caused.** `changeSource` is "the source of the change. This can be
//! any of the change sources that appear in contact property histories", and `sourceId` the id
//! of that source (<https://developers.hubspot.com/docs/api/webhooks>): a user's edit is
//! `CRM_UI` with `userId:N`; a write through an app's API calls is `INTEGRATION` (or `API`)
//! with the app's id. So an event whose `sourceId` is the relay's app id (`HUBSPOT_APP_ID`) is
//! the relay's own write coming back, and is dropped before anything is read. `sourceId` is
//! compared whole, or after a `kind:` prefix (`appId:123`), never as a substring.
//!
//! **Merges.** A `*.merge` event names the objects in its own fields
//! (<https://developers.hubspot.com/changelog/new-subscription-types-for-webhooks>):
//! `primaryObjectId` (the object given priority), `mergedObjectIds` (the secondaries, an array:
//! several can be merged into one) and `newObjectId` ("the Id of the object that was created
//! from the result of the merge … separate from primaryObjectId because in some cases a new
//! object is created"). The surviving object is `newObjectId`, else `primaryObjectId`, else
//! `objectId`; every id of the merge is kept ([`HubspotChangeKind::Merge`]).

use relay_crm::{CrmId, CrmObject};
use serde::Deserialize;

/// One message of the `hubspot` queue, as received.
#[derive(Debug, Clone)]
pub struct HubspotMessage {
    pub message_id: String,
    pub body: String,
}

/// The part of a queued body the runner checks before the handler sees it.
#[derive(Deserialize)]
struct Envelope {
    source: String,
    event: EnvelopeEvent,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeEvent {
    subscription_type: String,
}

impl HubspotMessage {
    /// The message if its body is a queued HubSpot event (the ingest's envelope around an
    /// event with a `subscriptionType`); `Err` is why it is dead-lettered. Whether the event
    /// is one the relay syncs back is left to the handler, which acknowledges the others.
    pub fn check(message_id: &str, body: &str) -> Result<Self, String> {
        let envelope: Envelope = serde_json::from_str(body)
            .map_err(|e| format!("message body is not a queued HubSpot event: {e}"))?;
        if envelope.source != "hubspot" {
            return Err(format!(
                "message body is not a queued HubSpot event: source is {:?}",
                envelope.source
            ));
        }
        if envelope.event.subscription_type.trim().is_empty() {
            return Err("queued HubSpot event has an empty subscriptionType".into());
        }
        Ok(Self {
            message_id: message_id.to_owned(),
            body: body.to_owned(),
        })
    }
}

/// What a HubSpot event says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubspotChangeKind {
    /// `*.propertyChange` of this property.
    Property(String),
    Creation,
    Deletion,
    /// `*.merge`: the object that survives and every object merged into it.
    Merge {
        survivor: CrmId,
        merged: Vec<CrmId>,
    },
    /// `*.associationChange`, `*.restore`, anything newer: not synced back.
    Other(String),
}

/// One HubSpot event, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubspotChange {
    pub object: CrmObject,
    pub object_id: CrmId,
    pub kind: HubspotChangeKind,
    pub change_source: Option<String>,
    pub source_id: Option<String>,
    pub occurred_at_ms: i64,
}

#[derive(Deserialize)]
struct Body {
    source: String,
    event: Event,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    subscription_type: String,
    object_id: Option<u64>,
    #[serde(default)]
    property_name: Option<String>,
    #[serde(default)]
    change_source: Option<String>,
    #[serde(default)]
    source_id: Option<serde_json::Value>,
    #[serde(default)]
    occurred_at: i64,
    #[serde(default)]
    primary_object_id: Option<serde_json::Value>,
    #[serde(default)]
    merged_object_ids: Vec<serde_json::Value>,
    #[serde(default)]
    new_object_id: Option<serde_json::Value>,
}

/// An id HubSpot sends as a number or a string.
fn id_of(value: &serde_json::Value) -> Option<CrmId> {
    match value {
        serde_json::Value::Number(n) => Some(CrmId(n.to_string())),
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(CrmId(s.trim().to_owned())),
        _ => None,
    }
}

impl HubspotChange {
    /// Reads a queued message; `Err` says why it cannot be (the consumer acks it with a log
    /// line: retrying cannot make it readable).
    pub fn parse(body: &str) -> Result<Self, String> {
        let body: Body =
            serde_json::from_str(body).map_err(|e| format!("not a queued HubSpot event: {e}"))?;
        if body.source != "hubspot" {
            return Err(format!("source is {:?}, not hubspot", body.source));
        }
        let event = body.event;
        let (prefix, kind) = event.subscription_type.split_once('.').ok_or_else(|| {
            format!(
                "subscriptionType {:?} has no object",
                event.subscription_type
            )
        })?;
        let object = match prefix {
            "contact" => CrmObject::Contacts,
            "company" => CrmObject::Companies,
            "deal" => CrmObject::Deals,
            other => return Err(format!("HubSpot object {other:?} is not synced back")),
        };
        let object_id = event.object_id.ok_or("the event has no objectId")?;
        let kind = match kind {
            "propertyChange" => HubspotChangeKind::Property(
                event
                    .property_name
                    .ok_or("a propertyChange without propertyName")?,
            ),
            "creation" => HubspotChangeKind::Creation,
            "deletion" | "privacyDeletion" => HubspotChangeKind::Deletion,
            "merge" => {
                let primary = event.primary_object_id.as_ref().and_then(id_of);
                let survivor = event
                    .new_object_id
                    .as_ref()
                    .and_then(id_of)
                    .or_else(|| primary.clone())
                    .unwrap_or_else(|| CrmId(object_id.to_string()));
                let mut merged: Vec<CrmId> =
                    event.merged_object_ids.iter().filter_map(id_of).collect();
                for id in primary.into_iter().chain([CrmId(object_id.to_string())]) {
                    if !merged.contains(&id) {
                        merged.push(id);
                    }
                }
                merged.retain(|id| *id != survivor);
                HubspotChangeKind::Merge { survivor, merged }
            }
            other => HubspotChangeKind::Other(other.to_owned()),
        };
        let source_id = event.source_id.map(|v| match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        });
        Ok(Self {
            object,
            object_id: CrmId(object_id.to_string()),
            kind,
            change_source: event.change_source,
            source_id,
            occurred_at_ms: event.occurred_at,
        })
    }

    /// Whether the relay's own write (app `app_id`) caused this event.
    pub fn caused_by(&self, app_id: Option<&str>) -> bool {
        let (Some(app_id), Some(source_id)) = (app_id, self.source_id.as_deref()) else {
            return false;
        };
        // `userId:N` is a person, whatever N is.
        let id = match source_id.split_once(':') {
            Some((kind, _)) if kind.eq_ignore_ascii_case("userid") => return false,
            Some((_, id)) => id,
            None => source_id,
        };
        !app_id.is_empty() && id.trim() == app_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(event: serde_json::Value) -> String {
        serde_json::json!({"source": "hubspot", "dedupe_key": "k", "received_at": 1, "event": event}).to_string()
    }

    #[test]
    fn events_read_and_the_relays_own_are_told_by_source_id() {
        let change = HubspotChange::parse(&body(serde_json::json!({
            "eventId": 1, "subscriptionType": "contact.propertyChange", "portalId": 9,
            "objectId": 123, "propertyName": "firstname", "propertyValue": "Ada",
            "changeSource": "INTEGRATION", "sourceId": "4242", "occurredAt": 77
        })))
        .unwrap();
        assert_eq!(change.object, CrmObject::Contacts);
        assert_eq!(change.kind, HubspotChangeKind::Property("firstname".into()));
        assert!(change.caused_by(Some("4242")));
        assert!(!change.caused_by(Some("42")), "never a substring");
        assert!(!change.caused_by(None));
        let user = HubspotChange::parse(&body(serde_json::json!({
            "subscriptionType": "company.creation", "objectId": 5,
            "changeSource": "CRM_UI", "sourceId": "userId:4242", "occurredAt": 1
        })))
        .unwrap();
        assert_eq!(user.kind, HubspotChangeKind::Creation);
        assert!(
            !user.caused_by(Some("4242")),
            "userId:4242 is a user, not the app"
        );
    }

    #[test]
    fn a_merge_names_the_new_object_and_every_merged_one() {
        // The changelog's merge fields; the new object differs from the primary.
        let merge = HubspotChange::parse(&body(serde_json::json!({
            "subscriptionType": "contact.merge", "objectId": 101, "primaryObjectId": 101,
            "mergedObjectIds": [202, 303], "newObjectId": 404, "numberOfPropertiesMoved": 3,
            "changeSource": "CRM_UI", "sourceId": "userId:1", "occurredAt": 5
        })))
        .unwrap();
        let ids = |v: &[&str]| v.iter().map(|i| CrmId((*i).into())).collect::<Vec<_>>();
        assert_eq!(
            merge.kind,
            HubspotChangeKind::Merge {
                survivor: CrmId("404".into()),
                merged: ids(&["202", "303", "101"]),
            }
        );
        // Without newObjectId the primary survives.
        let merge = HubspotChange::parse(&body(serde_json::json!({
            "subscriptionType": "company.merge", "objectId": 7, "primaryObjectId": "7",
            "mergedObjectIds": ["8"], "occurredAt": 5
        })))
        .unwrap();
        assert_eq!(
            merge.kind,
            HubspotChangeKind::Merge {
                survivor: CrmId("7".into()),
                merged: ids(&["8"]),
            }
        );
    }
}
