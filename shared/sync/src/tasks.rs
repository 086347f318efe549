//! task.* events → HubSpot tasks. There is no `task.completed` event: completion is a
//! `task.updated` whose task now has `is_completed: true`, read here from the API.

use std::sync::Arc;

use relay_attio::AttioError;
use relay_crm::{CrmObject, CrmSink, Properties};
use relay_events::{EventType, Subject};
use relay_mappings::IdMappings;

use crate::context::{StepError, SyncContext};
use crate::engagements::{coalesce, settle};
use crate::{BatchHandler, Disposition, InboundEvent, MessageOutcome};

/// HubSpot limits a task subject's length; longer content stays whole in the body.
const SUBJECT_CHARS: usize = 200;

/// The tasks consumer.
#[derive(Debug)]
pub struct TasksHandler<S, M> {
    ctx: Arc<SyncContext<S, M>>,
}

impl<S, M> TasksHandler<S, M> {
    pub fn new(ctx: Arc<SyncContext<S, M>>) -> Self {
        Self { ctx }
    }
}

impl<S: CrmSink, M: IdMappings> TasksHandler<S, M> {
    async fn sync(&self, task_id: &str, deleted: bool) -> Result<(), StepError> {
        if deleted {
            return self.ctx.archive_engagement(CrmObject::Tasks, task_id).await;
        }
        let task = match self.ctx.attio.get_task(task_id).await {
            Ok(task) => task,
            Err(AttioError::NotFound { .. }) => {
                return self.ctx.archive_engagement(CrmObject::Tasks, task_id).await;
            }
            Err(err) => return Err(err.into()),
        };
        let subject: String = task
            .content_plaintext
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(SUBJECT_CHARS)
            .collect();
        let status = if task.is_completed {
            "COMPLETED"
        } else {
            "NOT_STARTED"
        };
        let properties: Properties = [
            ("hs_task_subject".to_owned(), subject),
            ("hs_task_body".to_owned(), task.content_plaintext.clone()),
            ("hs_task_status".to_owned(), status.to_owned()),
            (
                "hs_timestamp".to_owned(),
                task.deadline_at
                    .clone()
                    .unwrap_or_else(|| task.created_at.clone()),
            ),
        ]
        .into();
        let linked: Vec<(String, String)> = task
            .linked_records
            .iter()
            .map(|l| (l.target_object_id.clone(), l.target_record_id.clone()))
            .collect();
        self.ctx
            .write_engagement(CrmObject::Tasks, task_id, &properties, || {
                self.ctx.associations_for(&linked)
            })
            .await
    }
}

impl<S: CrmSink, M: IdMappings> BatchHandler for TasksHandler<S, M> {
    async fn handle(&self, events: &[InboundEvent]) -> Vec<MessageOutcome> {
        let mut outcomes = Vec::new();
        let groups = coalesce(
            events,
            &mut outcomes,
            |e| match &e.subject {
                Subject::Task { task_id } => Some(task_id.clone()),
                _ => None,
            },
            |e| e.event_type == EventType::TaskDeleted,
        );
        for (task_id, work) in groups {
            let disposition = match self.sync(&task_id, work.deleted).await {
                Ok(()) => Disposition::Done,
                Err(StepError(d)) => d,
            };
            settle(&mut outcomes, &work, disposition);
        }
        outcomes
    }
}
