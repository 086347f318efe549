//! Everything a handler needs, shared by the four families.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use relay_attio::{AttioClient, AttioError, SchemaCache};
use relay_crm::{CrmError, CrmId, CrmObject, CrmSink, RecordUpsert};
use relay_mappings::{IdMappings, MappingError};

use crate::record_source::RecordValues;
use crate::{Disposition, FieldMapping};

/// How long a note or task create is reserved against concurrent creators.
pub const CREATE_LEASE: Duration = Duration::from_secs(120);

/// The ports and configuration the handlers share.
#[derive(Debug)]
pub struct SyncContext<S, M> {
    pub attio: AttioClient,
    pub schema: SchemaCache,
    pub crm: S,
    pub mappings: M,
    pub fields: Arc<FieldMapping>,
}

/// Why one step failed, already classified.
#[derive(Debug)]
pub struct StepError(pub Disposition);

impl From<AttioError> for StepError {
    fn from(err: AttioError) -> Self {
        Self(if err.is_permanent() {
            Disposition::dead_letter(format!("Attio: {err}"))
        } else {
            Disposition::retry(format!("Attio: {err}"))
        })
    }
}

impl From<CrmError> for StepError {
    fn from(err: CrmError) -> Self {
        Self(if err.is_permanent() {
            Disposition::dead_letter(format!("CRM: {err}"))
        } else {
            Disposition::retry(format!("CRM: {err}"))
        })
    }
}

impl From<MappingError> for StepError {
    fn from(err: MappingError) -> Self {
        Self(Disposition::retry(err))
    }
}

impl From<crate::FieldMappingError> for StepError {
    fn from(err: crate::FieldMappingError) -> Self {
        Self(Disposition::dead_letter(err))
    }
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl<S: CrmSink, M: IdMappings> SyncContext<S, M> {
    pub fn new(attio: AttioClient, crm: S, mappings: M, fields: FieldMapping) -> Self {
        Self {
            schema: SchemaCache::new(attio.clone()),
            attio,
            crm,
            mappings,
            fields: Arc::new(fields),
        }
    }

    /// The CRM id of an Attio record, syncing it first when it never was (so a note or task
    /// can be associated with it). `None` when its object is not mapped.
    pub async fn ensure_record(
        &self,
        object: &str,
        record_id: &str,
    ) -> Result<Option<(CrmObject, CrmId)>, StepError> {
        let slug = self.slug(object).await?;
        let Some(crm_object) = self.fields.crm_object(&slug) else {
            return Ok(None);
        };
        if let Some(id) = self.mappings.get(crm_object, record_id).await? {
            return Ok(Some((crm_object, id)));
        }
        self.sync_record(&slug, record_id).await
    }

    /// Fetches a record and upserts it (used outside the records consumer's batched path).
    pub async fn resync_record(&self, object: &str, record_id: &str) -> Result<(), StepError> {
        let slug = self.slug(object).await?;
        self.sync_record(&slug, record_id).await.map(drop)
    }

    async fn sync_record(
        &self,
        slug: &str,
        record_id: &str,
    ) -> Result<Option<(CrmObject, CrmId)>, StepError> {
        let record = match self.attio.get_record(slug, record_id).await {
            Ok(record) => record,
            Err(AttioError::NotFound { .. }) => {
                if let Some(crm_object) = self.fields.crm_object(slug) {
                    self.archive_record(crm_object, record_id).await?;
                }
                return Ok(None);
            }
            Err(err) => return Err(err.into()),
        };
        let Some((crm_object, properties)) =
            self.fields
                .map_record(slug, record_id, &RecordValues(&record.values))?
        else {
            return Ok(None);
        };
        let report = self
            .crm
            .upsert_records(
                crm_object,
                &[RecordUpsert {
                    attio_record_id: record_id.to_owned(),
                    properties,
                }],
            )
            .await?;
        if let Some(failure) = report.failures.first() {
            return Err(StepError(Disposition::for_refused(failure)));
        }
        let id =
            report.ids.get(record_id).cloned().ok_or_else(|| {
                StepError(Disposition::retry("CRM returned no id for the record"))
            })?;
        self.mappings.put(crm_object, record_id, &id).await?;
        Ok(Some((crm_object, id)))
    }

    /// Archives the CRM copy of a deleted record and forgets its mapping.
    pub async fn archive_record(
        &self,
        crm_object: CrmObject,
        record_id: &str,
    ) -> Result<(), StepError> {
        if let Some(id) = self.mappings.get(crm_object, record_id).await? {
            self.crm.archive(crm_object, &id).await?;
            self.mappings.remove(crm_object, record_id).await?;
        } else {
            tracing::info!(
                record_id,
                "deleted record was never synced; nothing to archive"
            );
        }
        Ok(())
    }

    /// An object's slug from its id (events carry ids; the API and the mapping use slugs).
    /// Slugs pass through unchanged.
    pub async fn slug(&self, object: &str) -> Result<String, StepError> {
        Ok(self.schema.slug_for(object).await?)
    }
}
