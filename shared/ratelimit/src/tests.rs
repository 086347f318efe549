//! The budget over the memory adapter on tokio's paused clock: many takers in several
//! "containers" never exceed the rate over any window, a 429 halves the rate for everyone and
//! it climbs back, blocks keep store calls well under one per API call.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::{ApiBudget, Limits, MemoryBudget, MillisClock, RateBudget, TokioMillis};

const BASE_MS: i64 = 1_700_000_000_000;

/// `containers` handles on one store, `tasks` takers each, calling as fast as allowed for
/// `run`: every call's time.
async fn drive(
    store: Arc<dyn RateBudget>,
    limits: &Limits,
    containers: usize,
    tasks: usize,
    run: Duration,
) -> (Vec<i64>, Vec<ApiBudget>) {
    let clock = Arc::new(TokioMillis::new(BASE_MS));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let budgets: Vec<ApiBudget> = (0..containers)
        .map(|_| ApiBudget::with_clock(Arc::clone(&store), limits.clone(), clock.clone()))
        .collect();
    let end = clock.now_ms() + i64::try_from(run.as_millis()).expect("ms");
    let mut handles = Vec::new();
    for budget in &budgets {
        for _ in 0..tasks {
            let (budget, clock, calls) = (budget.clone(), clock.clone(), Arc::clone(&calls));
            handles.push(tokio::spawn(async move {
                while clock.now_ms() < end {
                    match budget.acquire(Duration::from_secs(5)).await {
                        Ok(()) => {
                            let now = clock.now_ms();
                            if now < end {
                                calls
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .push(now);
                            }
                            // The call itself takes a while.
                            tokio::time::sleep(Duration::from_millis(fastrand_ms())).await;
                        }
                        Err(denied) => tokio::time::sleep(denied.wait).await,
                    }
                }
            }));
        }
    }
    for handle in handles {
        handle.await.expect("taker");
    }
    let mut calls = calls.lock().unwrap_or_else(PoisonError::into_inner).clone();
    calls.sort_unstable();
    (calls, budgets)
}

/// A pseudo-random call duration (5–40 ms), deterministic per call count.
fn fastrand_ms() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    5 + (n.wrapping_mul(2_654_435_761) >> 7) % 36
}

/// The most calls in any window of `window` (sliding over every call time).
fn busiest(calls: &[i64], window: Duration) -> usize {
    let w = i64::try_from(window.as_millis()).expect("ms");
    let mut most = 0;
    let mut first = 0;
    for (i, t) in calls.iter().enumerate() {
        while calls[first] <= t - w {
            first += 1;
        }
        most = most.max(i + 1 - first);
    }
    most
}

#[tokio::test(start_paused = true)]
async fn concurrent_containers_never_exceed_the_rate_over_any_window() {
    let limits = Limits::attio_reads();
    let store: Arc<dyn RateBudget> = Arc::new(MemoryBudget::new());
    let (calls, budgets) = drive(store, &limits, 5, 6, Duration::from_secs(10)).await;

    let second = Duration::from_secs(1);
    let most = busiest(&calls, second);
    assert!(
        most as f64 <= limits.ceiling_over(second) && most <= 100,
        "{most} calls in one second"
    );
    // The budget is used, not just respected: 10 s at 80/s plus the first burst.
    assert!(calls.len() >= 780, "only {} calls in 10 s", calls.len());
    assert!(calls.len() <= 808, "{} calls in 10 s", calls.len());
    // Blocks: the store sees a fraction of the calls.
    let store_calls: u64 = budgets.iter().map(|b| b.stats().store_calls).sum();
    let spent: u64 = budgets.iter().map(|b| b.stats().spent).sum();
    let conflicts: u64 = budgets.iter().map(|b| b.stats().conflicts).sum();
    eprintln!("{spent} calls, {store_calls} store calls, {conflicts} conflicts");
    assert!(
        (store_calls as f64) < 0.5 * spent as f64,
        "{store_calls} store calls for {spent} API calls"
    );
}

#[tokio::test(start_paused = true)]
async fn hubspot_containers_stay_under_the_portal_limit_per_10_seconds() {
    let limits = Limits::hubspot(100.0, 0.85);
    let store: Arc<dyn RateBudget> = Arc::new(MemoryBudget::new());
    let (calls, _) = drive(store, &limits, 5, 3, Duration::from_secs(40)).await;
    let most = busiest(&calls, Duration::from_secs(10));
    assert!(most <= 85, "{most} HubSpot calls in 10 s");
    // The window is used, not just respected: a whole allowance per 11 s (window + lease),
    // less the tokens of blocks that lapsed in a container when the window closed.
    assert!(calls.len() >= 300, "only {} calls in 40 s", calls.len());
}

#[tokio::test(start_paused = true)]
async fn an_import_burst_of_hubspot_calls_goes_at_once_from_every_container() {
    // 20 batch upserts from 2 containers: the published rule allows them at once; the old
    // bucket (5, then 8.5/s) took 1.8 s.
    let limits = Limits::hubspot(100.0, 0.85);
    let store: Arc<dyn RateBudget> = Arc::new(MemoryBudget::new());
    let clock = Arc::new(TokioMillis::new(BASE_MS));
    let start = clock.now_ms();
    let mut handles = Vec::new();
    for _ in 0..2 {
        let budget = ApiBudget::with_clock(Arc::clone(&store), limits.clone(), clock.clone());
        for _ in 0..10 {
            let budget = budget.clone();
            handles.push(tokio::spawn(async move {
                budget.acquire(Duration::from_secs(30)).await
            }));
        }
    }
    for handle in handles {
        handle.await.expect("taker").expect("token");
    }
    assert_eq!(clock.now_ms() - start, 0, "no call waited");
    // Blocks held by the two containers count too (block sizes 1, 2, 4, 5: a few lapse
    // unused); a third container gets the rest of the window at once, then waits for it.
    let stored = store.load(&limits.key).await.expect("load").expect("item");
    let granted: u32 = stored.state.grants.iter().map(|g| g.calls).sum();
    assert!((20..=30).contains(&granted), "{granted}");
    let budget = ApiBudget::with_clock(Arc::clone(&store), limits.clone(), clock.clone());
    for _ in 0..(85 - granted) {
        budget
            .acquire(Duration::from_secs(30))
            .await
            .expect("token");
    }
    assert_eq!(clock.now_ms() - start, 0, "85 in the first instant");
    budget
        .acquire(Duration::from_secs(30))
        .await
        .expect("token");
    assert_eq!(
        clock.now_ms() - start,
        11_000,
        "the window (10 s) plus the lease (1 s)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_429_halves_the_rate_for_every_container_then_it_recovers() {
    let limits = Limits::attio_reads();
    let store: Arc<dyn RateBudget> = Arc::new(MemoryBudget::new());
    let clock = Arc::new(TokioMillis::new(BASE_MS));
    let a = ApiBudget::with_clock(Arc::clone(&store), limits.clone(), clock.clone());
    let b = ApiBudget::with_clock(Arc::clone(&store), limits.clone(), clock.clone());
    a.acquire(Duration::from_secs(1)).await.expect("token");

    a.throttled().await;
    b.throttled().await; // the same overrun seen by another container: no second cut
    assert_eq!(a.stats().cuts + b.stats().cuts, 1);
    assert_eq!(a.stats().rate_per_s, 40.0);

    // Container b, which did not see the 429, now gets about 40 calls a second.
    let start = clock.now_ms();
    let mut n = 0;
    while clock.now_ms() - start < 1_000 {
        b.acquire(Duration::from_secs(1)).await.expect("token");
        n += 1;
    }
    assert!(
        (38..=46).contains(&n),
        "{n} calls in the second after the cut"
    );

    // Recovery: +4/s, the full 80/s again 10 s later.
    tokio::time::advance(Duration::from_secs(10)).await;
    b.acquire(Duration::from_secs(1)).await.expect("token");
    b.acquire(Duration::from_secs(1)).await.expect("token");
    let mut rate = b.stats().rate_per_s;
    let mut spins = 0;
    while rate < 80.0 && spins < 100 {
        b.acquire(Duration::from_secs(1)).await.expect("token");
        rate = b.stats().rate_per_s;
        spins += 1;
    }
    assert_eq!(rate, 80.0);
}

#[tokio::test(start_paused = true)]
async fn a_share_caps_its_taker_and_a_wait_past_the_budget_is_denied() {
    let limits = Limits::attio_reads();
    let store: Arc<dyn RateBudget> = Arc::new(MemoryBudget::new());
    let clock = Arc::new(TokioMillis::new(BASE_MS));
    let backfill =
        ApiBudget::with_clock(Arc::clone(&store), limits.clone(), clock.clone()).with_share(0.25);
    let start = clock.now_ms();
    let mut n = 0;
    while clock.now_ms() - start < 2_000 {
        backfill
            .acquire(Duration::from_secs(1))
            .await
            .expect("token");
        n += 1;
    }
    assert!(
        (40..=41).contains(&n),
        "{n} calls in 2 s at a quarter of 80/s"
    );

    // Other containers have reserved a second ahead: a caller with no time to wait is told
    // how long, at once, and takes nothing.
    let now = clock.now_ms();
    let stored = store.load(&limits.key).await.expect("load").expect("item");
    let (debt, _) = limits
        .take(&stored.state, now, 80, Duration::from_secs(5))
        .expect("reserve");
    store
        .save(&limits.key, debt, Some(stored.version))
        .await
        .expect("save");
    let hasty = ApiBudget::with_clock(Arc::clone(&store), limits.clone(), clock.clone());
    let denied = hasty
        .acquire(Duration::ZERO)
        .await
        .expect_err("no token now");
    assert!(
        denied.wait >= Duration::from_millis(900) && denied.wait <= Duration::from_millis(1_100),
        "{denied}"
    );
    assert_eq!(clock.now_ms(), now, "a denial does not wait");
    assert_eq!(
        store
            .load(&limits.key)
            .await
            .expect("load")
            .expect("item")
            .version,
        stored.version + 1
    );
    // Told to wait long enough, it gets its token after the others'.
    hasty.acquire(Duration::from_secs(2)).await.expect("token");
    assert!(clock.now_ms() - now >= 900);
}

#[test]
fn the_system_clock_reads_wall_time() {
    let now = crate::SystemMillis.now_ms();
    assert!(now > BASE_MS, "{now}");
}
