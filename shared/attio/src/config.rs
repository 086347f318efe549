//! Client configuration. Defaults suit a consumer Lambda; tests shrink the delays.

use std::time::Duration;

use relay_credentials::Credential;
use relay_ratelimit::ApiBudget;

/// Attio's API root.
pub const DEFAULT_BASE_URL: &str = "https://api.attio.com/v2";

/// A request rate this client keeps to: `per_second` on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// How an [`AttioClient`](crate::AttioClient) talks to Attio. See the crate docs for the policy.
#[derive(Debug, Clone)]
pub struct AttioConfig {
    /// API root, `https://api.attio.com/v2` unless testing.
    pub base_url: String,
    /// The access token, read per call: a [`Credential`] from a store follows its rotations
    /// (re-read on a TTL and, once per call, on a 401); text given here is fixed.
    pub token: Credential,
    /// Upper bound for one HTTP attempt, connect to last body byte.
    pub request_timeout: Duration,
    /// Upper bound for one logical call, all attempts and waits included.
    pub call_budget: Duration,
    /// Attempts per logical call, the first included (at least 1).
    pub max_attempts: u32,
    /// First backoff ceiling; it doubles per attempt up to `backoff_cap` (full jitter below it).
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Consecutive transient failures that open an object's circuit.
    pub breaker_threshold: u32,
    /// How long an open circuit fails fast before letting one trial call through.
    pub breaker_cooldown: Duration,
    /// Local pacing of reads (GET and record queries); `None` disables it.
    pub read_rate: Option<RateLimit>,
    /// Local pacing of writes (record asserts); `None` disables it.
    pub write_rate: Option<RateLimit>,
    /// The deployment's shared budget for reads (Attio's 100/s are per workspace, so every
    /// container must draw from one bucket); replaces `read_rate` when set, and is cut on a 429.
    pub read_budget: Option<ApiBudget>,
    /// The same for writes (25/s per workspace).
    pub write_budget: Option<ApiBudget>,
}

impl AttioConfig {
    /// Production defaults with the given token.
    pub fn new(token: impl Into<Credential>) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            token: token.into(),
            request_timeout: Duration::from_secs(10),
            call_budget: Duration::from_secs(20),
            max_attempts: 5,
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(5),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(30),
            // Attio's published workspace limits; one container alone stays under them.
            read_rate: Some(RateLimit {
                per_second: 100,
                burst: 100,
            }),
            write_rate: Some(RateLimit {
                per_second: 25,
                burst: 25,
            }),
            read_budget: None,
            write_budget: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_token() {
        let config = AttioConfig::new("sk-very-secret");
        let shown = format!("{config:?} {:?}", config.token);
        assert!(!shown.contains("sk-very-secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
        assert_eq!(config.token.peek().expose(), "sk-very-secret");
    }
}
