//! The forward rules, inside the records consumer's batch (`record_batch.rs`): before a chunk
//! is upserted, its records' `both` fields are compared with the ledger — one ledger read for
//! the chunk — and, for the records whose Attio value changed, with HubSpot's current value
//! and history — one HubSpot batch read for those. A field is sent only when Attio changed and
//! HubSpot did not, or when both did and Attio's change is the later; a value equal to the
//! ledger's is an echo or unchanged and is never sent (it would overwrite a newer HubSpot
//! change). After the upsert, the ledger records what was sent or found agreed.

use relay_attio::ValueMap;
use relay_crm::{CrmId, CrmObject, CrmRecordState};
use relay_mappings::{IdMappings, Ledger, Side, SyncDirection, Synced};

use super::values::attio_changed_at;
use super::{SideValue, Verdict, agreed_entry, conflict, hubspot_side, need_times, verdict};
use crate::batch::Outcomes;
use crate::context::{StepError, SyncContext};
use crate::field_mapping::{PIPELINE_PROPERTY, STAGE_PROPERTY, StageMapping};
use crate::record_batch::Item;
use crate::{Disposition, OwnerIds, PropertySpec, RecordValues};

/// One `both` field of a record as Attio holds it: a property, or the deal stage (`stage`
/// set: ledger property `dealstage`, sent as `pipeline` and `dealstage`, `stage.rs`).
#[derive(Debug, Clone)]
pub(crate) struct FieldState {
    property: String,
    spec: PropertySpec,
    attio: SideValue,
    stage: Option<StageMapping>,
}

impl FieldState {
    /// HubSpot's side of this field in `state`, and whether HubSpot said when it changed.
    fn hubspot_side(&self, state: &CrmRecordState) -> (SideValue, bool) {
        match &self.stage {
            Some(stage) => super::stage::hubspot_side(stage, state),
            None => hubspot_side(&self.spec, state, &self.property),
        }
    }

    /// The HubSpot properties this field is sent as.
    fn properties(&self) -> &'static [&'static str] {
        if self.stage.is_some() {
            &[STAGE_PROPERTY, PIPELINE_PROPERTY]
        } else {
            &[]
        }
    }

    /// Takes the field out of an upsert.
    fn hold(&self, properties: &mut relay_crm::Properties) {
        properties.remove(&self.property);
        for p in self.properties() {
            properties.remove(*p);
        }
    }
}

/// What to do with one field of one record.
enum Plan {
    Send,
    Hold,
    /// Both sides hold it already (HubSpot in the form of this fingerprint): not sent,
    /// recorded as agreed.
    Agreed(String),
}

impl<S, M: IdMappings, A> SyncContext<S, M, A> {
    /// The `both` fields of one record as Attio holds them; none without two-way sync.
    pub(crate) fn forward_fields(&self, slug: &str, values: &ValueMap) -> Vec<FieldState> {
        if self.two_way.is_none() {
            return Vec::new();
        }
        let source = RecordValues(values);
        let mut fields: Vec<FieldState> = self
            .fields
            .both_ways(slug)
            .into_iter()
            .map(|(property, spec)| {
                let value = spec.value(&source, &OwnerIds::new()).ok().flatten();
                let at = attio_changed_at(values, spec);
                FieldState {
                    property: property.to_owned(),
                    spec: spec.clone(),
                    attio: SideValue::new(spec, value, at),
                    stage: None,
                }
            })
            .collect();
        if let Some(stage) = self.fields.stage_both(slug) {
            fields.push(FieldState {
                property: STAGE_PROPERTY.to_owned(),
                spec: super::stage::spec(stage),
                attio: super::stage::attio_side(stage, values),
                stage: Some(stage.clone()),
            });
        }
        fields
    }

    /// Applies the forward rules to a chunk about to be upserted: each item's `both` fields are
    /// kept in (or taken out of) its properties, its ledger entries planned, conflicts stored.
    /// Items whose rules could not be decided (a store or HubSpot failing) are settled and
    /// left out of the returned chunk.
    pub(crate) async fn forward_chunk<W>(
        &self,
        crm_object: CrmObject,
        items: Vec<Item<W>>,
        outcomes: &mut Outcomes,
    ) -> Vec<Item<W>> {
        let Some(two_way) = &self.two_way else {
            // No ledger to compare with: a `both` property is never sent blindly over what may
            // be a newer HubSpot value (`SyncContext::needs_two_way` tells a binary to refuse
            // to start that way).
            let mut items = items;
            for item in &mut items {
                for property in self.fields.two_way_properties(&item.slug) {
                    item.upsert.properties.remove(property);
                }
            }
            return items;
        };
        if items.iter().all(|i| i.fields.is_empty()) {
            return items;
        }
        let ids: Vec<String> = items
            .iter()
            .filter(|i| !i.fields.is_empty())
            .map(|i| i.upsert.attio_record_id.clone())
            .collect();
        let ledgers = match two_way.stores.ledgers(crm_object, &ids).await {
            Ok(ledgers) => ledgers,
            Err(err) => {
                let StepError(d) = err.into();
                return settle_two_way(items, &d, outcomes);
            }
        };
        let now_ms = self.clock.now() * 1000;

        // Fields unchanged since the ledger are held back; the rest need HubSpot's side,
        // unless the record was never synced (HubSpot holds nothing of it to lose).
        let mut items = items;
        let mut compare: Vec<(usize, CrmId)> = Vec::new();
        let mut kept = Vec::new();
        for (n, mut item) in items.drain(..).enumerate() {
            let ledger = ledgers.get(&item.upsert.attio_record_id);
            let mut changed = false;
            for field in &item.fields {
                let agreed = ledger.and_then(|l| l.get(&field.property));
                if agreed.is_some_and(|a| a.attio_side() == field.attio.fingerprint) {
                    field.hold(&mut item.upsert.properties);
                } else {
                    changed = true;
                }
            }
            if changed {
                match self
                    .mappings
                    .get(crm_object, &item.upsert.attio_record_id)
                    .await
                {
                    Ok(Some(id)) => compare.push((n, id)),
                    Ok(None) => {
                        for field in item.fields.clone() {
                            if ledger.and_then(|l| l.get(&field.property)).is_none() {
                                plan(&mut item, &field, Plan::Send, ledger, now_ms);
                            }
                        }
                    }
                    Err(err) => {
                        outcomes.settle(&item.group, &StepError::from(err).0);
                        continue;
                    }
                }
            }
            kept.push((n, item));
        }
        if compare.is_empty() {
            return kept.into_iter().map(|(_, i)| i).collect();
        }
        let crm_ids: Vec<CrmId> = compare.iter().map(|(_, id)| id.clone()).collect();
        let properties: Vec<&str> = kept
            .iter()
            .flat_map(|(_, i)| {
                i.fields.iter().flat_map(|f| {
                    std::iter::once(f.property.as_str()).chain(f.properties().iter().copied())
                })
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let states = match two_way
            .stores
            .read_crm(crm_object, &crm_ids, &properties)
            .await
        {
            Ok(states) => states,
            Err(err) => {
                let StepError(d) = err.into();
                let (waiting, free): (Vec<_>, Vec<_>) = kept
                    .into_iter()
                    .partition(|(n, _)| compare.iter().any(|(c, _)| c == n));
                for (_, item) in waiting {
                    outcomes.settle(&item.group, &d);
                }
                return free.into_iter().map(|(_, i)| i).collect();
            }
        };
        let mut ready = Vec::new();
        'items: for (n, mut item) in kept {
            let Some((_, crm_id)) = compare.iter().find(|(c, _)| *c == n) else {
                ready.push(item);
                continue;
            };
            let state = states.iter().find(|s| &s.id == crm_id);
            let ledger = ledgers.get(&item.upsert.attio_record_id);
            for field in item.fields.clone() {
                let agreed = ledger.and_then(|l| l.get(&field.property));
                if agreed.is_some_and(|a| a.attio_side() == field.attio.fingerprint) {
                    continue;
                }
                let Some(state) = state else {
                    // HubSpot no longer holds the copy: the upsert makes a new one.
                    plan(&mut item, &field, Plan::Send, ledger, now_ms);
                    continue;
                };
                let record_id = item.upsert.attio_record_id.clone();
                match self
                    .decide(
                        crm_object, &record_id, crm_id, &field, state, agreed, now_ms,
                    )
                    .await
                {
                    Ok(decided) => plan(&mut item, &field, decided, ledger, now_ms),
                    Err(StepError(d)) => {
                        outcomes.settle(&item.group, &d);
                        continue 'items;
                    }
                }
            }
            ready.push(item);
        }
        ready
    }

    /// One field whose Attio value differs from the ledger, against HubSpot's `state`: sent
    /// when only Attio changed or Attio's change is the later; a conflict is stored.
    #[allow(clippy::too_many_arguments)]
    async fn decide(
        &self,
        crm_object: CrmObject,
        record_id: &str,
        crm_id: &CrmId,
        field: &FieldState,
        state: &CrmRecordState,
        agreed: Option<&Synced>,
        now_ms: i64,
    ) -> Result<Plan, StepError> {
        let Some(two_way) = &self.two_way else {
            return Ok(Plan::Hold);
        };
        let (hubspot, timed) = field.hubspot_side(state);
        let decided = verdict(agreed, &field.attio, &hubspot);
        Ok(match need_times(decided, timed, &field.property)? {
            Verdict::Same => Plan::Agreed(hubspot.fingerprint),
            Verdict::AttioChanged => Plan::Send,
            // HubSpot's change reaches Attio through the hubspot consumer.
            Verdict::HubspotChanged => Plan::Hold,
            Verdict::Conflict(winner) => {
                let found = conflict(
                    crm_object,
                    record_id,
                    crm_id,
                    &field.property,
                    &field.spec,
                    &field.attio,
                    &hubspot,
                    winner,
                    now_ms,
                );
                tracing::info!(record_id = %record_id, property = %field.property, winner = winner.as_str(), conflict = %found.id, "both sides changed a two-way field; the later change wins");
                two_way.stores.record_conflict(&found).await?;
                if winner == Side::Attio {
                    Plan::Send
                } else {
                    Plan::Hold
                }
            }
        })
    }

    /// Before a contact HubSpot refused (its email is held by `existing`) is adopted: the
    /// record was never synced there, so its `both` fields were planned as sends with nothing
    /// to compare; `existing` holds values of its own, maybe newer. They are compared now —
    /// one HubSpot read of the `both` properties with history, the same rules as any synced
    /// record (no ledger: different values are a conflict, the later change wins) — so the
    /// adopting update only carries what Attio wins.
    pub(crate) async fn before_adopting<W>(
        &self,
        crm_object: CrmObject,
        existing: &CrmId,
        item: &mut Item<W>,
    ) -> Result<(), StepError> {
        let Some(two_way) = &self.two_way else {
            return Ok(());
        };
        if item.fields.is_empty() {
            return Ok(());
        }
        let properties: Vec<&str> = item
            .fields
            .iter()
            .flat_map(|f| {
                std::iter::once(f.property.as_str()).chain(f.properties().iter().copied())
            })
            .collect();
        let ids = std::slice::from_ref(existing);
        let states = two_way
            .stores
            .read_crm(crm_object, ids, &properties)
            .await?;
        let Some(state) = states.into_iter().find(|s| &s.id == existing) else {
            return Ok(());
        };
        let now_ms = self.clock.now() * 1000;
        let record_id = item.upsert.attio_record_id.clone();
        for field in item.fields.clone() {
            if !item.ledger.contains_key(&field.property) {
                // Held back already (equal to the ledger): nothing to compare.
                continue;
            }
            item.ledger.remove(&field.property);
            let decided = self
                .decide(
                    crm_object, &record_id, existing, &field, &state, None, now_ms,
                )
                .await?;
            plan(item, &field, decided, None, now_ms);
        }
        Ok(())
    }
}

/// Puts a field in (with its ledger entry) or takes it out of the item's upsert.
fn plan<W>(
    item: &mut Item<W>,
    field: &FieldState,
    plan: Plan,
    ledger: Option<&Ledger>,
    now_ms: i64,
) {
    match plan {
        Plan::Hold => field.hold(&mut item.upsert.properties),
        Plan::Agreed(hubspot) => {
            field.hold(&mut item.upsert.properties);
            let entry = agreed_entry(
                &hubspot,
                &field.attio.fingerprint,
                now_ms,
                SyncDirection::AttioToHubspot,
            );
            item.ledger.insert(field.property.clone(), entry);
        }
        // The stage's properties are in the upsert as the mapping resolved them.
        Plan::Send if field.stage.is_some() => record(item, field, now_ms),
        Plan::Send => {
            match &field.attio.value {
                Some(value) => {
                    item.upsert
                        .properties
                        .insert(field.property.clone(), value.clone());
                }
                // Emptied in Attio after a synced value: empty it in HubSpot too.
                None if ledger.is_some_and(|l| l.contains_key(&field.property)) => {
                    item.upsert
                        .properties
                        .insert(field.property.clone(), String::new());
                }
                None => {}
            }
            record(item, field, now_ms);
        }
    }
}

/// Attio's value sent: HubSpot holds it as sent (one form on both sides).
fn record<W>(item: &mut Item<W>, field: &FieldState, now_ms: i64) {
    let sent = &field.attio.fingerprint;
    let entry = agreed_entry(sent, sent, now_ms, SyncDirection::AttioToHubspot);
    item.ledger.insert(field.property.clone(), entry);
}

/// Every item with two-way fields settles as `d`; the rest go on.
fn settle_two_way<W>(
    items: Vec<Item<W>>,
    d: &Disposition,
    outcomes: &mut Outcomes,
) -> Vec<Item<W>> {
    let (two_way, rest): (Vec<_>, Vec<_>) = items.into_iter().partition(|i| !i.fields.is_empty());
    for item in two_way {
        outcomes.settle(&item.group, d);
    }
    rest
}
