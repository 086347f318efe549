//! Deletes that stay deleted: a delete racing a create or an update in flight must not leave
//! an orphan, and a late or redelivered write must not bring back what Attio deleted.
//!
//! SQS keeps no order and events carry no time, so a `note.created` that fetched its note a
//! moment before the note was deleted can create the HubSpot note after the `note.deleted` was
//! handled (it found no mapping: nothing to archive), and a `record.updated` that fetched its
//! record before the delete upserts on `attio_record_id` after the archive — which creates a
//! NEW contact, because an archived one no longer holds the id. So every handled delete —
//! `record.deleted`, `note.deleted` / `task.deleted`, Attio's not-found for a note or task —
//! first leaves a tombstone for the Attio id (`relay_mappings::Tombstones`, kept 30 days), and:
//!
//! - every write checks the tombstone AFTER it wrote and mapped its copy ([`unless_deleted`],
//!   [`archive_if_deleted`]) and archives the copy when the id is buried. The delete buries
//!   BEFORE it reads the mapping. Each side writes, then reads the other's write (the store
//!   reads are strongly consistent), so whatever the interleaving at least one of them sees
//!   the other: the writer finds the tombstone, or the delete finds the mapping. Both may
//!   archive; archiving twice is harmless.
//! - a write that finds the tombstone before it starts writes nothing (and archives whatever a
//!   writer that crashed after its mapping left behind).
//! - a note or task delete that finds a create in flight (the create's reservation held, no
//!   mapping yet) is retried rather than done ([`archive_engagement`]): if the creator dies
//!   after mapping its copy but before its check, the delete's retry finds the mapping and
//!   archives it; if it lives, its own check archives the copy first. A creator that dies
//!   between HubSpot's create and the mapping leaves a copy no mapping names — finding that
//!   one is the create path's recovery of unknown outcomes, not this module's.
//!
//! Merges are not deletes: an original Attio merged away reads 404 but gets no tombstone (only
//! `record.deleted` buries a record), so its mapping, re-pointed to the merged object, keeps
//! working for notes and tasks that name it.
//!
//! [`unless_deleted`]: SyncContext::unless_deleted
//! [`archive_if_deleted`]: SyncContext::archive_if_deleted
//! [`archive_engagement`]: SyncContext::archive_engagement

use std::collections::HashMap;

use relay_attio::AttioApi;
use relay_crm::{CrmId, CrmObject, CrmSink};
use relay_mappings::{IdMappings, Reservation, TOMBSTONE_RETENTION};

use crate::Disposition;
use crate::context::{CREATE_LEASE, CREATE_SETTLE, StepError, SyncContext};

impl<S: CrmSink, M: IdMappings, A: AttioApi> SyncContext<S, M, A> {
    /// Remembers that `attio_id` (whose copies are `object`s) was deleted in Attio.
    pub(crate) async fn bury(&self, object: CrmObject, attio_id: &str) -> Result<(), StepError> {
        self.mappings
            .bury(object, attio_id, self.clock.now(), TOMBSTONE_RETENTION)
            .await?;
        Ok(())
    }

    /// True when `attio_id` was deleted in Attio (within the tombstones' retention).
    pub(crate) async fn is_buried(
        &self,
        object: CrmObject,
        attio_id: &str,
    ) -> Result<bool, StepError> {
        Ok(self
            .mappings
            .is_buried(object, attio_id, self.clock.now())
            .await?)
    }

    /// A record Attio deleted (`record.deleted`): buried first, then its copy archived (see
    /// [`Self::archive_record`], which leaves a merged record's copy alone).
    pub(crate) async fn delete_record(
        &self,
        crm_object: CrmObject,
        record_id: &str,
    ) -> Result<(), StepError> {
        self.bury(crm_object, record_id).await?;
        self.archive_record(crm_object, record_id).await
    }

    /// Archives the copy of `record_id` when the record was deleted: after a write, so a
    /// delete handled while the write was in flight cannot leave a recreated copy, and before
    /// one, to skip it. True when the record is buried (the caller writes or links nothing
    /// more for it).
    pub(crate) async fn archive_if_deleted(
        &self,
        crm_object: CrmObject,
        record_id: &str,
    ) -> Result<bool, StepError> {
        if !self.is_buried(crm_object, record_id).await? {
            return Ok(false);
        }
        tracing::info!(%crm_object, record_id, "record was deleted in Attio; archiving its copy instead of writing it");
        self.archive_record(crm_object, record_id).await?;
        Ok(true)
    }

    /// [`Self::archive_if_deleted`] for a batch's records of one CRM object: one tombstone
    /// read for all of them (`Tombstones::buried_among`), then each buried one archived. The
    /// buried ids, each with its archive's outcome; an id not in the answer is live. A failed
    /// read fails them all (the caller settles them alike).
    pub(crate) async fn archive_deleted_among(
        &self,
        crm_object: CrmObject,
        record_ids: &[String],
    ) -> Result<HashMap<String, Result<(), StepError>>, StepError> {
        if record_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let buried = self
            .mappings
            .buried_among(crm_object, record_ids, self.clock.now())
            .await?;
        let mut archived = HashMap::with_capacity(buried.len());
        for record_id in buried {
            tracing::info!(%crm_object, record_id, "record was deleted in Attio; archiving its copy instead of writing it");
            let outcome = self.archive_record(crm_object, &record_id).await;
            archived.insert(record_id, outcome);
        }
        Ok(archived)
    }

    /// A note or task Attio deleted (its delete event, or Attio's not-found for it): buried
    /// first, then its copy archived.
    pub(crate) async fn delete_engagement(
        &self,
        object: CrmObject,
        attio_id: &str,
    ) -> Result<(), StepError> {
        self.bury(object, attio_id).await?;
        self.archive_engagement(object, attio_id).await
    }

    /// Archives the copy of a deleted note or task and forgets it and its remembered links.
    /// The reservation says whether one exists: mapped (archive it), nobody creating (nothing
    /// to do; the reservation just taken is released), or a create in flight — then the
    /// message is retried, so the copy that create makes is archived even if its creator dies
    /// before its own check (see the module doc).
    pub(crate) async fn archive_engagement(
        &self,
        object: CrmObject,
        attio_id: &str,
    ) -> Result<(), StepError> {
        let now = self.clock.now();
        match self
            .mappings
            .reserve(object, attio_id, now, CREATE_LEASE)
            .await?
        {
            Reservation::Mapped(id) => self.archive_engagement_copy(object, attio_id, &id).await,
            Reservation::Reserved => {
                self.mappings.remove(object, attio_id).await?;
                Ok(())
            }
            Reservation::Busy => Err(StepError(Disposition::retry(format!(
                "{object} {attio_id} was deleted while another invocation creates it; archiving once that create settles"
            )))),
            // An earlier create's outcome is unknown: whatever it made carries the marker, and
            // is found once HubSpot's search can show it (see `engagements.rs`).
            Reservation::Unresolved { attempted_at } => {
                let age = now.saturating_sub(attempted_at);
                if age < i64::try_from(CREATE_SETTLE.as_secs()).unwrap_or(i64::MAX) {
                    return Err(StepError(Disposition::retry(format!(
                        "{object} {attio_id} was deleted; an earlier create {age} s ago has no known outcome, looked up once search can show it"
                    ))));
                }
                for copy in self.crm.find_by_marker(object, attio_id).await? {
                    self.archive_engagement_copy(object, attio_id, &copy)
                        .await?;
                }
                self.remember_links(object, attio_id, &[]).await?;
                self.mappings.remove(object, attio_id).await?;
                Ok(())
            }
        }
    }

    async fn archive_engagement_copy(
        &self,
        object: CrmObject,
        attio_id: &str,
        id: &CrmId,
    ) -> Result<(), StepError> {
        match self.crm.archive(object, id).await {
            // Archived already (a second copy found by marker, or a retry).
            Ok(()) | Err(relay_crm::CrmError::NotFound { .. }) => {}
            Err(err) => return Err(err.into()),
        }
        self.remember_links(object, attio_id, &[]).await?;
        self.mappings.remove(object, attio_id).await?;
        tracing::info!(%object, attio_id, crm_id = %id, "archived the copy of a deleted note or task");
        Ok(())
    }

    /// What a note or task write (`written`) comes to once the tombstone is checked. Not
    /// buried: `written`. Buried: the copy the write left mapped is archived and the message is
    /// done; with no copy mapped, a refusal is moot (the data is deleted — nothing for an
    /// operator to replay) and is done too, while a transient failure is still retried: its
    /// retry finds the tombstone before writing, and the create path may yet learn what an
    /// unanswered create made.
    pub(crate) async fn unless_deleted(
        &self,
        object: CrmObject,
        attio_id: &str,
        written: Result<(), StepError>,
    ) -> Result<(), StepError> {
        if !self.is_buried(object, attio_id).await? {
            return written;
        }
        tracing::info!(%object, attio_id, "deleted in Attio while being written; archiving the copy");
        if let Some(id) = self.mappings.get(object, attio_id).await? {
            return self.archive_engagement_copy(object, attio_id, &id).await;
        }
        match written {
            Err(StepError(Disposition::DeadLetter { reason })) => {
                tracing::info!(%object, attio_id, %reason, "a refused write of a deleted note or task is moot");
                Ok(())
            }
            other => other,
        }
    }
}
