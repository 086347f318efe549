//! The rolling-window rule, for limits published as "N requests per rolling window" (HubSpot:
//! "190 requests per 10 seconds", a 429 naming `TEN_SECONDLY_ROLLING`,
//! <https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines>).
//!
//! Such a limit allows the whole allowance at once; a token bucket (`bucket.rs`) would spread a
//! burst of 20 batch upserts over 2 s at 8.5/s for nothing. The rule here is the published
//! one, with headroom and with the lease a block may be held:
//!
//! > grant `n` calls at `t` only if the calls granted in `(t − window − lease, t]`, plus `n`,
//! > stay within the allowance (`rate in force × window`, 85 of HubSpot's 100).
//!
//! A block granted at `g` is spent within `[g, g + lease)`, so the calls sent in any window
//! `[a, a + window)` were granted in `(a − lease, a + window)`, an interval the rule bounds.
//! Grants are made at non-decreasing times (a taker that must wait reserves the earliest time
//! that fits, after every earlier grant), so checking the interval that ends at each new grant
//! checks every interval. The state is the list of grants inside the last `window + lease`,
//! pruned at every grant: at most one entry per call allowed, a handful in practice.
//!
//! AIMD is the bucket's: a 429 halves the rate in force (the allowance with it), the grants
//! already made count against the smaller allowance, and it climbs back additively.

use std::time::Duration;

use crate::{BucketState, Grant, Limits};

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Limits {
    /// The calls the window allows at `now_ms`: the rate in force times the window (the
    /// bucket's rate times one second when there is no window).
    pub fn allowance_at(&self, state: &BucketState, now_ms: i64) -> f64 {
        let window = self.window.unwrap_or(Duration::from_secs(1));
        self.rate_at(state, now_ms) * window.as_secs_f64()
    }

    /// Calls sent within `span` were granted within `span + lease`, and every `window + lease`
    /// of grants holds at most the allowance.
    pub(crate) fn window_ceiling_over(&self, span: Duration) -> f64 {
        let window = self.window.unwrap_or_default();
        let counted = (window + self.lease).as_millis().max(1);
        let pieces = (span + self.lease).as_millis().div_ceil(counted);
        self.rate_per_s * window.as_secs_f64() * pieces as f64
    }

    /// [`Limits::take`] under the window rule: the earliest time at or after `now_ms` (and
    /// after the last grant) when `n` more calls fit, and the state with that grant recorded.
    /// One block larger than the whole allowance (after deep cuts) is granted into an empty
    /// window, so a caller is never refused for ever.
    pub(crate) fn take_window(
        &self,
        state: &BucketState,
        now_ms: i64,
        n: u32,
        max_wait: Duration,
        window: Duration,
    ) -> Result<(BucketState, i64), Duration> {
        let span = millis(window + self.lease);
        let last = state.grants.last().map_or(now_ms, |g| g.at_ms);
        let mut at = now_ms.max(last);
        let live: Vec<Grant> = state
            .grants
            .iter()
            .filter(|g| g.at_ms > at.saturating_sub(span))
            .copied()
            .collect();
        let mut counted: u64 = live.iter().map(|g| u64::from(g.calls)).sum();
        let mut dropped = 0;
        loop {
            while dropped < live.len() && live[dropped].at_ms <= at.saturating_sub(span) {
                counted -= u64::from(live[dropped].calls);
                dropped += 1;
            }
            let need = counted + u64::from(n);
            if counted == 0 || need as f64 <= self.allowance_at(state, at) + 1e-9 {
                break;
            }
            // Wait for the oldest counted grant to leave, or for the rate to climb back far
            // enough after a cut, whichever comes first.
            let leaves = live[dropped].at_ms.saturating_add(span);
            let recovered = self
                .when_allowance_reaches(state, need as f64)
                .map_or(i64::MAX, |t| t.max(at + 1));
            at = leaves.min(recovered);
        }
        let wait = Duration::from_millis(u64::try_from(at - now_ms).unwrap_or(0));
        if wait > max_wait {
            return Err(wait);
        }
        let mut grants = live[dropped..].to_vec();
        match grants.last_mut() {
            Some(g) if g.at_ms == at => g.calls = g.calls.saturating_add(n),
            _ => grants.push(Grant {
                at_ms: at,
                calls: n,
            }),
        }
        let left = self.allowance_at(state, at) - (counted + u64::from(n)) as f64;
        Ok((
            BucketState {
                tokens: left,
                updated_ms: state.updated_ms.max(at),
                grants,
                ..state.clone()
            },
            at,
        ))
    }

    /// A block of up to `n` calls (what [`crate::ApiBudget`] takes): all `n` when they fit;
    /// under the window rule, when fewer than `n` are left in the window now, those (at least
    /// one) at once rather than a wait of a whole window for room for `n`. The state, when
    /// the calls may start, and how many were granted.
    pub fn take_up_to(
        &self,
        state: &BucketState,
        now_ms: i64,
        n: u32,
        max_wait: Duration,
    ) -> Result<(BucketState, i64, u32), Duration> {
        let mut n = n.max(1);
        if let Some(window) = self.window {
            let room = self.room_now(state, now_ms, window);
            if room >= 1 && room < n {
                n = room;
            }
        }
        self.take(state, now_ms, n, max_wait)
            .map(|(next, at)| (next, at, n))
    }

    /// Whole calls the window still allows at `now_ms`; 0 when grants wait ahead of now.
    fn room_now(&self, state: &BucketState, now_ms: i64, window: Duration) -> u32 {
        if state.grants.last().is_some_and(|g| g.at_ms > now_ms) {
            return 0;
        }
        let since = now_ms.saturating_sub(millis(window + self.lease));
        let counted: u64 = state
            .grants
            .iter()
            .filter(|g| g.at_ms > since)
            .map(|g| u64::from(g.calls))
            .sum();
        let room = (self.allowance_at(state, now_ms) - counted as f64 + 1e-9).floor();
        if room < 1.0 {
            0
        } else {
            room.min(f64::from(u32::MAX)) as u32
        }
    }

    /// When the rate climbing back after a cut makes the allowance `calls`; `None` when it
    /// never does (no cut, or more than the full allowance).
    fn when_allowance_reaches(&self, state: &BucketState, calls: f64) -> Option<i64> {
        let window_s = self.window?.as_secs_f64();
        let rate = calls / window_s;
        if state.cut_ms == 0 || rate > self.rate_per_s || self.recovery_per_s <= 0.0 {
            return None;
        }
        let secs = ((rate - state.cut_rate) / self.recovery_per_s).max(0.0);
        Some(state.cut_ms + (secs * 1000.0).ceil() as i64)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const T0: i64 = 1_764_644_400_000;
    const MAX: Duration = Duration::from_secs(120);

    fn hubspot() -> Limits {
        Limits::hubspot(100.0, 0.85)
    }

    /// The most of `times` (sorted) inside any `[a, a + w)`.
    fn busiest(times: &[i64], w: i64) -> usize {
        let mut most = 0;
        let mut first = 0;
        for (i, t) in times.iter().enumerate() {
            while times[first] <= t - w {
                first += 1;
            }
            most = most.max(i + 1 - first);
        }
        most
    }

    #[test]
    fn a_burst_of_the_whole_allowance_goes_at_once_then_waits_for_the_window() {
        let limits = hubspot();
        let mut state = limits.fresh(T0);
        for _ in 0..17 {
            let (next, at) = limits.take(&state, T0, 5, MAX).expect("within 85");
            assert_eq!(at, T0, "no wait inside the allowance");
            state = next;
        }
        // 85 granted at T0: the next call waits until T0's grants leave (10 s + 1 s lease).
        let (next, at) = limits.take(&state, T0 + 500, 1, MAX).expect("reserved");
        assert_eq!(at, T0 + 11_000);
        assert_eq!(
            next.grants,
            vec![Grant {
                at_ms: T0 + 11_000,
                calls: 1
            }]
        );
        assert_eq!(
            limits.take(&state, T0 + 500, 1, Duration::from_secs(5)),
            Err(Duration::from_millis(10_500)),
            "a wait past the caller's budget takes nothing"
        );
        // Grants are kept only as long as they count.
        let (later, _) = limits.take(&next, T0 + 30_000, 2, MAX).expect("idle");
        assert_eq!(
            later.grants,
            vec![Grant {
                at_ms: T0 + 30_000,
                calls: 2
            }]
        );
    }

    #[test]
    fn a_cut_halves_the_allowance_and_counts_what_was_granted() {
        let limits = hubspot();
        let (state, _) = limits.take(&limits.fresh(T0), T0, 40, MAX).expect("40");
        let cut = limits.cut(&state, T0 + 1_000).expect("429");
        assert_eq!(limits.allowance_at(&cut, T0 + 1_000), 42.5);
        assert_eq!(cut.grants, state.grants, "grants survive the cut");
        // 40 of 42.5 spent: 2 more now, the third only once the rate has climbed back
        // (8.5/60 per s: 43 calls allowed 0.3 s later) — before the 40 leave at T0 + 11 s.
        let (two, at) = limits.take(&cut, T0 + 1_000, 2, MAX).expect("2");
        assert_eq!(at, T0 + 1_000);
        let (_, at) = limits.take(&two, T0 + 1_000, 1, MAX).expect("1");
        assert!(at > T0 + 1_000 && at < T0 + 2_000, "{}", at - T0);
    }

    #[test]
    fn a_block_takes_what_is_left_of_the_window_instead_of_waiting_for_all_of_it() {
        let limits = hubspot();
        let (state, _) = limits.take(&limits.fresh(T0), T0, 82, MAX).expect("82");
        let (state, at, granted) = limits.take_up_to(&state, T0, 5, MAX).expect("3 left");
        assert_eq!((at, granted), (T0, 3));
        let (_, at, granted) = limits.take_up_to(&state, T0, 5, MAX).expect("full");
        assert_eq!(
            (at, granted),
            (T0 + 11_000, 5),
            "none left: the whole block waits"
        );
    }

    #[test]
    fn the_ceiling_is_the_allowance_per_window() {
        let limits = hubspot();
        assert_eq!(limits.ceiling_over(Duration::from_secs(10)), 85.0);
        assert_eq!(limits.ceiling_over(Duration::from_secs(1)), 85.0);
        assert_eq!(limits.ceiling_over(Duration::from_secs(20)), 170.0);
        let pro = Limits::hubspot(190.0, 0.85);
        assert!((pro.ceiling_over(Duration::from_secs(10)) - 161.5).abs() < 1e-9);
    }

    /// One simulated container: the state it last saw (its version), and its block in hand.
    #[derive(Clone)]
    struct Container {
        known: (BucketState, u64),
        block: Option<(i64, i64, u32)>,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Several containers race on one versioned store (a write lands only on the version
        /// it read, as the adapters' conditional writes), take blocks of 1–5, spend them at
        /// any moment within the lease (or let them lapse), and a 429 may cut the rate: no
        /// `[a, a + 10 s)` ever holds more than the allowance, and every grant fitted the
        /// allowance in force when it was made.
        #[test]
        fn no_window_ever_holds_more_than_the_allowance(
            per_10s in prop::sample::select(vec![100.0, 190.0]),
            steps in prop::collection::vec(
                (0usize..4, 0i64..400, 1u32..=5, 0u8..100, 0i64..1_000, 0u64..15_000),
                50..400,
            ),
        ) {
            let limits = Limits::hubspot(per_10s, 0.85);
            let lease = millis(limits.lease);
            let span = millis(limits.window.expect("window") + limits.lease);
            let mut stored = (limits.fresh(T0), 0u64);
            let mut containers = vec![Container { known: stored.clone(), block: None }; 4];
            let mut now = T0;
            let mut sent: Vec<i64> = Vec::new();
            let mut granted: Vec<(i64, u32, f64)> = Vec::new();
            for (who, advance, n, action, spend_at, max_wait_ms) in steps {
                now += advance;
                let c = &mut containers[who];
                if action < 3 {
                    // A 429: cut from what this container knows, written if still current.
                    if let Some(cut) = limits.cut(&c.known.0, now)
                        && c.known.1 == stored.1
                    {
                        stored = (cut, stored.1 + 1);
                    }
                    c.known = stored.clone();
                    continue;
                }
                if let Some((start, expires, left)) = c.block
                    && left > 0
                    && now >= start
                    && now < expires
                {
                    // Spend one now, or later within the lease.
                    sent.push(now.max(start + spend_at % lease).min(expires - 1));
                    c.block = Some((start, expires, left - 1));
                    continue;
                }
                let max_wait = Duration::from_millis(max_wait_ms);
                let Ok((next, at, n)) = limits.take_up_to(&c.known.0, now, n, max_wait) else {
                    c.known = stored.clone();
                    continue;
                };
                if c.known.1 != stored.1 {
                    c.known = stored.clone(); // lost the race: reread, as the adapters return
                    continue;
                }
                granted.push((at, n, limits.allowance_at(&next, at)));
                stored = (next, stored.1 + 1);
                c.known = stored.clone();
                c.block = Some((at, at + lease, n));
                // The first call of a block goes at its start.
                sent.push(at);
                c.block = Some((at, at + lease, n - 1));
            }
            sent.sort_unstable();
            let allowance = limits.rate_per_s * 10.0;
            let most = busiest(&sent, 10_000);
            prop_assert!(most as f64 <= allowance + 1e-9, "{} calls in 10 s", most);
            // Every grant fitted the allowance in force at its time (or was alone).
            granted.sort_by_key(|g| g.0);
            for (i, (at, n, allowance)) in granted.iter().enumerate() {
                let within: u32 = granted[..=i]
                    .iter()
                    .filter(|g| g.0 > at - span)
                    .map(|g| g.1)
                    .sum();
                prop_assert!(
                    f64::from(within) <= allowance + 1e-9 || within == *n,
                    "{} granted in the window ending at {}, allowance {}", within, at - T0, allowance
                );
            }
            // The store stays bounded: only grants still counted.
            prop_assert!(stored.0.grants.len() as f64 <= allowance + 1.0);
        }
    }
}
