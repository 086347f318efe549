//! The mapping stores (DynamoDB on moto, SQLite) keep one contract: one creator per object,
//! later events update the mapped id.

use std::time::Duration;

use integration_tests::moto;
use relay_crm::{CrmId, CrmObject};
use relay_embedded::LocalDb;
use relay_mappings::SqliteMappings;
use relay_mappings::{DynamoDbMappings, IdMappings, Reservation};

const T0: i64 = 1_763_000_000;
const LEASE: Duration = Duration::from_secs(30);

/// A note's reservation at `at`, with the test's lease.
async fn reserve(store: &impl IdMappings, note_id: &str, at: i64) -> Reservation {
    store
        .reserve(CrmObject::Notes, note_id, at, LEASE)
        .await
        .expect("reserve")
}

async fn contract(store: impl IdMappings) {
    let note = CrmObject::Notes;
    assert_eq!(store.get(note, "n1").await.expect("get"), None);
    assert_eq!(reserve(&store, "n1", T0).await, Reservation::Reserved);
    assert_eq!(reserve(&store, "n1", T0 + 1).await, Reservation::Busy);
    store
        .put(note, "n1", &CrmId("hs-1".into()))
        .await
        .expect("put");
    assert_eq!(
        reserve(&store, "n1", T0 + 2).await,
        Reservation::Mapped(CrmId("hs-1".into()))
    );
    assert_eq!(
        store.get(note, "n1").await.expect("get"),
        Some(CrmId("hs-1".into()))
    );
    // Namespaced by object type.
    assert_eq!(store.get(CrmObject::Tasks, "n1").await.expect("get"), None);

    // A creator that crashed holds the reservation only until its lease ends.
    assert_eq!(reserve(&store, "n2", T0).await, Reservation::Reserved);
    assert_eq!(reserve(&store, "n2", T0 + 31).await, Reservation::Reserved);

    store.remove(note, "n1").await.expect("remove");
    assert_eq!(store.get(note, "n1").await.expect("get"), None);
}

#[tokio::test]
async fn sqlite_mappings_keep_the_contract() {
    contract(SqliteMappings::new(LocalDb::in_memory().expect("sqlite"))).await;
}

#[tokio::test]
async fn dynamodb_mappings_keep_the_contract() {
    let config = moto::sdk_config().await;
    let table = moto::fresh_table_keyed(&config, "mappings", relay_mappings::KEY_ATTRIBUTE).await;
    contract(DynamoDbMappings::new(
        aws_sdk_dynamodb::Client::new(&config),
        table,
    ))
    .await;
}
