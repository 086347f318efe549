//! The shared rate budget's DynamoDB adapter on moto: the bucket item in the mappings table,
//! written only by conditional updates, so containers taking tokens at once never spend the
//! same ones — every write lands exactly once (the version counts them) and together they stay
//! under the rate over any window.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use integration_tests::moto;
use relay_ratelimit::{
    ApiBudget, BUDGET_KEY_PREFIX, DynamoDbBudget, Limits, MillisClock, RateBudget, Saved,
    SystemMillis,
};

fn limits() -> Limits {
    Limits {
        key: "attio-reads".into(),
        published_per_s: 40.0,
        rate_per_s: 30.0,
        capacity: 3.0,
        max_block: 3,
        lease: Duration::from_millis(100),
        min_rate_per_s: 1.0,
        recovery_per_s: 1.0,
        cut_cooldown: Duration::from_secs(1),
        window: None,
    }
}

async fn store() -> (DynamoDbBudget, aws_sdk_dynamodb::Client, String) {
    let config = moto::sdk_config().await;
    let table = moto::fresh_table_keyed(&config, "mappings", "mapping_key").await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    (DynamoDbBudget::new(client.clone(), &table), client, table)
}

#[tokio::test]
async fn a_write_lands_only_on_the_version_it_read() {
    let (store, client, table) = store().await;
    let limits = limits();
    let now = SystemMillis.now_ms();
    assert_eq!(store.load(&limits.key).await.expect("load"), None);
    let fresh = limits.fresh(now);
    assert_eq!(
        store
            .save(&limits.key, fresh.clone(), None)
            .await
            .expect("first"),
        Saved::Written(1)
    );
    // A second "first" write, and a write on a stale version, both lose.
    match store
        .save(&limits.key, fresh.clone(), None)
        .await
        .expect("second")
    {
        Saved::Conflict(stored) => {
            // moto may or may not return the item (ALL_OLD); when it does, it is the winner's.
            if let Some(stored) = stored {
                assert_eq!(stored.version, 1);
            }
        }
        other => panic!("{other:?}"),
    }
    let (taken, _) = limits.take(&fresh, now, 2, Duration::ZERO).expect("take");
    assert_eq!(
        store
            .save(&limits.key, taken.clone(), Some(1))
            .await
            .expect("v2"),
        Saved::Written(2)
    );
    assert!(matches!(
        store
            .save(&limits.key, fresh, Some(1))
            .await
            .expect("stale"),
        Saved::Conflict(_)
    ));
    let stored = store.load(&limits.key).await.expect("load").expect("item");
    assert_eq!((stored.version, &stored.state), (2, &taken));
    // The item lives beside the mappings under a key no mapping can have.
    let item = client
        .get_item()
        .table_name(&table)
        .key(
            "mapping_key",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("{BUDGET_KEY_PREFIX}attio-reads")),
        )
        .send()
        .await
        .expect("get")
        .item
        .expect("item");
    assert!(!item["mapping_key"].as_s().expect("key").contains('#'));

    // HubSpot's rolling window: the grants round-trip in the item's `grants` attribute.
    let hubspot = Limits::hubspot(100.0, 0.85);
    let (one, _) = hubspot
        .take(&hubspot.fresh(now), now, 5, Duration::ZERO)
        .expect("take");
    let (two, _) = hubspot
        .take(&one, now + 30, 2, Duration::ZERO)
        .expect("take");
    assert_eq!(two.grants.len(), 2);
    assert_eq!(
        store.save(&hubspot.key, one, None).await.expect("first"),
        Saved::Written(1)
    );
    assert_eq!(
        store
            .save(&hubspot.key, two.clone(), Some(1))
            .await
            .expect("v2"),
        Saved::Written(2)
    );
    let stored = store.load(&hubspot.key).await.expect("load").expect("item");
    assert_eq!((stored.version, stored.state), (2, two));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_containers_share_one_bucket_through_conditional_updates() {
    let (store, _, _) = store().await;
    let store: Arc<dyn RateBudget> = Arc::new(store);
    let limits = limits();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let budgets: Vec<ApiBudget> = (0..4)
        .map(|_| ApiBudget::new(Arc::clone(&store), limits.clone()))
        .collect();
    let end = SystemMillis.now_ms() + 2_500;
    let mut tasks = Vec::new();
    for budget in &budgets {
        for _ in 0..3 {
            let (budget, calls) = (budget.clone(), Arc::clone(&calls));
            tasks.push(tokio::spawn(async move {
                while SystemMillis.now_ms() < end {
                    match budget.acquire(Duration::from_secs(2)).await {
                        Ok(()) => {
                            let now = SystemMillis.now_ms();
                            if now < end {
                                calls
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .push(now);
                            }
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err(denied) => tokio::time::sleep(denied.wait).await,
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("taker");
    }
    let mut calls = calls.lock().unwrap_or_else(PoisonError::into_inner).clone();
    calls.sort_unstable();
    let mut most = 0;
    let mut first = 0;
    for (i, t) in calls.iter().enumerate() {
        while calls[first] <= t - 1_000 {
            first += 1;
        }
        most = most.max(i + 1 - first);
    }
    let ceiling = limits.ceiling_over(Duration::from_secs(1));
    assert!(
        most as f64 <= ceiling,
        "{most} calls in a second, ceiling {ceiling}"
    );
    // 2.5 s at 30/s plus the burst: the containers used the budget, once.
    assert!((60..=85).contains(&calls.len()), "{} calls", calls.len());

    // Every successful conditional write bumped the version once: none was lost or doubled,
    // though the containers raced (conflicts > 0).
    let stats: Vec<_> = budgets.iter().map(ApiBudget::stats).collect();
    let writes: u64 = stats.iter().map(|s| s.blocks + s.cuts).sum();
    let conflicts: u64 = stats.iter().map(|s| s.conflicts).sum();
    let stored = store.load(&limits.key).await.expect("load").expect("item");
    assert_eq!(stored.version, writes, "{stats:?}");
    assert!(conflicts > 0, "the containers never raced: {stats:?}");
    let store_calls: u64 = stats.iter().map(|s| s.store_calls).sum();
    eprintln!(
        "{} calls, {writes} block writes, {conflicts} conflicts, {store_calls} DynamoDB requests",
        calls.len()
    );
}
