//! Full syncs: records fetched in pages (`records/query`) go through the same field mapping,
//! batched upsert and id mappings as the records consumer.

use relay_attio::Record;
use relay_crm::{CrmObject, CrmSink, RecordUpsert};
use relay_mappings::IdMappings;

use crate::context::{StepError, SyncContext};
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
    pub async fn sync_page(&self, slug: &str, records: &[Record]) -> Result<PageReport, StepError> {
        let mut report = PageReport::default();
        let mut upserts: Vec<RecordUpsert> = Vec::new();
        let mut crm_object: Option<CrmObject> = None;
        for record in records {
            let record_id = record.record_id();
            match self
                .fields
                .map_record(slug, record_id, &RecordValues(&record.values))
            {
                Ok(Some((object, properties))) => {
                    crm_object = Some(object);
                    upserts.push(RecordUpsert {
                        attio_record_id: record_id.to_owned(),
                        properties,
                    });
                }
                Ok(None) => report.skipped += 1,
                Err(err) => report.failed.push((record_id.to_owned(), err.to_string())),
            }
        }
        let Some(object) = crm_object else {
            return Ok(report);
        };
        let result = self.crm.upsert_records(object, &upserts).await?;
        for (attio_id, crm_id) in &result.ids {
            self.mappings.put(object, attio_id, crm_id).await?;
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
