//! Issue 14, item 2's rest over the memory adapters: a deal's stage both ways (HubSpot's stage
//! written back as the Attio status the map's inverse names; a `both` stage sent only when
//! Attio's changed; a conflict to the later change; an ambiguous inverse refused at load), and
//! HubSpot deletions as configured (`ignore` by default; `delete` deletes the Attio record,
//! buries it and unmaps it, so nothing recreates the contact; a merge loser is not deleted).

use relay_attio::{AttioApi, AttioValues, AttioWriter, Record};
use relay_crm::{CrmId, CrmObject, CrmSink, ID_PROPERTY, OutboxEntry};
use relay_mappings::{IdMappings, Side, Tombstones};
use serde_json::{Value, json};

use super::two_way::{MAPPING, World, world_deleting, world_with};
use super::{ADA, PEOPLE, WS, person, record_event};
use crate::two_way::HubspotDeletions;
use crate::{AttributeSource, Disposition, FieldMapping};

const DEALS: &str = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a";
const DEAL: &str = "6e5d4c3b-2a19-4f08-8e7d-6c5b4a392817";
/// The Won status is mapped by its id (it survives a rename); Lead and Lost by title.
const WON_ID: &str = "11f07f01-c10f-4e05-a522-33e050bc52ee";

const DEAL_MAPPING: &str = r#"
[objects.deals]
crm_object = "deals"
[objects.deals.properties]
dealname = "name"
[objects.deals.stage]
attribute = "stage"
pipeline = "default"
direction = "both"
[objects.deals.stage.map]
"Lead" = "appointmentscheduled"
"11f07f01-c10f-4e05-a522-33e050bc52ee" = "closedwon"
"Lost" = { pipeline = "renewals", stage = "lostrenewal" }
"#;

fn deal(stage_title: &str) -> Record {
    let current = |extra: Value| {
        let mut value = json!({"active_from": "2026-11-02T09:12:44Z", "active_until": null});
        value
            .as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        json!([value])
    };
    serde_json::from_value(json!({
        "id": {"workspace_id": WS, "object_id": DEALS, "record_id": DEAL},
        "created_at": "2026-11-02T09:12:44Z",
        "values": {
            "name": current(json!({"attribute_type": "text", "value": "Engine"})),
            "stage": current(json!({"attribute_type": "status", "status": {
                "id": {"workspace_id": WS, "object_id": DEALS, "attribute_id": "a",
                       "status_id": "0a0a0a0a-0000-4000-8000-000000000001"},
                "title": stage_title, "is_archived": false, "celebration_enabled": false,
                "target_time_in_status": null}})),
        }
    }))
    .expect("deal")
}

impl World {
    fn the_deal(&self) -> (CrmId, relay_crm::Properties) {
        let deals = self.crm.objects(CrmObject::Deals);
        assert_eq!(deals.len(), 1, "{deals:?}");
        deals.into_iter().next().expect("one")
    }

    /// The deal's stage in Attio: (status id, title).
    async fn attio_stage(&self) -> (String, String) {
        let record = self
            .ctx
            .attio
            .get_record("deals", DEAL)
            .await
            .expect("deal");
        let values = crate::RecordValues(&record.values);
        let id = values.text("stage", Some("id")).unwrap_or_default();
        let title = values.text("stage", None).unwrap_or_default();
        (id, title)
    }

    fn hubspot_stage_edit(&self, pipeline: &str, stage: &str) {
        let (id, _) = self.the_deal();
        let props = [
            ("pipeline".to_owned(), pipeline.to_owned()),
            ("dealstage".to_owned(), stage.to_owned()),
        ]
        .into();
        self.crm.edit_by_user(CrmObject::Deals, Some(&id), props);
    }

    /// A person edits the deal in Attio: the events carry a workspace member as actor.
    async fn attio_deal_edit(&self, values: Value) -> Vec<Value> {
        let values: AttioValues = serde_json::from_value(values).expect("values");
        self.ctx
            .attio
            .update_record("deals", DEAL, &values)
            .await
            .expect("edit");
        let mut events = self.ctx.attio.take_webhook_events();
        for e in &mut events {
            e["actor"] = super::actor();
        }
        events
    }

    /// The properties of every deal upsert the relay sent, in order.
    fn deal_upserts(&self) -> Vec<relay_crm::Properties> {
        self.crm
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                OutboxEntry::Upsert {
                    object: CrmObject::Deals,
                    records,
                } => Some(
                    records
                        .into_iter()
                        .map(|r| r.properties)
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect()
    }

    async fn synced_deal(&mut self) {
        self.ctx.attio.add_object(DEALS, "deals");
        self.ctx.attio.put_record("deals", deal("Lead"));
        self.forward(vec![record_event("record.created", DEALS, DEAL)])
            .await;
        self.settle().await;
        assert_eq!(self.the_deal().1["dealstage"], "appointmentscheduled");
        self.tick(60);
    }
}

#[tokio::test]
async fn a_hubspot_stage_change_is_written_back_as_the_status_and_does_not_bounce() {
    let mut w = world_with(DEAL_MAPPING);
    w.synced_deal().await;
    let hubspot_writes = w.hubspot_writes();

    w.hubspot_stage_edit("default", "closedwon");
    w.settle().await;
    // Written as the status the map's inverse names: here an id, `{"status": id}`.
    assert_eq!(w.attio_stage().await.0, WON_ID);
    assert_eq!(
        w.hubspot_writes(),
        hubspot_writes,
        "no echo back to HubSpot"
    );
    assert_eq!(
        w.stores.ledger(CrmObject::Deals, DEAL)["dealstage"].fingerprint,
        relay_mappings::fingerprint(Some("default/closedwon"))
    );

    // Another pipeline's stage maps back by title.
    w.tick(60);
    w.hubspot_stage_edit("renewals", "lostrenewal");
    w.settle().await;
    assert_eq!(w.attio_stage().await.1, "Lost");
    assert_eq!(w.hubspot_writes(), hubspot_writes);
}

#[tokio::test]
async fn a_both_stage_is_sent_only_when_attios_stage_changed() {
    let mut w = world_with(DEAL_MAPPING);
    w.synced_deal().await;
    // HubSpot moves the deal; before its webhook arrives, Attio's name changes.
    w.hubspot_stage_edit("default", "closedwon");
    w.crm.take_webhook_events();
    w.tick(5);
    let events = w.attio_deal_edit(json!({"name": "Engine v2"})).await;
    w.forward(events).await;
    let last = w.deal_upserts().pop().expect("the name went out");
    assert_eq!(last.get("dealname").map(String::as_str), Some("Engine v2"));
    assert!(
        !last.contains_key("dealstage") && !last.contains_key("pipeline"),
        "Attio's unchanged stage must not overwrite HubSpot's newer one: {last:?}"
    );
    assert_eq!(w.the_deal().1["dealstage"], "closedwon");

    // Attio's own stage change goes out.
    w.tick(5);
    let events = w
        .attio_deal_edit(json!({"stage": [{"status": "Lost"}]}))
        .await;
    w.forward(events).await;
    let (_, deal) = w.the_deal();
    assert_eq!(
        (deal["pipeline"].as_str(), deal["dealstage"].as_str()),
        ("renewals", "lostrenewal")
    );
}

#[tokio::test]
async fn simultaneous_stage_changes_leave_the_later_and_one_conflict() {
    let mut w = world_with(DEAL_MAPPING);
    w.synced_deal().await;
    let attio_events = w
        .attio_deal_edit(json!({"stage": [{"status": "Lost"}]}))
        .await;
    w.tick(5);
    w.hubspot_stage_edit("default", "closedwon");
    // Attio's event first: its consumer sees HubSpot's later change and holds Attio's back.
    w.forward(attio_events).await;
    w.settle().await;
    assert_eq!(w.the_deal().1["dealstage"], "closedwon");
    assert_eq!(
        w.attio_stage().await.0,
        WON_ID,
        "the later change wins in Attio"
    );
    let conflicts = w.stores.conflicts();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    let c = &conflicts[0];
    assert_eq!(
        (c.property.as_str(), c.winner, c.attio.value.as_deref()),
        ("dealstage", Side::Hubspot, Some("renewals/lostrenewal"))
    );
    assert_eq!(c.hubspot.value.as_deref(), Some("default/closedwon"));
}

#[test]
fn a_hubspot_stage_mapped_from_several_statuses_is_refused_when_it_flows_back() {
    let ambiguous = |direction: &str| {
        format!(
            "[objects.deals]\ncrm_object = \"deals\"\n[objects.deals.stage]\nattribute = \"stage\"\npipeline = \"default\"\n{direction}[objects.deals.stage.map]\n\"Won\" = \"closedwon\"\n\"Won 🎉\" = \"closedwon\"\n\"Lost\" = \"closedlost\"\n"
        )
    };
    for direction in ["both", "hubspot_to_attio"] {
        let err = FieldMapping::from_toml(&ambiguous(&format!("direction = \"{direction}\"\n")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("objects.deals.stage")
                && err.contains("\"closedwon\"")
                && err.contains("\"Won\"")
                && err.contains("\"Won 🎉\""),
            "{err}"
        );
    }
    // One way only, several statuses may share a stage (the default mapping does).
    FieldMapping::from_toml(&ambiguous("")).expect("attio_to_hubspot is fine");
    assert!(FieldMapping::default().objects["deals"].stage.is_some());
}

/// Ada synced, then deleted in HubSpot by a person; every event delivered.
async fn ada_deleted_in_hubspot(w: &mut World) -> CrmId {
    w.synced_ada().await;
    let (id, _) = w.contact();
    w.crm.delete_by_user(CrmObject::Contacts, &id);
    let events = w.crm.take_webhook_events();
    w.reverse(events).await;
    // Attio's record.deleted for the relay's own delete is not delivered: what the HubSpot
    // consumer did must hold on its own (that event may come late, or never be handled).
    w.ctx.attio.take_webhook_events();
    id
}

#[tokio::test]
async fn a_hubspot_deletion_is_ignored_by_default() {
    let mut w = world_with(MAPPING);
    let id = ada_deleted_in_hubspot(&mut w).await;
    assert!(w.ctx.attio.get_record("people", ADA).await.is_ok());
    assert_eq!(
        w.ctx.mappings.get(CrmObject::Contacts, ADA).await.unwrap(),
        Some(id)
    );
    assert!(
        !w.ctx
            .mappings
            .is_buried(CrmObject::Contacts, ADA, 0)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn with_delete_the_record_is_deleted_buried_unmapped_and_never_recreated() {
    let mut w = world_deleting(MAPPING, HubspotDeletions::Delete);
    ada_deleted_in_hubspot(&mut w).await;
    let gone = w.ctx.attio.get_record("people", ADA).await;
    assert!(matches!(gone, Err(e) if e.is_record_gone()));
    let now = w.now.load(std::sync::atomic::Ordering::SeqCst) / 1000;
    assert!(
        w.ctx
            .mappings
            .is_buried(CrmObject::Contacts, ADA, now)
            .await
            .unwrap()
    );
    assert_eq!(
        w.ctx.mappings.get(CrmObject::Contacts, ADA).await.unwrap(),
        None
    );

    // A late record.updated whose record read came before the delete (the record still
    // readable): the forward path must not upsert a new contact for it.
    w.ctx
        .attio
        .put_record("people", person(ADA, "ada@example.com", "Ada"));
    w.forward(vec![record_event("record.updated", PEOPLE, ADA)])
        .await;
    assert!(
        w.crm.objects(CrmObject::Contacts).is_empty(),
        "{:?}",
        w.crm.objects(CrmObject::Contacts)
    );
}

#[tokio::test]
async fn a_merge_losers_deletion_deletes_nothing() {
    let mut w = world_deleting(MAPPING, HubspotDeletions::Delete);
    w.synced_ada().await;
    let (loser, _) = w.contact();
    // A person made a second contact; HubSpot merged Ada's into it.
    let other = w.crm.edit_by_user(
        CrmObject::Contacts,
        None,
        [("email".to_owned(), "ada@other.example".to_owned())].into(),
    );
    let survivor = w
        .crm
        .merge(CrmObject::Contacts, &other, &loser)
        .await
        .expect("merged");
    w.crm.take_webhook_events();
    let deletion = |id: &CrmId| {
        json!({"eventId": 900, "subscriptionId": 1, "portalId": 62515, "appId": 4242,
               "occurredAt": 1, "subscriptionType": "contact.deletion", "attemptNumber": 0,
               "objectId": id.0.parse::<u64>().unwrap(), "changeSource": "CRM_UI",
               "sourceId": "userId:1"})
    };
    // The loser's deletion before the merge event: HubSpot holds it in no recycling bin.
    w.reverse(vec![deletion(&loser)]).await;
    assert!(w.ctx.attio.get_record("people", ADA).await.is_ok());

    // Once the merge re-pointed Ada to the survivor, an old copy that is in the recycling
    // bin (carrying Ada's id) is not Ada's copy either.
    w.ctx
        .mappings
        .put(CrmObject::Contacts, ADA, &survivor)
        .await
        .unwrap();
    let stale = w.crm.edit_by_user(
        CrmObject::Contacts,
        None,
        [(ID_PROPERTY.to_owned(), ADA.to_owned())].into(),
    );
    w.crm.delete_by_user(CrmObject::Contacts, &stale);
    let outcomes = w.reverse_outcomes(w.crm.take_webhook_events()).await;
    assert!(
        outcomes.iter().all(|o| o.disposition == Disposition::Done),
        "{outcomes:?}"
    );
    assert!(w.ctx.attio.get_record("people", ADA).await.is_ok());
    assert_eq!(
        w.ctx.mappings.get(CrmObject::Contacts, ADA).await.unwrap(),
        Some(survivor)
    );
    assert!(
        w.ctx
            .attio
            .writes()
            .iter()
            .all(|c| !matches!(c, relay_attio::AttioCall::Delete { .. }))
    );
}
