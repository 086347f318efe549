//! Two-way sync under the faults of `pipeline_chaos`, end to end on moto: both ingests, the
//! records consumer and the `hubspot` consumer driven the way Lambda drives them.
//!
//! * A mapping with `firstname`/`lastname` both ways, `jobtitle` HubSpot → Attio and `phone`
//!   Attio → HubSpot; 30 people synced forward first, so every record has a ledger.
//! * Then rounds of user edits on each side: in Attio (`edit_as_user`, delivered as the
//!   `record.updated` Attio sends, through the Attio ingest) and in HubSpot (`edit_contact`,
//!   delivered as its signed v3 webhook events through the HubSpot ingest). Per round some
//!   people are edited on one side only, some on both sides in the same field (conflicts, the
//!   side edited first chosen at random), some in different fields on each side, and some in
//!   `phone` in HubSpot (a field that does not flow back).
//! * Faults: 10% of the ingests' DynamoDB and SQS calls, 5% of ingest requests and consumer
//!   invocations killed at a random point, Attio (10%) and HubSpot (20%: it takes few, batched
//!   calls) answering with 429, 5xx, too late or (writes) applied with the answer lost.
//! * Echoes are delivered as each side would send them: a `record.updated` by the relay's API
//!   token for every relay write that changed an Attio record, and HubSpot's webhook events
//!   (`sourceId` = the relay's app id) for every relay write to a contact — so a ping-pong
//!   would show as writes nobody asked for, and as a run that never settles.
//!
//! Invariants, after every round: every field holds the value the scenario says on both sides
//! (both-way fields equal, a conflicted field at the later edit's value, `jobtitle` as HubSpot
//! last set it or Attio's own where HubSpot never did, `phone` back to Attio's value only where
//! Attio changed the record after HubSpot's edit); the relay's writes that changed something
//! (`relay_changes()` of both stand-ins) are exactly the edits that had to cross, counted from
//! the scenario (zero echo writes); nothing is left on a queue or a DLQ. At the end: exactly one
//! conflict entry per conflicted field and round, holding both values and the winner. The
//! counts are printed (`-- --nocapture`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use integration_tests::fake_apis::{
    self, DEFAULT_APP_ID, FakeAttio, FakeHubSpot, FaultDice, RELAY_TOKEN_ID,
};
use integration_tests::faults::{self, ManualClock};
use integration_tests::fixtures::ids::{PEOPLE, WORKSPACE as WS};
use integration_tests::moto;
use integration_tests::pipeline::two_way::{
    HubspotIngest, deliver_hubspot_with_retries, hubspot_ingest, two_way_context,
};
use integration_tests::pipeline::{
    self, Consumer, Counts, Ctx, Ingest, deliver_with_retries, delivery, drive_consumer,
};
use relay_events::EventFamily;
use relay_mappings::{
    CONFLICT_KEY_ATTRIBUTE, ConflictFilter, ConflictStore, DynamoDbConflicts, Side,
};
use relay_sync::two_way::{HubspotHandler, TwoWaySettings};
use relay_sync::{FieldMapping, RecordsHandler};
use serde_json::{Value, json};

const PEOPLE_COUNT: usize = 30;
const ROUNDS: usize = 4;
/// Share of ingest requests and consumer invocations killed mid-flight.
const KILL_SHARE: f64 = 0.05;
/// The most events one HubSpot request carries here (HubSpot sends up to 100): every event's
/// key must be claimed for a request to pass, which at 10% failing DynamoDB calls a large
/// request almost never does (`deliver_hubspot_with_retries`).
const HUBSPOT_EVENTS_PER_REQUEST: usize = 8;
/// The workspace member who edits in Attio, and the HubSpot user who edits there.
const MEMBER: &str = "061b809a-2423-4955-94c9-07c16d05be79";
const HUBSPOT_USER: u64 = 31;
/// The contact properties the app subscribes to (HubSpot subscribes per property): the ones
/// that flow back, and `phone`, which does not (its events must be acknowledged, not synced).
const SUBSCRIBED: [&str; 4] = ["firstname", "lastname", "jobtitle", "phone"];

const MAPPING: &str = r#"
[objects.people]
crm_object = "contacts"
[objects.people.properties]
email = "email_addresses"
firstname = { attribute = "name.first_name", direction = "both" }
lastname = { attribute = "name.last_name", direction = "both" }
jobtitle = { attribute = "job_title", direction = "hubspot_to_attio" }
phone = { attribute = "phone_numbers", direction = "attio_to_hubspot" }
"#;

/// A mapped field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    First,
    Last,
    Phone,
    Job,
}

impl Field {
    fn property(self) -> &'static str {
        match self {
            Self::First => "firstname",
            Self::Last => "lastname",
            Self::Phone => "phone",
            Self::Job => "jobtitle",
        }
    }
}

/// What a round does to one person.
#[derive(Debug, Clone, Copy)]
enum Case {
    /// An Attio edit of a field that flows to HubSpot.
    AttioOnly(Field),
    /// A HubSpot edit of a field that flows back.
    HubspotOnly(Field),
    /// The same both-way field edited on both sides; `attio_first`: Attio's edit is the earlier.
    Conflict(Field, bool),
    /// `phone` edited in HubSpot (it does not flow back); with `attio_too`, Attio edits the
    /// last name in the same round, after (the contact is upserted whole: phone put back);
    /// without, HubSpot edits the job title too, so the relay writes to Attio and that write's
    /// echo must not upsert the contact (it would put the phone back).
    HubspotPhone { attio_too: bool },
    /// Attio edits the last name, HubSpot the first name.
    Different,
}

/// One side's values of a person, as the scenario says they must be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Values {
    first: String,
    last: String,
    phone: String,
    /// `None`: not set (HubSpot's before any edit there).
    job: Option<String>,
}

impl Values {
    fn get(&self, field: Field) -> Option<&str> {
        match field {
            Field::First => Some(&self.first),
            Field::Last => Some(&self.last),
            Field::Phone => Some(&self.phone),
            Field::Job => self.job.as_deref(),
        }
    }

    fn set(&mut self, field: Field, value: &str) {
        match field {
            Field::First => self.first = value.to_owned(),
            Field::Last => self.last = value.to_owned(),
            Field::Phone => self.phone = value.to_owned(),
            Field::Job => self.job = Some(value.to_owned()),
        }
    }
}

/// What the scenario says: each person's values on each side.
#[derive(Debug, Clone, Default)]
struct Expected {
    attio: Values,
    hubspot: Values,
}

/// A conflict the scenario made: the values both sides were given and the later side.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MadeConflict {
    person: String,
    property: &'static str,
    attio: String,
    hubspot: String,
    winner: Side,
}

/// Everything the run drives.
struct World {
    config: aws_config::SdkConfig,
    queues: moto::TestQueues,
    attio_ingest: Arc<Ingest>,
    attio_clock: ManualClock,
    hubspot_ingest: Arc<HubspotIngest>,
    hubspot_clock: ManualClock,
    attio: Arc<FakeAttio>,
    hubspot: Arc<FakeHubSpot>,
    ctx: Arc<Ctx>,
    mapping_clock: Arc<AtomicI64>,
    counts: Counts,
    /// How far each side's changes were delivered: Attio's write log, HubSpot's change log.
    attio_cursor: usize,
    hubspot_cursor: usize,
    /// Deliveries and HubSpot events sent, passes needed to settle.
    attio_deliveries: usize,
    hubspot_events: usize,
    passes: usize,
    seed: u64,
}

impl World {
    /// Delivers every change not yet delivered on both sides (the relay's own included) and
    /// drains both consumers, until neither side has anything new. A ping-pong never settles.
    async fn settle(&mut self, label: &str) {
        for pass in 0..8 {
            let writes = self.attio.attio_writes();
            let attio_events: Vec<Value> = writes[self.attio_cursor..]
                .iter()
                .flat_map(|w| {
                    w.changed.iter().map(|attribute| {
                        json!({
                            "event_type": "record.updated",
                            "id": {"workspace_id": WS, "object_id": PEOPLE,
                                   "record_id": w.record_id,
                                   "attribute_id": format!("{attribute}-attr")},
                            "actor": w.actor
                        })
                    })
                })
                .collect();
            self.attio_cursor = writes.len();
            let (hubspot_events, next) = self
                .hubspot
                .webhook_events(self.hubspot_cursor, &SUBSCRIBED);
            self.hubspot_cursor = next;
            if attio_events.is_empty() && hubspot_events.is_empty() {
                return;
            }
            self.passes += 1;
            self.attio_deliveries += attio_events.len();
            self.hubspot_events += hubspot_events.len();
            let bodies: Vec<Vec<u8>> = attio_events.into_iter().map(delivery).collect();
            deliver_with_retries(
                &self.attio_ingest,
                &self.attio_clock,
                &bodies,
                &format!("{label}-{pass}"),
                KILL_SHARE,
                &self.counts,
            )
            .await;
            deliver_hubspot_with_retries(
                &self.hubspot_ingest,
                &self.hubspot_clock,
                &hubspot_events,
                (HUBSPOT_EVENTS_PER_REQUEST, KILL_SHARE),
                &self.counts,
            )
            .await;
            self.drain().await;
        }
        panic!("{label}: the two sides never settled (a ping-pong?)");
    }

    /// Runs the records and hubspot consumers until their queues are empty.
    async fn drain(&mut self) {
        self.seed += 10;
        let url = |family| self.queues.urls.get(family).expect("queue url").to_owned();
        let (records_url, hubspot_url) = (url(EventFamily::Records), url(EventFamily::Hubspot));
        let records = RecordsHandler::new(Arc::clone(&self.ctx));
        let hubspot = HubspotHandler::new(Arc::clone(&self.ctx)).expect("two-way is on");
        let dlq = |family: EventFamily| self.queues.dlqs[&family].as_str();
        tokio::join!(
            drive_consumer(
                &self.config,
                Consumer {
                    queue_url: &records_url,
                    dlq_url: dlq(EventFamily::Records),
                    handler: &records,
                    kill_share: KILL_SHARE,
                    seed: self.seed,
                },
                &self.mapping_clock,
                &self.counts
            ),
            drive_consumer(
                &self.config,
                Consumer {
                    queue_url: &hubspot_url,
                    dlq_url: dlq(EventFamily::Hubspot),
                    handler: &hubspot,
                    kill_share: KILL_SHARE,
                    seed: self.seed + 1,
                },
                &self.mapping_clock,
                &self.counts
            ),
        );
    }

    fn contact_id(&self, person: &str) -> String {
        let state = self.hubspot.state.lock().expect("state");
        state.contacts[person].id.clone()
    }

    /// An Attio user's edit of `field` (the name written whole, as Attio's personal-name
    /// takes it); returns when Attio stamped it.
    fn edit_attio(&self, person: &str, now: &Values, field: Field, value: &str) -> i64 {
        let mut name = (now.first.clone(), now.last.clone());
        let values = match field {
            Field::First | Field::Last => {
                if field == Field::First {
                    name.0 = value.to_owned();
                } else {
                    name.1 = value.to_owned();
                }
                let full = format!("{} {}", name.0, name.1);
                json!({"name": [{"first_name": name.0, "last_name": name.1, "full_name": full}]})
            }
            Field::Phone => json!({"phone_numbers": [phone_item(value)]}),
            Field::Job => json!({"job_title": value}),
        };
        let changed = self.attio.edit_as_user("people", person, MEMBER, values);
        assert!(
            changed.is_some_and(|c| !c.is_empty()),
            "Attio edit of {person}"
        );
        let writes = self.attio.attio_writes();
        writes.last().expect("the edit").at_ms
    }

    /// A HubSpot user's edit of `field`; returns HubSpot's history timestamp of it.
    fn edit_hubspot(&self, person: &str, field: Field, value: &str) -> i64 {
        let id = self.contact_id(person);
        let changed =
            self.hubspot
                .edit_contact(&id, HUBSPOT_USER, json!({ field.property(): value }));
        assert_eq!(changed, Some(vec![field.property().to_owned()]));
        let changes = self.hubspot.contact_changes();
        changes.last().expect("the edit").at_ms
    }

    /// Each person's values as both stand-ins hold them now.
    fn actual(&self, people: &[String]) -> BTreeMap<String, Expected> {
        let state = self.hubspot.state.lock().expect("state");
        let mut out = BTreeMap::new();
        for person in people {
            let record = self.attio.person_record(person);
            let current = |slug: &str| -> Option<Value> {
                let entries = record["values"][slug].as_array()?;
                entries
                    .iter()
                    .find(|e| e["active_until"].is_null())
                    .cloned()
            };
            let name = current("name").unwrap_or_default();
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            let attio = Values {
                first: text(&name["first_name"]),
                last: text(&name["last_name"]),
                phone: current("phone_numbers")
                    .map(|p| text(&p["original_phone_number"]))
                    .unwrap_or_default(),
                job: current("job_title").map(|j| text(&j["value"])),
            };
            let contact = &state.contacts[person].properties;
            let property = |p: &str| contact.get(p).map(text);
            let hubspot = Values {
                first: property("firstname").unwrap_or_default(),
                last: property("lastname").unwrap_or_default(),
                phone: property("phone").unwrap_or_default(),
                job: property("jobtitle").filter(|j| !j.is_empty()),
            };
            out.insert(person.clone(), Expected { attio, hubspot });
        }
        out
    }
}

/// A phone number as Attio's `phone_numbers` holds it
/// (<https://docs.attio.com/docs/attribute-types/attribute-types-phone-number>).
fn phone_item(number: &str) -> Value {
    json!({"original_phone_number": number, "phone_number": number, "country_code": "GB",
           "attribute_type": "phone-number"})
}

/// The cases of one round, person by person (a shuffled third of the people stay untouched).
fn round_cases(rng: &mut fastrand::Rng, people: &[String]) -> Vec<(String, Case)> {
    let mut order: Vec<&String> = people.iter().collect();
    rng.shuffle(&mut order);
    let mut cases = Vec::new();
    let name = |n: usize| [Field::First, Field::Last][n % 2];
    for n in 0..5 {
        cases.push(Case::AttioOnly(
            [Field::First, Field::Last, Field::Phone][n % 3],
        ));
        cases.push(Case::HubspotOnly(
            [Field::First, Field::Last, Field::Job][n % 3],
        ));
    }
    for n in 0..4 {
        cases.push(Case::Conflict(name(n), rng.bool()));
    }
    cases.push(Case::HubspotPhone { attio_too: true });
    cases.push(Case::HubspotPhone { attio_too: false });
    cases.push(Case::Different);
    cases.push(Case::Different);
    order.into_iter().cloned().zip(cases).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_way_sync_settles_without_echo_writes_under_random_faults() {
    let config = moto::sdk_config().await;
    let attio_table = moto::fresh_table(&config).await;
    let hubspot_table = moto::fresh_table(&config).await;
    let mappings_table =
        moto::fresh_table_keyed(&config, "mappings", relay_mappings::KEY_ATTRIBUTE).await;
    let conflicts_table =
        moto::fresh_table_keyed(&config, "conflicts", CONFLICT_KEY_ATTRIBUTE).await;
    let families = [EventFamily::ALL.as_slice(), &[EventFamily::Hubspot]].concat();
    let queues = moto::fresh_queues_of(&config, &families, 10).await;

    // Both ingests with faults in DynamoDB and SQS.
    let (store, queue) =
        faults::randomly_faulty_aws(&config, &attio_table, queues.urls.clone(), 0.10, 121);
    let attio_clock = ManualClock::now_real();
    let attio_ingest = Arc::new(integration_tests::fixtures::service(
        store,
        queue,
        attio_clock.clone(),
    ));
    let hubspot_clock = ManualClock::now_real();
    let hubspot_ingest = Arc::new(hubspot_ingest(
        &config,
        &hubspot_table,
        queues.urls.clone(),
        0.10,
        131,
        hubspot_clock.clone(),
    ));

    // Attio and HubSpot failing at random.
    let mut attio = FakeAttio::from_fixtures("attio-2way-token", PEOPLE, FaultDice::new(0.10, 141));
    attio.hang = Duration::from_millis(800);
    // HubSpot takes few calls here (one batch upsert or read per chunk of records), so a
    // larger share of them fails than pipeline_chaos's 10% for the run to meet enough faults.
    let mut hubspot = FakeHubSpot::new("hubspot-2way-token", FaultDice::new(0.20, 142));
    hubspot.hang = Duration::from_millis(800);
    let (attio, hubspot) = (Arc::new(attio), Arc::new(hubspot));
    let attio_server = fake_apis::serve(&attio).await;
    let hubspot_server = fake_apis::serve(&hubspot).await;
    let mapping_clock = Arc::new(AtomicI64::new(0));
    let ctx = pipeline::sync_context_with(
        &config,
        &mappings_table,
        (&attio_server.uri(), "attio-2way-token"),
        (&hubspot_server.uri(), "hubspot-2way-token"),
        &mapping_clock,
        FieldMapping::from_toml(MAPPING).expect("mapping"),
    );
    let settings = TwoWaySettings {
        hubspot_app_id: Some(DEFAULT_APP_ID.to_owned()),
        attio_token_id: Some(RELAY_TOKEN_ID.to_owned()),
        ..TwoWaySettings::default()
    };
    let ctx = two_way_context(ctx, &config, &mappings_table, &conflicts_table, settings);
    let mut world = World {
        config,
        queues,
        attio_ingest,
        attio_clock,
        hubspot_ingest,
        hubspot_clock,
        attio,
        hubspot,
        ctx,
        mapping_clock,
        counts: Counts::default(),
        attio_cursor: 0,
        hubspot_cursor: 0,
        attio_deliveries: 0,
        hubspot_events: 0,
        passes: 0,
        seed: 200,
    };

    // 30 people, each with a name and a phone of their own, synced forward.
    let people: Vec<String> = (0..PEOPLE_COUNT)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
    for (i, person) in people.iter().enumerate() {
        let start = Values {
            first: format!("First{i}"),
            last: format!("Last{i}"),
            phone: format!("+4420790000{i:02}"),
            job: None,
        };
        let old = Values {
            first: "Ada".into(),
            last: "Lovelace".into(),
            ..Values::default()
        };
        world.edit_attio(person, &old, Field::First, &start.first);
        world.edit_attio(person, &start, Field::Last, &start.last);
        world.edit_attio(person, &start, Field::Phone, &start.phone);
        let attio = Values {
            job: Some(FakeAttio::job_title(person)),
            ..start.clone()
        };
        expected.insert(
            person.clone(),
            Expected {
                attio,
                hubspot: start,
            },
        );
    }
    world.settle("first").await;
    check(&world, &people, &expected, "the first sync");
    // The first sync wrote each property of each contact once; nothing came back to Attio
    // (the contacts' creation events are the relay's own).
    let first_sync = world.hubspot.relay_changes();
    let first_sync_hubspot = first_sync.len();
    let mut written = BTreeMap::new();
    for change in &first_sync {
        *written
            .entry((change.contact_id.clone(), change.property.clone()))
            .or_insert(0) += 1;
    }
    assert!(
        written.values().all(|n| *n == 1) && written.len() >= 4 * PEOPLE_COUNT,
        "the first sync wrote each contact's properties once: {written:?}"
    );
    assert_eq!(world.attio.relay_changes().len(), 0, "nothing written back");

    let mut rng = fastrand::Rng::with_seed(7);
    let mut made: Vec<MadeConflict> = Vec::new();
    let (mut crossing_to_attio, mut crossing_to_hubspot) = (0, 0);
    let (mut attio_edits, mut hubspot_edits) = (0, 0);
    for round in 0..ROUNDS {
        // A value no side held before: per round, person, field and side.
        let value = |person: &str, field: Field, side: &str| {
            let n = people.iter().position(|p| p == person).expect("person");
            if field == Field::Phone {
                format!("+4479{round}{n:02}{}", if side == "a" { 1 } else { 2 })
            } else {
                format!("{}-r{round}-{side}-{n}", field.property())
            }
        };
        for (person, case) in round_cases(&mut rng, &people) {
            let e = expected.get_mut(&person).expect("person");
            // Whether Attio's record changed this round: the records consumer then upserts
            // the contact whole, `phone` included.
            let mut attio_touched = false;
            match case {
                Case::AttioOnly(field) => {
                    let v = value(&person, field, "a");
                    world.edit_attio(&person, &e.attio, field, &v);
                    e.attio.set(field, &v);
                    attio_touched = true;
                    attio_edits += 1;
                    if field != Field::Phone {
                        e.hubspot.set(field, &v);
                        crossing_to_hubspot += 1;
                    }
                }
                Case::HubspotOnly(field) => {
                    let v = value(&person, field, "h");
                    world.edit_hubspot(&person, field, &v);
                    e.hubspot.set(field, &v);
                    e.attio.set(field, &v);
                    hubspot_edits += 1;
                    crossing_to_attio += 1;
                }
                Case::Conflict(field, attio_first) => {
                    let (a, h) = (value(&person, field, "a"), value(&person, field, "h"));
                    let (attio_at, hubspot_at) = if attio_first {
                        let at = world.edit_attio(&person, &e.attio, field, &a);
                        tokio::time::sleep(Duration::from_millis(3)).await;
                        (at, world.edit_hubspot(&person, field, &h))
                    } else {
                        let at = world.edit_hubspot(&person, field, &h);
                        tokio::time::sleep(Duration::from_millis(3)).await;
                        (world.edit_attio(&person, &e.attio, field, &a), at)
                    };
                    assert_ne!(attio_at, hubspot_at, "the edits are told apart by time");
                    let winner = if hubspot_at > attio_at {
                        crossing_to_attio += 1;
                        Side::Hubspot
                    } else {
                        crossing_to_hubspot += 1;
                        Side::Attio
                    };
                    let kept = if winner == Side::Hubspot { &h } else { &a };
                    e.attio.set(field, kept);
                    e.hubspot.set(field, kept);
                    attio_touched = true;
                    attio_edits += 1;
                    hubspot_edits += 1;
                    made.push(MadeConflict {
                        person: person.clone(),
                        property: field.property(),
                        attio: a,
                        hubspot: h,
                        winner,
                    });
                }
                Case::HubspotPhone { attio_too } => {
                    let v = value(&person, Field::Phone, "h");
                    world.edit_hubspot(&person, Field::Phone, &v);
                    e.hubspot.phone = v;
                    hubspot_edits += 1;
                    if attio_too {
                        let l = value(&person, Field::Last, "a");
                        world.edit_attio(&person, &e.attio, Field::Last, &l);
                        e.attio.last.clone_from(&l);
                        e.hubspot.last = l;
                        crossing_to_hubspot += 1;
                        attio_touched = true;
                        attio_edits += 1;
                    } else {
                        let j = value(&person, Field::Job, "h");
                        world.edit_hubspot(&person, Field::Job, &j);
                        e.hubspot.set(Field::Job, &j);
                        e.attio.set(Field::Job, &j);
                        crossing_to_attio += 1;
                        hubspot_edits += 1;
                    }
                }
                Case::Different => {
                    let (l, f) = (
                        value(&person, Field::Last, "a"),
                        value(&person, Field::First, "h"),
                    );
                    world.edit_attio(&person, &e.attio, Field::Last, &l);
                    world.edit_hubspot(&person, Field::First, &f);
                    e.attio.last.clone_from(&l);
                    e.hubspot.last = l;
                    e.attio.first.clone_from(&f);
                    e.hubspot.first = f;
                    crossing_to_hubspot += 1;
                    crossing_to_attio += 1;
                    attio_touched = true;
                    attio_edits += 1;
                    hubspot_edits += 1;
                }
            }
            // An Attio change sends the record whole: a phone HubSpot changed is put back to
            // Attio's (the one write of it that crosses); untouched, HubSpot's edit stays.
            if attio_touched && e.hubspot.phone != e.attio.phone {
                e.hubspot.phone.clone_from(&e.attio.phone);
                crossing_to_hubspot += 1;
            }
        }
        world.settle(&format!("round{round}")).await;
        check(&world, &people, &expected, &format!("round {round}"));
        let to_hubspot = world.hubspot.relay_changes().len() - first_sync_hubspot;
        let to_attio = world.attio.relay_changes().len();
        assert_eq!(
            (to_attio, to_hubspot),
            (crossing_to_attio, crossing_to_hubspot),
            "after round {round}: the relay's writes that changed something (to Attio, to \
             HubSpot) are the edits that had to cross — anything more is an echo written back"
        );
        pipeline::assert_nothing_parked(&world.config, &world.queues).await;
    }

    // Exactly one conflict entry per conflicted field and round, with both values and the
    // later edit as winner.
    let store = DynamoDbConflicts::new(
        aws_sdk_dynamodb::Client::new(&world.config),
        &conflicts_table,
    );
    let mut stored = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list(ConflictFilter::All, 100, after.as_deref())
            .await
            .expect("conflicts");
        stored.extend(page.conflicts);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let found: Vec<MadeConflict> = stored
        .iter()
        .map(|c| MadeConflict {
            person: c.attio_record_id.clone(),
            property: SUBSCRIBED
                .into_iter()
                .find(|p| *p == c.property)
                .unwrap_or("?"),
            attio: c.attio.value.clone().unwrap_or_default(),
            hubspot: c.hubspot.value.clone().unwrap_or_default(),
            winner: c.winner,
        })
        .collect();
    for conflict in &made {
        let entries = found.iter().filter(|f| *f == conflict).count();
        assert_eq!(
            entries, 1,
            "one conflict entry for {conflict:?}; stored: {found:#?}"
        );
    }
    assert_eq!(
        found.len(),
        made.len(),
        "no conflict but the ones made: {found:#?}"
    );

    let echo_writes = (world.attio.relay_changes().len() - crossing_to_attio)
        + (world.hubspot.relay_changes().len() - first_sync_hubspot - crossing_to_hubspot);
    let aws_faults = world.attio_ingest.store().injected()
        + world.attio_ingest.queue().plan.injected()
        + world.hubspot_ingest.store().injected()
        + world.hubspot_ingest.queue().plan.injected();
    let counts = &world.counts;
    println!(
        "two-way chaos: people={PEOPLE_COUNT} rounds={ROUNDS} attio_edits={attio_edits} \
         hubspot_edits={hubspot_edits} conflicts={} crossed_to_attio={crossing_to_attio} \
         crossed_to_hubspot={crossing_to_hubspot} echo_writes={echo_writes} \
         attio_deliveries={} hubspot_events={} settle_passes={} ingest_attempts={} \
         ingest_killed={} aws_faults_injected={aws_faults} attio_faults_injected={} \
         hubspot_faults_injected={} consumer_invocations={} consumers_killed={} redeliveries={}",
        made.len(),
        world.attio_deliveries,
        world.hubspot_events,
        world.passes,
        Counts::get(&counts.ingest_attempts),
        Counts::get(&counts.ingest_killed),
        world.attio.dice.injected(),
        world.hubspot.dice.injected(),
        Counts::get(&counts.invocations),
        Counts::get(&counts.consumers_killed),
        Counts::get(&counts.redeliveries),
    );
    assert!(aws_faults > 5, "faults were injected into DynamoDB and SQS");
    assert!(
        world.attio.dice.injected() > 5,
        "faults were injected into Attio"
    );
    assert!(
        world.hubspot.dice.injected() > 5,
        "faults were injected into HubSpot"
    );
    assert!(
        Counts::get(&counts.consumers_killed) > 0,
        "some consumer invocations were killed mid-flight"
    );
    assert!(
        made.iter().any(|c| c.winner == Side::Attio)
            && made.iter().any(|c| c.winner == Side::Hubspot),
        "conflicts were won by each side: {made:?}"
    );
    let unexpected = world.attio.unexpected.lock().expect("lock").clone();
    assert!(
        unexpected.is_empty(),
        "unexpected Attio calls: {unexpected:?}"
    );
    let state = world.hubspot.state.lock().expect("state");
    assert!(
        state.unexpected.is_empty(),
        "unexpected HubSpot calls: {:?}",
        state.unexpected
    );
}

/// Every person's values on both sides are the scenario's.
fn check(world: &World, people: &[String], expected: &BTreeMap<String, Expected>, when: &str) {
    let actual = world.actual(people);
    let mut wrong = Vec::new();
    for person in people {
        let (want, got) = (&expected[person], &actual[person]);
        for field in [Field::First, Field::Last, Field::Phone, Field::Job] {
            for (side, w, g) in [
                ("attio", &want.attio, &got.attio),
                ("hubspot", &want.hubspot, &got.hubspot),
            ] {
                if w.get(field) != g.get(field) {
                    wrong.push(format!(
                        "{person} {side} {}: want {:?}, got {:?}",
                        field.property(),
                        w.get(field),
                        g.get(field)
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "after {when}, {} values are not the scenario's:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
