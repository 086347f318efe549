//! After the run: reading the queues back to prove nothing acknowledged was lost and nothing
//! was queued twice.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use relay_events::QueuedEvent;
use relay_queue::SqliteQueue;
use serde::Serialize;

use crate::sample::Prepared;

/// What was read back from the queues.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    pub checked: bool,
    /// Why it was skipped, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Messages of this run found on the queues (and their dead-letter queues).
    pub queued_messages: Option<usize>,
    /// Distinct deliveries of this run found on the queues.
    pub queued_deliveries: Option<usize>,
    /// Acknowledged (2xx) deliveries with an event missing from the queues.
    pub lost: Option<usize>,
    /// Deliveries with an event queued more than once.
    pub duplicates_queued: Option<usize>,
    /// Deliveries queued without a 2xx reaching us (cut off at --max-duration, or an error
    /// after queueing): not a fault, Attio's retry would be answered "duplicate".
    pub queued_unacknowledged: Option<usize>,
}

impl Verification {
    pub fn skipped(reason: &str) -> Self {
        Self {
            skipped: Some(reason.to_owned()),
            ..Self::default()
        }
    }
}

/// Per delivery index: how many times each of its events was queued.
type Counts = HashMap<usize, HashMap<usize, usize>>;

/// Reads every queue (and DLQ) back and counts this run's messages per delivery and event.
pub async fn verify(
    queue: &SqliteQueue,
    deliveries: &[Prepared],
    events_per_delivery: usize,
    acknowledged: &[usize],
) -> anyhow::Result<Verification> {
    let (counts, messages) = read_back(queue, deliveries).await?;
    let lost = acknowledged
        .iter()
        .filter(|index| {
            counts
                .get(index)
                .is_none_or(|events| events.len() < events_per_delivery)
        })
        .count();
    let duplicates_queued = counts
        .values()
        .filter(|events| events.values().any(|&n| n > 1))
        .count();
    let acked: HashSet<&usize> = acknowledged.iter().collect();
    let queued_unacknowledged = counts.keys().filter(|i| !acked.contains(i)).count();
    Ok(Verification {
        checked: true,
        skipped: None,
        queued_messages: Some(messages),
        queued_deliveries: Some(counts.len()),
        lost: Some(lost),
        duplicates_queued: Some(duplicates_queued),
        queued_unacknowledged: Some(queued_unacknowledged),
    })
}

/// This run's messages on every queue, counted per delivery and event; and their number.
async fn read_back(
    queue: &SqliteQueue,
    deliveries: &[Prepared],
) -> anyhow::Result<(Counts, usize)> {
    let ours: HashMap<&str, usize> = deliveries
        .iter()
        .enumerate()
        .map(|(index, d)| (d.stored_key.as_str(), index))
        .collect();
    let mut counts = Counts::new();
    let mut messages = 0;
    let names = queue
        .depths()
        .await
        .context("cannot read the local queues to verify the run")?;
    for (name, _) in names {
        for message in queue
            .peek(&name)
            .await
            .with_context(|| format!("cannot read queue {name}"))?
        {
            let Some(&index) = ours.get(message.attributes.idempotency_key.as_str()) else {
                continue;
            };
            let event_index = QueuedEvent::from_body(&message.body)
                .with_context(|| {
                    format!(
                        "message {} on {name} is not a queued event",
                        message.message_id
                    )
                })?
                .event_index;
            messages += 1;
            *counts
                .entry(index)
                .or_default()
                .entry(event_index)
                .or_default() += 1;
        }
    }
    Ok((counts, messages))
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_embedded::LocalDb;
    use relay_events::IdempotencyKey;
    use relay_queue::{EventQueue, OutgoingMessage};
    use relay_signature::WebhookSecret;

    use crate::sample::Sample;

    #[tokio::test]
    async fn missing_and_repeated_deliveries_are_counted() {
        let sample = Sample::load(None).unwrap();
        let secret = WebhookSecret::new("s").unwrap();
        let prepared = sample.prepare(&secret, 3, "verify").unwrap();
        let queue = SqliteQueue::new(LocalDb::in_memory().unwrap(), 3);
        let event = &sample.delivery.events[0];
        let message = |index: usize| {
            let key = IdempotencyKey::for_delivery(
                Some(&prepared[index].header_key),
                &sample.delivery,
                None,
            );
            let queued = relay_events::QueuedEvent::new(&key, None, 0, 0, event);
            OutgoingMessage::new(&queued, &event.workspace_id)
        };
        // Delivery 0 queued twice, 1 never, 2 queued but never acknowledged.
        queue.send(&[message(0)]).await.unwrap();
        queue.send(&[message(0)]).await.unwrap();
        queue.send(&[message(2)]).await.unwrap();

        let v = verify(&queue, &prepared, 1, &[0, 1]).await.unwrap();

        assert!(v.checked);
        assert_eq!(v.queued_messages, Some(3));
        assert_eq!(v.queued_deliveries, Some(2));
        assert_eq!(v.lost, Some(1), "delivery 1 was acknowledged, not queued");
        assert_eq!(v.duplicates_queued, Some(1), "delivery 0");
        assert_eq!(v.queued_unacknowledged, Some(1), "delivery 2");
    }
}
