//! `resolve`'s guard end to end: a side edited after the conflict — the winner's (a user in
//! HubSpot's UI, a workspace member in Attio) or the loser's own — is refused with nothing
//! written on either side until `--force`; `--dry-run` reads and plans both writes and writes
//! nothing. The stand-ins and helpers are the parent module's.

use super::*;

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
    let contact_b = s.hubspot.seed_contact(&FakeAttio::email(PERSON_B));
    let attio_won = conflict(
        PERSON_B,
        &contact_b,
        (&FakeAttio::job_title(PERSON_B), T0 + 120_000),
        ("Manager", T0 + 30_000),
    );
    let store = SqliteConflicts::new(s.db.clone());
    for c in [&hubspot_won, &attio_won] {
        store.record(c).await.expect("seed");
    }
    // The losers' sides hold the winners' values, as the consumer synced them.
    relay_writes_attio(&s, PERSON_A, "Analyst").await;
    relay_writes_hubspot(&s, &contact_b, &FakeAttio::job_title(PERSON_B)).await;
    let seeded = s.attio.attio_writes().len();

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
                .contains("still holds the winner's value \"Analyst\"")
            && dry.stdout.contains(&format!("Attio people {PERSON_A}"))
            && dry
                .stdout
                .contains("attio holds the winner's value \"Analyst\" (synced there"),
        "both writes planned and checked: {}",
        dry.stdout
    );
    let seen = requests(&s.hubspot_server).await;
    assert!(
        seen[before..].iter().any(|r| r.ends_with("/batch/read")),
        "the dry run reads HubSpot: {seen:?}"
    );
    assert_eq!(writes_after(&seen, before), Vec::<String>::new());
    assert_eq!(s.hubspot.contact_changes().len(), changes);
    assert_eq!(
        s.attio.attio_writes().len(),
        seeded,
        "the dry run writes no Attio"
    );
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
    assert_eq!(s.attio.attio_writes().len(), seeded, "nor to Attio");
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
    assert_eq!(attio_title(&s, PERSON_A).await.as_deref(), Some("Poet"));
    let resolution = conflict_in(&s.db, &hubspot_won.id).await.resolution;
    assert_eq!(resolution.map(|r| r.kept), Some(Side::Attio));
    let entry = ledger_of(&s.db, PERSON_A).await.expect("ledger entry");
    assert_eq!(entry.fingerprint, ledger_fingerprint(&spec(), Some("Poet")));
    let seeded = s.attio.attio_writes().len();

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
    assert_eq!(
        s.attio.attio_writes().len(),
        seeded,
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
    assert_eq!(
        writes.len(),
        seeded + 1,
        "only the member's edit: {writes:?}"
    );
    assert_eq!(writes[seeded].kind, AttioWriteKind::UserEdit);
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
    assert_eq!(s.attio.attio_writes().len(), seeded + 1);
    assert_eq!(conflict_in(&s.db, &attio_won.id).await.resolution, None);

    // --force writes HubSpot's value over the member's edit and settles the conflict.
    let forced = s.conflicts(&["resolve", &attio_won.id, "--keep", "hubspot", "--force"]);
    assert!(forced.ok, "{}", forced.text());
    let writes = s.attio.attio_writes();
    assert_eq!(writes.len(), seeded + 2, "{writes:?}");
    assert_eq!(writes[seeded + 1].kind, AttioWriteKind::Update);
    assert_eq!(writes[seeded + 1].values["job_title"], "Manager");
    assert_eq!(writes[seeded + 1].changed, ["job_title"]);
    assert_eq!(
        hubspot_title(&s, &contact_b).await.as_deref(),
        Some("Manager"),
        "and HubSpot, the loser's own side"
    );
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

#[tokio::test(flavor = "multi_thread")]
async fn a_newer_edit_on_the_losers_own_side_is_refused_on_both_sides_until_forced() {
    let s = setup().await;
    // HubSpot won C's conflict with "Analyst" and the consumer synced it to Attio.
    let contact_c = s.hubspot.seed_contact(&FakeAttio::email(PERSON_C));
    s.hubspot
        .edit_contact(&contact_c, HUBSPOT_USER, json!({"jobtitle": "Analyst"}))
        .expect("contact");
    let hubspot_won = conflict(PERSON_C, &contact_c, ("Poet", T0), ("Analyst", T0 + 60_000));
    SqliteConflicts::new(s.db.clone())
        .record(&hubspot_won)
        .await
        .expect("seed");
    relay_writes_attio(&s, PERSON_C, "Analyst").await;

    // Then a workspace member retitles C in Attio, the loser's own side.
    s.attio
        .edit_as_user("people", PERSON_C, MEMBER, json!({"job_title": "Founder"}))
        .expect("record");
    let edited_at = s.attio.attio_writes().last().expect("the edit").at_ms;
    let attio_writes = s.attio.attio_writes().len();
    let changes = s.hubspot.contact_changes().len();
    let before = requests(&s.hubspot_server).await.len();
    let refused = s.conflicts(&["resolve", &hubspot_won.id, "--keep", "attio"]);
    assert!(!refused.ok, "{}", refused.text());
    let text = refused.text();
    for needle in [
        "refused",
        "changed on attio",
        &format!("Attio people {PERSON_C} was to hold \"Analyst\""),
        "or \"Poet\"",
        "now holds \"Founder\"",
        &iso_instant(edited_at),
        "nothing was written on either side",
        "--keep attio --force",
        &format!("resolve {} --keep hubspot", hubspot_won.id),
    ] {
        assert!(text.contains(needle), "no {needle:?} in {text}");
    }
    // HubSpot (the winner's side, which passed its check) got no write either.
    assert_eq!(
        writes_after(&requests(&s.hubspot_server).await, before),
        Vec::<String>::new()
    );
    assert_eq!(s.hubspot.contact_changes().len(), changes);
    assert_eq!(s.attio.attio_writes().len(), attio_writes);
    assert_eq!(
        hubspot_title(&s, &contact_c).await.as_deref(),
        Some("Analyst")
    );
    assert_eq!(attio_title(&s, PERSON_C).await.as_deref(), Some("Founder"));
    assert_eq!(conflict_in(&s.db, &hubspot_won.id).await.resolution, None);
    assert_eq!(ledger_of(&s.db, PERSON_C).await, None);

    // --force: both sides get the kept value, the ledger agrees, the conflict is settled.
    let forced = s.conflicts(&["resolve", &hubspot_won.id, "--keep", "attio", "--force"]);
    assert!(forced.ok, "{}", forced.text());
    assert_eq!(
        (
            hubspot_title(&s, &contact_c).await.as_deref(),
            attio_title(&s, PERSON_C).await.as_deref()
        ),
        (Some("Poet"), Some("Poet"))
    );
    let entry = ledger_of(&s.db, PERSON_C).await.expect("ledger entry");
    assert_eq!(entry.fingerprint, ledger_fingerprint(&spec(), Some("Poet")));
    assert_eq!(entry.attio_side(), entry.fingerprint);
    let resolution = conflict_in(&s.db, &hubspot_won.id).await.resolution;
    assert_eq!(resolution.map(|r| r.kept), Some(Side::Attio));
    assert!(s.attio.unexpected.lock().expect("lock").is_empty());
    assert!(s.hubspot.state.lock().expect("state").unexpected.is_empty());
}
