//! list-entry.* events: a list entry belongs to a parent record (a deal in a pipeline, a
//! company in an account list), so each event re-syncs that parent record — its stage and
//! other attributes flow through the records mapping. Events are grouped by parent, so several
//! events for one parent in a batch cost one sync, and the batch's parents take the records'
//! batched path (`record_batch.rs`): one Attio query per parent object, one CRM batch upsert
//! per 100 parents. Entries themselves are never read (nothing of an entry is synced but its
//! parent), so Attio's entries query is not needed here. A parent is upserted, not linked:
//! its links follow its own `record.*` events.

use std::sync::Arc;

use relay_attio::{AttioApi, CachedAttio};
use relay_crm::CrmSink;
use relay_events::Subject;
use relay_mappings::IdMappings;

use crate::batch::{RecordRef, coalesce};
use crate::context::SyncContext;
use crate::{BatchHandler, Budget, Disposition, InboundEvent, MessageOutcome};

/// The list-entries consumer.
#[derive(Debug)]
pub struct ListEntriesHandler<S, M, A = CachedAttio> {
    ctx: Arc<SyncContext<S, M, A>>,
}

impl<S, M, A> ListEntriesHandler<S, M, A> {
    pub fn new(ctx: Arc<SyncContext<S, M, A>>) -> Self {
        Self { ctx }
    }
}

impl<S: CrmSink, M: IdMappings, A: AttioApi> BatchHandler for ListEntriesHandler<S, M, A> {
    async fn handle(&self, events: &[InboundEvent]) -> Vec<MessageOutcome> {
        self.handle_within(events, &Budget::unlimited()).await
    }

    async fn handle_within(&self, events: &[InboundEvent], budget: &Budget) -> Vec<MessageOutcome> {
        let (groups, mut outcomes) = coalesce(
            self,
            events,
            |e| match &e.subject {
                Subject::ListEntry {
                    parent: Some(parent),
                    ..
                } => Some(RecordRef::from(parent)),
                _ => None,
            },
            |(): &mut (), _| {},
        );
        let mut started = Vec::new();
        for group in groups {
            if budget.may_start() {
                started.push(group);
            } else {
                outcomes.settle(&group, &Disposition::Deferred);
            }
        }
        let upserted = self.ctx.sync_records(started, budget, &mut outcomes).await;
        for parent in upserted {
            outcomes.settle(&parent.group, &Disposition::Done);
        }
        outcomes.into_vec()
    }
}
