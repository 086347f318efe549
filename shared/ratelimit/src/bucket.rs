//! The state every adapter stores, and the pure rules that change it. One set of rules for
//! DynamoDB, SQLite and memory: an adapter only loads a state and writes it back if nobody
//! wrote in between (a version check), so the logic is tested once, here (the token bucket) and
//! in `window.rs` (the rolling window).

use std::time::Duration;

/// One API's shared budget, as stored. Times are wall-clock milliseconds since the Unix epoch,
/// since every container must read the same clock (Lambda's clocks are NTP-synchronised).
#[derive(Debug, Clone, PartialEq)]
pub struct BucketState {
    /// Tokens left; negative when containers have reserved tokens ahead of time (they wait
    /// until the bucket has refilled past their share of the debt). Bucket rule only.
    pub tokens: f64,
    /// When `tokens` was computed.
    pub updated_ms: i64,
    /// The rate the last 429 cut the bucket to (tokens per second).
    pub cut_rate: f64,
    /// When that cut happened; 0: never, the bucket runs at the full rate.
    pub cut_ms: i64,
    /// Window rule only: the blocks granted within the last window and lease, oldest first
    /// (empty for a bucket). Pruned at every grant, so at most one entry per call allowed.
    pub grants: Vec<Grant>,
}

/// One block granted under the window rule: `calls` calls that may be spent from `at_ms` until
/// `at_ms + lease`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub at_ms: i64,
    pub calls: u32,
}

/// The grants as the stores keep them: `"{at_ms}:{calls}"` joined by commas (one string
/// attribute in DynamoDB, one TEXT column in SQLite), so adapters need no list types.
pub fn encode_grants(grants: &[Grant]) -> String {
    grants
        .iter()
        .map(|g| format!("{}:{}", g.at_ms, g.calls))
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads [`encode_grants`]'s text back; `None` when it is not that shape (a store holding a
/// damaged item then reads as no item, and the next write replaces it).
pub fn decode_grants(text: &str) -> Option<Vec<Grant>> {
    if text.trim().is_empty() {
        return Some(Vec::new());
    }
    text.split(',')
        .map(|entry| {
            let (at, calls) = entry.trim().split_once(':')?;
            Some(Grant {
                at_ms: at.parse().ok()?,
                calls: calls.parse().ok()?,
            })
        })
        .collect()
}

/// A stored state and its version (bumped by every write).
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    pub state: BucketState,
    pub version: u64,
}

/// How one API's budget behaves. [`Limits::attio_reads`] and friends give the relay's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// The bucket's name in the store (`attio-reads`, `attio-writes`, `hubspot`).
    pub key: String,
    /// The API's published limit, per second, for messages and for the share arithmetic.
    pub published_per_s: f64,
    /// The rate the whole deployment aims for: the published limit less headroom.
    pub rate_per_s: f64,
    /// Most tokens the bucket holds when idle: the burst every container together may send.
    /// Bucket rule only.
    pub capacity: f64,
    /// Largest block one container takes at a time (at most `capacity`).
    pub max_block: u32,
    /// How long a container may hold a block's tokens before they lapse unused. A token is
    /// spent at most this long after its grant, so over any window `W` the whole deployment
    /// sends at most `capacity + rate × (W + lease)` calls.
    pub lease: Duration,
    /// A 429 never cuts the rate below this.
    pub min_rate_per_s: f64,
    /// After a cut the rate climbs back by this much per second (additive increase).
    pub recovery_per_s: f64,
    /// At most one cut per this long: the 429s of one overrun reach several containers, and
    /// must halve the rate once, not once each.
    pub cut_cooldown: Duration,
    /// `Some(w)`: the rolling-window rule (`window.rs`) instead of the bucket — at most
    /// `rate × w` calls granted in any `w + lease`, so at most that many sent in any `w`.
    /// For limits published as "N per rolling window" (HubSpot), where a burst of the whole
    /// allowance is legal and a bucket would spread it over the window for nothing.
    pub window: Option<Duration>,
}

impl Limits {
    /// Attio reads: 100/s ("Rate limiting":
    /// <https://docs.attio.com/rest-api/guides/rate-limiting>), reset "in the next clock second";
    /// Attio may also lower it during incidents, which is what the 429 cut is for. The
    /// deployment aims at 80/s with bursts of 8 and 100 ms leases: at most 8 + 80 × 1.1 = 96
    /// in any second.
    pub fn attio_reads() -> Self {
        Self {
            key: "attio-reads".into(),
            published_per_s: 100.0,
            rate_per_s: 80.0,
            capacity: 8.0,
            max_block: 8,
            lease: Duration::from_millis(100),
            min_rate_per_s: 5.0,
            recovery_per_s: 4.0,
            cut_cooldown: Duration::from_secs(1),
            window: None,
        }
    }

    /// Attio writes: 25/s per workspace (same page). 18/s, bursts of 3: at most 3 + 18 × 1.1
    /// = 22.8 in any second.
    pub fn attio_writes() -> Self {
        Self {
            key: "attio-writes".into(),
            published_per_s: 25.0,
            rate_per_s: 18.0,
            capacity: 3.0,
            max_block: 3,
            lease: Duration::from_millis(100),
            min_rate_per_s: 1.0,
            recovery_per_s: 1.0,
            cut_cooldown: Duration::from_secs(1),
            window: None,
        }
    }

    /// HubSpot: `per_10s` requests per 10 s rolling per portal (100 on the smallest tiers, 190
    /// on Professional and Enterprise: <https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines>,
    /// <https://developers.hubspot.com/changelog/increasing-our-api-limits>; the 429 names the
    /// policy `TEN_SECONDLY_ROLLING`), shared with every other app of the portal. The rule is
    /// the published one: a rolling 10 s window in which the deployment is granted at most
    /// `headroom` of the limit (0.85: 85 of 100) counted over the window plus the 1 s lease, so
    /// at most 85 calls are sent in any 10 s, and 20 batch upserts of an import go at once
    /// instead of at 8.5/s. A 429 halves the allowance (to 42.5, not below 5), which climbs
    /// back over a minute.
    pub fn hubspot(per_10s: f64, headroom: f64) -> Self {
        let published_per_s = per_10s / 10.0;
        Self {
            key: "hubspot".into(),
            published_per_s,
            rate_per_s: published_per_s * headroom,
            capacity: 5.0,
            max_block: 5,
            lease: Duration::from_secs(1),
            min_rate_per_s: 0.5,
            recovery_per_s: published_per_s * headroom / 60.0,
            cut_cooldown: Duration::from_secs(10),
            window: Some(Duration::from_secs(10)),
        }
    }

    /// Scales the aimed rate (the headroom), e.g. from `RATE_BUDGET_HEADROOM`; the burst is kept.
    pub fn with_headroom(mut self, headroom: f64) -> Self {
        let scale = headroom / (self.rate_per_s / self.published_per_s);
        self.rate_per_s *= scale;
        self.recovery_per_s *= scale;
        self
    }

    /// The most calls the whole deployment can send in any window of `window`.
    pub fn ceiling_over(&self, window: Duration) -> f64 {
        match self.window {
            None => self.capacity + self.rate_per_s * (window + self.lease).as_secs_f64(),
            Some(_) => self.window_ceiling_over(window),
        }
    }

    /// A full bucket (an empty window), now.
    pub fn fresh(&self, now_ms: i64) -> BucketState {
        BucketState {
            tokens: self.capacity,
            updated_ms: now_ms,
            cut_rate: self.rate_per_s,
            cut_ms: 0,
            grants: Vec::new(),
        }
    }

    /// The rate in force at `now_ms`: the full rate, or after a cut, the cut rate plus the
    /// recovery since, up to the full rate.
    pub fn rate_at(&self, state: &BucketState, now_ms: i64) -> f64 {
        if state.cut_ms == 0 {
            return self.rate_per_s;
        }
        let since = (now_ms - state.cut_ms).max(0) as f64 / 1000.0;
        (state.cut_rate + self.recovery_per_s * since).min(self.rate_per_s)
    }

    /// The state refilled to `now_ms` at the rate in force.
    fn refilled(&self, state: &BucketState, now_ms: i64) -> BucketState {
        let elapsed = (now_ms - state.updated_ms).max(0) as f64 / 1000.0;
        BucketState {
            tokens: (state.tokens + self.rate_at(state, now_ms) * elapsed).min(self.capacity),
            updated_ms: state.updated_ms.max(now_ms),
            ..state.clone()
        }
    }

    /// Takes `n` tokens at `now_ms`: the new state and when the tokens may be spent (now, or
    /// later when the bucket is in debt). When that is more than `max_wait` away nothing is
    /// taken and the wait is the error.
    pub fn take(
        &self,
        state: &BucketState,
        now_ms: i64,
        n: u32,
        max_wait: Duration,
    ) -> Result<(BucketState, i64), Duration> {
        if let Some(window) = self.window {
            return self.take_window(state, now_ms, n, max_wait, window);
        }
        let mut next = self.refilled(state, now_ms);
        next.tokens -= f64::from(n);
        let rate = self.rate_at(&next, now_ms).max(f64::MIN_POSITIVE);
        let wait_ms = if next.tokens >= 0.0 {
            0
        } else {
            (-next.tokens / rate * 1000.0).ceil() as i64
        };
        let wait = Duration::from_millis(u64::try_from(wait_ms).unwrap_or(u64::MAX));
        if wait > max_wait {
            return Err(wait);
        }
        Ok((next, now_ms + wait_ms))
    }

    /// The state after the API answered 429 at `now_ms`: the rate halved (not below the
    /// floor) and the idle tokens dropped (a window keeps its grants, which now count against
    /// the halved allowance). `None` when a cut happened within the cooldown —
    /// that overrun was already answered.
    pub fn cut(&self, state: &BucketState, now_ms: i64) -> Option<BucketState> {
        let cooldown = i64::try_from(self.cut_cooldown.as_millis()).unwrap_or(i64::MAX);
        if state.cut_ms != 0 && now_ms - state.cut_ms < cooldown {
            return None;
        }
        let before = self.refilled(state, now_ms);
        let rate = self.rate_at(&before, now_ms);
        Some(BucketState {
            tokens: before.tokens.min(0.0),
            updated_ms: before.updated_ms,
            cut_rate: (rate / 2.0).max(self.min_rate_per_s),
            cut_ms: now_ms,
            grants: before.grants,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(60);

    #[test]
    fn an_idle_bucket_grants_its_burst_then_reserves_ahead() {
        let limits = Limits::attio_reads();
        let state = limits.fresh(0);
        let (state, at) = limits.take(&state, 0, 8, MAX).expect("burst");
        assert_eq!(at, 0);
        // 8 more at 80/s: 100 ms of debt.
        let (state, at) = limits.take(&state, 0, 8, MAX).expect("reserved");
        assert_eq!(at, 100);
        assert_eq!(
            limits.take(&state, 0, 8, Duration::from_millis(150)),
            Err(Duration::from_millis(200)),
            "a wait past the caller's budget takes nothing"
        );
        // A second later the bucket is full again, never fuller.
        let (later, at) = limits.take(&state, 2_000, 8, MAX).expect("refilled");
        assert_eq!((at, later.tokens), (2_000, 0.0));
    }

    #[test]
    fn a_cut_halves_the_rate_once_per_cooldown_then_it_recovers() {
        let limits = Limits::attio_reads();
        let state = limits.fresh(0);
        let cut = limits.cut(&state, 1_000).expect("first 429 cuts");
        assert_eq!(limits.rate_at(&cut, 1_000), 40.0);
        assert!(cut.tokens <= 0.0, "idle tokens dropped");
        assert_eq!(limits.cut(&cut, 1_500), None, "same overrun, no second cut");
        let again = limits.cut(&cut, 2_000).expect("a later 429 cuts again");
        assert_eq!(limits.rate_at(&again, 2_000), 22.0, "(40 + 4) / 2");
        // Additive recovery: +4/s, back to 80 after 14.5 s, never above.
        assert_eq!(limits.rate_at(&again, 7_000), 42.0);
        assert_eq!(limits.rate_at(&again, 60_000), 80.0);
        let floor = (0..20).fold(again, |s, i| {
            limits.cut(&s, 3_000 + i * 1_000).expect("cut")
        });
        assert_eq!(limits.rate_at(&floor, 22_000), 5.0, "never below the floor");
    }

    #[test]
    fn grants_read_back_as_written() {
        let grants = vec![
            Grant {
                at_ms: 1_764_644_413_123,
                calls: 5,
            },
            Grant {
                at_ms: 1_764_644_414_000,
                calls: 1,
            },
        ];
        assert_eq!(decode_grants(&encode_grants(&grants)), Some(grants));
        assert_eq!(decode_grants(""), Some(Vec::new()));
        assert_eq!(decode_grants("12:x"), None);
        assert_eq!(decode_grants("12"), None);
    }

    #[test]
    fn the_ceilings_stay_under_the_published_limits() {
        let second = Duration::from_secs(1);
        assert!(Limits::attio_reads().ceiling_over(second) <= 100.0);
        assert!(Limits::attio_writes().ceiling_over(second) <= 25.0);
        let hubspot = Limits::hubspot(100.0, 0.85);
        assert!(hubspot.ceiling_over(Duration::from_secs(10)) <= 100.0);
        assert_eq!(hubspot.ceiling_over(Duration::from_secs(10)), 85.0);
        let bigger = Limits::hubspot(190.0, 0.85);
        assert!(bigger.ceiling_over(Duration::from_secs(10)) <= 190.0);
        let tighter = Limits::attio_reads().with_headroom(0.5);
        assert_eq!(tighter.rate_per_s, 50.0);
    }
}
