//! One contract, two adapters: the DynamoDB store (on moto) and the SQLite store must decide
//! every claim the same way, so local runs behave like production.

use std::time::Duration;

use integration_tests::moto;
use relay_embedded::LocalDb;
use relay_events::{Delivery, IdempotencyKey};
use relay_idempotency::SqliteIdempotencyStore;
use relay_idempotency::{Claim, DynamoDbStore, IdempotencyStore, StoreError};

const LEASE: Duration = Duration::from_secs(60);
const RETAIN: Duration = Duration::from_secs(3600);
const T0: i64 = 1_763_000_000;

fn key(name: &str) -> IdempotencyKey {
    let delivery = Delivery::parse(
        br#"{"event_type":"task.created","id":{"workspace_id":"w","task_id":"t"}}"#,
    )
    .expect("delivery");
    IdempotencyKey::for_delivery(Some(name), &delivery, None)
}

async fn acquire(
    store: &impl IdempotencyStore,
    name: &str,
    now: i64,
) -> relay_idempotency::ClaimToken {
    match store
        .claim(&key(name), now, LEASE, RETAIN)
        .await
        .expect("claim")
    {
        Claim::Acquired(token) => token,
        other => panic!("expected to acquire {name} at {now}, got {other:?}"),
    }
}

async fn contract(store: impl IdempotencyStore) {
    // A fresh key is acquired; a second claim under the live lease is told to wait.
    let token = acquire(&store, "a", T0).await;
    assert_eq!(
        store
            .claim(&key("a"), T0 + 30, LEASE, RETAIN)
            .await
            .expect("claim"),
        Claim::InProgress {
            lease_expires_at: T0 + 60
        }
    );
    // Completed keys answer AlreadyCompleted until they expire, then are free again.
    store
        .complete(&key("a"), &token, T0 + 1, RETAIN)
        .await
        .expect("complete");
    assert_eq!(
        store
            .claim(&key("a"), T0 + 100, LEASE, RETAIN)
            .await
            .expect("claim"),
        Claim::AlreadyCompleted
    );
    acquire(&store, "a", T0 + 1 + 3601).await;

    // An abandoned claim is taken over after its lease; the old owner has lost it.
    let crashed = acquire(&store, "b", T0).await;
    let retry = acquire(&store, "b", T0 + 61).await;
    assert!(matches!(
        store.complete(&key("b"), &crashed, T0 + 62, RETAIN).await,
        Err(StoreError::NotOwner { .. })
    ));
    assert!(matches!(
        store.release(&key("b"), &crashed).await,
        Err(StoreError::NotOwner { .. })
    ));
    store
        .complete(&key("b"), &retry, T0 + 62, RETAIN)
        .await
        .expect("complete by new owner");

    // Release frees the key at once; a completed key cannot be released.
    let token = acquire(&store, "c", T0).await;
    store.release(&key("c"), &token).await.expect("release");
    let token = acquire(&store, "c", T0 + 1).await;
    store
        .complete(&key("c"), &token, T0 + 2, RETAIN)
        .await
        .expect("complete");
    assert!(matches!(
        store.release(&key("c"), &token).await,
        Err(StoreError::NotOwner { .. })
    ));
    assert_eq!(
        store
            .claim(&key("c"), T0 + 3, LEASE, RETAIN)
            .await
            .expect("claim"),
        Claim::AlreadyCompleted
    );
}

#[tokio::test]
async fn the_sqlite_store_keeps_the_contract() {
    contract(SqliteIdempotencyStore::new(
        LocalDb::in_memory().expect("sqlite"),
    ))
    .await;
}

#[tokio::test]
async fn the_dynamodb_store_keeps_the_contract() {
    let config = moto::sdk_config().await;
    let table = moto::fresh_table(&config).await;
    contract(DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        table,
    ))
    .await;
}

#[tokio::test]
async fn concurrent_claims_on_dynamodb_have_exactly_one_winner() {
    let config = moto::sdk_config().await;
    let table = moto::fresh_table(&config).await;
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&config), table);
    let claims = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.claim(&key("race"), T0, LEASE, RETAIN).await })
    });
    let results = futures::future::join_all(claims).await;
    let winners = results
        .into_iter()
        .map(|r| r.expect("task").expect("claim"))
        .filter(|c| matches!(c, Claim::Acquired(_)))
        .count();
    assert_eq!(winners, 1);
}
