//! Two containers (two clients) on one shared budget (`relay_ratelimit`, memory adapter):
//! together they stay under the budget's rate at the server, and a 429 one of them meets
//! halves the rate the other one gets.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use relay_attio::AttioClient;
use relay_ratelimit::{ApiBudget, Limits, MemoryBudget, RateBudget};
use wiremock::{MockServer, Request, ResponseTemplate};

use crate::{RECORD_ID, attio_error, config, every_type_record, get_the_record};

fn limits() -> Limits {
    Limits {
        key: "attio-reads".into(),
        published_per_s: 25.0,
        rate_per_s: 20.0,
        capacity: 2.0,
        max_block: 2,
        lease: Duration::from_millis(50),
        min_rate_per_s: 1.0,
        recovery_per_s: 0.5,
        cut_cooldown: Duration::from_secs(1),
        window: None,
    }
}

fn container(server: &MockServer, store: &Arc<dyn RateBudget>) -> (AttioClient, ApiBudget) {
    let budget = ApiBudget::new(Arc::clone(store), limits());
    let mut config = config(server);
    config.read_budget = Some(budget.clone());
    (AttioClient::new(config).expect("client"), budget)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_containers_together_stay_under_the_shared_rate() {
    let server = MockServer::start().await;
    let seen = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let record = every_type_record();
    let log = Arc::clone(&seen);
    get_the_record()
        .respond_with(move |_: &Request| -> ResponseTemplate {
            log.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Instant::now());
            record.clone()
        })
        .mount(&server)
        .await;
    let store: Arc<dyn RateBudget> = Arc::new(MemoryBudget::new());
    let end = Instant::now() + Duration::from_millis(2_000);
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (client, _) = container(&server, &store);
        for _ in 0..3 {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                while Instant::now() < end {
                    if let Err(e) = client.get_record("people", RECORD_ID).await {
                        panic!("{e}");
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("taker");
    }
    let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner).clone();
    seen.sort_unstable();
    let mut most = 0;
    let mut first = 0;
    for (i, t) in seen.iter().enumerate() {
        while t.duration_since(seen[first]) >= Duration::from_secs(1) {
            first += 1;
        }
        most = most.max(i + 1 - first);
    }
    let ceiling = limits().ceiling_over(Duration::from_secs(1));
    assert!(
        most as f64 <= ceiling,
        "{most} requests in one second, ceiling {ceiling}"
    );
    // Two seconds at 20/s plus the burst (and the calls let through as the run ends).
    assert!((38..=50).contains(&seen.len()), "{} requests", seen.len());
}

#[tokio::test]
async fn a_429_halves_the_rate_every_container_gets() {
    let server = MockServer::start().await;
    get_the_record()
        .respond_with(
            attio_error(429, "rate_limit_exceeded", "Rate limit exceeded")
                .insert_header("retry-after", "0"),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    get_the_record()
        .respond_with(every_type_record())
        .expect(2)
        .mount(&server)
        .await;
    let store: Arc<dyn RateBudget> = Arc::new(MemoryBudget::new());
    let (a, a_budget) = container(&server, &store);
    let (b, b_budget) = container(&server, &store);

    a.get_record("people", RECORD_ID)
        .await
        .expect("429 waited out");
    assert_eq!(a_budget.stats().cuts, 1);
    let rate = a_budget.stats().rate_per_s;
    assert!((10.0..10.5).contains(&rate), "{rate}");
    // The other container did not see the 429, and gets the halved rate from the store.
    b.get_record("people", RECORD_ID).await.expect("record");
    let rate = b_budget.stats().rate_per_s;
    assert!((10.0..10.5).contains(&rate), "{rate}");
}
