//! The local default sink: every operation is appended to a JSONL file instead of sent.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::{
    Association, CrmError, CrmId, CrmObject, CrmSink, Properties, RecordUpsert, UpsertReport,
    marker_property,
};

/// One line of the outbox: what would have been sent to the CRM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OutboxEntry {
    Upsert {
        object: CrmObject,
        records: Vec<RecordUpsert>,
    },
    Create {
        object: CrmObject,
        id: CrmId,
        properties: Properties,
        associations: Vec<Association>,
    },
    Update {
        object: CrmObject,
        id: CrmId,
        properties: Properties,
    },
    Archive {
        object: CrmObject,
        id: CrmId,
    },
    Merge {
        object: CrmObject,
        primary: CrmId,
        duplicate: CrmId,
    },
    /// A default association between two records (`CrmSink::associate`).
    Associate {
        from: CrmObject,
        from_id: CrmId,
        to: CrmObject,
        to_id: CrmId,
    },
    /// Every association between two records removed (`CrmSink::dissociate`).
    Dissociate {
        from: CrmObject,
        from_id: CrmId,
        to: CrmObject,
        to_id: CrmId,
    },
}

/// [`CrmSink`] that writes [`OutboxEntry`] lines to a file.
#[derive(Debug, Clone)]
pub struct OutboxSink {
    path: Arc<PathBuf>,
    lock: Arc<Mutex<()>>,
}

impl OutboxSink {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: Arc::new(path.into()),
            lock: Arc::new(Mutex::new(())),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry written so far, oldest first.
    pub fn entries(&self) -> Result<Vec<OutboxEntry>, CrmError> {
        let text = match std::fs::read_to_string(self.path.as_ref()) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| CrmError::Outbox(e.into())))
            .collect()
    }

    async fn append(&self, entry: &OutboxEntry) -> Result<(), CrmError> {
        let _guard = self.lock.lock().await;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path.as_ref())?;
        let line = serde_json::to_string(entry).map_err(|e| CrmError::Outbox(e.into()))?;
        writeln!(file, "{line}")?;
        Ok(())
    }
}

/// A stable id for a record upserted into the outbox, as HubSpot's would be.
fn outbox_id(object: CrmObject, attio_id: &str) -> CrmId {
    CrmId(format!("outbox:{object}:{attio_id}"))
}

impl CrmSink for OutboxSink {
    async fn upsert_records(
        &self,
        object: CrmObject,
        records: &[RecordUpsert],
    ) -> Result<UpsertReport, CrmError> {
        self.append(&OutboxEntry::Upsert {
            object,
            records: records.to_vec(),
        })
        .await?;
        Ok(UpsertReport {
            ids: records
                .iter()
                .map(|r| {
                    (
                        r.attio_record_id.clone(),
                        outbox_id(object, &r.attio_record_id),
                    )
                })
                .collect(),
            failures: Vec::new(),
        })
    }

    async fn create(
        &self,
        object: CrmObject,
        properties: &Properties,
        associations: &[Association],
    ) -> Result<CrmId, CrmError> {
        let id = CrmId(format!("outbox:{object}:{}", uuid::Uuid::new_v4().simple()));
        self.append(&OutboxEntry::Create {
            object,
            id: id.clone(),
            properties: properties.clone(),
            associations: associations.to_vec(),
        })
        .await?;
        Ok(id)
    }

    /// The creates in the file that carry the marker and were not archived since: a local run
    /// that died between a create and its mapping finds its note here, as HubSpot's search
    /// would.
    async fn find_by_marker(
        &self,
        object: CrmObject,
        attio_id: &str,
    ) -> Result<Vec<CrmId>, CrmError> {
        let Some(marker) = marker_property(object) else {
            return Ok(Vec::new());
        };
        let _guard = self.lock.lock().await;
        let mut found = Vec::new();
        for entry in self.entries()? {
            match entry {
                OutboxEntry::Create {
                    object: o,
                    id,
                    properties,
                    ..
                } if o == object
                    && properties.get(marker).map(String::as_str) == Some(attio_id) =>
                {
                    found.push(id);
                }
                OutboxEntry::Archive { object: o, id } if o == object => {
                    found.retain(|f| *f != id);
                }
                _ => {}
            }
        }
        Ok(found)
    }

    async fn update(
        &self,
        object: CrmObject,
        id: &CrmId,
        properties: &Properties,
    ) -> Result<(), CrmError> {
        self.append(&OutboxEntry::Update {
            object,
            id: id.clone(),
            properties: properties.clone(),
        })
        .await
    }

    /// The outbox keeps no objects to read; it never reports a conflict, so nothing adopts.
    async fn read(
        &self,
        _object: CrmObject,
        _id: &CrmId,
        _properties: &[&str],
    ) -> Result<Option<Properties>, CrmError> {
        Ok(None)
    }

    async fn archive(&self, object: CrmObject, id: &CrmId) -> Result<(), CrmError> {
        self.append(&OutboxEntry::Archive {
            object,
            id: id.clone(),
        })
        .await
    }

    async fn merge(
        &self,
        object: CrmObject,
        primary: &CrmId,
        duplicate: &CrmId,
    ) -> Result<CrmId, CrmError> {
        self.append(&OutboxEntry::Merge {
            object,
            primary: primary.clone(),
            duplicate: duplicate.clone(),
        })
        .await?;
        Ok(primary.clone())
    }

    async fn associate(
        &self,
        from: CrmObject,
        from_id: &CrmId,
        to: CrmObject,
        to_id: &CrmId,
    ) -> Result<(), CrmError> {
        self.append(&OutboxEntry::Associate {
            from,
            from_id: from_id.clone(),
            to,
            to_id: to_id.clone(),
        })
        .await
    }

    async fn dissociate(
        &self,
        from: CrmObject,
        from_id: &CrmId,
        to: CrmObject,
        to_id: &CrmId,
    ) -> Result<(), CrmError> {
        self.append(&OutboxEntry::Dissociate {
            from,
            from_id: from_id.clone(),
            to,
            to_id: to_id.clone(),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn operations_are_appended_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let sink = OutboxSink::new(dir.path().join("out/crm-outbox.jsonl"));
        let record = RecordUpsert {
            attio_record_id: "r1".into(),
            properties: [("email".to_owned(), "a@example.com".to_owned())].into(),
        };
        let report = sink
            .upsert_records(CrmObject::Contacts, std::slice::from_ref(&record))
            .await
            .unwrap();
        assert_eq!(report.ids["r1"], CrmId("outbox:contacts:r1".into()));
        let note = sink
            .create(CrmObject::Notes, &Properties::new(), &[])
            .await
            .unwrap();
        sink.archive(CrmObject::Notes, &note).await.unwrap();
        let entries = sink.entries().unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[0],
            OutboxEntry::Upsert {
                object: CrmObject::Contacts,
                records: vec![record]
            }
        );
        assert!(matches!(&entries[2], OutboxEntry::Archive { id, .. } if *id == note));
    }
}
