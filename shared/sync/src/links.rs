//! Links between records as CRM associations: after a record is upserted, each record it
//! references through a link attribute is synced first when it never was (so its CRM id
//! exists), then associated with HubSpot's default association type for the pair.
//!
//! Which attributes link what comes from Attio's standard objects: a person's `company`
//! (https://docs.attio.com/docs/standard-objects/standard-objects-people), a deal's
//! `associated_company` and `associated_people`
//! (https://docs.attio.com/docs/standard-objects/standard-objects-deals; the list of standard
//! record references is at
//! https://docs.attio.com/rest-api/attribute-types/attribute-types-record-reference). A referenced record
//! whose object the field mapping does not map is skipped. The default association PUT is
//! idempotent, so a redelivered message links again harmlessly; links removed in Attio are
//! not removed in HubSpot (yet).

use relay_attio::{AttioApi, ValueMap, current_values};
use relay_crm::{CrmId, CrmObject, CrmSink};
use relay_mappings::IdMappings;

use crate::context::{StepError, SyncContext};

/// The record-reference attributes that become associations, by Attio object slug.
fn link_attributes(slug: &str) -> &'static [&'static str] {
    match slug {
        "people" => &["company"],
        "deals" => &["associated_company", "associated_people"],
        _ => &[],
    }
}

/// The records `values` reference through `slug`'s link attributes: (object slug, record id),
/// each once, in Attio's order.
pub(crate) fn linked_records(slug: &str, values: &ValueMap) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for attribute in link_attributes(slug) {
        for value in current_values(values, attribute) {
            if let relay_attio::Value::RecordReference(r) = value {
                let link = (r.target_object.clone(), r.target_record_id.clone());
                if !out.contains(&link) {
                    out.push(link);
                }
            }
        }
    }
    out
}

impl<S: CrmSink, M: IdMappings, A: AttioApi> SyncContext<S, M, A> {
    /// Associates the CRM object `id` (of `object`) with every record in `links`, syncing a
    /// linked record first when it has no CRM id yet. Stops at the first failure: the message
    /// is retried or dead-lettered as the error says, and the retry repeats the (idempotent)
    /// associations already made.
    pub(crate) async fn link(
        &self,
        object: CrmObject,
        id: &CrmId,
        links: &[(String, String)],
    ) -> Result<(), StepError> {
        for (target_object, target_record_id) in links {
            let Some((to, to_id)) = self.ensure_record(target_object, target_record_id).await?
            else {
                tracing::debug!(object = %target_object, "linked object is not mapped to the CRM; skipping");
                continue;
            };
            self.crm.associate(object, id, to, &to_id).await?;
        }
        Ok(())
    }
}
