//! Issue 14's "done when", through the real `attio-relay dev`: both ingests over HTTP, its
//! in-process consumers over SQLite, and the stateful stand-ins (`integration_tests::fake_apis`)
//! as Attio and HubSpot. Nothing is called in-process: edits are made on the stand-ins as a
//! user would, and each side's webhooks are built from what it recorded and POSTed, signed, to
//! `dev` — HubSpot's (v3) to `/hubspot/webhooks`, Attio's (`Attio-Signature`) to its ingest,
//! including the ones the relay's own writes cause (by its app id, by its API token): a
//! ping-pong would show as writes nobody made, counted with each stand-in's `relay_changes`.
//!
//! The mapping sends `firstname` both ways and `jobtitle` Attio → HubSpot only.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use integration_tests::cli::DevServer;
use integration_tests::fake_apis::{
    DEFAULT_APP_ID, FakeAttio, FakeHubSpot, FaultDice, RELAY_TOKEN_ID, serve,
};
use integration_tests::fixtures::ids;
use integration_tests::pipeline::delivery;
use relay_signature::{LEGACY_SIGNATURE_HEADER, SIGNATURE_HEADER, WebhookSecret, sign_body};
use serde_json::{Value, json};

use crate::dev_hubspot::{APP_SECRET, now_ms, post};
use crate::relay;

const ATTIO_TOKEN: &str = "attio-e2e-token";
const HUBSPOT_TOKEN: &str = "hubspot-e2e-token";
/// The Attio webhook secret `dev` is started with.
const ATTIO_SECRET: &str = "attio-e2e-webhook-secret";
/// The person synced; the stand-in serves it from its template (Ada Lovelace).
const PERSON: &str = "e2e00000-0000-4000-8000-000000000001";
/// The workspace member who edits in Attio, and the HubSpot user who edits there.
const MEMBER: &str = "061b809a-2423-4955-94c9-07c16d05be79";
const HUBSPOT_USER: u64 = 77;
/// The contact properties the HubSpot app subscribes to (one subscription per property).
const SUBSCRIBED: [&str; 2] = ["firstname", "jobtitle"];
/// How long a change may take to cross (the consumers poll every 300 ms).
const CROSSING: Duration = Duration::from_secs(30);

const MAPPING: &str = r#"
[objects.people]
crm_object = "contacts"
[objects.people.properties]
email = "email_addresses"
firstname = { attribute = "name.first_name", direction = "both" }
jobtitle = { attribute = "job_title", direction = "attio_to_hubspot" }
"#;

/// `dev` with two-way sync on, the stand-ins it talks to, and how far each side's changes
/// were delivered to it as webhooks.
struct TwoWayDev {
    attio: Arc<FakeAttio>,
    hubspot: Arc<FakeHubSpot>,
    _servers: (wiremock::MockServer, wiremock::MockServer),
    dir: tempfile::TempDir,
    dev: DevServer,
    http: reqwest::Client,
    /// Attio's write log and HubSpot's change log, up to where they were delivered.
    attio_cursor: usize,
    hubspot_cursor: usize,
}

impl TwoWayDev {
    /// Starts `dev` configured as the README's "Try two-way locally" says.
    async fn start() -> Self {
        let attio = Arc::new(FakeAttio::from_fixtures(
            ATTIO_TOKEN,
            ids::PEOPLE,
            FaultDice::new(0.0, 1),
        ));
        let hubspot = Arc::new(FakeHubSpot::new(HUBSPOT_TOKEN, FaultDice::new(0.0, 1)));
        let (attio_server, hubspot_server) = (serve(&attio).await, serve(&hubspot).await);
        let dir = tempfile::tempdir().expect("tempdir");
        let mapping = dir.path().join("mapping.toml");
        std::fs::write(&mapping, MAPPING).expect("mapping");
        let dev = relay()
            .env("ATTIO_API_TOKEN", ATTIO_TOKEN)
            .env("ATTIO_API_URL", &format!("{}/v2", attio_server.uri()))
            .env("HUBSPOT_TOKEN", HUBSPOT_TOKEN)
            .env("HUBSPOT_API_URL", &hubspot_server.uri())
            .env("HUBSPOT_APP_SECRET", APP_SECRET)
            .env("HUBSPOT_APP_ID", DEFAULT_APP_ID)
            .env("ATTIO_TOKEN_ID", RELAY_TOKEN_ID)
            .env("FIELD_MAPPING_FILE", mapping.to_str().expect("utf8"))
            .env("ATTIO_WEBHOOK_SECRETS", ATTIO_SECRET)
            .without("HUBSPOT_TARGET_URL")
            .without("RATE_BUDGET")
            .start_dev(dir.path(), &[]);
        Self {
            attio,
            hubspot,
            _servers: (attio_server, hubspot_server),
            dir,
            dev,
            http: reqwest::Client::new(),
            attio_cursor: 0,
            hubspot_cursor: 0,
        }
    }

    fn data(&self) -> &str {
        self.dir.path().to_str().expect("utf8 path")
    }

    /// Attio's webhooks for every write since the last call (users' and the relay's): one
    /// `record.updated` per changed attribute, by the write's actor, as Attio sends them
    /// (<https://docs.attio.com/rest-api/webhook-reference/record-events/recordupdated>), each
    /// its own signed delivery; the relay's own are by `{"type": "api-token", "id": <its
    /// token id>}` (<https://docs.attio.com/docs/actors>). Returns how many were sent.
    async fn deliver_attio(&mut self) -> usize {
        let writes = self.attio.attio_writes();
        let events: Vec<Value> = writes[self.attio_cursor..]
            .iter()
            .flat_map(|w| {
                w.changed.iter().map(|_attribute| {
                    json!({
                        "event_type": "record.updated",
                        "id": {"workspace_id": ids::WORKSPACE, "object_id": ids::PEOPLE,
                               "record_id": w.record_id,
                               "attribute_id": uuid::Uuid::new_v4().to_string()},
                        "actor": w.actor
                    })
                })
            })
            .collect();
        self.attio_cursor = writes.len();
        let secret = WebhookSecret::new(ATTIO_SECRET).expect("secret");
        for event in &events {
            let body = delivery(event.clone());
            let signature = sign_body(&secret, &body);
            let answer = self
                .http
                .post(&self.dev.url)
                .header("content-type", "application/json")
                .header(SIGNATURE_HEADER, &signature)
                .header(LEGACY_SIGNATURE_HEADER, &signature)
                .header("idempotency-key", uuid::Uuid::new_v4().to_string())
                .body(body)
                .send()
                .await
                .expect("dev answers");
            let status = answer.status();
            let text = answer.text().await.expect("body");
            assert!(status.is_success() && text.contains("queued"), "{text}");
        }
        events.len()
    }

    /// HubSpot's webhook events for every contact change since the last call (users' and the
    /// relay's, which carry its app id as `sourceId`), in one v3-signed request. Returns how
    /// many were sent.
    async fn deliver_hubspot(&mut self) -> usize {
        let (events, next) = self
            .hubspot
            .webhook_events(self.hubspot_cursor, &SUBSCRIBED);
        self.hubspot_cursor = next;
        if events.is_empty() {
            return 0;
        }
        let url = format!("{}hubspot/webhooks", self.dev.url);
        let body = serde_json::to_vec(&events).expect("json");
        let (status, answer) = post(&url, APP_SECRET, now_ms(), &body).await;
        assert_eq!(status, 200, "{answer}");
        events.len()
    }

    /// Waits until every queue is empty (each message handled and deleted), and checks that
    /// nothing was dead-lettered: what was delivered has been consumed, not parked.
    async fn drained(&self, what: &str) {
        let start = Instant::now();
        let mut last = Value::Null;
        while start.elapsed() < CROSSING {
            let out = relay().run(&["status", "--local", "--json", "--data-dir", self.data()]);
            assert!(out.ok, "{}", out.text());
            last = serde_json::from_str(out.stdout.trim()).expect("status json");
            let queues = last["queues"].as_array().expect("queues");
            let waiting: u64 = queues.iter().filter_map(|q| q["visible"].as_u64()).sum();
            if waiting == 0 {
                return;
            }
            let dead: Vec<&Value> = queues
                .iter()
                .filter(|q| q["queue"].as_str().is_some_and(|n| n.ends_with("-dlq")))
                .filter(|q| q["visible"].as_u64() != Some(0))
                .collect();
            assert!(dead.is_empty(), "{what}: dead-lettered: {last}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{what}: the queues never drained: {last}");
    }

    /// Delivers each side's changes (the relay's own included) and drains, until neither side
    /// has anything new; returns the passes it took. A ping-pong never settles.
    async fn settle(&mut self, what: &str) -> usize {
        for pass in 0..6 {
            let sent = self.deliver_attio().await + self.deliver_hubspot().await;
            if sent == 0 {
                return pass;
            }
            self.drained(what).await;
        }
        panic!("{what}: the two sides never settled (a ping-pong?)");
    }

    /// Polls until `check` holds, or fails with `what` and the state `show` describes.
    async fn until(&self, what: &str, check: impl Fn(&Self) -> bool) {
        let start = Instant::now();
        while start.elapsed() < CROSSING {
            if check(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{what}: not within {CROSSING:?}; Attio {:?}, HubSpot {:?}",
            self.attio_values(),
            self.contact()
        );
    }

    /// The person's current first name and job title in Attio.
    fn attio_values(&self) -> (String, String) {
        let record = self.attio.person_record(PERSON);
        let current = |slug: &str, field: &str| {
            record["values"][slug]
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| v["active_until"].is_null())
                .and_then(|v| v[field].as_str())
                .unwrap_or_default()
                .to_owned()
        };
        (current("name", "first_name"), current("job_title", "value"))
    }

    /// The person's contact in HubSpot: its id and its `firstname` and `jobtitle`.
    fn contact(&self) -> Option<(String, String, String)> {
        let state = self.hubspot.state.lock().expect("hubspot state");
        let contact = state.contacts.get(PERSON)?;
        let property = |p: &str| {
            contact
                .properties
                .get(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Some((
            contact.id.clone(),
            property("firstname"),
            property("jobtitle"),
        ))
    }

    /// Calls that wrote to the person's contact (upserts, updates), changing it or not.
    fn contact_writes(&self) -> usize {
        let state = self.hubspot.state.lock().expect("hubspot state");
        state.contacts.get(PERSON).map_or(0, |c| c.writes)
    }

    fn contact_id(&self) -> String {
        self.contact().expect("the contact was synced").0
    }

    /// An Attio user's edit of the first name (the name is written whole, as Attio's
    /// personal-name takes it); returns when Attio stamped it.
    fn attio_first_name(&self, first: &str) -> i64 {
        let values = json!({"name": [{"first_name": first, "last_name": "Lovelace",
                                      "full_name": format!("{first} Lovelace")}]});
        self.attio_edit(values)
    }

    fn attio_edit(&self, values: Value) -> i64 {
        let changed = self.attio.edit_as_user("people", PERSON, MEMBER, values);
        assert!(changed.is_some_and(|c| !c.is_empty()), "the Attio edit");
        self.attio.attio_writes().last().expect("the edit").at_ms
    }

    /// A HubSpot user's edit of `property`; returns HubSpot's history timestamp of it.
    fn hubspot_edit(&self, property: &str, value: &str) -> i64 {
        let changed =
            self.hubspot
                .edit_contact(&self.contact_id(), HUBSPOT_USER, json!({ property: value }));
        assert_eq!(changed, Some(vec![property.to_owned()]), "the HubSpot edit");
        self.hubspot
            .contact_changes()
            .last()
            .expect("the edit")
            .at_ms
    }

    /// The relay's writes that changed something: (to Attio, to HubSpot).
    fn relay_changes(&self) -> (usize, usize) {
        (
            self.attio.relay_changes().len(),
            self.hubspot.relay_changes().len(),
        )
    }

    /// `attio-relay conflicts list --json` on dev's data folder.
    fn conflicts(&self) -> Vec<Value> {
        let out = relay().without("CONFLICTS_TABLE").run(&[
            "conflicts",
            "list",
            "--json",
            "--data-dir",
            self.data(),
        ]);
        assert!(out.ok, "{}", out.text());
        let listed: Value = serde_json::from_str(out.stdout.trim()).expect("json");
        listed["conflicts"].as_array().cloned().unwrap_or_default()
    }

    /// Nothing reached either stand-in that it does not recognise.
    fn no_unexpected_calls(&self) {
        let attio = self.attio.unexpected.lock().expect("lock").clone();
        assert!(attio.is_empty(), "unexpected Attio calls: {attio:?}");
        let state = self.hubspot.state.lock().expect("state");
        assert!(
            state.unexpected.is_empty(),
            "unexpected HubSpot calls: {:?}",
            state.unexpected
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_syncs_both_ways_without_echoes_and_keeps_one_conflict() {
    let mut dev = TwoWayDev::start().await;

    // The first sync: an Attio user's edit reaches HubSpot, and the ledger holds the name.
    dev.attio_first_name("Augusta");
    assert_eq!(dev.deliver_attio().await, 1);
    dev.until("the first sync", |d| {
        d.contact().is_some_and(|c| c.1 == "Augusta")
    })
    .await;
    dev.drained("the first sync").await;
    // HubSpot's events of the relay's own upsert (creation, properties) come back and are
    // dropped by their `sourceId` (HUBSPOT_APP_ID) unread: Attio is not even queried.
    let reads = dev.attio.queries.load(Ordering::SeqCst);
    assert_eq!(
        dev.deliver_hubspot().await,
        3,
        "creation, firstname, jobtitle"
    );
    dev.drained("the relay's HubSpot events").await;
    assert_eq!(dev.settle("the first sync").await, 0);
    assert_eq!(
        dev.attio.queries.load(Ordering::SeqCst),
        reads,
        "no Attio read for the relay's own HubSpot changes"
    );
    let title = FakeAttio::job_title(PERSON);
    let contact = dev.contact().expect("contact");
    assert_eq!(
        (contact.1.as_str(), contact.2.as_str()),
        ("Augusta", title.as_str())
    );
    let (to_attio, synced) = dev.relay_changes();
    assert_eq!(to_attio, 0, "nothing came back to Attio");
    assert!(synced >= 3, "email, first name and job title were written");

    // 1. A HubSpot user's edit of a `both` field reaches Attio.
    dev.hubspot_edit("firstname", "Ada-H");
    assert_eq!(dev.deliver_hubspot().await, 1);
    dev.until("HubSpot's first name in Attio", |d| {
        d.attio_values().0 == "Ada-H"
    })
    .await;
    dev.drained("the HubSpot edit").await;
    assert_eq!(dev.relay_changes(), (1, synced), "one write to Attio");

    // 2. The `record.updated` that write causes (by the relay's token) writes nothing to
    //    HubSpot.
    let echo = dev
        .attio
        .attio_writes()
        .last()
        .expect("the relay's write")
        .clone();
    assert_eq!(echo.actor, dev.attio.relay_actor());
    let calls = dev.contact_writes();
    assert_eq!(
        dev.deliver_attio().await,
        1,
        "the echo, by the relay's token"
    );
    dev.drained("the echo").await;
    // Dropped by its actor (ATTIO_TOKEN_ID) before anything is read: not even an upsert of
    // unchanged values (the ledger alone would have held the first name back, but sent the
    // rest of the contact again).
    assert_eq!(dev.contact_writes(), calls, "no HubSpot call for the echo");
    assert_eq!(dev.settle("after the echo").await, 0, "nothing else moved");
    assert_eq!(dev.relay_changes(), (1, synced), "no echo write to HubSpot");
    assert_eq!(dev.contact().expect("contact").1, "Ada-H");

    // 3. Both sides edit the first name; the later edit wins on both sides and the earlier is
    //    the one conflict entry. Each order of webhooks makes the consumer that sees the loser
    //    hold it back: Attio's webhook first while HubSpot's edit is the later (the records
    //    consumer must not overwrite the newer HubSpot value) ...
    let attio_at = dev.attio_first_name("Grace-A");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let hubspot_at = dev.hubspot_edit("firstname", "Grace-H");
    assert!(hubspot_at > attio_at, "told apart by time");
    assert_eq!(dev.deliver_attio().await, 1);
    dev.drained("Attio's earlier edit").await;
    assert_eq!(
        dev.contact().expect("contact").1,
        "Grace-H",
        "HubSpot's later edit stays"
    );
    assert_eq!(dev.deliver_hubspot().await, 1);
    dev.until("the later edit on both sides", |d| {
        d.attio_values().0 == "Grace-H" && d.contact().is_some_and(|c| c.1 == "Grace-H")
    })
    .await;
    dev.settle("after the first conflict").await;
    assert_eq!(
        dev.relay_changes(),
        (2, synced),
        "only HubSpot's value crossed, once; Attio's losing value never reached HubSpot"
    );
    let conflicts = dev.conflicts();
    assert_eq!(conflicts.len(), 1, "{conflicts:#?}");
    assert_conflict(&conflicts[0], ("Grace-A", "Grace-H"), "hubspot");

    // ... and HubSpot's webhook first while Attio's edit is the later (the hubspot consumer
    // must not write the older HubSpot value to Attio).
    let hubspot_at = dev.hubspot_edit("firstname", "Hedy-H");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let attio_at = dev.attio_first_name("Hedy-A");
    assert!(attio_at > hubspot_at, "told apart by time");
    assert_eq!(dev.deliver_hubspot().await, 1);
    dev.drained("HubSpot's earlier edit").await;
    assert_eq!(dev.attio_values().0, "Hedy-A", "Attio's later edit stays");
    assert_eq!(dev.deliver_attio().await, 1);
    dev.until("the later edit on both sides", |d| {
        d.attio_values().0 == "Hedy-A" && d.contact().is_some_and(|c| c.1 == "Hedy-A")
    })
    .await;
    dev.settle("after the second conflict").await;
    assert_eq!(
        dev.relay_changes(),
        (2, synced + 1),
        "Attio's value crossed, once"
    );
    let conflicts = dev.conflicts();
    assert_eq!(conflicts.len(), 2, "one more: {conflicts:#?}");
    let newest = conflicts
        .iter()
        .find(|c| c["attio"]["value"] == "Hedy-A")
        .unwrap_or_else(|| panic!("the second conflict: {conflicts:#?}"));
    assert_conflict(newest, ("Hedy-A", "Hedy-H"), "attio");

    // 4. A HubSpot edit of an Attio → HubSpot field is left alone in Attio ...
    dev.hubspot_edit("jobtitle", "Title-H");
    assert_eq!(dev.deliver_hubspot().await, 1);
    dev.drained("the HubSpot job title").await;
    assert_eq!(dev.attio_values(), ("Hedy-A".to_owned(), title.clone()));
    assert_eq!(dev.relay_changes(), (2, synced + 1), "nothing written back");
    assert_eq!(dev.contact().expect("contact").2, "Title-H");
    // ... and Attio's next change of it overwrites it in HubSpot.
    dev.attio_edit(json!({"job_title": "Title-A"}));
    assert_eq!(dev.deliver_attio().await, 1);
    dev.until("Attio's job title in HubSpot", |d| {
        d.contact().is_some_and(|c| c.2 == "Title-A")
    })
    .await;
    dev.settle("after the job title").await;
    assert_eq!(dev.relay_changes(), (2, synced + 2), "one write, no echo");
    assert_eq!(
        dev.attio_values(),
        ("Hedy-A".to_owned(), "Title-A".to_owned())
    );
    assert_eq!(dev.contact().expect("contact").1, "Hedy-A");
    assert_eq!(dev.conflicts().len(), 2, "none for a one-way field");
    dev.no_unexpected_calls();
}

/// A conflict as `conflicts list --json` shows it: on the first name, open, with both values
/// (Attio's, HubSpot's) and the later side as winner.
fn assert_conflict(conflict: &Value, (attio, hubspot): (&str, &str), winner: &str) {
    assert_eq!(conflict["attio_record_id"], PERSON, "{conflict}");
    assert_eq!(conflict["property"], "firstname", "{conflict}");
    assert_eq!(conflict["attio"]["value"], attio, "{conflict}");
    assert_eq!(conflict["hubspot"]["value"], hubspot, "{conflict}");
    assert_eq!(conflict["winner"], winner, "{conflict}");
    assert!(conflict["resolution"].is_null(), "open: {conflict}");
}
