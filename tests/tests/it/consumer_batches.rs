//! The shared consumer glue against moto's SQS: only retried messages are reported as batch
//! failures, dead letters reach the DLQ at once with their reason, nothing is dropped.
use aws_lambda_events::event::sqs::SqsEvent;
use integration_tests::event_source::sqs_message;
use integration_tests::moto;
use relay_consumer::{
    BatchHandler, DeadLetterError, DeadLetters, InboundEvent, RawMessage, SqsDeadLetters,
    handle_sqs_event,
};
use relay_events::{EventFamily, QueuedEvent};
use relay_sync::{Disposition, MessageOutcome};

/// Decides each message by its event's task id: "ok", "flaky" (retry) or "poison" (dead letter).
struct ByTaskId;

impl BatchHandler for ByTaskId {
    async fn handle(&self, events: &[InboundEvent]) -> Vec<MessageOutcome> {
        events
            .iter()
            .map(|e| {
                let raw = e.queued.event.get();
                let disposition = if raw.contains("\"poison\"") {
                    Disposition::dead_letter("HubSpot refused: VALIDATION_ERROR")
                } else if raw.contains("\"flaky\"") {
                    Disposition::retry("Attio 503")
                } else {
                    Disposition::Done
                };
                MessageOutcome {
                    message_id: e.message_id.clone(),
                    disposition,
                }
            })
            .collect()
    }
}

fn queued(task_id: &str) -> String {
    let body = format!(
        r#"{{"event_type":"task.updated","id":{{"workspace_id":"ws","task_id":"{task_id}"}},"actor":{{"type":"system","id":null}}}}"#
    );
    QueuedEvent::first_of(body.as_bytes(), task_id, 1_763_000_000)
        .expect("event")
        .to_body()
}

#[tokio::test]
async fn a_batch_reports_only_its_retries_and_forwards_dead_letters_with_reasons() {
    let config = moto::sdk_config().await;
    let queues = moto::fresh_queues(&config, 3).await;
    let dlq = queues.dlqs[&EventFamily::Tasks].clone();
    let dead_letters = SqsDeadLetters::new(aws_sdk_sqs::Client::new(&config), &dlq);

    let mut event = SqsEvent::default();
    event.records = vec![
        sqs_message("m-ok", queued("ok"), Some(1)),
        sqs_message("m-flaky", queued("flaky"), Some(1)),
        sqs_message("m-poison", queued("poison"), Some(1)),
        sqs_message("m-garbage", "{not json", Some(1)),
    ];
    let response = handle_sqs_event(event, &ByTaskId, &dead_letters).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, vec!["m-flaky"]);

    let dead = moto::drain(&config, &dlq).await;
    assert_eq!(dead.len(), 2);
    let reasons: Vec<_> = dead
        .iter()
        .map(|m| m.attributes["failure_reason"].clone())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("VALIDATION_ERROR")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("not a queued Attio event")),
        "{reasons:?}"
    );
    assert!(
        dead.iter().any(|m| m.body == "{not json"),
        "forwarded unchanged"
    );
}

/// A DLQ that is down: the dead letter must be retried, not dropped.
struct DownDlq;

impl DeadLetters for DownDlq {
    async fn forward(&self, _: &RawMessage, _: &str) -> Result<(), DeadLetterError> {
        Err(DeadLetterError::Send("injected".into()))
    }
}

#[tokio::test]
async fn a_dead_letter_that_cannot_be_forwarded_is_retried() {
    let messages = vec![RawMessage {
        message_id: "m-poison".into(),
        body: queued("poison"),
        attributes: Default::default(),
        receive_count: 1,
        receipt_handle: None,
    }];
    let retry = relay_consumer::settle(messages, &ByTaskId, &DownDlq).await;
    assert_eq!(retry, vec!["m-poison"]);
}
