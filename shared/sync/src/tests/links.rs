//! Links between records (a person's company, a deal's company and people) become HubSpot
//! default associations after the record's upsert, the linked record synced first.

use relay_attio::{AttioCall, Record};
use relay_crm::{CrmId, CrmObject, CrmOp, CrmSink, OutboxEntry};
use relay_mappings::IdMappings;
use serde_json::{Value, json};

use super::*;
use crate::{BatchHandler, RecordsHandler};

const DEALS: &str = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a";
const ACME: &str = "c0ffee00-1111-4222-8333-444455556666";
const DEAL: &str = "dea10000-aaaa-4bbb-8ccc-dddddddddddd";

fn current(extra: Value) -> Value {
    let mut value = json!({"active_from": "2026-11-02T09:12:44Z", "active_until": null});
    value
        .as_object_mut()
        .expect("object")
        .extend(extra.as_object().expect("object").clone());
    value
}

fn reference(object: &str, record_id: &str) -> Value {
    current(json!({"attribute_type": "record-reference",
        "target_object": object, "target_record_id": record_id}))
}

/// `record` with `attribute` set to references to `targets`.
fn linking(mut record: Record, attribute: &str, targets: &[(&str, &str)]) -> Record {
    let values: Vec<Value> = targets.iter().map(|(o, r)| reference(o, r)).collect();
    let mut raw = json!({
        "id": {"workspace_id": WS, "object_id": record.object_id(), "record_id": record.record_id()},
        "created_at": record.created_at, "values": {}
    });
    raw["values"][attribute] = Value::Array(values);
    let extra: Record = serde_json::from_value(raw).expect("record");
    record.values.extend(extra.values);
    record
}

fn company(record_id: &str, name: &str) -> Record {
    serde_json::from_value(json!({
        "id": {"workspace_id": WS, "object_id": COMPANIES, "record_id": record_id},
        "created_at": "2026-11-02T09:12:44Z",
        "values": {"name": [current(json!({"attribute_type": "text", "value": name}))]}
    }))
    .expect("company")
}

fn deal(record_id: &str, name: &str) -> Record {
    serde_json::from_value(json!({
        "id": {"workspace_id": WS, "object_id": DEALS, "record_id": record_id},
        "created_at": "2026-11-02T09:12:44Z",
        "values": {"name": [current(json!({"attribute_type": "text", "value": name}))]}
    }))
    .expect("deal")
}

async fn mapped(ctx: &Ctx, object: CrmObject, record_id: &str) -> CrmId {
    let id = ctx.mappings.get(object, record_id).await.expect("get");
    id.unwrap_or_else(|| panic!("{record_id} is not mapped"))
}

fn associate_calls(ctx: &Ctx) -> usize {
    let calls = ctx.crm.calls();
    calls
        .iter()
        .filter(|c| matches!(c, OutboxEntry::Associate { .. }))
        .count()
}

#[tokio::test]
async fn a_person_is_linked_to_its_company_once_even_on_redelivery() {
    let ctx = with_people();
    let ada = person(ADA, "ada@example.com", "Ada");
    ctx.attio
        .put_record("people", linking(ada, "company", &[("companies", ACME)]));
    ctx.attio.put_record("companies", company(ACME, "Acme"));
    let handler = RecordsHandler::new(ctx.clone());
    let event = record_event("record.updated", PEOPLE, ADA);

    for delivery in ["m1", "m1-again"] {
        let outcomes = by_message(handler.handle(&[inbound(delivery, event.clone())]).await);
        assert_eq!(outcomes[delivery], Disposition::Done, "{outcomes:?}");
    }

    let contact = mapped(&ctx, CrmObject::Contacts, ADA).await;
    let acme = mapped(&ctx, CrmObject::Companies, ACME).await;
    assert_eq!(
        ctx.crm.associations(),
        [(CrmObject::Contacts, contact, CrmObject::Companies, acme)]
    );
    assert_eq!(ctx.crm.objects(CrmObject::Companies).len(), 1);
    let company_reads = record_fetches(&ctx)
        .into_iter()
        .filter(|c| *c == AttioCall::record("companies", ACME))
        .count();
    assert_eq!(
        company_reads, 1,
        "the redelivery finds the company's mapping"
    );
    assert_eq!(
        associate_calls(&ctx),
        1,
        "the redelivery finds the link made and confirmed: no HubSpot call"
    );
}

#[tokio::test]
async fn a_company_in_the_same_batch_as_its_person_is_synced_once() {
    let ctx = with_people();
    let ada = person(ADA, "ada@example.com", "Ada");
    ctx.attio
        .put_record("people", linking(ada, "company", &[("companies", ACME)]));
    ctx.attio.put_record("companies", company(ACME, "Acme"));
    let batch = [
        inbound("p", record_event("record.updated", PEOPLE, ADA)),
        inbound("c", record_event("record.updated", COMPANIES, ACME)),
    ];
    let outcomes = by_message(RecordsHandler::new(ctx.clone()).handle(&batch).await);

    assert!(
        outcomes.values().all(|d| *d == Disposition::Done),
        "{outcomes:?}"
    );
    let company_reads = record_fetches(&ctx)
        .into_iter()
        .filter(|c| *c == AttioCall::record("companies", ACME))
        .count();
    assert_eq!(company_reads, 1, "links wait for the batch's own upserts");
    let company_upserts = ctx
        .crm
        .calls()
        .iter()
        .filter(|c| {
            matches!(
                c,
                OutboxEntry::Upsert {
                    object: CrmObject::Companies,
                    ..
                }
            )
        })
        .count();
    assert_eq!(company_upserts, 1);
    assert_eq!(ctx.crm.associations().len(), 1);
}

#[tokio::test]
async fn a_deal_is_linked_to_its_company_and_both_people() {
    let ctx = with_people();
    ctx.attio.add_object(DEALS, "deals");
    ctx.attio.put_record("companies", company(ACME, "Acme"));
    let record = linking(
        deal(DEAL, "Engines"),
        "associated_company",
        &[("companies", ACME)],
    );
    let people = [("people", ADA), ("people", GRACE)];
    ctx.attio
        .put_record("deals", linking(record, "associated_people", &people));

    let batch = [inbound("d", record_event("record.created", DEALS, DEAL))];
    let outcomes = by_message(RecordsHandler::new(ctx.clone()).handle(&batch).await);

    assert_eq!(outcomes["d"], Disposition::Done, "{outcomes:?}");
    let deal_id = mapped(&ctx, CrmObject::Deals, DEAL).await;
    let mut expected = vec![
        (
            CrmObject::Deals,
            deal_id.clone(),
            CrmObject::Companies,
            mapped(&ctx, CrmObject::Companies, ACME).await,
        ),
        (
            CrmObject::Deals,
            deal_id.clone(),
            CrmObject::Contacts,
            mapped(&ctx, CrmObject::Contacts, ADA).await,
        ),
        (
            CrmObject::Deals,
            deal_id,
            CrmObject::Contacts,
            mapped(&ctx, CrmObject::Contacts, GRACE).await,
        ),
    ];
    expected.sort();
    assert_eq!(ctx.crm.associations(), expected);
    assert_eq!(ctx.crm.objects(CrmObject::Contacts).len(), 2);
}

#[tokio::test]
async fn a_link_to_an_unmapped_object_is_skipped() {
    let ctx = with_people();
    let ada = person(ADA, "ada@example.com", "Ada");
    let project = "0a0b0c0d-0e0f-4a1b-8c2d-3e4f5a6b7c8d";
    ctx.attio
        .put_record("people", linking(ada, "company", &[("projects", project)]));

    let batch = [inbound("m", record_event("record.updated", PEOPLE, ADA))];
    let outcomes = by_message(RecordsHandler::new(ctx.clone()).handle(&batch).await);

    assert_eq!(outcomes["m"], Disposition::Done, "{outcomes:?}");
    mapped(&ctx, CrmObject::Contacts, ADA).await;
    assert!(ctx.crm.associations().is_empty());
    assert_eq!(associate_calls(&ctx), 0);
    assert_eq!(record_fetches(&ctx), [AttioCall::record("people", ADA)]);
}

#[tokio::test]
async fn a_failed_association_is_classified_and_the_retry_links() {
    let ctx = with_people();
    let ada = person(ADA, "ada@example.com", "Ada");
    ctx.attio
        .put_record("people", linking(ada, "company", &[("companies", ACME)]));
    ctx.attio.put_record("companies", company(ACME, "Acme"));
    ctx.crm
        .fail_next(CrmOp::Associate, crm_unavailable("associate contacts"));
    ctx.crm.fail_next(
        CrmOp::Associate,
        relay_crm::CrmError::Rejected {
            operation: "associate contacts with companies".into(),
            status: 400,
            category: Some("VALIDATION_ERROR".into()),
            message: "invalid association".into(),
        },
    );
    let handler = RecordsHandler::new(ctx.clone());
    let event = record_event("record.updated", PEOPLE, ADA);

    let first = by_message(handler.handle(&[inbound("a", event.clone())]).await);
    assert!(is_retry(&first["a"], "HTTP 502"), "{first:?}");
    let second = by_message(handler.handle(&[inbound("b", event.clone())]).await);
    assert!(
        is_dead_letter(&second["b"], "invalid association"),
        "{second:?}"
    );
    assert!(ctx.crm.associations().is_empty());

    let third = by_message(handler.handle(&[inbound("c", event)]).await);
    assert_eq!(third["c"], Disposition::Done, "{third:?}");
    assert_eq!(ctx.crm.associations().len(), 1);
}

const INITECH: &str = "1a1a1a1a-2b2b-4c3c-8d4d-5e5e5e5e5e5e";
const GLOBEX: &str = "9f9f9f9f-8e8e-4d7d-8c6c-5b5b5b5b5b5b";

fn dissociate_calls(ctx: &Ctx) -> Vec<OutboxEntry> {
    let calls = ctx.crm.calls().into_iter();
    calls
        .filter(|c| matches!(c, OutboxEntry::Dissociate { .. }))
        .collect()
}

/// Ada in Attio, working at `company` (none: no company).
fn ada_at(ctx: &Ctx, company: Option<&str>) {
    let ada = person(ADA, "ada@example.com", "Ada");
    let targets: Vec<(&str, &str)> = company.iter().map(|c| ("companies", *c)).collect();
    ctx.attio
        .put_record("people", linking(ada, "company", &targets));
}

/// One `record.updated` of `record_id` through the records consumer; its disposition.
async fn sync_once(ctx: &Arc<Ctx>, object: &str, record_id: &str, message: &str) -> Disposition {
    let event = record_event("record.updated", object, record_id);
    let handler = RecordsHandler::new(ctx.clone());
    let mut outcomes = by_message(handler.handle(&[inbound(message, event)]).await);
    outcomes.remove(message).expect("an outcome")
}

/// Acme, Initech and Globex in Attio's companies.
fn with_companies() -> Arc<Ctx> {
    let ctx = with_people();
    for (id, name) in [(ACME, "Acme"), (INITECH, "Initech"), (GLOBEX, "Globex")] {
        ctx.attio.put_record("companies", company(id, name));
    }
    ctx
}

#[tokio::test]
async fn a_person_who_changes_company_is_linked_to_the_new_one_only() {
    let ctx = with_companies();
    ada_at(&ctx, Some(ACME));
    assert_eq!(sync_once(&ctx, PEOPLE, ADA, "m1").await, Disposition::Done);
    let contact = mapped(&ctx, CrmObject::Contacts, ADA).await;
    let acme = mapped(&ctx, CrmObject::Companies, ACME).await;

    ada_at(&ctx, Some(INITECH));
    assert_eq!(sync_once(&ctx, PEOPLE, ADA, "m2").await, Disposition::Done);

    let initech = mapped(&ctx, CrmObject::Companies, INITECH).await;
    assert_eq!(
        ctx.crm.associations(),
        [(
            CrmObject::Contacts,
            contact.clone(),
            CrmObject::Companies,
            initech
        )]
    );
    assert_eq!(
        dissociate_calls(&ctx),
        [OutboxEntry::Dissociate {
            from: CrmObject::Contacts,
            from_id: contact.clone(),
            to: CrmObject::Companies,
            to_id: acme,
        }]
    );

    // No company at all: the last link goes, and nothing is left to remember.
    ada_at(&ctx, None);
    assert_eq!(sync_once(&ctx, PEOPLE, ADA, "m3").await, Disposition::Done);
    assert!(ctx.crm.associations().is_empty());
    let key = format!("{ADA}#links");
    let remembered = ctx.mappings.get(CrmObject::Contacts, &key).await;
    assert_eq!(remembered.expect("get"), None);
}

#[tokio::test]
async fn a_deal_that_drops_one_of_two_people_keeps_the_other_and_its_company() {
    let ctx = with_people();
    ctx.attio.add_object(DEALS, "deals");
    ctx.attio.put_record("companies", company(ACME, "Acme"));
    let put_deal = |people: &[(&str, &str)]| {
        let record = linking(
            deal(DEAL, "Engines"),
            "associated_company",
            &[("companies", ACME)],
        );
        ctx.attio
            .put_record("deals", linking(record, "associated_people", people));
    };
    put_deal(&[("people", ADA), ("people", GRACE)]);
    assert_eq!(sync_once(&ctx, DEALS, DEAL, "d1").await, Disposition::Done);
    assert_eq!(ctx.crm.associations().len(), 3);

    put_deal(&[("people", ADA)]);
    assert_eq!(sync_once(&ctx, DEALS, DEAL, "d2").await, Disposition::Done);

    let deal_id = mapped(&ctx, CrmObject::Deals, DEAL).await;
    let mut expected = vec![
        (
            CrmObject::Deals,
            deal_id.clone(),
            CrmObject::Companies,
            mapped(&ctx, CrmObject::Companies, ACME).await,
        ),
        (
            CrmObject::Deals,
            deal_id,
            CrmObject::Contacts,
            mapped(&ctx, CrmObject::Contacts, ADA).await,
        ),
    ];
    expected.sort();
    assert_eq!(ctx.crm.associations(), expected);
    let grace = mapped(&ctx, CrmObject::Contacts, GRACE).await;
    assert!(
        matches!(&dissociate_calls(&ctx)[..], [OutboxEntry::Dissociate { to_id, .. }] if *to_id == grace)
    );
}

#[tokio::test]
async fn an_association_made_by_hand_in_hubspot_survives_link_changes() {
    let ctx = with_companies();
    ada_at(&ctx, Some(ACME));
    assert_eq!(sync_once(&ctx, PEOPLE, ADA, "m1").await, Disposition::Done);
    assert_eq!(
        sync_once(&ctx, COMPANIES, GLOBEX, "g").await,
        Disposition::Done
    );
    let contact = mapped(&ctx, CrmObject::Contacts, ADA).await;
    let globex = mapped(&ctx, CrmObject::Companies, GLOBEX).await;
    // A HubSpot user associates Ada with Globex; Attio never names Globex for her.
    let by_hand = (
        CrmObject::Contacts,
        contact.clone(),
        CrmObject::Companies,
        globex,
    );
    ctx.crm.associate_by_hand(by_hand.clone());

    ada_at(&ctx, Some(INITECH));
    assert_eq!(sync_once(&ctx, PEOPLE, ADA, "m2").await, Disposition::Done);
    ada_at(&ctx, None);
    assert_eq!(sync_once(&ctx, PEOPLE, ADA, "m3").await, Disposition::Done);

    assert_eq!(ctx.crm.associations(), [by_hand]);
    assert_eq!(dissociate_calls(&ctx).len(), 2, "Acme, then Initech");
}

#[tokio::test]
async fn a_redelivered_change_removes_nothing_more() {
    let ctx = with_companies();
    ada_at(&ctx, Some(ACME));
    assert_eq!(sync_once(&ctx, PEOPLE, ADA, "m1").await, Disposition::Done);
    ada_at(&ctx, Some(INITECH));
    for delivery in ["m2", "m2-again", "m2-third"] {
        assert_eq!(
            sync_once(&ctx, PEOPLE, ADA, delivery).await,
            Disposition::Done
        );
    }

    let contact = mapped(&ctx, CrmObject::Contacts, ADA).await;
    let initech = mapped(&ctx, CrmObject::Companies, INITECH).await;
    assert_eq!(
        ctx.crm.associations(),
        [(CrmObject::Contacts, contact, CrmObject::Companies, initech)]
    );
    assert_eq!(dissociate_calls(&ctx).len(), 1, "Acme is removed once");
}

#[tokio::test]
async fn a_link_made_before_a_failure_is_still_removed_when_attio_moves_on() {
    let ctx = with_companies();
    ada_at(&ctx, Some(ACME));
    assert_eq!(sync_once(&ctx, PEOPLE, ADA, "m1").await, Disposition::Done);
    // Ada moves to Initech: the association is made, removing Acme's fails.
    ada_at(&ctx, Some(INITECH));
    ctx.crm
        .fail_next(CrmOp::Dissociate, crm_unavailable("dissociate contacts"));
    let failed = sync_once(&ctx, PEOPLE, ADA, "m2").await;
    assert!(is_retry(&failed, "HTTP 502"), "{failed:?}");
    assert_eq!(ctx.crm.associations().len(), 2);

    // Before the retry, she moves again: both links the relay made are removed.
    ada_at(&ctx, Some(GLOBEX));
    assert_eq!(sync_once(&ctx, PEOPLE, ADA, "m2").await, Disposition::Done);

    let contact = mapped(&ctx, CrmObject::Contacts, ADA).await;
    let globex = mapped(&ctx, CrmObject::Companies, GLOBEX).await;
    assert_eq!(
        ctx.crm.associations(),
        [(CrmObject::Contacts, contact, CrmObject::Companies, globex)]
    );
}

/// The confirmed set belongs to the copy it was made on: a contact HubSpot lost (deleted by
/// hand) is upserted anew with a new id, and its links are made again on the new copy.
#[tokio::test]
async fn a_contact_made_again_in_hubspot_is_linked_again() {
    let ctx = with_people();
    let ada = person(ADA, "ada@example.com", "Ada");
    ctx.attio
        .put_record("people", linking(ada, "company", &[("companies", ACME)]));
    ctx.attio.put_record("companies", company(ACME, "Acme"));
    let handler = RecordsHandler::new(ctx.clone());
    let event = record_event("record.updated", PEOPLE, ADA);
    let first = by_message(handler.handle(&[inbound("m1", event.clone())]).await);
    assert_eq!(first["m1"], Disposition::Done, "{first:?}");
    let lost = mapped(&ctx, CrmObject::Contacts, ADA).await;
    ctx.crm
        .archive(CrmObject::Contacts, &lost)
        .await
        .expect("deleted by hand in HubSpot");

    let again = by_message(handler.handle(&[inbound("m2", event)]).await);
    assert_eq!(again["m2"], Disposition::Done, "{again:?}");
    let contact = mapped(&ctx, CrmObject::Contacts, ADA).await;
    assert_ne!(contact, lost, "the upsert made a new contact");
    let acme = mapped(&ctx, CrmObject::Companies, ACME).await;
    assert!(
        ctx.crm.associations().contains(&(
            CrmObject::Contacts,
            contact,
            CrmObject::Companies,
            acme
        )),
        "{:?}",
        ctx.crm.associations()
    );
}
