//! The HubSpot → Attio consumer function (`HubspotSyncFunction` in the SAM stack), fed by the
//! `hubspot` queue.
//!
//! **Not wired yet.** The handler (`relay_sync`'s reverse consumer: drop the relay's own
//! changes, batch-read the HubSpot objects, compare with the sync ledger, write to Attio,
//! record conflicts) is being written separately; until it is, `main.rs` runs
//! [`placeholder_retry_every_message`], which handles nothing and reports every message as a
//! batch item failure. Nothing is lost that way: each message comes back after the visibility
//! timeout and, after `MaxReceiveCount` receives, waits in the `hubspot` DLQ (14 days, the
//! `hubspot-dlq-not-empty` alarm fires) to be replayed once the handler is deployed. Wiring
//! it means replacing the placeholder in `main.rs` with `relay_consumer::lambda::run` (or its
//! two-way variant) and the handler, as `functions/records` does.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

/// PLACEHOLDER until the HubSpot → Attio handler exists: reports every message of the batch
/// in `batchItemFailures`, so SQS keeps (and eventually dead-letters) all of them and none is
/// deleted unhandled.
pub fn placeholder_retry_every_message(event: &SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for message in &event.records {
        // A message without an id cannot be named in the response; Lambda then treats the
        // whole response as a failure and retries the whole batch, which also loses nothing.
        response.add_failure(message.message_id.clone().unwrap_or_default());
    }
    tracing::warn!(
        messages = event.records.len(),
        event = "hubspot_sync_not_wired",
        "the HubSpot -> Attio handler is not deployed yet: every message is returned to the queue"
    );
    response
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::event::sqs::SqsMessage;

    use super::*;

    #[test]
    fn every_message_is_returned_to_the_queue() {
        let mut event = SqsEvent::default();
        for id in ["m1", "m2", "m3"] {
            let mut message = SqsMessage::default();
            message.message_id = Some(id.into());
            message.body = Some(r#"{"source":"hubspot"}"#.into());
            event.records.push(message);
        }
        let response = placeholder_retry_every_message(&event);
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["m1", "m2", "m3"]);
        let empty = placeholder_retry_every_message(&SqsEvent::default());
        assert!(empty.batch_item_failures.is_empty());
    }
}
