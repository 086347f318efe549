//! `record.merged`, in both of Attio's models, ending with ONE CRM object for the merged record.
//!
//! - Current model (https://docs.attio.com/rest-api/webhook-reference/record/merged and
//!   https://docs.attio.com/rest-api/endpoint-reference/records/merge-two-records): a merge
//!   makes a NEW record; Attio sends two events, each with the new record in `id.record_id`
//!   and one original as `duplicate_record_id`; the originals read 404 `not_found` afterwards;
//!   while a large merge is applied the new record reads 404 `merge_in_progress` (transient:
//!   the message is retried, nothing is archived).
//! - Older model: the survivor is one of the originals, one event names the other.
//!
//! HubSpot's merge (`POST /crm/v3/objects/{type}/merge`,
//! https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/basic/post-crm-v3-objects-contacts-merge)
//! answers the merged object, whose id is usually NEW (the primary's only with Primary ID
//! Preservation), and moves both objects' notes, tasks and associations to it. So every id of
//! the merge — the merged record and each original — is re-pointed to the id HubSpot answered,
//! at once: a retry, the other event of the pair (in this batch or another, in either order),
//! or a note whose parent is an original then finds the work done and never merges the pair
//! twice. Notes and tasks are mapped by their own ids, which a merge does not change.
//!
//! The two events need not both have arrived: the first one that finds the other original's
//! contact holding the merged record's email merges it too, when Attio says that original is
//! gone (its `not_found` is what the current model documents for originals).

use relay_attio::AttioApi;
use relay_crm::{
    CrmError, CrmId, CrmObject, CrmSink, ID_PROPERTY, ItemFailure, Properties, RecordUpsert,
};
use relay_mappings::IdMappings;

use crate::Disposition;
use crate::context::{StepError, SyncContext};
use crate::record_source::RecordValues;

/// How many contacts holding the merged record's email one event folds in at most: two
/// originals per merge, plus a spare for a merge of a merge.
const MAX_FOLDS: usize = 3;

/// The id HubSpot names in a `CONFLICT` "Contact already exists. Existing ID: N" on an update.
fn conflict_holder(err: &CrmError) -> Option<CrmId> {
    let CrmError::Rejected {
        status: 409,
        message,
        ..
    } = err
    else {
        return None;
    };
    let (_, tail) = message.split_once("Existing ID:")?;
    let id: String = tail
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (!id.is_empty()).then_some(CrmId(id))
}

/// Where the originals of a merged record are remembered: a mapping under this key whose value
/// lists them (Attio ids, comma-separated). Only the ids of one event come with it, so
/// without this a later merge (the other event of the pair, when the first one merged
/// nothing) would re-point the merged record and this event's original but leave the first
/// original mapped to an id HubSpot merged away.
fn originals_key(record_id: &str) -> String {
    format!("{record_id}#merged-from")
}

/// The records one merge touches: the merged record first, then the originals.
struct Family {
    ids: Vec<String>,
}

impl Family {
    fn contains(&self, id: &str) -> bool {
        self.ids.iter().any(|i| i == id)
    }

    fn add(&mut self, id: &str) {
        if !self.contains(id) {
            self.ids.push(id.to_owned());
        }
    }
}

impl<S: CrmSink, M: IdMappings, A: AttioApi> SyncContext<S, M, A> {
    /// Syncs `record_id`, which Attio merged `duplicates` into, so the CRM ends with exactly one
    /// object for it, mapped from it and from every original. A record that is gone again is
    /// archived; one still being merged is retried.
    pub(crate) async fn sync_merged(
        &self,
        slug: &str,
        record_id: &str,
        duplicates: &[String],
    ) -> Result<(), StepError> {
        let fetched = match self.attio.get_record(slug, record_id).await {
            Ok(fetched) => fetched,
            Err(err) if err.is_record_gone() => {
                tracing::info!(record_id, "merged record no longer exists in Attio");
                if let Some(crm_object) = self.fields.crm_object(slug) {
                    self.archive_record(crm_object, record_id).await?;
                }
                return Ok(());
            }
            // `merge_in_progress` among them: transient, so the message comes back.
            Err(err) => return Err(err.into()),
        };
        let Some((crm_object, mut properties)) =
            self.fields
                .map_record(slug, record_id, &RecordValues(&fetched.values))?
        else {
            return Ok(());
        };
        // `both` properties are never written here: the merged record has no ledger entry of
        // its own, and the surviving HubSpot object may hold a newer value. The merged record's
        // next event takes the records path, which compares them (`two_way/forward.rs`).
        for property in self.fields.two_way_properties(slug) {
            properties.remove(property);
        }
        let mut family = Family {
            ids: vec![record_id.to_owned()],
        };
        for duplicate in duplicates {
            family.add(duplicate);
        }
        let known = self
            .mappings
            .get(crm_object, &originals_key(record_id))
            .await?;
        for original in known.iter().flat_map(|k| k.0.split(',')) {
            family.add(original);
        }

        // 1. The copies Attio's ids already map to become one.
        let mut target = self.mappings.get(crm_object, record_id).await?;
        for duplicate in &family.ids[1..] {
            let Some(copy) = self.mappings.get(crm_object, duplicate).await? else {
                continue;
            };
            target = Some(match target {
                Some(t) if t != copy => {
                    self.merge_copies(crm_object, &t, &copy, &family, &properties)
                        .await?
                }
                _ => copy,
            });
        }

        // 2. The record's values onto it; a contact holding its email is folded in first.
        let mut values = properties.clone();
        values.insert(ID_PROPERTY.into(), record_id.to_owned());
        let mut folds = 0;
        let target = loop {
            let holder = match &target {
                Some(t) => match self.crm.update(crm_object, t, &values).await {
                    Ok(()) => break t.clone(),
                    Err(err) => conflict_holder(&err)
                        .filter(|_| crm_object == CrmObject::Contacts)
                        .ok_or_else(|| StepError::from(err))?,
                },
                None => {
                    let upsert = RecordUpsert {
                        attio_record_id: record_id.to_owned(),
                        properties: properties.clone(),
                    };
                    let report = self.crm.upsert_records(crm_object, &[upsert]).await?;
                    if let Some(id) = report.ids.get(record_id) {
                        break id.clone();
                    }
                    let failure = report.failures.first().ok_or_else(|| {
                        StepError(Disposition::retry(
                            "CRM returned no id for the merged record",
                        ))
                    })?;
                    holder_of(failure, crm_object)?
                }
            };
            folds += 1;
            if folds > MAX_FOLDS {
                return Err(StepError(Disposition::retry(format!(
                    "merged record {record_id}: contacts holding its email kept changing"
                ))));
            }
            self.claim(crm_object, slug, record_id, &holder, &mut family)
                .await?;
            target = Some(match target {
                Some(t) if t != holder => {
                    self.merge_copies(crm_object, &t, &holder, &family, &properties)
                        .await?
                }
                _ => holder,
            });
        };
        self.repoint(crm_object, &family, &target).await?;
        tracing::info!(record_id, crm_id = %target, originals = ?duplicates, "merged record synced to one CRM object");
        Ok(())
    }

    /// Whether the contact `holder`, which has the merged record's email, belongs to this
    /// merge: nobody's, one of the family's, or a record Attio no longer has (the other
    /// original, whose event has not come yet). A live record's contact is not taken.
    async fn claim(
        &self,
        crm_object: CrmObject,
        slug: &str,
        record_id: &str,
        holder: &CrmId,
        family: &mut Family,
    ) -> Result<(), StepError> {
        let Some(held) = self.crm.read(crm_object, holder, &[ID_PROPERTY]).await? else {
            return Err(StepError(Disposition::retry(format!(
                "HubSpot contact {holder}, which has the email of merged record {record_id}, is gone; the retry writes the record"
            ))));
        };
        let Some(owner) = held.get(ID_PROPERTY).filter(|o| !o.is_empty()) else {
            return Ok(());
        };
        if family.contains(owner) {
            return Ok(());
        }
        match self.attio.get_record(slug, owner).await {
            Err(err) if err.is_record_gone() => {
                family.add(owner);
                Ok(())
            }
            Err(err) => Err(err.into()),
            Ok(_) => Err(StepError(Disposition::dead_letter(format!(
                "Attio records {record_id} (merged) and {owner} have the same email, and HubSpot allows one contact per email (contact {holder} belongs to {owner}): merge the two people in Attio, or remove the email from one of them, then replay this message"
            )))),
        }
    }

    /// Merges `duplicate` into `primary` in the CRM and re-points the whole family to the id
    /// the CRM answered, before anything else can fail. The primary is claimed for the merged
    /// record first (only `attio_record_id`, which cannot clash by email), so the merged
    /// object carries it: when a merge happened but its answer was lost, the retry's merge of
    /// the now-gone pair is not found, and an upsert on the merged record's id finds the
    /// merged object instead.
    async fn merge_copies(
        &self,
        crm_object: CrmObject,
        primary: &CrmId,
        duplicate: &CrmId,
        family: &Family,
        properties: &Properties,
    ) -> Result<CrmId, StepError> {
        let record_id = &family.ids[0];
        let claim: Properties = [(ID_PROPERTY.to_owned(), record_id.clone())].into();
        self.crm.update(crm_object, primary, &claim).await?;
        let merged = match self.crm.merge(crm_object, primary, duplicate).await {
            Ok(merged) => merged,
            Err(CrmError::NotFound { .. }) => {
                let upsert = RecordUpsert {
                    attio_record_id: record_id.clone(),
                    properties: properties.clone(),
                };
                let report = self.crm.upsert_records(crm_object, &[upsert]).await?;
                report.ids.get(record_id).cloned().ok_or_else(|| {
                    StepError(Disposition::retry(format!(
                        "CRM objects {primary} and {duplicate} are gone and no object carries merged record {record_id}"
                    )))
                })?
            }
            Err(err) => return Err(err.into()),
        };
        tracing::info!(%primary, %duplicate, %merged, "merged CRM copies");
        self.repoint(crm_object, family, &merged).await?;
        Ok(merged)
    }

    /// Maps every id of `family` to `id`, and remembers the originals (see [`originals_key`]).
    async fn repoint(
        &self,
        crm_object: CrmObject,
        family: &Family,
        id: &CrmId,
    ) -> Result<(), StepError> {
        let originals = CrmId(family.ids[1..].join(","));
        let key = originals_key(&family.ids[0]);
        self.mappings.put(crm_object, &key, &originals).await?;
        for attio_id in &family.ids {
            self.mappings.put(crm_object, attio_id, id).await?;
        }
        Ok(())
    }
}

/// The contact a refused upsert of the merged record collided with, or the refusal's own
/// disposition.
fn holder_of(failure: &ItemFailure, crm_object: CrmObject) -> Result<CrmId, StepError> {
    match (&failure.existing, crm_object) {
        (Some(existing), CrmObject::Contacts) => Ok(existing.clone()),
        _ => Err(StepError(Disposition::for_refused(failure))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_existing_id_from_hubspots_conflict() {
        let conflict = CrmError::Rejected {
            operation: "update contacts".into(),
            status: 409,
            category: Some("CONFLICT".into()),
            message: "Contact already exists. Existing ID: 5101".into(),
        };
        assert_eq!(conflict_holder(&conflict), Some(CrmId("5101".into())));
        let other = CrmError::Rejected {
            operation: "update contacts".into(),
            status: 400,
            category: Some("VALIDATION_ERROR".into()),
            message: "Existing ID: 7".into(),
        };
        assert_eq!(conflict_holder(&other), None);
    }
}
