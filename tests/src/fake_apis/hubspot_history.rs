//! Contact property history in the HubSpot stand-in, the reads that serve it, and the webhook
//! events a subscription would have sent for it.
//!
//! * **History**: every change to a contact's property is kept with its time and source, as
//!   `propertiesWithHistory` shows it (`value`, `timestamp`, `sourceType`, `sourceId`;
//!   <https://developers.hubspot.com/docs/api-reference/latest/crm/objects/objects/batch/get-objects>).
//!   Writes with the relay's token are `INTEGRATION` with `sourceId` = the app id; a test's
//!   [`FakeHubSpot::edit_contact`] is `CRM_UI` with `userId:…`. A write that sets the value a
//!   property already has makes no entry (HubSpot records none then), and no event.
//! * **Batch read**: `POST /crm/v3/objects/contacts/batch/read` with `properties`,
//!   `propertiesWithHistory` and at most 100 `inputs`; answers the asked properties (`null`
//!   when empty) and each history newest first; ids it does not hold (archived, never made)
//!   are a 207 with an `OBJECT_NOT_FOUND` error naming them in `context.ids`. A merged-away id
//!   reads as the merged contact, as HubSpot documents.
//! * **List**: `GET /crm/v3/objects/contacts?limit=…&after=…&properties=…`, by id, with
//!   `paging.next.after` while more remain.
//! * **Webhook events**: [`FakeHubSpot::webhook_events`] gives, for each change since a cursor,
//!   the event HubSpot's subscriptions would deliver — `contact.creation` and
//!   `contact.propertyChange` (`propertyName`, `propertyValue`, `changeSource`, `sourceId`,
//!   `occurredAt`, `objectId`, a unique `eventId`), in the shape of `events/hubspot/` — for a
//!   test to sign and post to `/hubspot/webhooks`. Merges and archives make no events here.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use wiremock::{Request, ResponseTemplate};

use super::clock::iso_ms;
use super::{FakeHubSpot, HubSpotState, Outcome};

/// The relay's HubSpot app id unless the test sets one ([`FakeHubSpot::with_app_id`]).
pub const DEFAULT_APP_ID: &str = "54321";
/// The portal the events name.
pub const DEFAULT_PORTAL_ID: u64 = 62_515;
/// HubSpot's largest batch read.
const MAX_INPUTS: usize = 100;

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeSource {
    /// An app's API write: `INTEGRATION`, `sourceId` = the app id.
    Integration(String),
    /// A user in HubSpot's UI: `CRM_UI`, `sourceId` = `userId:{id}`.
    User(u64),
}

impl ChangeSource {
    pub fn source_type(&self) -> &'static str {
        match self {
            Self::Integration(_) => "INTEGRATION",
            Self::User(_) => "CRM_UI",
        }
    }

    pub fn source_id(&self) -> String {
        match self {
            Self::Integration(app) => app.clone(),
            Self::User(user) => format!("userId:{user}"),
        }
    }
}

/// One change to a contact: a property's new value, or (`property: None`) its creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactChange {
    pub contact_id: String,
    pub property: Option<String>,
    /// The new value; empty when cleared.
    pub value: String,
    pub at_ms: i64,
    pub source: ChangeSource,
}

/// Every contact's property history and the change log the webhook events come from.
#[derive(Debug, Default)]
pub struct History {
    changes: Vec<ContactChange>,
    /// contact id → property → indexes into `changes`, oldest first.
    by_property: BTreeMap<String, BTreeMap<String, Vec<usize>>>,
}

/// A property value as HubSpot stores it: text, empty for none.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl HubSpotState {
    /// Records what a write did to contact `id`: an entry for every property whose value
    /// `given` changes from `before`, and the creation when `created`. Returns the changed
    /// properties.
    pub(super) fn note_write(
        &mut self,
        id: &str,
        before: &Map<String, Value>,
        given: &Map<String, Value>,
        created: bool,
        source: ChangeSource,
    ) -> Vec<String> {
        let at_ms = self.clock.now_ms();
        let history = &mut self.history;
        if created {
            history.changes.push(ContactChange {
                contact_id: id.to_owned(),
                property: None,
                value: String::new(),
                at_ms,
                source: source.clone(),
            });
        }
        let mut changed = Vec::new();
        for (name, value) in given {
            let value = text(value);
            if before.get(name).map(text).unwrap_or_default() == value {
                continue;
            }
            history
                .by_property
                .entry(id.to_owned())
                .or_default()
                .entry(name.clone())
                .or_default()
                .push(history.changes.len());
            history.changes.push(ContactChange {
                contact_id: id.to_owned(),
                property: Some(name.clone()),
                value,
                at_ms,
                source: source.clone(),
            });
            changed.push(name.clone());
        }
        changed
    }

    /// The app's writes are by this source.
    pub(super) fn integration(&self) -> ChangeSource {
        ChangeSource::Integration(self.app_id.clone())
    }

    /// `propertiesWithHistory` of one property, newest first.
    fn history_of(&self, id: &str, property: &str) -> Vec<Value> {
        let indexes = self
            .history
            .by_property
            .get(id)
            .and_then(|p| p.get(property))
            .cloned()
            .unwrap_or_default();
        indexes
            .iter()
            .rev()
            .map(|i| &self.history.changes[*i])
            .map(|c| {
                json!({"value": c.value, "timestamp": iso_ms(c.at_ms),
                       "sourceType": c.source.source_type(), "sourceId": c.source.source_id()})
            })
            .collect()
    }

    /// One contact as the CRM object API answers it, with the asked properties.
    fn contact_json(
        &self,
        contact: &Map<String, Value>,
        id: &str,
        asked: &[String],
        history: &[String],
    ) -> Value {
        let mut properties: Map<String, Value> = asked
            .iter()
            .map(|p| {
                let value = contact.get(p).map(text).filter(|v| !v.is_empty());
                (p.clone(), value.map_or(Value::Null, Value::String))
            })
            .collect();
        properties.insert("hs_object_id".into(), json!(id));
        let mut result = json!({"id": id, "properties": properties, "archived": false});
        if !history.is_empty() {
            let with: Map<String, Value> = history
                .iter()
                .map(|p| (p.clone(), Value::Array(self.history_of(id, p))))
                .collect();
            result["propertiesWithHistory"] = Value::Object(with);
        }
        result
    }

    /// `POST /crm/v3/objects/contacts/batch/read`.
    pub(super) fn batch_read(&mut self, body: &Value) -> Outcome {
        let names = |key: &str| -> Vec<String> {
            body[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        };
        let (asked, history) = (names("properties"), names("propertiesWithHistory"));
        let Some(inputs) = body["inputs"].as_array() else {
            return Outcome::Reject("batch read without inputs".into());
        };
        if inputs.len() > MAX_INPUTS || body.get("idProperty").is_some_and(|p| !p.is_null()) {
            return Outcome::Reject(format!(
                "batch read of {} inputs or by idProperty",
                inputs.len()
            ));
        }
        let (mut results, mut missing) = (Vec::new(), Vec::new());
        for input in inputs {
            let Some(asked_id) = input["id"].as_str() else {
                return Outcome::Reject(format!("batch read input without an id: {input}"));
            };
            match self.contact_by_id(asked_id) {
                Some((_, contact)) => {
                    let (id, properties) = (contact.id.clone(), contact.properties.clone());
                    results.push(self.contact_json(&properties, &id, &asked, &history));
                }
                None => missing.push(asked_id.to_owned()),
            }
        }
        let mut answer = json!({"status": "COMPLETE", "results": results,
            "startedAt": iso_ms(self.clock.now_ms()), "completedAt": iso_ms(self.clock.now_ms())});
        if missing.is_empty() {
            return Outcome::Answer(ResponseTemplate::new(200).set_body_json(answer));
        }
        answer["numErrors"] = json!(1);
        answer["errors"] = json!([{
            "status": "error", "category": "OBJECT_NOT_FOUND",
            "message": "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.",
            "context": {"ids": missing}
        }]);
        Outcome::Answer(ResponseTemplate::new(207).set_body_json(answer))
    }

    /// `GET /crm/v3/objects/contacts?limit&after&properties`: live contacts by numeric id.
    pub(super) fn list_contacts(&self, request: &Request) -> Outcome {
        let query = |key: &str| {
            request
                .url
                .query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
        let limit = query("limit").map_or(Some(10), |l| l.parse::<usize>().ok());
        let Some(limit @ 1..=MAX_INPUTS) = limit else {
            return Outcome::Reject(format!("contacts listed with limit {limit:?}"));
        };
        let after: u64 = query("after").and_then(|a| a.parse().ok()).unwrap_or(0);
        let asked: Vec<String> = query("properties")
            .map(|p| p.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        let mut live: Vec<(u64, &super::StoredObject)> = self
            .contacts
            .values()
            .chain(self.unowned_contacts.values())
            .filter_map(|c| Some((c.id.parse::<u64>().ok()?, c)))
            .filter(|(n, _)| *n >= after)
            .collect();
        live.sort_by_key(|(n, _)| *n);
        let page: Vec<Value> = live
            .iter()
            .take(limit)
            .map(|(_, c)| self.contact_json(&c.properties, &c.id, &asked, &[]))
            .collect();
        let mut answer = json!({"results": page});
        if let Some((next, _)) = live.get(limit) {
            answer["paging"] = json!({"next": {"after": next.to_string()}});
        }
        Outcome::Answer(ResponseTemplate::new(200).set_body_json(answer))
    }
}

impl FakeHubSpot {
    /// "Now" for the property history.
    pub fn with_clock(self, clock: super::FakeClock) -> Self {
        self.state.lock().expect("hubspot state").clock = clock;
        self
    }

    /// The relay's HubSpot app: its writes are `INTEGRATION` with this `sourceId`.
    pub fn with_app_id(self, app_id: &str) -> Self {
        self.state.lock().expect("hubspot state").app_id = app_id.to_owned();
        self
    }

    /// Edits a contact as user `user_id` would in HubSpot's UI (`CRM_UI`). Returns the changed
    /// properties; `None` for a contact the portal does not hold.
    pub fn edit_contact(&self, id: &str, user_id: u64, properties: Value) -> Option<Vec<String>> {
        let given = properties.as_object().cloned().unwrap_or_default();
        let mut state = self.state.lock().expect("hubspot state");
        let (_, contact) = state.contact_by_id(id)?;
        let before = contact.properties.clone();
        let id = contact.id.clone();
        contact.properties.extend(given.clone());
        Some(state.note_write(&id, &before, &given, false, ChangeSource::User(user_id)))
    }

    /// Every change recorded so far, oldest first.
    pub fn contact_changes(&self) -> Vec<ContactChange> {
        self.state
            .lock()
            .expect("hubspot state")
            .history
            .changes
            .clone()
    }

    /// The relay's writes that changed a contact property (its app's `INTEGRATION` entries;
    /// creations left out): a write of a value the property already held records nothing, so
    /// an echo written back changes nothing and is not here. The counterpart of
    /// [`super::FakeAttio::relay_changes`].
    pub fn relay_changes(&self) -> Vec<ContactChange> {
        let state = self.state.lock().expect("hubspot state");
        let relay = state.integration();
        let changes = state.history.changes.iter();
        changes
            .filter(|c| c.source == relay && c.property.is_some())
            .cloned()
            .collect()
    }

    /// The webhook events for the changes after `since` (a count of changes): a
    /// `contact.creation` per contact made, a `contact.propertyChange` per change to one of
    /// `properties` (a subscription is per property). Returns them and the cursor for next time.
    pub fn webhook_events(&self, since: usize, properties: &[&str]) -> (Vec<Value>, usize) {
        let state = self.state.lock().expect("hubspot state");
        let changes = &state.history.changes;
        let mut events = Vec::new();
        for (n, change) in changes.iter().enumerate().skip(since) {
            let object_id: u64 = change.contact_id.parse().unwrap_or_default();
            let mut event = json!({
                "eventId": 900_000 + n, "portalId": state.portal_id,
                "appId": state.app_id.parse::<u64>().unwrap_or_default(),
                "occurredAt": change.at_ms, "attemptNumber": 0, "objectId": object_id,
                "changeSource": change.source.source_type(), "sourceId": change.source.source_id()
            });
            match &change.property {
                None => {
                    event["subscriptionType"] = json!("contact.creation");
                    event["subscriptionId"] = json!(25_000);
                    event["changeFlag"] = json!("CREATED");
                }
                Some(property) => {
                    let Some(index) = properties.iter().position(|p| p == property) else {
                        continue;
                    };
                    event["subscriptionType"] = json!("contact.propertyChange");
                    event["subscriptionId"] = json!(25_001 + index);
                    event["propertyName"] = json!(property);
                    event["propertyValue"] = json!(change.value);
                }
            }
            events.push(event);
        }
        (events, changes.len())
    }
}
