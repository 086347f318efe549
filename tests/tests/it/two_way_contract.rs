//! The two-way stores keep one contract whatever holds them (DynamoDB on moto, SQLite; the
//! memory adapters join with one line each: `ledger_contract(MemoryX::new()).await`).
//!
//! * The sync ledger: absent until recorded; recording a field replaces that field only, so
//!   two writers of different fields of one record (the forward and the reverse consumer)
//!   never lose each other's entries, even on the record's first write; per object type;
//!   property names are kept as HubSpot spells them; reads span any number of records.
//! * Conflicts: recorded once per id (a redelivery neither duplicates nor reopens one),
//!   listed by status, each page newest first, every conflict on exactly one page; resolving
//!   replaces the resolution, and an unknown id is refused, never created.
//! * Record locks: one holder at a time per record (per object type); the holder may take it
//!   again; a lapsed lock is taken over; only the holder gives it back, and giving back a lock
//!   taken over since leaves it to its new holder.

use std::collections::BTreeSet;

use integration_tests::moto;
use relay_crm::CrmObject;
use relay_embedded::LocalDb;
use relay_mappings::{
    CONFLICT_KEY_ATTRIBUTE, Conflict, ConflictFilter, ConflictStore, ConflictValue,
    DynamoDbConflicts, DynamoDbMappings, LEDGER_ATTRIBUTE, Ledger, MappingError, MemoryTwoWay,
    RecordLocks, Resolution, Side, SqliteConflicts, SqliteMappings, SyncDirection, SyncLedger,
    Synced, fingerprint,
};

const T0: i64 = 1_763_000_000_000;

fn synced(value: &str, at_ms: i64, direction: SyncDirection) -> Synced {
    Synced {
        fingerprint: fingerprint(Some(value)),
        at_ms,
        direction,
        attio_fingerprint: None,
    }
}

fn ledger(entries: &[(&str, Synced)]) -> Ledger {
    entries
        .iter()
        .map(|(property, s)| ((*property).to_owned(), s.clone()))
        .collect()
}

fn ids(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

async fn ledger_contract(store: impl SyncLedger) {
    let contacts = CrmObject::Contacts;
    let (a2h, h2a) = (SyncDirection::AttioToHubspot, SyncDirection::HubspotToAttio);
    let store = &store;
    let read = |names: &[&str]| {
        let ids = ids(names);
        async move { store.ledgers(contacts, &ids).await }
    };
    assert!(
        read(&["r1", "r2"]).await.expect("read").is_empty(),
        "nothing synced yet"
    );

    // A value Attio holds in another form keeps both fingerprints.
    let mobile = Synced {
        attio_fingerprint: Some(fingerprint(Some("+14155550100"))),
        ..synced("(415) 555-0100", T0, h2a)
    };
    let first = ledger(&[
        ("email", synced("ada@example.com", T0, a2h)),
        ("firstname", synced("Ada", T0, a2h)),
        ("mobilephone", mobile.clone()),
    ]);
    store.record(contacts, "r1", &first).await.expect("record");
    let got = read(&["r1", "r2"]).await.expect("read");
    assert_eq!(got.get("r1"), Some(&first));
    assert!(!got.contains_key("r2"), "{got:?}");

    // Another field: added beside the others. The same field again: replaced, alone.
    store
        .record(
            contacts,
            "r1",
            &ledger(&[("phone", synced("+44", T0 + 1, h2a))]),
        )
        .await
        .expect("record");
    let email = synced("lovelace@example.com", T0 + 2, h2a);
    store
        .record(contacts, "r1", &ledger(&[("email", email.clone())]))
        .await
        .expect("record");
    let r1 = read(&["r1"]).await.expect("read").remove("r1").expect("r1");
    assert_eq!(
        r1,
        ledger(&[
            ("email", email),
            ("firstname", synced("Ada", T0, a2h)),
            ("mobilephone", mobile),
            ("phone", synced("+44", T0 + 1, h2a)),
        ])
    );
    // Nothing recorded: nothing changes, and no ledger appears for a record without one.
    store
        .record(contacts, "r2", &Ledger::new())
        .await
        .expect("record nothing");
    assert!(!read(&["r2"]).await.expect("read").contains_key("r2"));
    // Per object type.
    let companies = store.ledgers(CrmObject::Companies, &ids(&["r1"])).await;
    assert!(companies.expect("read").is_empty());
    // The same id twice in one read is one ledger (DynamoDB refuses duplicate keys).
    assert_eq!(read(&["r1", "r1"]).await.expect("read").len(), 1);

    // HubSpot property names as HubSpot spells them, including characters an expression
    // cannot (a `.` would be a nested path, `#`/`:` are expression syntax).
    let odd = ledger(&[
        ("hs.custom-field name", synced("x", T0, a2h)),
        ("#p0", synced("y", T0, a2h)),
        (":v0", synced("", T0, h2a)),
    ]);
    store.record(contacts, "odd", &odd).await.expect("record");
    assert_eq!(read(&["odd"]).await.expect("read").get("odd"), Some(&odd));

    // Two writers of different fields on a record's first write (the forward and the reverse
    // consumer at once): every field is kept.
    let fields: Vec<String> = (0..8).map(|i| format!("field_{i}")).collect();
    let writes = fields.iter().map(|f| {
        let entry = ledger(&[(f.as_str(), synced(f, T0, a2h))]);
        async move { store.record(contacts, "raced", &entry).await }
    });
    for outcome in futures::future::join_all(writes).await {
        outcome.expect("concurrent record");
    }
    let raced = read(&["raced"])
        .await
        .expect("read")
        .remove("raced")
        .expect("raced");
    let kept: Vec<&String> = raced.keys().collect();
    assert_eq!(
        kept,
        fields.iter().collect::<Vec<_>>(),
        "a concurrent field was lost"
    );

    // More records than one BatchGetItem takes (100), some never synced.
    let many: Vec<String> = (0..230).map(|i| format!("bulk{i:03}")).collect();
    for id in many.iter().step_by(2) {
        let entry = ledger(&[("email", synced(id, T0, a2h))]);
        store
            .record(CrmObject::Companies, id, &entry)
            .await
            .expect("record");
    }
    let got = store
        .ledgers(CrmObject::Companies, &many)
        .await
        .expect("read");
    assert_eq!(got.len(), 115, "every synced record, none other");
    for (i, id) in many.iter().enumerate() {
        let expected = (i % 2 == 0).then(|| ledger(&[("email", synced(id, T0, a2h))]));
        assert_eq!(got.get(id), expected.as_ref(), "{id}");
    }
}

fn conflict(record: &str, property: &str, detected_at_ms: i64) -> Conflict {
    let (attio_at, hubspot_at) = (detected_at_ms - 2_000, detected_at_ms - 1_000);
    Conflict {
        id: Conflict::derive_id(CrmObject::Contacts, record, property, attio_at, hubspot_at),
        object: CrmObject::Contacts,
        attio_record_id: record.to_owned(),
        crm_id: format!("hs-{record}"),
        property: property.to_owned(),
        attribute: format!("attio_{property}"),
        attio: ConflictValue {
            value: Some(format!("attio {record}")),
            changed_at_ms: attio_at,
        },
        hubspot: ConflictValue {
            value: Some(format!("hubspot {record}")),
            changed_at_ms: hubspot_at,
        },
        winner: Side::Hubspot,
        detected_at_ms,
        resolution: None,
    }
}

/// Every conflict matching `filter`, page by page (`limit` each): asserts each page is at
/// most `limit` long and newest first; returns the pages.
async fn pages(
    store: &impl ConflictStore,
    filter: ConflictFilter,
    limit: usize,
) -> Vec<Vec<Conflict>> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list(filter, limit, after.as_deref())
            .await
            .expect("list");
        assert!(
            page.conflicts.len() <= limit,
            "{} > {limit}",
            page.conflicts.len()
        );
        let times: Vec<i64> = page.conflicts.iter().map(|c| c.detected_at_ms).collect();
        assert!(
            times.windows(2).all(|w| w[0] >= w[1]),
            "page not newest first: {times:?}"
        );
        pages.push(page.conflicts);
        match page.next {
            Some(next) => after = Some(next),
            None => return pages,
        }
        assert!(pages.len() < 100, "the listing does not end");
    }
}

fn listed_ids(pages: &[Vec<Conflict>]) -> Vec<String> {
    pages.iter().flatten().map(|c| c.id.clone()).collect()
}

async fn conflict_contract(store: impl ConflictStore) {
    let page = store
        .list(ConflictFilter::Open, 10, None)
        .await
        .expect("list");
    assert!(page.conflicts.is_empty() && page.next.is_none(), "{page:?}");
    assert_eq!(store.get("nope").await.expect("get"), None);

    let c1 = conflict("r1", "email", T0);
    let c2 = conflict("r2", "email", T0 + 10_000);
    let mut c3 = conflict("r3", "phone", T0 + 5_000);
    c3.attio.value = None; // emptied in Attio
    for c in [&c1, &c2, &c3] {
        store.record(c).await.expect("record");
    }
    // Recorded again (a redelivered message), even with other details: the first is kept.
    let mut again = c1.clone();
    again.winner = Side::Attio;
    again.detected_at_ms = T0 + 99_000;
    store.record(&again).await.expect("record again");
    assert_eq!(store.get(&c1.id).await.expect("get"), Some(c1.clone()));
    assert_eq!(
        store.get(&c3.id).await.expect("get"),
        Some(c3.clone()),
        "None survives"
    );

    let open = store
        .list(ConflictFilter::Open, 10, None)
        .await
        .expect("list");
    assert_eq!(open.conflicts, vec![c2.clone(), c3.clone(), c1.clone()]);
    assert_eq!(open.next, None);

    // Resolve c3: it leaves the open list; a redelivery does not reopen it; again replaces.
    let kept_hubspot = Resolution {
        kept: Side::Hubspot,
        at_ms: T0 + 20_000,
    };
    store.resolve(&c3.id, &kept_hubspot).await.expect("resolve");
    store.record(&c3).await.expect("redelivered");
    let resolved = store.get(&c3.id).await.expect("get").expect("c3");
    assert_eq!(resolved.resolution.as_ref(), Some(&kept_hubspot));
    assert_eq!(
        Conflict {
            resolution: None,
            ..resolved
        },
        c3,
        "nothing else changed"
    );
    let open = store
        .list(ConflictFilter::Open, 10, None)
        .await
        .expect("list");
    assert_eq!(
        listed_ids(&[open.conflicts]),
        [c2.id.clone(), c1.id.clone()]
    );
    let kept_attio = Resolution {
        kept: Side::Attio,
        at_ms: T0 + 30_000,
    };
    store
        .resolve(&c3.id, &kept_attio)
        .await
        .expect("resolve again");
    let done = store
        .list(ConflictFilter::Resolved, 10, None)
        .await
        .expect("list");
    assert_eq!(done.conflicts.len(), 1);
    assert_eq!(done.conflicts[0].resolution.as_ref(), Some(&kept_attio));
    assert_eq!(
        pages(&store, ConflictFilter::All, 10).await.concat().len(),
        3
    );

    // An unknown id is refused (a permanent error) and not created.
    let unknown = store.resolve("0123456789ab", &kept_attio).await;
    assert!(
        matches!(&unknown, Err(e @ MappingError::UnknownConflict { .. }) if e.is_permanent()),
        "{unknown:?}"
    );
    assert_eq!(store.get("0123456789ab").await.expect("get"), None);

    // Paging: every conflict on exactly one page, whatever the page size.
    let mut everything: BTreeSet<String> = [&c1, &c2, &c3].map(|c| c.id.clone()).into();
    for i in 0..9 {
        let c = conflict(&format!("p{i}"), "email", T0 + 1_000 * i);
        store.record(&c).await.expect("record");
        everything.insert(c.id);
    }
    for limit in [1, 4, 50] {
        let listed = listed_ids(&pages(&store, ConflictFilter::All, limit).await);
        assert_eq!(listed.len(), everything.len(), "limit {limit}: {listed:?}");
        assert_eq!(
            listed.into_iter().collect::<BTreeSet<_>>(),
            everything,
            "limit {limit}"
        );
        let open = listed_ids(&pages(&store, ConflictFilter::Open, limit).await);
        assert_eq!(open.len(), everything.len() - 1, "limit {limit}");
        assert!(!open.contains(&c3.id), "resolved listed as open");
    }
}

async fn lock_contract(store: impl RecordLocks) {
    use std::time::Duration;
    const NOW: i64 = 1_763_000_000;
    let lease = Duration::from_secs(60);
    let c = CrmObject::Contacts;
    assert!(
        store
            .lock(c, "r1", "x", NOW, lease)
            .await
            .expect("lock store")
    );
    assert!(
        !store
            .lock(c, "r1", "y", NOW + 1, lease)
            .await
            .expect("lock store"),
        "held by x"
    );
    assert!(
        store
            .lock(c, "r1", "x", NOW + 2, lease)
            .await
            .expect("lock store"),
        "x again"
    );
    assert!(
        store
            .lock(CrmObject::Companies, "r1", "y", NOW, lease)
            .await
            .expect("lock store")
    );
    assert!(
        store
            .lock(c, "r2", "y", NOW, lease)
            .await
            .expect("lock store"),
        "per record"
    );
    // Only the holder gives it back.
    store.unlock(c, "r1", "y").await.expect("lock store");
    assert!(
        !store
            .lock(c, "r1", "y", NOW + 3, lease)
            .await
            .expect("lock store")
    );
    store.unlock(c, "r1", "x").await.expect("lock store");
    assert!(
        store
            .lock(c, "r1", "y", NOW + 4, lease)
            .await
            .expect("lock store"),
        "given back"
    );
    // Lapsed: taken over; the old holder's unlock leaves the new holder's lock.
    assert!(
        store
            .lock(c, "r1", "z", NOW + 4 + 61, lease)
            .await
            .expect("lock store")
    );
    store.unlock(c, "r1", "y").await.expect("lock store");
    assert!(
        !store
            .lock(c, "r1", "x", NOW + 4 + 62, lease)
            .await
            .expect("lock store")
    );
}

#[tokio::test]
async fn memory_record_locks_keep_the_contract() {
    lock_contract(MemoryTwoWay::new()).await;
}

#[tokio::test]
async fn sqlite_two_way_stores_keep_the_contract() {
    let db = LocalDb::in_memory().expect("sqlite");
    lock_contract(SqliteMappings::new(db.clone())).await;
    ledger_contract(SqliteMappings::new(db.clone())).await;
    conflict_contract(SqliteConflicts::new(db)).await;
}

#[tokio::test]
async fn memory_two_way_stores_keep_the_contract() {
    ledger_contract(MemoryTwoWay::new()).await;
    conflict_contract(MemoryTwoWay::new()).await;
}

/// SQLite orders across pages too (DynamoDB's scan only within one): the pages of a listing,
/// joined, are newest first.
#[tokio::test]
async fn sqlite_conflict_pages_follow_each_other_in_time() {
    let store = SqliteConflicts::new(LocalDb::in_memory().expect("sqlite"));
    for i in [3, 9, 1, 7, 5, 2, 8] {
        store
            .record(&conflict(&format!("r{i}"), "email", T0 + i))
            .await
            .expect("record");
    }
    // Two conflicts detected in the same millisecond are both listed, each once.
    store
        .record(&conflict("twin", "email", T0 + 5))
        .await
        .expect("record");
    let joined = pages(&store, ConflictFilter::Open, 3).await.concat();
    let times: Vec<i64> = joined.iter().map(|c| c.detected_at_ms - T0).collect();
    assert_eq!(times, [9, 8, 7, 5, 5, 3, 2, 1]);
}

#[tokio::test]
async fn dynamodb_two_way_stores_keep_the_contract() {
    let config = moto::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let mappings =
        moto::fresh_table_keyed(&config, "mappings", relay_mappings::KEY_ATTRIBUTE).await;
    lock_contract(DynamoDbMappings::new(client.clone(), mappings.clone())).await;
    ledger_contract(DynamoDbMappings::new(client.clone(), mappings)).await;
    let conflicts = moto::fresh_table_keyed(&config, "conflicts", CONFLICT_KEY_ATTRIBUTE).await;
    conflict_contract(DynamoDbConflicts::new(client, conflicts)).await;
}

/// The ledger as the mappings table holds it: one item per record beside the mapping, one map
/// attribute with an entry per property (what `record`'s nested SET relies on).
#[tokio::test]
async fn a_dynamodb_ledger_is_one_item_with_one_map_per_record() {
    let config = moto::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = moto::fresh_table_keyed(&config, "mappings", relay_mappings::KEY_ATTRIBUTE).await;
    let store = DynamoDbMappings::new(client.clone(), table.clone());
    let entry = synced("Ada", T0, SyncDirection::HubspotToAttio);
    for property in ["firstname", "last.name"] {
        let one = ledger(&[(property, entry.clone())]);
        store
            .record(CrmObject::Contacts, "r1", &one)
            .await
            .expect("record");
    }
    let key = relay_mappings::ledger_key(CrmObject::Contacts, "r1");
    assert_eq!(key, "contacts#r1#synced");
    let items = client
        .scan()
        .table_name(&table)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    assert_eq!(items.len(), 1, "{items:?}");
    let map = items[0][LEDGER_ATTRIBUTE].as_m().expect("a map");
    let mut properties: Vec<&String> = map.keys().collect();
    properties.sort();
    assert_eq!(
        properties,
        ["firstname", "last.name"],
        "a dotted name is one key, not a path"
    );
    let firstname = map["firstname"].as_m().expect("an entry");
    assert_eq!(firstname["fp"].as_s().ok(), Some(&entry.fingerprint));
    assert_eq!(firstname["at"].as_n().ok(), Some(&T0.to_string()));
    assert_eq!(
        firstname["dir"].as_s().map(String::as_str),
        Ok("hubspot_to_attio")
    );
}
