//! Everything a handler needs, shared by the four families: the Attio, CRM and mapping ports
//! and the field mapping, plus the record steps several families take (sync one record,
//! archive one, resolve an object's slug).

use std::sync::Arc;
use std::time::Duration;

use relay_attio::{AttioApi, AttioClient, AttioError, CachedAttio};
use relay_crm::{CrmError, CrmId, CrmObject, CrmSink, ID_PROPERTY, ItemFailure, RecordUpsert};
use relay_events::clock::{Clock, SystemClock, UnixSeconds};
use relay_mappings::{IdMappings, MappingError};

use crate::{Disposition, FieldMapping};

/// How long a note or task create is reserved against concurrent creators.
pub const CREATE_LEASE: Duration = Duration::from_secs(120);

/// How old an earlier create attempt whose outcome is unknown must be before the CRM's search
/// is asked for it. The attempt is recorded before the create is sent, and the send itself may
/// take up to a minute (the HubSpot client's 20 s wait budget and 10 s request, twice when a
/// 401 re-reads the token); then HubSpot's search is eventually consistent, so a note made a
/// moment ago may not be in its results yet, and "not found" would create a second one. Three
/// minutes covers both with room. Younger attempts are retried instead (SQS hands the message
/// back after its visibility timeout, 365 s or more, anyway).
pub const CREATE_SETTLE: Duration = Duration::from_secs(180);

/// The clock reservations and create attempts are measured by (the system clock unless a test
/// passes its own).
#[derive(Clone)]
pub struct SyncClock(Arc<dyn Clock>);

impl SyncClock {
    pub fn now(&self) -> UnixSeconds {
        self.0.now()
    }
}

impl Default for SyncClock {
    fn default() -> Self {
        Self(Arc::new(SystemClock))
    }
}

impl std::fmt::Debug for SyncClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncClock")
    }
}

/// The ports and configuration the handlers share. `A` is the Attio port; it comes last, with
/// the production adapter as its default, so `SyncContext<Sink, Mappings>` names what every
/// binary runs and tests name [`relay_attio::MemoryAttio`] explicitly.
#[derive(Debug)]
pub struct SyncContext<S, M, A = CachedAttio> {
    pub attio: A,
    pub crm: S,
    pub mappings: M,
    pub fields: Arc<FieldMapping>,
    /// Workspace member → CRM owner, cached per container (`owners.rs`).
    pub owners: crate::OwnerResolver,
    /// Reservations and create attempts are measured by it ([`Self::with_clock`]).
    pub clock: SyncClock,
    /// Two-way sync, when configured ([`Self::with_two_way`]); `None`: Attio → HubSpot only.
    pub two_way: Option<crate::two_way::TwoWay>,
}

/// Why one step failed, already classified.
#[derive(Debug)]
pub struct StepError(pub Disposition);

impl From<AttioError> for StepError {
    fn from(err: AttioError) -> Self {
        Self(if err.is_permanent() {
            Disposition::dead_letter(format!("Attio: {err}"))
        } else {
            Disposition::retry(format!("Attio: {err}"))
        })
    }
}

impl From<CrmError> for StepError {
    fn from(err: CrmError) -> Self {
        Self(Disposition::for_class(err.class(), format!("CRM: {err}")))
    }
}

impl From<MappingError> for StepError {
    fn from(err: MappingError) -> Self {
        Self(Disposition::retry(err))
    }
}

impl From<crate::FieldMappingError> for StepError {
    fn from(err: crate::FieldMappingError) -> Self {
        Self(Disposition::dead_letter(err))
    }
}

/// The disposition of a step's messages: done, or what its error says.
pub(crate) fn disposition(step: Result<(), StepError>) -> Disposition {
    step.err().map_or(Disposition::Done, |StepError(d)| d)
}

impl<S, M> SyncContext<S, M> {
    /// The production context: `attio` with its object slugs cached.
    pub fn new(attio: AttioClient, crm: S, mappings: M, fields: FieldMapping) -> Self {
        Self::with_attio(CachedAttio::new(attio), crm, mappings, fields)
    }
}

impl<S, M, A> SyncContext<S, M, A> {
    /// A context over any Attio adapter (tests use `MemoryAttio`).
    pub fn with_attio(attio: A, crm: S, mappings: M, fields: FieldMapping) -> Self {
        Self {
            attio,
            crm,
            mappings,
            fields: Arc::new(fields),
            owners: crate::OwnerResolver::default(),
            clock: SyncClock::default(),
            two_way: None,
        }
    }

    /// The context with two-way sync on: `both` fields compared with `ledger` before they are
    /// sent, conflicts kept in `conflicts`, HubSpot's side read from `source`
    /// (`two_way/mod.rs`).
    #[must_use]
    pub fn with_two_way<L, C, R>(
        mut self,
        ledger: L,
        conflicts: C,
        source: R,
        settings: crate::two_way::TwoWaySettings,
    ) -> Self
    where
        L: relay_mappings::SyncLedger + relay_mappings::RecordLocks + 'static,
        C: relay_mappings::ConflictStore + 'static,
        R: relay_crm::CrmSource + 'static,
    {
        let stores = crate::two_way::Stores {
            ledger,
            conflicts,
            source,
        };
        self.two_way = Some(crate::two_way::TwoWay {
            stores: Box::new(stores),
            settings,
        });
        self
    }

    /// The context measuring reservations and create attempts by `clock`, so tests step past
    /// a lease or a settle delay instead of sleeping through it.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = SyncClock(Arc::new(clock));
        self
    }
}

/// What syncing one record by id came to.
enum Synced {
    Mapped(CrmObject, CrmId),
    /// Attio answers its documented not-found for the record, or it was deleted.
    Gone,
}

impl<S, M, A> SyncContext<S, M, A> {
    /// Whether the field mapping has properties flowing back (`both` or `hubspot_to_attio`)
    /// while this context has no two-way stores. Such a context never sends a `both`
    /// property (it cannot tell a change from a newer HubSpot value) and never brings a
    /// HubSpot change back: a binary that maps records should refuse to start this way
    /// rather than leave those fields unsynced.
    pub fn needs_two_way(&self) -> bool {
        let objects = [CrmObject::Contacts, CrmObject::Companies, CrmObject::Deals];
        self.two_way.is_none()
            && objects
                .into_iter()
                .any(|o| self.fields.reverse_object(o).is_some())
    }
}

impl<S: CrmSink, M: IdMappings, A: AttioApi> SyncContext<S, M, A> {
    /// The CRM id of an Attio record, syncing it first when it never was (so a note or task
    /// can be associated with it). `None` when its object is not mapped. A record Attio no
    /// longer has is retried: it is an original whose `record.merged` (which re-points it to
    /// the merged object) or a deleted record whose `record.deleted` has not been handled yet,
    /// and a note or task must wait for that rather than be created without it.
    pub async fn ensure_record(
        &self,
        object: &str,
        record_id: &str,
    ) -> Result<Option<(CrmObject, CrmId)>, StepError> {
        let slug = self.slug(object).await?;
        let Some(crm_object) = self.fields.crm_object(&slug) else {
            return Ok(None);
        };
        if let Some(id) = self.mappings.get(crm_object, record_id).await? {
            return Ok(Some((crm_object, id)));
        }
        match self.sync_record(&slug, record_id).await? {
            Synced::Mapped(crm_object, id) => Ok(Some((crm_object, id))),
            Synced::Gone => Err(StepError(Disposition::retry(format!(
                "linked record {record_id} is gone from Attio (merged or deleted); waiting for its record.merged or record.deleted"
            )))),
        }
    }

    /// Syncs one record by id: a linked record or a note's parent synced on demand. It takes
    /// the consumers' batch path (`record_batch.rs`) as a batch of one, so the same rules
    /// apply to it as to any record — the two-way lock and forward rules, adoption of a
    /// contact holding its email, the deleted-while-in-flight check.
    async fn sync_record(&self, slug: &str, record_id: &str) -> Result<Synced, StepError> {
        let group = crate::batch::Group {
            key: crate::batch::RecordRef::new(slug, record_id),
            message_ids: vec![String::new()],
            work: (),
        };
        let mut outcomes = crate::batch::Outcomes::default();
        let budget = crate::Budget::unlimited();
        let upserted = self.sync_records(vec![group], &budget, &mut outcomes).await;
        if let Some(done) = upserted.into_iter().next() {
            return Ok(Synced::Mapped(done.crm_object, done.id));
        }
        match outcomes
            .into_vec()
            .into_iter()
            .next()
            .map(|o| o.disposition)
        {
            // Gone from Attio, or deleted (its copy archived): settled as done.
            None | Some(Disposition::Done) => Ok(Synced::Gone),
            Some(d) => Err(StepError(d)),
        }
    }

    /// Resolves an upsert the CRM refused. A contact refused because another contact already
    /// has its email (HubSpot's unique key for contacts) is adopted: that contact is updated
    /// with the mapped properties and `attio_record_id`, and mapped, so later syncs upsert it
    /// and no second contact is ever created. It is not adopted — the message is dead-lettered
    /// with what to do — when it already belongs to another Attio record (two people share the
    /// email), or when this record is synced to a different contact already (its new email
    /// collides with another contact). A contact that belongs to one of `merged` (records
    /// Attio merged into this one) is taken over: it is the same person. Any other refusal is
    /// classified as the CRM said. Returns the adopted contact's id.
    ///
    /// Companies are never adopted: domain is not unique in HubSpot, so their upsert never
    /// conflicts, and matching by domain would need the search API, which is eventually
    /// consistent (search-then-write races) and limited to a few requests per second.
    pub(crate) async fn adopt(
        &self,
        slug: &str,
        crm_object: CrmObject,
        upsert: &RecordUpsert,
        failure: &ItemFailure,
        merged: &[String],
    ) -> Result<CrmId, StepError> {
        let ours = &upsert.attio_record_id;
        let existing = match (&failure.existing, crm_object) {
            (Some(existing), CrmObject::Contacts) => existing,
            _ => return Err(StepError(Disposition::for_refused(failure))),
        };
        if let Some(mapped) = self.mappings.get(crm_object, ours).await?
            && &mapped != existing
        {
            return Err(StepError(Disposition::dead_letter(format!(
                "Attio record {ours} is synced to HubSpot contact {mapped}, and its email is now held by HubSpot contact {existing} (HubSpot allows one contact per email): merge contacts {mapped} and {existing} in HubSpot (keep {mapped}), or change the email in Attio, then replay this message"
            ))));
        }
        let Some(held) = self.crm.read(crm_object, existing, &[ID_PROPERTY]).await? else {
            return Err(StepError(Disposition::retry(format!(
                "HubSpot contact {existing}, which has the email of Attio record {ours}, is gone; the retry creates the contact"
            ))));
        };
        let owner = held.get(ID_PROPERTY).filter(|o| !o.is_empty());
        if let Some(owner) = owner.filter(|o| *o != ours && !merged.contains(o)) {
            // Attio answers a merged-away original 404 before its record.merged is handled
            // (SQS keeps no order), and this record may be the one it was merged into: wait for
            // the merge (or the delete) to settle that contact instead of refusing for good.
            match self.attio.get_record(slug, owner).await {
                Err(err) if err.is_record_gone() => {
                    return Err(StepError(Disposition::retry(format!(
                        "HubSpot contact {existing}, which has the email of Attio record {ours}, belongs to Attio record {owner}, which Attio no longer has (merged or deleted); waiting for its record.merged or record.deleted"
                    ))));
                }
                Err(err) => return Err(err.into()),
                Ok(_) => {}
            }
            return Err(StepError(Disposition::dead_letter(format!(
                "Attio records {ours} and {owner} have the same email, and HubSpot allows one contact per email (contact {existing} belongs to {owner}): merge the two people in Attio, or remove the email from one of them, then replay this message. If {owner} no longer exists in Attio, clear attio_record_id on HubSpot contact {existing} and replay"
            ))));
        }
        let mut properties = upsert.properties.clone();
        properties.insert(ID_PROPERTY.into(), ours.clone());
        self.crm.update(crm_object, existing, &properties).await?;
        tracing::info!(record_id = %ours, contact = %existing, previous_owner = ?owner, "adopted the existing HubSpot contact with this email");
        self.mappings.put(crm_object, ours, existing).await?;
        Ok(existing.clone())
    }

    /// Archives the CRM copy of a deleted record and forgets its mapping — unless the copy
    /// now carries another record's `attio_record_id`: a merge re-points its originals to the
    /// merged object (see `merges.rs`), and an original's late event (a 404, or an older
    /// model's delete of the duplicate) must not archive the merged record's copy. That
    /// mapping is kept, so notes naming the original still find the merged object.
    pub async fn archive_record(
        &self,
        crm_object: CrmObject,
        record_id: &str,
    ) -> Result<(), StepError> {
        if let Some(id) = self.mappings.get(crm_object, record_id).await? {
            let held = self.crm.read(crm_object, &id, &[ID_PROPERTY]).await?;
            let owner = held
                .as_ref()
                .and_then(|h| h.get(ID_PROPERTY))
                .filter(|o| !o.is_empty());
            if let Some(owner) = owner.filter(|o| *o != record_id) {
                tracing::info!(record_id, crm_id = %id, %owner, "the CRM copy belongs to the record this one was merged into; not archiving");
                return Ok(());
            }
            self.crm.archive(crm_object, &id).await?;
            self.mappings.remove(crm_object, record_id).await?;
        } else {
            tracing::info!(
                record_id,
                "deleted record was never synced; nothing to archive"
            );
        }
        Ok(())
    }

    /// An object's slug from its id (events carry ids; the API and the mapping use slugs).
    /// Slugs pass through unchanged.
    pub async fn slug(&self, object: &str) -> Result<String, StepError> {
        Ok(self.attio.object_slug(object).await?)
    }
}
