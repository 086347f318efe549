//! [`IngestService`]: the steps of the crate docs, over the store, queue and secrets ports.

use std::collections::BTreeMap;

use http::{HeaderMap, Method};
use relay_events::{Delivery, EventFamily, IdempotencyKey, KeySource, QueuedEvent, Subject};
use relay_idempotency::{Claim, IdempotencyStore};
use relay_queue::{EventQueue, OutgoingMessage};
use relay_signature::SignedRequest;

use crate::response::{IngestResponse, Outcome, Rejection};
use crate::{IngestConfig, VerifierSource};

/// The header Attio repeats unchanged on every retry of one message.
#[derive(Debug)]
pub struct IdempotencyHeader;

impl IdempotencyHeader {
    pub const NAME: &'static str = "idempotency-key";
}

/// Wall-clock seconds, a port so tests can step past leases and tolerances: the relay's one
/// clock, re-exported where ingest's callers look for it.
pub use relay_events::clock::{Clock, SystemClock};

/// A request as received: method, headers, and the raw body bytes (already base64-decoded by
/// the transport, never re-serialised).
#[derive(Debug, Clone, Copy)]
pub struct IngestRequest<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// The ingest handler over its ports.
#[derive(Debug)]
pub struct IngestService<S, Q, V, C = SystemClock> {
    store: S,
    queue: Q,
    verifiers: V,
    clock: C,
    config: IngestConfig,
}

impl<S, Q, V> IngestService<S, Q, V, SystemClock> {
    pub fn new(store: S, queue: Q, verifiers: V, config: IngestConfig) -> Self {
        Self::with_clock(store, queue, verifiers, config, SystemClock)
    }
}

impl<S, Q, V, C> IngestService<S, Q, V, C> {
    pub fn with_clock(store: S, queue: Q, verifiers: V, config: IngestConfig, clock: C) -> Self {
        Self {
            store,
            queue,
            verifiers,
            clock,
            config,
        }
    }

    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn queue(&self) -> &Q {
        &self.queue
    }
}

impl<S, Q, V, C> IngestService<S, Q, V, C>
where
    S: IdempotencyStore,
    Q: EventQueue,
    V: VerifierSource,
    C: Clock,
{
    /// Handles one request and logs one line describing it.
    pub async fn handle(&self, request: IngestRequest<'_>) -> IngestResponse {
        let outcome = self.process(request).await;
        let response = outcome.to_response();
        match &outcome {
            Outcome::Queued { .. } | Outcome::Duplicate { .. } => {}
            Outcome::InProgress { key, .. } => {
                tracing::info!(idempotency_key = %key, status = response.status.as_u16(), outcome = outcome.label(), "delivery in progress elsewhere");
            }
            Outcome::Rejected(rejection) => {
                tracing::warn!(
                    status = response.status.as_u16(),
                    outcome = outcome.label(),
                    error = rejection.code(),
                    "delivery rejected"
                );
            }
            Outcome::Unavailable { reason } => {
                tracing::error!(
                    status = response.status.as_u16(),
                    outcome = outcome.label(),
                    reason,
                    "delivery not accepted"
                );
            }
        }
        response
    }

    /// The steps of the crate docs; returns what happened.
    pub async fn process(&self, request: IngestRequest<'_>) -> Outcome {
        if request.method != Method::POST {
            return Outcome::Rejected(Rejection::MethodNotAllowed);
        }
        if request.body.len() > self.config.max_body_bytes {
            return Outcome::Rejected(Rejection::TooLarge {
                bytes: request.body.len(),
                limit: self.config.max_body_bytes,
            });
        }

        let now = self.clock.now();
        let verifier = match self.verifiers.verifier().await {
            Ok(verifier) => verifier,
            Err(err) => {
                tracing::error!(error = %err, "webhook secrets unavailable");
                return Outcome::Unavailable {
                    reason: "webhook secrets unavailable",
                };
            }
        };
        let verified = match SignedRequest::from_headers(request.headers, request.body)
            .and_then(|signed| verifier.verify(&signed, now))
        {
            Ok(verified) => verified,
            Err(err) => return Outcome::Rejected(Rejection::Signature(err)),
        };

        let delivery = match Delivery::parse(request.body) {
            Ok(delivery) => delivery,
            Err(err) => return Outcome::Rejected(Rejection::Body(err)),
        };
        let header_key = request
            .headers
            .get(IdempotencyHeader::NAME)
            .and_then(|v| v.to_str().ok());
        let key = IdempotencyKey::for_delivery(header_key, &delivery, verified.timestamp());
        for (index, event) in delivery.events.iter().enumerate() {
            if let Subject::Unreadable { reason } = &event.subject {
                // Authentic (the signature passed), so its other events are real changes: the
                // odd one is parked on the "other" queue for an operator, never the delivery refused.
                tracing::warn!(idempotency_key = %key, event_index = index, event_type = event.event_type.as_str(), reason, "event does not read; parked");
            }
        }

        // Only Attio's header identifies one message across its retries. A derived key would
        // also match the next genuine change (events carry ids only: a stage moved A→B and then
        // B→C sends the same body twice, even within one signed second), and consumers re-fetch
        // current state, so a repeat is harmless while a swallowed change is lost: without the
        // header every delivery is queued.
        let token = if key.source() == KeySource::Header {
            match self
                .store
                .claim(&key, now, self.config.lease, self.config.retain)
                .await
            {
                Ok(Claim::Acquired(token)) => Some(token),
                Ok(Claim::AlreadyCompleted) => {
                    tracing::info!(idempotency_key = %key, outcome = "duplicate", "delivery already queued");
                    return Outcome::Duplicate {
                        key: key.to_string(),
                    };
                }
                Ok(Claim::InProgress { lease_expires_at }) => {
                    return Outcome::InProgress {
                        key: key.to_string(),
                        retry_after_secs: u64::try_from(lease_expires_at - now).unwrap_or(0).max(1),
                    };
                }
                Err(err) => {
                    tracing::error!(idempotency_key = %key, error = %err, "idempotency claim failed");
                    return Outcome::Unavailable {
                        reason: "idempotency store unavailable",
                    };
                }
            }
        } else {
            None
        };

        let messages: Vec<OutgoingMessage> = delivery
            .events
            .iter()
            .enumerate()
            .map(|(index, event)| {
                let queued =
                    QueuedEvent::new(&key, delivery.webhook_id.as_deref(), index, now, event);
                OutgoingMessage::new(&queued, &event.workspace_id)
            })
            .collect();

        if let Err(err) = self.queue.send(&messages).await {
            tracing::error!(idempotency_key = %key, error = %err, "queueing failed; releasing the key");
            if let Some(token) = &token
                && let Err(release) = self.store.release(&key, token).await
            {
                // The lease will expire on its own; Attio's retry after it will succeed.
                tracing::warn!(idempotency_key = %key, error = %release, "could not release the key");
            }
            return Outcome::Unavailable {
                reason: "queue unavailable",
            };
        }

        if let Some(token) = &token
            && let Err(err) = self
                .store
                .complete(&key, token, self.clock.now(), self.config.retain)
                .await
        {
            // Events are safely queued; at worst a retry after the lease queues them again.
            tracing::warn!(idempotency_key = %key, error = %err, "events queued but the key was not marked completed");
        }

        let mut queues: BTreeMap<&'static str, usize> = BTreeMap::new();
        for message in &messages {
            *queues.entry(message.family.as_str()).or_default() += 1;
        }
        let event_types: Vec<&str> = delivery
            .events
            .iter()
            .map(|e| e.event_type.as_str())
            .collect();
        let parked = messages
            .iter()
            .filter(|m| m.family == EventFamily::Other)
            .count();
        tracing::info!(
            idempotency_key = %key,
            webhook_id = delivery.webhook_id.as_deref().unwrap_or(""),
            event_types = %event_types.join(","),
            events = messages.len(),
            parked,
            scheme = if verified.timestamp().is_some() { "timestamped" } else { "body-only" },
            deduplicated = token.is_some(),
            outcome = "queued",
            "delivery queued"
        );
        Outcome::Queued {
            key: key.to_string(),
            events: messages.len(),
            queues,
        }
    }
}

#[cfg(test)]
mod tests;
