//! Notes and tasks ("engagements"): HubSpot has no idempotent create for them, so the first
//! event creates (under a reservation) and records the HubSpot id; every later event updates
//! that id. Deletes, and reads Attio answers with 404, archive the copy and leave a tombstone:
//! a create or update racing the delete checks it after writing, so it cannot leave an orphan
//! or bring the copy back (`tombstones.rs`).
//!
//! No second copy, even when a create's outcome is unknown. A create can be applied and its
//! answer lost (a 502 or timeout after the write: [`CrmError::OutcomeUnknown`], never retried
//! by the client), or its invocation can die, or the mapping write fail, after HubSpot made
//! the note. So before sending a create the handler records the attempt in the mappings table,
//! and every create carries the note's or task's marker property (`attio_note_id`,
//! `attio_task_id`: [`relay_crm::marker_property`]). Whoever takes the reservation over later
//! is told the attempt is [`Reservation::Unresolved`] and settles it first:
//!
//! * attempted less than [`CREATE_SETTLE`] ago → retried later: HubSpot's search is eventually
//!   consistent, and "not found" for a note made seconds ago would be wrong;
//! * older → the CRM is searched for the marker: found → that copy is mapped and updated
//!   (extra copies, if an older version of the relay made any, are archived); not found → the
//!   create is sent again.
//!
//! Residual risk, stated honestly: a note HubSpot made but has not indexed within
//! [`CREATE_SETTLE`] of the attempt would be created a second time. The search runs only after
//! an unknown outcome and at least a minute later (SQS redelivers after its 360 s visibility
//! timeout), far past the seconds HubSpot's index usually lags; there is no documented bound.
//!
//! One handler, [`EngagementHandler`], does this for both; what differs — which events name
//! which id, what to fetch, how it maps to CRM properties and which records it is linked to —
//! is an [`Engagement`] (`notes.rs`, `tasks.rs`).

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use relay_attio::{AttioApi, AttioError, CachedAttio};
use relay_crm::{Association, CrmError, CrmId, CrmObject, CrmSink, Properties, marker_property};
use relay_events::clock::UnixSeconds;
use relay_events::{Event, EventType};
use relay_mappings::{IdMappings, MappingError, Reservation};

use crate::batch::{RecordRef, coalesce};
use crate::context::{CREATE_LEASE, CREATE_SETTLE, StepError, SyncContext, disposition};
use crate::{BatchHandler, Budget, Disposition, InboundEvent, MessageOutcome};

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
        self.handle_within(events, &Budget::unlimited()).await
    }

    async fn handle_within(&self, events: &[InboundEvent], budget: &Budget) -> Vec<MessageOutcome> {
        let (groups, mut outcomes) = coalesce(
            self,
            events,
            |e| E::id_of(e).map(str::to_owned),
            |deleted: &mut bool, e| *deleted |= E::is_delete(&e.event_type),
        );
        for group in groups {
            if !budget.may_start() {
                outcomes.settle(&group, &Disposition::Deferred);
                continue;
            }
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
        let now = self.clock.now();
        match self
            .mappings
            .reserve(object, attio_id, now, CREATE_LEASE)
            .await?
        {
            Reservation::Mapped(id) => {
                self.update_engagement(object, attio_id, &id, properties, linked)
                    .await
            }
            Reservation::Reserved => {
                self.create_engagement(object, attio_id, properties, linked)
                    .await
            }
            Reservation::Unresolved { attempted_at } => {
                let attempt = EarlierAttempt { attempted_at, now };
                self.resolve_create(object, attio_id, attempt, properties, linked)
                    .await
            }
            Reservation::Busy => Err(StepError(Disposition::retry(format!(
                "{object} {attio_id} is being created by another invocation"
            )))),
        }
    }

    /// Updates the mapped copy and keeps its associations in step with `linked`.
    async fn update_engagement(
        &self,
        object: CrmObject,
        attio_id: &str,
        id: &CrmId,
        properties: &Properties,
        linked: &[RecordRef],
    ) -> Result<(), StepError> {
        let targets = self.link_targets(linked).await?;
        match self.crm.update(object, id, properties).await {
            Ok(()) => self.relink(object, id, attio_id, &targets).await,
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

    /// Creates the copy under the reservation just taken: the attempt is recorded first, the
    /// create carries the marker, and its id is stored. A refused create gives the reservation
    /// back (nothing was made); one whose outcome is unknown keeps it with the attempt, so the
    /// next try looks the copy up instead of creating blindly.
    async fn create_engagement(
        &self,
        object: CrmObject,
        attio_id: &str,
        properties: &Properties,
        linked: &[RecordRef],
    ) -> Result<(), StepError> {
        let targets = match self.prepare_create(object, attio_id, linked).await {
            Ok(targets) => targets,
            Err(Prepare::Lost(err)) => return Err(err.into()),
            Err(Prepare::Failed(err)) => {
                // Nothing was sent: give the reservation back so the retry may create.
                self.mappings.remove(object, attio_id).await?;
                return Err(err);
            }
        };
        let mut marked = properties.clone();
        if let Some(marker) = marker_property(object) {
            marked.insert(marker.to_owned(), attio_id.to_owned());
        }
        match self.crm.create(object, &marked, &targets).await {
            Ok(id) => {
                // Should this fail, the recorded attempt makes the retry find `id` by marker.
                self.mappings.put(object, attio_id, &id).await?;
                // The create made its associations: later syncs of this copy skip them while
                // unchanged.
                self.store_links(object, attio_id, &targets, Some(&id))
                    .await?;
                tracing::info!(%object, attio_id, crm_id = %id, "created in CRM");
                Ok(())
            }
            Err(err @ CrmError::OutcomeUnknown { .. }) => {
                tracing::warn!(%object, attio_id, error = %err, "create outcome unknown; the retry looks it up by marker before creating");
                Err(err.into())
            }
            Err(err) => {
                self.mappings.remove(object, attio_id).await?;
                Err(err.into())
            }
        }
    }

    /// What must hold before a create is sent: the linked records' CRM ids, the links
    /// remembered (see `links.rs`), and the attempt recorded under the reservation.
    async fn prepare_create(
        &self,
        object: CrmObject,
        attio_id: &str,
        linked: &[RecordRef],
    ) -> Result<Vec<Association>, Prepare> {
        let targets = self.link_targets(linked).await.map_err(Prepare::Failed)?;
        // Added to what is remembered, never replacing it: a creator whose reservation lapsed
        // meanwhile must not make the links another creator made (and remembered) forgotten.
        let remembered = self
            .remembered_links(object, attio_id)
            .await
            .map_err(Prepare::Failed)?;
        let mut union = remembered.targets;
        union.extend(
            targets
                .iter()
                .filter(|t| !union.contains(t))
                .cloned()
                .collect::<Vec<_>>(),
        );
        self.remember_links(object, attio_id, &union)
            .await
            .map_err(Prepare::Failed)?;
        match self
            .mappings
            .record_create_attempt(object, attio_id, self.clock.now())
            .await
        {
            Ok(()) => Ok(targets),
            Err(err @ MappingError::ReservationLost { .. }) => Err(Prepare::Lost(err)),
            Err(err) => Err(Prepare::Failed(err.into())),
        }
    }

    /// Settles an earlier create whose outcome is unknown before anything else is created:
    /// too young to be searchable → retry later; found by its marker → adopted (mapped, then
    /// updated like any mapped copy); not found → created.
    async fn resolve_create(
        &self,
        object: CrmObject,
        attio_id: &str,
        attempt: EarlierAttempt,
        properties: &Properties,
        linked: &[RecordRef],
    ) -> Result<(), StepError> {
        let age = attempt.age_secs();
        if age < CREATE_SETTLE.as_secs() {
            return Err(StepError(Disposition::retry(format!(
                "{object} {attio_id}: a create sent {age} s ago has no known outcome; it is looked up once HubSpot's search can show it ({} s)",
                CREATE_SETTLE.as_secs()
            ))));
        }
        let found = self.crm.find_by_marker(object, attio_id).await?;
        let Some((id, extra)) = found.split_first() else {
            tracing::info!(%object, attio_id, age, "an earlier create made nothing; creating");
            return self
                .create_engagement(object, attio_id, properties, linked)
                .await;
        };
        for copy in extra {
            // Only the relay writes the marker: these are copies of the same note or task.
            tracing::warn!(%object, attio_id, kept = %id, archived = %copy, "archiving a second copy");
            self.crm.archive(object, copy).await?;
        }
        self.mappings.put(object, attio_id, id).await?;
        tracing::info!(%object, attio_id, crm_id = %id, "adopted the copy an earlier create made");
        self.update_engagement(object, attio_id, id, properties, linked)
            .await
    }
}

/// A create attempt found in the mappings table, and when it was found.
#[derive(Debug, Clone, Copy)]
struct EarlierAttempt {
    attempted_at: UnixSeconds,
    now: UnixSeconds,
}

impl EarlierAttempt {
    /// Seconds since the attempt (0 when the clocks disagree and it lies ahead).
    fn age_secs(self) -> u64 {
        u64::try_from(self.now.saturating_sub(self.attempted_at)).unwrap_or(0)
    }
}

/// Why a create was not sent.
enum Prepare {
    /// A step before it failed: the reservation is given back.
    Failed(StepError),
    /// The reservation is someone else's now: leave it alone.
    Lost(MappingError),
}
