//! HubSpot associations between records (v4 API; default associations have no v3 equivalent).
//!
//! * Making one: `PUT /crm/v4/objects/{from}/{id}/associations/default/{to}/{toId}`, no body.
//!   HubSpot picks the default (most generic, unlabeled) association type for the pair, so no
//!   type ids are kept here
//!   (<https://developers.hubspot.com/docs/api-reference/crm-associations-v4/basic/put-crm-v4-objects-fromObjectType-fromObjectId-associations-default-toObjectType-toObjectId>).
//!   A PUT sets the association: making it again leaves one, so a retried or redelivered
//!   message may repeat it.
//! * Removing one: `DELETE /crm/v4/objects/{from}/{id}/associations/{to}/{toId}`, which
//!   "deletes all associations between two records" and answers 204 without a body
//!   (<https://developers.hubspot.com/docs/api-reference/2026-03/crm/associations/associate-records/delete-association.md>).
//!   All, labels included — but the narrower call would not keep them either: removing the
//!   unlabeled association "will also delete all labeled associations between those two
//!   objects" (the v4 batch label archive,
//!   <https://developers.hubspot.fr/docs/api-reference/crm-associations-v4/batch/post-crm-v4-associations-fromObjectType-toObjectType-batch-labels-archive>).
//!   So the sync only ever removes pairs it associated itself (see `relay-sync`'s `links.rs`).

use reqwest::{Method, StatusCode};

use crate::hubspot::{ASSOCIATIONS, refusal};
use crate::{CrmError, CrmId, CrmObject, HubSpotSink};

impl HubSpotSink {
    /// The default association PUT. A 404 (either record gone) is not found; an answer listing
    /// `errors` is a refusal classified by its category.
    pub(crate) async fn put_default_association(
        &self,
        from: CrmObject,
        from_id: &CrmId,
        to: CrmObject,
        to_id: &CrmId,
    ) -> Result<(), CrmError> {
        let operation = format!("associate {from} with {to}");
        let (status, body) = self
            .call_found(
                operation.clone(),
                Method::PUT,
                &format!("{ASSOCIATIONS}/{from}/{from_id}/associations/default/{to}/{to_id}"),
                None,
            )
            .await?;
        if let Some(error) = body["errors"].as_array().and_then(|e| e.first()) {
            let (category, message, _, _) = refusal(status.as_u16(), error);
            return Err(CrmError::Rejected {
                operation,
                status: 400,
                category,
                message,
            });
        }
        Ok(())
    }

    /// The pair DELETE. A 404 means a record (so its associations) is gone already: removing
    /// is idempotent, like archiving, so a retried message may repeat it.
    pub(crate) async fn delete_associations(
        &self,
        from: CrmObject,
        from_id: &CrmId,
        to: CrmObject,
        to_id: &CrmId,
    ) -> Result<(), CrmError> {
        let (status, _) = self
            .call(
                &format!("dissociate {from} from {to}"),
                Method::DELETE,
                &format!("{ASSOCIATIONS}/{from}/{from_id}/associations/{to}/{to_id}"),
                None,
            )
            .await?;
        if status == StatusCode::NOT_FOUND {
            tracing::debug!(%from, %from_id, %to, %to_id, "association already gone");
        }
        Ok(())
    }
}
