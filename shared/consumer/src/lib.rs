//! The part every consumer function shares: an SQS batch in, a partial batch response out.
//!
//! Each body is parsed here, once, into the typed [`InboundEvent`] handlers read. Messages
//! whose body is not a [`QueuedEvent`] (or whose event does not parse) never reach the handler;
//! they, and every message the handler marks [`Disposition::DeadLetter`], are sent to the
//! dead-letter queue at once with a `failure_reason` attribute (so operators see why), then
//! deleted from the source queue. [`Disposition::Retry`] messages are reported in `batchItemFailures`, so only they are
//! redelivered; SQS moves them to the DLQ after `maxReceiveCount`. If forwarding a dead letter
//! fails, the message is retried instead: nothing is dropped.

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use relay_events::QueuedEvent;
pub use relay_sync::{BatchHandler, InboundEvent};
use relay_sync::{Disposition, MessageOutcome};

mod dead_letters;
pub mod lambda;
mod settings;
pub use dead_letters::{DeadLetterError, DeadLetters, SqsDeadLetters};
pub use settings::{ConsumerSettings, SettingsError, TokenSource};

/// A raw message as received, kept for forwarding to the DLQ unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    pub message_id: String,
    pub body: String,
    pub attributes: BTreeMap<String, String>,
    pub receive_count: u32,
}

impl RawMessage {
    pub fn from_sqs(message: &SqsMessage) -> Self {
        Self {
            message_id: message.message_id.clone().unwrap_or_default(),
            body: message.body.clone().unwrap_or_default(),
            attributes: message
                .message_attributes
                .iter()
                .filter_map(|(k, v)| v.string_value.clone().map(|s| (k.clone(), s)))
                .collect(),
            receive_count: message
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1),
        }
    }
}

/// Parses a message body once, into the typed event handlers read; `Err` is why it is
/// dead-lettered. An envelope that parses around an event that does not is the handler's kind
/// of unreadable message, with the handler's reason.
fn parse(message: &RawMessage, handler: &impl BatchHandler) -> Result<InboundEvent, String> {
    let queued = QueuedEvent::from_body(&message.body)
        .map_err(|err| format!("message body is not a queued Attio event: {err}"))?;
    let event_type = queued.event_type.clone();
    InboundEvent::from_queued(message.message_id.clone(), queued).map_err(|err| {
        tracing::warn!(message_id = %message.message_id, error = %err, "queued event does not parse");
        handler.unreadable(&event_type)
    })
}

/// Runs `handler` over raw messages and settles every message: returns the ids to retry.
pub async fn settle(
    messages: Vec<RawMessage>,
    handler: &impl BatchHandler,
    dead_letters: &impl DeadLetters,
) -> Vec<String> {
    let mut inbound = Vec::with_capacity(messages.len());
    let mut outcomes = Vec::with_capacity(messages.len());
    for message in &messages {
        let id = &message.message_id;
        match parse(message, handler) {
            Ok(event) => inbound.push(event),
            Err(reason) => outcomes.push(MessageOutcome {
                message_id: id.clone(),
                disposition: Disposition::DeadLetter { reason },
            }),
        }
    }
    outcomes.extend(handler.handle(&inbound).await);

    let mut retry = Vec::new();
    for message in &messages {
        let disposition = outcomes
            .iter()
            .filter(|o| o.message_id == message.message_id)
            .map(|o| o.disposition.clone())
            .reduce(Disposition::worst)
            // A handler that forgot a message must not lose it.
            .unwrap_or_else(|| Disposition::retry("handler returned no outcome for this message"));
        match disposition {
            Disposition::Done => {}
            Disposition::Retry { reason } => {
                tracing::warn!(message_id = %message.message_id, receive_count = message.receive_count, reason, "message will be retried");
                retry.push(message.message_id.clone());
            }
            Disposition::DeadLetter { reason } => {
                tracing::error!(message_id = %message.message_id, reason, "message sent to the dead-letter queue");
                if let Err(err) = dead_letters.forward(message, &reason).await {
                    tracing::error!(message_id = %message.message_id, error = %err, "could not forward to the DLQ; retrying instead");
                    retry.push(message.message_id.clone());
                }
            }
        }
    }
    retry
}

/// The Lambda entry: an SQS event in, `batchItemFailures` out.
pub async fn handle_sqs_event(
    event: SqsEvent,
    handler: &impl BatchHandler,
    dead_letters: &impl DeadLetters,
) -> SqsBatchResponse {
    let messages = event.records.iter().map(RawMessage::from_sqs).collect();
    let mut response = SqsBatchResponse::default();
    for id in settle(messages, handler, dead_letters).await {
        response.add_failure(id);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use aws_lambda_events::event::sqs::SqsMessage;
    use relay_events::Subject;

    use super::*;

    /// Decides by task id: `ok` done, `flaky` retry, `poison` dead letter, `silent` no outcome
    /// at all; remembers the events it was given.
    #[derive(Default)]
    struct ByTaskId {
        seen: Mutex<Vec<(String, Subject)>>,
    }

    impl BatchHandler for ByTaskId {
        async fn handle(&self, events: &[InboundEvent]) -> Vec<MessageOutcome> {
            let mut outcomes = Vec::new();
            for e in events {
                let seen = (e.message_id.clone(), e.event.subject.clone());
                self.seen.lock().expect("lock").push(seen);
                let Subject::Task { task_id } = &e.event.subject else {
                    continue;
                };
                let disposition = match task_id.as_str() {
                    "ok" => Disposition::Done,
                    "flaky" => Disposition::retry("Attio 503"),
                    "poison" => Disposition::dead_letter("HubSpot refused: VALIDATION_ERROR"),
                    _ => continue,
                };
                outcomes.push(MessageOutcome {
                    message_id: e.message_id.clone(),
                    disposition,
                });
            }
            outcomes
        }

        fn unreadable(&self, event_type: &relay_events::EventType) -> String {
            format!("{event_type} is not for ByTaskId")
        }
    }

    /// Records what it forwards; refuses everything when `broken`.
    #[derive(Default)]
    struct Dlq {
        broken: bool,
        sent: Mutex<Vec<(String, String)>>,
    }

    impl DeadLetters for Dlq {
        async fn forward(&self, message: &RawMessage, reason: &str) -> Result<(), DeadLetterError> {
            if self.broken {
                return Err(DeadLetterError::Send("DLQ unreachable".into()));
            }
            let sent = (message.message_id.clone(), reason.to_owned());
            self.sent.lock().expect("lock").push(sent);
            Ok(())
        }
    }

    fn body(task_id: &str) -> String {
        let event = format!(
            r#"{{"event_type":"task.updated","id":{{"workspace_id":"ws","task_id":"{task_id}"}},"actor":{{"type":"system","id":null}}}}"#
        );
        QueuedEvent::first_of(event.as_bytes(), task_id, 1_763_000_000)
            .expect("event")
            .to_body()
    }

    fn raw(id: &str, body: String) -> RawMessage {
        RawMessage {
            message_id: id.to_owned(),
            body,
            attributes: BTreeMap::new(),
            receive_count: 1,
        }
    }

    #[tokio::test]
    async fn only_retries_are_returned_and_dead_letters_are_forwarded_with_their_reason() {
        let (handler, dlq) = (ByTaskId::default(), Dlq::default());
        let messages = vec![
            raw("m-ok", body("ok")),
            raw("m-flaky", body("flaky")),
            raw("m-poison", body("poison")),
            raw("m-silent", body("silent")),
            raw("m-junk", "not json".into()),
        ];

        let retry = settle(messages, &handler, &dlq).await;

        // A handler that forgot a message must not lose it: it is retried.
        assert_eq!(retry, ["m-flaky", "m-silent"]);
        let sent = dlq.sent.into_inner().expect("lock");
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!(
            sent[0],
            (
                "m-poison".into(),
                "HubSpot refused: VALIDATION_ERROR".into()
            )
        );
        assert_eq!(sent[1].0, "m-junk");
        assert!(
            sent[1]
                .1
                .starts_with("message body is not a queued Attio event: ")
        );
        // The handler got every parseable message, typed, and never the junk.
        let seen = handler.seen.into_inner().expect("lock");
        let ids: Vec<_> = seen.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["m-ok", "m-flaky", "m-poison", "m-silent"]);
        assert_eq!(
            seen[0].1,
            Subject::Task {
                task_id: "ok".into()
            }
        );
    }

    #[tokio::test]
    async fn an_envelope_around_an_event_that_does_not_parse_gets_the_handlers_reason() {
        let mut envelope: serde_json::Value =
            serde_json::from_str(&body("ok")).expect("queued body");
        envelope["event"] = serde_json::json!({"event_type": "task.updated", "id": {}});
        let (handler, dlq) = (ByTaskId::default(), Dlq::default());

        let retry = settle(vec![raw("m", envelope.to_string())], &handler, &dlq).await;

        assert!(retry.is_empty());
        let sent = dlq.sent.into_inner().expect("lock");
        assert_eq!(
            sent,
            [("m".into(), "task.updated is not for ByTaskId".into())]
        );
        assert!(handler.seen.into_inner().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn a_dead_letter_that_cannot_be_forwarded_is_retried() {
        let dlq = Dlq {
            broken: true,
            ..Dlq::default()
        };
        let messages = vec![raw("p", body("poison")), raw("j", "{}".into())];
        let retry = settle(messages, &ByTaskId::default(), &dlq).await;
        assert_eq!(retry, ["p", "j"]);
    }

    fn sqs_message(id: &str, body: String) -> SqsMessage {
        let mut message = SqsMessage::default();
        message.message_id = Some(id.to_owned());
        message.body = Some(body);
        message.attributes = HashMap::from([("ApproximateReceiveCount".into(), "3".into())]);
        message
    }

    #[tokio::test]
    async fn an_sqs_event_answers_its_retries_as_batch_item_failures() {
        let mut event = SqsEvent::default();
        event.records = vec![
            sqs_message("a", body("ok")),
            sqs_message("b", body("flaky")),
            sqs_message("c", body("poison")),
        ];
        let dlq = Dlq::default();

        let response = handle_sqs_event(event, &ByTaskId::default(), &dlq).await;

        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["b"]);
        assert_eq!(dlq.sent.into_inner().expect("lock").len(), 1);
        let message = RawMessage::from_sqs(&sqs_message("a", body("ok")));
        assert_eq!(message.receive_count, 3);
    }
}
