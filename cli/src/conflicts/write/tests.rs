//! The guard over the in-memory HubSpot (`MemoryCrm`, a `CrmSource` with property
//! history), the in-memory Attio (`MemoryAttio`) and the embedded mappings store, on the
//! winner's side and on the loser's own side; the CLI test drives the whole command
//! against the wiremock stand-ins of both APIs.

use std::sync::Arc;

use relay_attio::{MemoryAttio, Record};
use relay_crm::{CrmObject, MemoryCrm};
use relay_embedded::LocalDb;
use relay_mappings::{ConflictValue, SqliteMappings};

use super::*;

/// 2026-03-01T00:00:00Z, HubSpot's date form of "2026-03-01".
const MARCH_1: &str = "1772323200000";
/// When the user's edits in HubSpot happen.
const EDITED_AT: i64 = 1_772_400_000_000;

const MAPPING: &str = r#"
[objects.people]
crm_object = "contacts"
[objects.people.properties]
email = "email_addresses"
birthday = { attribute = "birthday", format = "date", direction = "both" }
"#;

/// HubSpot won with `hubspot`; Attio's `attio` is the loser an operator keeps.
fn conflict(crm_id: &CrmId, attio: &str, hubspot: &str) -> Conflict {
    Conflict {
        id: "c0ffee".into(),
        object: CrmObject::Contacts,
        attio_record_id: "p1".into(),
        crm_id: crm_id.0.clone(),
        property: "birthday".into(),
        attribute: "birthday".into(),
        attio: ConflictValue {
            value: Some(attio.into()),
            changed_at_ms: 1,
        },
        hubspot: ConflictValue {
            value: Some(hubspot.into()),
            changed_at_ms: 2,
        },
        winner: Side::Hubspot,
        detected_at_ms: 3,
        resolution: None,
    }
}

/// Attio's person `p1` holding `birthday` (as a workspace member set it, at `active_from`).
fn person(birthday: &str, active_from: &str) -> Record {
    serde_json::from_value(serde_json::json!({
        "id": {"workspace_id": "ws", "object_id": "people-id", "record_id": "p1"},
        "created_at": "2026-01-01T00:00:00.000000000Z",
        "values": {"birthday": [{
            "active_from": active_from, "active_until": null,
            "created_by_actor": {"type": "workspace-member", "id": "m1"},
            "attribute_type": "date", "value": birthday
        }]}
    }))
    .expect("record")
}

struct World {
    attio: MemoryAttio,
    crm: MemoryCrm,
    mappings: SqliteMappings,
    fields: FieldMapping,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = LocalDb::open(&dir.path().join("relay.sqlite")).expect("db");
    let attio = MemoryAttio::new().with_clock(Arc::new(|| EDITED_AT + 60_000));
    attio.add_object("people-id", "people");
    World {
        attio,
        crm: MemoryCrm::new().with_clock(Arc::new(|| EDITED_AT)),
        mappings: SqliteMappings::new(db),
        fields: FieldMapping::load(Some(MAPPING), None).expect("mapping"),
        _dir: dir,
    }
}

impl World {
    /// A contact whose birthday a user set in HubSpot.
    fn contact(&self, birthday: &str) -> CrmId {
        let properties: Properties = [("birthday".to_owned(), birthday.to_owned())].into();
        self.crm.edit_by_user(CrmObject::Contacts, None, properties)
    }

    async fn plan(&self, conflict: &Conflict, force: bool) -> anyhow::Result<Plan> {
        let write = Write {
            fields: &self.fields,
            mappings: &self.mappings,
            conflict,
            now_ms: 0,
        };
        write.plan_hubspot(Some(&self.crm), force).await
    }

    async fn plan_attio(&self, conflict: &Conflict, force: bool) -> anyhow::Result<Plan> {
        let write = Write {
            fields: &self.fields,
            mappings: &self.mappings,
            conflict,
            now_ms: 0,
        };
        write.plan_attio(&self.attio, force).await
    }
}

fn newer_edit(err: &anyhow::Error) -> &NewerEdit {
    err.downcast_ref::<Box<NewerEdit>>()
        .unwrap_or_else(|| panic!("not a NewerEdit: {err:#}"))
}

#[tokio::test]
async fn the_winner_held_in_another_form_is_no_newer_edit() {
    let w = world();
    // The conflict recorded "2026-03-01"; HubSpot hands the same date back as epoch ms.
    let id = w.contact(MARCH_1);
    let c = conflict(&id, "2026-02-01", "2026-03-01");
    let plan = w.plan(&c, false).await.expect("the check passes");
    assert_eq!(plan.checked, Checked::Holds(Some(MARCH_1.to_owned())));
    assert_eq!(plan.place(&c), format!("HubSpot contacts {id}"));
    assert_eq!(plan.body(), serde_json::json!({"birthday": "2026-02-01"}));
    assert_eq!(w.crm.batch_reads(), [1], "one read of the one object");
}

#[tokio::test]
async fn a_newer_edit_is_refused_with_what_and_when_and_force_reads_nothing() {
    let w = world();
    let id = w.contact("2026-04-01");
    let c = conflict(&id, "2026-02-01", "2026-03-01");
    let err = w.plan(&c, false).await.expect_err("a newer edit");
    let newer = newer_edit(&err);
    assert_eq!(newer.side, Side::Hubspot);
    assert_eq!(newer.now.as_deref(), Some("2026-04-01"));
    assert_eq!(newer.recorded.as_deref(), Some("2026-03-01"));
    assert_eq!(newer.changed_at_ms, Some(EDITED_AT));
    assert!(
        newer.by.as_deref().is_some_and(|b| b.contains("CRM_UI")),
        "{newer:?}"
    );
    let text = err.to_string();
    for needle in [
        "\"2026-04-01\"",
        &iso_instant(EDITED_AT),
        "resolve c0ffee --keep attio --force",
        "resolve c0ffee --keep hubspot",
        "nothing was written",
    ] {
        assert!(text.contains(needle), "no {needle:?} in {text}");
    }

    let reads = w.crm.batch_reads().len();
    let plan = w.plan(&c, true).await.expect("forced");
    assert_eq!(plan.checked, Checked::Forced);
    assert_eq!(w.crm.batch_reads().len(), reads, "--force does not read");
}

#[tokio::test]
async fn a_winner_side_already_holding_the_kept_value_may_be_written() {
    let w = world();
    let id = w.contact("2026-02-01");
    let c = conflict(&id, "2026-02-01", "2026-03-01");
    let plan = w.plan(&c, false).await.expect("nothing newer is lost");
    assert_eq!(plan.checked, Checked::AlreadyKept);
}

#[tokio::test]
async fn an_object_hubspot_no_longer_holds_is_refused() {
    let w = world();
    let c = conflict(&CrmId("404".into()), "2026-02-01", "2026-03-01");
    let err = w.plan(&c, false).await.expect_err("gone");
    let text = format!("{err:#}");
    assert!(
        text.contains("HubSpot contacts 404 is gone") && text.contains("--keep hubspot"),
        "{text}"
    );
}

// The loser's own side: HubSpot won, so the consumer synced HubSpot's date to Attio when
// it recorded the conflict; keeping Attio's value must write Attio too.

#[tokio::test]
async fn the_losers_side_holding_the_synced_winner_gets_the_kept_value_too() {
    let w = world();
    let id = w.contact("2026-03-01");
    w.attio.put_record(
        "people",
        person("2026-03-01", "2026-03-01T12:00:00.000000000Z"),
    );
    let c = conflict(&id, "2026-02-01", "2026-03-01");
    let plan = w
        .plan_attio(&c, false)
        .await
        .expect("the winner's, as synced");
    assert!(
        matches!(&plan.checked, Checked::Holds(Some(v)) if ledger_fingerprint(&birthday(&w), Some(v)) == ledger_fingerprint(&birthday(&w), Some("2026-03-01"))),
        "{:?}",
        plan.checked
    );
    assert_eq!(plan.side(), Side::Attio);
    assert_eq!(plan.place(&c), "Attio people p1");
    assert_eq!(
        plan.body(),
        serde_json::json!({"birthday": "2026-02-01"}),
        "the kept (Attio's own, losing) value, not HubSpot's"
    );
    let check = plan.describe_check(&c);
    assert!(
        check.contains("attio holds the winner's value") && check.contains("synced there"),
        "{check}"
    );

    // Written, the ledger records the kept value once, in both sides' forms.
    let write = Write {
        fields: &w.fields,
        mappings: &w.mappings,
        conflict: &c,
        now_ms: 5,
    };
    let attio_form = write.send_attio(&w.attio, &plan).await.expect("written");
    let stored = w.attio.get_record("people", "p1").await.expect("read");
    assert_eq!(stored.first_text("birthday").as_deref(), Some("2026-02-01"));
    write.record(Some(attio_form)).await.expect("ledger");
    let ledgers = w
        .mappings
        .ledgers(CrmObject::Contacts, &["p1".to_owned()])
        .await
        .expect("ledgers");
    let entry = &ledgers["p1"]["birthday"];
    assert_eq!(
        entry.fingerprint,
        ledger_fingerprint(&birthday(&w), Some("2026-02-01"))
    );
    assert_eq!(
        entry.attio_side(),
        entry.fingerprint,
        "the same date both sides"
    );
    assert_eq!(entry.direction, SyncDirection::AttioToHubspot);
    assert_eq!(entry.at_ms, 5);
}

#[tokio::test]
async fn the_losers_side_not_yet_synced_still_holds_the_kept_value() {
    let w = world();
    let id = w.contact("2026-03-01");
    w.attio.put_record(
        "people",
        person("2026-02-01", "2026-02-01T12:00:00.000000000Z"),
    );
    let c = conflict(&id, "2026-02-01", "2026-03-01");
    let plan = w.plan_attio(&c, false).await.expect("its own value");
    assert_eq!(plan.checked, Checked::AlreadyKept);
    assert!(
        plan.describe_check(&c).contains("not synced there"),
        "{}",
        plan.describe_check(&c)
    );
}

#[tokio::test]
async fn a_newer_edit_on_the_losers_side_is_refused_naming_that_side() {
    let w = world();
    let id = w.contact("2026-03-01");
    w.attio.put_record(
        "people",
        person("2026-05-05", "2026-03-02T08:00:00.000000000Z"),
    );
    let c = conflict(&id, "2026-02-01", "2026-03-01");
    // The winner's side passes...
    w.plan(&c, false).await.expect("HubSpot holds the winner's");
    // ...the loser's does not.
    let err = w
        .plan_attio(&c, false)
        .await
        .expect_err("a newer edit in Attio");
    let newer = newer_edit(&err);
    assert_eq!((newer.side, newer.winner), (Side::Attio, Side::Hubspot));
    // Attio's date read in HubSpot's form (epoch milliseconds), as the consumer reads it.
    let may_5 = "1777939200000";
    assert_eq!(newer.now.as_deref(), Some(may_5));
    assert_eq!(newer.recorded.as_deref(), Some("2026-03-01"));
    assert_eq!(newer.kept.as_deref(), Some("2026-02-01"));
    assert_eq!(newer.changed_at_ms, Some(1_772_438_400_000));
    let text = err.to_string();
    for needle in [
        "changed on attio",
        "Attio people p1 was to hold \"2026-03-01\" (the winner's value",
        "or \"2026-02-01\"",
        &format!("now holds \"{may_5}\""),
        "2026-03-02T08:00:00.000Z",
        "nothing was written on either side",
        "resolve c0ffee --keep attio --force",
        "leave attio's newer value",
        "resolve c0ffee --keep hubspot",
    ] {
        assert!(text.contains(needle), "no {needle:?} in {text}");
    }
    let forced = w.plan_attio(&c, true).await.expect("forced");
    assert_eq!(forced.checked, Checked::Forced);
}

#[tokio::test]
async fn keeping_hubspots_value_checks_hubspot_as_the_losers_side() {
    let w = world();
    // Attio won with 2026-03-01 and the consumer synced it to HubSpot.
    let id = w.contact("2026-03-01");
    let mut c = conflict(&id, "2026-03-01", "2026-02-01");
    c.winner = Side::Attio;
    let plan = w.plan(&c, false).await.expect("the synced winner");
    assert_eq!(plan.checked, Checked::Holds(Some("2026-03-01".to_owned())));
    assert_eq!(
        plan.body(),
        serde_json::json!({"birthday": "2026-02-01"}),
        "HubSpot gets its own, kept value back"
    );
    assert!(plan.describe_check(&c).contains("synced there"));

    // A user edits it in HubSpot: refused on HubSpot, the loser's side.
    let _ = w.crm.edit_by_user(
        CrmObject::Contacts,
        Some(&id),
        [("birthday".to_owned(), "2026-06-06".to_owned())].into(),
    );
    let err = w
        .plan(&c, false)
        .await
        .expect_err("a newer edit in HubSpot");
    let newer = newer_edit(&err);
    assert_eq!((newer.side, newer.winner), (Side::Hubspot, Side::Attio));
    let text = err.to_string();
    assert!(
        text.contains("--keep hubspot --force") && text.contains("--keep attio"),
        "{text}"
    );
}

fn birthday(w: &World) -> PropertySpec {
    w.fields.objects["people"].properties["birthday"].clone()
}
