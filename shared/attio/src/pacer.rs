//! Local request pacing (GCRA): keeps one container's request rate under Attio's published
//! limits, bursts allowed. It cannot see other containers — Attio's 429 remains the real
//! limit — but it stops a tight loop (a backfill) from running into it.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::RateLimit;

#[derive(Debug)]
pub(crate) struct Pacer {
    /// Time between requests at the sustained rate.
    interval: Duration,
    /// How far ahead of schedule requests may run (the burst).
    tolerance: Duration,
    /// Theoretical arrival time of the next request.
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    pub(crate) fn new(limit: RateLimit) -> Self {
        let interval = Duration::from_secs(1) / limit.per_second.max(1);
        Self {
            interval,
            tolerance: interval * limit.burst.max(1).saturating_sub(1),
            next: Mutex::new(None),
        }
    }

    /// Reserves a slot and returns how long to wait for it — unless the wait would exceed
    /// `max_wait`, in which case nothing is reserved and the wait is returned as the error.
    pub(crate) fn reserve(&self, now: Instant, max_wait: Duration) -> Result<Duration, Duration> {
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        let scheduled = next.map_or(now, |n| n.max(now));
        let wait = (scheduled - now).saturating_sub(self.tolerance);
        if wait > max_wait {
            return Err(wait);
        }
        *next = Some(scheduled + self.interval);
        Ok(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_through_then_requests_are_spaced() {
        let pacer = Pacer::new(RateLimit {
            per_second: 10,
            burst: 3,
        });
        let now = Instant::now();
        let max = Duration::from_secs(5);
        let waits: Vec<_> = (0..5).map(|_| pacer.reserve(now, max)).collect();
        let ms = |d: Duration| d.as_millis();
        assert_eq!(
            waits
                .iter()
                .map(|w| w.map(ms).unwrap_or(u128::MAX))
                .collect::<Vec<_>>(),
            vec![0, 0, 0, 100, 200]
        );
        // A wait beyond the caller's budget reserves nothing.
        assert_eq!(
            pacer.reserve(now, Duration::from_millis(250)),
            Err(Duration::from_millis(300))
        );
        assert_eq!(pacer.reserve(now, max), Ok(Duration::from_millis(300)));
        // After a quiet second the burst is available again.
        let later = now + Duration::from_secs(2);
        assert_eq!(pacer.reserve(later, max), Ok(Duration::ZERO));
    }
}
