//! A portal that already holds data: contacts are adopted by email (HubSpot's unique key for
//! contacts) rather than duplicated, conflicts that cannot resolve themselves are dead-lettered
//! with what to do, companies are never adopted by domain, and a refused token holds messages.

use relay_attio::Record;
use relay_crm::{CrmError, CrmId, CrmObject, CrmOp, ID_PROPERTY, OutboxEntry, Properties};
use relay_mappings::IdMappings;
use serde_json::json;

use super::*;
use crate::{BatchHandler, NotesHandler, RecordsHandler};

fn email(n: usize) -> String {
    format!("person{n}@example.com")
}

fn record_id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

fn props(pairs: &[(&str, &str)]) -> Properties {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn contacts_by_email(ctx: &Ctx) -> BTreeMap<String, Vec<(CrmId, Properties)>> {
    let mut by_email: BTreeMap<String, Vec<(CrmId, Properties)>> = BTreeMap::new();
    for (id, p) in ctx.crm.objects(CrmObject::Contacts) {
        let key = p.get("email").cloned().unwrap_or_default().to_lowercase();
        by_email.entry(key).or_default().push((id, p));
    }
    by_email
}

#[tokio::test]
async fn a_portal_that_already_holds_10_of_18_people_ends_with_18_contacts_and_no_dead_letters() {
    let ctx = context();
    // Ten people exist in HubSpot already, created by hand (one with different case).
    let mut seeded = BTreeMap::new();
    for n in 0..10 {
        let address = if n == 3 {
            email(n).to_uppercase()
        } else {
            email(n)
        };
        let id = ctx.crm.seed(
            CrmObject::Contacts,
            props(&[("email", &address), ("lifecyclestage", "customer")]),
        );
        seeded.insert(email(n), id);
    }
    for n in 0..18 {
        let first = format!("P{n}");
        ctx.attio
            .put_record("people", person(&record_id(n), &email(n), &first));
    }
    let events: Vec<_> = (0..18)
        .map(|n| {
            inbound(
                &format!("m{n}"),
                record_event("record.created", PEOPLE, &record_id(n)),
            )
        })
        .collect();
    let handler = RecordsHandler::new(ctx.clone());

    // SQS hands the consumer at most 10 messages at a time.
    let mut outcomes = BTreeMap::new();
    for chunk in events.chunks(10) {
        outcomes.extend(by_message(handler.handle(chunk).await));
    }

    assert_eq!(outcomes.len(), 18);
    assert!(
        outcomes.values().all(|d| *d == Disposition::Done),
        "{outcomes:?}"
    );
    let by_email = contacts_by_email(&ctx);
    assert_eq!(by_email.len(), 18, "{by_email:?}");
    for n in 0..18 {
        let held = &by_email[&email(n)];
        assert_eq!(held.len(), 1, "one contact per email: {held:?}");
        let (id, p) = &held[0];
        assert_eq!(p[ID_PROPERTY], record_id(n), "written with its Attio id");
        assert_eq!(p["firstname"], format!("P{n}"));
        if let Some(existing) = seeded.get(&email(n)) {
            assert_eq!(id, existing, "the existing contact is adopted");
            assert_eq!(p["lifecyclestage"], "customer", "its other data is kept");
        }
        let mapped = ctx.mappings.get(CrmObject::Contacts, &record_id(n)).await;
        assert_eq!(mapped.expect("get").as_ref(), Some(id));
    }

    // The next sync finds every contact by attio_record_id: no conflict, no adoption.
    let before = ctx.crm.calls().len();
    let again = by_message(handler.handle(&events[..10]).await);
    assert!(again.values().all(|d| *d == Disposition::Done), "{again:?}");
    let after = ctx.crm.calls();
    assert_eq!(after.len(), before + 1, "one upsert, no updates");
    assert!(matches!(after.last(), Some(OutboxEntry::Upsert { .. })));
    assert_eq!(ctx.crm.objects(CrmObject::Contacts).len(), 18);
}

#[tokio::test]
async fn two_people_with_one_email_dead_letter_the_second_with_what_to_do() {
    let ctx = context();
    ctx.attio
        .put_record("people", person(ADA, "ada@example.com", "Ada"));
    ctx.attio
        .put_record("people", person(GRACE, "ada@example.com", "Grace"));
    let handler = RecordsHandler::new(ctx.clone());
    let first = by_message(
        handler
            .handle(&[inbound("a", record_event("record.created", PEOPLE, ADA))])
            .await,
    );
    assert_eq!(first["a"], Disposition::Done);

    let batch = [inbound("g", record_event("record.created", PEOPLE, GRACE))];
    let outcomes = by_message(handler.handle(&batch).await);

    let expected = format!("Attio records {GRACE} and {ADA} have the same email");
    assert!(is_dead_letter(&outcomes["g"], &expected), "{outcomes:?}");
    assert!(
        is_dead_letter(&outcomes["g"], "merge the two people in Attio"),
        "{outcomes:?}"
    );
    let contacts = ctx.crm.objects(CrmObject::Contacts);
    assert_eq!(contacts.len(), 1, "never a second contact for one email");
    assert_eq!(contacts.values().next().expect("one")[ID_PROPERTY], ADA);
    let grace = ctx.mappings.get(CrmObject::Contacts, GRACE).await;
    assert_eq!(grace.expect("get"), None);
}

#[tokio::test]
async fn an_email_changed_to_one_another_contact_holds_is_dead_lettered_not_adopted() {
    let ctx = with_people();
    let handler = RecordsHandler::new(ctx.clone());
    let batch = [inbound("a", record_event("record.updated", PEOPLE, ADA))];
    assert_eq!(
        by_message(handler.handle(&batch).await)["a"],
        Disposition::Done
    );
    let other = ctx.crm.seed(
        CrmObject::Contacts,
        props(&[("email", "lovelace@example.com")]),
    );
    ctx.attio
        .put_record("people", person(ADA, "lovelace@example.com", "Ada"));

    let outcomes = by_message(handler.handle(&batch).await);

    let expected = format!("its email is now held by HubSpot contact {other}");
    assert!(is_dead_letter(&outcomes["a"], &expected), "{outcomes:?}");
    let taken = &ctx.crm.objects(CrmObject::Contacts)[&other];
    assert!(
        !taken.contains_key(ID_PROPERTY),
        "the other contact is left alone"
    );
}

#[tokio::test]
async fn a_record_attio_merged_takes_over_the_contact_of_its_original() {
    let ctx = with_people();
    let handler = RecordsHandler::new(ctx.clone());
    let created = [inbound("a", record_event("record.created", PEOPLE, ADA))];
    assert_eq!(
        by_message(handler.handle(&created).await)["a"],
        Disposition::Done
    );
    let ada_contact = ctx
        .mappings
        .get(CrmObject::Contacts, ADA)
        .await
        .expect("get")
        .expect("mapped");
    // Attio's merge made a new record with Ada's email; Ada reads 404 now.
    let merged_id = "9e9e9e9e-0000-4000-8000-000000000009";
    ctx.attio
        .put_record("people", person(merged_id, "ada@example.com", "Ada"));
    let mut event = record_event("record.merged", PEOPLE, merged_id);
    event["duplicate_object_id"] = json!(PEOPLE);
    event["duplicate_record_id"] = json!(ADA);

    let outcomes = by_message(handler.handle(&[inbound("m", event)]).await);

    assert_eq!(outcomes["m"], Disposition::Done);
    let contacts = ctx.crm.objects(CrmObject::Contacts);
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[&ada_contact][ID_PROPERTY], merged_id);
    let mapped = ctx.mappings.get(CrmObject::Contacts, merged_id).await;
    assert_eq!(mapped.expect("get"), Some(ada_contact.clone()));
    // The original is re-pointed, not forgotten: notes naming it still find the contact.
    let old = ctx.mappings.get(CrmObject::Contacts, ADA).await;
    assert_eq!(old.expect("get"), Some(ada_contact));
}

#[tokio::test]
async fn a_note_whose_parent_exists_in_the_portal_is_attached_to_the_adopted_contact() {
    let ctx = context();
    let existing = ctx
        .crm
        .seed(CrmObject::Contacts, props(&[("email", "ada@example.com")]));
    ctx.attio
        .put_record("people", person(ADA, "ada@example.com", "Ada"));
    let note_id = "ff3f3bd4-40f4-4f80-8187-cd02385af424";
    ctx.attio.put_note(note(note_id, "people", ADA));
    let event = json!({"event_type": "note.created",
        "id": {"workspace_id": WS, "note_id": note_id},
        "parent_object_id": PEOPLE, "parent_record_id": ADA, "actor": actor()});

    let outcomes = by_message(
        NotesHandler::new(ctx.clone())
            .handle(&[inbound("n", event)])
            .await,
    );

    assert_eq!(outcomes["n"], Disposition::Done);
    let created: Vec<_> = ctx
        .crm
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            OutboxEntry::Create { associations, .. } => Some(associations),
            _ => None,
        })
        .collect();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0][0].id, existing);
    assert_eq!(ctx.crm.objects(CrmObject::Contacts).len(), 1);
}

fn company(record_id: &str, domain: &str) -> Record {
    serde_json::from_value(json!({
        "id": {"workspace_id": WS, "object_id": COMPANIES, "record_id": record_id},
        "created_at": "2026-11-02T09:12:44Z",
        "values": {
            "name": [{"active_from": "2026-11-02T09:12:44Z", "active_until": null,
                      "attribute_type": "text", "value": "Example Ltd"}],
            "domains": [{"active_from": "2026-11-02T09:12:44Z", "active_until": null,
                         "attribute_type": "domain", "domain": domain, "root_domain": domain}]
        }
    }))
    .expect("record")
}

#[tokio::test]
async fn companies_are_not_adopted_by_domain() {
    let ctx = context();
    let by_hand = ctx
        .crm
        .seed(CrmObject::Companies, props(&[("domain", "example.com")]));
    let acme = "c0c0c0c0-0000-4000-8000-000000000001";
    ctx.attio
        .put_record("companies", company(acme, "example.com"));

    let batch = [inbound(
        "c",
        record_event("record.created", COMPANIES, acme),
    )];
    let outcomes = by_message(RecordsHandler::new(ctx.clone()).handle(&batch).await);

    assert_eq!(outcomes["c"], Disposition::Done);
    let companies = ctx.crm.objects(CrmObject::Companies);
    assert_eq!(
        companies.len(),
        2,
        "domain is not unique in HubSpot: {companies:?}"
    );
    assert!(!companies[&by_hand].contains_key(ID_PROPERTY));
    let mapped = ctx.mappings.get(CrmObject::Companies, acme).await;
    assert_ne!(mapped.expect("get"), Some(by_hand));
}

#[tokio::test]
async fn a_refused_token_or_scope_holds_the_messages_instead_of_dead_lettering_them() {
    let ctx = with_people();
    for (status, category) in [(401, "INVALID_AUTHENTICATION"), (403, "MISSING_SCOPES")] {
        ctx.crm.fail_next(
            CrmOp::Upsert,
            CrmError::Rejected {
                operation: "contacts batch upsert".into(),
                status,
                category: Some(category.into()),
                message: "refused".into(),
            },
        );
        let batch = [
            inbound("a", record_event("record.updated", PEOPLE, ADA)),
            inbound("g", record_event("record.updated", PEOPLE, GRACE)),
        ];
        let outcomes = by_message(RecordsHandler::new(ctx.clone()).handle(&batch).await);
        for id in ["a", "g"] {
            assert!(
                matches!(&outcomes[id], Disposition::Hold { reason } if reason.contains(category) && reason.contains("token")),
                "{outcomes:?}"
            );
        }
    }
    assert!(ctx.crm.objects(CrmObject::Contacts).is_empty());
}
