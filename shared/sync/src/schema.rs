//! Webhook-driven schema invalidation, wrapped around any family's handler.
//!
//! Each container caches Attio's object definitions (events name objects by id, the API and
//! the field mapping by slug; `relay_attio::SchemaCache`, 10 min TTL). When an attribute
//! changes, Attio sends `object-attribute.created|updated` or `list-attribute.created|updated`
//! (<https://docs.attio.com/rest-api/webhook-reference/object-attribute-events/object-attributeupdated>,
//! <https://docs.attio.com/rest-api/webhook-reference/list-attribute-events/list-attributecreated>:
//! ids only — `object_id` or `list_id`, and `attribute_id`). Ingest queues them with the
//! records and the list entries, but SQS hands each message to one container, and the others
//! would keep their definitions for up to the TTL. So [`SchemaAware`]:
//!
//! 1. reads the schema generation (`relay_mappings::SchemaGenerations`, one item of the
//!    mappings table) once per batch, and drops this container's whole cache when it moved
//!    since the last batch — another container saw a change. A failed read is logged at warn
//!    and changes nothing: the batch goes on and the TTL stays the fallback;
//! 2. takes the attribute events out of the batch: drops what this container caches for the
//!    object or list named (an unknown id is no error: there is nothing to drop), bumps the
//!    generation once for the batch, and acks them. Only a failed bump retries them (the local
//!    drop already happened; dropping and bumping twice is harmless), so the other containers
//!    are told;
//! 3. hands the rest of the batch to the family's handler, which then fetches fresh
//!    definitions for what it needs.
//!
//! The relay caches no list definitions today, so a `list-attribute.*` event drops nothing
//! locally; it still bumps the generation, which keeps one rule for both kinds and costs each
//! container one definition lookup per object it syncs.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use relay_attio::{AttioApi, CachedAttio};
use relay_events::{EventType, Subject};
use relay_mappings::SchemaGenerations;

use crate::{BatchHandler, Budget, Disposition, InboundEvent, MessageOutcome, SyncContext};

/// A family's handler with the schema watch in front (module docs). Every consumer runs its
/// handler wrapped: `relay_consumer::lambda::run` and `attio-relay dev` wrap it.
#[derive(Debug)]
pub struct SchemaAware<H, S, M, A = CachedAttio> {
    inner: H,
    ctx: Arc<SyncContext<S, M, A>>,
    /// The generation the last batch read; `None` until a read succeeds. The cache starts
    /// empty, so the first read only records where the counter stands.
    seen: Mutex<Option<u64>>,
}

impl<H, S, M, A> SchemaAware<H, S, M, A> {
    /// Wraps `inner`, which runs over `ctx` (whose Attio cache and mapping store are watched).
    pub fn new(ctx: Arc<SyncContext<S, M, A>>, inner: H) -> Self {
        Self {
            inner,
            ctx,
            seen: Mutex::new(None),
        }
    }

    fn seen(&self) -> MutexGuard<'_, Option<u64>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The object or list an attribute event is about; `None` for every other event.
fn schema_subject(inbound: &InboundEvent) -> Option<&str> {
    match &inbound.event.subject {
        Subject::ObjectAttribute { object_id, .. } => Some(object_id),
        Subject::ListAttribute { list_id, .. } => Some(list_id),
        _ => None,
    }
}

impl<H, S, M, A> SchemaAware<H, S, M, A>
where
    S: Send + Sync,
    M: SchemaGenerations,
    A: AttioApi,
{
    /// Reads the generation and drops the cache when it moved; `None` when it cannot be read.
    async fn refresh(&self) -> Option<u64> {
        let current = match self.ctx.mappings.schema_generation().await {
            Ok(current) => current,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the schema generation; cached Attio definitions are kept until their TTL");
                return None;
            }
        };
        let mut seen = self.seen();
        if let Some(before) = *seen
            && before != current
        {
            self.ctx.attio.forget_schema();
            tracing::info!(
                before,
                current,
                "Attio's schema changed (seen by another consumer); cached definitions dropped"
            );
        }
        *seen = Some(current);
        Some(current)
    }

    /// Drops the named definitions here, then tells every container through one bump.
    async fn schema_changed(
        &self,
        events: &[&InboundEvent],
        read: Option<u64>,
    ) -> Vec<MessageOutcome> {
        for inbound in events {
            if let Some(object) = schema_subject(inbound) {
                self.ctx.attio.forget_schema_of(object);
                tracing::info!(
                    event_type = %inbound.event.event_type,
                    object,
                    message_id = %inbound.message_id,
                    "Attio attribute changed; cached definition dropped"
                );
            }
        }
        let disposition = match self.ctx.mappings.bump_schema_generation().await {
            Ok(now) => {
                // Our own bump needs no full drop on the next batch, unless another container
                // bumped too since this batch's read.
                let mut seen = self.seen();
                if read.is_some() && *seen == read && read.map(|g| g + 1) == Some(now) {
                    *seen = Some(now);
                }
                Disposition::Done
            }
            Err(err) => Disposition::retry(format!(
                "cannot tell the other consumers that Attio's schema changed: {err}"
            )),
        };
        events
            .iter()
            .map(|inbound| MessageOutcome {
                message_id: inbound.message_id.clone(),
                disposition: disposition.clone(),
            })
            .collect()
    }
}

impl<H, S, M, A> BatchHandler for SchemaAware<H, S, M, A>
where
    H: BatchHandler,
    S: Send + Sync,
    M: SchemaGenerations,
    A: AttioApi,
{
    async fn handle(&self, events: &[InboundEvent]) -> Vec<MessageOutcome> {
        self.handle_within(events, &Budget::unlimited()).await
    }

    /// The inner handler runs under the same deadline: this wrapper is what Lambda runs.
    async fn handle_within(&self, events: &[InboundEvent], budget: &Budget) -> Vec<MessageOutcome> {
        let read = self.refresh().await;
        let (schema, rest): (Vec<&InboundEvent>, Vec<&InboundEvent>) =
            events.iter().partition(|e| schema_subject(e).is_some());
        if schema.is_empty() {
            return self.inner.handle_within(events, budget).await;
        }
        let mut outcomes = self.schema_changed(&schema, read).await;
        if !rest.is_empty() {
            let rest: Vec<InboundEvent> = rest.into_iter().cloned().collect();
            outcomes.extend(self.inner.handle_within(&rest, budget).await);
        }
        outcomes
    }

    fn unreadable(&self, event_type: &EventType) -> String {
        self.inner.unreadable(event_type)
    }
}
