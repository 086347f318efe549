//! Two-way sync over the memory adapters: HubSpot's changes reach Attio, nothing bounces back,
//! simultaneous changes leave one winner and one conflict, and fields that do not flow back are
//! left alone. Each side's webhook events are the ones its memory adapter says the real one
//! would send, the relay's own writes included, so echoes are fed back as they would be.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use relay_attio::{AttioValues, AttioWriter, MemoryAttio};
use relay_crm::{CrmId, CrmObject, ID_PROPERTY, MemoryCrm, OutboxEntry};
use relay_mappings::{IdMappings, MemoryMappings, MemoryTwoWay, Side, Tombstones};
use serde_json::{Value, json};

use super::{ADA, PEOPLE, inbound, person, record_event};
use crate::two_way::{HubspotHandler, HubspotMessage, TwoWaySettings};
use crate::{BatchHandler, Disposition, FieldMapping, RecordsHandler, SyncContext};

type Ctx = SyncContext<MemoryCrm, MemoryMappings, MemoryAttio>;

const APP_ID: &str = "4242";
const TOKEN: &str = "relay-token";
const T0: i64 = 1_800_000_000_000;

const MAPPING: &str = r#"
[objects.people]
crm_object = "contacts"
[objects.people.properties]
email = "email_addresses"
lastname = "name.last_name"
firstname = { attribute = "name.first_name", direction = "both" }
jobtitle = { attribute = "job_title", direction = "hubspot_to_attio" }
"#;

struct Clock(Arc<AtomicI64>);

impl relay_events::clock::Clock for Clock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst) / 1000
    }
}

struct World {
    ctx: Arc<Ctx>,
    crm: MemoryCrm,
    stores: MemoryTwoWay,
    now: Arc<AtomicI64>,
    messages: usize,
    /// Attio writes the test made as a person would (through the same writer).
    user_edits: std::sync::atomic::AtomicUsize,
}

fn world() -> World {
    world_with(MAPPING)
}

fn world_with(mapping: &str) -> World {
    let now = Arc::new(AtomicI64::new(T0));
    let ms = {
        let now = Arc::clone(&now);
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    let attio = MemoryAttio::new()
        .with_clock(ms.clone())
        .with_token_id(TOKEN);
    attio.add_object(PEOPLE, "people");
    let crm = MemoryCrm::new().with_clock(ms).with_app_id(APP_ID);
    let stores = MemoryTwoWay::new();
    let settings = TwoWaySettings {
        hubspot_app_id: Some(APP_ID.into()),
        attio_token_id: Some(TOKEN.into()),
    };
    let ctx = SyncContext::with_attio(
        attio,
        crm.shared(),
        MemoryMappings::new(),
        FieldMapping::from_toml(mapping).expect("mapping"),
    )
    .with_clock(Clock(Arc::clone(&now)))
    .with_two_way(stores.clone(), stores.clone(), crm.shared(), settings);
    World {
        ctx: Arc::new(ctx),
        crm,
        stores,
        now,
        messages: 0,
        user_edits: Default::default(),
    }
}

impl World {
    /// Moves both sides' clocks on by `secs`.
    fn tick(&self, secs: i64) {
        self.now.fetch_add(secs * 1000, Ordering::SeqCst);
    }

    fn id(&mut self) -> String {
        self.messages += 1;
        format!("m{}", self.messages)
    }

    /// Runs the records consumer on Attio events; every message must end done.
    async fn forward(&mut self, events: Vec<Value>) {
        let outcomes = self.forward_outcomes(events).await;
        assert!(
            outcomes.iter().all(|o| o.disposition == Disposition::Done),
            "{outcomes:?}"
        );
    }

    /// Runs the records consumer on Attio events; their outcomes.
    async fn forward_outcomes(&mut self, events: Vec<Value>) -> Vec<crate::MessageOutcome> {
        let batch: Vec<_> = events.into_iter().map(|e| inbound(&self.id(), e)).collect();
        let outcomes = RecordsHandler::new(Arc::clone(&self.ctx))
            .handle(&batch)
            .await;
        assert_eq!(outcomes.len(), batch.len());
        outcomes
    }

    /// Runs the hubspot consumer on HubSpot webhook events; their outcomes.
    async fn reverse_outcomes(&mut self, events: Vec<Value>) -> Vec<crate::MessageOutcome> {
        let batch: Vec<HubspotMessage> = events
            .into_iter()
            .map(|event| HubspotMessage {
                message_id: self.id(),
                body: json!({"source": "hubspot", "dedupe_key": "k", "received_at": 1, "event": event})
                    .to_string(),
            })
            .collect();
        let outcomes = self.handler().handle(&batch).await;
        assert_eq!(outcomes.len(), batch.len());
        outcomes
    }

    fn handler(&self) -> HubspotHandler<MemoryCrm, MemoryMappings, MemoryAttio> {
        HubspotHandler::new(Arc::clone(&self.ctx)).expect("two-way is on")
    }

    /// Runs the hubspot consumer on HubSpot webhook events; every message must end done.
    async fn reverse(&mut self, events: Vec<Value>) {
        let outcomes = self.reverse_outcomes(events).await;
        assert!(
            outcomes.iter().all(|o| o.disposition == Disposition::Done),
            "{outcomes:?}"
        );
    }

    /// Delivers every pending webhook of both sides until none is left (each side's echo of
    /// the other's write included).
    async fn settle(&mut self) {
        for _ in 0..10 {
            let attio = self.ctx.attio.take_webhook_events();
            let hubspot = self.crm.take_webhook_events();
            if attio.is_empty() && hubspot.is_empty() {
                return;
            }
            if !attio.is_empty() {
                self.forward(attio).await;
            }
            if !hubspot.is_empty() {
                self.reverse(hubspot).await;
            }
        }
        panic!("the two sides never settled: ping-pong");
    }

    /// A person edits Ada in Attio: the events carry a workspace member as actor.
    async fn attio_user_edit(&self, values: Value) -> Vec<Value> {
        let values: AttioValues = serde_json::from_value(values).expect("values");
        self.ctx
            .attio
            .update_record("people", ADA, &values)
            .await
            .expect("edit");
        self.user_edits.fetch_add(1, Ordering::SeqCst);
        let mut events = self.ctx.attio.take_webhook_events();
        for e in &mut events {
            e["actor"] = super::actor();
        }
        events
    }

    fn contact(&self) -> (CrmId, relay_crm::Properties) {
        let contacts = self.crm.objects(CrmObject::Contacts);
        assert_eq!(contacts.len(), 1, "{contacts:?}");
        contacts.into_iter().next().expect("one")
    }

    fn hubspot_user_edit(&self, property: &str, value: &str) {
        let (id, _) = self.contact();
        let props = [(property.to_owned(), value.to_owned())].into();
        self.crm.edit_by_user(CrmObject::Contacts, Some(&id), props);
    }

    fn attio_first_name(&self) -> String {
        let record = self.ctx.attio.get_record_now(ADA);
        record.personal_name().expect("name").first_name.clone()
    }

    /// The relay's writes to HubSpot so far (upserts and updates).
    fn hubspot_writes(&self) -> usize {
        let calls = self.crm.calls();
        calls
            .iter()
            .filter(|c| matches!(c, OutboxEntry::Upsert { .. } | OutboxEntry::Update { .. }))
            .count()
    }

    /// The relay's writes to Attio so far (the test's own edits left out).
    fn attio_writes(&self) -> usize {
        self.ctx.attio.writes().len() - self.user_edits.load(Ordering::SeqCst)
    }

    /// Ada in Attio, synced to HubSpot, every echo delivered.
    async fn synced_ada(&mut self) {
        self.ctx
            .attio
            .put_record("people", person(ADA, "ada@example.com", "Ada"));
        self.forward(vec![record_event("record.created", PEOPLE, ADA)])
            .await;
        self.settle().await;
        assert_eq!(self.contact().1["firstname"], "Ada");
        self.tick(60);
    }
}

trait Now {
    fn get_record_now(&self, id: &str) -> relay_attio::Record;
}

impl Now for MemoryAttio {
    fn get_record_now(&self, id: &str) -> relay_attio::Record {
        let read = relay_attio::AttioApi::get_record(self, "people", id);
        futures_lite_block(read).expect("record")
    }
}

/// The memory adapter answers at once: poll its future once.
fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("memory adapter pending"),
    }
}

#[tokio::test]
async fn the_relays_own_hubspot_events_are_dropped_unread() {
    let mut w = world();
    w.ctx
        .attio
        .put_record("people", person(ADA, "ada@example.com", "Ada"));
    w.forward(vec![record_event("record.created", PEOPLE, ADA)])
        .await;
    let echoes = w.crm.take_webhook_events();
    assert!(echoes.len() >= 3, "creation and properties: {echoes:?}");
    w.reverse(echoes).await;
    assert!(
        w.crm.batch_reads().is_empty(),
        "nothing read for the relay's own writes"
    );
    assert_eq!(w.attio_writes(), 0);
}

#[tokio::test]
async fn a_hubspot_change_to_a_both_field_reaches_attio_and_does_not_bounce_back() {
    let mut w = world();
    w.synced_ada().await;
    let hubspot_writes = w.hubspot_writes();

    w.hubspot_user_edit("firstname", "Augusta");
    let events = w.crm.take_webhook_events();
    w.reverse(events).await;
    assert_eq!(w.attio_first_name(), "Augusta");
    assert_eq!(
        w.ctx
            .attio
            .get_record_now(ADA)
            .personal_name()
            .unwrap()
            .full_name,
        "Augusta Example"
    );
    assert_eq!(w.attio_writes(), 1);

    // The Attio event the write causes: nothing goes back to HubSpot.
    let echo = w.ctx.attio.take_webhook_events();
    assert_eq!(echo.len(), 1, "{echo:?}");
    w.forward(echo).await;
    assert_eq!(
        w.hubspot_writes(),
        hubspot_writes,
        "zero HubSpot writes for the echo"
    );

    // Even an event by someone else re-reads Ada: the unchanged both-way field is not sent.
    w.forward(vec![record_event("record.updated", PEOPLE, ADA)])
        .await;
    let calls = w.crm.calls();
    let Some(OutboxEntry::Upsert { records, .. }) = calls.last() else {
        panic!("an upsert: {calls:?}");
    };
    assert!(
        !records[0].properties.contains_key("firstname"),
        "{records:?}"
    );
    assert_eq!(w.contact().1["firstname"], "Augusta");
}

async fn simultaneous(hubspot_later: bool) {
    let mut w = world();
    w.synced_ada().await;
    let (first, second) = if hubspot_later { (0, 5) } else { (5, 0) };
    // Attio's edit at T + first, HubSpot's at T + second.
    w.tick(first);
    let attio_events = w.attio_user_edit(json!({"name": [{"first_name": "Ann", "last_name": "Example", "full_name": "Ann Example"}]})).await;
    w.tick(second - first);
    if second > first {
        w.hubspot_user_edit("firstname", "Augusta");
    } else {
        // HubSpot's edit is the earlier: made before Attio's, by the clock.
        w.now.fetch_sub(5_000, Ordering::SeqCst);
        w.hubspot_user_edit("firstname", "Augusta");
        w.tick(5);
    }
    w.tick(1);
    w.forward(attio_events).await;
    w.settle().await;

    let winner = if hubspot_later { "Augusta" } else { "Ann" };
    assert_eq!(w.attio_first_name(), winner);
    assert_eq!(w.contact().1["firstname"], winner);
    let conflicts = w.stores.conflicts();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    let c = &conflicts[0];
    let side = if hubspot_later {
        Side::Hubspot
    } else {
        Side::Attio
    };
    assert_eq!(c.winner, side);
    assert_eq!(c.attio.value.as_deref(), Some("Ann"));
    assert_eq!(c.hubspot.value.as_deref(), Some("Augusta"));
    assert!(c.hubspot.changed_at_ms != c.attio.changed_at_ms);
}

#[tokio::test]
async fn simultaneous_changes_the_later_hubspot_one_wins_and_one_conflict_is_kept() {
    simultaneous(true).await;
}

#[tokio::test]
async fn simultaneous_changes_the_later_attio_one_wins_and_one_conflict_is_kept() {
    simultaneous(false).await;
}

#[tokio::test]
async fn an_attio_to_hubspot_field_changed_in_hubspot_is_left_alone_and_overwritten_next() {
    let mut w = world();
    w.synced_ada().await;
    w.hubspot_user_edit("lastname", "King");
    w.settle().await;
    assert_eq!(w.attio_writes(), 0, "lastname does not flow back");
    assert_eq!(
        w.ctx
            .attio
            .get_record_now(ADA)
            .personal_name()
            .unwrap()
            .last_name,
        "Example"
    );

    let events = w.attio_user_edit(json!({"name": [{"first_name": "Ada", "last_name": "Byron", "full_name": "Ada Byron"}]})).await;
    w.forward(events).await;
    w.settle().await;
    assert_eq!(w.contact().1["lastname"], "Byron");
}

#[tokio::test]
async fn a_hubspot_field_owned_by_hubspot_is_written_to_attio_and_never_sent() {
    let mut w = world();
    w.synced_ada().await;
    w.hubspot_user_edit("jobtitle", "Analyst");
    w.settle().await;
    assert_eq!(
        w.ctx
            .attio
            .get_record_now(ADA)
            .first_text("job_title")
            .as_deref(),
        Some("Analyst")
    );
    let events = w.attio_user_edit(json!({"job_title": "Countess"})).await;
    w.forward(events).await;
    assert_eq!(
        w.contact().1["jobtitle"],
        "Analyst",
        "Attio's edit is not sent"
    );
}

#[tokio::test]
async fn a_contact_created_in_hubspot_is_asserted_into_attio_and_mapped() {
    let mut w = world();
    let props = [
        ("email".to_owned(), "nia@example.com".to_owned()),
        ("firstname".to_owned(), "Nia".to_owned()),
    ];
    let id = w.crm.edit_by_user(CrmObject::Contacts, None, props.into());
    let events = w.crm.take_webhook_events();
    w.reverse(events.clone()).await;

    let held = &w.crm.objects(CrmObject::Contacts)[&id];
    let record_id = held
        .get(ID_PROPERTY)
        .cloned()
        .expect("attio_record_id written back");
    assert_eq!(
        w.ctx
            .mappings
            .get(CrmObject::Contacts, &record_id)
            .await
            .unwrap(),
        Some(id.clone())
    );
    let record = relay_attio::AttioApi::get_record(&w.ctx.attio, "people", &record_id)
        .await
        .unwrap();
    assert_eq!(
        record.emails("email_addresses").collect::<Vec<_>>(),
        ["nia@example.com"]
    );
    assert_eq!(record.personal_name().unwrap().first_name, "Nia");

    // Redelivered: matched again, no second person; then every echo settles with no write.
    w.reverse(events).await;
    let writes = (w.attio_writes(), w.hubspot_writes());
    w.settle().await;
    assert_eq!((w.attio_writes(), w.hubspot_writes()), writes);
    assert_eq!(w.hubspot_writes(), 1, "one update: the link");
    let people = relay_attio::AttioApi::get_records(&w.ctx.attio, "people", &[record_id])
        .await
        .unwrap();
    assert_eq!(people.len(), 1);
}

#[tokio::test]
async fn n_changes_on_each_side_settle_with_zero_echo_writes() {
    const N: usize = 5;
    let mut w = world();
    w.synced_ada().await;
    let (attio_before, hubspot_before) = (w.attio_writes(), w.hubspot_writes());
    for i in 0..N {
        w.hubspot_user_edit("firstname", &format!("H{i}"));
        w.settle().await;
        assert_eq!(w.attio_first_name(), format!("H{i}"));
        w.tick(10);
        let events = w
            .attio_user_edit(json!({"name": [{"first_name": format!("A{i}"), "last_name": "Example", "full_name": format!("A{i} Example")}]}))
            .await;
        w.forward(events).await;
        w.settle().await;
        assert_eq!(w.contact().1["firstname"], format!("A{i}"));
        w.tick(10);
    }
    // One write per real change, none for any echo: N Attio writes (HubSpot's changes, the
    // users' own edits are not the relay's) and N HubSpot writes.
    assert_eq!(w.attio_writes() - attio_before, N);
    assert_eq!(w.hubspot_writes() - hubspot_before, N);
    assert!(w.stores.conflicts().is_empty());
}

#[tokio::test]
async fn a_records_batch_reads_the_ledger_once() {
    let mut w = world();
    let ids = [ADA, super::GRACE, "6b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5e"];
    for (n, id) in ids.iter().enumerate() {
        w.ctx
            .attio
            .put_record("people", person(id, &format!("p{n}@example.com"), "P"));
    }
    let events: Vec<Value> = ids
        .iter()
        .map(|id| record_event("record.created", PEOPLE, id))
        .collect();
    w.forward(events).await;
    assert_eq!(w.stores.ledger_reads(), [3]);
    assert!(
        w.crm.batch_reads().is_empty(),
        "never synced: HubSpot holds nothing to compare"
    );
    let events: Vec<Value> = ids
        .iter()
        .map(|id| record_event("record.updated", PEOPLE, id))
        .collect();
    w.forward(events).await;
    assert_eq!(w.stores.ledger_reads(), [3, 3]);
}

fn all_retried(outcomes: &[crate::MessageOutcome]) -> bool {
    outcomes
        .iter()
        .all(|o| matches!(o.disposition, Disposition::Retry { .. }))
}

#[tokio::test]
async fn a_conflict_with_no_hubspot_history_is_retried_not_guessed() {
    let mut w = world();
    w.ctx
        .attio
        .put_record("people", person(ADA, "ada@example.com", "Ada"));
    // A contact whose firstname HubSpot gives no history for (seeded: no change recorded).
    let props = [
        ("email".to_owned(), "ada@example.com".to_owned()),
        ("firstname".to_owned(), "Augusta".to_owned()),
        (ID_PROPERTY.to_owned(), ADA.to_owned()),
    ];
    let id = w.crm.seed(CrmObject::Contacts, props.into());
    w.ctx
        .mappings
        .put(CrmObject::Contacts, ADA, &id)
        .await
        .unwrap();
    let agreed = relay_mappings::Synced {
        fingerprint: relay_mappings::fingerprint(Some("Ada")),
        at_ms: T0,
        direction: relay_mappings::SyncDirection::AttioToHubspot,
        attio_fingerprint: None,
    };
    let ledger = [("firstname".to_owned(), agreed)].into();
    relay_mappings::SyncLedger::record(&w.stores, CrmObject::Contacts, ADA, &ledger)
        .await
        .unwrap();
    w.tick(60);
    let events = w.attio_user_edit(json!({"name": [{"first_name": "Ann", "last_name": "Example", "full_name": "Ann Example"}]})).await;

    let forward = w.forward_outcomes(events).await;
    assert!(all_retried(&forward), "forward: {forward:?}");
    let change = json!({"eventId": 9, "subscriptionType": "contact.propertyChange", "objectId": id.0.parse::<u64>().unwrap(),
        "propertyName": "firstname", "propertyValue": "Augusta", "changeSource": "CRM_UI", "sourceId": "userId:1", "occurredAt": T0 + 1});
    let reverse = w.reverse_outcomes(vec![change]).await;
    assert!(all_retried(&reverse), "reverse: {reverse:?}");
    assert!(
        w.stores.conflicts().is_empty(),
        "no conflict decided on a guessed time"
    );
    assert_eq!(w.contact().1["firstname"], "Augusta");
    assert_eq!(w.attio_first_name(), "Ann");
}

#[tokio::test]
async fn a_linked_contact_whose_mapping_was_never_stored_gets_it_on_the_way_back() {
    let mut w = world();
    w.ctx
        .attio
        .put_record("people", person(ADA, "ada@example.com", "Ada"));
    // Linked in HubSpot (attio_record_id written), the mapping write lost.
    let props = [
        ("email".to_owned(), "ada@example.com".to_owned()),
        (ID_PROPERTY.to_owned(), ADA.to_owned()),
    ];
    let id = w.crm.seed(CrmObject::Contacts, props.into());
    w.hubspot_user_edit("firstname", "Augusta");
    let events = w.crm.take_webhook_events();
    w.reverse(events).await;
    assert_eq!(
        w.ctx.mappings.get(CrmObject::Contacts, ADA).await.unwrap(),
        Some(id)
    );
    assert_eq!(w.attio_first_name(), "Augusta");
}

#[tokio::test]
async fn a_hubspot_merge_re_points_the_mapping_to_the_new_object() {
    let mut w = world();
    w.synced_ada().await;
    let (old, _) = w.contact();
    // HubSpot merged Ada's contact with another; the result is a NEW object carrying her id.
    let props = [
        ("email".to_owned(), "ada@example.com".to_owned()),
        (ID_PROPERTY.to_owned(), ADA.to_owned()),
    ];
    let new = w.crm.seed(CrmObject::Contacts, props.into());
    let num = |id: &CrmId| id.0.parse::<u64>().unwrap();
    let merge = json!({"eventId": 99, "subscriptionType": "contact.merge", "objectId": num(&old),
        "primaryObjectId": num(&old), "mergedObjectIds": [555], "newObjectId": num(&new),
        "numberOfPropertiesMoved": 2, "changeSource": "CRM_UI", "sourceId": "userId:1", "occurredAt": T0});
    w.reverse(vec![merge]).await;
    assert_eq!(
        w.ctx.mappings.get(CrmObject::Contacts, ADA).await.unwrap(),
        Some(new)
    );
}

#[test]
fn the_hubspot_consumer_refuses_to_start_without_two_way() {
    let ctx = SyncContext::with_attio(
        MemoryAttio::new(),
        MemoryCrm::new(),
        MemoryMappings::new(),
        FieldMapping::from_toml(MAPPING).expect("mapping"),
    );
    assert!(HubspotHandler::new(Arc::new(ctx)).is_err());
    assert!(HubspotHandler::new(Arc::clone(&world().ctx)).is_ok());
}

#[tokio::test]
async fn a_record_locked_by_another_consumer_is_retried_on_both_ways() {
    use relay_mappings::RecordLocks;
    let mut w = world();
    w.synced_ada().await;
    let (attio_before, hubspot_before) = (w.attio_writes(), w.hubspot_writes());
    let now = T0 / 1000 + 120;
    let lease = std::time::Duration::from_secs(180);
    assert!(
        w.stores
            .lock(CrmObject::Contacts, ADA, "other", now, lease)
            .await
            .unwrap()
    );

    let events = w.attio_user_edit(json!({"name": [{"first_name": "Ann", "last_name": "Example", "full_name": "Ann Example"}]})).await;
    let forward = w.forward_outcomes(events.clone()).await;
    assert!(all_retried(&forward), "{forward:?}");
    w.hubspot_user_edit("jobtitle", "Analyst");
    let hubspot_events = w.crm.take_webhook_events();
    let reverse = w.reverse_outcomes(hubspot_events.clone()).await;
    assert!(all_retried(&reverse), "{reverse:?}");
    assert_eq!(
        (w.attio_writes(), w.hubspot_writes()),
        (attio_before, hubspot_before),
        "nothing written while another consumer holds the record"
    );

    // Given back: the retries go through, and each batch gives its own locks back.
    w.stores
        .unlock(CrmObject::Contacts, ADA, "other")
        .await
        .unwrap();
    w.forward(events).await;
    w.reverse(hubspot_events).await;
    w.settle().await;
    assert_eq!(w.contact().1["firstname"], "Ann");
    assert_eq!(
        w.ctx
            .attio
            .get_record_now(ADA)
            .first_text("job_title")
            .as_deref(),
        Some("Analyst")
    );
}

#[tokio::test]
async fn a_hubspot_edit_for_an_attio_record_not_readable_is_retried_until_its_merge_or_delete_settles()
 {
    let mut w = world();
    // Linked to an Attio record that reads not_found (merged away; record.merged not handled).
    let props = [
        ("email".to_owned(), "ada@example.com".to_owned()),
        (ID_PROPERTY.to_owned(), ADA.to_owned()),
    ];
    let id = w.crm.seed(CrmObject::Contacts, props.into());
    w.ctx
        .mappings
        .put(CrmObject::Contacts, ADA, &id)
        .await
        .unwrap();
    w.hubspot_user_edit("firstname", "Augusta");
    let events = w.crm.take_webhook_events();
    let outcomes = w.reverse_outcomes(events.clone()).await;
    assert!(all_retried(&outcomes), "{outcomes:?}");

    // Its record.deleted handled (buried): acknowledged, nothing written.
    w.ctx
        .mappings
        .bury(
            CrmObject::Contacts,
            ADA,
            T0 / 1000,
            relay_mappings::TOMBSTONE_RETENTION,
        )
        .await
        .unwrap();
    w.reverse(events).await;
    assert_eq!(w.attio_writes(), 0);
}

#[tokio::test]
async fn both_name_parts_changed_in_one_hubspot_save_are_written_together_whatever_the_batches() {
    let mapping = MAPPING.replace(
        r#"lastname = "name.last_name""#,
        r#"lastname = { attribute = "name.last_name", direction = "both" }"#,
    );
    let mut w = world_with(&mapping);
    w.synced_ada().await;
    let (id, _) = w.contact();
    let props = [
        ("firstname".to_owned(), "Augusta".to_owned()),
        ("lastname".to_owned(), "King".to_owned()),
    ];
    w.crm
        .edit_by_user(CrmObject::Contacts, Some(&id), props.into());
    let events = w.crm.take_webhook_events();
    let (first, last): (Vec<Value>, Vec<Value>) = events
        .into_iter()
        .partition(|e| e["propertyName"] == "firstname");
    assert_eq!((first.len(), last.len()), (1, 1));

    // The firstname event alone: the name is written with HubSpot's new last name too.
    w.reverse(first).await;
    let name = w
        .ctx
        .attio
        .get_record_now(ADA)
        .personal_name()
        .unwrap()
        .clone();
    assert_eq!(
        (name.first_name.as_str(), name.last_name.as_str()),
        ("Augusta", "King")
    );
    let ledger = w.stores.ledger(CrmObject::Contacts, ADA);
    assert!(ledger.contains_key("lastname"), "{ledger:?}");

    // The lastname event later: nothing left to write; nothing bounces back.
    let writes = (w.attio_writes(), w.hubspot_writes());
    w.reverse(last).await;
    w.settle().await;
    assert_eq!((w.attio_writes(), w.hubspot_writes()), writes);
    assert_eq!(w.contact().1["firstname"], "Augusta");
    assert_eq!(w.contact().1["lastname"], "King");
}

#[tokio::test]
async fn a_merge_in_attio_does_not_overwrite_a_newer_hubspot_value_of_a_both_field() {
    let mut w = world();
    w.synced_ada().await;
    w.hubspot_user_edit("firstname", "Augusta");
    let _ = w.crm.take_webhook_events(); // not handled yet
    let mut merged = record_event("record.merged", PEOPLE, ADA);
    merged["duplicate_object_id"] = json!(PEOPLE);
    merged["duplicate_record_id"] = json!(super::GRACE);
    w.forward(vec![merged]).await;
    assert_eq!(w.contact().1["firstname"], "Augusta");
}

#[tokio::test]
async fn without_two_way_stores_a_both_field_is_never_sent_and_the_context_says_so() {
    let crm = MemoryCrm::new();
    let attio = MemoryAttio::new();
    attio.add_object(PEOPLE, "people");
    attio.put_record("people", person(ADA, "ada@example.com", "Ada"));
    let ctx = Arc::new(SyncContext::with_attio(
        attio,
        crm.shared(),
        MemoryMappings::new(),
        FieldMapping::from_toml(MAPPING).expect("mapping"),
    ));
    assert!(ctx.needs_two_way());
    assert!(!world().ctx.needs_two_way());
    let outcomes = RecordsHandler::new(Arc::clone(&ctx))
        .handle(&[inbound("m", record_event("record.created", PEOPLE, ADA))])
        .await;
    assert_eq!(outcomes[0].disposition, Disposition::Done);
    let contacts = crm.objects(CrmObject::Contacts);
    let (_, held) = contacts.iter().next().expect("one contact");
    assert_eq!(held["email"], "ada@example.com");
    assert!(!held.contains_key("firstname"), "{held:?}");
}

#[tokio::test]
async fn adopting_a_contact_keeps_its_newer_both_values_and_records_the_conflict() {
    let mut w = world();
    // Nia made in HubSpot (a user), firstname set later than Attio's.
    let props = [
        ("email".to_owned(), "ada@example.com".to_owned()),
        ("firstname".to_owned(), "Augusta".to_owned()),
    ];
    w.tick(10_000_000);
    let id = w.crm.edit_by_user(CrmObject::Contacts, None, props.into());
    let _ = w.crm.take_webhook_events();
    w.ctx
        .attio
        .put_record("people", person(ADA, "ada@example.com", "Ada"));
    w.forward(vec![record_event("record.created", PEOPLE, ADA)])
        .await;
    let held = &w.crm.objects(CrmObject::Contacts)[&id];
    assert_eq!(held[ID_PROPERTY], ADA, "adopted");
    assert_eq!(held["firstname"], "Augusta", "HubSpot's later value kept");
    let conflicts = w.stores.conflicts();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0].winner, Side::Hubspot);
    assert!(
        !w.stores
            .ledger(CrmObject::Contacts, ADA)
            .contains_key("firstname"),
        "nothing agreed yet: the hubspot consumer brings Augusta to Attio"
    );
}

#[tokio::test]
async fn a_value_attio_stores_in_another_form_is_not_sent_back_over_hubspots() {
    let mapping = MAPPING.replace(
        r#"email = "email_addresses""#,
        r#"email = { attribute = "email_addresses", direction = "both" }"#,
    );
    let mut w = world_with(&mapping);
    w.synced_ada().await;
    let events = w
        .attio_user_edit(json!({"email_addresses": ["ada@example.com", "ada@work.example"]}))
        .await;
    w.forward(events).await;
    w.settle().await;
    w.tick(60);

    // Emptied in HubSpot: Attio drops its first email, so its second one becomes the first —
    // Attio's form of "no email" is now ada@work.example.
    w.hubspot_user_edit("email", "");
    w.settle().await;
    let record = w.ctx.attio.get_record_now(ADA);
    assert_eq!(
        record.emails("email_addresses").collect::<Vec<_>>(),
        ["ada@work.example"]
    );
    let hubspot_writes = w.hubspot_writes();
    // Any later Attio event re-reads Ada: the email is not pushed over HubSpot's empty one.
    w.forward(vec![record_event("record.updated", PEOPLE, ADA)])
        .await;
    w.settle().await;
    let held = w.contact().1;
    assert!(held.get("email").is_none_or(String::is_empty), "{held:?}");
    let calls = w.crm.calls();
    let sent_email = calls[calls.len() - (w.hubspot_writes() - hubspot_writes)..]
        .iter()
        .any(|c| matches!(c, OutboxEntry::Upsert { records, .. } if records.iter().any(|r| r.properties.contains_key("email"))));
    assert!(!sent_email, "{calls:?}");
}
