//! `attio-relay backfill --direction both` (initial matching) against the stateful stand-ins:
//! a workspace and a portal that overlap, records on one side only, an Attio person whose two
//! addresses are two HubSpot contacts, an address on two HubSpot contacts, a person with no
//! address. `--dry-run` must write nothing; the real run pairs, creates on each side and
//! leaves the ambiguous ones alone; a second run finds everything linked.
//!
//! The Attio stand-in answers the record queries the consumers make (`record_id` `$in`); the
//! backfill walks `records/query` without a filter, sorted by creation, so that one route is
//! answered here with the workspace's people in order, each read from the stand-in as its
//! `$in` query answers it (values as the stand-in holds them, user edits included).

use std::sync::Arc;

use integration_tests::cli::Output;
use integration_tests::fake_apis::{AttioWriteKind, FakeAttio, FakeHubSpot, FaultDice};
use integration_tests::fixtures::ids;
use relay_crm::{CrmId, CrmObject};
use relay_embedded::LocalDb;
use relay_mappings::{IdMappings, SqliteMappings, SyncLedger};
use relay_sync::PropertySpec;
use relay_sync::two_way::ledger_fingerprint;
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::conflicts::TWO_WAY_MAPPING;
use crate::relay;

const ATTIO_TOKEN: &str = "attio-pairing-token";
const HUBSPOT_TOKEN: &str = "hubspot-pairing-token";
const PAIRED_1: &str = "b0000000-0000-4000-8000-000000000001";
const PAIRED_2: &str = "b0000000-0000-4000-8000-000000000002";
const ATTIO_ONLY: &str = "b0000000-0000-4000-8000-000000000003";
const TWO_ADDRESSES: &str = "b0000000-0000-4000-8000-000000000004";
const NO_ADDRESS: &str = "b0000000-0000-4000-8000-000000000005";
/// Linked in HubSpot by an earlier run that stopped before storing the id mapping.
const INTERRUPTED: &str = "b0000000-0000-4000-8000-000000000006";
/// In Attio, but not in the walk (created after the read, or skipped by paging): its contact
/// is "HubSpot only" in the plan, and the lookup right before the assert finds it.
const MISSED: &str = "b0000000-0000-4000-8000-000000000007";
const WORKSPACE: [&str; 6] = [
    PAIRED_1,
    PAIRED_2,
    ATTIO_ONLY,
    TWO_ADDRESSES,
    NO_ADDRESS,
    INTERRUPTED,
];

/// The unfiltered, sorted walk: the workspace's people from `offset`, read from the stand-in.
struct Walk(Arc<FakeAttio>);

impl Respond for Walk {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).expect("json");
        assert_eq!(
            body["sorts"],
            json!([{"direction": "asc", "attribute": "created_at"}])
        );
        let offset = body["offset"].as_u64().unwrap_or(0) as usize;
        let limit = body["limit"].as_u64().expect("limit") as usize;
        let page: Vec<&str> = WORKSPACE.iter().copied().skip(offset).take(limit).collect();
        if page.is_empty() {
            return ResponseTemplate::new(200).set_body_json(json!({"data": []}));
        }
        let mut by_id = request.clone();
        by_id.body =
            serde_json::to_vec(&json!({"filter": {"record_id": {"$in": page}}, "limit": 500}))
                .expect("body");
        self.0.respond(&by_id)
    }
}

/// The lookup by key before an assert: `{"email_addresses": {"email_address": {"$eq": key}}}`
/// (<https://docs.attio.com/rest-api/guides/filtering-and-sorting>), answered from every person
/// of the workspace and the missed one, each as the stand-in serves it now.
struct ByEmail(Arc<FakeAttio>);

impl Respond for ByEmail {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).expect("json");
        let key = body["filter"]["email_addresses"]["email_address"]["$eq"]
            .as_str()
            .expect("an email $eq filter")
            .to_owned();
        let holds = |person: &Value| {
            person["values"]["email_addresses"]
                .as_array()
                .is_some_and(|a| a.iter().any(|e| e["email_address"] == json!(key)))
        };
        let found: Vec<Value> = WORKSPACE
            .iter()
            .chain([&MISSED])
            .map(|id| self.0.person_record(id))
            .filter(holds)
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({ "data": found }))
    }
}

fn by_email(request: &Request) -> bool {
    serde_json::from_slice::<Value>(&request.body)
        .is_ok_and(|b| b["filter"].get("email_addresses").is_some())
}

fn unfiltered(request: &Request) -> bool {
    serde_json::from_slice::<Value>(&request.body).is_ok_and(|b| b.get("filter").is_none())
}

struct World {
    attio: Arc<FakeAttio>,
    attio_server: MockServer,
    hubspot: Arc<FakeHubSpot>,
    hubspot_server: MockServer,
    dir: tempfile::TempDir,
    /// HubSpot ids: the two paired, the HubSpot-only, the two addresses of one person, the
    /// address on two contacts, the interrupted link, the missed person's.
    contacts: [String; 9],
}

async fn world() -> World {
    let attio = Arc::new(FakeAttio::from_fixtures(
        ATTIO_TOKEN,
        ids::PEOPLE,
        FaultDice::new(0.0, 1),
    ));
    let attio_server = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/v2/objects/people/records/query"))
        .and(unfiltered)
        .respond_with(Walk(Arc::clone(&attio)))
        .with_priority(1)
        .mount(&attio_server)
        .await;
    Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/v2/objects/people/records/query"))
        .and(by_email)
        .respond_with(ByEmail(Arc::clone(&attio)))
        .with_priority(1)
        .mount(&attio_server)
        .await;
    Mock::given(wiremock::matchers::any())
        .respond_with(integration_tests::fake_apis::SharedResponder(Arc::clone(
            &attio,
        )))
        .mount(&attio_server)
        .await;
    // One person with two addresses, one with none (as a user would have edited them).
    attio
        .edit_as_user(
            "people",
            TWO_ADDRESSES,
            "member-1",
            json!({"email_addresses": [FakeAttio::email(TWO_ADDRESSES), "second@two.example"]}),
        )
        .expect("held");
    attio
        .edit_as_user(
            "people",
            NO_ADDRESS,
            "member-1",
            json!({"email_addresses": []}),
        )
        .expect("held");

    let hubspot = Arc::new(FakeHubSpot::new(HUBSPOT_TOKEN, FaultDice::new(0.0, 1)));
    let hubspot_server = integration_tests::fake_apis::serve(&hubspot).await;
    let contacts = [
        hubspot.seed_contact(&FakeAttio::email(PAIRED_1).to_uppercase()),
        hubspot.seed_contact(&FakeAttio::email(PAIRED_2)),
        hubspot.seed_contact("only-in@hubspot.example"),
        hubspot.seed_contact(&FakeAttio::email(TWO_ADDRESSES)),
        hubspot.seed_contact("second@two.example"),
        hubspot.seed_contact("twice@hubspot.example"),
        hubspot.seed_contact("twice@hubspot.example"),
        hubspot.seed_contact(&FakeAttio::email(INTERRUPTED)),
        hubspot.seed_contact(&FakeAttio::email(MISSED)),
    ];
    // An older run wrote the link and stopped before the id mapping.
    hubspot
        .edit_contact(&contacts[7], 5, json!({"attio_record_id": INTERRUPTED}))
        .expect("held");
    // The first pair already agrees on the two-way title, the second does not.
    hubspot
        .edit_contact(
            &contacts[0],
            5,
            json!({"jobtitle": FakeAttio::job_title(PAIRED_1)}),
        )
        .expect("held");
    hubspot
        .edit_contact(&contacts[1], 5, json!({"jobtitle": "Different"}))
        .expect("held");
    hubspot
        .edit_contact(&contacts[2], 5, json!({"jobtitle": "Founder"}))
        .expect("held");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mapping.toml"), TWO_WAY_MAPPING).expect("mapping");
    World {
        attio,
        attio_server,
        hubspot,
        hubspot_server,
        dir,
        contacts,
    }
}

impl World {
    fn backfill(&self, extra: &[&str]) -> Output {
        let data = self.dir.path().to_str().expect("utf8");
        let mapping = self.dir.path().join("mapping.toml");
        let (attio_url, hubspot_url) = (
            format!("{}/v2", self.attio_server.uri()),
            self.hubspot_server.uri(),
        );
        let mut args = vec![
            "backfill",
            "--object",
            "people",
            "--direction",
            "both",
            "--rate",
            "1000",
            "--data-dir",
            data,
            "--attio-api-url",
            &attio_url,
            "--hubspot-api-url",
            &hubspot_url,
            "--field-mapping",
            mapping.to_str().expect("utf8"),
        ];
        args.extend_from_slice(extra);
        relay()
            .env("ATTIO_API_TOKEN", ATTIO_TOKEN)
            .env("HUBSPOT_TOKEN", HUBSPOT_TOKEN)
            .without("MAPPINGS_TABLE")
            .without("FIELD_MAPPING_FILE")
            .run(&args)
    }

    /// HubSpot id → its `attio_record_id`, for every contact.
    fn links(&self) -> Vec<(String, Option<String>)> {
        let state = self.hubspot.state.lock().expect("state");
        let mut links: Vec<(String, Option<String>)> = state
            .contacts
            .values()
            .chain(state.unowned_contacts.values())
            .map(|c| {
                let link = c.properties.get("attio_record_id").and_then(Value::as_str);
                (c.id.clone(), link.map(str::to_owned))
            })
            .collect();
        links.sort();
        links
    }

    fn mappings(&self) -> SqliteMappings {
        let db = LocalDb::open(&self.dir.path().join("relay.sqlite")).expect("db");
        SqliteMappings::new(db)
    }
}

fn line_count(out: &str, label: &str) -> usize {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in {out}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn initial_matching_pairs_creates_each_side_and_leaves_the_ambiguous_alone() {
    let w = world().await;
    let c = &w.contacts;
    let user_edits = w.attio.attio_writes().len();
    let before = (w.links(), w.hubspot.contact_changes().len());

    // Dry run: the report, and nothing written anywhere.
    let dry = w.backfill(&["--dry-run"]);
    let out = dry.text();
    assert!(dry.ok, "{out}");
    assert!(out.contains("dry run: nothing written"), "{out}");
    assert_eq!(line_count(&out, "paired:"), 2, "{out}");
    assert_eq!(line_count(&out, "created in HubSpot:"), 1, "{out}");
    assert_eq!(line_count(&out, "created in Attio:"), 2, "{out}");
    assert_eq!(line_count(&out, "already linked:"), 1, "{out}");
    assert_eq!(line_count(&out, "links to repair:"), 1, "{out}");
    assert_eq!(line_count(&out, "could not match:"), 3, "{out}");
    assert!(
        out.contains(&format!("pair: attio {PAIRED_1} <-> hubspot {}", c[0])),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "several matches on email {}, second@two.example: attio [{TWO_ADDRESSES}] hubspot [{}, {}]",
            FakeAttio::email(TWO_ADDRESSES),
            c[3],
            c[4]
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "several matches on email twice@hubspot.example: attio [-] hubspot [{}, {}]",
            c[5], c[6]
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("no email: attio {NO_ADDRESS}")),
        "{out}"
    );
    assert_eq!(w.attio.attio_writes().len(), user_edits, "no Attio write");
    assert_eq!(
        (w.links(), w.hubspot.contact_changes().len()),
        before,
        "no HubSpot write"
    );
    let mappings = w.mappings();
    assert_eq!(
        mappings
            .get(CrmObject::Contacts, PAIRED_1)
            .await
            .expect("read"),
        None
    );

    // The run.
    let run = w.backfill(&[]);
    let out = run.text();
    assert!(run.ok, "{out}");
    // The missed person is found by the lookup before its assert: paired, not overwritten.
    assert_eq!(line_count(&out, "paired:"), 3, "{out}");
    assert_eq!(line_count(&out, "created in HubSpot:"), 1, "{out}");
    assert_eq!(line_count(&out, "created in Attio:"), 1, "{out}");
    assert_eq!(line_count(&out, "links repaired:"), 1, "{out}");
    assert_eq!(line_count(&out, "could not match:"), 3, "{out}");

    // HubSpot-only: asserted in Attio by its address with its values, then linked.
    let asserts: Vec<_> = w
        .attio
        .attio_writes()
        .into_iter()
        .filter(|w| matches!(w.kind, AttioWriteKind::Assert { .. }))
        .collect();
    assert_eq!(
        asserts.len(),
        1,
        "the missed person is not asserted: {asserts:?}"
    );
    assert_eq!(asserts[0].kind, AttioWriteKind::Assert { created: true });
    assert_eq!(
        asserts[0].values["email_addresses"],
        json!(["only-in@hubspot.example"])
    );
    assert_eq!(asserts[0].values["job_title"], "Founder");
    let created = asserts[0].record_id.clone();

    // Every link as planned, the ambiguous contacts untouched; the Attio-only person upserted.
    let links = w.links();
    let link = |id: &str| {
        links
            .iter()
            .find(|(c, _)| c == id)
            .and_then(|(_, l)| l.clone())
    };
    assert_eq!(link(&c[0]).as_deref(), Some(PAIRED_1));
    assert_eq!(link(&c[1]).as_deref(), Some(PAIRED_2));
    assert_eq!(link(&c[2]), Some(created.clone()));
    assert_eq!(link(&c[7]).as_deref(), Some(INTERRUPTED));
    assert_eq!(link(&c[8]).as_deref(), Some(MISSED));
    for ambiguous in &c[3..7] {
        assert_eq!(link(ambiguous), None, "{ambiguous} was left alone");
    }
    let new_contact = {
        let state = w.hubspot.state.lock().expect("state");
        let contact = state.contacts.get(ATTIO_ONLY).expect("upserted").clone();
        assert_eq!(
            contact.properties["email"],
            json!(FakeAttio::email(ATTIO_ONLY))
        );
        assert!(!state.contacts.contains_key(TWO_ADDRESSES));
        assert!(!state.contacts.contains_key(NO_ADDRESS));
        // Created with its two-way title: the run has the ledger to send it with.
        assert_eq!(
            contact.properties["jobtitle"],
            json!(FakeAttio::job_title(ATTIO_ONLY)),
            "{:?}",
            contact.properties
        );
        contact.id
    };
    assert_eq!(links.len(), 10, "one contact made, no duplicate: {links:?}");

    // The mappings, and the ledger where both sides agree (or one side was just written).
    for (record, crm) in [
        (PAIRED_1, &c[0]),
        (PAIRED_2, &c[1]),
        (created.as_str(), &c[2]),
        (ATTIO_ONLY, &new_contact),
        (INTERRUPTED, &c[7]),
        (MISSED, &c[8]),
    ] {
        assert_eq!(
            mappings
                .get(CrmObject::Contacts, record)
                .await
                .expect("read"),
            Some(CrmId(crm.clone())),
            "{record}"
        );
    }
    let ids: Vec<String> = [PAIRED_1, PAIRED_2, created.as_str(), ATTIO_ONLY]
        .map(str::to_owned)
        .to_vec();
    let ledgers = mappings
        .ledgers(CrmObject::Contacts, &ids)
        .await
        .expect("ledger");
    let title = |id: &str| {
        ledgers
            .get(id)
            .and_then(|l| l.get("jobtitle"))
            .map(|s| s.fingerprint.clone())
    };
    let spec = PropertySpec::path("job_title");
    let print = |v: &str| Some(ledger_fingerprint(&spec, Some(v)));
    assert_eq!(title(PAIRED_1), print(&FakeAttio::job_title(PAIRED_1)));
    assert_eq!(title(PAIRED_2), None, "they differ: the first sync decides");
    assert_eq!(title(&created), print("Founder"));
    assert_eq!(title(ATTIO_ONLY), print(&FakeAttio::job_title(ATTIO_ONLY)));

    // Again: everything already linked, nothing written twice.
    let changes = w.hubspot.contact_changes().len();
    let writes = w.attio.attio_writes().len();
    let again = w.backfill(&[]);
    let out = again.text();
    assert!(again.ok, "{out}");
    assert_eq!(line_count(&out, "paired:"), 0, "{out}");
    assert_eq!(line_count(&out, "created in HubSpot:"), 0, "{out}");
    assert_eq!(line_count(&out, "created in Attio:"), 0, "{out}");
    assert_eq!(line_count(&out, "already linked:"), 6, "{out}");
    assert_eq!(line_count(&out, "links repaired:"), 0, "{out}");
    assert_eq!(line_count(&out, "could not match:"), 3, "{out}");
    assert_eq!(w.hubspot.contact_changes().len(), changes);
    assert_eq!(w.attio.attio_writes().len(), writes);
    assert!(w.attio.unexpected.lock().expect("lock").is_empty());
    assert!(w.hubspot.state.lock().expect("state").unexpected.is_empty());
}
