//! record.* events: every event of a batch about one record is coalesced into one piece of
//! work; the live records are read with one Attio query per object and written with one
//! batched upsert per 100 records of a CRM object (`record_batch.rs`), however many events
//! name them; `record.deleted` archives the CRM copy and leaves a tombstone that every
//! later upsert checks after writing, so an update in flight cannot recreate the contact
//! (`tombstones.rs`); a record that merely reads as gone is left to its own delete or merge
//! event (Attio answers both alike); merges (`merges.rs`) end with one CRM object
//! for the merged record; after its upsert a record is linked to the records it references
//! (`links.rs`).
//!
//! Each input of the batched upsert settles only its own messages. A contact HubSpot refuses
//! because its email belongs to an existing contact is adopted (`SyncContext::adopt`: the
//! existing contact gets `attio_record_id` and the mapped properties), unless it belongs to
//! another Attio record — then the message is dead-lettered with what to do. Companies are
//! not adopted by domain (not unique in HubSpot; see `adopt`).

use std::sync::Arc;

use relay_attio::{AttioApi, CachedAttio};
use relay_crm::CrmSink;
use relay_events::{Event, EventType, Subject};
use relay_mappings::IdMappings;

use crate::batch::{Group, RecordRef, coalesce};
use crate::context::{StepError, SyncContext, disposition};
use crate::record_batch::Upserted;
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

/// A record created or updated by the relay's own API token: its write to Attio (two-way
/// sync). Deletes and merges are never the relay's and always go through.
fn is_own_write(event: &Event, token_id: &str) -> bool {
    matches!(
        event.event_type,
        EventType::RecordCreated | EventType::RecordUpdated
    ) && event.actor.kind.as_deref() == Some("api-token")
        && event.actor.id.as_deref() == Some(token_id)
}

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
    /// A deleted record (`record.deleted`): its tombstone, then its copy archived. Attio is
    /// not read.
    async fn deleted(&self, record: &RecordRef) -> Result<(), StepError> {
        let slug = self.ctx.slug(&record.object).await?;
        let Some(crm_object) = self.ctx.fields.crm_object(&slug) else {
            tracing::debug!(object = %slug, "object is not mapped to the CRM; skipping");
            return Ok(());
        };
        self.ctx.delete_record(crm_object, &record.record_id).await
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
}

impl<S: CrmSink, M: IdMappings, A: AttioApi> BatchHandler for RecordsHandler<S, M, A> {
    async fn handle(&self, events: &[InboundEvent]) -> Vec<MessageOutcome> {
        self.handle_within(events, &Budget::unlimited()).await
    }

    /// The cut for the deadline falls in the first loop only: a record accepted there has
    /// started, and its read, upsert and links finish (the query and the batched upsert are
    /// one call for all; `record_batch.rs`).
    async fn handle_within(&self, events: &[InboundEvent], budget: &Budget) -> Vec<MessageOutcome> {
        // Two-way sync: the relay's own writes to Attio come back as events by its API token;
        // they carry nothing to send (`two_way/mod.rs`).
        let own_token = self.ctx.two_way.as_ref();
        let own_token = own_token.and_then(|t| t.settings.attio_token_id.as_deref());
        let mut echoes = Vec::new();
        let kept: Vec<InboundEvent>;
        let events = match own_token {
            Some(token) => {
                let (mine, others): (Vec<&InboundEvent>, Vec<&InboundEvent>) =
                    events.iter().partition(|e| is_own_write(&e.event, token));
                for echo in mine {
                    tracing::debug!(message_id = %echo.message_id, "the relay's own write to Attio; nothing to send back");
                    echoes.push(MessageOutcome {
                        message_id: echo.message_id.clone(),
                        disposition: Disposition::Done,
                    });
                }
                kept = others.into_iter().cloned().collect();
                kept.as_slice()
            }
            None => events,
        };
        let (groups, mut outcomes) = coalesce(self, events, record_of, RecordWork::fold);

        // Deletes and merges one by one; every live record goes to the batched path.
        let mut live = Vec::new();
        for group in groups {
            if !budget.may_start() {
                outcomes.settle(&group, &Disposition::Deferred);
                continue;
            }
            if group.work.deleted {
                let outcome = disposition(self.deleted(&group.key).await);
                outcomes.settle(&group, &outcome);
            } else if !group.work.merged_duplicates.is_empty() {
                // Merges are rare and need several ordered calls: one at a time.
                let outcome = disposition(self.merged(&group).await);
                outcomes.settle(&group, &outcome);
            } else {
                live.push(group);
            }
        }

        // One query per object, one batched upsert per 100 records of a CRM object, and the
        // mappings; links only after every type is written, so a record linked to one of this
        // batch's records finds it mapped instead of syncing it a second time (`links.rs`).
        let upserted = self.ctx.sync_records(live, budget, &mut outcomes).await;
        for Upserted {
            crm_object,
            id,
            links,
            group,
        } in upserted
        {
            let record_id = &group.key.record_id;
            let linked = self.ctx.link(crm_object, &id, record_id, &links).await;
            outcomes.settle(&group, &disposition(linked));
        }
        let mut outcomes = outcomes.into_vec();
        outcomes.extend(echoes);
        outcomes
    }

    fn unreadable(&self, event_type: &EventType) -> String {
        format!("{event_type} is not a record event with object_id and record_id")
    }
}
