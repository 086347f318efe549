//! The refusals `resolve` makes before reading or writing anything; the writes themselves
//! are tested in `write.rs` and, end to end, in the CLI test.

use clap::Parser;
use relay_crm::CrmObject;
use relay_mappings::ConflictValue;

use super::*;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    sync: SyncArgs,
}

struct Fixed;
impl Clock for Fixed {
    fn now(&self) -> i64 {
        1_772_400_000
    }
}

fn conflict(winner: Side) -> Conflict {
    let value = |v: &str| ConflictValue {
        value: Some(v.to_owned()),
        changed_at_ms: 1,
    };
    Conflict {
        id: "c0ffee00".into(),
        object: CrmObject::Contacts,
        attio_record_id: "p1".into(),
        crm_id: "101".into(),
        property: "jobtitle".into(),
        attribute: "job_title".into(),
        attio: value("Poet"),
        hubspot: value("Analyst"),
        winner,
        detected_at_ms: 2,
        resolution: None,
    }
}

/// Resolves `conflict` keeping its loser with these tokens; the error's text.
async fn refused(
    conflict: &Conflict,
    attio: Option<&str>,
    hubspot: Option<&str>,
    deployed: bool,
) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = LocalDb::open(&dir.path().join("relay.sqlite")).expect("db");
    let store = SqliteConflicts::new(db.clone());
    store.record(conflict).await.expect("seed");
    let mut sync = Cli::try_parse_from(["t"]).expect("args").sync;
    sync.attio_token = attio.map(str::to_owned);
    sync.hubspot_token = hubspot.map(str::to_owned);
    // Loopback only: nothing may be called before the refusal.
    sync.attio_api_url = "http://127.0.0.1:9/v2".into();
    sync.hubspot_api_url = "http://127.0.0.1:9".into();
    let how = How {
        deployed,
        ..How::default()
    };
    let err = resolve_with(
        &store,
        &SqliteMappings::new(db.clone()),
        &sync,
        dir.path(),
        conflict,
        conflict.loser(),
        how,
        &Fixed,
    )
    .await
    .err()
    .expect("refused");
    let still = store.get(&conflict.id).await.expect("store").expect("kept");
    assert_eq!(still.resolution, None, "the conflict stays open");
    assert!(
        !dir.path().join("crm-outbox.jsonl").exists()
            || std::fs::read_to_string(dir.path().join("crm-outbox.jsonl"))
                .expect("outbox")
                .is_empty(),
        "nothing reached the outbox"
    );
    format!("{err:#}")
}

#[tokio::test]
async fn keeping_attios_value_needs_the_attio_token_too() {
    let text = refused(&conflict(Side::Hubspot), None, Some("hs"), false).await;
    assert!(
        text.contains("ATTIO_API_TOKEN") && text.contains("keeping attio's value"),
        "{text}"
    );
}

#[tokio::test]
async fn a_deployment_refuses_a_hubspot_write_that_only_reaches_the_outbox() {
    for winner in [Side::Hubspot, Side::Attio] {
        let text = refused(&conflict(winner), Some("attio"), None, true).await;
        assert!(
            text.contains("HUBSPOT_TOKEN") && text.contains("--conflicts-table"),
            "{text}"
        );
    }
}
