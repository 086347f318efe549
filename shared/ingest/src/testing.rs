//! Test fixtures for the service and HTTP adapter tests: the embedded SQLite adapters wrapped
//! so a test can make the store or the queue fail, a fixed clock, and signed requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use relay_embedded::LocalDb;
use relay_idempotency::SqliteIdempotencyStore;
use relay_idempotency::{Claim, ClaimToken, IdempotencyKey, IdempotencyStore, StoreError};
use relay_queue::SqliteQueue;
use relay_queue::{EventQueue, OutgoingMessage, QueueError};
use relay_signature::{SchemePolicy, Verifier, WebhookSecret, sign_body};

use crate::{Clock, IngestConfig, IngestService, StaticSecrets};

pub const SECRET: &str = "whsec_unit_test_secret";
pub const NOW: i64 = 1_700_000_000;

/// One record.updated delivery, as Attio sends it.
pub const DELIVERY: &[u8] = br#"{"webhook_id":"wh-1","events":[{"event_type":"record.updated","id":{"workspace_id":"ws-1","object_id":"obj-1","record_id":"rec-1","attribute_id":"attr-1"},"actor":{"type":"workspace-member","id":"m-1"}}]}"#;

/// A switch a test flips to make an adapter fail.
#[derive(Debug, Clone, Default)]
pub struct Fault(Arc<AtomicBool>);

impl Fault {
    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::SeqCst);
    }

    fn on(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The SQLite store, failing `claim` or `complete` while their switch is on.
#[derive(Debug, Clone)]
pub struct Store {
    pub inner: SqliteIdempotencyStore,
    pub fail_claim: Fault,
    pub fail_complete: Fault,
}

impl IdempotencyStore for Store {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        now: i64,
        lease: Duration,
        retain: Duration,
    ) -> Result<Claim, StoreError> {
        if self.fail_claim.on() {
            return Err(StoreError::unavailable("claim", "injected by the test"));
        }
        self.inner.claim(key, now, lease, retain).await
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: &ClaimToken,
        now: i64,
        retain: Duration,
    ) -> Result<(), StoreError> {
        if self.fail_complete.on() {
            return Err(StoreError::unavailable("complete", "injected by the test"));
        }
        self.inner.complete(key, token, now, retain).await
    }

    async fn release(&self, key: &IdempotencyKey, token: &ClaimToken) -> Result<(), StoreError> {
        self.inner.release(key, token).await
    }
}

/// The SQLite queue, failing every send while `fail` is on.
#[derive(Debug, Clone)]
pub struct Queue {
    pub inner: SqliteQueue,
    pub fail: Fault,
}

impl EventQueue for Queue {
    async fn send(&self, messages: &[OutgoingMessage]) -> Result<(), QueueError> {
        if self.fail.on() {
            return Err(QueueError::Unavailable {
                family: messages
                    .first()
                    .map_or(relay_events::EventFamily::Other, |m| m.family),
                source: "injected by the test".into(),
            });
        }
        self.inner.send(messages).await
    }
}

impl Queue {
    /// Every message on every queue, as `(queue, idempotency key)`.
    pub async fn contents(&self) -> Vec<(String, String)> {
        let mut all = Vec::new();
        for (name, _) in self.inner.depths().await.expect("depths") {
            for message in self.inner.peek(&name).await.expect("peek") {
                all.push((name.clone(), message.attributes.idempotency_key));
            }
        }
        all
    }
}

/// A clock that always reads [`NOW`].
#[derive(Debug, Clone, Copy)]
pub struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> i64 {
        NOW
    }
}

pub type TestService = IngestService<Store, Queue, StaticSecrets, FixedClock>;

/// The service over in-memory SQLite, accepting [`SECRET`], with `config`.
pub fn service(config: IngestConfig) -> TestService {
    let db = LocalDb::in_memory().expect("sqlite");
    let store = Store {
        inner: SqliteIdempotencyStore::new(db.clone()),
        fail_claim: Fault::default(),
        fail_complete: Fault::default(),
    };
    let queue = Queue {
        inner: SqliteQueue::new(db, 3),
        fail: Fault::default(),
    };
    let verifier = Verifier::new(vec![secret()], SchemePolicy::AcceptEither);
    IngestService::with_clock(
        store,
        queue,
        StaticSecrets::new(verifier),
        config,
        FixedClock,
    )
}

pub fn secret() -> WebhookSecret {
    WebhookSecret::new(SECRET).expect("secret")
}

/// Headers of `body` signed with `secret` (body-only scheme), with an `Idempotency-Key`.
pub fn signed_headers(secret: &WebhookSecret, body: &[u8], key: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        relay_signature::SIGNATURE_HEADER,
        HeaderValue::from_str(&sign_body(secret, body)).expect("hex"),
    );
    headers.insert("idempotency-key", HeaderValue::from_str(key).expect("key"));
    headers
}
