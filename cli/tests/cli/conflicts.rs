//! `attio-relay conflicts list|show|resolve` on a seeded local SQLite file, against the
//! stateful Attio and HubSpot stand-ins (`integration_tests::fake_apis`), and the dev
//! dashboard's conflicts section over the same file.
//!
//! Three conflicts on `jobtitle` (direction `both`): one HubSpot won and Attio's value is kept,
//! one Attio won and HubSpot's value is kept, one kept as it won (nothing read or written).
//! Each seeds the loser's side with the winner's value, written by the relay as the consumer
//! writes it when it records a conflict; keeping the loser must then leave BOTH stand-ins
//! holding the kept value (HubSpot on the contact the id mapping names, Attio through the
//! consumer's reverse mapping) and the ledger holding its fingerprint — else the loser's own
//! side would read as a change and the consumers would push the winner's value back.
//!
//! The guard is tested in `conflicts/guard.rs`: a side edited after the conflict — the
//! winner's (a user in HubSpot's UI, a workspace member in Attio) or the loser's own — makes
//! `resolve --keep <loser>` refuse: nothing written on either side, the conflict open, the
//! ledger untouched, the error naming the newer value and its time — until `--force`;
//! `--dry-run` reads and plans both writes, and writes nothing.

use std::sync::Arc;

use integration_tests::cli::Output;
use integration_tests::fake_apis::{
    AttioWriteKind, ChangeSource, FakeAttio, FakeHubSpot, FaultDice, serve,
};
use integration_tests::fixtures::ids;
use relay_crm::{CrmId, CrmObject};
use relay_embedded::LocalDb;
use relay_mappings::{
    Conflict, ConflictStore, ConflictValue, IdMappings, Side, SqliteConflicts, SqliteMappings,
    SyncDirection, SyncLedger,
};
use relay_sync::PropertySpec;
use relay_sync::formats::iso_instant;
use relay_sync::two_way::ledger_fingerprint;
use serde_json::{Value, json};

use crate::relay;

mod guard;

const ATTIO_TOKEN: &str = "attio-conflicts-token";
const HUBSPOT_TOKEN: &str = "hubspot-conflicts-token";
/// 2026-03-01T10:00:00Z.
const T0: i64 = 1_772_359_200_000;
const PERSON_A: &str = "c0000000-0000-4000-8000-00000000000a";
const PERSON_B: &str = "c0000000-0000-4000-8000-00000000000b";
const PERSON_C: &str = "c0000000-0000-4000-8000-00000000000c";
/// A HubSpot user and an Attio workspace member who edit after the conflicts.
const HUBSPOT_USER: u64 = 4242;
const MEMBER: &str = "d0000000-0000-4000-8000-0000000000aa";

/// The mapping the conflicts were recorded under: `jobtitle` flows both ways.
pub const TWO_WAY_MAPPING: &str = r#"
[objects.people]
crm_object = "contacts"
[objects.people.properties]
email = "email_addresses"
jobtitle = { attribute = "job_title", direction = "both" }
"#;

fn conflict(record: &str, crm_id: &str, attio: (&str, i64), hubspot: (&str, i64)) -> Conflict {
    let winner = if hubspot.1 > attio.1 {
        Side::Hubspot
    } else {
        Side::Attio
    };
    Conflict {
        id: Conflict::derive_id(CrmObject::Contacts, record, "jobtitle", attio.1, hubspot.1),
        object: CrmObject::Contacts,
        attio_record_id: record.to_owned(),
        crm_id: crm_id.to_owned(),
        property: "jobtitle".to_owned(),
        attribute: "job_title".to_owned(),
        attio: ConflictValue {
            value: Some(attio.0.to_owned()),
            changed_at_ms: attio.1,
        },
        hubspot: ConflictValue {
            value: Some(hubspot.0.to_owned()),
            changed_at_ms: hubspot.1,
        },
        winner,
        detected_at_ms: attio.1.max(hubspot.1) + 1_000,
        resolution: None,
    }
}

struct Setup {
    attio: Arc<FakeAttio>,
    attio_server: wiremock::MockServer,
    hubspot: Arc<FakeHubSpot>,
    hubspot_server: wiremock::MockServer,
    dir: tempfile::TempDir,
    db: LocalDb,
}

impl Setup {
    fn data(&self) -> &str {
        self.dir.path().to_str().expect("utf8")
    }

    fn conflicts(&self, args: &[&str]) -> Output {
        let mapping = self.dir.path().join("mapping.toml");
        let (attio_url, hubspot_url) = (
            format!("{}/v2", self.attio_server.uri()),
            self.hubspot_server.uri(),
        );
        let mut all = vec!["conflicts"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--data-dir", self.data()]);
        if args.first() == Some(&"resolve") {
            all.extend_from_slice(&[
                "--attio-api-url",
                &attio_url,
                "--hubspot-api-url",
                &hubspot_url,
                "--field-mapping",
                mapping.to_str().expect("utf8"),
            ]);
        }
        relay()
            .env("ATTIO_API_TOKEN", ATTIO_TOKEN)
            .env("HUBSPOT_TOKEN", HUBSPOT_TOKEN)
            .without("CONFLICTS_TABLE")
            .without("MAPPINGS_TABLE")
            .without("FIELD_MAPPING_FILE")
            .run(&all)
    }
}

async fn setup() -> Setup {
    let attio = Arc::new(FakeAttio::from_fixtures(
        ATTIO_TOKEN,
        ids::PEOPLE,
        FaultDice::new(0.0, 1),
    ));
    let attio_server = serve(&attio).await;
    let hubspot = Arc::new(FakeHubSpot::new(HUBSPOT_TOKEN, FaultDice::new(0.0, 1)));
    let hubspot_server = serve(&hubspot).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mapping.toml"), TWO_WAY_MAPPING).expect("mapping");
    let db = LocalDb::open(&dir.path().join("relay.sqlite")).expect("db");
    Setup {
        attio,
        attio_server,
        hubspot,
        hubspot_server,
        dir,
        db,
    }
}

async fn ledger_of(db: &LocalDb, record: &str) -> Option<relay_mappings::Synced> {
    let ledgers = SqliteMappings::new(db.clone())
        .ledgers(CrmObject::Contacts, &[record.to_owned()])
        .await
        .expect("ledger");
    ledgers.get(record).and_then(|l| l.get("jobtitle")).cloned()
}

fn spec() -> PropertySpec {
    PropertySpec::path("job_title")
}

/// The relay's write of a title to Attio (`PUT` on the record with its token), as the
/// consumer makes it when the HubSpot side wins a conflict.
async fn relay_writes_attio(s: &Setup, record: &str, title: &str) {
    let status = reqwest::Client::new()
        .put(format!(
            "{}/v2/objects/people/records/{record}",
            s.attio_server.uri()
        ))
        .bearer_auth(ATTIO_TOKEN)
        .json(&json!({"data": {"values": {"job_title": title}}}))
        .send()
        .await
        .expect("write")
        .status();
    assert!(status.is_success(), "{status}");
}

/// The relay's write of a title to HubSpot (`PATCH` with the app's token), as the consumer
/// makes it when the Attio side wins a conflict.
async fn relay_writes_hubspot(s: &Setup, contact: &str, title: &str) {
    let status = reqwest::Client::new()
        .patch(format!(
            "{}/crm/v3/objects/contacts/{contact}",
            s.hubspot_server.uri()
        ))
        .bearer_auth(HUBSPOT_TOKEN)
        .json(&json!({"properties": {"jobtitle": title}}))
        .send()
        .await
        .expect("write")
        .status();
    assert!(status.is_success(), "{status}");
}

/// The current title of a person in the Attio stand-in, read over its API.
async fn attio_title(s: &Setup, record: &str) -> Option<String> {
    let read: Value = reqwest::Client::new()
        .get(format!(
            "{}/v2/objects/people/records/{record}",
            s.attio_server.uri()
        ))
        .bearer_auth(ATTIO_TOKEN)
        .send()
        .await
        .expect("read")
        .json()
        .await
        .expect("json");
    read["data"]["values"]["job_title"]
        .as_array()?
        .iter()
        .find(|v| v["active_until"].is_null())
        .and_then(|v| v["value"].as_str())
        .map(str::to_owned)
}

/// The current title of a contact in the HubSpot stand-in, read over its API.
async fn hubspot_title(s: &Setup, contact: &str) -> Option<String> {
    let read: Value = reqwest::Client::new()
        .get(format!(
            "{}/crm/v3/objects/contacts/{contact}?properties=jobtitle",
            s.hubspot_server.uri()
        ))
        .bearer_auth(HUBSPOT_TOKEN)
        .send()
        .await
        .expect("read")
        .json()
        .await
        .expect("json");
    read["properties"]["jobtitle"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread")]
async fn conflicts_are_listed_shown_and_resolved_on_either_side() {
    let s = setup().await;
    // HubSpot holds A's contact (the mapping points at it; the conflict names an older id).
    // Each winning side holds the winner's value, as the consumer left it (resolve checks).
    let contact_a = s.hubspot.seed_contact(&FakeAttio::email(PERSON_A));
    s.hubspot
        .edit_contact(&contact_a, HUBSPOT_USER, json!({"jobtitle": "Analyst"}))
        .expect("contact");
    let mappings = SqliteMappings::new(s.db.clone());
    mappings
        .put(CrmObject::Contacts, PERSON_A, &CrmId(contact_a.clone()))
        .await
        .expect("mapping");
    let hubspot_won = conflict(PERSON_A, "999", ("Poet", T0), ("Analyst", T0 + 60_000));
    // B's contact: Attio's winning title was synced there by the relay.
    let contact_b = s.hubspot.seed_contact(&FakeAttio::email(PERSON_B));
    mappings
        .put(CrmObject::Contacts, PERSON_B, &CrmId(contact_b.clone()))
        .await
        .expect("mapping");
    relay_writes_hubspot(&s, &contact_b, &FakeAttio::job_title(PERSON_B)).await;
    let attio_won = conflict(
        PERSON_B,
        &contact_b,
        (&FakeAttio::job_title(PERSON_B), T0 + 120_000),
        ("Manager", T0 + 30_000),
    );
    // Each loser's side holds the winner's value, as the consumer left it when it recorded
    // the conflict: A's Attio record got HubSpot's "Analyst".
    relay_writes_attio(&s, PERSON_A, "Analyst").await;
    let seeded_attio_writes = s.attio.attio_writes().len();
    let settled_as_won = conflict(
        PERSON_C,
        "7778",
        ("Lead", T0 + 200_000),
        ("Head", T0 + 10_000),
    );
    let store = SqliteConflicts::new(s.db.clone());
    for c in [&hubspot_won, &attio_won, &settled_as_won] {
        store.record(c).await.expect("seed");
    }

    // The dashboard shows the open ones.
    let server = relay()
        .without("ATTIO_API_TOKEN")
        .without("HUBSPOT_TOKEN")
        .start_dev(s.dir.path(), &[]);
    let page = dashboard(&server.url).await;
    assert!(
        page.contains("<span class=\"count\">3</span> open conflict(s)"),
        "{page}"
    );
    for c in [&hubspot_won, &attio_won, &settled_as_won] {
        assert!(
            page.contains(&format!("data-conflict-id=\"{}\"", c.id)),
            "{page}"
        );
    }
    assert!(
        page.contains("Analyst") && page.contains("Poet"),
        "values shown: {page}"
    );

    // list: newest detected first, both values and times, winner, status.
    let listed = s.conflicts(&["list"]);
    assert!(listed.ok, "{}", listed.text());
    let rows: Vec<&str> = listed.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{}", listed.stdout);
    assert!(rows[0].starts_with(&settled_as_won.id), "{}", listed.stdout);
    assert!(rows[2].starts_with(&hubspot_won.id), "{}", listed.stdout);
    assert!(
        rows[2].contains("Poet")
            && rows[2].contains("Analyst")
            && rows[2].contains("2026-03-01T10:01:00.000Z")
            && rows[2].contains("hubspot")
            && rows[2].ends_with("open"),
        "{}",
        rows[2]
    );

    // show: by a unique prefix; too short a prefix is refused.
    let shown = s.conflicts(&["show", &attio_won.id[..8]]);
    assert!(shown.ok, "{}", shown.text());
    assert!(
        shown.stdout.contains(&attio_won.id)
            && shown.stdout.contains(&FakeAttio::job_title(PERSON_B))
            && shown.stdout.contains("Manager")
            && shown.stdout.contains("winner    attio"),
        "{}",
        shown.stdout
    );
    let short = s.conflicts(&["show", &attio_won.id[..4]]);
    assert!(
        !short.ok && short.text().contains("at least 6"),
        "{}",
        short.text()
    );

    // Keep Attio's losing value: written to HubSpot on the mapped contact, by the app, and
    // back over the "Analyst" the consumer had synced to Attio.
    let kept = s.conflicts(&["resolve", &hubspot_won.id[..10], "--keep", "attio"]);
    assert!(kept.ok, "{}", kept.text());
    assert!(
        kept.stdout.contains(&format!(
            "written to hubspot (HubSpot contacts {contact_a}) and to attio (Attio people {PERSON_A})"
        )),
        "{}",
        kept.stdout
    );
    let last = s
        .hubspot
        .contact_changes()
        .last()
        .cloned()
        .expect("a change");
    assert_eq!(
        (
            last.contact_id.as_str(),
            last.property.as_deref(),
            last.value.as_str()
        ),
        (contact_a.as_str(), Some("jobtitle"), "Poet")
    );
    assert!(matches!(last.source, ChangeSource::Integration(_)));
    let writes = s.attio.attio_writes();
    assert_eq!(writes.len(), seeded_attio_writes + 1, "{writes:?}");
    let to_attio = writes.last().expect("a write");
    assert_eq!(
        (to_attio.kind.clone(), to_attio.record_id.as_str()),
        (AttioWriteKind::Update, PERSON_A)
    );
    assert_eq!(to_attio.changed, ["job_title"], "Analyst became Poet");
    assert_eq!(to_attio.actor, s.attio.relay_actor());
    assert_eq!(
        (
            hubspot_title(&s, &contact_a).await.as_deref(),
            attio_title(&s, PERSON_A).await.as_deref()
        ),
        (Some("Poet"), Some("Poet")),
        "both sides hold the kept value"
    );
    let entry = ledger_of(&s.db, PERSON_A).await.expect("ledger entry");
    assert_eq!(entry.fingerprint, ledger_fingerprint(&spec(), Some("Poet")));
    assert_eq!(
        entry.attio_side(),
        entry.fingerprint,
        "Attio stored it as sent"
    );
    assert_eq!(entry.direction, SyncDirection::AttioToHubspot);

    // Keep HubSpot's losing value: written to Attio, reversed through the mapping, and back
    // over Attio's title the consumer had synced to HubSpot.
    let changes = s.hubspot.contact_changes().len();
    let kept = s.conflicts(&["resolve", &attio_won.id, "--keep", "hubspot", "--json"]);
    assert!(kept.ok, "{}", kept.text());
    let report: Value = serde_json::from_str(&kept.stdout).expect("json");
    let sides: Vec<&str> = report["writes"]
        .as_array()
        .expect("writes")
        .iter()
        .map(|w| w["side"].as_str().expect("side"))
        .collect();
    assert_eq!(
        sides,
        ["attio", "hubspot"],
        "the winner's side first: {report}"
    );
    assert_eq!(report["writes"][1]["body"], json!({"jobtitle": "Manager"}));
    let writes = s.attio.attio_writes();
    assert_eq!(writes.len(), seeded_attio_writes + 2, "{writes:?}");
    let to_attio = writes.last().expect("a write");
    assert_eq!(to_attio.kind, AttioWriteKind::Update);
    assert_eq!(to_attio.record_id, PERSON_B);
    assert_eq!(to_attio.values["job_title"], "Manager");
    assert_eq!(to_attio.changed, ["job_title"]);
    let to_hubspot = s.hubspot.contact_changes();
    assert_eq!(to_hubspot.len(), changes + 1, "one HubSpot write");
    let last = to_hubspot.last().expect("a change");
    assert_eq!(
        (
            last.contact_id.as_str(),
            last.property.as_deref(),
            last.value.as_str()
        ),
        (contact_b.as_str(), Some("jobtitle"), "Manager")
    );
    assert!(matches!(last.source, ChangeSource::Integration(_)));
    assert_eq!(
        (
            attio_title(&s, PERSON_B).await.as_deref(),
            hubspot_title(&s, &contact_b).await.as_deref()
        ),
        (Some("Manager"), Some("Manager")),
        "both sides hold the kept value"
    );
    let entry = ledger_of(&s.db, PERSON_B).await.expect("ledger entry");
    assert_eq!(
        entry.fingerprint,
        ledger_fingerprint(&spec(), Some("Manager"))
    );
    assert_eq!(entry.direction, SyncDirection::HubspotToAttio);

    // Keep the winner: marked resolved, nothing read or written anywhere.
    let hubspot_changes = s.hubspot.contact_changes().len();
    let attio_writes = s.attio.attio_writes().len();
    let seen = (
        requests(&s.attio_server).await,
        requests(&s.hubspot_server).await,
    );
    let kept = s.conflicts(&["resolve", &settled_as_won.id, "--keep", "attio"]);
    assert!(kept.ok, "{}", kept.text());
    assert!(kept.stdout.contains("the winner"), "{}", kept.stdout);
    assert_eq!(s.attio.attio_writes().len(), attio_writes);
    assert_eq!(s.hubspot.contact_changes().len(), hubspot_changes);
    assert_eq!(
        (
            requests(&s.attio_server).await,
            requests(&s.hubspot_server).await
        ),
        seen,
        "keeping the winner neither reads nor writes"
    );
    assert_eq!(ledger_of(&s.db, PERSON_C).await, None);

    // Every one resolved, with the side kept.
    let open = s.conflicts(&["list"]);
    assert!(open.stdout.contains("no conflicts"), "{}", open.stdout);
    let resolved = s.conflicts(&["list", "--resolved", "--json"]);
    let resolved: Value = serde_json::from_str(&resolved.stdout).expect("json");
    let kept: Vec<(String, String)> = resolved["conflicts"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().expect("id").to_owned(),
                c["resolution"]["kept"].as_str().expect("kept").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kept,
        [
            (settled_as_won.id.clone(), "attio".to_owned()),
            (attio_won.id.clone(), "hubspot".to_owned()),
            (hubspot_won.id.clone(), "attio".to_owned()),
        ]
    );
    let page = dashboard(&server.url).await;
    assert!(
        page.contains("<span class=\"count\">0</span>") && page.contains("no open conflicts"),
        "{page}"
    );
    drop(server);
    assert!(s.attio.unexpected.lock().expect("lock").is_empty());
    assert!(s.hubspot.state.lock().expect("state").unexpected.is_empty());
}

/// The requests a stand-in received so far, as `METHOD path`.
async fn requests(server: &wiremock::MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .expect("recording")
        .iter()
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect()
}

/// The requests after the first `before` that write (anything but a read).
fn writes_after(all: &[String], before: usize) -> Vec<String> {
    all.iter()
        .skip(before)
        .filter(|r| !r.starts_with("GET ") && !r.ends_with("/batch/read"))
        .cloned()
        .collect()
}

async fn conflict_in(db: &LocalDb, id: &str) -> Conflict {
    SqliteConflicts::new(db.clone())
        .get(id)
        .await
        .expect("store")
        .expect("the conflict")
}

async fn dashboard(url: &str) -> String {
    reqwest::get(format!("{url}_relay"))
        .await
        .expect("dashboard")
        .text()
        .await
        .expect("text")
}
