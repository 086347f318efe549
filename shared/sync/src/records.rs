//! record.* events: one Attio fetch and one batched upsert per record per batch, however many
//! events name it; `record.deleted` archives the CRM copy and leaves a tombstone that every
//! later upsert checks after writing, so an update in flight cannot recreate the contact
//! (`tombstones.rs`); a record that merely reads 404 is left to its own delete or merge event
//! (Attio answers both alike); merges (`merges.rs`) end with one CRM object
//! for the merged record; after its upsert a record is linked to the records it references
//! (`links.rs`).
//!
//! Each input of the batched upsert settles only its own messages. A contact HubSpot refuses
//! because its email belongs to an existing contact is adopted (`SyncContext::adopt`: the
//! existing contact gets `attio_record_id` and the mapped properties), unless it belongs to
//! another Attio record — then the message is dead-lettered with what to do. Companies are
//! not adopted by domain (not unique in HubSpot; see `adopt`).

use std::collections::BTreeMap;
use std::sync::Arc;

use relay_attio::{AttioApi, CachedAttio};
use relay_crm::{CrmId, CrmObject, CrmSink, RecordUpsert};
use relay_events::{Event, EventType, Subject};
use relay_mappings::IdMappings;

use crate::batch::{Group, Outcomes, RecordRef, coalesce};
use crate::context::{StepError, SyncContext, disposition};
use crate::{BatchHandler, Budget, Disposition, InboundEvent, MessageOutcome};

/// Everything one batch says about one record.
#[derive(Debug, Default)]
struct RecordWork {
    deleted: bool,
    /// Records merged into this one (they no longer exist in Attio).
    merged_duplicates: Vec<String>,
}

impl RecordWork {
    fn fold(&mut self, event: &Event) {
        match &event.subject {
            Subject::MergedRecord { duplicate, .. } => {
                if !self.merged_duplicates.contains(&duplicate.record_id) {
                    self.merged_duplicates.push(duplicate.record_id.clone());
                }
            }
            _ => self.deleted |= event.event_type == EventType::RecordDeleted,
        }
    }
}

/// The record an event is about: the merged-into record for a merge.
fn record_of(event: &Event) -> Option<RecordRef> {
    match &event.subject {
        Subject::Record {
            object_id,
            record_id,
            ..
        }
        | Subject::MergedRecord {
            object_id,
            record_id,
            ..
        } => Some(RecordRef::new(object_id, record_id)),
        _ => None,
    }
}

type RecordGroup = Group<RecordRef, RecordWork>;

/// The records one record links to: associated after its upsert.
type Links = Vec<RecordRef>;

/// One record ready to upsert: the input, its links, and the messages it settles.
type Item = (RecordUpsert, Links, RecordGroup);

/// One record upserted and mapped, its links still to make: (CRM object, its id, links, group).
type Upserted = (CrmObject, CrmId, Links, RecordGroup);

/// The records consumer.
#[derive(Debug)]
pub struct RecordsHandler<S, M, A = CachedAttio> {
    ctx: Arc<SyncContext<S, M, A>>,
}

impl<S, M, A> RecordsHandler<S, M, A> {
    pub fn new(ctx: Arc<SyncContext<S, M, A>>) -> Self {
        Self { ctx }
    }
}

impl<S: CrmSink, M: IdMappings, A: AttioApi> RecordsHandler<S, M, A> {
    /// Fetches and maps one live record; `None` when there is nothing to upsert (unmapped
    /// object, deleted record — whose CRM copy this archives).
    async fn prepare(
        &self,
        record: &RecordRef,
        work: &RecordWork,
    ) -> Result<Option<(CrmObject, RecordUpsert, Links)>, StepError> {
        let record_id = &record.record_id;
        let slug = self.ctx.slug(&record.object).await?;
        let Some(crm_object) = self.ctx.fields.crm_object(&slug) else {
            tracing::debug!(object = %slug, "object is not mapped to the CRM; skipping");
            return Ok(None);
        };
        if work.deleted {
            self.ctx.delete_record(crm_object, record_id).await?;
            return Ok(None);
        }
        // Deleted already (a late or redelivered event): write nothing, archive what is left.
        if self.ctx.archive_if_deleted(crm_object, record_id).await? {
            return Ok(None);
        }
        let fetched = match self.ctx.attio.get_record(&slug, record_id).await {
            Ok(fetched) => fetched,
            // Attio answers the same not-found for a deleted record and for an original merged
            // into another, and SQS keeps no order: archiving here would archive an original's
            // contact before its record.merged re-points it. The record.deleted or
            // record.merged event Attio sends for it settles the CRM copy.
            Err(err) if err.is_record_gone() => {
                tracing::info!(
                    record_id,
                    "record is gone from Attio; its record.deleted or record.merged settles its CRM copy"
                );
                return Ok(None);
            }
            Err(err) => return Err(err.into()),
        };
        let mapped = self
            .ctx
            .map_record(&slug, record_id, &fetched.values)
            .await?;
        let links = crate::links::linked_records(&slug, &fetched.values);
        Ok(mapped.map(|(crm_object, properties)| {
            let attio_record_id = record_id.clone();
            (
                crm_object,
                RecordUpsert {
                    attio_record_id,
                    properties,
                },
                links,
            )
        }))
    }

    /// A record Attio merged others into (`record.merged`, either model).
    async fn merged(&self, group: &RecordGroup) -> Result<(), StepError> {
        let slug = self.ctx.slug(&group.key.object).await?;
        let Some(crm_object) = self.ctx.fields.crm_object(&slug) else {
            tracing::debug!(object = %slug, "object is not mapped to the CRM; skipping");
            return Ok(());
        };
        let duplicates = &group.work.merged_duplicates;
        let record_id = &group.key.record_id;
        // The merged record was deleted since (a late or redelivered merge): nothing to merge.
        if self.ctx.archive_if_deleted(crm_object, record_id).await? {
            return Ok(());
        }
        self.ctx.sync_merged(&slug, record_id, duplicates).await?;
        // ... or is deleted while this merge is synced: its copy goes too.
        self.ctx.archive_if_deleted(crm_object, record_id).await?;
        Ok(())
    }

    /// One batched upsert of `items`, then each accepted record's mapping; the records whose
    /// links are still to make go to `upserted`.
    async fn upsert(
        &self,
        crm_object: CrmObject,
        items: Vec<Item>,
        outcomes: &mut Outcomes,
        upserted: &mut Vec<Upserted>,
    ) {
        let inputs: Vec<RecordUpsert> = items.iter().map(|(u, _, _)| u.clone()).collect();
        let report = match self.ctx.crm.upsert_records(crm_object, &inputs).await {
            Ok(report) => report,
            Err(err) => {
                let StepError(disposition) = err.into();
                for (_, _, group) in &items {
                    outcomes.settle(group, &disposition);
                }
                return;
            }
        };
        for (upsert, links, group) in items {
            let record_id = &upsert.attio_record_id;
            let refused = report
                .failures
                .iter()
                .find(|f| &f.attio_record_id == record_id);
            let mapped = if let Some(failure) = refused {
                match self.ctx.slug(&group.key.object).await {
                    Ok(slug) => {
                        self.ctx
                            .adopt(&slug, crm_object, &upsert, failure, &[])
                            .await
                    }
                    Err(err) => Err(err),
                }
            } else if let Some(id) = report.ids.get(record_id) {
                let put = self.ctx.mappings.put(crm_object, record_id, id).await;
                put.map(|()| id.clone()).map_err(StepError::from)
            } else {
                Err(StepError(Disposition::retry(format!(
                    "CRM returned no id for record {record_id}"
                ))))
            };
            let id = match mapped {
                Ok(id) => id,
                Err(StepError(d)) => {
                    outcomes.settle(&group, &d);
                    continue;
                }
            };
            // After the write and its mapping: a record.deleted handled while this upsert was
            // in flight archived the old copy, and the upsert made a new one (`tombstones.rs`).
            match self.ctx.archive_if_deleted(crm_object, record_id).await {
                Ok(false) => upserted.push((crm_object, id, links, group)),
                Ok(true) => outcomes.settle(&group, &Disposition::Done),
                Err(StepError(d)) => outcomes.settle(&group, &d),
            }
        }
    }
}

impl<S: CrmSink, M: IdMappings, A: AttioApi> BatchHandler for RecordsHandler<S, M, A> {
    async fn handle(&self, events: &[InboundEvent]) -> Vec<MessageOutcome> {
        self.handle_within(events, &Budget::unlimited()).await
    }

    /// The cut for the deadline falls in the first loop only: a record fetched there has
    /// started, and its upsert and links finish (the batched upsert is one call for all).
    async fn handle_within(&self, events: &[InboundEvent], budget: &Budget) -> Vec<MessageOutcome> {
        let (groups, mut outcomes) = coalesce(self, events, record_of, RecordWork::fold);

        // Fetch and map every live record; deletes (and records Attio no longer has) archive.
        let mut upserts: BTreeMap<CrmObject, Vec<Item>> = BTreeMap::new();
        for group in groups {
            if !budget.may_start() {
                outcomes.settle(&group, &Disposition::Deferred);
                continue;
            }
            if !group.work.merged_duplicates.is_empty() && !group.work.deleted {
                // Merges are rare and need several ordered calls: one at a time.
                let outcome = disposition(self.merged(&group).await);
                outcomes.settle(&group, &outcome);
                continue;
            }
            match self.prepare(&group.key, &group.work).await {
                Ok(Some((crm_object, upsert, links))) => {
                    let item = (upsert, links, group);
                    upserts.entry(crm_object).or_default().push(item);
                }
                Ok(None) => outcomes.settle(&group, &Disposition::Done),
                Err(StepError(d)) => outcomes.settle(&group, &d),
            }
        }

        // One batched upsert per CRM object type and the mappings; links only after every
        // type is written, so a record linked to one of this batch's records finds it mapped
        // instead of syncing it a second time (`links.rs`).
        let mut upserted = Vec::new();
        for (crm_object, items) in upserts {
            self.upsert(crm_object, items, &mut outcomes, &mut upserted)
                .await;
        }
        for (crm_object, id, links, group) in upserted {
            let record_id = &group.key.record_id;
            let linked = self.ctx.link(crm_object, &id, record_id, &links).await;
            let outcome = disposition(linked);
            outcomes.settle(&group, &outcome);
        }
        outcomes.into_vec()
    }

    fn unreadable(&self, event_type: &EventType) -> String {
        format!("{event_type} is not a record event with object_id and record_id")
    }
}
