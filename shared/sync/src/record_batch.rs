//! The batched path live records take, shared by the records consumer and the list-entries
//! consumer (which re-syncs entries' parent records): for a batch's records, one Attio query
//! per object and one CRM batch upsert per [`UPSERT_BATCH`] records of a CRM object.
//!
//! Why: a bulk edit or an import in Attio fires one event per changed attribute. Read one
//! `GET` per record and written in upserts as small as the receive batch, the sync spends
//! Attio's read limit (about 100/s per workspace) and HubSpot's (100–190 requests per 10 s per
//! portal) one record at a time. Batched, a batch of 100 messages over 30 records of two
//! objects costs two Attio calls and one upsert per CRM object.
//!
//! Each message still settles on its own record's outcome: a record refused in the upsert's
//! multi-status answer, or whose mapping fails, fails only its messages; a query that fails
//! fails only its object's records; a chunk of the upsert that fails fails only its records.
//!
//! **Single `GET`s, only where the query cannot serve:**
//! * a record absent from the query's answer: the query cannot say why, and a `GET` can —
//!   `not_found` (deleted or merged away: left to its own `record.deleted` or `record.merged`,
//!   as before) or `merge_in_progress` (the new record of a merge being applied: retried);
//! * a query that fails the way one record can make it fail — an answer this crate cannot
//!   decode, or a 5xx after the client's retries: the object's records are read one by one,
//!   so one poison record fails alone instead of taking its object's whole batch to the DLQ.
//!   Those reads start only while the batch's [`Budget`] allows (the rest are `Deferred`).
//!   Rate limits, open circuits, 404s (an unknown object, a proxy) and other refusals settle
//!   every record of the object at once: reading one by one would fail the same way.

use std::collections::BTreeMap;

use relay_attio::{AttioApi, AttioError, Record};
use relay_crm::{CrmId, CrmObject, CrmSink, RecordUpsert};
use relay_mappings::IdMappings;

use crate::batch::{Group, Outcomes, RecordRef};
use crate::context::{StepError, SyncContext};
use crate::{Budget, Disposition};

/// Records per CRM batch upsert: HubSpot's batch upsert
/// (<https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/batch/upsert-contacts>)
/// takes at most 100 inputs per call, the size the HubSpot adapter cuts at too. The handler
/// cuts its upserts at this size itself, so each call is full, and a call that fails settles
/// only its own records' messages (the adapter would fail all of them for one chunk).
pub(crate) const UPSERT_BATCH: usize = 100;

/// The records one record links to: associated after its upsert (`links.rs`).
pub(crate) type Links = Vec<RecordRef>;

/// One record upserted and mapped, its links still to make.
pub(crate) struct Upserted<W> {
    pub crm_object: CrmObject,
    pub id: CrmId,
    pub links: Links,
    pub group: Group<RecordRef, W>,
}

/// A record's group with its object's slug.
type Slugged<W> = (String, Group<RecordRef, W>);

/// One record ready to upsert.
pub(crate) struct Item<W> {
    pub upsert: RecordUpsert,
    pub slug: String,
    links: Links,
    pub group: Group<RecordRef, W>,
    /// Its `both` fields as Attio holds them (two-way sync, `two_way/forward.rs`).
    pub fields: Vec<crate::two_way::FieldState>,
    /// What the ledger records once the upsert succeeded.
    pub ledger: relay_mappings::Ledger,
}

impl Item<()> {
    /// A record of a backfill or reconcile page (`backfill.rs`): no queue message, so its
    /// "message" is its record id, which is how the page reports it.
    pub(crate) fn page(
        slug: &str,
        upsert: RecordUpsert,
        fields: Vec<crate::two_way::FieldState>,
    ) -> Self {
        let record_id = upsert.attio_record_id.clone();
        Self {
            group: Group {
                key: RecordRef::new(slug, &record_id),
                message_ids: vec![record_id],
                work: (),
            },
            upsert,
            slug: slug.to_owned(),
            links: Vec::new(),
            fields,
            ledger: relay_mappings::Ledger::new(),
        }
    }
}

/// What reading one record came to.
#[derive(Debug, Clone)]
enum Read {
    Found(Box<Record>),
    /// Attio's documented not-found for it: deleted or merged away.
    Gone,
}

/// Whether one record can make a query fail this way, so reading the records one by one
/// isolates it: an answer that does not decode (one record's values), or Attio failing with
/// a 5xx (after the client's own retries). Anything else fails every read alike.
fn one_record_may_cause(err: &AttioError) -> bool {
    match err {
        AttioError::Decode { .. } => true,
        AttioError::Api { status, .. } => *status >= 500,
        AttioError::BudgetExhausted { last, .. } => one_record_may_cause(last),
        _ => false,
    }
}

impl<S: CrmSink, M: IdMappings, A: AttioApi> SyncContext<S, M, A> {
    /// Syncs the records `groups` name (live records: deletes and merges are the caller's):
    /// skips unmapped objects and records deleted since (archiving what is left), reads the
    /// rest with one query per object, maps them and upserts them in batches. Every group is
    /// settled in `outcomes` except those returned: upserted and mapped, their links and
    /// outcome still to give.
    pub(crate) async fn sync_records<W>(
        &self,
        groups: Vec<Group<RecordRef, W>>,
        budget: &Budget,
        outcomes: &mut Outcomes,
    ) -> Vec<Upserted<W>> {
        // Records deleted since are skipped (what is left of their copy archived): one
        // tombstone read per CRM object for the whole batch.
        let mut mapped: BTreeMap<CrmObject, Vec<Slugged<W>>> = BTreeMap::new();
        for group in groups {
            match self.mapped_slug(&group.key).await {
                Ok(Some((slug, crm_object))) => {
                    mapped.entry(crm_object).or_default().push((slug, group));
                }
                Ok(None) => outcomes.settle(&group, &Disposition::Done),
                Err(StepError(d)) => outcomes.settle(&group, &d),
            }
        }
        let mut by_object: BTreeMap<String, Vec<Group<RecordRef, W>>> = BTreeMap::new();
        for (crm_object, entries) in mapped {
            let ids: Vec<String> = entries
                .iter()
                .map(|(_, g)| g.key.record_id.clone())
                .collect();
            let buried = match self.archive_deleted_among(crm_object, &ids).await {
                Ok(buried) => buried,
                Err(StepError(d)) => {
                    entries.iter().for_each(|(_, g)| outcomes.settle(g, &d));
                    continue;
                }
            };
            for (slug, group) in entries {
                match buried.get(&group.key.record_id) {
                    None => by_object.entry(slug).or_default().push(group),
                    Some(Ok(())) => outcomes.settle(&group, &Disposition::Done),
                    Some(Err(StepError(d))) => outcomes.settle(&group, d),
                }
            }
        }

        // Two-way records are locked before they are read, until their ledger is written
        // (`two_way/locks.rs`); one held elsewhere is retried.
        let mut held = crate::two_way::Held::default();
        let mut items: BTreeMap<CrmObject, Vec<Item<W>>> = BTreeMap::new();
        for (slug, groups) in by_object {
            let groups = self.lock_groups(&slug, groups, &mut held, outcomes).await;
            let ids: Vec<String> = groups.iter().map(|g| g.key.record_id.clone()).collect();
            let reads = self.read_records(&slug, &ids, budget).await;
            for group in groups {
                let record_id = &group.key.record_id;
                let read = reads.get(record_id).cloned().unwrap_or_else(|| {
                    Err(Disposition::retry(format!(
                        "record {record_id} was not read"
                    )))
                });
                let record = match read {
                    Ok(Read::Found(record)) => record,
                    // Attio answers the same not-found for a deleted record and for an original
                    // merged into another, and SQS keeps no order: archiving here would archive
                    // an original's contact before its record.merged re-points it. The
                    // record.deleted or record.merged event Attio sends for it settles it.
                    Ok(Read::Gone) => {
                        tracing::info!(
                            record_id = %record_id,
                            "record is gone from Attio; its record.deleted or record.merged settles its CRM copy"
                        );
                        outcomes.settle(&group, &Disposition::Done);
                        continue;
                    }
                    Err(d) => {
                        outcomes.settle(&group, &d);
                        continue;
                    }
                };
                match self.map_record(&slug, record_id, &record.values).await {
                    Ok(Some((crm_object, properties))) => {
                        let links = crate::links::linked_records(&slug, &record.values);
                        let fields = self.forward_fields(&slug, &record.values);
                        let upsert = RecordUpsert {
                            attio_record_id: record_id.clone(),
                            properties,
                        };
                        let slug = slug.clone();
                        let item = Item {
                            upsert,
                            slug,
                            links,
                            group,
                            fields,
                            ledger: relay_mappings::Ledger::new(),
                        };
                        items.entry(crm_object).or_default().push(item);
                    }
                    Ok(None) => outcomes.settle(&group, &Disposition::Done),
                    Err(err) => outcomes.settle(&group, &StepError::from(err).0),
                }
            }
        }

        let mut upserted = Vec::new();
        for (crm_object, items) in items {
            let mut items = items.into_iter();
            loop {
                let chunk: Vec<Item<W>> = items.by_ref().take(UPSERT_BATCH).collect();
                if chunk.is_empty() {
                    break;
                }
                self.upsert_chunk(crm_object, chunk, outcomes, &mut upserted)
                    .await;
            }
        }
        self.unlock_records(held).await;
        upserted
    }

    /// Locks the records of `groups` when their object has `both` properties and two-way
    /// sync is on; the groups whose lock is held elsewhere are settled (retried), the rest
    /// returned.
    async fn lock_groups<W>(
        &self,
        slug: &str,
        groups: Vec<Group<RecordRef, W>>,
        held: &mut crate::two_way::Held,
        outcomes: &mut Outcomes,
    ) -> Vec<Group<RecordRef, W>> {
        let crm_object = match self.fields.crm_object(slug) {
            Some(o)
                if self.two_way.is_some() && !self.fields.two_way_properties(slug).is_empty() =>
            {
                o
            }
            _ => return groups,
        };
        let ids: Vec<String> = groups.iter().map(|g| g.key.record_id.clone()).collect();
        let refused = self.lock_records(crm_object, &ids, held).await;
        let mut kept = Vec::new();
        for group in groups {
            match refused.get(&group.key.record_id) {
                Some(d) => outcomes.settle(&group, d),
                None => kept.push(group),
            }
        }
        kept
    }

    /// The slug and CRM object of a record's object, or `None` when the object is not mapped
    /// to the CRM (nothing to write).
    async fn mapped_slug(
        &self,
        record: &RecordRef,
    ) -> Result<Option<(String, CrmObject)>, StepError> {
        let slug = self.slug(&record.object).await?;
        let Some(crm_object) = self.fields.crm_object(&slug) else {
            tracing::debug!(object = %slug, "object is not mapped to the CRM; skipping");
            return Ok(None);
        };
        Ok(Some((slug, crm_object)))
    }

    /// Reads `ids` of `slug`: one query, then single `GET`s where the query cannot serve
    /// (module docs). Every id gets an answer.
    async fn read_records(
        &self,
        slug: &str,
        ids: &[String],
        budget: &Budget,
    ) -> BTreeMap<String, Result<Read, Disposition>> {
        let mut reads = BTreeMap::new();
        let unanswered: Vec<&String> = match self.attio.get_records(slug, ids).await {
            Ok(records) => {
                for record in records {
                    let id = record.record_id().to_owned();
                    reads.insert(id, Ok(Read::Found(Box::new(record))));
                }
                ids.iter().filter(|id| !reads.contains_key(*id)).collect()
            }
            Err(err) if one_record_may_cause(&err) => {
                tracing::warn!(object = %slug, records = ids.len(), error = %err, "Attio's query failed in a way one record can cause; reading the records one by one");
                ids.iter().collect()
            }
            Err(err) => {
                let StepError(disposition) = err.into();
                for id in ids {
                    reads.insert(id.clone(), Err(disposition.clone()));
                }
                return reads;
            }
        };
        for (n, id) in unanswered.into_iter().enumerate() {
            if reads.contains_key(id) {
                continue;
            }
            // The first read is part of the started work; later ones only while time allows.
            if n > 0 && !budget.may_start() {
                reads.insert(id.clone(), Err(Disposition::Deferred));
                continue;
            }
            let read = match self.attio.get_record(slug, id).await {
                Ok(record) => Ok(Read::Found(Box::new(record))),
                Err(err) if err.is_record_gone() => Ok(Read::Gone),
                Err(err) => Err(StepError::from(err).0),
            };
            reads.insert(id.clone(), read);
        }
        reads
    }

    /// One batched upsert of `items` (at most [`UPSERT_BATCH`]), then each accepted record's
    /// mapping; a refused contact is adopted when it can be (`SyncContext::adopt`). The records
    /// written and mapped go to `upserted`; every other item is settled.
    async fn upsert_chunk<W>(
        &self,
        crm_object: CrmObject,
        items: Vec<Item<W>>,
        outcomes: &mut Outcomes,
        upserted: &mut Vec<Upserted<W>>,
    ) {
        // Two-way fields: sent only where Attio changed (`two_way/forward.rs`).
        let items = self.forward_chunk(crm_object, items, outcomes).await;
        if items.is_empty() {
            return;
        }
        let inputs: Vec<RecordUpsert> = items.iter().map(|i| i.upsert.clone()).collect();
        let report = match self.crm.upsert_records(crm_object, &inputs).await {
            Ok(report) => report,
            Err(err) => {
                let StepError(disposition) = err.into();
                for item in &items {
                    outcomes.settle(&item.group, &disposition);
                }
                return;
            }
        };
        // Every record's mapping first (the accepted ones in one write), then one tombstone
        // check for all: each record is written and mapped before its check, as
        // `tombstones.rs` requires.
        let mut mapped: Vec<(Item<W>, CrmId)> = Vec::with_capacity(items.len());
        let mut accepted: Vec<(Item<W>, CrmId)> = Vec::with_capacity(items.len());
        for mut item in items {
            let record_id = &item.upsert.attio_record_id;
            let refused = report
                .failures
                .iter()
                .find(|f| &f.attio_record_id == record_id);
            if let Some(failure) = refused {
                // The contact to adopt holds `both` values of its own (`two_way/forward.rs`).
                let compared = match &failure.existing {
                    Some(existing) => self.before_adopting(crm_object, existing, &mut item).await,
                    None => Ok(()),
                };
                let adopted = match compared {
                    Ok(()) => {
                        self.adopt(&item.slug, crm_object, &item.upsert, failure, &[])
                            .await
                    }
                    Err(err) => Err(err),
                };
                match adopted {
                    Ok(id) => mapped.push((item, id)),
                    Err(StepError(d)) => outcomes.settle(&item.group, &d),
                }
            } else if let Some(id) = report.ids.get(record_id) {
                accepted.push((item, id.clone()));
            } else {
                let d = Disposition::retry(format!("CRM returned no id for record {record_id}"));
                outcomes.settle(&item.group, &d);
            }
        }
        if !accepted.is_empty() {
            let ids: Vec<(String, CrmId)> = accepted
                .iter()
                .map(|(item, id)| (item.upsert.attio_record_id.clone(), id.clone()))
                .collect();
            match self.mappings.put_many(crm_object, &ids).await {
                Ok(()) => mapped.extend(accepted),
                Err(err) => {
                    let StepError(d) = StepError::from(err);
                    accepted
                        .iter()
                        .for_each(|(item, _)| outcomes.settle(&item.group, &d));
                }
            }
        }
        // What was sent (or found agreed) is now the fields' last synced value: recorded after
        // the mapping, before the tombstone check, as one step of the record's write.
        // One write per record, all of the chunk's at once (each record's own item).
        if let Some(two_way) = &self.two_way {
            let recorded = futures::future::join_all(mapped.iter().map(|(item, _)| async {
                if item.ledger.is_empty() {
                    return Ok(());
                }
                two_way
                    .stores
                    .record_ledger(crm_object, &item.upsert.attio_record_id, &item.ledger)
                    .await
            }))
            .await;
            let mut kept = Vec::with_capacity(mapped.len());
            for ((item, id), recorded) in mapped.into_iter().zip(recorded) {
                match recorded {
                    Ok(()) => kept.push((item, id)),
                    Err(err) => outcomes.settle(&item.group, &StepError::from(err).0),
                }
            }
            mapped = kept;
        }
        // After the write and its mapping: a record.deleted handled while this upsert was
        // in flight archived the old copy, and the upsert made a new one (`tombstones.rs`).
        let ids: Vec<String> = mapped
            .iter()
            .map(|(item, _)| item.upsert.attio_record_id.clone())
            .collect();
        let buried = match self.archive_deleted_among(crm_object, &ids).await {
            Ok(buried) => buried,
            Err(StepError(d)) => {
                mapped
                    .iter()
                    .for_each(|(item, _)| outcomes.settle(&item.group, &d));
                return;
            }
        };
        for (item, id) in mapped {
            match buried.get(&item.upsert.attio_record_id) {
                None => upserted.push(Upserted {
                    crm_object,
                    id,
                    links: item.links,
                    group: item.group,
                }),
                Some(Ok(())) => outcomes.settle(&item.group, &Disposition::Done),
                Some(Err(StepError(d))) => outcomes.settle(&item.group, d),
            }
        }
    }
}
