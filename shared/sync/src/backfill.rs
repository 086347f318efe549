//! Full syncs: records fetched in pages (`records/query`) go through the same field mapping,
//! batched upsert and id mappings as the records consumer.

use relay_attio::Record;
use relay_crm::{CrmObject, CrmSink, RecordUpsert};
use relay_mappings::IdMappings;

use crate::Disposition;
use crate::batch::Outcomes;
use crate::context::{StepError, SyncContext};
use crate::record_batch::Item;
use crate::record_source::RecordValues;

/// What one page did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PageReport {
    pub synced: usize,
    /// Records of an object the field mapping does not name.
    pub skipped: usize,
    /// Records the CRM or the mapping refused, with why.
    pub failed: Vec<(String, String)>,
}

impl<S: CrmSink, M: IdMappings, A> SyncContext<S, M, A> {
    /// Maps and upserts one page of records of object `slug`, and records their CRM ids.
    ///
    /// With two-way sync on, the page goes through the same forward rules as the records
    /// consumer (`two_way/forward.rs`): a `both` field equal to its ledger entry is not sent,
    /// one HubSpot changed since is left to the `hubspot` consumer, a conflict goes to the
    /// later change and is stored, and the ledger records what was sent. Why: a backfill or
    /// reconcile pass re-reads every record, and sending Attio's value blindly would overwrite
    /// every newer HubSpot edit of a `both` field.
    pub async fn sync_page(&self, slug: &str, records: &[Record]) -> Result<PageReport, StepError> {
        let mut report = PageReport::default();
        let mut items: Vec<Item<()>> = Vec::new();
        let mut crm_object: Option<CrmObject> = None;
        for record in records {
            let record_id = record.record_id();
            match self
                .fields
                .map_record(slug, record_id, &RecordValues(&record.values))
            {
                Ok(Some((object, properties))) => {
                    crm_object = Some(object);
                    let upsert = RecordUpsert {
                        attio_record_id: record_id.to_owned(),
                        properties,
                    };
                    let fields = self.forward_fields(slug, &record.values);
                    items.push(Item::page(slug, upsert, fields));
                }
                Ok(None) => report.skipped += 1,
                Err(err) => report.failed.push((record_id.to_owned(), err.to_string())),
            }
        }
        let Some(object) = crm_object else {
            return Ok(report);
        };
        let mut outcomes = Outcomes::default();
        let items = self.forward_chunk(object, items, &mut outcomes).await;
        for outcome in outcomes.into_vec() {
            match outcome.disposition {
                Disposition::Done => {}
                // A ledger, conflict or HubSpot read that failed for good: this record only.
                Disposition::DeadLetter { reason } => {
                    report.failed.push((outcome.message_id, reason));
                }
                // A store or HubSpot failing for now: the page is retried as a whole, as when
                // the upsert fails.
                other => return Err(StepError(other)),
            }
        }
        if items.is_empty() {
            return Ok(report);
        }
        let upserts: Vec<RecordUpsert> = items.iter().map(|i| i.upsert.clone()).collect();
        let result = self.crm.upsert_records(object, &upserts).await?;
        for (attio_id, crm_id) in &result.ids {
            self.mappings.put(object, attio_id, crm_id).await?;
        }
        if let Some(two_way) = &self.two_way {
            for item in items.iter().filter(|i| !i.ledger.is_empty()) {
                let record_id = &item.upsert.attio_record_id;
                if result.ids.contains_key(record_id) {
                    two_way
                        .stores
                        .record_ledger(object, record_id, &item.ledger)
                        .await?;
                }
            }
        }
        report.synced += result.ids.len();
        report.failed.extend(
            result
                .failures
                .into_iter()
                .map(|f| (f.attio_record_id, f.message)),
        );
        Ok(report)
    }
}
