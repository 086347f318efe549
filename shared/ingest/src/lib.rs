//! The ingest handler, independent of how requests arrive, and its one HTTP adapter
//! ([`http::router`]) that the Lambda (Function URL, API Gateway HTTP API) and the local dev
//! server both serve.
//!
//! For each request, in order — and the order is the safety argument:
//!
//! 1. refuse bodies over the size limit (413) and non-POST methods (405);
//! 2. verify the HMAC over the raw bytes (401), *then* parse (400) — an unauthenticated caller
//!    learns nothing about our parser;
//! 3. claim the delivery's idempotency key: completed → 200 without queueing again; leased by a
//!    live invocation → 409 with `Retry-After`;
//! 4. queue every event on its family's queue; on failure release the key and answer 503 so
//!    Attio retries;
//! 5. mark the key completed — only now, after the queue acknowledged every event — and answer
//!    200. If this last write fails the events are already safe, so the answer is still 200 and
//!    the key simply stays leased until it expires.
//!
//! A crash anywhere leaves either nothing or an `IN_PROGRESS` key whose lease expires, after
//! which Attio's retry queues the events. No path marks a key completed for unqueued events.
//!
//! [`hubspot`] is the same handler for HubSpot's webhooks: v3 signature, one key per event.

mod aws;
mod config;
pub mod http;
pub mod hubspot;
mod response;
mod secrets;
mod service;
#[cfg(test)]
mod testing;

pub use aws::load_aws_config;
pub use config::{ConfigError, IngestConfig, SecretsConfig, Settings};
pub use response::{IngestResponse, Outcome, Rejection};
pub use secrets::{
    SecretError, SecretsManagerSource, StaticSecrets, VerifierSource, WebhookSecrets,
    parse_secret_list,
};
pub use service::{Clock, IdempotencyHeader, IngestRequest, IngestService, SystemClock};
