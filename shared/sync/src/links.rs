//! Links between records as CRM associations: after a record is upserted, each record it
//! references through a link attribute is synced first when it never was (so its CRM id
//! exists), then associated with HubSpot's default association type for the pair. Notes and
//! tasks keep their parent and linked records the same way (`engagements.rs`).
//!
//! Which attributes link what comes from Attio's standard objects: a person's `company`
//! (https://docs.attio.com/docs/standard-objects/standard-objects-people), a deal's
//! `associated_company` and `associated_people`
//! (https://docs.attio.com/docs/standard-objects/standard-objects-deals; the list of standard
//! record references is at
//! https://docs.attio.com/rest-api/attribute-types/attribute-types-record-reference). A referenced record
//! whose object the field mapping does not map is skipped.
//!
//! Links removed in Attio are removed in HubSpot, but only those the relay made: HubSpot's
//! removal takes every association of the pair (`CrmSink::dissociate`), and a portal's users
//! associate records by hand too, so removing anything the relay did not make would destroy
//! their work. Each synced record, note or task remembers the CRM records the relay linked it
//! to (a mapping under [`links_key`]); each sync removes the remembered ones Attio no longer
//! names. The set is written BEFORE new associations are made (remembered ∪ current), so a
//! crash between the association and the write can never leave an association the relay made
//! but forgot — it would stay forever. A remembered link that was never made is harmless:
//! removing a pair that is not associated succeeds. Associations made before the relay
//! remembered links (older versions) are left alone, as is a pair a user had associated
//! before Attio named it (the relay cannot tell that it did not make it).
//!
//! The set is marked confirmed once every association in it was made. A sync whose links are
//! exactly a confirmed set makes no HubSpot call at all — an import that edits a thousand
//! people's job titles costs no association calls — and any other sync makes every current
//! link (the default association PUT is idempotent, so a redelivered message or a crash
//! between the write-ahead and the PUTs only repeats it).

use relay_attio::{AttioApi, ValueMap, current_values};
use relay_crm::{Association, CrmId, CrmObject, CrmSink};
use relay_mappings::IdMappings;

use crate::batch::RecordRef;
use crate::context::{StepError, SyncContext};

/// The record-reference attributes that become associations, by Attio object slug.
fn link_attributes(slug: &str) -> &'static [&'static str] {
    match slug {
        "people" => &["company"],
        "deals" => &["associated_company", "associated_people"],
        _ => &[],
    }
}

/// The records `values` reference through `slug`'s link attributes (by object slug), each
/// once, in Attio's order.
pub(crate) fn linked_records(slug: &str, values: &ValueMap) -> Vec<RecordRef> {
    let mut out: Vec<RecordRef> = Vec::new();
    for attribute in link_attributes(slug) {
        for value in current_values(values, attribute) {
            if let relay_attio::Value::RecordReference(r) = value {
                let link = RecordRef::new(&r.target_object, &r.target_record_id);
                if !out.contains(&link) {
                    out.push(link);
                }
            }
        }
    }
    out
}

/// Where the CRM records the relay linked an Attio record, note or task to are remembered: a
/// mapping (under the linking object's type) whose value lists them, as in merges.rs's
/// `#merged-from` — the mappings port stays four calls.
pub(crate) fn links_key(attio_id: &str) -> String {
    format!("{attio_id}#links")
}

/// Marks a remembered set whose associations were all made, on the copy named after it (see
/// the module doc): `={copy id}|`.
const CONFIRMED: char = '=';

/// `type:id,type:id`, led by `={copy}|` once all were made from the CRM object `copy`: CRM ids
/// hold neither `,` nor `|` nor a leading `type:` of their own (the outbox's
/// `outbox:companies:…` ids keep their colons: only the first one splits).
fn encode(targets: &[Association], confirmed_on: Option<&CrmId>) -> CrmId {
    let items: Vec<String> = targets
        .iter()
        .map(|t| format!("{}:{}", t.to, t.id))
        .collect();
    let mark = confirmed_on.map_or(String::new(), |copy| format!("{CONFIRMED}{copy}|"));
    CrmId(format!("{mark}{}", items.join(",")))
}

/// What [`encode`] wrote: the targets and the copy they were all made on. An item this
/// version cannot read is skipped (never removed); a set written by an older version (no mark)
/// reads as unconfirmed, so its links are made once more.
fn decode(stored: &CrmId) -> Remembered {
    let (confirmed_on, items) = match stored
        .0
        .strip_prefix(CONFIRMED)
        .and_then(|rest| rest.split_once('|'))
    {
        Some((copy, rest)) => (Some(CrmId(copy.to_owned())), rest),
        None => (None, stored.0.as_str()),
    };
    let targets = items
        .split(',')
        .filter(|i| !i.is_empty())
        .filter_map(|item| {
            let (to, id) = item.split_once(':')?;
            let to = CrmObject::parse(to)?;
            Some(Association {
                to,
                id: CrmId(id.to_owned()),
            })
        })
        .collect();
    Remembered {
        targets,
        confirmed_on,
    }
}

/// The links remembered for one Attio record, note or task.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Remembered {
    pub(crate) targets: Vec<Association>,
    /// The CRM copy every one of `targets` was associated with (not just written ahead). A copy
    /// HubSpot lost and the upsert made again has a new id, so its links are made again.
    pub(crate) confirmed_on: Option<CrmId>,
}

impl Remembered {
    /// The same set as `targets`, whatever the order.
    fn same_as(&self, targets: &[Association]) -> bool {
        self.targets.len() == targets.len() && targets.iter().all(|t| self.targets.contains(t))
    }
}

impl<S: CrmSink, M: IdMappings, A: AttioApi> SyncContext<S, M, A> {
    /// The CRM records `links` name (Attio object, record id), each synced first when it never
    /// was, so a record, note or task is never linked to nothing; unmapped objects are skipped.
    /// A failure stops here, before anything is written: the message is retried or
    /// dead-lettered as the error says.
    pub(crate) async fn link_targets(
        &self,
        links: &[RecordRef],
    ) -> Result<Vec<Association>, StepError> {
        let mut out = Vec::new();
        for link in links {
            let Some((to, id)) = self.ensure_record(&link.object, &link.record_id).await? else {
                tracing::debug!(object = %link.object, "linked object is not mapped to the CRM; skipping");
                continue;
            };
            let target = Association { to, id };
            if !out.contains(&target) {
                out.push(target);
            }
        }
        Ok(out)
    }

    /// The CRM links remembered for `attio_id` (of CRM type `object`).
    pub(crate) async fn remembered_links(
        &self,
        object: CrmObject,
        attio_id: &str,
    ) -> Result<Remembered, StepError> {
        let stored = self.mappings.get(object, &links_key(attio_id)).await?;
        Ok(stored.as_ref().map(decode).unwrap_or_default())
    }

    /// Remembers `targets` as what the relay may have linked `attio_id` to (nothing: forgets),
    /// before the associations are made.
    pub(crate) async fn remember_links(
        &self,
        object: CrmObject,
        attio_id: &str,
        targets: &[Association],
    ) -> Result<(), StepError> {
        self.store_links(object, attio_id, targets, None).await
    }

    /// Stores the remembered set; `confirmed_on` the copy once every association in it was
    /// made on it.
    pub(crate) async fn store_links(
        &self,
        object: CrmObject,
        attio_id: &str,
        targets: &[Association],
        confirmed_on: Option<&CrmId>,
    ) -> Result<(), StepError> {
        let key = links_key(attio_id);
        if targets.is_empty() {
            self.mappings.remove(object, &key).await?;
        } else {
            let value = encode(targets, confirmed_on);
            self.mappings.put(object, &key, &value).await?;
        }
        Ok(())
    }

    /// Links the CRM object `id` (the copy of `attio_id`, of type `object`) to every record in
    /// `links`, syncing a linked record first when it has no CRM id yet, and removes the links
    /// the relay made earlier that `links` no longer holds (see the module doc).
    pub(crate) async fn link(
        &self,
        object: CrmObject,
        id: &CrmId,
        attio_id: &str,
        links: &[RecordRef],
    ) -> Result<(), StepError> {
        let targets = self.link_targets(links).await?;
        self.relink(object, id, attio_id, &targets).await
    }

    /// Makes `targets` the links the relay holds for `id`: associates each (idempotent), then
    /// removes the remembered ones not among them, and remembers `targets` as made. Nothing at
    /// all when `targets` is the confirmed set already. Stops at the first failure; the retry
    /// repeats the work, which is idempotent throughout.
    pub(crate) async fn relink(
        &self,
        object: CrmObject,
        id: &CrmId,
        attio_id: &str,
        targets: &[Association],
    ) -> Result<(), StepError> {
        let held = self.remembered_links(object, attio_id).await?;
        if held.confirmed_on.as_ref() == Some(id) && held.same_as(targets) {
            return Ok(());
        }
        let remembered = held.targets;
        if targets.iter().any(|t| !remembered.contains(t)) {
            // Written ahead, so no association the relay makes is ever unremembered.
            let mut union = remembered.clone();
            union.extend(targets.iter().filter(|t| !remembered.contains(t)).cloned());
            self.remember_links(object, attio_id, &union).await?;
        }
        for target in targets {
            self.crm
                .associate(object, id, target.to, &target.id)
                .await?;
        }
        let stale: Vec<&Association> = remembered.iter().filter(|r| !targets.contains(r)).collect();
        for target in &stale {
            self.crm
                .dissociate(object, id, target.to, &target.id)
                .await?;
            tracing::info!(%object, crm_id = %id, to = %target.to, to_id = %target.id, "removed a link Attio no longer has");
        }
        self.store_links(object, attio_id, targets, Some(id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_links_read_back_and_unknown_items_are_skipped() {
        let targets = vec![
            Association {
                to: CrmObject::Companies,
                id: CrmId("outbox:companies:c1".into()),
            },
            Association {
                to: CrmObject::Contacts,
                id: CrmId("901".into()),
            },
        ];
        let stored = encode(&targets, None);
        assert_eq!(stored.0, "companies:outbox:companies:c1,contacts:901");
        assert_eq!(decode(&stored).targets, targets);
        assert_eq!(decode(&stored).confirmed_on, None);
        let copy = CrmId("77".into());
        let made = encode(&targets, Some(&copy));
        assert_eq!(made.0, "=77|companies:outbox:companies:c1,contacts:901");
        assert_eq!(
            decode(&made),
            Remembered {
                targets: targets.clone(),
                confirmed_on: Some(copy)
            }
        );
        let with_unknown = CrmId("tickets:5,contacts:901,".into());
        assert_eq!(decode(&with_unknown).targets, targets[1..]);
    }
}
