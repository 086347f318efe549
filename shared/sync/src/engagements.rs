//! Notes and tasks ("engagements"): HubSpot has no idempotent create for them, so the first
//! event creates (under a reservation) and records the HubSpot id; every later event updates
//! that id. Deletes, and reads Attio answers with 404, archive the copy and leave a tombstone:
//! a create or update racing the delete checks it after writing, so it cannot leave an orphan
//! or bring the copy back (`tombstones.rs`).
//!
//! One handler, [`EngagementHandler`], does this for both; what differs — which events name
//! which id, what to fetch, how it maps to CRM properties and which records it is linked to —
//! is an [`Engagement`] (`notes.rs`, `tasks.rs`).

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use relay_attio::{AttioApi, AttioError, CachedAttio};
use relay_crm::{CrmError, CrmObject, CrmSink, Properties};
use relay_events::{Event, EventType};
use relay_mappings::{IdMappings, Reservation};

use crate::batch::{RecordRef, coalesce};
use crate::context::{CREATE_LEASE, StepError, SyncContext, disposition, now};
use crate::{BatchHandler, Disposition, InboundEvent, MessageOutcome};

/// What one kind of engagement needs from the shared handler.
pub trait Engagement: Send + Sync + 'static {
    /// The CRM object its copies are.
    const OBJECT: CrmObject;

    /// What Attio answers for one id.
    type Source: Send;

    /// The Attio id an event is about, when it is this kind's event.
    fn id_of(event: &Event) -> Option<&str>;

    /// True for the event type that deletes it.
    fn is_delete(event_type: &EventType) -> bool;

    /// Reads its current state.
    fn fetch<A: AttioApi>(
        attio: &A,
        id: &str,
    ) -> impl Future<Output = Result<Self::Source, AttioError>> + Send;

    /// The CRM properties of its copy.
    fn properties(source: &Self::Source) -> Properties;

    /// The records its copy is associated with (at create, and kept so on every update).
    fn linked_records(source: &Self::Source) -> Vec<RecordRef>;

    /// The workspace member whose CRM owner becomes its `hubspot_owner_id` (a task's first
    /// assignee, a note's author); `None` leaves the property out.
    fn owner_member(source: &Self::Source) -> Option<&str> {
        let _ = source;
        None
    }
}

/// `hs_timestamp` from an Attio date or timestamp: epoch milliseconds, which HubSpot accepts
/// ("a Unix timestamp in milliseconds or UTC format",
/// <https://developers.hubspot.com/docs/api/crm/notes>). Text that is neither is passed on as
/// it is, and logged: HubSpot then refuses it with its own reason, which dead-letters the
/// message for an operator instead of inventing a time.
pub(crate) fn timestamp(attio: &str) -> String {
    crate::formats::hubspot_timestamp(attio).unwrap_or_else(|| {
        tracing::warn!(value = attio, "Attio time is not ISO 8601; sent as it is");
        attio.to_owned()
    })
}

/// The consumer of one kind of engagement (see [`crate::NotesHandler`], [`crate::TasksHandler`]).
#[derive(Debug)]
pub struct EngagementHandler<E, S, M, A = CachedAttio> {
    ctx: Arc<SyncContext<S, M, A>>,
    kind: PhantomData<fn() -> E>,
}

impl<E, S, M, A> EngagementHandler<E, S, M, A> {
    pub fn new(ctx: Arc<SyncContext<S, M, A>>) -> Self {
        Self {
            ctx,
            kind: PhantomData,
        }
    }
}

impl<E: Engagement, S: CrmSink, M: IdMappings, A: AttioApi> EngagementHandler<E, S, M, A> {
    async fn sync(&self, id: &str, deleted: bool) -> Result<(), StepError> {
        if deleted {
            return self.ctx.delete_engagement(E::OBJECT, id).await;
        }
        // Deleted already (a late or redelivered event): write nothing, archive what is left.
        if self.ctx.is_buried(E::OBJECT, id).await? {
            return self.ctx.archive_engagement(E::OBJECT, id).await;
        }
        let source = match E::fetch(&self.ctx.attio, id).await {
            Ok(source) => source,
            // Only Attio's not-found for the note or task itself is a deletion.
            Err(err) if err.is_record_gone() => {
                return self.ctx.delete_engagement(E::OBJECT, id).await;
            }
            Err(err) => return Err(err.into()),
        };
        let linked = E::linked_records(&source);
        let mut properties = E::properties(&source);
        if let Some(member) = E::owner_member(&source)
            && let Some(owner) = self.ctx.owner_id(member).await
        {
            properties.insert(crate::OWNER_PROPERTY.to_owned(), owner);
        }
        let written = self
            .ctx
            .write_engagement(E::OBJECT, id, &properties, &linked)
            .await;
        // After the write: a delete handled meanwhile archives what it wrote.
        self.ctx.unless_deleted(E::OBJECT, id, written).await
    }
}

impl<E: Engagement, S: CrmSink, M: IdMappings, A: AttioApi> BatchHandler
    for EngagementHandler<E, S, M, A>
{
    async fn handle(&self, events: &[InboundEvent]) -> Vec<MessageOutcome> {
        let (groups, mut outcomes) = coalesce(
            self,
            events,
            |e| E::id_of(e).map(str::to_owned),
            |deleted: &mut bool, e| *deleted |= E::is_delete(&e.event_type),
        );
        for group in groups {
            // Boxed: the whole sync of one note or task is a deep async state machine (fetch,
            // owners, links, create or update), and inlined into the handler, the schema
            // wrapper and the runtime it overflows rustc's layout query depth in the binaries.
            let result = Box::pin(self.sync(&group.key, group.work)).await;
            outcomes.settle(&group, &disposition(result));
        }
        outcomes.into_vec()
    }
}

impl<S: CrmSink, M: IdMappings, A: AttioApi> SyncContext<S, M, A> {
    /// Creates the CRM copy once, associated with the CRM copies of `linked`, or updates it and
    /// its associations: the ones `linked` names are made, the ones the relay made earlier that
    /// it no longer names are removed (`links.rs`). On both paths a linked record that was never
    /// synced is synced first, and when that fails the message is retried (or dead-lettered)
    /// before anything is written, so no copy is created or left linked to nothing.
    pub(crate) async fn write_engagement(
        &self,
        object: CrmObject,
        attio_id: &str,
        properties: &Properties,
        linked: &[RecordRef],
    ) -> Result<(), StepError> {
        match self
            .mappings
            .reserve(object, attio_id, now(), CREATE_LEASE)
            .await?
        {
            Reservation::Mapped(id) => {
                let targets = self.link_targets(linked).await?;
                match self.crm.update(object, &id, properties).await {
                    Ok(()) => self.relink(object, &id, attio_id, &targets).await,
                    Err(CrmError::NotFound { .. }) => {
                        // Deleted in HubSpot: forget it, and the retry creates it again.
                        self.mappings.remove(object, attio_id).await?;
                        Err(StepError(Disposition::retry(format!(
                            "HubSpot {object} {id} was deleted; recreating"
                        ))))
                    }
                    Err(err) => Err(err.into()),
                }
            }
            Reservation::Reserved => {
                let created = async {
                    let targets = self.link_targets(linked).await?;
                    // Remembered before the create makes them (see `links.rs`).
                    self.remember_links(object, attio_id, &targets).await?;
                    Ok::<_, StepError>(self.crm.create(object, properties, &targets).await?)
                }
                .await;
                match created {
                    Ok(id) => {
                        self.mappings.put(object, attio_id, &id).await?;
                        tracing::info!(%object, attio_id, crm_id = %id, "created in CRM");
                        Ok(())
                    }
                    Err(err) => {
                        // Release the reservation so the retry may create.
                        self.mappings.remove(object, attio_id).await?;
                        Err(err)
                    }
                }
            }
            Reservation::Busy => Err(StepError(Disposition::retry(format!(
                "{object} {attio_id} is being created by another invocation"
            )))),
        }
    }
}
