//! task.* events → HubSpot tasks. There is no `task.completed` event: completion is a
//! `task.updated` whose task now has `is_completed: true`, read here from the API.

use relay_attio::{AttioApi, AttioError, CachedAttio, Task, WORKSPACE_MEMBER};
use relay_crm::{CrmObject, Properties};
use relay_events::{Event, EventType, Subject};

use crate::batch::RecordRef;
use crate::engagements::{Engagement, EngagementHandler, timestamp};
use crate::formats;

/// HubSpot limits a task subject's length; longer content stays whole in the body.
const SUBJECT_CHARS: usize = 200;

/// Tasks, for [`EngagementHandler`].
#[derive(Debug)]
pub struct Tasks;

/// The tasks consumer.
pub type TasksHandler<S, M, A = CachedAttio> = EngagementHandler<Tasks, S, M, A>;

impl Engagement for Tasks {
    const OBJECT: CrmObject = CrmObject::Tasks;
    type Source = Task;

    fn id_of(event: &Event) -> Option<&str> {
        match &event.subject {
            Subject::Task { task_id } => Some(task_id),
            _ => None,
        }
    }

    fn is_delete(event_type: &EventType) -> bool {
        *event_type == EventType::TaskDeleted
    }

    async fn fetch<A: AttioApi>(attio: &A, id: &str) -> Result<Task, AttioError> {
        attio.get_task(id).await
    }

    /// The subject is the first line, as plain text; the body is the whole content as HTML
    /// (HubSpot stores task bodies as HTML, as its API answers show). Due at the deadline —
    /// which Attio may give as a date only — else when it was created, in epoch milliseconds.
    fn properties(task: &Task) -> Properties {
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
        let body = formats::html_body(
            "",
            &task.content_plaintext,
            formats::HUBSPOT_BODY_LIMIT,
            "full task in Attio",
        );
        let due = task.deadline_at.as_deref().unwrap_or(&task.created_at);
        [
            ("hs_task_subject".to_owned(), subject),
            ("hs_task_body".to_owned(), body),
            ("hs_task_status".to_owned(), status.to_owned()),
            ("hs_timestamp".to_owned(), timestamp(due)),
        ]
        .into()
    }

    fn linked_records(task: &Task) -> Vec<RecordRef> {
        task.linked_records
            .iter()
            .map(|l| RecordRef::new(&l.target_object_id, &l.target_record_id))
            .collect()
    }

    /// The first assignee that is a workspace member: HubSpot tasks have one owner, Attio
    /// tasks any number of assignees (`[{referenced_actor_type, referenced_actor_id}]`,
    /// <https://docs.attio.com/rest-api/endpoint-reference/tasks/get-a-task>).
    fn owner_member(task: &Task) -> Option<&str> {
        task.assignees
            .iter()
            .find(|a| a.referenced_actor_type == WORKSPACE_MEMBER)
            .map(|a| a.referenced_actor_id.as_str())
    }
}
