//! The way back: what the HubSpot → Attio sync reads from the CRM (issue 14). A port of its
//! own, beside [`CrmSink`](crate::CrmSink), so a write-only destination (the local outbox) need
//! not pretend to read.

use std::collections::BTreeMap;
use std::future::Future;

use crate::{CrmError, CrmId, CrmObject};

/// When and by what a property got its current value: the newest entry of HubSpot's property
/// history (`propertiesWithHistory`,
/// <https://developers.hubspot.com/docs/api/crm/understanding-the-crm>).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyChange {
    /// Milliseconds since the epoch.
    pub at_ms: i64,
    /// HubSpot's `sourceType` (`CRM_UI`, `INTEGRATION`, `API`, `IMPORT`, …).
    pub source_type: Option<String>,
    /// HubSpot's `sourceId` (for an app's writes, the app id).
    pub source_id: Option<String>,
}

/// One CRM object as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmRecordState {
    pub id: CrmId,
    /// The asked properties; `None` for an empty one.
    pub properties: BTreeMap<String, Option<String>>,
    /// The asked properties' latest change, where HubSpot gave a history.
    pub changes: BTreeMap<String, PropertyChange>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CrmPage {
    pub records: Vec<CrmRecordState>,
    /// Pass back for the next page; `None` on the last.
    pub after: Option<String>,
}

/// What the HubSpot → Attio sync and initial matching read.
pub trait CrmSource: Send + Sync {
    /// The objects among `ids` with `properties` and each one's latest change
    /// (`POST /crm/v3/objects/{object}/batch/read` with `propertiesWithHistory`, up to 100 ids
    /// per call, <https://developers.hubspot.com/docs/api/crm/contacts>). Ids HubSpot does not
    /// hold (archived, merged away) are absent from the answer, not an error.
    fn read_batch(
        &self,
        object: CrmObject,
        ids: &[CrmId],
        properties: &[&str],
    ) -> impl Future<Output = Result<Vec<CrmRecordState>, CrmError>> + Send;

    /// The objects among `ids` that are archived (in the recycling bin), with `properties` as
    /// they held them (`POST /crm/v3/objects/{object}/batch/read?archived=true`,
    /// <https://developers.hubspot.com/docs/api-reference/latest/crm/objects/objects/batch/get-objects>:
    /// "archived: whether to return only results that have been archived"). Why: a
    /// `*.deletion` webhook names only the object id, and only the deleted object's own
    /// `attio_record_id` says which Attio record it was (`HUBSPOT_DELETIONS=delete`). Ids not
    /// archived (live, merged away, permanently deleted) are absent, not an error.
    fn read_archived(
        &self,
        object: CrmObject,
        ids: &[CrmId],
        properties: &[&str],
    ) -> impl Future<Output = Result<Vec<CrmRecordState>, CrmError>> + Send;

    /// One page (up to 100) of every object of `object` with `properties`, no history:
    /// initial matching (`backfill --direction both`) pairs them by email or domain
    /// (`GET /crm/v3/objects/{object}?limit=100&after=…`).
    fn list_page(
        &self,
        object: CrmObject,
        properties: &[&str],
        after: Option<&str>,
    ) -> impl Future<Output = Result<CrmPage, CrmError>> + Send;
}
