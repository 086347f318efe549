//! record.* events: one Attio fetch and one batched upsert per record per batch, however many
//! events name it; deletes archive the CRM copy; merges merge the CRM copies.

use std::collections::BTreeMap;
use std::sync::Arc;

use relay_attio::AttioError;
use relay_crm::{CrmObject, CrmSink, RecordUpsert};
use relay_events::Subject;
use relay_mappings::IdMappings;

use crate::context::{StepError, SyncContext};
use crate::record_source::RecordValues;
use crate::{BatchHandler, Disposition, InboundEvent, MessageOutcome};

/// Everything one batch says about one record.
#[derive(Debug, Default)]
struct RecordWork {
    message_ids: Vec<String>,
    deleted: bool,
    /// Records merged into this one (they no longer exist in Attio).
    merged_duplicates: Vec<String>,
}

/// The records consumer.
#[derive(Debug)]
pub struct RecordsHandler<S, M> {
    ctx: Arc<SyncContext<S, M>>,
}

impl<S, M> RecordsHandler<S, M> {
    pub fn new(ctx: Arc<SyncContext<S, M>>) -> Self {
        Self { ctx }
    }
}

/// Groups a batch by (object id, record id), in first-seen order.
fn coalesce(
    events: &[InboundEvent],
    outcomes: &mut Vec<MessageOutcome>,
) -> Vec<((String, String), RecordWork)> {
    let mut order: Vec<(String, String)> = Vec::new();
    let mut work: BTreeMap<(String, String), RecordWork> = BTreeMap::new();
    for inbound in events {
        let subject = inbound.event.parse_event().ok().map(|e| e.subject);
        let (key, deleted, duplicate) = match subject {
            Some(Subject::Record {
                object_id,
                record_id,
                ..
            }) => {
                let deleted = inbound.event.event_type == relay_events::EventType::RecordDeleted;
                ((object_id, record_id), deleted, None)
            }
            Some(Subject::MergedRecord {
                object_id,
                record_id,
                duplicate,
            }) => ((object_id, record_id), false, Some(duplicate.record_id)),
            _ => {
                outcomes.push(MessageOutcome {
                    message_id: inbound.message_id.clone(),
                    disposition: Disposition::dead_letter(format!(
                        "{} is not a record event with object_id and record_id",
                        inbound.event.event_type
                    )),
                });
                continue;
            }
        };
        if !work.contains_key(&key) {
            order.push(key.clone());
        }
        let entry = work.entry(key).or_default();
        entry.message_ids.push(inbound.message_id.clone());
        entry.deleted |= deleted;
        entry.merged_duplicates.extend(duplicate);
    }
    order
        .into_iter()
        .filter_map(|key| work.remove(&key).map(|w| (key, w)))
        .collect()
}

impl<S: CrmSink, M: IdMappings> RecordsHandler<S, M> {
    /// Merges the CRM copies of records Attio merged into `record_id`.
    async fn merge_duplicates(
        &self,
        crm_object: CrmObject,
        record_id: &str,
        duplicates: &[String],
    ) -> Result<(), StepError> {
        let Some(primary) = self.ctx.mappings.get(crm_object, record_id).await? else {
            return Ok(());
        };
        for duplicate in duplicates {
            if let Some(dup) = self.ctx.mappings.get(crm_object, duplicate).await? {
                if dup != primary {
                    self.ctx.crm.merge(crm_object, &primary, &dup).await?;
                }
                self.ctx.mappings.remove(crm_object, duplicate).await?;
            }
        }
        Ok(())
    }
}

impl<S: CrmSink, M: IdMappings> BatchHandler for RecordsHandler<S, M> {
    async fn handle(&self, events: &[InboundEvent]) -> Vec<MessageOutcome> {
        let mut outcomes = Vec::new();
        let groups = coalesce(events, &mut outcomes);
        let settle =
            |outcomes: &mut Vec<MessageOutcome>, work: &RecordWork, disposition: &Disposition| {
                outcomes.extend(work.message_ids.iter().map(|id| MessageOutcome {
                    message_id: id.clone(),
                    disposition: disposition.clone(),
                }));
            };

        // Fetch and map every live record; deletes (and records Attio no longer has) archive.
        let mut upserts: BTreeMap<CrmObject, Vec<(RecordUpsert, RecordWork)>> = BTreeMap::new();
        for ((object_id, record_id), work) in groups {
            let step: Result<Option<(CrmObject, RecordUpsert)>, StepError> = async {
                let slug = self.ctx.slug(&object_id).await?;
                let Some(crm_object) = self.ctx.fields.crm_object(&slug) else {
                    tracing::debug!(object = %slug, "object is not mapped to the CRM; skipping");
                    return Ok(None);
                };
                if work.deleted {
                    self.ctx.archive_record(crm_object, &record_id).await?;
                    return Ok(None);
                }
                let record = match self.ctx.attio.get_record(&slug, &record_id).await {
                    Ok(record) => record,
                    Err(AttioError::NotFound { .. }) => {
                        tracing::info!(record_id, "record no longer exists in Attio; archiving");
                        self.ctx.archive_record(crm_object, &record_id).await?;
                        return Ok(None);
                    }
                    Err(err) => return Err(err.into()),
                };
                let mapped =
                    self.ctx
                        .fields
                        .map_record(&slug, &record_id, &RecordValues(&record.values))?;
                Ok(mapped.map(|(crm_object, properties)| {
                    (
                        crm_object,
                        RecordUpsert {
                            attio_record_id: record_id.clone(),
                            properties,
                        },
                    )
                }))
            }
            .await;
            match step {
                Ok(Some((crm_object, upsert))) => {
                    upserts.entry(crm_object).or_default().push((upsert, work))
                }
                Ok(None) => settle(&mut outcomes, &work, &Disposition::Done),
                Err(StepError(disposition)) => settle(&mut outcomes, &work, &disposition),
            }
        }

        // One batched upsert per CRM object type, then mappings and merges.
        for (crm_object, items) in upserts {
            let inputs: Vec<RecordUpsert> = items.iter().map(|(u, _)| u.clone()).collect();
            let report = match self.ctx.crm.upsert_records(crm_object, &inputs).await {
                Ok(report) => report,
                Err(err) => {
                    let StepError(disposition) = err.into();
                    for (_, work) in &items {
                        settle(&mut outcomes, work, &disposition);
                    }
                    continue;
                }
            };
            for (upsert, work) in &items {
                let record_id = &upsert.attio_record_id;
                let disposition = if let Some(failure) = report
                    .failures
                    .iter()
                    .find(|f| &f.attio_record_id == record_id)
                {
                    Disposition::for_refused(failure)
                } else if let Some(id) = report.ids.get(record_id) {
                    let step: Result<(), StepError> = async {
                        self.ctx.mappings.put(crm_object, record_id, id).await?;
                        self.merge_duplicates(crm_object, record_id, &work.merged_duplicates)
                            .await
                    }
                    .await;
                    step.err().map_or(Disposition::Done, |StepError(d)| d)
                } else {
                    Disposition::retry(format!("CRM returned no id for record {record_id}"))
                };
                settle(&mut outcomes, work, &disposition);
            }
        }
        outcomes
    }
}
