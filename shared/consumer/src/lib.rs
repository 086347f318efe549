//! The part every consumer function shares: an SQS batch in, a partial batch response out.
//!
//! One runner for every queue ([`QueueHandler`]): the Attio families' handlers read typed
//! [`InboundEvent`]s, the `hubspot` queue's reads HubSpot events; both get the same parsing,
//! dead letters, holds, deadline and settlement below.
//!
//! Each body is parsed here, once, into what the handler reads. Messages whose body is not a
//! queued event of the handler's kind (or whose event does not parse) never reach the handler;
//! they, and every message the handler marks [`Disposition::DeadLetter`], are sent to the
//! dead-letter queue at once with a `failure_reason` attribute (so operators see why), then
//! deleted from the source queue. [`Disposition::Retry`] messages are reported in `batchItemFailures`, so only they are
//! redelivered; SQS moves them to the DLQ after `maxReceiveCount`. If forwarding a dead letter
//! fails, the message is retried instead: nothing is dropped.
//!
//! [`Disposition::Hold`] (HubSpot refused the token or a scope: 401/403) is a retry with a long,
//! growing wait: the message is made invisible for [`hold_for`] its receive count (15 min,
//! doubling, at most just under SQS's 12 h limit) and reported in `batchItemFailures`, and a
//! `crm_auth_failure` log line feeds the template's alarm. So a bad token neither dead-letters
//! every message at once nor burns the receives in minutes; once the operator fixes it, held
//! messages sync on their next receive. If the wait cannot be set, it is a plain retry.
//!
//! [`Disposition::Deferred`] (the invocation's deadline was too near to start the message's
//! group, `deadline.rs`) is reported in `batchItemFailures` and made visible again at once
//! (visibility 0): nothing was tried, so it should not wait out the visibility timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
pub use relay_sync::{BatchHandler, Budget, InboundEvent, QueueHandler};
use relay_sync::{Disposition, MessageOutcome};

mod dead_letters;
mod deadline;
pub mod lambda;
mod secrets;
mod settings;
pub use dead_letters::{DeadLetterError, DeadLetters, SqsDeadLetters};
pub use deadline::{DEFAULT_DEADLINE_MARGIN, handle_lambda_event, invocation_budget};
pub use secrets::SecretsManagerToken;
pub use settings::{ConsumerSettings, SettingsError, TokenSource, TwoWayUse, TwoWayWiring};

/// A raw message as received, kept for forwarding to the DLQ unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawMessage {
    pub message_id: String,
    pub body: String,
    pub attributes: BTreeMap<String, String>,
    pub receive_count: u32,
    /// What SQS needs to change this receipt's visibility (a [`Disposition::Hold`]).
    pub receipt_handle: Option<String>,
}

/// The first hold of a message whose CRM refused the token: long enough for an operator to
/// react to the alarm, short enough that a quick fix shows quickly.
pub const FIRST_HOLD: Duration = Duration::from_secs(15 * 60);

/// The longest hold: SQS refuses a visibility timeout beyond 12 hours counted from the receive
/// (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html);
/// ten minutes less leaves room for the time the function already ran.
pub const MAX_HOLD: Duration = Duration::from_secs(12 * 3600 - 600);

/// How long a held message stays invisible on its `receive_count`-th receive: 15 min, 30 min,
/// 1 h, 2 h, ... capped at [`MAX_HOLD`]. With the template's 5 receives a message waits about
/// 7¾ hours for the token to be fixed before it reaches the DLQ, from where it can be replayed.
pub fn hold_for(receive_count: u32) -> Duration {
    let doublings = receive_count.saturating_sub(1).min(16);
    FIRST_HOLD.saturating_mul(1 << doublings).min(MAX_HOLD)
}

impl RawMessage {
    pub fn from_sqs(message: &SqsMessage) -> Self {
        Self {
            message_id: message.message_id.clone().unwrap_or_default(),
            body: message.body.clone().unwrap_or_default(),
            receipt_handle: message.receipt_handle.clone(),
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

/// Parses a message body once, into what the handler reads ([`QueueHandler::parse_message`]);
/// `Err` is why it is dead-lettered.
fn parse<H: QueueHandler>(message: &RawMessage, handler: &H) -> Result<H::Message, String> {
    handler.parse_message(&message.message_id, &message.body)
}

/// Runs `handler` over raw messages and settles every message: returns the ids to retry.
pub async fn settle(
    messages: Vec<RawMessage>,
    handler: &impl QueueHandler,
    dead_letters: &impl DeadLetters,
) -> Vec<String> {
    settle_within(messages, &Budget::unlimited(), handler, dead_letters).await
}

/// [`settle`] under a deadline: the handler starts groups only while `budget` allows, and the
/// messages it leaves unstarted are returned (to retry) and made visible again at once.
pub async fn settle_within(
    messages: Vec<RawMessage>,
    budget: &Budget,
    handler: &impl QueueHandler,
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
    outcomes.extend(handler.handle_messages(&inbound, budget).await);

    let mut retry = Vec::new();
    let mut deferred = 0usize;
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
            Disposition::Hold { reason } => {
                let hold = hold_for(message.receive_count);
                // The metric filter in infra/template.yaml counts these lines: keep `event`.
                tracing::error!(
                    event = "crm_auth_failure",
                    message_id = %message.message_id,
                    receive_count = message.receive_count,
                    hold_secs = hold.as_secs(),
                    reason,
                    "CRM refused the credentials; holding the message"
                );
                if let Err(err) = dead_letters.hold(message, hold).await {
                    tracing::warn!(message_id = %message.message_id, error = %err, "could not hold the message; it returns after the queue's visibility timeout");
                }
                retry.push(message.message_id.clone());
            }
            Disposition::DeadLetter { reason } => {
                tracing::error!(message_id = %message.message_id, reason, "message sent to the dead-letter queue");
                if let Err(err) = dead_letters.forward(message, &reason).await {
                    tracing::error!(message_id = %message.message_id, error = %err, "could not forward to the DLQ; retrying instead");
                    retry.push(message.message_id.clone());
                }
            }
            Disposition::Deferred => {
                deferred += 1;
                // Visible again now: it was never tried, so waiting out the visibility
                // timeout would only delay it. If that fails it returns after the timeout.
                if let Err(err) = dead_letters.hold(message, Duration::ZERO).await {
                    tracing::debug!(message_id = %message.message_id, error = %err, "could not release the deferred message");
                }
                retry.push(message.message_id.clone());
            }
        }
    }
    if deferred > 0 {
        let left_ms = budget.remaining().map(|d| d.as_millis() as u64);
        tracing::warn!(
            event = "deadline_deferred",
            deferred,
            left_ms,
            "invocation deadline near: messages not started were returned to the queue"
        );
    }
    retry
}

/// An SQS event in, `batchItemFailures` out, without a deadline (see [`handle_lambda_event`]).
pub async fn handle_sqs_event(
    event: SqsEvent,
    handler: &impl QueueHandler,
    dead_letters: &impl DeadLetters,
) -> SqsBatchResponse {
    handle_sqs_event_within(event, &Budget::unlimited(), handler, dead_letters).await
}

/// [`handle_sqs_event`] under a deadline ([`settle_within`]).
pub async fn handle_sqs_event_within(
    event: SqsEvent,
    budget: &Budget,
    handler: &impl QueueHandler,
    dead_letters: &impl DeadLetters,
) -> SqsBatchResponse {
    let messages = event.records.iter().map(RawMessage::from_sqs).collect();
    let mut response = SqsBatchResponse::default();
    for id in settle_within(messages, budget, handler, dead_letters).await {
        response.add_failure(id);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use aws_lambda_events::event::sqs::SqsMessage;
    use relay_events::{QueuedEvent, Subject};

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
                    "locked-out" => Disposition::hold("HubSpot: HTTP 401 INVALID_AUTHENTICATION"),
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

    /// Records what it forwards and holds; refuses everything when `broken`.
    #[derive(Default)]
    struct Dlq {
        broken: bool,
        sent: Mutex<Vec<(String, String)>>,
        held: Mutex<Vec<(String, Duration)>>,
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

        async fn hold(
            &self,
            message: &RawMessage,
            duration: Duration,
        ) -> Result<(), DeadLetterError> {
            if self.broken {
                return Err(DeadLetterError::Hold("SQS unreachable".into()));
            }
            let held = (message.message_id.clone(), duration);
            self.held.lock().expect("lock").push(held);
            Ok(())
        }
    }

    /// A queue that cannot hold: the trait's default.
    struct PlainDlq;

    impl DeadLetters for PlainDlq {
        async fn forward(&self, _: &RawMessage, _: &str) -> Result<(), DeadLetterError> {
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
            receipt_handle: Some(format!("receipt-{id}")),
        }
    }

    #[test]
    fn holds_start_at_15_minutes_double_per_receive_and_stay_under_sqs_12_hours() {
        let minutes = |n: u32| hold_for(n).as_secs() / 60;
        assert_eq!([1, 2, 3, 4, 5, 6].map(minutes), [15, 30, 60, 120, 240, 480]);
        assert_eq!(hold_for(7), MAX_HOLD);
        assert_eq!(hold_for(u32::MAX), MAX_HOLD);
        assert_eq!(hold_for(0), FIRST_HOLD);
        assert!(MAX_HOLD < Duration::from_secs(43_200));
    }

    #[tokio::test]
    async fn held_messages_are_hidden_for_their_hold_and_reported_as_failures_not_dead_lettered() {
        let dlq = Dlq::default();
        let mut third = raw("h3", body("locked-out"));
        third.receive_count = 3;
        let messages = vec![raw("h1", body("locked-out")), third, raw("ok", body("ok"))];

        let retry = settle(messages, &ByTaskId::default(), &dlq).await;

        assert_eq!(retry, ["h1", "h3"]);
        assert!(
            dlq.sent.into_inner().expect("lock").is_empty(),
            "nothing dead-lettered"
        );
        assert_eq!(
            dlq.held.into_inner().expect("lock"),
            [
                ("h1".to_owned(), Duration::from_secs(15 * 60)),
                ("h3".to_owned(), Duration::from_secs(60 * 60))
            ]
        );
    }

    #[tokio::test]
    async fn a_hold_that_cannot_be_set_is_still_a_retry() {
        let broken = Dlq {
            broken: true,
            ..Dlq::default()
        };
        let retry = settle(
            vec![raw("h", body("locked-out"))],
            &ByTaskId::default(),
            &broken,
        )
        .await;
        assert_eq!(retry, ["h"]);
        let retry = settle(
            vec![raw("h", body("locked-out"))],
            &ByTaskId::default(),
            &PlainDlq,
        )
        .await;
        assert_eq!(retry, ["h"]);
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
        message.receipt_handle = Some(format!("receipt-{id}"));
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
        assert_eq!(message.receipt_handle.as_deref(), Some("receipt-a"));
    }

    #[tokio::test]
    async fn the_hubspot_queue_settles_in_the_same_runner_junk_dead_lettered_with_why() {
        use std::sync::Arc;

        use relay_attio::MemoryAttio;
        use relay_crm::MemoryCrm;
        use relay_mappings::{MemoryMappings, MemoryTwoWay};
        use relay_sync::two_way::{HubspotHandler, TwoWaySettings};
        use relay_sync::{FieldMapping, SyncContext};

        let plain = || {
            SyncContext::with_attio(
                MemoryAttio::new(),
                MemoryCrm::new(),
                MemoryMappings::new(),
                FieldMapping::default(),
            )
        };
        // Without two-way configured the handler is refused at startup.
        assert!(HubspotHandler::new(Arc::new(plain())).is_err());
        let stores = MemoryTwoWay::new();
        let ctx = plain().with_two_way(
            stores.clone(),
            stores,
            MemoryCrm::new(),
            TwoWaySettings::default(),
        );
        let handler = HubspotHandler::new(Arc::new(ctx)).expect("two-way is on");
        let event = r#"{"source":"hubspot","dedupe_key":"k","received_at":1,"event":{"subscriptionType":"contact.propertyChange","objectId":1,"propertyName":"firstname","occurredAt":1}}"#;
        let dlq = Dlq::default();
        let messages = vec![raw("ok", event.into()), raw("junk", body("ok"))];

        let retry = settle(messages, &handler, &dlq).await;

        // The readable event names a property the default mapping does not send back: acked.
        assert!(retry.is_empty(), "{retry:?}");
        let sent = dlq.sent.into_inner().expect("lock");
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].0, "junk");
        assert!(
            sent[0]
                .1
                .starts_with("message body is not a queued HubSpot event: "),
            "{sent:?}"
        );
    }
}
