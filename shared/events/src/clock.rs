//! Wall-clock time as the relay reads it: whole seconds since the Unix epoch.
//!
//! Time is a port ([`Clock`]) wherever a rule depends on it — leases, signature tolerances,
//! reservations — so tests step past a lease instead of sleeping through it. Code that only
//! stamps a value (a `failed_at` attribute, a journal line) calls [`unix_now`].
//!
//! Instants as text go through the `time` crate ([`utc_from_millis`], [`rfc3339_millis`]): the
//! sync, the Attio writer's stand-in and the test stand-ins all print epoch milliseconds the same
//! way, and this is the lowest crate they all depend on, so the conversion lives here once.

use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Date, UtcDateTime};

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

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`: RFC 3339 with exactly three fractional digits, as HubSpot writes
/// history timestamps and as the relay writes Attio timestamp values.
const RFC3339_MILLIS: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// The UTC instant of epoch milliseconds; `None` outside the years 0000–9999, the only ones RFC
/// 3339 (four-digit years) can write — such a value is a mistake upstream, never printed as if
/// it were a date.
pub fn utc_from_millis(ms: i64) -> Option<UtcDateTime> {
    let at = UtcDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    (0..=9999).contains(&at.year()).then_some(at)
}

/// Epoch milliseconds of an instant, rounded down (towards the past, also before 1970): a
/// fraction is truncated, never rounded into the next second, day or year.
pub fn millis_of(at: UtcDateTime) -> i64 {
    // Years 0000–9999 are ±3e14 ms: far inside i64.
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).unwrap_or(i64::MAX)
}

/// Epoch milliseconds of midnight UTC starting `date`.
pub fn millis_of_date(date: Date) -> i64 {
    millis_of(date.midnight().as_utc())
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of epoch milliseconds. Outside the years 0000–9999, which RFC
/// 3339 cannot write, the milliseconds themselves (`"253402300800000"`): visibly not a date,
/// never a made-up one (a reader that wants to refuse them asks [`utc_from_millis`]).
pub fn rfc3339_millis(ms: i64) -> String {
    format_millis(ms, RFC3339_MILLIS)
}

/// `ms` printed with `format`, or as the number itself outside the years 0000–9999.
pub fn format_millis(ms: i64, format: &[BorrowedFormatItem<'_>]) -> String {
    utc_from_millis(ms)
        .and_then(|at| at.format(format).ok())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_print_as_rfc3339_with_three_fractional_digits() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_767_225_600_123),
            "2026-01-01T00:00:00.123Z"
        );
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        // Before 1970 the calendar runs backwards from the epoch; the millisecond stays positive.
        assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            rfc3339_millis(-2_203_891_200_000),
            "1900-03-01T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339_millis(253_402_300_799_999),
            "9999-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn years_rfc3339_cannot_write_print_as_the_number() {
        assert!(utc_from_millis(253_402_300_800_000).is_none(), "year 10000");
        assert_eq!(rfc3339_millis(253_402_300_800_000), "253402300800000");
        assert!(utc_from_millis(-62_167_219_200_001).is_none(), "year -1");
        assert_eq!(rfc3339_millis(-62_167_219_200_001), "-62167219200001");
        assert_eq!(
            rfc3339_millis(-62_167_219_200_000),
            "0000-01-01T00:00:00.000Z"
        );
        assert_eq!(rfc3339_millis(i64::MAX), i64::MAX.to_string());
        assert_eq!(rfc3339_millis(i64::MIN), i64::MIN.to_string());
    }

    #[test]
    fn milliseconds_round_trip_and_round_down() {
        for ms in [
            0,
            -1,
            1,
            1_705_314_600_123,
            -2_203_891_200_001,
            253_402_300_799_999,
        ] {
            let at = utc_from_millis(ms).expect("in range");
            assert_eq!(millis_of(at), ms);
        }
        let at = utc_from_millis(-1).expect("in range");
        let later = at.replace_nanosecond(999_999_999).expect("nanosecond");
        assert_eq!(millis_of(later), -1, "1969-12-31T23:59:59.999999999Z");
        let date = Date::from_calendar_date(2024, time::Month::February, 29).expect("date");
        assert_eq!(millis_of_date(date), 1_709_164_800_000);
    }

    #[test]
    fn seconds_and_milliseconds_agree() {
        let (secs, millis) = (unix_now(), unix_now_millis());
        assert!(secs > 1_700_000_000, "clock reads {secs}");
        assert!((millis / 1000 - secs).abs() <= 1);
    }
}
