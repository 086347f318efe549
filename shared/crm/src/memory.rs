//! A [`CrmSink`] in memory for tests of the sync handlers: logs every operation it makes as the
//! [`OutboxEntry`] the outbox would write, hands out ids, and can be told to fail a call with a
//! given [`CrmError`] or to refuse one input of a batch upsert as HubSpot's 207 does.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::{
    Association, CrmError, CrmId, CrmObject, CrmSink, ItemFailure, OutboxEntry, Properties,
    RecordUpsert, UpsertReport,
};

/// The kinds of call, to choose which one fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrmOp {
    Upsert,
    Create,
    Update,
    Archive,
    Merge,
}

#[derive(Debug, Default)]
pub struct MemoryCrm {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Operations made, in order; a call told to fail made none.
    done: Vec<OutboxEntry>,
    last_id: u64,
    /// Upserted records keep their id, as `attio_record_id` is HubSpot's unique key.
    record_ids: HashMap<(CrmObject, String), CrmId>,
    failures: HashMap<CrmOp, VecDeque<CrmError>>,
    /// Inputs refused in every upsert, by Attio record id: (message, permanent).
    refused: HashMap<String, (String, bool)>,
}

impl State {
    fn new_id(&mut self) -> CrmId {
        self.last_id += 1;
        CrmId(self.last_id.to_string())
    }
}

impl MemoryCrm {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next call of kind `op` fails with `error` (queue several for several calls).
    pub fn fail_next(&self, op: CrmOp, error: CrmError) {
        self.state()
            .failures
            .entry(op)
            .or_default()
            .push_back(error);
    }

    /// Every upsert refuses the input for `attio_record_id`, as a per-item failure.
    pub fn refuse(&self, attio_record_id: &str, message: &str, permanent: bool) {
        self.state()
            .refused
            .insert(attio_record_id.to_owned(), (message.to_owned(), permanent));
    }

    /// Every operation made so far, in order (calls told to fail made none).
    pub fn calls(&self) -> Vec<OutboxEntry> {
        self.state().done.clone()
    }

    /// The state for one call of kind `op`, or the failure queued for it.
    fn begin(&self, op: CrmOp) -> Result<MutexGuard<'_, State>, CrmError> {
        let mut state = self.state();
        match state.failures.get_mut(&op).and_then(VecDeque::pop_front) {
            Some(error) => Err(error),
            None => Ok(state),
        }
    }
}

impl CrmSink for MemoryCrm {
    async fn upsert_records(
        &self,
        object: CrmObject,
        records: &[RecordUpsert],
    ) -> Result<UpsertReport, CrmError> {
        let mut state = self.begin(CrmOp::Upsert)?;
        state.done.push(OutboxEntry::Upsert {
            object,
            records: records.to_vec(),
        });
        let mut report = UpsertReport::default();
        for record in records {
            let attio_id = &record.attio_record_id;
            if let Some((message, permanent)) = state.refused.get(attio_id) {
                report.failures.push(ItemFailure {
                    attio_record_id: attio_id.clone(),
                    message: message.clone(),
                    permanent: *permanent,
                });
                continue;
            }
            let key = (object, attio_id.clone());
            let id = match state.record_ids.get(&key) {
                Some(id) => id.clone(),
                None => {
                    let id = state.new_id();
                    state.record_ids.insert(key, id.clone());
                    id
                }
            };
            report.ids.insert(attio_id.clone(), id);
        }
        Ok(report)
    }

    async fn create(
        &self,
        object: CrmObject,
        properties: &Properties,
        associations: &[Association],
    ) -> Result<CrmId, CrmError> {
        let mut state = self.begin(CrmOp::Create)?;
        let id = state.new_id();
        state.done.push(OutboxEntry::Create {
            object,
            id: id.clone(),
            properties: properties.clone(),
            associations: associations.to_vec(),
        });
        Ok(id)
    }

    async fn update(
        &self,
        object: CrmObject,
        id: &CrmId,
        properties: &Properties,
    ) -> Result<(), CrmError> {
        self.begin(CrmOp::Update)?.done.push(OutboxEntry::Update {
            object,
            id: id.clone(),
            properties: properties.clone(),
        });
        Ok(())
    }

    async fn archive(&self, object: CrmObject, id: &CrmId) -> Result<(), CrmError> {
        self.begin(CrmOp::Archive)?.done.push(OutboxEntry::Archive {
            object,
            id: id.clone(),
        });
        Ok(())
    }

    /// The primary survives (HubSpot with Primary ID Preservation).
    async fn merge(
        &self,
        object: CrmObject,
        primary: &CrmId,
        duplicate: &CrmId,
    ) -> Result<CrmId, CrmError> {
        self.begin(CrmOp::Merge)?.done.push(OutboxEntry::Merge {
            object,
            primary: primary.clone(),
            duplicate: duplicate.clone(),
        });
        Ok(primary.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(id: &str) -> RecordUpsert {
        RecordUpsert {
            attio_record_id: id.into(),
            properties: Properties::new(),
        }
    }

    #[tokio::test]
    async fn upserts_keep_ids_refusals_are_per_item_and_failures_are_used_once() {
        let crm = MemoryCrm::new();
        crm.refuse("bad", "INVALID_EMAIL", true);
        let first = crm
            .upsert_records(CrmObject::Contacts, &[upsert("a"), upsert("bad")])
            .await
            .expect("upsert");
        assert_eq!(first.failures.len(), 1);
        assert_eq!(first.failures[0].attio_record_id, "bad");
        let again = crm
            .upsert_records(CrmObject::Contacts, &[upsert("a")])
            .await
            .expect("upsert");
        assert_eq!(first.ids["a"], again.ids["a"]);

        crm.fail_next(
            CrmOp::Create,
            CrmError::Unavailable {
                operation: "create".into(),
                message: "503".into(),
            },
        );
        let notes = CrmObject::Notes;
        assert!(crm.create(notes, &Properties::new(), &[]).await.is_err());
        let created = crm.create(notes, &Properties::new(), &[]).await;
        assert_ne!(created.expect("create"), first.ids["a"]);
        // The failed create made nothing.
        assert_eq!(crm.calls().len(), 3);
    }
}
