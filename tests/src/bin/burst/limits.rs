//! The two ways the documented limits count requests, used by the stand-ins to refuse and by
//! the reference design to pace itself: Attio counts per clock second, HubSpot over a rolling
//! ten seconds.
//!
//! Both answer "allowed now" or "wait this long", from a time the caller passes in, so the
//! unit tests drive them without sleeping.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// At most `limit` requests per clock second (Attio: "100 requests per second for read
/// requests, 25 requests per second for write requests"; the 429's `Retry-After` is "a date
/// at which the limit resets (usually the following second)",
/// <https://docs.attio.com/rest-api/guides/rate-limiting>).
#[derive(Debug)]
pub struct ClockSecond {
    limit: u32,
    second: u64,
    used: u32,
}

impl ClockSecond {
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            second: 0,
            used: 0,
        }
    }

    /// Counts one request at `now` when the second has room; otherwise the start of the next
    /// clock second, when it resets (nothing is counted).
    pub fn take(&mut self, now: SystemTime) -> Result<(), SystemTime> {
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let second = since_epoch.as_secs();
        if second != self.second {
            self.second = second;
            self.used = 0;
        }
        if self.used < self.limit {
            self.used += 1;
            Ok(())
        } else {
            Err(UNIX_EPOCH + Duration::from_secs(second + 1))
        }
    }
}

/// At most `limit` requests in any `window` (HubSpot: 190 per 10 s for a Professional or
/// Enterprise portal, "TEN_SECONDLY_ROLLING";
/// <https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details>). The search API
/// has its own limit of about 5 per second, the same shape with a 1 s window.
#[derive(Debug)]
pub struct Rolling {
    limit: usize,
    window: Duration,
    taken: VecDeque<Duration>,
}

impl Rolling {
    pub fn new(limit: usize, window: Duration) -> Self {
        Self {
            limit,
            window,
            taken: VecDeque::with_capacity(limit),
        }
    }

    /// Counts one request at `now` (time since any fixed start) when the window has room;
    /// otherwise how long until the oldest request in it leaves.
    pub fn take(&mut self, now: Duration) -> Result<(), Duration> {
        while let Some(&oldest) = self.taken.front() {
            if now.saturating_sub(oldest) >= self.window {
                self.taken.pop_front();
            } else {
                break;
            }
        }
        if self.taken.len() < self.limit {
            self.taken.push_back(now);
            Ok(())
        } else {
            let oldest = self.taken.front().copied().unwrap_or(now);
            Err((oldest + self.window).saturating_sub(now))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_second_refuses_past_its_limit_and_resets_on_the_next_second() {
        let mut limit = ClockSecond::new(100);
        let start = UNIX_EPOCH + Duration::from_millis(1_000_000_900);
        for _ in 0..100 {
            assert!(limit.take(start).is_ok());
        }
        // The 101st in the same clock second waits for the next one, 100 ms away.
        assert_eq!(
            limit.take(start + Duration::from_millis(50)),
            Err(UNIX_EPOCH + Duration::from_secs(1_000_001))
        );
        // Counted per clock second, not per rolling second: 100 ms later is a new second.
        assert!(limit.take(start + Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn a_rolling_window_frees_a_place_when_its_oldest_request_leaves() {
        let mut limit = Rolling::new(190, Duration::from_secs(10));
        for i in 0..190 {
            assert!(limit.take(Duration::from_millis(i * 10)).is_ok());
        }
        // Full at 5 s: the first request (at 0 s) leaves at 10 s.
        assert_eq!(
            limit.take(Duration::from_secs(5)),
            Err(Duration::from_secs(5))
        );
        assert!(limit.take(Duration::from_secs(10)).is_ok());
        // One place only: the next leaves at 10.01 s.
        assert_eq!(
            limit.take(Duration::from_secs(10)),
            Err(Duration::from_millis(10))
        );
    }
}
