//! A container's handle on one API's shared bucket: blocks of tokens, spent locally.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;

use crate::{BucketState, Limits, MillisClock, RateBudget, Saved, SystemMillis, Versioned};

/// Conditional writes lost in a row before a take gives up for now (the caller's message is
/// retried later). Each lost write returns the winner's state, so a retry is one more call.
const MAX_CONFLICTS: u32 = 8;
/// The wait handed back when the store cannot be reached or stays contended.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// No token within the caller's wait budget: try again after `wait`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{api} budget: no call allowed for {} ms ({reason})", wait.as_millis())]
pub struct Denied {
    pub api: String,
    pub wait: Duration,
    pub reason: String,
}

/// What a budget did so far, for logs, metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetStats {
    /// The rate in force at the last store read (calls per second).
    pub rate_per_s: f64,
    /// Store reads and writes (each one DynamoDB request on Lambda).
    pub store_calls: u64,
    /// Blocks taken.
    pub blocks: u64,
    /// Tokens spent (API calls let through).
    pub spent: u64,
    /// Conditional writes that lost to another container.
    pub conflicts: u64,
    /// 429 cuts this handle wrote.
    pub cuts: u64,
}

/// One API's budget as a container sees it. Cheap to clone; clones share the block in hand.
#[derive(Clone, Debug)]
pub struct ApiBudget {
    inner: Arc<Inner>,
    /// A share of the rate in force this taker keeps to (backfill, reconcile), and its
    /// pacer's next free slot.
    share: Option<(f64, Arc<Mutex<i64>>)>,
}

#[derive(Debug)]
struct Inner {
    limits: Limits,
    store: Arc<dyn RateBudget>,
    clock: Arc<dyn MillisClock>,
    local: Mutex<Local>,
    counters: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    store_calls: AtomicU64,
    blocks: AtomicU64,
    spent: AtomicU64,
    conflicts: AtomicU64,
    cuts: AtomicU64,
}

#[derive(Debug, Clone)]
struct Local {
    /// Tokens left of the block in hand, spendable from `start_ms` until `expires_ms`.
    tokens: u32,
    start_ms: i64,
    expires_ms: i64,
    /// Size and use of the block in hand, to size the next: a block that lapsed half unused
    /// is followed by a smaller one, one used up by a larger one.
    block: u32,
    used: u32,
    /// The stored state as last seen: the next conditional write expects it, so an
    /// uncontended take is one store call.
    known: Option<Versioned>,
    /// The rate in force at the last read, and the one last logged.
    rate: f64,
    logged_rate: f64,
}

impl ApiBudget {
    pub fn new(store: Arc<dyn RateBudget>, limits: Limits) -> Self {
        Self::with_clock(store, limits, Arc::new(SystemMillis))
    }

    pub fn with_clock(
        store: Arc<dyn RateBudget>,
        limits: Limits,
        clock: Arc<dyn MillisClock>,
    ) -> Self {
        let rate = limits.rate_per_s;
        Self {
            inner: Arc::new(Inner {
                local: Mutex::new(Local {
                    tokens: 0,
                    start_ms: 0,
                    expires_ms: 0,
                    block: 1,
                    used: 0,
                    known: None,
                    rate,
                    logged_rate: rate,
                }),
                limits,
                store,
                clock,
                counters: Counters::default(),
            }),
            share: None,
        }
    }

    /// This taker keeps to `share` (0 < share ≤ 1) of the rate in force, drawing from the same
    /// bucket as everyone else: a backfill at 0.2 leaves at least 80% to the consumers.
    pub fn with_share(self, share: f64) -> Self {
        Self {
            share: Some((share.clamp(0.001, 1.0), Arc::new(Mutex::new(0)))),
            ..self
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    pub fn stats(&self) -> BudgetStats {
        let c = &self.inner.counters;
        let rate = self
            .inner
            .local
            .try_lock()
            .map_or(f64::NAN, |local| local.rate);
        BudgetStats {
            rate_per_s: rate,
            store_calls: c.store_calls.load(Ordering::Relaxed),
            blocks: c.blocks.load(Ordering::Relaxed),
            spent: c.spent.load(Ordering::Relaxed),
            conflicts: c.conflicts.load(Ordering::Relaxed),
            cuts: c.cuts.load(Ordering::Relaxed),
        }
    }

    /// Waits for one call's token. When none comes within `max_wait` nothing is spent and the
    /// wait is returned, for the caller to hand back (the message is retried later).
    pub async fn acquire(&self, max_wait: Duration) -> Result<(), Denied> {
        let inner = &*self.inner;
        let start = inner.clock.now_ms();
        if let Some((share, next)) = &self.share {
            let rate = inner.local.lock().await.rate;
            let at = {
                let mut next = next.lock().await;
                let interval = (1000.0 / (share * rate)).ceil() as i64;
                let at = (*next).max(start);
                if duration(at - start) > max_wait {
                    return Err(self.denied(duration(at - start), "its share is spent"));
                }
                *next = at + interval;
                at
            };
            sleep_ms(at - start).await;
        }
        let now = inner.clock.now_ms();
        let max_wait = max_wait.saturating_sub(duration(now - start));
        let at = {
            let mut local = inner.local.lock().await;
            if local.tokens > 0 && now < local.expires_ms {
                local.tokens -= 1;
                local.used += 1;
                local.start_ms
            } else {
                let wanted = next_block(&local, inner.limits.max_block);
                let (begins, n) = self.take_block(&mut local, now, wanted, max_wait).await?;
                let lease = i64::try_from(inner.limits.lease.as_millis()).unwrap_or(i64::MAX);
                local.tokens = n - 1;
                local.start_ms = begins;
                local.expires_ms = begins + lease;
                local.block = n;
                local.used = 1;
                begins
            }
        };
        inner.counters.spent.fetch_add(1, Ordering::Relaxed);
        sleep_ms(at - now).await;
        Ok(())
    }

    /// The API answered 429: halve the shared rate (once per cooldown, whoever sees it first)
    /// and drop the block in hand, granted at the old rate.
    pub async fn throttled(&self) {
        let inner = &*self.inner;
        let mut local = inner.local.lock().await;
        local.tokens = 0;
        for _ in 0..MAX_CONFLICTS {
            let now = inner.clock.now_ms();
            let current = match self.current(&mut local).await {
                Ok(current) => current,
                Err(e) => {
                    tracing::warn!(api = %inner.limits.key, error = %e, "could not cut the rate budget after a 429");
                    return;
                }
            };
            let expected = current.as_ref().map(|v| v.version);
            let state = current.map_or_else(|| inner.limits.fresh(now), |v| v.state);
            let Some(cut) = inner.limits.cut(&state, now) else {
                return;
            };
            let cut_rate = cut.cut_rate;
            match self.write(&mut local, cut, expected).await {
                Ok(true) => {
                    inner.counters.cuts.fetch_add(1, Ordering::Relaxed);
                    let before = inner.limits.rate_at(&state, now);
                    local.rate = cut_rate;
                    local.logged_rate = cut_rate;
                    tracing::warn!(
                        event = "rate_budget_cut",
                        api = %inner.limits.key,
                        rate_per_s = cut_rate,
                        previous_rate_per_s = before,
                        limit_per_s = inner.limits.published_per_s,
                        "API answered 429: the shared rate is halved, then climbs back"
                    );
                    return;
                }
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(api = %inner.limits.key, error = %e, "could not cut the rate budget after a 429");
                    return;
                }
            }
        }
    }

    /// Takes up to `n` tokens from the shared budget: when they may be spent, and how many.
    async fn take_block(
        &self,
        local: &mut Local,
        now: i64,
        n: u32,
        max_wait: Duration,
    ) -> Result<(i64, u32), Denied> {
        let inner = &*self.inner;
        for _ in 0..MAX_CONFLICTS {
            let current = self.current(local).await.map_err(|e| {
                tracing::warn!(api = %inner.limits.key, error = %e, "rate budget store unavailable");
                self.denied(STORE_RETRY, &e.to_string())
            })?;
            let expected = current.as_ref().map(|v| v.version);
            let state = current.map_or_else(|| inner.limits.fresh(now), |v| v.state);
            let (next, begins, granted) = inner
                .limits
                .take_up_to(&state, now, n, max_wait)
                .map_err(|wait| self.denied(wait, "the deployment's rate is spent"))?;
            let rate = inner.limits.rate_at(&next, now);
            match self.write(local, next, expected).await {
                Ok(true) => {
                    inner.counters.blocks.fetch_add(1, Ordering::Relaxed);
                    self.note_rate(local, rate);
                    return Ok((begins, granted));
                }
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(api = %inner.limits.key, error = %e, "rate budget store unavailable");
                    return Err(self.denied(STORE_RETRY, &e.to_string()));
                }
            }
        }
        Err(self.denied(STORE_RETRY, "the store stayed contended"))
    }

    /// The stored state: the one this handle last saw, else read.
    async fn current(&self, local: &mut Local) -> Result<Option<Versioned>, crate::BudgetError> {
        if let Some(known) = &local.known {
            return Ok(Some(known.clone()));
        }
        self.inner
            .counters
            .store_calls
            .fetch_add(1, Ordering::Relaxed);
        let loaded = self.inner.store.load(&self.inner.limits.key).await?;
        local.known.clone_from(&loaded);
        Ok(loaded)
    }

    /// A conditional write: true when written; false when another writer won (the winner's
    /// state, when the store returned it, becomes the known one).
    async fn write(
        &self,
        local: &mut Local,
        state: BucketState,
        expected: Option<u64>,
    ) -> Result<bool, crate::BudgetError> {
        let inner = &*self.inner;
        inner.counters.store_calls.fetch_add(1, Ordering::Relaxed);
        match inner
            .store
            .save(&inner.limits.key, state.clone(), expected)
            .await
        {
            Ok(Saved::Written(version)) => {
                local.known = Some(Versioned { state, version });
                Ok(true)
            }
            Ok(Saved::Conflict(now_stored)) => {
                inner.counters.conflicts.fetch_add(1, Ordering::Relaxed);
                local.known = now_stored;
                Ok(false)
            }
            Err(e) => {
                local.known = None;
                Err(e)
            }
        }
    }

    /// Keeps the rate in force visible: logged whenever it moved by a tenth of the aim.
    fn note_rate(&self, local: &mut Local, rate: f64) {
        local.rate = rate;
        let aim = self.inner.limits.rate_per_s;
        let recovered = rate >= aim && local.logged_rate < aim;
        if recovered || (rate - local.logged_rate).abs() >= aim / 10.0 {
            local.logged_rate = rate;
            tracing::info!(
                event = "rate_budget",
                api = %self.inner.limits.key,
                rate_per_s = rate,
                aim_per_s = aim,
                limit_per_s = self.inner.limits.published_per_s,
                "shared rate in force"
            );
        }
    }

    fn denied(&self, wait: Duration, reason: &str) -> Denied {
        Denied {
            api: self.inner.limits.key.clone(),
            wait,
            reason: reason.to_owned(),
        }
    }
}

/// The next block's size: double after a block used up, down to what was used after one that
/// lapsed half unused (tokens charged to the bucket but never spent are lost to everyone).
fn next_block(local: &Local, max_block: u32) -> u32 {
    let next = if local.used >= local.block {
        local.block.saturating_mul(2)
    } else {
        local.used.saturating_add(1)
    };
    next.clamp(1, max_block.max(1))
}

fn duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

async fn sleep_ms(ms: i64) {
    if ms > 0 {
        tokio::time::sleep(duration(ms)).await;
    }
}
