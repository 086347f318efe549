//! The `hubspot` queue's consumer: HubSpot changes to fields that flow back, written to Attio.
//!
//! A batch is read once: events the relay caused are dropped first (`hubspot_events.rs`), the
//! rest grouped by object, the objects read with one HubSpot batch read per 100
//! ([`relay_crm::CrmSource`], with property history), their ledgers with one read, and their
//! Attio records with one query. Per object:
//! * the Attio record is the one its `attio_record_id` names; without one (a contact or
//!   company made in HubSpot) the record is asserted by email (people) or domain (companies),
//!   `attio_record_id` written back to HubSpot and the mapping stored. Deals have no matching
//!   key and are left alone until the relay synced them;
//! * each changed field that flows back is compared with the ledger and Attio's current value
//!   (`two_way::verdict`): HubSpot's change is written (one `update_record` per record, through
//!   the Attio writes budget of the adapter), Attio's own change is left to the records
//!   consumer, a conflict goes to the later change and is stored; the ledger records the result.
//!   A `hubspot_to_attio` field is HubSpot's: its value is written whenever it differs.
//!
//! Deletions are as configured (`HUBSPOT_DELETIONS`, `deletions.rs`): acked with a log line
//! by default (deleting people in Attio because a HubSpot contact was archived is not a safe
//! default), the Attio record deleted with `delete`. A deal's `dealstage`/`pipeline` change is
//! one field, the stage (`stage.rs`), when the mapping's stage flows back. Merges re-point the mapping to the
//! merged object when it carries `attio_record_id`; association changes and unknown types are
//! acked. Unreadable messages are acked with a log line too: retrying cannot make them readable.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use relay_attio::{AttioApi, AttioValues, AttioWriter, Record};
use relay_crm::{CrmId, CrmObject, CrmRecordState, CrmSink, ID_PROPERTY, Properties};
use relay_mappings::{IdMappings, Ledger, Side, SyncDirection, Synced};

use super::hubspot_events::{HubspotChange, HubspotChangeKind, HubspotMessage};
use super::values::{attio_changed_at, write_value};
use super::{
    HubspotDeletions, SideValue, TwoWay, Verdict, agreed_entry, conflict, hubspot_side, need_times,
    verdict,
};
use crate::context::{StepError, SyncContext};
use crate::field_mapping::{PIPELINE_PROPERTY, STAGE_PROPERTY, StageMapping};
use crate::{Budget, Direction, Disposition, MessageOutcome, OwnerIds, PropertySpec, RecordValues};

/// HubSpot objects per batch read (HubSpot's batch read takes up to 100 ids).
const READ_BATCH: usize = 100;

/// The HubSpot property and Attio attribute an unlinked object is matched by.
fn matching_key(object: CrmObject) -> Option<(&'static str, &'static str)> {
    match object {
        CrmObject::Contacts => Some(("email", "email_addresses")),
        CrmObject::Companies => Some(("domain", "domains")),
        _ => None,
    }
}

/// Everything a batch says about one HubSpot object.
struct ObjectWork {
    object: CrmObject,
    id: CrmId,
    message_ids: Vec<String>,
    /// Properties changed; `None`: all (a creation).
    changed: Option<BTreeSet<String>>,
}

/// The consumer of the `hubspot` queue.
#[derive(Debug)]
pub struct HubspotHandler<S, M, A> {
    ctx: Arc<SyncContext<S, M, A>>,
}

/// The hubspot consumer was built over a context without two-way sync: a deployment mistake
/// (the ledger, conflicts or CRM source not configured), refused when the function starts —
/// not found out per message, which would retry every message into the dead-letter queue.
#[derive(Debug, thiserror::Error)]
#[error(
    "the hubspot consumer needs two-way sync configured (the sync ledger, conflicts table and HubSpot source: SyncContext::with_two_way)"
)]
pub struct TwoWayNotConfigured;

impl<S, M, A> HubspotHandler<S, M, A> {
    /// The consumer over `ctx`, which must have two-way sync on.
    pub fn new(ctx: Arc<SyncContext<S, M, A>>) -> Result<Self, TwoWayNotConfigured> {
        if ctx.two_way.is_none() {
            return Err(TwoWayNotConfigured);
        }
        Ok(Self { ctx })
    }
}

fn done(out: &mut Vec<MessageOutcome>, ids: &[String], d: &Disposition) {
    out.extend(ids.iter().map(|id| MessageOutcome {
        message_id: id.clone(),
        disposition: d.clone(),
    }));
}

impl<S: CrmSink, M: IdMappings, A: AttioApi + AttioWriter> HubspotHandler<S, M, A> {
    /// One outcome per message, without a deadline.
    pub async fn handle(&self, messages: &[HubspotMessage]) -> Vec<MessageOutcome> {
        self.handle_within(messages, &Budget::unlimited()).await
    }

    /// [`Self::handle`] under a deadline: a group (a merge, or a chunk of up to 100 objects of
    /// one type) starts only while `budget` allows; the messages of groups left unstarted end
    /// [`Disposition::Deferred`], as in the Attio consumers, so an invocation never dies
    /// between an Attio write and its ledger entry.
    pub async fn handle_within(
        &self,
        messages: &[HubspotMessage],
        budget: &Budget,
    ) -> Vec<MessageOutcome> {
        let mut stopped = false;
        let mut may_start = || {
            stopped = stopped || !budget.may_start();
            !stopped
        };
        let mut out = Vec::new();
        let Some(two_way) = &self.ctx.two_way else {
            // Not reached: `new` refuses a context without two-way sync.
            let d = Disposition::retry("two-way sync is not configured for this consumer");
            let ids: Vec<String> = messages.iter().map(|m| m.message_id.clone()).collect();
            done(&mut out, &ids, &d);
            return out;
        };
        let app_id = two_way.settings.hubspot_app_id.as_deref();
        let mut work: Vec<ObjectWork> = Vec::new();
        for message in messages {
            let id = std::slice::from_ref(&message.message_id);
            let change = match HubspotChange::parse(&message.body) {
                Ok(change) => change,
                Err(why) => {
                    tracing::warn!(message_id = %message.message_id, %why, "unreadable HubSpot event; acknowledged");
                    done(&mut out, id, &Disposition::Done);
                    continue;
                }
            };
            if change.caused_by(app_id) {
                tracing::debug!(message_id = %message.message_id, "the relay's own HubSpot write; dropped");
                done(&mut out, id, &Disposition::Done);
                continue;
            }
            if change.kind == HubspotChangeKind::Deletion
                && two_way.settings.deletions == HubspotDeletions::Delete
            {
                let d = if may_start() {
                    self.ctx
                        .hubspot_deleted(two_way, change.object, &change.object_id)
                        .await
                } else {
                    Disposition::Deferred
                };
                done(&mut out, id, &d);
                continue;
            }
            let Some((_, mapping)) = self.ctx.fields.reverse_object(change.object) else {
                tracing::info!(message_id = %message.message_id, object = %change.object, "no property of this object flows back to Attio; acknowledged");
                done(&mut out, id, &Disposition::Done);
                continue;
            };
            let property = match &change.kind {
                HubspotChangeKind::Property(p) => {
                    let flows = mapping
                        .properties
                        .get(p)
                        .is_some_and(|s| s.direction.to_attio());
                    // A deal's pipeline and stage are one field, `dealstage` in the ledger.
                    let stage = (p == STAGE_PROPERTY || p == PIPELINE_PROPERTY)
                        && mapping.stage_back().is_some();
                    if stage {
                        Some(STAGE_PROPERTY.to_owned())
                    } else if flows {
                        Some(p.clone())
                    } else {
                        done(&mut out, id, &Disposition::Done);
                        continue;
                    }
                }
                HubspotChangeKind::Creation => None,
                HubspotChangeKind::Merge { survivor, merged } => {
                    let d = if may_start() {
                        self.merged(two_way, change.object, survivor, merged).await
                    } else {
                        Disposition::Deferred
                    };
                    done(&mut out, id, &d);
                    continue;
                }
                HubspotChangeKind::Deletion | HubspotChangeKind::Other(_) => {
                    tracing::info!(message_id = %message.message_id, object = %change.object, crm_id = %change.object_id, kind = ?change.kind, "not synced back to Attio; acknowledged");
                    done(&mut out, id, &Disposition::Done);
                    continue;
                }
            };
            let at = work
                .iter()
                .position(|w| w.object == change.object && w.id == change.object_id);
            let entry = match at {
                Some(at) => &mut work[at],
                None => {
                    work.push(ObjectWork {
                        object: change.object,
                        id: change.object_id.clone(),
                        message_ids: Vec::new(),
                        changed: Some(BTreeSet::new()),
                    });
                    work.last_mut().expect("pushed")
                }
            };
            entry.message_ids.push(message.message_id.clone());
            match (property, &mut entry.changed) {
                (Some(p), Some(set)) => {
                    set.insert(p);
                }
                (None, changed) => *changed = None,
                (Some(_), None) => {}
            }
        }
        let mut by_object: BTreeMap<CrmObject, Vec<ObjectWork>> = BTreeMap::new();
        for w in work {
            by_object.entry(w.object).or_default().push(w);
        }
        for (object, works) in by_object {
            let mut works = works.into_iter().peekable();
            while works.peek().is_some() {
                let chunk: Vec<ObjectWork> = works.by_ref().take(READ_BATCH).collect();
                if may_start() {
                    self.chunk(two_way, object, chunk, &mut out).await;
                } else {
                    for w in &chunk {
                        done(&mut out, &w.message_ids, &Disposition::Deferred);
                    }
                }
            }
        }
        out
    }

    /// A HubSpot merge: the surviving object (`newObjectId`, else the primary) keeps one
    /// `attio_record_id`; that record's mapping is pointed at it so later syncs write the
    /// merged object. The survivor and the merged ids are read together: an Attio record still
    /// mapped to a merged id is re-pointed too when HubSpot still answers that id with its
    /// `attio_record_id` (a merged-away object is normally gone from reads; its record's next
    /// forward sync then meets the survivor through the upsert's email conflict and adoption).
    async fn merged(
        &self,
        two_way: &TwoWay,
        object: CrmObject,
        survivor: &CrmId,
        merged: &[CrmId],
    ) -> Disposition {
        let mut ids = vec![survivor.clone()];
        ids.extend(merged.iter().cloned());
        let read = two_way.stores.read_crm(object, &ids, &[ID_PROPERTY]).await;
        let states = match read {
            Ok(states) => states,
            Err(err) => return StepError::from(err).0,
        };
        if !states.iter().any(|s| &s.id == survivor) {
            // HubSpot answers the merged object a moment after the merge: not yet readable.
            return Disposition::retry(format!(
                "HubSpot merged object {survivor} is not readable yet"
            ));
        }
        let owners: BTreeSet<String> = states
            .iter()
            .filter_map(|s| s.properties.get(ID_PROPERTY).cloned().flatten())
            .collect();
        for owner in owners {
            let current = match self.ctx.mappings.get(object, &owner).await {
                Ok(current) => current,
                Err(err) => return StepError::from(err).0,
            };
            if current.as_ref() == Some(survivor) {
                continue;
            }
            if let Err(err) = self.ctx.mappings.put(object, &owner, survivor).await {
                return StepError::from(err).0;
            }
            tracing::info!(crm_id = %survivor, merged = ?merged, record_id = %owner, "HubSpot merged objects; mapping re-pointed");
        }
        Disposition::Done
    }

    /// One chunk of objects of one type: read, match, compare, write.
    async fn chunk(
        &self,
        two_way: &TwoWay,
        object: CrmObject,
        works: Vec<ObjectWork>,
        out: &mut Vec<MessageOutcome>,
    ) {
        let Some((slug, mapping)) = self.ctx.fields.reverse_object(object) else {
            return;
        };
        let reverse: Vec<(&str, &PropertySpec)> = mapping
            .properties
            .iter()
            .filter(|(_, s)| s.direction.to_attio())
            .map(|(p, s)| (p.as_str(), s))
            .collect();
        let mut asked: BTreeSet<&str> = reverse.iter().map(|(p, _)| *p).collect();
        asked.insert(ID_PROPERTY);
        if mapping.stage_back().is_some() {
            asked.extend([STAGE_PROPERTY, PIPELINE_PROPERTY]);
        }
        if let Some((key, _)) = matching_key(object) {
            asked.insert(key);
        }
        let asked: Vec<&str> = asked.into_iter().collect();
        let ids: Vec<CrmId> = works.iter().map(|w| w.id.clone()).collect();
        let states = match two_way.stores.read_crm(object, &ids, &asked).await {
            Ok(states) => states,
            Err(err) => {
                let d = StepError::from(err).0;
                for w in &works {
                    done(out, &w.message_ids, &d);
                }
                return;
            }
        };

        // The Attio record of each object: linked, or asserted now.
        let mut linked: Vec<(ObjectWork, CrmRecordState, String, Option<Record>)> = Vec::new();
        for w in works {
            let Some(state) = states.iter().find(|s| s.id == w.id).cloned() else {
                tracing::info!(crm_id = %w.id, "HubSpot no longer holds the object (archived or merged); acknowledged");
                done(out, &w.message_ids, &Disposition::Done);
                continue;
            };
            match state.properties.get(ID_PROPERTY).cloned().flatten() {
                Some(record_id) => match self.mapped(object, &record_id, &state.id).await {
                    Ok(true) => linked.push((w, state, record_id, None)),
                    Ok(false) => done(out, &w.message_ids, &Disposition::Done),
                    Err(StepError(d)) => done(out, &w.message_ids, &d),
                },
                None => match self.link(two_way, object, slug, &state).await {
                    Ok(Some(record)) => {
                        let record_id = record.record_id().to_owned();
                        linked.push((w, state, record_id, Some(record)));
                    }
                    Ok(None) => done(out, &w.message_ids, &Disposition::Done),
                    Err(StepError(d)) => done(out, &w.message_ids, &d),
                },
            }
        }
        if linked.is_empty() {
            return;
        }
        // Locked before the state compared is read, until the ledger is written
        // (`locks.rs`): HubSpot is read again under the lock, Attio read under it.
        let mut held = super::Held::default();
        let record_ids: Vec<String> = linked.iter().map(|(_, _, r, _)| r.clone()).collect();
        let refused = self.ctx.lock_records(object, &record_ids, &mut held).await;
        let linked: Vec<_> = linked
            .into_iter()
            .filter(|(w, _, record_id, _)| match refused.get(record_id) {
                Some(d) => {
                    done(out, &w.message_ids, d);
                    false
                }
                None => true,
            })
            .collect();
        if !linked.is_empty() {
            self.locked(two_way, object, slug, &reverse, &asked, linked, out)
                .await;
        }
        self.ctx.unlock_records(held).await;
    }

    /// The objects of a chunk whose records are locked: HubSpot's state read again, the
    /// ledgers and Attio's records read, each object settled.
    #[allow(clippy::too_many_arguments)]
    async fn locked(
        &self,
        two_way: &TwoWay,
        object: CrmObject,
        slug: &str,
        reverse: &[(&str, &PropertySpec)],
        asked: &[&str],
        linked: Vec<(ObjectWork, CrmRecordState, String, Option<Record>)>,
        out: &mut Vec<MessageOutcome>,
    ) {
        let crm_ids: Vec<CrmId> = linked.iter().map(|(w, _, _, _)| w.id.clone()).collect();
        let record_ids: Vec<String> = linked.iter().map(|(_, _, r, _)| r.clone()).collect();
        let states = two_way.stores.read_crm(object, &crm_ids, asked).await;
        let ledgers = two_way.stores.ledgers(object, &record_ids).await;
        let unread: Vec<String> = linked
            .iter()
            .filter(|(_, _, _, r)| r.is_none())
            .map(|(_, _, id, _)| id.clone())
            .collect();
        let records = if unread.is_empty() {
            Ok(Vec::new())
        } else {
            self.ctx.attio.get_records(slug, &unread).await
        };
        let (states, ledgers, records) = match (states, ledgers, records) {
            (Ok(s), Ok(l), Ok(r)) => (s, l, r),
            (Err(err), _, _) => return fail_all(out, &linked, StepError::from(err).0),
            (_, Err(err), _) => return fail_all(out, &linked, StepError::from(err).0),
            (_, _, Err(err)) => return fail_all(out, &linked, StepError::from(err).0),
        };
        for (w, _, record_id, asserted) in linked {
            let Some(state) = states.iter().find(|s| s.id == w.id) else {
                tracing::info!(crm_id = %w.id, "HubSpot no longer holds the object (archived or merged); acknowledged");
                done(out, &w.message_ids, &Disposition::Done);
                continue;
            };
            let now_names = state.properties.get(ID_PROPERTY).cloned().flatten();
            if asserted.is_none() && now_names.as_deref() != Some(record_id.as_str()) {
                let d = Disposition::retry(format!(
                    "HubSpot object {} was re-linked while it was read",
                    w.id
                ));
                done(out, &w.message_ids, &d);
                continue;
            }
            let record =
                asserted.or_else(|| records.iter().find(|r| r.record_id() == record_id).cloned());
            let record = match record {
                Some(record) => record,
                None => match self.missing(object, slug, &record_id).await {
                    Ok(record) => record,
                    Err(StepError(d)) => {
                        done(out, &w.message_ids, &d);
                        continue;
                    }
                },
            };
            let ledger = ledgers.get(&record_id).cloned().unwrap_or_default();
            let d = crate::context::disposition(
                self.settle(two_way, object, slug, reverse, &w, state, &record, &ledger)
                    .await,
            );
            done(out, &w.message_ids, &d);
        }
    }

    /// A record the query did not return: the query cannot say why, a `GET` can. Found (the
    /// query missed it): settled as usual. `merge_in_progress` (the new record of a merge being
    /// applied): retried, as Attio's error is transient. `not_found` for a record the relay
    /// buried (its `record.deleted` handled): acknowledged, deletions are not brought back.
    /// `not_found` otherwise is an original merged away, or a deleted record, whose event is
    /// not handled yet: `record.merged` re-points the HubSpot object to the merged record (and
    /// `attio_record_id` with it), `record.deleted` buries it — retried until one has, so the
    /// HubSpot edit reaches the merged record instead of being acknowledged and lost.
    async fn missing(
        &self,
        object: CrmObject,
        slug: &str,
        record_id: &str,
    ) -> Result<Record, StepError> {
        match self.ctx.attio.get_record(slug, record_id).await {
            Ok(record) => Ok(record),
            Err(err) if err.is_record_gone() => {
                if self.ctx.is_buried(object, record_id).await? {
                    tracing::info!(%record_id, "the Attio record was deleted; HubSpot's change acknowledged");
                    return Err(StepError(Disposition::Done));
                }
                Err(StepError(Disposition::retry(format!(
                    "Attio record {record_id} is gone (merged or deleted) and its record.merged or record.deleted is not handled yet"
                ))))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Whether the object carrying `attio_record_id` = `record_id` is the record's HubSpot copy:
    /// the mapping is stored when absent (an object linked by hand or by an older relay, or a
    /// link whose mapping write was lost), so the forward rules find the record synced. An
    /// object whose record is mapped to another object (a copy left by a merge) is not
    /// written from.
    async fn mapped(
        &self,
        object: CrmObject,
        record_id: &str,
        crm_id: &CrmId,
    ) -> Result<bool, StepError> {
        match self.ctx.mappings.get(object, record_id).await? {
            Some(mapped) if &mapped == crm_id => Ok(true),
            Some(mapped) => {
                tracing::warn!(%record_id, %crm_id, %mapped, "the HubSpot object names an Attio record mapped to another object; not synced back");
                Ok(false)
            }
            None => {
                self.ctx.mappings.put(object, record_id, crm_id).await?;
                Ok(true)
            }
        }
    }

    /// An object without `attio_record_id`: its Attio record asserted by email or domain,
    /// `attio_record_id` written back and the mapping stored. `None`: it cannot be matched
    /// (a deal, no email or domain, or the record is linked to another object already).
    async fn link(
        &self,
        _two_way: &TwoWay,
        object: CrmObject,
        slug: &str,
        state: &CrmRecordState,
    ) -> Result<Option<Record>, StepError> {
        let Some((property, attribute)) = matching_key(object) else {
            tracing::info!(crm_id = %state.id, %object, "no attio_record_id and no key to match it by; left alone");
            return Ok(None);
        };
        let Some(key) = state.properties.get(property).cloned().flatten() else {
            tracing::info!(crm_id = %state.id, %object, "no attio_record_id and no {property} to match it by; left alone");
            return Ok(None);
        };
        let mut values = AttioValues::new();
        values.insert(attribute.to_owned(), serde_json::json!([key]));
        let record = self
            .ctx
            .attio
            .assert_record(slug, attribute, &values)
            .await?;
        let record_id = record.record_id();
        if let Some(other) = self.ctx.mappings.get(object, record_id).await?
            && other != state.id
        {
            tracing::warn!(%record_id, crm_id = %state.id, mapped = %other, "the matched Attio record is synced to another HubSpot object; not linked");
            return Ok(None);
        }
        // The mapping first: once `attio_record_id` is on the object, a retry takes the linked
        // path and would never store it (forward would then treat the record as never synced).
        self.ctx.mappings.put(object, record_id, &state.id).await?;
        let link: Properties = [(ID_PROPERTY.to_owned(), record_id.to_owned())].into();
        self.ctx.crm.update(object, &state.id, &link).await?;
        tracing::info!(%record_id, crm_id = %state.id, "HubSpot object matched to Attio and linked");
        Ok(Some(record))
    }

    /// Compares and writes one object's changed fields: the properties flowing back, and the
    /// deal stage when it does (`stage.rs`).
    #[allow(clippy::too_many_arguments)]
    async fn settle(
        &self,
        two_way: &TwoWay,
        object: CrmObject,
        slug: &str,
        reverse: &[(&str, &PropertySpec)],
        work: &ObjectWork,
        state: &CrmRecordState,
        record: &Record,
        ledger: &Ledger,
    ) -> Result<(), StepError> {
        let record_id = record.record_id();
        let now_ms = self.ctx.clock.now() * 1000;
        let source = RecordValues(&record.values);
        let mut to_attio = AttioValues::new();
        let mut to_hubspot = Properties::new();
        let mut entries = Ledger::new();
        let mut conflicts = Vec::new();
        // HubSpot's values written to Attio: their Attio form is read from Attio's answer.
        let mut written: Vec<&Field<'_>> = Vec::new();
        // A name part is written as the whole `name`: when one part changed, every part that
        // flows back is evaluated from the state just read, so the write carries HubSpot's
        // other part too when it also changed (its event may be in another batch, read at
        // another moment) instead of the part Attio held — two batches writing one part each
        // would otherwise put an old part back.
        let is_name = |spec: &PropertySpec| spec.slug_and_field().0 == "name";
        let asked = |p: &str| work.changed.as_ref().is_none_or(|c| c.contains(p));
        let name_changed = reverse.iter().any(|(p, spec)| is_name(spec) && asked(p));
        let mut fields: Vec<Field<'_>> = Vec::new();
        for (property, spec) in reverse {
            if !(asked(property) || (name_changed && is_name(spec))) {
                continue;
            }
            let (hubspot, timed) = hubspot_side(spec, state, property);
            let attio_value = spec.value(&source, &OwnerIds::new()).ok().flatten();
            let attio = SideValue::new(spec, attio_value, attio_changed_at(&record.values, spec));
            fields.push(Field {
                property: (*property).to_owned(),
                spec: (*spec).clone(),
                direction: spec.direction,
                stage: None,
                attio,
                hubspot,
                timed,
            });
        }
        let stage_back = self
            .ctx
            .fields
            .objects
            .get(slug)
            .and_then(|m| m.stage_back());
        if let Some(stage) = stage_back.filter(|_| asked(STAGE_PROPERTY)) {
            let (hubspot, timed) = super::stage::hubspot_side(stage, state);
            fields.push(Field {
                property: STAGE_PROPERTY.to_owned(),
                spec: super::stage::spec(stage),
                direction: stage.direction,
                stage: Some(stage),
                attio: super::stage::attio_side(stage, &record.values),
                hubspot,
                timed,
            });
        }
        for field in &fields {
            let (property, spec, attio, hubspot) =
                (&field.property, &field.spec, &field.attio, &field.hubspot);
            let agreed = ledger.get(property.as_str());
            let mut decided = verdict(agreed, attio, hubspot);
            if field.direction == Direction::HubspotToAttio && decided != Verdict::Same {
                // HubSpot owns it: Attio's edits are not synced and do not conflict.
                decided = Verdict::HubspotChanged;
            }
            let decided = need_times(decided, field.timed, property)?;
            let winner = match decided {
                Verdict::Same => {
                    let entry = agreed_entry(
                        &hubspot.fingerprint,
                        &attio.fingerprint,
                        now_ms,
                        SyncDirection::HubspotToAttio,
                    );
                    let known = agreed.is_some_and(|a| {
                        a.fingerprint == entry.fingerprint && a.attio_side() == entry.attio_side()
                    });
                    if !known {
                        entries.insert(property.clone(), entry);
                    }
                    continue;
                }
                // Attio's own change: the records consumer sends it.
                Verdict::AttioChanged => continue,
                Verdict::HubspotChanged => Side::Hubspot,
                Verdict::Conflict(winner) => {
                    conflicts.push(conflict(
                        object, record_id, &state.id, property, spec, attio, hubspot, winner,
                        now_ms,
                    ));
                    winner
                }
            };
            if winner == Side::Hubspot {
                match field.stage {
                    Some(stage) => {
                        super::stage::write(stage, hubspot.value.as_deref(), &mut to_attio)
                            .map_err(|why| StepError(Disposition::dead_letter(why)))?;
                    }
                    None => write_value(
                        spec,
                        hubspot.value.as_deref(),
                        Some(&record.values),
                        &mut to_attio,
                    ),
                }
                entries.insert(
                    property.clone(),
                    synced(hubspot, now_ms, SyncDirection::HubspotToAttio),
                );
                written.push(field);
            } else {
                match field.stage {
                    Some(stage) => {
                        super::stage::send(stage, attio.value.as_deref(), &mut to_hubspot);
                    }
                    None => {
                        to_hubspot
                            .insert(property.clone(), attio.value.clone().unwrap_or_default());
                    }
                }
                entries.insert(
                    property.clone(),
                    synced(attio, now_ms, SyncDirection::AttioToHubspot),
                );
            }
        }
        for found in &conflicts {
            tracing::info!(%record_id, property = %found.property, winner = found.winner.as_str(), conflict = %found.id, "both sides changed a two-way field; the later change wins");
            two_way.stores.record_conflict(found).await?;
        }
        if !to_attio.is_empty() {
            let stored = self
                .ctx
                .attio
                .update_record(slug, record_id, &to_attio)
                .await?;
            // The ledger keeps the value as Attio stored it too (Attio reformats phone numbers,
            // domains, email case; emptying the first email makes the second one first): the
            // relay's own Attio event is dropped, so a form that differs would otherwise read
            // as an Attio change on the next sync and be sent over the user's HubSpot value.
            let values = RecordValues(&stored.values);
            for field in written {
                let attio_form = match field.stage {
                    Some(stage) => super::stage::attio_side(stage, &stored.values).fingerprint,
                    None => {
                        let now = field.spec.value(&values, &OwnerIds::new()).ok().flatten();
                        SideValue::new(&field.spec, now, 0).fingerprint
                    }
                };
                if let Some(entry) = entries.get_mut(field.property.as_str())
                    && entry.fingerprint != attio_form
                {
                    entry.attio_fingerprint = Some(attio_form);
                }
            }
        }
        if !to_hubspot.is_empty() {
            self.ctx.crm.update(object, &state.id, &to_hubspot).await?;
        }
        if !entries.is_empty() {
            two_way
                .stores
                .record_ledger(object, record_id, &entries)
                .await?;
        }
        Ok(())
    }
}

/// One field of a record both sides hold, as `settle` compares it: a property, or the deal
/// stage (`stage` set; its ledger property is `dealstage`).
struct Field<'a> {
    property: String,
    spec: PropertySpec,
    direction: Direction,
    stage: Option<&'a StageMapping>,
    attio: SideValue,
    hubspot: SideValue,
    timed: bool,
}

fn synced(side: &SideValue, now_ms: i64, direction: SyncDirection) -> Synced {
    Synced {
        fingerprint: side.fingerprint.clone(),
        at_ms: now_ms,
        direction,
        attio_fingerprint: None,
    }
}

fn fail_all(
    out: &mut Vec<MessageOutcome>,
    linked: &[(ObjectWork, CrmRecordState, String, Option<Record>)],
    d: Disposition,
) {
    for (w, _, _, _) in linked {
        done(out, &w.message_ids, &d);
    }
}
