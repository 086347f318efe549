//! Merges in the stand-ins, as the public docs describe them, kept apart from the routes in
//! `fake_apis.rs` so each side can change without touching the other.
//!
//! **Attio** ([`FakeAttio::merge`]), both of its documented models:
//! * current (<https://docs.attio.com/rest-api/endpoint-reference/records/merge-two-records>,
//!   <https://docs.attio.com/rest-api/webhook-reference/record/merged>): the merge makes a
//!   NEW record holding the values of both, the primary's taking precedence; both originals
//!   are "marked as merged and can no longer be read" (404 `not_found`); a merge applied
//!   asynchronously (the endpoint's 202) makes the new record read 404 `merge_in_progress`
//!   until it completes; two `record.merged` events follow, each with the new record in
//!   `id.record_id` and one original as `duplicate_record_id`;
//! * older (<https://docs.attio.com/rest-api/webhook-reference/record-events/recordmerged>):
//!   the duplicate's values are copied into the original, which survives; the duplicate is
//!   deleted; one event names it.
//!
//! **HubSpot** (`POST /crm/v3/objects/contacts/merge`,
//! <https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/basic/post-crm-v3-objects-contacts-merge>):
//! the answer is the merged object, whose id is NEW — "a new record with a new ID will be
//! created for the resulting merged record, with both records merged into the new one
//! [...] both of the previous IDs will point to the resulting merged record, so fetching any
//! records using the original IDs will return the new merged record with the new ID"
//! (<https://developers.hubspot.com/changelog/updated-merge-functionality-for-contacts-and-companies>).
//! The primary's values win, the other's fill the gaps, and the activities and associations
//! of both (here: notes, tasks, default associations) move to the merged object
//! (<https://knowledge.hubspot.com/records/merge-records>). Reads and updates by an old id
//! reach the merged object; merging an id that was merged away answers 404, as
//! `relay_crm::MemoryCrm` does (HubSpot documents no answer for it), which is what the sync
//! relies on to find a merge whose answer it never saw.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;

use serde_json::{Map, Value, json};
use wiremock::ResponseTemplate;

use super::{FakeAttio, HubSpotState, Outcome, StoredObject, attio_error};

/// Which of Attio's two merge models a merge follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeModel {
    /// A new record; both originals gone; two events.
    NewRecord,
    /// The primary survives; the other original is gone; one event.
    Survivor,
}

/// One merge Attio made: what the test delivers and checks.
#[derive(Debug, Clone)]
pub struct AttioMerge {
    pub model: MergeModel,
    /// The record the merge ended with: new, or the surviving primary.
    pub merged: String,
    /// The records merged: the primary (whose values win) first.
    pub originals: [String; 2],
}

impl AttioMerge {
    /// The originals that now read 404 `not_found`.
    pub fn gone(&self) -> Vec<&str> {
        self.originals
            .iter()
            .map(String::as_str)
            .filter(|o| *o != self.merged)
            .collect()
    }

    /// The `record.merged` events Attio sends for it, in the documented shape (`id` with the
    /// merged record, top-level `duplicate_object_id` and `duplicate_record_id`), one per
    /// original that is gone.
    pub fn events(&self, workspace_id: &str, object_id: &str, actor: &Value) -> Vec<Value> {
        self.gone()
            .into_iter()
            .map(|duplicate| {
                json!({
                    "event_type": "record.merged",
                    "id": {"workspace_id": workspace_id, "object_id": object_id,
                           "record_id": self.merged},
                    "duplicate_object_id": object_id,
                    "duplicate_record_id": duplicate,
                    "actor": actor
                })
            })
            .collect()
    }
}

/// What Attio's merges changed: the fake's answers for people consult it first.
#[derive(Debug, Default)]
pub struct AttioMerges {
    /// Originals marked as merged: 404 `not_found`.
    gone: HashSet<String>,
    /// New records: (the primary original, whose values they carry; reads still answering
    /// 404 `merge_in_progress`).
    made: HashMap<String, (String, usize)>,
}

impl FakeAttio {
    /// Merges `secondary` into `primary` in `model`; in the current model the new record reads
    /// `merge_in_progress` for its first `in_progress_reads` reads (a merge applied in the
    /// background). Returns what was merged.
    pub fn merge(
        &self,
        model: MergeModel,
        primary: &str,
        secondary: &str,
        in_progress_reads: usize,
    ) -> AttioMerge {
        let mut merges = self.merges.lock().expect("attio merges");
        merges.gone.insert(secondary.to_owned());
        let merged = match model {
            MergeModel::NewRecord => {
                let merged = uuid::Uuid::new_v4().to_string();
                merges.gone.insert(primary.to_owned());
                merges
                    .made
                    .insert(merged.clone(), (primary.to_owned(), in_progress_reads));
                merged
            }
            MergeModel::Survivor => primary.to_owned(),
        };
        AttioMerge {
            model,
            merged,
            originals: [primary.to_owned(), secondary.to_owned()],
        }
    }

    /// The answer to `GET /v2/objects/people/records/{id}` when a merge decides it: `None`
    /// for a record no merge touched (or a surviving original, which reads as itself).
    pub(super) fn merged_person(&self, id: &str) -> Option<ResponseTemplate> {
        let mut merges = self.merges.lock().expect("attio merges");
        if merges.gone.contains(id) {
            return Some(attio_error(
                404,
                "not_found",
                &format!("Record with ID \"{id}\" not found."),
            ));
        }
        let (primary, in_progress) = merges.made.get_mut(id)?;
        if *in_progress > 0 {
            *in_progress -= 1;
            return Some(attio_error(
                404,
                relay_attio::MERGE_IN_PROGRESS_CODE,
                "Record is being merged.",
            ));
        }
        let primary = primary.clone();
        drop(merges);
        self.served.fetch_add(1, Ordering::SeqCst);
        Some(ResponseTemplate::new(200).set_body_json(self.merged_values(id, &primary)))
    }

    /// What a records query answers for `id` when a merge decides it: `None` for a record no
    /// merge touched, `Some(None)` for one the query leaves out (an original marked as merged,
    /// or a new record whose merge is still being applied: absent, where a GET would say
    /// `merge_in_progress`; the query does not use up the reads the merge takes), and
    /// `Some(Some(record))` for a merged record, as its GET would answer it.
    pub(super) fn queried_person(&self, id: &str) -> Option<Option<Value>> {
        let merges = self.merges.lock().expect("attio merges");
        if merges.gone.contains(id) {
            return Some(None);
        }
        let (primary, in_progress) = merges.made.get(id)?;
        if *in_progress > 0 {
            return Some(None);
        }
        let primary = primary.clone();
        drop(merges);
        Some(Some(self.merged_values(id, &primary)))
    }

    /// The merged record's own values, with the primary's email: its values take
    /// precedence (a person's email is what HubSpot matches contacts on).
    fn merged_values(&self, id: &str, primary: &str) -> Value {
        let mut person = self.person(id);
        if let Some(email) = person["data"]["values"]["email_addresses"][0].as_object_mut() {
            email.insert("email_address".into(), json!(Self::email(primary)));
            email.insert("original_email_address".into(), json!(Self::email(primary)));
            email.insert("email_local_specifier".into(), json!(primary));
        }
        person
    }
}

/// What HubSpot's merges did.
#[derive(Debug, Default)]
pub struct ContactMerges {
    /// Ids merged away → the object they became.
    merged_into: BTreeMap<String, String>,
    /// Every merge made: (primary, merged away, the id answered).
    pub made: Vec<(String, String, String)>,
}

impl ContactMerges {
    /// The id `id` is now: itself, or the object merges made of it.
    pub fn resolve(&self, id: &str) -> String {
        let mut id = id.to_owned();
        while let Some(next) = self.merged_into.get(&id) {
            id.clone_from(next);
        }
        id
    }

    /// True when `id` was merged away.
    pub fn merged_away(&self, id: &str) -> bool {
        self.merged_into.contains_key(id)
    }

    /// True when `id` is an id a merge answered.
    pub fn answered(&self, id: &str) -> bool {
        self.made.iter().any(|(_, _, new)| new == id)
    }
}

impl HubSpotState {
    /// Removes the live contact with HubSpot id `id`: (its `attio_record_id` key when owned, it).
    fn take_contact(&mut self, id: &str) -> Option<(Option<String>, StoredObject)> {
        if let Some(contact) = self.unowned_contacts.remove(id) {
            return Some((None, contact));
        }
        let key = self
            .contacts
            .iter()
            .find(|(_, c)| c.id == id)
            .map(|(k, _)| k.clone())?;
        self.contacts.remove(&key).map(|c| (Some(key), c))
    }

    /// `DELETE /crm/v3/objects/contacts/{id}`: the contact (or the one `id` was merged into)
    /// goes to the recycling bin with its `attio_record_id`; its notes and tasks stay, no
    /// longer associated with a live contact. 204 whether or not it was there.
    /// (<https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/delete-contact>)
    pub(super) fn archive_contact(&mut self, id: &str) -> Outcome {
        let id = self.merges.resolve(id);
        if let Some((_, mut contact)) = self.take_contact(&id) {
            contact.archived = true;
            self.archived_contacts.insert(id, contact);
        }
        Outcome::Answer(ResponseTemplate::new(204))
    }

    /// `POST /crm/v3/objects/contacts/merge` (see the module doc).
    pub(super) fn merge_contacts(&mut self, body: &Value) -> Outcome {
        let (Some(primary), Some(other)) = (
            body["primaryObjectId"].as_str(),
            body["objectIdToMerge"].as_str(),
        ) else {
            return Outcome::Reject(format!(
                "merge without primaryObjectId or objectIdToMerge: {body}"
            ));
        };
        if primary == other {
            return Outcome::Reject(format!("merge of contact {primary} with itself"));
        }
        let held = |s: &Self, id: &str| {
            !s.merges.merged_away(id)
                && (s.unowned_contacts.contains_key(id) || s.contacts.values().any(|c| c.id == id))
        };
        if !held(self, primary) || !held(self, other) {
            return Outcome::Answer(ResponseTemplate::new(404).set_body_json(json!({
                "status": "error", "category": "OBJECT_NOT_FOUND",
                "message": format!("Object not found: {primary} or {other}")})));
        }
        let (Some((primary_key, primary_object)), Some((other_key, other_object))) =
            (self.take_contact(primary), self.take_contact(other))
        else {
            return Outcome::Reject("merged contacts vanished".into());
        };
        let id = self.new_id();
        let mut properties: Map<String, Value> = other_object.properties;
        properties.extend(primary_object.properties);
        let mut associations = primary_object.associations;
        associations.extend(other_object.associations);
        let merged = StoredObject {
            object: "contacts".into(),
            id: id.clone(),
            properties: properties.clone(),
            associations,
            archived: false,
            writes: 1,
        };
        // attio_record_id is one of the properties: the primary's value wins.
        match primary_key.or(other_key) {
            Some(key) => self.contacts.insert(key, merged),
            None => self.unowned_contacts.insert(id.clone(), merged),
        };
        let is_old = |to: &str| to == primary || to == other;
        for engagement in self.engagements.values_mut() {
            for (_, to) in &mut engagement.associations {
                if is_old(to) {
                    to.clone_from(&id);
                }
            }
            engagement.associations.sort();
            engagement.associations.dedup();
        }
        self.links = std::mem::take(&mut self.links)
            .into_iter()
            .map(|(from, from_id, to, to_id)| {
                let moved = |kind: &str, object_id: String| {
                    if kind == "contacts" && is_old(&object_id) {
                        id.clone()
                    } else {
                        object_id
                    }
                };
                let (from_id, to_id) = (moved(&from, from_id), moved(&to, to_id));
                (from, from_id, to, to_id)
            })
            .collect();
        for old in [primary, other] {
            self.merges.merged_into.insert(old.to_owned(), id.clone());
        }
        self.merges
            .made
            .push((primary.to_owned(), other.to_owned(), id.clone()));
        Outcome::Answer(ResponseTemplate::new(200).set_body_json(json!({
            "id": id, "properties": properties, "archived": false,
            "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"})))
    }
}
