//! Issue 11's "done when", through the whole pipeline: a first sync into a HubSpot portal that
//! already holds 10 of the 18 people ends with 18 contacts, one per email, the 10 adopted (their
//! own data kept), and nothing dead-lettered.
//!
//! Ingest on moto queues Attio's 18 `record.created` deliveries; the records consumer, driven
//! the way Lambda's event source mapping drives it, syncs them through the real Attio and
//! HubSpot clients to the stand-ins (`FakeHubSpot` refuses a second contact for an email with
//! HubSpot's 409 "Contact already exists. Existing ID: N", per input of the batch upsert). No
//! faults: the chaos run (`pipeline_chaos`) covers a pre-populated portal under faults; this
//! is the plain first sync, counted exactly. The handler-level version over the in-memory
//! adapters is `relay_sync`'s `tests/adoption.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use integration_tests::fake_apis::{self, FakeAttio, FakeHubSpot, FaultDice};
use integration_tests::faults::{self, ManualClock};
use integration_tests::fixtures::ids::{PEOPLE, WORKSPACE as WS};
use integration_tests::moto;
use integration_tests::pipeline::{
    self, Consumer, Counts, actor, deliver_with_retries, delivery, drive_consumer,
};
use relay_crm::{CrmId, CrmObject};
use relay_events::EventFamily;
use relay_mappings::IdMappings;
use relay_sync::RecordsHandler;
use serde_json::{Value, json};

const PEOPLE_COUNT: usize = 18;
const ALREADY_IN_HUBSPOT: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sync_into_a_portal_holding_10_of_18_people_ends_with_18_contacts() {
    let config = moto::sdk_config().await;
    let table = moto::fresh_table(&config).await;
    let mappings_table =
        moto::fresh_table_keyed(&config, "mappings", relay_mappings::KEY_ATTRIBUTE).await;
    let queues = moto::fresh_queues(&config, 5).await;
    let people: Vec<String> = (0..PEOPLE_COUNT)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();

    // The portal: ten of the people, created by hand before the relay ran (one with its email
    // in capitals: HubSpot compares emails without case).
    let attio_fake = Arc::new(FakeAttio::from_fixtures(
        "attio-first-token",
        PEOPLE,
        FaultDice::new(0.0, 1),
    ));
    let hubspot_fake = FakeHubSpot::new("hubspot-first-token", FaultDice::new(0.0, 2));
    let seeded: BTreeMap<String, String> = people[..ALREADY_IN_HUBSPOT]
        .iter()
        .enumerate()
        .map(|(n, p)| {
            let email = FakeAttio::email(p);
            let email = if n == 3 { email.to_uppercase() } else { email };
            (p.clone(), hubspot_fake.seed_contact(&email))
        })
        .collect();
    let hubspot_fake = Arc::new(hubspot_fake);
    let attio = fake_apis::serve(&attio_fake).await;
    let hubspot = fake_apis::serve(&hubspot_fake).await;

    // Attio's deliveries, one record.created each, through ingest.
    let (store, queue) = faults::randomly_faulty_aws(&config, &table, queues.urls.clone(), 0.0, 1);
    let clock = ManualClock::now_real();
    let service = Arc::new(integration_tests::fixtures::service(
        store,
        queue,
        clock.clone(),
    ));
    let counts = Counts::default();
    let bodies: Vec<Vec<u8>> = people
        .iter()
        .map(|p| {
            delivery(json!({
                "event_type": "record.created",
                "id": {"workspace_id": WS, "object_id": PEOPLE, "record_id": p},
                "actor": actor()
            }))
        })
        .collect();
    deliver_with_retries(&service, &clock, &bodies, "first", 0.0, &counts).await;

    // The records consumer drains its queue.
    let mapping_clock = Arc::new(AtomicI64::new(0));
    let ctx = pipeline::sync_context(
        &config,
        &mappings_table,
        (&attio.uri(), "attio-first-token"),
        (&hubspot.uri(), "hubspot-first-token"),
        &mapping_clock,
    );
    let records = RecordsHandler::new(Arc::clone(&ctx));
    let queue_url = queues
        .urls
        .get(EventFamily::Records)
        .expect("records queue");
    let consumer = Consumer {
        queue_url,
        dlq_url: &queues.dlqs[&EventFamily::Records],
        handler: &records,
        kill_share: 0.0,
        seed: 7,
    };
    drive_consumer(&config, consumer, &mapping_clock, &counts).await;

    // No dead letters, nothing left queued.
    pipeline::assert_nothing_parked(&config, &queues).await;
    let mut mapped = BTreeMap::new();
    for person in &people {
        let id = ctx.mappings.get(CrmObject::Contacts, person).await;
        mapped.insert(person.clone(), id.expect("mapping"));
    }

    // 18 contacts, one per email, each carrying its Attio id; the ten adopted in place.
    let state = hubspot_fake.state.lock().expect("state");
    assert!(state.unexpected.is_empty(), "{:?}", state.unexpected);
    assert!(
        state.unowned_contacts.is_empty(),
        "every contact that was there is adopted: {:?}",
        state.unowned_contacts.keys()
    );
    assert_eq!(state.contacts.len(), PEOPLE_COUNT);
    let mut by_email: BTreeMap<String, usize> = BTreeMap::new();
    for contact in state.contacts.values() {
        let email = contact.properties.get("email").and_then(Value::as_str);
        *by_email
            .entry(email.unwrap_or_default().to_lowercase())
            .or_default() += 1;
    }
    assert_eq!(by_email.len(), PEOPLE_COUNT, "no duplicates: {by_email:?}");
    assert!(by_email.values().all(|n| *n == 1), "{by_email:?}");
    for person in &people {
        let contact = &state.contacts[person];
        assert_eq!(
            contact.properties.get("attio_record_id"),
            Some(&json!(person))
        );
        assert_eq!(
            contact.properties.get("jobtitle"),
            Some(&json!(FakeAttio::job_title(person)))
        );
        assert_eq!(mapped[person], Some(CrmId(contact.id.clone())), "{person}");
        if let Some(existing) = seeded.get(person) {
            assert_eq!(&contact.id, existing, "{person} adopted, not duplicated");
            assert_eq!(
                contact.properties.get("lifecyclestage"),
                Some(&json!("lead")),
                "the adopted contact keeps its own data"
            );
        }
    }
    assert!(
        Counts::get(&counts.invocations) >= 2,
        "batches of at most 10 messages"
    );
}
