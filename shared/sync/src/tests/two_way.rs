//! Two-way sync over the memory adapters: HubSpot's changes reach Attio, nothing bounces back,
//! simultaneous changes leave one winner and one conflict, and fields that do not flow back are
//! left alone. Each side's webhook events are the ones its memory adapter says the real one
//! would send, the relay's own writes included, so echoes are fed back as they would be.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use relay_attio::{AttioValues, AttioWriter, MemoryAttio};
use relay_crm::{CrmId, CrmObject, ID_PROPERTY, MemoryCrm, OutboxEntry};
use relay_mappings::{IdMappings, MemoryMappings, MemoryTwoWay, Side};
use serde_json::{Value, json};

use super::{ADA, PEOPLE, inbound, person, record_event};
use crate::two_way::{HubspotHandler, HubspotMessage, TwoWaySettings};
use crate::{BatchHandler, Disposition, FieldMapping, RecordsHandler, SyncContext};

pub(super) type Ctx = SyncContext<MemoryCrm, MemoryMappings, MemoryAttio>;

pub(super) const APP_ID: &str = "4242";
pub(super) const TOKEN: &str = "relay-token";
pub(super) const T0: i64 = 1_800_000_000_000;

pub(super) const MAPPING: &str = r#"
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

pub(super) struct World {
    pub(super) ctx: Arc<Ctx>,
    pub(super) crm: MemoryCrm,
    pub(super) stores: MemoryTwoWay,
    pub(super) now: Arc<AtomicI64>,
    messages: usize,
    /// Attio writes the test made as a person would (through the same writer).
    user_edits: std::sync::atomic::AtomicUsize,
}

pub(super) fn world() -> World {
    world_with(MAPPING)
}

pub(super) fn world_with(mapping: &str) -> World {
    world_deleting(mapping, crate::two_way::HubspotDeletions::Ignore)
}

/// [`world_with`] with `HUBSPOT_DELETIONS` as given.
pub(super) fn world_deleting(mapping: &str, deletions: crate::two_way::HubspotDeletions) -> World {
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
        deletions,
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
    pub(super) fn tick(&self, secs: i64) {
        self.now.fetch_add(secs * 1000, Ordering::SeqCst);
    }

    pub(super) fn id(&mut self) -> String {
        self.messages += 1;
        format!("m{}", self.messages)
    }

    /// Runs the records consumer on Attio events; every message must end done.
    pub(super) async fn forward(&mut self, events: Vec<Value>) {
        let outcomes = self.forward_outcomes(events).await;
        assert!(
            outcomes.iter().all(|o| o.disposition == Disposition::Done),
            "{outcomes:?}"
        );
    }

    /// Runs the records consumer on Attio events; their outcomes.
    pub(super) async fn forward_outcomes(
        &mut self,
        events: Vec<Value>,
    ) -> Vec<crate::MessageOutcome> {
        let batch: Vec<_> = events.into_iter().map(|e| inbound(&self.id(), e)).collect();
        let outcomes = RecordsHandler::new(Arc::clone(&self.ctx))
            .handle(&batch)
            .await;
        assert_eq!(outcomes.len(), batch.len());
        outcomes
    }

    /// Runs the hubspot consumer on HubSpot webhook events; their outcomes.
    pub(super) async fn reverse_outcomes(
        &mut self,
        events: Vec<Value>,
    ) -> Vec<crate::MessageOutcome> {
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

    pub(super) fn handler(&self) -> HubspotHandler<MemoryCrm, MemoryMappings, MemoryAttio> {
        HubspotHandler::new(Arc::clone(&self.ctx)).expect("two-way is on")
    }

    /// Runs the hubspot consumer on HubSpot webhook events; every message must end done.
    pub(super) async fn reverse(&mut self, events: Vec<Value>) {
        let outcomes = self.reverse_outcomes(events).await;
        assert!(
            outcomes.iter().all(|o| o.disposition == Disposition::Done),
            "{outcomes:?}"
        );
    }

    /// Delivers every pending webhook of both sides until none is left (each side's echo of
    /// the other's write included).
    pub(super) async fn settle(&mut self) {
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
    pub(super) async fn attio_user_edit(&self, values: Value) -> Vec<Value> {
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

    pub(super) fn contact(&self) -> (CrmId, relay_crm::Properties) {
        let contacts = self.crm.objects(CrmObject::Contacts);
        assert_eq!(contacts.len(), 1, "{contacts:?}");
        contacts.into_iter().next().expect("one")
    }

    pub(super) fn hubspot_user_edit(&self, property: &str, value: &str) {
        let (id, _) = self.contact();
        let props = [(property.to_owned(), value.to_owned())].into();
        self.crm.edit_by_user(CrmObject::Contacts, Some(&id), props);
    }

    pub(super) fn attio_first_name(&self) -> String {
        let record = self.ctx.attio.get_record_now(ADA);
        record.personal_name().expect("name").first_name.clone()
    }

    /// The relay's writes to HubSpot so far (upserts and updates).
    pub(super) fn hubspot_writes(&self) -> usize {
        let calls = self.crm.calls();
        calls
            .iter()
            .filter(|c| matches!(c, OutboxEntry::Upsert { .. } | OutboxEntry::Update { .. }))
            .count()
    }

    /// The relay's writes to Attio so far (the test's own edits left out).
    pub(super) fn attio_writes(&self) -> usize {
        self.ctx.attio.writes().len() - self.user_edits.load(Ordering::SeqCst)
    }

    /// Ada in Attio, synced to HubSpot, every echo delivered.
    pub(super) async fn synced_ada(&mut self) {
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

pub(super) trait Now {
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

/// The `hubspot` queue's consumer runs in the same runner as the Attio ones
/// ([`crate::QueueHandler`]): a body that is not a queued HubSpot event is refused with why,
/// and under a spent deadline only the first group starts; the other's messages are deferred,
/// untouched (nothing read, nothing written), and a later batch finishes them.
#[tokio::test(start_paused = true)]
async fn as_a_queue_handler_junk_is_refused_and_groups_wait_for_the_deadline() {
    use crate::{Budget, QueueHandler};

    let mut w = world();
    w.synced_ada().await;
    let handler = HubspotHandler::new(Arc::clone(&w.ctx)).expect("two-way is on");
    for junk in ["not json", r#"{"source":"attio","event":{}}"#] {
        let why = handler.parse_message("j", junk).unwrap_err();
        assert!(
            why.starts_with("message body is not a queued HubSpot event"),
            "{why}"
        );
    }

    // A merge (its own group) first, then Ada's first-name edit (a chunk of contacts).
    let (id, _) = w.contact();
    let merge = json!({"subscriptionType": "contact.merge", "objectId": id.0.parse::<u64>().unwrap(),
        "changeSource": "CRM_UI", "sourceId": "userId:7", "occurredAt": T0});
    w.hubspot_user_edit("firstname", "Augusta");
    let mut events = vec![merge];
    events.extend(w.crm.take_webhook_events());
    let body = |e: &Value| {
        json!({"source": "hubspot", "dedupe_key": "k", "received_at": 1, "event": e}).to_string()
    };
    let batch: Vec<HubspotMessage> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            handler
                .parse_message(&format!("h{i}"), &body(e))
                .expect("queued")
        })
        .collect();
    let spent = Budget::until(
        tokio::time::Instant::now(),
        std::time::Duration::from_secs(50),
    );
    let outcomes = handler.handle_messages(&batch, &spent).await;
    assert_eq!(outcomes.len(), batch.len());
    assert_eq!(
        outcomes[0].disposition,
        Disposition::Done,
        "the first group always starts"
    );
    assert!(
        outcomes[1..]
            .iter()
            .all(|o| o.disposition == Disposition::Deferred),
        "{outcomes:?}"
    );
    assert_eq!(
        w.attio_first_name(),
        "Ada",
        "the deferred edit was not started"
    );

    let outcomes = handler
        .handle_messages(&batch[1..], &Budget::unlimited())
        .await;
    assert!(
        outcomes.iter().all(|o| o.disposition == Disposition::Done),
        "{outcomes:?}"
    );
    assert_eq!(w.attio_first_name(), "Augusta");
}

/// Backfill and reconcile pages (`sync_page`) go through the ledger as the records consumer
/// does: a page read after a HubSpot edit the `hubspot` consumer has not applied yet does not
/// overwrite it; once Attio changes later, the page sends Attio's value and keeps the conflict.
#[tokio::test]
async fn a_page_never_overwrites_a_newer_hubspot_value_of_a_both_field() {
    let mut w = world();
    w.synced_ada().await;
    w.hubspot_user_edit("firstname", "Augusta");
    w.tick(1);

    let page = [w.ctx.attio.get_record_now(ADA)];
    let report = w.ctx.sync_page("people", &page).await.expect("page");
    assert_eq!((report.synced, report.failed.len()), (1, 0), "{report:?}");
    assert_eq!(
        w.contact().1["firstname"],
        "Augusta",
        "HubSpot's newer edit kept"
    );
    assert!(w.stores.conflicts().is_empty());

    // Attio changes after HubSpot did: both differ from the ledger, Attio's is the later.
    w.tick(5);
    w.attio_user_edit(json!({"name": [{"first_name": "Ann", "last_name": "Example", "full_name": "Ann Example"}]})).await;
    let page = [w.ctx.attio.get_record_now(ADA)];
    w.ctx.sync_page("people", &page).await.expect("page");
    assert_eq!(w.contact().1["firstname"], "Ann");
    let conflicts = w.stores.conflicts();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0].winner, Side::Attio);

    // The ledger recorded what was sent: the same page again sends no first name.
    let before = w.crm.calls().len();
    w.ctx.sync_page("people", &page).await.expect("page");
    let calls = w.crm.calls();
    let Some(OutboxEntry::Upsert { records, .. }) = calls.last() else {
        panic!("an upsert: {calls:?}");
    };
    assert!(calls.len() > before);
    assert!(
        !records[0].properties.contains_key("firstname"),
        "{records:?}"
    );
}
