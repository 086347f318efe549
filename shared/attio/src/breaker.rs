//! A circuit breaker per Attio object (or `notes`, `tasks`, list).
//!
//! Closed: calls go through; consecutive transient failures are counted, any answer that is not
//! a transient failure resets the count. At the threshold the circuit opens: calls fail fast
//! until the cooldown ends. Then exactly one call is let through as a trial (half-open): its
//! success closes the circuit, its failure opens it for another cooldown. A trial that is
//! abandoned (its future dropped) hands the trial to the next caller.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A trial call is in flight; others fail fast until it reports or `until` passes.
    HalfOpen {
        until: Instant,
    },
}

#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    /// How long a trial may take before another caller may try.
    trial_timeout: Duration,
    states: Mutex<HashMap<String, State>>,
}

/// Leave to make one attempt; report how it went with [`Permit::succeeded`] or
/// [`Permit::failed`].
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    key: &'a str,
    trial: bool,
    reported: bool,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration, trial_timeout: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            trial_timeout,
            states: Mutex::new(HashMap::new()),
        }
    }

    fn states(&self) -> MutexGuard<'_, HashMap<String, State>> {
        // The map holds plain values; a panic elsewhere cannot leave it half-updated.
        self.states.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A permit to call `key`, or how long its circuit stays open.
    pub(crate) fn acquire<'a>(&'a self, key: &'a str) -> Result<Permit<'a>, Duration> {
        let now = Instant::now();
        let mut states = self.states();
        let trial = match states.get(key).copied() {
            None | Some(State::Closed { .. }) => false,
            Some(State::Open { until } | State::HalfOpen { until }) if now < until => {
                return Err(until - now);
            }
            Some(State::Open { .. } | State::HalfOpen { .. }) => {
                states.insert(
                    key.to_owned(),
                    State::HalfOpen {
                        until: now + self.trial_timeout,
                    },
                );
                tracing::info!(circuit = key, "Attio circuit half-open: trying one call");
                true
            }
        };
        Ok(Permit {
            breaker: self,
            key,
            trial,
            reported: false,
        })
    }

    fn record_success(&self, key: &str) {
        if self
            .states()
            .remove(key)
            .is_some_and(|s| s != State::Closed { failures: 0 })
        {
            tracing::debug!(circuit = key, "Attio circuit closed");
        }
    }

    fn record_failure(&self, key: &str, trial: bool) {
        let mut states = self.states();
        let failures = match (states.get(key).copied(), trial) {
            (None, false) => 1,
            (Some(State::Closed { failures }), false) => failures + 1,
            // A call that started before the circuit opened: it stays open as it was.
            (Some(State::Open { .. }), false) => return,
            // A failed trial, or a straggler failing while a trial runs: open again.
            _ => self.threshold,
        };
        let next = if failures < self.threshold {
            State::Closed { failures }
        } else {
            self.open(key, failures)
        };
        states.insert(key.to_owned(), next);
    }

    fn open(&self, key: &str, failures: u32) -> State {
        tracing::warn!(
            circuit = key,
            failures,
            cooldown_ms = self.cooldown.as_millis() as u64,
            "Attio circuit open: failing fast"
        );
        State::Open {
            until: Instant::now() + self.cooldown,
        }
    }

    /// An abandoned trial: the next caller becomes the trial.
    fn release_trial(&self, key: &str) {
        let mut states = self.states();
        if let Some(State::HalfOpen { .. }) = states.get(key) {
            states.insert(
                key.to_owned(),
                State::Open {
                    until: Instant::now(),
                },
            );
        }
    }
}

impl Permit<'_> {
    /// Attio answered (anything but a transient failure).
    pub(crate) fn succeeded(mut self) {
        self.reported = true;
        self.breaker.record_success(self.key);
    }

    /// 5xx, 408, timeout or connection failure.
    pub(crate) fn failed(mut self) {
        self.reported = true;
        self.breaker.record_failure(self.key, self.trial);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.reported && self.trial {
            self.breaker.release_trial(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(30);

    fn breaker() -> Breaker {
        Breaker::new(3, COOLDOWN, Duration::from_secs(10))
    }

    fn fail(b: &Breaker, key: &str) {
        b.acquire(key).expect("closed").failed();
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let b = breaker();
        fail(&b, "people");
        fail(&b, "people");
        b.acquire("people").expect("closed").succeeded();
        fail(&b, "people");
        fail(&b, "people");
        assert!(b.acquire("people").is_ok(), "two failures after a reset");
        fail(&b, "people");
        let wait = b.acquire("people").expect_err("open");
        assert!(wait <= COOLDOWN && wait > COOLDOWN - Duration::from_secs(1));
        assert!(
            b.acquire("companies").is_ok(),
            "other objects are unaffected"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_cooldown_one_trial_goes_through_and_its_result_decides() {
        let b = breaker();
        for _ in 0..3 {
            fail(&b, "deals");
        }
        tokio::time::advance(COOLDOWN).await;
        let trial = b.acquire("deals").expect("trial");
        assert!(b.acquire("deals").is_err(), "only one trial at a time");
        trial.failed();
        assert!(b.acquire("deals").is_err(), "a failed trial reopens");

        tokio::time::advance(COOLDOWN).await;
        b.acquire("deals").expect("trial").succeeded();
        assert!(b.acquire("deals").is_ok());
        assert!(b.acquire("deals").is_ok(), "closed again");
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_trial_passes_the_trial_on() {
        let b = breaker();
        for _ in 0..3 {
            fail(&b, "notes");
        }
        tokio::time::advance(COOLDOWN).await;
        drop(b.acquire("notes").expect("trial"));
        let next = b.acquire("notes").expect("the next caller is the trial");
        assert!(next.trial);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_trial_times_out() {
        let b = breaker();
        for _ in 0..3 {
            fail(&b, "tasks");
        }
        tokio::time::advance(COOLDOWN).await;
        let stuck = b.acquire("tasks").expect("trial");
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(b.acquire("tasks").is_ok());
        drop(stuck);
    }
}
