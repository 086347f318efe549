//! [`MemoryCrm`] as a [`CrmSource`], and the portal's property history and webhook events.
//!
//! HubSpot keeps, per property, who changed it and when (`propertiesWithHistory`,
//! <https://developers.hubspot.com/docs/api/crm/understanding-the-crm>): an app's API write is
//! `sourceType` `INTEGRATION` with the app's id as `sourceId`, a user's edit `CRM_UI` with
//! `userId:N`. Its webhooks carry the same pair as `changeSource`/`sourceId` ("the change
//! sources that appear in contact property histories",
//! <https://developers.hubspot.com/docs/api/webhooks>). Only a value that changes is a change:
//! writing the value a property holds adds no history and sends no event.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::{MemoryCrm, State};
use crate::{CrmError, CrmId, CrmObject, CrmPage, CrmRecordState, CrmSource, PropertyChange};

/// Milliseconds since the epoch, read from whatever clock a test passes in.
pub type MsClock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The app id the relay writes as until [`MemoryCrm::with_app_id`] says otherwise.
const DEFAULT_APP_ID: &str = "1000";

/// Who wrote a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Writer {
    /// The relay, through [`crate::CrmSink`]: `INTEGRATION`, its app id.
    Relay,
    /// A user in HubSpot's UI: `CRM_UI`, `userId:1`.
    User,
}

#[derive(Default)]
pub(super) struct SourceState {
    clock: Option<MsClock>,
    app_id: Option<String>,
    history: BTreeMap<(CrmObject, CrmId, String), PropertyChange>,
    events: Vec<serde_json::Value>,
    last_event_id: u64,
    /// Every `read_batch` call: how many ids it asked for.
    batch_reads: Vec<usize>,
}

impl fmt::Debug for SourceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceState")
            .field("history", &self.history.len())
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl SourceState {
    fn now_ms(&self) -> i64 {
        use relay_ratelimit::MillisClock;
        self.clock
            .as_ref()
            .map_or_else(|| relay_ratelimit::SystemMillis.now_ms(), |clock| clock())
    }

    fn app_id(&self) -> &str {
        self.app_id.as_deref().unwrap_or(DEFAULT_APP_ID)
    }
}

/// The webhook `subscriptionType` prefix of an object, `None` for engagements.
fn event_object(object: CrmObject) -> Option<&'static str> {
    match object {
        CrmObject::Contacts => Some("contact"),
        CrmObject::Companies => Some("company"),
        CrmObject::Deals => Some("deal"),
        CrmObject::Notes | CrmObject::Tasks => None,
    }
}

impl State {
    /// Writes `properties` onto the object (creating it), keeping each changed property's
    /// history and the webhook events HubSpot would send for it.
    pub(super) fn write_properties(
        &mut self,
        object: CrmObject,
        id: &CrmId,
        properties: &crate::Properties,
        writer: Writer,
    ) {
        let at_ms = self.source.now_ms();
        let (change_source, source_id) = match writer {
            Writer::Relay => ("INTEGRATION", self.source.app_id().to_owned()),
            Writer::User => ("CRM_UI", "userId:1".to_owned()),
        };
        let key = (object, id.clone());
        let created = !self.objects.contains_key(&key);
        let held = self.objects.entry(key).or_default();
        let mut changed = Vec::new();
        for (name, value) in properties {
            if held.get(name) != Some(value) {
                held.insert(name.clone(), value.clone());
                changed.push((name.clone(), value.clone()));
            }
        }
        let Some(prefix) = event_object(object) else {
            return;
        };
        let numeric_id: u64 = id.0.parse().unwrap_or(0);
        let event = |source: &mut SourceState, kind: &str, property: Option<(&str, &str)>| {
            source.last_event_id += 1;
            let mut json = serde_json::json!({
                "eventId": source.last_event_id,
                "subscriptionId": 1,
                "portalId": 62515,
                "appId": source.app_id().parse::<u64>().unwrap_or(0),
                "occurredAt": at_ms,
                "subscriptionType": format!("{prefix}.{kind}"),
                "attemptNumber": 0,
                "objectId": numeric_id,
                "changeSource": change_source,
                "sourceId": source_id,
            });
            if let Some((name, value)) = property {
                json["propertyName"] = name.into();
                json["propertyValue"] = value.into();
            }
            source.events.push(json);
        };
        if created {
            event(&mut self.source, "creation", None);
        }
        for (name, value) in changed {
            self.source.history.insert(
                (object, id.clone(), name.clone()),
                PropertyChange {
                    at_ms,
                    source_type: Some(change_source.to_owned()),
                    source_id: Some(source_id.clone()),
                },
            );
            event(&mut self.source, "propertyChange", Some((&name, &value)));
        }
    }

    fn record_state(&self, object: CrmObject, id: &CrmId, properties: &[&str]) -> CrmRecordState {
        let key = (object, id.clone());
        let held = self.objects.get(&key).or_else(|| self.archived.get(&key));
        CrmRecordState {
            id: id.clone(),
            properties: properties
                .iter()
                .map(|p| {
                    let value = held.and_then(|h| h.get(*p)).filter(|v| !v.is_empty());
                    ((*p).to_owned(), value.cloned())
                })
                .collect(),
            changes: properties
                .iter()
                .filter_map(|p| {
                    let change = self
                        .source
                        .history
                        .get(&(object, id.clone(), (*p).to_owned()));
                    Some(((*p).to_owned(), change?.clone()))
                })
                .collect(),
        }
    }
}

impl MemoryCrm {
    /// A second handle on the same portal (the sync context owns one, a test or the
    /// two-way stores another).
    pub fn shared(&self) -> Self {
        Self {
            state: Arc::clone(&self.state),
        }
    }

    /// Property history is stamped by `clock` (milliseconds) instead of the system clock.
    #[must_use]
    pub fn with_clock(self, clock: MsClock) -> Self {
        self.state().source.clock = Some(clock);
        self
    }

    /// The relay's HubSpot app id: the `sourceId` of its writes (default `1000`).
    #[must_use]
    pub fn with_app_id(self, app_id: &str) -> Self {
        self.state().source.app_id = Some(app_id.to_owned());
        self
    }

    /// A user changes properties in HubSpot's UI: history `CRM_UI`, webhook events, no
    /// operation logged in [`MemoryCrm::calls`] (the relay made none). Creates the object when
    /// `id` is `None`; returns its id.
    pub fn edit_by_user(
        &self,
        object: CrmObject,
        id: Option<&CrmId>,
        properties: crate::Properties,
    ) -> CrmId {
        let mut state = self.state();
        let id = id.cloned().unwrap_or_else(|| state.new_id());
        state.write_properties(object, &id, &properties, Writer::User);
        id
    }

    /// A user deletes the object in HubSpot's UI: it goes to the recycling bin (a batch read
    /// with `archived=true` still answers it) and HubSpot sends `{object}.deletion`, `CRM_UI`.
    pub fn delete_by_user(&self, object: CrmObject, id: &CrmId) {
        let mut state = self.state();
        let key = (object, id.clone());
        let Some(held) = state.objects.remove(&key) else {
            return;
        };
        state.archived.insert(key, held);
        let Some(prefix) = event_object(object) else {
            return;
        };
        let at_ms = state.source.now_ms();
        let source = &mut state.source;
        source.last_event_id += 1;
        let event = serde_json::json!({
            "eventId": source.last_event_id, "subscriptionId": 1, "portalId": 62515,
            "appId": source.app_id().parse::<u64>().unwrap_or(0), "occurredAt": at_ms,
            "subscriptionType": format!("{prefix}.deletion"), "attemptNumber": 0,
            "objectId": id.0.parse::<u64>().unwrap_or(0),
            "changeSource": "CRM_UI", "sourceId": "userId:1",
        });
        source.events.push(event);
    }

    /// The webhook events HubSpot would have sent since the last call, oldest first.
    pub fn take_webhook_events(&self) -> Vec<serde_json::Value> {
        std::mem::take(&mut self.state().source.events)
    }

    /// The ids each [`CrmSource::read_batch`] asked for, one entry per call.
    pub fn batch_reads(&self) -> Vec<usize> {
        self.state().source.batch_reads.clone()
    }
}

impl CrmSource for MemoryCrm {
    /// As HubSpot's batch read: absent (archived, merged away) ids are left out.
    async fn read_batch(
        &self,
        object: CrmObject,
        ids: &[CrmId],
        properties: &[&str],
    ) -> Result<Vec<CrmRecordState>, CrmError> {
        let mut state = self.begin(crate::CrmOp::Read)?;
        state.source.batch_reads.push(ids.len());
        Ok(ids
            .iter()
            .filter(|id| state.objects.contains_key(&(object, (*id).clone())))
            .map(|id| state.record_state(object, id, properties))
            .collect())
    }

    /// As HubSpot's batch read with `archived=true`: only ids in the recycling bin are
    /// answered (a live or merged-away id is not).
    async fn read_archived(
        &self,
        object: CrmObject,
        ids: &[CrmId],
        properties: &[&str],
    ) -> Result<Vec<CrmRecordState>, CrmError> {
        let state = self.begin(crate::CrmOp::Read)?;
        Ok(ids
            .iter()
            .filter(|id| state.archived.contains_key(&(object, (*id).clone())))
            .map(|id| state.record_state(object, id, properties))
            .collect())
    }

    /// Pages of 100 in id order; `after` is the last id of the previous page.
    async fn list_page(
        &self,
        object: CrmObject,
        properties: &[&str],
        after: Option<&str>,
    ) -> Result<CrmPage, CrmError> {
        let state = self.begin(crate::CrmOp::Read)?;
        let mut ids: Vec<&CrmId> = state
            .objects
            .keys()
            .filter(|(o, _)| *o == object)
            .map(|(_, id)| id)
            .collect();
        ids.sort_by_key(|id| id.0.parse::<u64>().unwrap_or(u64::MAX));
        let start = after
            .and_then(|after| ids.iter().position(|id| id.0 == after))
            .map_or(0, |i| i + 1);
        let page: Vec<&CrmId> = ids.iter().skip(start).take(100).copied().collect();
        let after = (start + page.len() < ids.len())
            .then(|| page.last().map(|id| id.0.clone()))
            .flatten();
        let mut records: Vec<CrmRecordState> = page
            .into_iter()
            .map(|id| state.record_state(object, id, properties))
            .collect();
        for record in &mut records {
            record.changes.clear();
        }
        Ok(CrmPage { records, after })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;
    use crate::{CrmSink, RecordUpsert};

    #[tokio::test]
    async fn history_tells_the_relays_writes_from_a_users_and_only_changes_count() {
        let now = Arc::new(AtomicI64::new(5_000));
        let clock = Arc::clone(&now);
        let crm = MemoryCrm::new()
            .with_app_id("42")
            .with_clock(Arc::new(move || clock.load(Ordering::SeqCst)));
        let upsert = RecordUpsert {
            attio_record_id: "r1".into(),
            properties: [("firstname".to_owned(), "Ada".to_owned())].into(),
        };
        let id = crm
            .upsert_records(CrmObject::Contacts, std::slice::from_ref(&upsert))
            .await
            .unwrap()
            .ids["r1"]
            .clone();
        let events = crm.take_webhook_events();
        let kinds: Vec<&str> = events
            .iter()
            .map(|e| e["subscriptionType"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "contact.creation",
                "contact.propertyChange",
                "contact.propertyChange"
            ]
        );
        assert!(
            events
                .iter()
                .all(|e| e["changeSource"] == "INTEGRATION" && e["sourceId"] == "42")
        );

        now.store(9_000, Ordering::SeqCst);
        crm.upsert_records(CrmObject::Contacts, &[upsert])
            .await
            .unwrap();
        assert!(
            crm.take_webhook_events().is_empty(),
            "the same value is no change"
        );
        crm.edit_by_user(
            CrmObject::Contacts,
            Some(&id),
            [("firstname".to_owned(), "Augusta".to_owned())].into(),
        );
        let event = crm.take_webhook_events().pop().unwrap();
        assert_eq!(
            (
                event["changeSource"].as_str(),
                event["propertyValue"].as_str()
            ),
            (Some("CRM_UI"), Some("Augusta"))
        );

        let read = crm
            .shared()
            .read_batch(
                CrmObject::Contacts,
                &[id.clone(), CrmId("404".into())],
                &["firstname", "email"],
            )
            .await
            .unwrap();
        assert_eq!(read.len(), 1, "an id the portal does not hold is left out");
        assert_eq!(read[0].properties["firstname"].as_deref(), Some("Augusta"));
        assert_eq!(read[0].properties["email"], None);
        let change = &read[0].changes["firstname"];
        assert_eq!(
            (change.at_ms, change.source_type.as_deref()),
            (9_000, Some("CRM_UI"))
        );
        assert_eq!(crm.batch_reads(), [2]);
        assert_eq!(
            crm.calls().len(),
            2,
            "the user's edit is not the relay's call"
        );
        let page = crm
            .list_page(CrmObject::Contacts, &["firstname"], None)
            .await
            .unwrap();
        assert_eq!((page.records.len(), page.after), (1, None));
    }
}
