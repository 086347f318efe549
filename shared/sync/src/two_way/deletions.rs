//! A HubSpot deletion, as configured (`HUBSPOT_DELETIONS`): `ignore` (the default) acknowledges
//! it; `delete` deletes the Attio record the deleted object was the copy of.
//!
//! **Attio has no archive for records.** Its API offers `DELETE
//! /v2/objects/{object}/records/{record_id}` ("Deletes a single record",
//! <https://docs.attio.com/rest-api/endpoint-reference/records/delete-a-record>) and nothing
//! that archives or restores one, so `delete` deletes.
//!
//! **Which record.** A `*.deletion` webhook names only the object id, and HubSpot no longer
//! answers a deleted object in a batch read; it is in the recycling bin, which a batch read
//! with `archived=true` answers, with its properties (`CrmSource::read_archived`). Its own
//! `attio_record_id` names the record. The record is deleted only when all of these hold:
//!
//! 1. HubSpot does not answer the id live (restored since, or the event is stale: nothing);
//! 2. HubSpot answers it as archived — an object merged away is not in the recycling bin
//!    (HubSpot's merge keeps one object, <https://developers.hubspot.com/changelog/new-subscription-types-for-webhooks>:
//!    the `*.merge` event names the survivor and the `mergedObjectIds`), nor is one deleted
//!    for privacy (`privacyDeletion` removes it for good: nothing says which record, nothing
//!    is done);
//! 3. the record is mapped to this very object. A merge loser's record is mapped to the
//!    merge's survivor once the `*.merge` event is handled (`reverse.rs`), and a copy a merge
//!    or adoption left behind is not the record's copy: deleting for it would delete a
//!    record whose HubSpot object lives on.
//!
//! **Then**, under the record's lock: the Attio record is deleted (`not_found`: deleted
//! already, done), and the record is handled as Attio's own `record.deleted` is
//! (`SyncContext::delete_record`): buried first — a tombstone, so a late `record.updated`
//! whose upsert would create a NEW HubSpot object archives it instead — then its mapped copy
//! archived (already archived in HubSpot: harmless) and the mapping removed. Attio sends a
//! `record.deleted` for the relay's delete; handled again, it finds the work done.

use relay_attio::{AttioApi, AttioWriter};
use relay_crm::{CrmId, CrmObject, CrmSink, ID_PROPERTY};
use relay_mappings::IdMappings;

use super::TwoWay;
use crate::Disposition;
use crate::context::{StepError, SyncContext};

impl<S: CrmSink, M: IdMappings, A: AttioApi + AttioWriter> SyncContext<S, M, A> {
    /// A HubSpot object deleted by someone other than the relay, with `HUBSPOT_DELETIONS=delete`.
    pub(crate) async fn hubspot_deleted(
        &self,
        two_way: &TwoWay,
        object: CrmObject,
        crm_id: &CrmId,
    ) -> Disposition {
        crate::context::disposition(self.delete_from_hubspot(two_way, object, crm_id).await)
    }

    async fn delete_from_hubspot(
        &self,
        two_way: &TwoWay,
        object: CrmObject,
        crm_id: &CrmId,
    ) -> Result<(), StepError> {
        let Some(slug) = self.fields.deletion_object(object) else {
            tracing::info!(%object, %crm_id, "HubSpot deletion of an object the field mapping does not map to one Attio object; acknowledged");
            return Ok(());
        };
        let ids = std::slice::from_ref(crm_id);
        let asked = [ID_PROPERTY];
        if !two_way
            .stores
            .read_crm(object, ids, &asked)
            .await?
            .is_empty()
        {
            tracing::info!(%object, %crm_id, "HubSpot holds the object again (restored); not deleted in Attio");
            return Ok(());
        }
        let archived = two_way.stores.read_archived(object, ids, &asked).await?;
        let Some(record_id) = archived
            .iter()
            .find(|s| &s.id == crm_id)
            .and_then(|s| s.properties.get(ID_PROPERTY).cloned().flatten())
        else {
            tracing::info!(%object, %crm_id, "the deleted HubSpot object is not in the recycling bin with an attio_record_id (merged away, deleted for good, or never synced); nothing deleted in Attio");
            return Ok(());
        };
        if self.mappings.get(object, &record_id).await?.as_ref() != Some(crm_id) {
            tracing::info!(%object, %crm_id, %record_id, "the Attio record is not mapped to the deleted object (a merge's survivor or another copy holds it); not deleted");
            return Ok(());
        }
        let mut held = super::Held::default();
        let refused = self
            .lock_records(object, std::slice::from_ref(&record_id), &mut held)
            .await;
        if let Some(d) = refused.get(&record_id) {
            self.unlock_records(held).await;
            return Err(StepError(d.clone()));
        }
        let result = self.delete_locked(object, slug, &record_id).await;
        self.unlock_records(held).await;
        result
    }

    async fn delete_locked(
        &self,
        object: CrmObject,
        slug: &str,
        record_id: &str,
    ) -> Result<(), StepError> {
        match self.attio.delete_record(slug, record_id).await {
            Ok(()) => {
                tracing::info!(%object, %record_id, "HubSpot object deleted; its Attio record deleted (HUBSPOT_DELETIONS=delete)");
            }
            Err(err) if err.is_record_gone() => {
                tracing::info!(%object, %record_id, "the Attio record was deleted already");
            }
            Err(err) => return Err(err.into()),
        }
        self.delete_record(object, record_id).await
    }
}
