//! Fault injection: wrappers around the real adapters that fail or hang on command.
//!
//! Each wrapper shares a [`FaultPlan`] with the test: the test queues up the faults for the
//! next calls, the wrapper applies them in order and passes every other call through.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use relay_idempotency::DynamoDbStore;
use relay_idempotency::{
    Claim, ClaimToken, IdempotencyKey, IdempotencyStore, StoreError, UnixSeconds,
};
use relay_ingest::Clock;
use relay_queue::{EventQueue, OutgoingMessage, QueueError, QueueUrls, SqsQueue};
use tokio::sync::Notify;

/// What to do with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Return an error without calling the real adapter.
    Fail,
    /// Call the real adapter, then report an error anyway (the write happened, the answer was lost).
    FailAfter,
    /// Never return: the process "crashes" here when the test aborts the request's task.
    Hang,
}

/// The faults planned for one kind of call, and what happened.
#[derive(Debug, Default)]
pub struct FaultPlan {
    planned: Mutex<VecDeque<Option<Fault>>>,
    /// After the planned faults: fail this share of calls at random (seeded, repeatable).
    random: Mutex<Option<(fastrand::Rng, f64)>>,
    calls: AtomicUsize,
    injected: AtomicUsize,
    /// Notified when a call starts to hang, so the test knows when to "crash".
    pub hanging: Notify,
}

impl FaultPlan {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The next call gets `fault`; calls after the planned ones pass.
    pub fn then(&self, fault: Fault) -> &Self {
        self.planned
            .lock()
            .expect("plan lock")
            .push_back(Some(fault));
        self
    }

    /// Fails about `share` of all later calls, half before the real call and half after it
    /// (the write happened, the answer was lost), from a fixed seed.
    pub fn randomly(&self, share: f64, seed: u64) -> &Self {
        *self.random.lock().expect("plan lock") = Some((fastrand::Rng::with_seed(seed), share));
        self
    }

    /// The next call passes (to plan a fault for a later call).
    pub fn then_pass(&self) -> &Self {
        self.planned.lock().expect("plan lock").push_back(None);
        self
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }

    fn next(&self) -> Option<Fault> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let planned = self.planned.lock().expect("plan lock").pop_front();
        let fault = match planned {
            Some(fault) => fault,
            None => self
                .random
                .lock()
                .expect("plan lock")
                .as_mut()
                .and_then(|(rng, share)| {
                    (rng.f64() < *share).then(|| {
                        if rng.bool() {
                            Fault::Fail
                        } else {
                            Fault::FailAfter
                        }
                    })
                }),
        };
        if fault.is_some() {
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
        fault
    }

    async fn hang(&self) -> ! {
        self.hanging.notify_one();
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }
}

fn injected() -> Box<dyn std::error::Error + Send + Sync> {
    "injected fault".into()
}

/// An [`EventQueue`] that applies a [`FaultPlan`] to `send`.
#[derive(Debug, Clone)]
pub struct FaultyQueue<Q> {
    inner: Q,
    pub plan: Arc<FaultPlan>,
}

impl<Q> FaultyQueue<Q> {
    pub fn new(inner: Q) -> Self {
        Self {
            inner,
            plan: FaultPlan::new(),
        }
    }
}

impl<Q: EventQueue> EventQueue for FaultyQueue<Q> {
    async fn send(&self, messages: &[OutgoingMessage]) -> Result<(), QueueError> {
        let family = messages
            .first()
            .map_or(relay_events::EventFamily::Other, |m| m.family);
        let error = || QueueError::Unavailable {
            family,
            source: injected(),
        };
        match self.plan.next() {
            None => self.inner.send(messages).await,
            Some(Fault::Fail) => Err(error()),
            Some(Fault::FailAfter) => {
                self.inner.send(messages).await?;
                Err(error())
            }
            Some(Fault::Hang) => self.plan.hang().await,
        }
    }
}

/// Ingest's real adapters on moto (DynamoDB store, SQS queue) with `share` of the calls to each
/// of claim, complete, release and send failing at random, seeded `seed`, `seed + 1`, ….
pub fn randomly_faulty_aws(
    config: &aws_config::SdkConfig,
    table: &str,
    urls: QueueUrls,
    share: f64,
    seed: u64,
) -> (FaultyStore<DynamoDbStore>, FaultyQueue<SqsQueue>) {
    let store = FaultyStore::new(DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(config),
        table,
    ));
    let queue = FaultyQueue::new(SqsQueue::new(aws_sdk_sqs::Client::new(config), urls));
    for (plan, offset) in [
        (&store.claim, 0),
        (&store.complete, 1),
        (&store.release, 2),
        (&queue.plan, 3),
    ] {
        plan.randomly(share, seed + offset);
    }
    (store, queue)
}

/// An [`IdempotencyStore`] with a separate [`FaultPlan`] for each operation.
#[derive(Debug, Clone)]
pub struct FaultyStore<S> {
    inner: S,
    pub claim: Arc<FaultPlan>,
    pub complete: Arc<FaultPlan>,
    pub release: Arc<FaultPlan>,
}

impl<S> FaultyStore<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            claim: FaultPlan::new(),
            complete: FaultPlan::new(),
            release: FaultPlan::new(),
        }
    }

    /// Faults injected so far, over claim, complete and release.
    pub fn injected(&self) -> usize {
        self.claim.injected() + self.complete.injected() + self.release.injected()
    }
}

impl<S: IdempotencyStore> IdempotencyStore for FaultyStore<S> {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        now: UnixSeconds,
        lease: Duration,
        retain: Duration,
    ) -> Result<Claim, StoreError> {
        match self.claim.next() {
            None => self.inner.claim(key, now, lease, retain).await,
            Some(Fault::Fail) => Err(StoreError::unavailable("claim", injected())),
            Some(Fault::FailAfter) => {
                self.inner.claim(key, now, lease, retain).await?;
                Err(StoreError::unavailable("claim", injected()))
            }
            Some(Fault::Hang) => self.claim.hang().await,
        }
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: &ClaimToken,
        now: UnixSeconds,
        retain: Duration,
    ) -> Result<(), StoreError> {
        match self.complete.next() {
            None => self.inner.complete(key, token, now, retain).await,
            Some(Fault::Fail) => Err(StoreError::unavailable("complete", injected())),
            Some(Fault::FailAfter) => {
                self.inner.complete(key, token, now, retain).await?;
                Err(StoreError::unavailable("complete", injected()))
            }
            Some(Fault::Hang) => self.complete.hang().await,
        }
    }

    async fn release(&self, key: &IdempotencyKey, token: &ClaimToken) -> Result<(), StoreError> {
        match self.release.next() {
            None => self.inner.release(key, token).await,
            Some(Fault::Fail) => Err(StoreError::unavailable("release", injected())),
            Some(Fault::FailAfter) => {
                self.inner.release(key, token).await?;
                Err(StoreError::unavailable("release", injected()))
            }
            Some(Fault::Hang) => self.release.hang().await,
        }
    }
}

/// A clock the test moves by hand (to step past leases and signature tolerances).
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn at(now: i64) -> Self {
        Self(Arc::new(AtomicI64::new(now)))
    }

    /// Today's wall clock, so signed timestamps made with it are fresh.
    pub fn now_real() -> Self {
        Self::at(relay_ingest::SystemClock.now())
    }

    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.get()
    }
}
