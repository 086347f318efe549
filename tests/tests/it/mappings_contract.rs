//! The mapping stores (DynamoDB on moto, SQLite, memory) keep one contract: one creator per
//! object, later events update the mapped id, a create attempt whose outcome is unknown is
//! handed to the next creator until the id is stored; the schema generation only goes up, and
//! concurrent bumps all count; a tombstone is kept until its retention ends and is no mapping.

use std::time::Duration;

use integration_tests::moto;
use relay_crm::{CrmId, CrmObject};
use relay_embedded::LocalDb;
use relay_mappings::{
    DynamoDbMappings, EXPIRES_ATTRIBUTE, IdMappings, MappingError, MemoryMappings, Reservation,
    SchemaGenerations, SqliteMappings, Tombstones,
};

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

    // Tombstones: kept for their retention (inclusive), per object type, never a mapping, and
    // burying again extends them.
    let day = Duration::from_secs(86_400);
    assert!(!store.is_buried(note, "n1", T0).await.expect("read"));
    store.bury(note, "n1", T0, day).await.expect("bury");
    assert!(
        store
            .is_buried(note, "n1", T0 + 86_400)
            .await
            .expect("read")
    );
    assert!(
        !store
            .is_buried(note, "n1", T0 + 86_401)
            .await
            .expect("read")
    );
    assert!(
        !store
            .is_buried(CrmObject::Tasks, "n1", T0)
            .await
            .expect("read")
    );
    assert_eq!(store.get(note, "n1").await.expect("get"), None);
    assert_eq!(reserve(&store, "n1", T0 + 3).await, Reservation::Reserved);
    store
        .bury(note, "n1", T0 + 86_400, day)
        .await
        .expect("bury");
    assert!(
        store
            .is_buried(note, "n1", T0 + 86_401)
            .await
            .expect("read")
    );
    attempt_contract(&store).await;
    batch_contract(&store).await;
}

/// A batch's mappings and tombstone checks at once read as the single calls do.
async fn batch_contract(store: &impl IdMappings) {
    let contacts = CrmObject::Contacts;
    let reserve_contact = |id: &'static str| store.reserve(contacts, id, T0, LEASE);
    assert_eq!(
        reserve_contact("r2").await.expect("reserve"),
        Reservation::Reserved
    );
    let ids: Vec<(String, CrmId)> = (1..=3)
        .map(|i| (format!("r{i}"), CrmId(format!("{}", 900 + i))))
        .collect();
    store.put_many(contacts, &ids).await.expect("put many");
    for (attio_id, crm_id) in &ids {
        assert_eq!(
            store.get(contacts, attio_id).await.expect("get"),
            Some(crm_id.clone())
        );
    }
    // The reserved one is mapped now, as after `put`; forgotten, it can be reserved again.
    assert_eq!(
        reserve_contact("r2").await.expect("reserve"),
        Reservation::Mapped(CrmId("902".into()))
    );
    store.remove(contacts, "r2").await.expect("remove");
    assert_eq!(
        reserve_contact("r2").await.expect("reserve"),
        Reservation::Reserved
    );

    let day = Duration::from_secs(86_400);
    store.bury(contacts, "r1", T0, day).await.expect("bury");
    store
        .bury(contacts, "r3", T0 - 2 * 86_400, day)
        .await
        .expect("bury"); // expired
    store
        .bury(CrmObject::Companies, "r2", T0, day)
        .await
        .expect("bury"); // other object
    let asked: Vec<String> = ["r1", "r2", "r3", "r4"].map(String::from).to_vec();
    let buried = store
        .buried_among(contacts, &asked, T0 + 10)
        .await
        .expect("read");
    assert_eq!(buried, ["r1".to_owned()].into_iter().collect());
    assert!(
        store
            .buried_among(contacts, &[], T0)
            .await
            .expect("none")
            .is_empty()
    );
}

/// A creator records its attempt before sending the create; until the id is stored, whoever
/// takes the reservation next is told when, and no attempt is recorded without a reservation.
async fn attempt_contract(store: &impl IdMappings) {
    let note = CrmObject::Notes;
    let lost = |r: Result<(), MappingError>| matches!(r, Err(MappingError::ReservationLost { .. }));
    assert!(
        lost(store.record_create_attempt(note, "n3", T0).await),
        "never reserved"
    );
    assert_eq!(reserve(store, "n3", T0).await, Reservation::Reserved);
    store
        .record_create_attempt(note, "n3", T0 + 5)
        .await
        .expect("attempt");
    assert_eq!(reserve(store, "n3", T0 + 6).await, Reservation::Busy);
    let unresolved = Reservation::Unresolved {
        attempted_at: T0 + 5,
    };
    assert_eq!(reserve(store, "n3", T0 + 31).await, unresolved);
    assert_eq!(
        reserve(store, "n3", T0 + 62).await,
        unresolved,
        "kept until put"
    );
    assert!(
        lost(store.record_create_attempt(note, "n3", T0 + 200).await),
        "the reservation lapsed"
    );
    store
        .record_create_attempt(note, "n3", T0 + 70)
        .await
        .expect("a second attempt under the new reservation");
    assert_eq!(
        reserve(store, "n3", T0 + 100).await,
        Reservation::Unresolved {
            attempted_at: T0 + 70
        }
    );
    let id = CrmId("hs-3".into());
    store.put(note, "n3", &id).await.expect("put");
    assert_eq!(
        reserve(store, "n3", T0 + 300).await,
        Reservation::Mapped(id)
    );
    assert!(
        lost(store.record_create_attempt(note, "n3", T0 + 300).await),
        "mapped"
    );
    store.remove(note, "n3").await.expect("remove");
    assert_eq!(
        reserve(store, "n3", T0 + 301).await,
        Reservation::Reserved,
        "forgotten"
    );
}

#[tokio::test]
async fn memory_mappings_keep_the_contract() {
    contract(MemoryMappings::new()).await;
}

/// Two handles on one store, as two consumer containers have.
async fn generation_contract<S: SchemaGenerations + IdMappings>(a: S, b: S) {
    assert_eq!(
        a.schema_generation().await.expect("read"),
        0,
        "never bumped"
    );
    assert_eq!(a.bump_schema_generation().await.expect("bump"), 1);
    assert_eq!(
        b.schema_generation().await.expect("read"),
        1,
        "seen by the other"
    );
    let bumps = futures::future::join_all((0..8).map(|i| {
        let store = if i % 2 == 0 { &a } else { &b };
        store.bump_schema_generation()
    }))
    .await;
    let mut seen: Vec<u64> = bumps.into_iter().map(|b| b.expect("bump")).collect();
    seen.sort_unstable();
    assert_eq!(seen, (2..=9).collect::<Vec<_>>(), "every bump counted once");
    assert_eq!(b.schema_generation().await.expect("read"), 9);
    // The counter's item is no mapping.
    for object in [CrmObject::Contacts, CrmObject::Notes] {
        assert_eq!(a.get(object, "schema-generation").await.expect("get"), None);
    }
}

#[tokio::test]
async fn sqlite_mappings_keep_the_contract() {
    contract(SqliteMappings::new(LocalDb::in_memory().expect("sqlite"))).await;
    let db = LocalDb::in_memory().expect("sqlite");
    generation_contract(SqliteMappings::new(db.clone()), SqliteMappings::new(db)).await;
}

#[tokio::test]
async fn dynamodb_schema_generation_is_an_atomic_counter() {
    let config = moto::sdk_config().await;
    let table = moto::fresh_table_keyed(&config, "mappings", relay_mappings::KEY_ATTRIBUTE).await;
    let store = |c| DynamoDbMappings::new(aws_sdk_dynamodb::Client::new(c), table.clone());
    generation_contract(store(&config), store(&config)).await;
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

/// The tombstone item as the table's TTL needs it: its own key beside the mapping's, and
/// `expires_at` a number of epoch seconds (DynamoDB's TTL attribute type).
#[tokio::test]
async fn a_dynamodb_tombstone_is_one_item_with_the_ttl_attribute() {
    let config = moto::sdk_config().await;
    let table = moto::fresh_table_keyed(&config, "mappings", relay_mappings::KEY_ATTRIBUTE).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let store = DynamoDbMappings::new(client.clone(), table.clone());
    let retention = relay_mappings::TOMBSTONE_RETENTION;
    store
        .bury(CrmObject::Contacts, "r1", T0, retention)
        .await
        .expect("bury");
    let key = relay_mappings::tombstone_key(CrmObject::Contacts, "r1");
    assert_eq!(key, "contacts#r1#deleted");
    let item = client
        .get_item()
        .table_name(&table)
        .key(
            relay_mappings::KEY_ATTRIBUTE,
            aws_sdk_dynamodb::types::AttributeValue::S(key),
        )
        .send()
        .await
        .expect("get item")
        .item
        .expect("the tombstone item");
    let expires = item[EXPIRES_ATTRIBUTE].as_n().expect("a number");
    let expected = T0 + i64::try_from(retention.as_secs()).expect("secs");
    assert_eq!(expires, &expected.to_string());
    assert!(
        retention >= Duration::from_secs(21 * 86_400),
        "outlives every redelivery"
    );
    assert!(
        store
            .is_buried(CrmObject::Contacts, "r1", expected)
            .await
            .expect("read")
    );
    assert!(
        !store
            .is_buried(CrmObject::Contacts, "r1", expected + 1)
            .await
            .expect("read")
    );
}
