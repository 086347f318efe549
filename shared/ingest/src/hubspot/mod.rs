//! The HubSpot webhook ingest (`POST /hubspot/webhooks`): HubSpot → the `hubspot` queue, with
//! the Attio ingest's guarantees.
//!
//! For each request, in order:
//!
//! 1. refuse non-POST (405) and bodies over the size limit (413);
//! 2. verify the v3 signature over method, URI, raw body and timestamp (401: forged, stale,
//!    replayed after HubSpot's 5-minute window), *then* parse (400, nothing queued);
//! 3. claim **one idempotency key per event** ([`HubSpotEvent::dedupe_key`]). Per event, not
//!    per request, because HubSpot batches up to 100 events per request and documents no
//!    request id: a retried event can arrive beside other events, so a request-level key
//!    would either queue the retry again or — worse — swallow the new events beside it.
//!    An event already completed is a duplicate and skipped;
//! 4. queue every claimed event on the `hubspot` queue; on failure release every key and
//!    answer 503 so HubSpot retries;
//! 5. mark the keys completed — only after the queue took every event — and answer 200, or,
//!    when some claims failed (503) or were leased by a live invocation (409), answer that:
//!    HubSpot retries the request, and the retry skips what this one queued. Each attempt
//!    keeps its progress, so a large request under a degraded store still gets through.
//!
//! A crash in between leaves leased keys that expire, after which HubSpot's retry queues the
//! events: nothing is answered 2xx before it is queued, and no key is completed for an
//! unqueued event.

mod settings;

use std::sync::Arc;

use futures::future::join_all;
use http::{HeaderMap, Method, StatusCode};
use relay_events::hubspot::{HubSpotEvent, HubSpotParseError, parse_events};
use relay_events::{EventFamily, IdempotencyKey, MessageAttributes};
use relay_idempotency::{Claim, ClaimToken, IdempotencyStore};
use relay_queue::{EventQueue, OutgoingMessage};
use relay_signature::hubspot::{HubSpotRequest, HubSpotVerifier, HubSpotVerifyError};
use serde::Serialize;

use crate::{Clock, IngestConfig, IngestResponse, SystemClock};

pub use settings::{
    HubSpotSecrets, HubSpotSecretsConfig, HubSpotSettings, HubSpotVerifierSource,
    StaticHubSpotSecrets,
};

/// The path the dev server serves HubSpot webhooks on (and the README tells HubSpot to call).
pub const WEBHOOK_PATH: &str = "/hubspot/webhooks";

/// A HubSpot request as received: the full URL HubSpot called (scheme, host, path, query).
#[derive(Debug, Clone, Copy)]
pub struct HubSpotIngestRequest<'a> {
    pub method: &'a Method,
    pub uri: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// A request refused for its content: 4xx, nothing queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubSpotRejection {
    MethodNotAllowed,
    TooLarge { bytes: usize, limit: usize },
    Signature(HubSpotVerifyError),
    Body(HubSpotParseError),
}

impl HubSpotRejection {
    pub fn code(&self) -> &'static str {
        match self {
            Self::MethodNotAllowed => "method_not_allowed",
            Self::TooLarge { .. } => "body_too_large",
            Self::Signature(e) => e.code(),
            Self::Body(e) => e.code(),
        }
    }
}

/// How one HubSpot request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubSpotOutcome {
    /// Every new event is on the `hubspot` queue; `duplicates` were queued before.
    Queued {
        events: usize,
        duplicates: usize,
    },
    /// Every event was queued before.
    Duplicate {
        events: usize,
    },
    /// Another invocation holds one of the events; retry after its lease.
    InProgress {
        retry_after_secs: u64,
    },
    Rejected(HubSpotRejection),
    /// Something we depend on failed; nothing is marked done, so HubSpot's retry is safe.
    Unavailable {
        reason: &'static str,
    },
}

impl HubSpotOutcome {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Queued { .. } => "queued",
            Self::Duplicate { .. } => "duplicate",
            Self::InProgress { .. } => "in_progress",
            Self::Rejected(_) => "rejected",
            Self::Unavailable { .. } => "unavailable",
        }
    }

    /// The answer for any transport ([`crate::http::to_http`] makes it HTTP).
    pub fn to_response(&self) -> IngestResponse {
        #[derive(Serialize)]
        struct Accepted<'a> {
            status: &'a str,
            events: usize,
            duplicates: usize,
        }
        #[derive(Serialize)]
        struct Refused<'a> {
            error: &'a str,
            message: String,
        }
        let answer = |status, retry_after_secs, allow, body| IngestResponse {
            status,
            retry_after_secs,
            allow,
            body,
        };
        match self {
            Self::Queued { events, duplicates } => answer(
                StatusCode::OK,
                None,
                None,
                json(&Accepted {
                    status: "queued",
                    events: *events,
                    duplicates: *duplicates,
                }),
            ),
            Self::Duplicate { events } => answer(
                StatusCode::OK,
                None,
                None,
                json(&Accepted {
                    status: "duplicate",
                    events: 0,
                    duplicates: *events,
                }),
            ),
            Self::InProgress { retry_after_secs } => answer(
                StatusCode::CONFLICT,
                Some(*retry_after_secs),
                None,
                json(&Refused {
                    error: "in_progress",
                    message: "another request is queueing one of these events; retry later".into(),
                }),
            ),
            Self::Rejected(rejection) => {
                let (status, message, allow) = match rejection {
                    HubSpotRejection::MethodNotAllowed => (
                        StatusCode::METHOD_NOT_ALLOWED,
                        "HubSpot webhooks must be sent with POST".to_owned(),
                        Some("POST"),
                    ),
                    HubSpotRejection::TooLarge { bytes, limit } => (
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("body is {bytes} bytes; the limit is {limit} (MAX_BODY_BYTES)"),
                        None,
                    ),
                    HubSpotRejection::Signature(e) => {
                        (StatusCode::UNAUTHORIZED, e.to_string(), None)
                    }
                    HubSpotRejection::Body(e) => (StatusCode::BAD_REQUEST, e.to_string(), None),
                };
                answer(
                    status,
                    None,
                    allow,
                    json(&Refused {
                        error: rejection.code(),
                        message,
                    }),
                )
            }
            Self::Unavailable { reason } => answer(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(5),
                None,
                json(&Refused {
                    error: "unavailable",
                    message: format!(
                        "{reason}; the events that could be claimed were queued, retry for the rest"
                    ),
                }),
            ),
        }
    }
}

fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned())
}

/// The HubSpot ingest handler over its ports (the Attio ingest's store, queue and clock).
#[derive(Debug)]
pub struct HubSpotIngest<S, Q, V, C = SystemClock> {
    store: S,
    queue: Q,
    verifiers: V,
    clock: C,
    config: IngestConfig,
    target_url: Option<String>,
}

impl<S, Q, V, C> HubSpotIngest<S, Q, V, C> {
    pub fn with_clock(store: S, queue: Q, verifiers: V, config: IngestConfig, clock: C) -> Self {
        Self {
            store,
            queue,
            verifiers,
            clock,
            config,
            target_url: None,
        }
    }

    /// The URL registered in HubSpot, used as the signed URI instead of the one the request
    /// arrived on: behind a proxy or custom domain the Host the function sees is not the one
    /// HubSpot signed.
    pub fn with_target_url(mut self, url: Option<String>) -> Self {
        self.target_url = url.filter(|u| !u.trim().is_empty());
        self
    }

    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    pub fn queue(&self) -> &Q {
        &self.queue
    }

    pub fn store(&self) -> &S {
        &self.store
    }
}

impl<S, Q, V> HubSpotIngest<S, Q, V, SystemClock> {
    pub fn new(store: S, queue: Q, verifiers: V, config: IngestConfig) -> Self {
        Self::with_clock(store, queue, verifiers, config, SystemClock)
    }
}

impl<S, Q, V, C> HubSpotIngest<S, Q, V, C>
where
    S: IdempotencyStore,
    Q: EventQueue,
    V: HubSpotVerifierSource,
    C: Clock,
{
    /// Handles one request and logs one line about it (never the signature or the secret).
    pub async fn handle(&self, request: HubSpotIngestRequest<'_>) -> IngestResponse {
        let outcome = self.process(request).await;
        let response = outcome.to_response();
        match &outcome {
            HubSpotOutcome::Queued { events, duplicates } => {
                tracing::info!(
                    source = "hubspot",
                    events,
                    duplicates,
                    outcome = outcome.label(),
                    "hubspot events queued"
                );
            }
            HubSpotOutcome::Duplicate { events } => {
                tracing::info!(
                    source = "hubspot",
                    duplicates = events,
                    outcome = outcome.label(),
                    "hubspot events already queued"
                );
            }
            HubSpotOutcome::InProgress { .. } => {
                tracing::info!(
                    source = "hubspot",
                    status = response.status.as_u16(),
                    outcome = outcome.label(),
                    "hubspot events in progress elsewhere"
                );
            }
            HubSpotOutcome::Rejected(rejection) => {
                tracing::warn!(
                    source = "hubspot",
                    status = response.status.as_u16(),
                    outcome = outcome.label(),
                    error = rejection.code(),
                    "hubspot request rejected"
                );
            }
            HubSpotOutcome::Unavailable { reason } => {
                tracing::error!(
                    source = "hubspot",
                    status = response.status.as_u16(),
                    outcome = outcome.label(),
                    reason,
                    "hubspot request not accepted"
                );
            }
        }
        response
    }

    /// The steps of the module docs; returns what happened.
    pub async fn process(&self, request: HubSpotIngestRequest<'_>) -> HubSpotOutcome {
        if request.method != Method::POST {
            return HubSpotOutcome::Rejected(HubSpotRejection::MethodNotAllowed);
        }
        if request.body.len() > self.config.max_body_bytes {
            return HubSpotOutcome::Rejected(HubSpotRejection::TooLarge {
                bytes: request.body.len(),
                limit: self.config.max_body_bytes,
            });
        }
        let now = self.clock.now();
        let verifier: Arc<HubSpotVerifier> = match self.verifiers.verifier().await {
            Ok(v) => v,
            Err(err) => {
                tracing::error!(error = %err, "HubSpot app secrets unavailable");
                return HubSpotOutcome::Unavailable {
                    reason: "HubSpot app secrets unavailable",
                };
            }
        };
        let uri = self.target_url.as_deref().unwrap_or(request.uri);
        if let Err(err) = HubSpotRequest::from_headers(
            request.method.as_str(),
            uri,
            request.headers,
            request.body,
        )
        .and_then(|signed| verifier.verify(&signed, now.saturating_mul(1000)))
        {
            return HubSpotOutcome::Rejected(HubSpotRejection::Signature(err));
        }
        let events = match parse_events(request.body) {
            Ok(events) => events,
            Err(err) => return HubSpotOutcome::Rejected(HubSpotRejection::Body(err)),
        };

        for (index, event) in events.iter().enumerate() {
            if let Some(reason) = &event.unreadable {
                // Signed, so authentic: queued as received for an operator, never the request
                // refused (HubSpot does not retry a 4xx; its other events would be lost).
                tracing::warn!(
                    event_index = index,
                    reason,
                    "hubspot event does not read; parked as received"
                );
            }
        }

        // One key per distinct event; an event repeated inside one request counts once.
        let mut keyed: Vec<(IdempotencyKey, &HubSpotEvent)> = Vec::with_capacity(events.len());
        for event in &events {
            let key = IdempotencyKey::for_hubspot_event(event);
            if !keyed.iter().any(|(k, _)| *k == key) {
                keyed.push((key, event));
            }
        }
        let claims = join_all(keyed.iter().map(|(key, _)| {
            self.store
                .claim(key, now, self.config.lease, self.config.retain)
        }))
        .await;

        let mut taken: Vec<(&IdempotencyKey, &HubSpotEvent, ClaimToken)> = Vec::new();
        let mut duplicates = 0;
        let mut busy: Option<u64> = None;
        let mut failed = false;
        for ((key, event), claim) in keyed.iter().zip(claims) {
            match claim {
                Ok(Claim::Acquired(token)) => taken.push((key, event, token)),
                Ok(Claim::AlreadyCompleted) => duplicates += 1,
                Ok(Claim::InProgress { lease_expires_at }) => {
                    let wait = u64::try_from(lease_expires_at - now).unwrap_or(0).max(1);
                    busy = Some(busy.map_or(wait, |b| b.max(wait)));
                }
                Err(err) => {
                    tracing::error!(idempotency_key = %key, error = %err, "idempotency claim failed");
                    failed = true;
                }
            }
        }
        // Whatever this request could claim is queued even when other claims failed or are
        // held elsewhere: HubSpot retries the whole request, and the retry then finds these
        // completed (duplicates) and only needs the rest. Releasing everything instead would
        // make a 100-event request pass only when all 100 claims succeed in one go — under a
        // degraded store, never (0.9^100 ≈ 1 in 38,000 at 10% failed claims).
        let unsettled = if failed {
            Some(HubSpotOutcome::Unavailable {
                reason: "idempotency store unavailable",
            })
        } else {
            busy.map(|retry_after_secs| HubSpotOutcome::InProgress { retry_after_secs })
        };
        if taken.is_empty() {
            return unsettled.unwrap_or(HubSpotOutcome::Duplicate { events: duplicates });
        }

        let messages: Vec<OutgoingMessage> = taken
            .iter()
            .enumerate()
            .map(|(index, (key, event, _))| OutgoingMessage {
                family: EventFamily::Hubspot,
                entry_id: format!("event-{index}"),
                body: event.to_body(key.as_str(), now),
                attributes: MessageAttributes {
                    event_type: event.subscription_type.clone(),
                    workspace_id: event.portal_id.to_string(),
                    idempotency_key: key.as_str().to_owned(),
                },
            })
            .collect();
        if let Err(err) = self.queue.send(&messages).await {
            tracing::error!(error = %err, events = messages.len(), "queueing hubspot events failed; releasing their keys");
            self.release_all(&taken).await;
            return HubSpotOutcome::Unavailable {
                reason: "queue unavailable",
            };
        }
        let done = self.clock.now();
        let completed = join_all(
            taken
                .iter()
                .map(|(key, _, token)| self.store.complete(key, token, done, self.config.retain)),
        )
        .await;
        for ((key, _, _), result) in taken.iter().zip(completed) {
            if let Err(err) = result {
                // Queued already; at worst a retry after the lease queues the event again.
                tracing::warn!(idempotency_key = %key, error = %err, "event queued but its key was not marked completed");
            }
        }
        if let Some(outcome) = unsettled {
            tracing::warn!(
                queued = messages.len(),
                "queued the events this request could claim; the others are answered for a retry"
            );
            return outcome;
        }
        HubSpotOutcome::Queued {
            events: messages.len(),
            duplicates,
        }
    }

    async fn release_all(&self, taken: &[(&IdempotencyKey, &HubSpotEvent, ClaimToken)]) {
        let results = join_all(
            taken
                .iter()
                .map(|(key, _, token)| self.store.release(key, token)),
        )
        .await;
        for ((key, _, _), result) in taken.iter().zip(results) {
            if let Err(err) = result {
                // The lease expires on its own; HubSpot's retry after it succeeds.
                tracing::warn!(idempotency_key = %key, error = %err, "could not release the key");
            }
        }
    }
}

/// Handles one request and answers it as HTTP (the Lambda's and the dev server's one path).
pub async fn respond<S, Q, V, C>(
    service: &HubSpotIngest<S, Q, V, C>,
    request: HubSpotIngestRequest<'_>,
) -> http::Response<String>
where
    S: IdempotencyStore,
    Q: EventQueue,
    V: HubSpotVerifierSource,
    C: Clock,
{
    crate::http::to_http(service.handle(request).await)
}

/// The URL a socket server was called on, as HubSpot signed it: `X-Forwarded-Proto` (a tunnel
/// or proxy in front) or `default_scheme`, the `Host` header, then the path and query as sent.
pub fn request_url(headers: &HeaderMap, default_scheme: &str, path_and_query: &str) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let scheme = header("x-forwarded-proto").unwrap_or(default_scheme);
    let host = header("host").unwrap_or("localhost");
    format!("{scheme}://{host}{path_and_query}")
}

#[cfg(test)]
mod tests;
