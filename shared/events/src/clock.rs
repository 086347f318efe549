//! Wall-clock time as the relay reads it: whole seconds since the Unix epoch.
//!
//! Time is a port ([`Clock`]) wherever a rule depends on it — leases, signature tolerances,
//! reservations — so tests step past a lease instead of sleeping through it. Code that only
//! stamps a value (a `failed_at` attribute, a journal line) calls [`unix_now`].

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub type UnixSeconds = i64;

/// Wall-clock seconds; a port so tests can step past leases and tolerances.
pub trait Clock: Send + Sync {
    fn now(&self) -> UnixSeconds;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixSeconds {
        unix_now()
    }
}

/// The system clock's seconds since the Unix epoch (0 before 1970, saturating far ahead).
pub fn unix_now() -> UnixSeconds {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The system clock's milliseconds since the Unix epoch (the local queue's clock, like SQS's
/// `SentTimestamp`).
pub fn unix_now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_milliseconds_agree() {
        let (secs, millis) = (unix_now(), unix_now_millis());
        assert!(secs > 1_700_000_000, "clock reads {secs}");
        assert!((millis / 1000 - secs).abs() <= 1);
    }
}
