//! The invocation's deadline, as a [`Budget`] for the handler.
//!
//! Lambda gives each invocation a deadline (`Context::deadline`, wall-clock milliseconds). A
//! consumer that outlives it is killed and the *whole* batch comes back — finished groups are
//! redone, and a note or task killed between its HubSpot create and its mapping write could be
//! created twice. Worst-case retries of one group (an Attio call's 20 s budget, then a HubSpot
//! call's 20 s of waits plus its 10 s request timeout) are close to the 60 s function timeout,
//! so the handler stops *starting* groups once no more than the margin is left; the messages it
//! did not start are reported in `batchItemFailures` and made visible again at once.

use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use relay_sync::{Budget, QueueHandler};
use tokio::time::Instant;

use crate::{DeadLetters, handle_sqs_event_within};

/// Time kept free at the end of an invocation: one group's worst case (Attio 20 s + HubSpot
/// 20 s of waits + 10 s request). `DEADLINE_MARGIN_SECS` changes it.
pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_secs(50);

/// The budget of an invocation whose deadline is `deadline`, seen at wall-clock `now`: the
/// time left is measured once, against the wall clock Lambda's deadline is in, then counted
/// down on tokio's monotonic clock (which tests can pause).
pub fn invocation_budget(deadline: SystemTime, now: SystemTime, margin: Duration) -> Budget {
    let left = deadline.duration_since(now).unwrap_or(Duration::ZERO);
    Budget::until(Instant::now() + left, margin)
}

/// The Lambda entry: an SQS event with its context in, `batchItemFailures` out; groups start
/// only while more than `margin` is left before the invocation's deadline.
pub async fn handle_lambda_event(
    event: LambdaEvent<SqsEvent>,
    now: SystemTime,
    margin: Duration,
    handler: &impl QueueHandler,
    dead_letters: &impl DeadLetters,
) -> SqsBatchResponse {
    let budget = invocation_budget(event.context.deadline(), now, margin);
    handle_sqs_event_within(event.payload, &budget, handler, dead_letters).await
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use aws_lambda_events::event::sqs::SqsMessage;
    use lambda_runtime::Context;
    use relay_attio::WorkspaceMember;
    use relay_attio::{AttioApi, AttioCall, AttioError, MemoryAttio, Note, Record, Task};
    use relay_crm::{CrmObject, MemoryCrm};
    use relay_events::QueuedEvent;
    use relay_mappings::MemoryMappings;
    use relay_sync::{FieldMapping, SchemaAware, SyncContext, TasksHandler};

    use super::*;
    use crate::{DeadLetterError, RawMessage};

    const WS: &str = "a9f6fd20-80d5-4bd1-b8fe-60a7c5a9178a";

    /// Attio whose task reads each take `delay` of (paused) time: a slow API, or retries.
    struct SlowAttio {
        inner: MemoryAttio,
        delay: Duration,
    }

    impl AttioApi for SlowAttio {
        async fn get_record(&self, object: &str, record_id: &str) -> Result<Record, AttioError> {
            self.inner.get_record(object, record_id).await
        }
        async fn get_records(
            &self,
            object: &str,
            ids: &[String],
        ) -> Result<Vec<Record>, AttioError> {
            self.inner.get_records(object, ids).await
        }
        async fn get_note(&self, note_id: &str) -> Result<Note, AttioError> {
            self.inner.get_note(note_id).await
        }
        async fn get_task(&self, task_id: &str) -> Result<Task, AttioError> {
            tokio::time::sleep(self.delay).await;
            self.inner.get_task(task_id).await
        }
        async fn workspace_member(&self, id: &str) -> Result<WorkspaceMember, AttioError> {
            self.inner.workspace_member(id).await
        }
        async fn object_slug(&self, object: &str) -> Result<String, AttioError> {
            self.inner.object_slug(object).await
        }
        fn forget_schema_of(&self, object: &str) {
            self.inner.forget_schema_of(object);
        }
        fn forget_schema(&self) {
            self.inner.forget_schema();
        }
    }

    /// Records the visibility changes it is asked for.
    #[derive(Default)]
    struct Visibility {
        changed: Mutex<Vec<(String, Duration)>>,
        forwarded: Mutex<Vec<String>>,
    }

    impl DeadLetters for Visibility {
        async fn forward(&self, message: &RawMessage, _: &str) -> Result<(), DeadLetterError> {
            let id = message.message_id.clone();
            self.forwarded.lock().expect("lock").push(id);
            Ok(())
        }

        async fn hold(&self, message: &RawMessage, d: Duration) -> Result<(), DeadLetterError> {
            let change = (message.message_id.clone(), d);
            self.changed.lock().expect("lock").push(change);
            Ok(())
        }
    }

    type Ctx = SyncContext<MemoryCrm, MemoryMappings, SlowAttio>;

    fn context(task_ids: &[&str], delay: Duration) -> Arc<Ctx> {
        let attio = MemoryAttio::new();
        for id in task_ids {
            let task = serde_json::json!({
                "id": {"workspace_id": WS, "task_id": id},
                "content_plaintext": format!("Call back {id}"),
                "deadline_at": null, "is_completed": false, "linked_records": [],
                "created_at": "2026-11-04T08:00:00Z"
            });
            attio.put_task(serde_json::from_value(task).expect("task"));
        }
        Arc::new(SyncContext::with_attio(
            SlowAttio {
                inner: attio,
                delay,
            },
            MemoryCrm::new(),
            MemoryMappings::new(),
            FieldMapping::default(),
        ))
    }

    fn message(task_id: &str) -> SqsMessage {
        let event = format!(
            r#"{{"event_type":"task.created","id":{{"workspace_id":"{WS}","task_id":"{task_id}"}},"actor":{{"type":"system","id":null}}}}"#
        );
        let body = QueuedEvent::first_of(event.as_bytes(), task_id, 1_763_000_000)
            .expect("event")
            .to_body();
        let mut message = SqsMessage::default();
        message.message_id = Some(format!("m-{task_id}"));
        message.body = Some(body);
        message.receipt_handle = Some(format!("receipt-{task_id}"));
        message.attributes = HashMap::from([("ApproximateReceiveCount".into(), "1".into())]);
        message
    }

    /// A hand-built invocation: these tasks, and `timeout` until the deadline from `now`.
    fn invocation(task_ids: &[&str], now: SystemTime, timeout: Duration) -> LambdaEvent<SqsEvent> {
        let mut event = SqsEvent::default();
        event.records = task_ids.iter().map(|id| message(id)).collect();
        let mut context = Context::default();
        let deadline = (now + timeout)
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970");
        context.deadline = u64::try_from(deadline.as_millis()).expect("ms");
        LambdaEvent::new(event, context)
    }

    fn failures(response: &SqsBatchResponse) -> Vec<&str> {
        let failed = response.batch_item_failures.iter();
        failed.map(|f| f.item_identifier.as_str()).collect()
    }

    fn fetched_tasks(ctx: &Ctx) -> Vec<String> {
        let calls = ctx.attio.inner.calls().into_iter();
        calls
            .filter_map(|c| match c {
                AttioCall::Task(id) => Some(id),
                _ => None,
            })
            .collect()
    }

    const TASKS: [&str; 5] = ["t1", "t2", "t3", "t4", "t5"];

    #[tokio::test(start_paused = true)]
    async fn groups_are_not_started_inside_the_margin_and_come_back_at_once_without_redoing_work() {
        // Each task takes 12 s; 60 s to the deadline, 30 s margin: t1 starts at 0 s (48 s
        // would be left after it), t2 at 12 s, t3 at 24 s (36 s left); at 36 s only 24 s are
        // left, so t4 and t5 are not started.
        let ctx = context(&TASKS, Duration::from_secs(12));
        // Wrapped as `lambda::run` wraps it: the deadline must reach the inner handler.
        let handler = SchemaAware::new(ctx.clone(), TasksHandler::new(ctx.clone()));
        let queue = Visibility::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_000_000);
        let started = Instant::now();

        let event = invocation(&TASKS, now, Duration::from_secs(60));
        let margin = Duration::from_secs(30);
        let response = handle_lambda_event(event, now, margin, &handler, &queue).await;

        assert_eq!(failures(&response), ["m-t4", "m-t5"]);
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(36),
            "ended before the deadline"
        );
        assert_eq!(
            fetched_tasks(&ctx),
            ["t1", "t2", "t3"],
            "t4 and t5 never started"
        );
        assert_eq!(ctx.crm.objects(CrmObject::Tasks).len(), 3);
        assert_eq!(
            queue.changed.lock().expect("lock").clone(),
            [
                ("m-t4".to_owned(), Duration::ZERO),
                ("m-t5".to_owned(), Duration::ZERO)
            ],
            "deferred messages are visible again at once"
        );
        assert!(queue.forwarded.lock().expect("lock").is_empty());

        // SQS redelivers only the two; a fresh invocation finishes them, and nothing done
        // before is done again.
        let now = now + Duration::from_secs(40);
        let event = invocation(&["t4", "t5"], now, Duration::from_secs(60));
        let response = handle_lambda_event(event, now, margin, &handler, &queue).await;
        assert!(failures(&response).is_empty());
        assert_eq!(fetched_tasks(&ctx), TASKS);
        assert_eq!(ctx.crm.objects(CrmObject::Tasks).len(), 5, "each task once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_started_group_finishes_even_past_the_margin_and_the_first_always_starts() {
        // A margin longer than the invocation still lets one group run per receive.
        let ctx = context(&TASKS[..2], Duration::from_secs(40));
        // Wrapped as `lambda::run` wraps it: the deadline must reach the inner handler.
        let handler = SchemaAware::new(ctx.clone(), TasksHandler::new(ctx.clone()));
        let queue = Visibility::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_000_000);

        let event = invocation(&TASKS[..2], now, Duration::from_secs(45));
        let margin = DEFAULT_DEADLINE_MARGIN;
        let response = handle_lambda_event(event, now, margin, &handler, &queue).await;

        assert_eq!(failures(&response), ["m-t2"]);
        assert_eq!(fetched_tasks(&ctx), ["t1"]);
        assert_eq!(ctx.crm.objects(CrmObject::Tasks).len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_deadline_nothing_is_deferred() {
        let ctx = context(&TASKS, Duration::from_secs(30));
        // Wrapped as `lambda::run` wraps it: the deadline must reach the inner handler.
        let handler = SchemaAware::new(ctx.clone(), TasksHandler::new(ctx.clone()));
        let queue = Visibility::default();
        let mut event = SqsEvent::default();
        event.records = TASKS.iter().map(|id| message(id)).collect();

        let response = crate::handle_sqs_event(event, &handler, &queue).await;

        assert!(failures(&response).is_empty());
        assert_eq!(ctx.crm.objects(CrmObject::Tasks).len(), 5);
        assert!(queue.changed.lock().expect("lock").is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_already_passed_leaves_a_budget_of_nothing() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let budget = invocation_budget(now - Duration::from_secs(1), now, Duration::ZERO);
        assert_eq!(budget.remaining(), Some(Duration::ZERO));
        let budget = invocation_budget(now + Duration::from_secs(9), now, Duration::ZERO);
        assert_eq!(budget.remaining(), Some(Duration::from_secs(9)));
    }
}
