//! Two-way sync over the memory adapters, the review's findings: every write path takes the
//! forward rules, records are locked across read → write → ledger, a conflict is never decided
//! on a guessed time, HubSpot merges and links land in the mappings, a record Attio does not
//! return is confirmed before a HubSpot edit is acknowledged, both name parts travel together,
//! and a value each side stores in its own form is no change.

use std::sync::Arc;

use relay_attio::MemoryAttio;
use relay_crm::{CrmId, CrmObject, ID_PROPERTY, MemoryCrm, OutboxEntry};
use relay_mappings::{IdMappings, MemoryMappings, Side, Tombstones};
use serde_json::{Value, json};

use super::two_way::{MAPPING, Now, T0, world, world_with};
use super::{ADA, PEOPLE, inbound, person, record_event};
use crate::two_way::HubspotHandler;
use crate::{BatchHandler, Disposition, FieldMapping, RecordsHandler, SyncContext};

fn all_retried(outcomes: &[crate::MessageOutcome]) -> bool {
    outcomes
        .iter()
        .all(|o| matches!(o.disposition, Disposition::Retry { .. }))
}

#[tokio::test]
async fn a_conflict_with_no_hubspot_history_is_retried_not_guessed() {
    let mut w = world();
    w.ctx
        .attio
        .put_record("people", person(ADA, "ada@example.com", "Ada"));
    // A contact whose firstname HubSpot gives no history for (seeded: no change recorded).
    let props = [
        ("email".to_owned(), "ada@example.com".to_owned()),
        ("firstname".to_owned(), "Augusta".to_owned()),
        (ID_PROPERTY.to_owned(), ADA.to_owned()),
    ];
    let id = w.crm.seed(CrmObject::Contacts, props.into());
    w.ctx
        .mappings
        .put(CrmObject::Contacts, ADA, &id)
        .await
        .unwrap();
    let agreed = relay_mappings::Synced {
        fingerprint: relay_mappings::fingerprint(Some("Ada")),
        at_ms: T0,
        direction: relay_mappings::SyncDirection::AttioToHubspot,
        attio_fingerprint: None,
    };
    let ledger = [("firstname".to_owned(), agreed)].into();
    relay_mappings::SyncLedger::record(&w.stores, CrmObject::Contacts, ADA, &ledger)
        .await
        .unwrap();
    w.tick(60);
    let events = w.attio_user_edit(json!({"name": [{"first_name": "Ann", "last_name": "Example", "full_name": "Ann Example"}]})).await;

    let forward = w.forward_outcomes(events).await;
    assert!(all_retried(&forward), "forward: {forward:?}");
    let change = json!({"eventId": 9, "subscriptionType": "contact.propertyChange", "objectId": id.0.parse::<u64>().unwrap(),
        "propertyName": "firstname", "propertyValue": "Augusta", "changeSource": "CRM_UI", "sourceId": "userId:1", "occurredAt": T0 + 1});
    let reverse = w.reverse_outcomes(vec![change]).await;
    assert!(all_retried(&reverse), "reverse: {reverse:?}");
    assert!(
        w.stores.conflicts().is_empty(),
        "no conflict decided on a guessed time"
    );
    assert_eq!(w.contact().1["firstname"], "Augusta");
    assert_eq!(w.attio_first_name(), "Ann");
}

#[tokio::test]
async fn a_linked_contact_whose_mapping_was_never_stored_gets_it_on_the_way_back() {
    let mut w = world();
    w.ctx
        .attio
        .put_record("people", person(ADA, "ada@example.com", "Ada"));
    // Linked in HubSpot (attio_record_id written), the mapping write lost.
    let props = [
        ("email".to_owned(), "ada@example.com".to_owned()),
        (ID_PROPERTY.to_owned(), ADA.to_owned()),
    ];
    let id = w.crm.seed(CrmObject::Contacts, props.into());
    w.hubspot_user_edit("firstname", "Augusta");
    let events = w.crm.take_webhook_events();
    w.reverse(events).await;
    assert_eq!(
        w.ctx.mappings.get(CrmObject::Contacts, ADA).await.unwrap(),
        Some(id)
    );
    assert_eq!(w.attio_first_name(), "Augusta");
}

#[tokio::test]
async fn a_hubspot_merge_re_points_the_mapping_to_the_new_object() {
    let mut w = world();
    w.synced_ada().await;
    let (old, _) = w.contact();
    // HubSpot merged Ada's contact with another; the result is a NEW object carrying her id.
    let props = [
        ("email".to_owned(), "ada@example.com".to_owned()),
        (ID_PROPERTY.to_owned(), ADA.to_owned()),
    ];
    let new = w.crm.seed(CrmObject::Contacts, props.into());
    let num = |id: &CrmId| id.0.parse::<u64>().unwrap();
    let merge = json!({"eventId": 99, "subscriptionType": "contact.merge", "objectId": num(&old),
        "primaryObjectId": num(&old), "mergedObjectIds": [555], "newObjectId": num(&new),
        "numberOfPropertiesMoved": 2, "changeSource": "CRM_UI", "sourceId": "userId:1", "occurredAt": T0});
    w.reverse(vec![merge]).await;
    assert_eq!(
        w.ctx.mappings.get(CrmObject::Contacts, ADA).await.unwrap(),
        Some(new)
    );
}

#[test]
fn the_hubspot_consumer_refuses_to_start_without_two_way() {
    let ctx = SyncContext::with_attio(
        MemoryAttio::new(),
        MemoryCrm::new(),
        MemoryMappings::new(),
        FieldMapping::from_toml(MAPPING).expect("mapping"),
    );
    assert!(HubspotHandler::new(Arc::new(ctx)).is_err());
    assert!(HubspotHandler::new(Arc::clone(&world().ctx)).is_ok());
}

#[tokio::test]
async fn a_record_locked_by_another_consumer_is_retried_on_both_ways() {
    use relay_mappings::RecordLocks;
    let mut w = world();
    w.synced_ada().await;
    let (attio_before, hubspot_before) = (w.attio_writes(), w.hubspot_writes());
    let now = T0 / 1000 + 120;
    let lease = std::time::Duration::from_secs(180);
    assert!(
        w.stores
            .lock(CrmObject::Contacts, ADA, "other", now, lease)
            .await
            .unwrap()
    );

    let events = w.attio_user_edit(json!({"name": [{"first_name": "Ann", "last_name": "Example", "full_name": "Ann Example"}]})).await;
    let forward = w.forward_outcomes(events.clone()).await;
    assert!(all_retried(&forward), "{forward:?}");
    w.hubspot_user_edit("jobtitle", "Analyst");
    let hubspot_events = w.crm.take_webhook_events();
    let reverse = w.reverse_outcomes(hubspot_events.clone()).await;
    assert!(all_retried(&reverse), "{reverse:?}");
    assert_eq!(
        (w.attio_writes(), w.hubspot_writes()),
        (attio_before, hubspot_before),
        "nothing written while another consumer holds the record"
    );

    // Given back: the retries go through, and each batch gives its own locks back.
    w.stores
        .unlock(CrmObject::Contacts, ADA, "other")
        .await
        .unwrap();
    w.forward(events).await;
    w.reverse(hubspot_events).await;
    w.settle().await;
    assert_eq!(w.contact().1["firstname"], "Ann");
    assert_eq!(
        w.ctx
            .attio
            .get_record_now(ADA)
            .first_text("job_title")
            .as_deref(),
        Some("Analyst")
    );
}

#[tokio::test]
async fn a_hubspot_edit_for_an_attio_record_not_readable_is_retried_until_its_merge_or_delete_settles()
 {
    let mut w = world();
    // Linked to an Attio record that reads not_found (merged away; record.merged not handled).
    let props = [
        ("email".to_owned(), "ada@example.com".to_owned()),
        (ID_PROPERTY.to_owned(), ADA.to_owned()),
    ];
    let id = w.crm.seed(CrmObject::Contacts, props.into());
    w.ctx
        .mappings
        .put(CrmObject::Contacts, ADA, &id)
        .await
        .unwrap();
    w.hubspot_user_edit("firstname", "Augusta");
    let events = w.crm.take_webhook_events();
    let outcomes = w.reverse_outcomes(events.clone()).await;
    assert!(all_retried(&outcomes), "{outcomes:?}");

    // Its record.deleted handled (buried): acknowledged, nothing written.
    w.ctx
        .mappings
        .bury(
            CrmObject::Contacts,
            ADA,
            T0 / 1000,
            relay_mappings::TOMBSTONE_RETENTION,
        )
        .await
        .unwrap();
    w.reverse(events).await;
    assert_eq!(w.attio_writes(), 0);
}

#[tokio::test]
async fn both_name_parts_changed_in_one_hubspot_save_are_written_together_whatever_the_batches() {
    let mapping = MAPPING.replace(
        r#"lastname = "name.last_name""#,
        r#"lastname = { attribute = "name.last_name", direction = "both" }"#,
    );
    let mut w = world_with(&mapping);
    w.synced_ada().await;
    let (id, _) = w.contact();
    let props = [
        ("firstname".to_owned(), "Augusta".to_owned()),
        ("lastname".to_owned(), "King".to_owned()),
    ];
    w.crm
        .edit_by_user(CrmObject::Contacts, Some(&id), props.into());
    let events = w.crm.take_webhook_events();
    let (first, last): (Vec<Value>, Vec<Value>) = events
        .into_iter()
        .partition(|e| e["propertyName"] == "firstname");
    assert_eq!((first.len(), last.len()), (1, 1));

    // The firstname event alone: the name is written with HubSpot's new last name too.
    w.reverse(first).await;
    let name = w
        .ctx
        .attio
        .get_record_now(ADA)
        .personal_name()
        .unwrap()
        .clone();
    assert_eq!(
        (name.first_name.as_str(), name.last_name.as_str()),
        ("Augusta", "King")
    );
    let ledger = w.stores.ledger(CrmObject::Contacts, ADA);
    assert!(ledger.contains_key("lastname"), "{ledger:?}");

    // The lastname event later: nothing left to write; nothing bounces back.
    let writes = (w.attio_writes(), w.hubspot_writes());
    w.reverse(last).await;
    w.settle().await;
    assert_eq!((w.attio_writes(), w.hubspot_writes()), writes);
    assert_eq!(w.contact().1["firstname"], "Augusta");
    assert_eq!(w.contact().1["lastname"], "King");
}

#[tokio::test]
async fn a_merge_in_attio_does_not_overwrite_a_newer_hubspot_value_of_a_both_field() {
    let mut w = world();
    w.synced_ada().await;
    w.hubspot_user_edit("firstname", "Augusta");
    let _ = w.crm.take_webhook_events(); // not handled yet
    let mut merged = record_event("record.merged", PEOPLE, ADA);
    merged["duplicate_object_id"] = json!(PEOPLE);
    merged["duplicate_record_id"] = json!(super::GRACE);
    w.forward(vec![merged]).await;
    assert_eq!(w.contact().1["firstname"], "Augusta");
}

#[tokio::test]
async fn without_two_way_stores_a_both_field_is_never_sent_and_the_context_says_so() {
    let crm = MemoryCrm::new();
    let attio = MemoryAttio::new();
    attio.add_object(PEOPLE, "people");
    attio.put_record("people", person(ADA, "ada@example.com", "Ada"));
    let ctx = Arc::new(SyncContext::with_attio(
        attio,
        crm.shared(),
        MemoryMappings::new(),
        FieldMapping::from_toml(MAPPING).expect("mapping"),
    ));
    assert!(ctx.needs_two_way());
    assert!(!world().ctx.needs_two_way());
    let outcomes = RecordsHandler::new(Arc::clone(&ctx))
        .handle(&[inbound("m", record_event("record.created", PEOPLE, ADA))])
        .await;
    assert_eq!(outcomes[0].disposition, Disposition::Done);
    let contacts = crm.objects(CrmObject::Contacts);
    let (_, held) = contacts.iter().next().expect("one contact");
    assert_eq!(held["email"], "ada@example.com");
    assert!(!held.contains_key("firstname"), "{held:?}");
}

#[tokio::test]
async fn adopting_a_contact_keeps_its_newer_both_values_and_records_the_conflict() {
    let mut w = world();
    // Nia made in HubSpot (a user), firstname set later than Attio's.
    let props = [
        ("email".to_owned(), "ada@example.com".to_owned()),
        ("firstname".to_owned(), "Augusta".to_owned()),
    ];
    w.tick(10_000_000);
    let id = w.crm.edit_by_user(CrmObject::Contacts, None, props.into());
    let _ = w.crm.take_webhook_events();
    w.ctx
        .attio
        .put_record("people", person(ADA, "ada@example.com", "Ada"));
    w.forward(vec![record_event("record.created", PEOPLE, ADA)])
        .await;
    let held = &w.crm.objects(CrmObject::Contacts)[&id];
    assert_eq!(held[ID_PROPERTY], ADA, "adopted");
    assert_eq!(held["firstname"], "Augusta", "HubSpot's later value kept");
    let conflicts = w.stores.conflicts();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0].winner, Side::Hubspot);
    assert!(
        !w.stores
            .ledger(CrmObject::Contacts, ADA)
            .contains_key("firstname"),
        "nothing agreed yet: the hubspot consumer brings Augusta to Attio"
    );
}

#[tokio::test]
async fn a_value_attio_stores_in_another_form_is_not_sent_back_over_hubspots() {
    let mapping = MAPPING.replace(
        r#"email = "email_addresses""#,
        r#"email = { attribute = "email_addresses", direction = "both" }"#,
    );
    let mut w = world_with(&mapping);
    w.synced_ada().await;
    let events = w
        .attio_user_edit(json!({"email_addresses": ["ada@example.com", "ada@work.example"]}))
        .await;
    w.forward(events).await;
    w.settle().await;
    w.tick(60);

    // Emptied in HubSpot: Attio drops its first email, so its second one becomes the first —
    // Attio's form of "no email" is now ada@work.example.
    w.hubspot_user_edit("email", "");
    w.settle().await;
    let record = w.ctx.attio.get_record_now(ADA);
    assert_eq!(
        record.emails("email_addresses").collect::<Vec<_>>(),
        ["ada@work.example"]
    );
    let hubspot_writes = w.hubspot_writes();
    // Any later Attio event re-reads Ada: the email is not pushed over HubSpot's empty one.
    w.forward(vec![record_event("record.updated", PEOPLE, ADA)])
        .await;
    w.settle().await;
    let held = w.contact().1;
    assert!(held.get("email").is_none_or(String::is_empty), "{held:?}");
    let calls = w.crm.calls();
    let sent_email = calls[calls.len() - (w.hubspot_writes() - hubspot_writes)..]
        .iter()
        .any(|c| matches!(c, OutboxEntry::Upsert { records, .. } if records.iter().any(|r| r.properties.contains_key("email"))));
    assert!(!sent_email, "{calls:?}");
}
