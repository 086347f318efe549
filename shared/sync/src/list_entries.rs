//! list-entry.* events: a list entry belongs to a parent record (a deal in a pipeline, a
//! company in an account list), so each event re-syncs that parent record — its stage and
//! other attributes flow through the records mapping. Several events for one parent in a
//! batch cost one sync.

use std::collections::BTreeMap;
use std::sync::Arc;

use relay_crm::CrmSink;
use relay_events::Subject;
use relay_mappings::IdMappings;

use crate::context::{StepError, SyncContext};
use crate::engagements::{coalesce, settle};
use crate::{BatchHandler, Disposition, InboundEvent, MessageOutcome};

/// The list-entries consumer.
#[derive(Debug)]
pub struct ListEntriesHandler<S, M> {
    ctx: Arc<SyncContext<S, M>>,
}

impl<S, M> ListEntriesHandler<S, M> {
    pub fn new(ctx: Arc<SyncContext<S, M>>) -> Self {
        Self { ctx }
    }
}

impl<S: CrmSink, M: IdMappings> BatchHandler for ListEntriesHandler<S, M> {
    async fn handle(&self, events: &[InboundEvent]) -> Vec<MessageOutcome> {
        let mut outcomes = Vec::new();
        // Events carry the parent; group by it ("object_id/record_id").
        let groups = coalesce(
            events,
            &mut outcomes,
            |e| match &e.subject {
                Subject::ListEntry {
                    parent: Some(p), ..
                } => Some(format!("{}/{}", p.object_id, p.record_id)),
                _ => None,
            },
            |_| false,
        );
        let mut synced: BTreeMap<String, Disposition> = BTreeMap::new();
        for (parent, work) in groups {
            let disposition = match synced.get(&parent) {
                Some(d) => d.clone(),
                None => {
                    let (object, record_id) =
                        parent.split_once('/').unwrap_or((parent.as_str(), ""));
                    let d = match self.ctx.resync_record(object, record_id).await {
                        Ok(()) => Disposition::Done,
                        Err(StepError(d)) => d,
                    };
                    synced.insert(parent.clone(), d.clone());
                    d
                }
            };
            settle(&mut outcomes, &work, disposition);
        }
        outcomes
    }
}
