//! The share of the rate budgets a reconcile may use.
//!
//! Both budgets are shared with the live consumers, so a reconcile takes a fraction of each and
//! leaves the rest: Attio allows about 100 reads/s per workspace
//! (<https://docs.attio.com/rest-api/guides/rate-limiting>); HubSpot's smallest per-portal burst
//! limit is 100 requests per 10 s
//! (<https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines>).

/// Attio's read limit per workspace (requests per second).
pub const ATTIO_READS_PER_SECOND: f64 = 100.0;
/// HubSpot's smallest per-portal burst limit (requests per 10 seconds).
pub const HUBSPOT_REQUESTS_PER_10S: f64 = 100.0;
/// The share used when none is given: 10 Attio reads/s and 10 HubSpot requests per 10 s.
pub const DEFAULT_SHARE: f64 = 0.1;

/// A fraction of the budgets, above 0 and at most 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share(f64);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0} is not a share: give a number above 0 and at most 1")]
pub struct NotAShare(pub String);

impl Share {
    pub fn new(share: f64) -> Result<Self, NotAShare> {
        if share > 0.0 && share <= 1.0 {
            Ok(Self(share))
        } else {
            Err(NotAShare(share.to_string()))
        }
    }

    pub fn parse(text: &str) -> Result<Self, NotAShare> {
        let share: f64 = text
            .trim()
            .parse()
            .map_err(|e| NotAShare(format!("{text:?} ({e})")))?;
        Self::new(share)
    }

    pub fn get(self) -> f64 {
        self.0
    }

    /// Attio reads per second this share allows (at least 1, so a walk always moves).
    pub fn attio_reads_per_second(self) -> u32 {
        (ATTIO_READS_PER_SECOND * self.0).floor().max(1.0) as u32
    }

    /// HubSpot requests per 10 s this share allows (at least 1).
    pub fn hubspot_requests_per_10s(self) -> usize {
        (HUBSPOT_REQUESTS_PER_10S * self.0).floor().max(1.0) as usize
    }

    /// Both rates, for messages: "10 Attio reads/s and 10 HubSpot requests per 10 s (10% of
    /// each budget)".
    pub fn describe(self) -> String {
        format!(
            "{} Attio reads/s and {} HubSpot requests per 10 s ({}% of each budget)",
            self.attio_reads_per_second(),
            self.hubspot_requests_per_10s(),
            self.0 * 100.0
        )
    }
}

impl Default for Share {
    fn default() -> Self {
        Self(DEFAULT_SHARE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_becomes_both_rates_and_stays_a_share() {
        let rates = |s: f64| {
            let s = Share::new(s).expect("a share");
            (s.attio_reads_per_second(), s.hubspot_requests_per_10s())
        };
        assert_eq!(rates(0.1), (10, 10));
        assert_eq!(rates(1.0), (100, 100));
        assert_eq!(rates(0.001), (1, 1), "never zero");
        assert_eq!(Share::parse(" 0.25 ").map(Share::get), Ok(0.25));
        for bad in ["0", "-0.5", "1.5", "ten", "NaN", ""] {
            assert!(Share::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Share::default().get(), DEFAULT_SHARE);
    }
}
