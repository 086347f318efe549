//! The stand-ins' clock, passed in so a test can pin "now": Attio stamps a changed value's
//! `active_from`, HubSpot a property history entry, and both count writes per second by it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::macros::format_description;

/// Milliseconds since the epoch: the wall clock, or one the test moves.
#[derive(Debug, Clone, Default)]
pub enum FakeClock {
    #[default]
    System,
    Manual(Arc<AtomicI64>),
}

impl FakeClock {
    /// A clock that stays at `ms` until [`FakeClock::advance_ms`] moves it.
    pub fn manual(ms: i64) -> Self {
        Self::Manual(Arc::new(AtomicI64::new(ms)))
    }

    pub fn now_ms(&self) -> i64 {
        match self {
            Self::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Self::Manual(ms) => ms.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock on; the wall clock cannot be moved.
    pub fn advance_ms(&self, ms: i64) {
        if let Self::Manual(now) = self {
            now.fetch_add(ms, Ordering::SeqCst);
        }
    }

    pub fn system_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(u64::try_from(self.now_ms()).unwrap_or(0))
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, as HubSpot writes timestamps.
pub fn iso_ms(ms: i64) -> String {
    relay_events::clock::rfc3339_millis(ms)
}

/// `YYYY-MM-DDTHH:MM:SS.mmm000000Z`, as Attio writes `active_from` (nanoseconds).
pub fn attio_time(ms: i64) -> String {
    relay_events::clock::format_millis(
        ms,
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_as_each_service_writes_them() {
        assert_eq!(iso_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_ms(1_772_359_200_250), "2026-03-01T10:00:00.250Z");
        assert_eq!(iso_ms(1_709_164_800_000), "2024-02-29T00:00:00.000Z");
        assert_eq!(
            attio_time(1_772_359_200_250),
            "2026-03-01T10:00:00.250000000Z"
        );
        assert_eq!(attio_time(-1), "1969-12-31T23:59:59.999000000Z");
        assert_eq!(iso_ms(-86_400_001), "1969-12-30T23:59:59.999Z");
        let clock = FakeClock::manual(1_000);
        clock.advance_ms(500);
        assert_eq!(clock.now_ms(), 1_500);
    }
}
