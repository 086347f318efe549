//! `attio-relay conflicts list|show|resolve` on a seeded local SQLite file, against the
//! stateful Attio and HubSpot stand-ins (`integration_tests::fake_apis`), and the dev
//! dashboard's conflicts section over the same file.
//!
//! Three conflicts on `jobtitle` (direction `both`): one HubSpot won and Attio's value is kept
//! (written to HubSpot, on the contact the id mapping names), one Attio won and HubSpot's
//! value is kept (written to Attio with the consumer's reverse mapping), one kept as it won
//! (nothing read or written). Each resolve must leave the ledger holding the kept value's
//! fingerprint.
//!
//! The guard: a winning side edited after the conflict (a user in HubSpot's UI, a workspace
//! member in Attio) makes `resolve --keep <loser>` refuse — nothing written, the conflict
//! open, the ledger untouched, the error naming the newer value and its time — until
//! `--force`; `--dry-run` reads and plans, and writes nothing.

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
    let attio_won = conflict(
        PERSON_B,
        "7777",
        (&FakeAttio::job_title(PERSON_B), T0 + 120_000),
        ("Manager", T0 + 30_000),
    );
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

    // Keep Attio's losing value: written to HubSpot on the mapped contact, by the app.
    let kept = s.conflicts(&["resolve", &hubspot_won.id[..10], "--keep", "attio"]);
    assert!(kept.ok, "{}", kept.text());
    assert!(
        kept.stdout.contains("written to hubspot"),
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
    let entry = ledger_of(&s.db, PERSON_A).await.expect("ledger entry");
    assert_eq!(entry.fingerprint, ledger_fingerprint(&spec(), Some("Poet")));
    assert_eq!(entry.direction, SyncDirection::AttioToHubspot);

    // Keep HubSpot's losing value: written to Attio, reversed through the mapping.
    let kept = s.conflicts(&["resolve", &attio_won.id, "--keep", "hubspot"]);
    assert!(kept.ok, "{}", kept.text());
    let writes = s.attio.attio_writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].kind, AttioWriteKind::Update);
    assert_eq!(writes[0].record_id, PERSON_B);
    assert_eq!(writes[0].values["job_title"], "Manager");
    assert_eq!(writes[0].changed, ["job_title"]);
    let read: Value = reqwest::Client::new()
        .get(format!(
            "{}/v2/objects/people/records/{PERSON_B}",
            s.attio_server.uri()
        ))
        .bearer_auth(ATTIO_TOKEN)
        .send()
        .await
        .expect("read")
        .json()
        .await
        .expect("json");
    let current = read["data"]["values"]["job_title"]
        .as_array()
        .expect("titles")
        .iter()
        .find(|v| v["active_until"].is_null())
        .cloned()
        .expect("a current title");
    assert_eq!(current["value"], "Manager");
    let entry = ledger_of(&s.db, PERSON_B).await.expect("ledger entry");
    assert_eq!(
        entry.fingerprint,
        ledger_fingerprint(&spec(), Some("Manager"))
    );
    assert_eq!(entry.direction, SyncDirection::HubspotToAttio);

    // Keep the winner: marked resolved, nothing read or written anywhere.
    let hubspot_changes = s.hubspot.contact_changes().len();
    let seen = (
        requests(&s.attio_server).await,
        requests(&s.hubspot_server).await,
    );
    let kept = s.conflicts(&["resolve", &settled_as_won.id, "--keep", "attio"]);
    assert!(kept.ok, "{}", kept.text());
    assert!(kept.stdout.contains("the winner"), "{}", kept.stdout);
    assert_eq!(s.attio.attio_writes().len(), 1);
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

#[tokio::test(flavor = "multi_thread")]
async fn resolve_refuses_to_overwrite_a_newer_edit_until_forced() {
    let s = setup().await;
    // HubSpot won A's conflict with "Analyst"; Attio won B's with its title.
    let contact_a = s.hubspot.seed_contact(&FakeAttio::email(PERSON_A));
    s.hubspot
        .edit_contact(&contact_a, HUBSPOT_USER, json!({"jobtitle": "Analyst"}))
        .expect("contact");
    SqliteMappings::new(s.db.clone())
        .put(CrmObject::Contacts, PERSON_A, &CrmId(contact_a.clone()))
        .await
        .expect("mapping");
    let hubspot_won = conflict(PERSON_A, &contact_a, ("Poet", T0), ("Analyst", T0 + 60_000));
    let attio_won = conflict(
        PERSON_B,
        "7777",
        (&FakeAttio::job_title(PERSON_B), T0 + 120_000),
        ("Manager", T0 + 30_000),
    );
    let store = SqliteConflicts::new(s.db.clone());
    for c in [&hubspot_won, &attio_won] {
        store.record(c).await.expect("seed");
    }

    // HubSpot side. A dry run while HubSpot still holds the winner: the check passes, the
    // plan is shown, nothing is written.
    let before = requests(&s.hubspot_server).await.len();
    let changes = s.hubspot.contact_changes().len();
    let dry = s.conflicts(&["resolve", &hubspot_won.id, "--keep", "attio", "--dry-run"]);
    assert!(dry.ok, "{}", dry.text());
    assert!(
        dry.stdout.contains("dry run")
            && dry
                .stdout
                .contains(&format!("HubSpot contacts {contact_a}"))
            && dry.stdout.contains("\"jobtitle\":\"Poet\"")
            && dry
                .stdout
                .contains("still holds the winner's value \"Analyst\""),
        "{}",
        dry.stdout
    );
    let seen = requests(&s.hubspot_server).await;
    assert!(
        seen[before..].iter().any(|r| r.ends_with("/batch/read")),
        "the dry run reads HubSpot: {seen:?}"
    );
    assert_eq!(writes_after(&seen, before), Vec::<String>::new());
    assert_eq!(s.hubspot.contact_changes().len(), changes);
    assert_eq!(conflict_in(&s.db, &hubspot_won.id).await.resolution, None);
    assert_eq!(ledger_of(&s.db, PERSON_A).await, None);

    // A user changes the title in HubSpot after the conflict: resolve refuses, says what
    // HubSpot holds now, since when, and what to do; nothing is written.
    s.hubspot
        .edit_contact(&contact_a, HUBSPOT_USER, json!({"jobtitle": "Director"}))
        .expect("contact");
    let edited_at = s.hubspot.contact_changes().last().expect("the edit").at_ms;
    let changes = s.hubspot.contact_changes().len();
    let before = requests(&s.hubspot_server).await.len();
    for extra in [&[][..], &["--dry-run"][..]] {
        let mut args = vec!["resolve", &hubspot_won.id[..], "--keep", "attio"];
        args.extend_from_slice(extra);
        let refused = s.conflicts(&args);
        assert!(!refused.ok, "{extra:?}: {}", refused.text());
        let text = refused.text();
        for needle in [
            "refused",
            "\"Director\"",
            "\"Analyst\"",
            &iso_instant(edited_at),
            &format!("CRM_UI userId:{HUBSPOT_USER}"),
            "--keep attio --force",
            &format!("resolve {} --keep hubspot", hubspot_won.id),
        ] {
            assert!(text.contains(needle), "{extra:?}: no {needle:?} in {text}");
        }
    }
    assert_eq!(
        writes_after(&requests(&s.hubspot_server).await, before),
        Vec::<String>::new(),
        "a refused resolve sends no write"
    );
    assert_eq!(s.hubspot.contact_changes().len(), changes);
    assert_eq!(conflict_in(&s.db, &hubspot_won.id).await.resolution, None);
    assert_eq!(ledger_of(&s.db, PERSON_A).await, None);

    // --dry-run --force: plans the overwrite without reading or writing.
    let before = requests(&s.hubspot_server).await.len();
    let dry = s.conflicts(&[
        "resolve",
        &hubspot_won.id,
        "--keep",
        "attio",
        "--force",
        "--dry-run",
    ]);
    assert!(dry.ok, "{}", dry.text());
    assert!(
        dry.stdout.contains("would write") && dry.stdout.contains("--force"),
        "{}",
        dry.stdout
    );
    assert_eq!(
        requests(&s.hubspot_server).await.len(),
        before,
        "forced: not read"
    );
    assert_eq!(conflict_in(&s.db, &hubspot_won.id).await.resolution, None);

    // --force overwrites the newer value, as the app, and settles the conflict.
    let forced = s.conflicts(&["resolve", &hubspot_won.id, "--keep", "attio", "--force"]);
    assert!(forced.ok, "{}", forced.text());
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
    let resolution = conflict_in(&s.db, &hubspot_won.id).await.resolution;
    assert_eq!(resolution.map(|r| r.kept), Some(Side::Attio));
    let entry = ledger_of(&s.db, PERSON_A).await.expect("ledger entry");
    assert_eq!(entry.fingerprint, ledger_fingerprint(&spec(), Some("Poet")));

    // Attio side. A dry run while Attio still holds the winner: planned, nothing written.
    let dry = s.conflicts(&["resolve", &attio_won.id, "--keep", "hubspot", "--dry-run"]);
    assert!(dry.ok, "{}", dry.text());
    assert!(
        dry.stdout.contains(&format!("Attio people {PERSON_B}"))
            && dry.stdout.contains("\"job_title\"")
            && dry.stdout.contains("Manager")
            && dry.stdout.contains("still holds the winner's value"),
        "{}",
        dry.stdout
    );
    assert!(
        s.attio.attio_writes().is_empty(),
        "{:?}",
        s.attio.attio_writes()
    );
    assert_eq!(conflict_in(&s.db, &attio_won.id).await.resolution, None);

    // A workspace member changes the title after the conflict: refused, nothing written.
    s.attio
        .edit_as_user("people", PERSON_B, MEMBER, json!({"job_title": "CTO"}))
        .expect("record");
    let edited_at = s.attio.attio_writes().last().expect("the edit").at_ms;
    let refused = s.conflicts(&["resolve", &attio_won.id, "--keep", "hubspot"]);
    assert!(!refused.ok, "{}", refused.text());
    let text = refused.text();
    for needle in [
        "refused",
        "\"CTO\"",
        &format!("{:?}", FakeAttio::job_title(PERSON_B)),
        &iso_instant(edited_at),
        "--keep hubspot --force",
        &format!("resolve {} --keep attio", attio_won.id),
    ] {
        assert!(text.contains(needle), "no {needle:?} in {text}");
    }
    let writes = s.attio.attio_writes();
    assert_eq!(writes.len(), 1, "only the member's edit: {writes:?}");
    assert_eq!(writes[0].kind, AttioWriteKind::UserEdit);
    assert_eq!(conflict_in(&s.db, &attio_won.id).await.resolution, None);
    assert_eq!(ledger_of(&s.db, PERSON_B).await, None);

    // --dry-run --force: nothing written either.
    let dry = s.conflicts(&[
        "resolve",
        &attio_won.id,
        "--keep",
        "hubspot",
        "--dry-run",
        "--force",
    ]);
    assert!(dry.ok, "{}", dry.text());
    assert_eq!(s.attio.attio_writes().len(), 1);
    assert_eq!(conflict_in(&s.db, &attio_won.id).await.resolution, None);

    // --force writes HubSpot's value over the member's edit and settles the conflict.
    let forced = s.conflicts(&["resolve", &attio_won.id, "--keep", "hubspot", "--force"]);
    assert!(forced.ok, "{}", forced.text());
    let writes = s.attio.attio_writes();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert_eq!(writes[1].kind, AttioWriteKind::Update);
    assert_eq!(writes[1].values["job_title"], "Manager");
    assert_eq!(writes[1].changed, ["job_title"]);
    let resolution = conflict_in(&s.db, &attio_won.id).await.resolution;
    assert_eq!(resolution.map(|r| r.kept), Some(Side::Hubspot));
    let entry = ledger_of(&s.db, PERSON_B).await.expect("ledger entry");
    assert_eq!(
        entry.fingerprint,
        ledger_fingerprint(&spec(), Some("Manager"))
    );

    assert!(s.attio.unexpected.lock().expect("lock").is_empty());
    assert!(s.hubspot.state.lock().expect("state").unexpected.is_empty());
}

async fn dashboard(url: &str) -> String {
    reqwest::get(format!("{url}_relay"))
        .await
        .expect("dashboard")
        .text()
        .await
        .expect("text")
}
