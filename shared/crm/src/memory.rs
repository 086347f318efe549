//! A [`CrmSink`] in memory for tests of the sync handlers: logs every operation it makes as the
//! [`OutboxEntry`] the outbox would write, hands out ids, and can be told to fail a call with a
//! given [`CrmError`] or to refuse one input of a batch upsert as HubSpot's 207 does.
//!
//! It keeps the objects it holds, so it behaves like a portal where it matters for the sync:
//! `attio_record_id` is unique (an upsert on it updates), and contact emails are unique — an
//! upsert or update that would give a second contact an existing email is refused with
//! HubSpot's `CONFLICT` "Contact already exists. Existing ID: N". [`MemoryCrm::seed`] fills
//! the portal beforehand (contacts that existed before the first sync).
//!
//! Creates can lose their answer as HubSpot's do ([`MemoryCrm::lose_next_create_answers`]):
//! the note is made, and the caller gets [`CrmError::OutcomeUnknown`]. Notes and tasks are
//! found by their marker property ([`CrmSink::find_by_marker`]) at once: this portal's search
//! has no indexing delay.
//!
//! For two-way sync it is also a [`crate::CrmSource`] (`memory_source.rs`): every property
//! change is kept with its time and source, as HubSpot's property history is — a write through
//! [`CrmSink`] is `INTEGRATION` with the relay's app id, [`MemoryCrm::edit_by_user`] is a
//! user's edit in HubSpot's UI (`CRM_UI`) — and produces the `propertyChange` webhook event
//! HubSpot would send ([`MemoryCrm::take_webhook_events`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::{
    Association, CrmError, CrmId, CrmObject, CrmSink, ErrorClass, ID_PROPERTY, ItemFailure,
    OutboxEntry, Properties, RecordUpsert, UpsertReport, marker_property,
};

/// The kinds of call, to choose which one fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrmOp {
    Upsert,
    Create,
    Read,
    Update,
    Archive,
    Merge,
    /// An owner lookup by email.
    Owner,
    /// A default association between two records.
    Associate,
    /// Removing the associations between two records.
    Dissociate,
    /// A search for notes or tasks by their marker.
    Search,
}

#[path = "memory_source.rs"]
mod source;
pub use source::MsClock;

/// HubSpot in memory. [`MemoryCrm::shared`] gives a second handle on the same portal.
#[derive(Debug, Default)]
pub struct MemoryCrm {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// Operations made, in order; a call told to fail made none.
    done: Vec<OutboxEntry>,
    last_id: u64,
    /// Every object the portal holds, with its properties.
    objects: BTreeMap<(CrmObject, CrmId), Properties>,
    failures: HashMap<CrmOp, VecDeque<CrmError>>,
    /// Inputs refused in every upsert, by Attio record id: (message, class).
    refused: HashMap<String, (String, ErrorClass)>,
    /// Ids merged away → the object they became.
    merged_into: HashMap<(CrmObject, CrmId), CrmId>,
    /// The portal keeps the primary's id on merges (HubSpot's Primary ID Preservation).
    preserve_primary_ids: bool,
    /// The portal's owners: email (lower case) → owner id.
    owners: HashMap<String, CrmId>,
    /// Every owner lookup made, by the email asked for (reads are not in `done`).
    owner_lookups: Vec<String>,
    /// Default associations the portal holds: one per pair, however often it is made.
    associations: BTreeSet<Link>,
    /// Creates still to be applied with their answer lost.
    lost_create_answers: usize,
    /// Every marker search made: (object, Attio id).
    searches: Vec<(CrmObject, String)>,
    /// Objects archived, with the properties they held: HubSpot answers 404 to an update of
    /// one (it is in the recycling bin, not the portal's objects), so an update never brings
    /// one back; a batch read with `archived=true` still answers it.
    archived: BTreeMap<(CrmObject, CrmId), Properties>,
    /// Property history, webhook events, clock and app id (`memory_source.rs`).
    source: source::SourceState,
}

/// One association between two records: (from type, from id, to type, to id).
pub type Link = (CrmObject, CrmId, CrmObject, CrmId);

/// HubSpot's answer to a second contact with an existing email.
fn email_conflict(existing: &CrmId) -> String {
    format!("Contact already exists. Existing ID: {existing}")
}

impl State {
    fn new_id(&mut self) -> CrmId {
        self.last_id += 1;
        CrmId(self.last_id.to_string())
    }

    /// The object of type `object` whose `property` is `value` (emails compare without case),
    /// other than `except`.
    fn holder(
        &self,
        object: CrmObject,
        property: &str,
        value: &str,
        except: Option<&CrmId>,
    ) -> Option<CrmId> {
        self.objects
            .iter()
            .find(|((o, id), props)| {
                *o == object
                    && Some(id) != except
                    && props
                        .get(property)
                        .is_some_and(|v| v.eq_ignore_ascii_case(value))
            })
            .map(|((_, id), _)| id.clone())
    }

    /// The object that already holds a unique value `properties` would write onto `id`.
    fn unique_clash(
        &self,
        object: CrmObject,
        id: Option<&CrmId>,
        properties: &Properties,
    ) -> Option<(CrmId, String)> {
        if let Some(value) = properties.get(ID_PROPERTY).filter(|v| !v.is_empty())
            && let Some(other) = self.holder(object, ID_PROPERTY, value, id)
        {
            let message = format!("{ID_PROPERTY} {value} is already used by object {other}");
            return Some((other, message));
        }
        let email = properties.get("email").filter(|v| !v.is_empty());
        match (object, email) {
            (CrmObject::Contacts, Some(email)) => self
                .holder(object, "email", email, id)
                .map(|other| (other.clone(), email_conflict(&other))),
            _ => None,
        }
    }
}

impl MemoryCrm {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next call of kind `op` fails with `error` (queue several for several calls).
    pub fn fail_next(&self, op: CrmOp, error: CrmError) {
        self.state()
            .failures
            .entry(op)
            .or_default()
            .push_back(error);
    }

    /// The next `creates` creates are applied — the object exists, its associations are made
    /// — but answer [`CrmError::OutcomeUnknown`], as a HubSpot create answered 502 or timed
    /// out after the write does.
    pub fn lose_next_create_answers(&self, creates: usize) {
        self.state().lost_create_answers += creates;
    }

    /// Every marker search made, in order: (object, Attio id).
    pub fn searches(&self) -> Vec<(CrmObject, String)> {
        self.state().searches.clone()
    }

    /// Every upsert refuses the input for `attio_record_id`, as a per-item failure.
    pub fn refuse(&self, attio_record_id: &str, message: &str, permanent: bool) {
        let class = if permanent {
            ErrorClass::Permanent
        } else {
            ErrorClass::Transient
        };
        self.state()
            .refused
            .insert(attio_record_id.to_owned(), (message.to_owned(), class));
    }

    /// Puts an object in the portal without logging an operation: data that was there before
    /// the relay (a contact created by hand, an import). Returns its id.
    pub fn seed(&self, object: CrmObject, properties: Properties) -> CrmId {
        let mut state = self.state();
        let id = state.new_id();
        state.objects.insert((object, id.clone()), properties);
        id
    }

    /// Merges keep the primary's id, as in a portal with Primary ID Preservation; by default a
    /// merge makes a new id, as HubSpot usually does.
    pub fn preserve_primary_ids(&self) {
        self.state().preserve_primary_ids = true;
    }

    /// The object `id` is now: itself, or what merges made of it (HubSpot moves a merged
    /// object's notes, tasks and associations to the merged one); `None` once archived.
    pub fn current_id(&self, object: CrmObject, id: &CrmId) -> Option<CrmId> {
        let state = self.state();
        let mut id = id.clone();
        while let Some(next) = state.merged_into.get(&(object, id.clone())) {
            id = next.clone();
        }
        state
            .objects
            .contains_key(&(object, id.clone()))
            .then_some(id)
    }

    /// Adds a HubSpot owner (a user of the portal) with this email.
    pub fn add_owner(&self, email: &str, id: &str) {
        self.state()
            .owners
            .insert(email.to_ascii_lowercase(), CrmId(id.to_owned()));
    }

    /// The emails owners were looked up by, in order (failed lookups included).
    pub fn owner_lookups(&self) -> Vec<String> {
        self.state().owner_lookups.clone()
    }

    /// Every object of type `object` the portal holds, by id.
    pub fn objects(&self, object: CrmObject) -> BTreeMap<CrmId, Properties> {
        self.state()
            .objects
            .iter()
            .filter(|((o, _), _)| *o == object)
            .map(|((_, id), props)| (id.clone(), props.clone()))
            .collect()
    }

    /// The associations the portal holds, each once (HubSpot keeps one default association
    /// per pair of records, however often it is made): records' links, and the records notes
    /// and tasks were created with.
    pub fn associations(&self) -> Vec<Link> {
        self.state().associations.iter().cloned().collect()
    }

    /// Associates two records as a HubSpot user does by hand: no operation is logged, and the
    /// sync never made it, so it must never remove it.
    pub fn associate_by_hand(&self, link: Link) {
        self.state().associations.insert(link);
    }

    /// Every operation made so far, in order (calls told to fail made none).
    pub fn calls(&self) -> Vec<OutboxEntry> {
        self.state().done.clone()
    }

    /// The state for one call of kind `op`, or the failure queued for it.
    fn begin(&self, op: CrmOp) -> Result<MutexGuard<'_, State>, CrmError> {
        let mut state = self.state();
        match state.failures.get_mut(&op).and_then(VecDeque::pop_front) {
            Some(error) => Err(error),
            None => Ok(state),
        }
    }
}

impl CrmSink for MemoryCrm {
    async fn upsert_records(
        &self,
        object: CrmObject,
        records: &[RecordUpsert],
    ) -> Result<UpsertReport, CrmError> {
        let mut state = self.begin(CrmOp::Upsert)?;
        state.done.push(OutboxEntry::Upsert {
            object,
            records: records.to_vec(),
        });
        let mut report = UpsertReport::default();
        for record in records {
            let attio_id = &record.attio_record_id;
            if let Some((message, class)) = state.refused.get(attio_id) {
                report.failures.push(ItemFailure {
                    attio_record_id: attio_id.clone(),
                    category: None,
                    message: message.clone(),
                    class: *class,
                    existing: None,
                });
                continue;
            }
            let mut properties = record.properties.clone();
            properties.insert(ID_PROPERTY.into(), attio_id.clone());
            let id = state.holder(object, ID_PROPERTY, attio_id, None);
            if let Some((other, message)) = state.unique_clash(object, id.as_ref(), &properties) {
                report.failures.push(ItemFailure {
                    attio_record_id: attio_id.clone(),
                    category: Some("CONFLICT".into()),
                    message,
                    class: ErrorClass::Permanent,
                    existing: Some(other),
                });
                continue;
            }
            let id = id.unwrap_or_else(|| state.new_id());
            state.write_properties(object, &id, &properties, source::Writer::Relay);
            report.ids.insert(attio_id.clone(), id);
        }
        Ok(report)
    }

    async fn create(
        &self,
        object: CrmObject,
        properties: &Properties,
        associations: &[Association],
    ) -> Result<CrmId, CrmError> {
        let mut state = self.begin(CrmOp::Create)?;
        if let Some((_, message)) = state.unique_clash(object, None, properties) {
            return Err(conflict(format!("create {object}"), message));
        }
        let id = state.new_id();
        state
            .objects
            .insert((object, id.clone()), properties.clone());
        for a in associations {
            state
                .associations
                .insert((object, id.clone(), a.to, a.id.clone()));
        }
        state.done.push(OutboxEntry::Create {
            object,
            id: id.clone(),
            properties: properties.clone(),
            associations: associations.to_vec(),
        });
        if state.lost_create_answers > 0 {
            state.lost_create_answers -= 1;
            return Err(CrmError::OutcomeUnknown {
                operation: format!("create {object}"),
                message: "HTTP 502 (the write was applied)".into(),
            });
        }
        Ok(id)
    }

    /// As HubSpot's search with an `EQ` filter on the marker, without its indexing delay.
    async fn find_by_marker(
        &self,
        object: CrmObject,
        attio_id: &str,
    ) -> Result<Vec<CrmId>, CrmError> {
        self.state().searches.push((object, attio_id.to_owned()));
        let state = self.begin(CrmOp::Search)?;
        let Some(marker) = marker_property(object) else {
            return Ok(Vec::new());
        };
        let mut found: Vec<CrmId> = state
            .objects
            .iter()
            .filter(|((o, _), props)| {
                *o == object && props.get(marker).map(String::as_str) == Some(attio_id)
            })
            .map(|((_, id), _)| id.clone())
            .collect();
        found.sort_by_key(|id| id.0.parse::<u64>().unwrap_or(u64::MAX));
        Ok(found)
    }

    /// Updates (or, for an id it never saw, starts holding) the object; an archived or merged
    /// away one is not found.
    async fn update(
        &self,
        object: CrmObject,
        id: &CrmId,
        properties: &Properties,
    ) -> Result<(), CrmError> {
        let mut state = self.begin(CrmOp::Update)?;
        let key = (object, id.clone());
        if state.merged_into.contains_key(&key) || state.archived.contains_key(&key) {
            return Err(CrmError::NotFound {
                operation: format!("update {object}"),
            });
        }
        if let Some((_, message)) = state.unique_clash(object, Some(id), properties) {
            return Err(conflict(format!("update {object}"), message));
        }
        state.write_properties(object, id, properties, source::Writer::Relay);
        state.done.push(OutboxEntry::Update {
            object,
            id: id.clone(),
            properties: properties.clone(),
        });
        Ok(())
    }

    async fn read(
        &self,
        object: CrmObject,
        id: &CrmId,
        properties: &[&str],
    ) -> Result<Option<Properties>, CrmError> {
        let state = self.begin(CrmOp::Read)?;
        Ok(state.objects.get(&(object, id.clone())).map(|held| {
            held.iter()
                .filter(|(k, _)| properties.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }))
    }

    async fn archive(&self, object: CrmObject, id: &CrmId) -> Result<(), CrmError> {
        let mut state = self.begin(CrmOp::Archive)?;
        if let Some(held) = state.objects.remove(&(object, id.clone())) {
            state.archived.insert((object, id.clone()), held);
        }
        state.done.push(OutboxEntry::Archive {
            object,
            id: id.clone(),
        });
        Ok(())
    }

    /// As HubSpot's `POST /crm/v3/objects/{type}/merge`: both objects become one, with a NEW id
    /// unless the portal preserves primary ids, holding the primary's values with the
    /// duplicate's filling the gaps; merging an id the portal no longer holds (merged or
    /// archived already) answers not found.
    /// https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/basic/post-crm-v3-objects-contacts-merge
    async fn merge(
        &self,
        object: CrmObject,
        primary: &CrmId,
        duplicate: &CrmId,
    ) -> Result<CrmId, CrmError> {
        let mut state = self.begin(CrmOp::Merge)?;
        let (pk, dk) = ((object, primary.clone()), (object, duplicate.clone()));
        if primary == duplicate
            || !state.objects.contains_key(&pk)
            || !state.objects.contains_key(&dk)
        {
            return Err(CrmError::NotFound {
                operation: format!("merge {object}"),
            });
        }
        let primary_values = state.objects.remove(&pk).unwrap_or_default();
        let mut values = state.objects.remove(&dk).unwrap_or_default();
        values.extend(primary_values);
        let id = if state.preserve_primary_ids {
            primary.clone()
        } else {
            let id = state.new_id();
            state.merged_into.insert(pk, id.clone());
            id
        };
        state.merged_into.insert(dk, id.clone());
        state.objects.insert((object, id.clone()), values);
        state.done.push(OutboxEntry::Merge {
            object,
            primary: primary.clone(),
            duplicate: duplicate.clone(),
        });
        Ok(id)
    }

    /// As HubSpot's default association PUT: both records must exist (else not found), and
    /// making an association the portal holds already changes nothing.
    async fn associate(
        &self,
        from: CrmObject,
        from_id: &CrmId,
        to: CrmObject,
        to_id: &CrmId,
    ) -> Result<(), CrmError> {
        let mut state = self.begin(CrmOp::Associate)?;
        let held = |o: CrmObject, id: &CrmId| state.objects.contains_key(&(o, id.clone()));
        if !held(from, from_id) || !held(to, to_id) {
            return Err(CrmError::NotFound {
                operation: format!("associate {from} with {to}"),
            });
        }
        state
            .associations
            .insert((from, from_id.clone(), to, to_id.clone()));
        state.done.push(OutboxEntry::Associate {
            from,
            from_id: from_id.clone(),
            to,
            to_id: to_id.clone(),
        });
        Ok(())
    }

    /// As HubSpot's pair DELETE: every association between the two goes; a pair that is not
    /// associated, or a record that is gone, is no error (the HubSpot adapter reads the 404 the
    /// same way).
    async fn dissociate(
        &self,
        from: CrmObject,
        from_id: &CrmId,
        to: CrmObject,
        to_id: &CrmId,
    ) -> Result<(), CrmError> {
        let mut state = self.begin(CrmOp::Dissociate)?;
        state
            .associations
            .remove(&(from, from_id.clone(), to, to_id.clone()));
        state.done.push(OutboxEntry::Dissociate {
            from,
            from_id: from_id.clone(),
            to,
            to_id: to_id.clone(),
        });
        Ok(())
    }

    async fn owner_by_email(&self, email: &str) -> Result<Option<CrmId>, CrmError> {
        self.state().owner_lookups.push(email.to_owned());
        let state = self.begin(CrmOp::Owner)?;
        Ok(state.owners.get(&email.to_ascii_lowercase()).cloned())
    }
}

/// HubSpot's 409 for a write that would duplicate a unique value.
fn conflict(operation: String, message: String) -> CrmError {
    CrmError::Rejected {
        operation,
        status: 409,
        category: Some("CONFLICT".into()),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(id: &str) -> RecordUpsert {
        RecordUpsert {
            attio_record_id: id.into(),
            properties: Properties::new(),
        }
    }

    #[tokio::test]
    async fn upserts_keep_ids_refusals_are_per_item_and_failures_are_used_once() {
        let crm = MemoryCrm::new();
        crm.refuse("bad", "INVALID_EMAIL", true);
        let first = crm
            .upsert_records(CrmObject::Contacts, &[upsert("a"), upsert("bad")])
            .await
            .expect("upsert");
        assert_eq!(first.failures.len(), 1);
        assert_eq!(first.failures[0].attio_record_id, "bad");
        let again = crm
            .upsert_records(CrmObject::Contacts, &[upsert("a")])
            .await
            .expect("upsert");
        assert_eq!(first.ids["a"], again.ids["a"]);

        crm.fail_next(
            CrmOp::Create,
            CrmError::Unavailable {
                operation: "create".into(),
                message: "503".into(),
            },
        );
        let notes = CrmObject::Notes;
        assert!(crm.create(notes, &Properties::new(), &[]).await.is_err());
        let created = crm.create(notes, &Properties::new(), &[]).await;
        assert_ne!(created.expect("create"), first.ids["a"]);
        // The failed create made nothing.
        assert_eq!(crm.calls().len(), 3);
    }

    fn with_email(id: &str, email: &str) -> RecordUpsert {
        RecordUpsert {
            attio_record_id: id.into(),
            properties: [("email".to_owned(), email.to_owned())].into(),
        }
    }

    #[tokio::test]
    async fn a_second_contact_for_an_existing_email_is_refused_as_hubspot_does() {
        let crm = MemoryCrm::new();
        let existing = crm.seed(
            CrmObject::Contacts,
            [("email".to_owned(), "Ada@Example.com".to_owned())].into(),
        );
        let report = crm
            .upsert_records(
                CrmObject::Contacts,
                &[
                    with_email("a", "ada@example.com"),
                    with_email("b", "b@example.com"),
                ],
            )
            .await
            .expect("upsert");
        assert_eq!(report.ids.len(), 1, "{report:?}");
        let refused = &report.failures[0];
        assert_eq!(refused.attio_record_id, "a");
        assert_eq!(refused.existing.as_ref(), Some(&existing));
        assert_eq!(
            refused.message,
            format!("Contact already exists. Existing ID: {existing}")
        );
        assert_eq!(refused.category.as_deref(), Some("CONFLICT"));
        // Adopting it by id works; a create with the same email does not.
        let adopt: Properties = [(ID_PROPERTY.to_owned(), "a".to_owned())].into();
        crm.update(CrmObject::Contacts, &existing, &adopt)
            .await
            .expect("adopt");
        let again = crm
            .upsert_records(CrmObject::Contacts, &[with_email("a", "ada@example.com")])
            .await
            .expect("upsert");
        assert_eq!(again.ids["a"], existing);
        let err = crm
            .create(
                CrmObject::Contacts,
                &[("email".to_owned(), "b@example.com".to_owned())].into(),
                &[],
            )
            .await
            .expect_err("duplicate email");
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert_eq!(crm.objects(CrmObject::Contacts).len(), 2);
        // Companies have no unique domain.
        let domain = |id: &str| RecordUpsert {
            attio_record_id: id.into(),
            properties: [("domain".to_owned(), "example.com".to_owned())].into(),
        };
        let companies = crm
            .upsert_records(CrmObject::Companies, &[domain("c1"), domain("c2")])
            .await
            .expect("upsert");
        assert_eq!(companies.ids.len(), 2);
    }

    #[tokio::test]
    async fn a_merge_makes_one_object_with_a_new_id_unless_primary_ids_are_preserved() {
        let crm = MemoryCrm::new();
        let c = CrmObject::Contacts;
        let props = |pairs: &[(&str, &str)]| -> Properties {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let a = crm.seed(c, props(&[("email", "a@x.com"), ("firstname", "Ada")]));
        let b = crm.seed(c, props(&[("email", "b@x.com"), ("phone", "1")]));
        let merged = crm.merge(c, &a, &b).await.expect("merge");
        assert!(
            merged != a && merged != b,
            "HubSpot usually answers a new id"
        );
        let held = crm.objects(c);
        assert_eq!(held.len(), 1);
        assert_eq!(
            held[&merged]["email"], "a@x.com",
            "the primary's value wins"
        );
        assert_eq!(held[&merged]["phone"], "1", "the duplicate fills the gaps");
        assert_eq!(crm.current_id(c, &a), Some(merged.clone()));
        assert_eq!(crm.current_id(c, &b), Some(merged.clone()));
        let again = crm.merge(c, &a, &b).await.expect_err("already merged");
        assert!(matches!(again, CrmError::NotFound { .. }));
        let stale = crm.update(c, &a, &props(&[("x", "y")])).await;
        assert!(matches!(stale, Err(CrmError::NotFound { .. })));

        let kept = MemoryCrm::new();
        kept.preserve_primary_ids();
        let a = kept.seed(c, props(&[("email", "a@x.com")]));
        let b = kept.seed(c, props(&[("email", "b@x.com")]));
        assert_eq!(kept.merge(c, &a, &b).await.expect("merge"), a);
        assert_eq!(kept.current_id(c, &b), Some(a));
    }

    #[tokio::test]
    async fn dissociating_removes_only_that_pair_and_is_idempotent() {
        let crm = MemoryCrm::new();
        let c = CrmObject::Contacts;
        let ada = crm.seed(c, Properties::new());
        let acme = crm.seed(CrmObject::Companies, Properties::new());
        let globex = crm.seed(CrmObject::Companies, Properties::new());
        for company in [&acme, &globex] {
            crm.associate(c, &ada, CrmObject::Companies, company)
                .await
                .expect("associate");
        }
        for _ in 0..2 {
            crm.dissociate(c, &ada, CrmObject::Companies, &acme)
                .await
                .expect("removing twice succeeds");
        }
        assert_eq!(crm.associations(), [(c, ada, CrmObject::Companies, globex)]);
    }
}
