//! The consumers, run in-process by `attio-relay dev` against the embedded queue: the same
//! batch logic as the Lambda functions (`relay_consumer::settle`), with the local queue's
//! receive, delete, visibility and dead-letter operations standing in for SQS's.

use std::time::Duration;

use relay_consumer::{BatchHandler, DeadLetterError, DeadLetters, RawMessage, settle};
use relay_events::EventFamily;
use relay_queue::{ReceivedMessage, SqliteQueue};

/// How long a received message stays hidden while its batch runs (the SQS visibility timeout).
const VISIBILITY: Duration = Duration::from_secs(60);
/// How often an idle poller looks for new messages.
const IDLE_POLL: Duration = Duration::from_millis(300);

/// Dead letters move to `<queue>-dlq` by receipt handle.
struct LocalDeadLetters<'a> {
    queue: &'a SqliteQueue,
    received: &'a [ReceivedMessage],
}

impl DeadLetters for LocalDeadLetters<'_> {
    async fn forward(&self, message: &RawMessage, reason: &str) -> Result<(), DeadLetterError> {
        let receipt = self
            .received
            .iter()
            .find(|r| r.message.message_id == message.message_id)
            .map(|r| r.receipt_handle.clone())
            .ok_or_else(|| {
                DeadLetterError::Send("message is no longer held by this batch".into())
            })?;
        match self.queue.dead_letter(&receipt, reason).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(DeadLetterError::Send("receipt expired".into())),
            Err(e) => Err(DeadLetterError::Send(e.into())),
        }
    }
}

/// Receives, settles and acknowledges one batch; returns how many messages it held.
pub async fn run_batch(
    queue: &SqliteQueue,
    family: EventFamily,
    handler: &impl BatchHandler,
) -> anyhow::Result<usize> {
    let received = queue.receive(family.as_str(), 10, VISIBILITY).await?;
    if received.is_empty() {
        return Ok(0);
    }
    let raw: Vec<RawMessage> = received
        .iter()
        .map(|r| RawMessage {
            message_id: r.message.message_id.clone(),
            body: r.message.body.clone(),
            attributes: r
                .message
                .attributes
                .pairs()
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
            receive_count: r.message.receive_count,
            receipt_handle: None,
        })
        .collect();
    let retry = settle(
        raw,
        handler,
        &LocalDeadLetters {
            queue,
            received: &received,
        },
    )
    .await;
    for message in &received {
        if retry.contains(&message.message.message_id) {
            // Back off like a redelivery would: longer after every receive.
            let delay =
                Duration::from_secs(2u64.saturating_pow(message.message.receive_count.min(6)));
            queue
                .change_visibility(&message.receipt_handle, delay)
                .await?;
        } else {
            // Done, or already moved to the DLQ (then the receipt is gone and this is a no-op).
            queue.delete(&message.receipt_handle).await?;
        }
    }
    Ok(received.len())
}

/// Polls one family's queue until the process stops.
pub async fn poll_forever(queue: SqliteQueue, family: EventFamily, handler: impl BatchHandler) {
    loop {
        match run_batch(&queue, family, &handler).await {
            Ok(0) => tokio::time::sleep(IDLE_POLL).await,
            Ok(n) => tracing::debug!(queue = family.as_str(), messages = n, "batch settled"),
            Err(err) => {
                tracing::error!(queue = family.as_str(), error = %err, "local consumer failed; retrying");
                tokio::time::sleep(IDLE_POLL * 10).await;
            }
        }
    }
}
