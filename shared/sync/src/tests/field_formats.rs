//! The field mapping over records decoded from Attio's JSON: additional emails and domains,
//! currency amounts and codes, close dates, and deal stages by status id across pipelines.

use relay_attio::Record;
use relay_crm::{CrmObject, Properties};
use serde_json::{Value, json};

use super::WS;
use crate::formats::epoch_millis;
use crate::{FieldMapping, FieldMappingError, RecordValues};

const WON_ID: &str = "b7a8e0a5-1d3c-4c61-9d6e-5a0b2f3c4d5e";
const RENEWAL_ID: &str = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f";

/// One current value of `attribute_type` with `fields`.
fn current(attribute_type: &str, fields: Value) -> Value {
    let mut value = json!({"active_from": "2026-11-02T09:12:44.000000000Z", "active_until": null,
                           "created_by_actor": {"type": "system", "id": null},
                           "attribute_type": attribute_type});
    let object = value.as_object_mut().expect("object");
    object.extend(fields.as_object().expect("object").clone());
    value
}

fn record(values: Value) -> Record {
    serde_json::from_value(json!({
        "id": {"workspace_id": WS, "object_id": "o", "record_id": "r1"},
        "created_at": "2026-11-02T09:12:44.000000000Z",
        "values": values
    }))
    .expect("record")
}

fn map(mapping: &FieldMapping, object: &str, record: &Record) -> Properties {
    let (_, properties) = mapping
        .map_record(object, "r1", &RecordValues(&record.values))
        .expect("maps")
        .expect("mapped object");
    properties
}

fn email(address: &str) -> Value {
    current(
        "email-address",
        json!({"email_address": address, "original_email_address": address,
               "email_domain": "example.com", "email_root_domain": "example.com",
               "email_local_specifier": "x"}),
    )
}

fn domain(name: &str) -> Value {
    current("domain", json!({"domain": name, "root_domain": name}))
}

fn status(id: &str, title: &str) -> Value {
    current(
        "status",
        json!({"status": {"id": {"workspace_id": WS, "object_id": "o", "attribute_id": "a",
                                 "status_id": id},
                          "title": title, "is_archived": false,
                          "celebration_enabled": false, "target_time_in_status": null}}),
    )
}

fn deal(extra: Value) -> Record {
    let mut values = json!({"name": [current("text", json!({"value": "Engine"}))]});
    values
        .as_object_mut()
        .expect("object")
        .extend(extra.as_object().expect("object").clone());
    record(values)
}

#[test]
fn the_first_email_is_the_contacts_and_the_rest_are_additional_when_enabled() {
    let mut old = email("old@example.com");
    old["active_until"] = json!("2026-01-01T00:00:00.000000000Z");
    let person = record(json!({"email_addresses": [
        email("ada@example.com"), old, email("ada@work.example"), email("a.l@example.org")
    ]}));
    let default = map(&FieldMapping::default(), "people", &person);
    assert_eq!(default["email"], "ada@example.com");
    assert!(
        !default.contains_key("hs_additional_emails"),
        "opt-in: HubSpot has called it read-only"
    );

    let mapping = FieldMapping::from_toml(
        r#"[objects.people]
crm_object = "contacts"
[objects.people.properties]
email = "email_addresses"
hs_additional_emails = { attribute = "email_addresses", values = "rest" }
"#,
    )
    .expect("mapping");
    let props = map(&mapping, "people", &person);
    assert_eq!(props["email"], "ada@example.com");
    assert_eq!(
        props["hs_additional_emails"], "ada@work.example;a.l@example.org",
        "no longer current values are left out"
    );
    let single = record(json!({"email_addresses": [email("grace@example.com")]}));
    assert!(!map(&mapping, "people", &single).contains_key("hs_additional_emails"));
}

#[test]
fn the_first_domain_is_the_companys_and_the_rest_are_additional() {
    let company = record(json!({"domains": [
        domain("attio.com"), domain("attio.io"), domain("attio.co.uk")
    ]}));
    let props = map(&FieldMapping::default(), "companies", &company);
    assert_eq!(props["domain"], "attio.com");
    assert_eq!(props["hs_additional_domains"], "attio.io;attio.co.uk");

    let one = record(json!({"domains": [domain("example.com")]}));
    let props = map(&FieldMapping::default(), "companies", &one);
    assert_eq!(props["domain"], "example.com");
    assert!(!props.contains_key("hs_additional_domains"));
}

#[test]
fn currency_amounts_map_to_plain_numbers_with_their_code() {
    let mapping = FieldMapping::default();
    let numeric = deal(json!({"value": [current("currency",
        json!({"currency_value": 12500.5, "currency_code": "EUR"}))]}));
    let props = map(&mapping, "deals", &numeric);
    assert_eq!(
        (
            props["amount"].as_str(),
            props["deal_currency_code"].as_str()
        ),
        ("12500.5", "EUR")
    );

    // Attio's value as a decimal string; a large amount stays plain (no exponent).
    let text = deal(json!({"value": [current("currency",
        json!({"currency_value": "9000.2500", "currency_code": "USD"}))]}));
    assert_eq!(map(&mapping, "deals", &text)["amount"], "9000.25");
    let large = deal(json!({"value": [current("currency",
        json!({"currency_value": 1.5e21, "currency_code": null}))]}));
    let props = map(&mapping, "deals", &large);
    assert_eq!(props["amount"], "1500000000000000000000");
    assert!(
        !props.contains_key("deal_currency_code"),
        "no code, not sent"
    );

    // An amount Attio did not send as a number is not guessed at: no amount property.
    let odd = deal(json!({"value": [current("currency",
        json!({"currency_value": "€12,500", "currency_code": "EUR"}))]}));
    assert!(!map(&mapping, "deals", &odd).contains_key("amount"));
}

#[test]
fn close_dates_from_dates_and_nanosecond_timestamps_are_epoch_milliseconds() {
    let mapping = FieldMapping::default();
    let date = deal(json!({"close_date": [current("date", json!({"value": "2026-12-31"}))]}));
    assert_eq!(
        map(&mapping, "deals", &date)["closedate"],
        epoch_millis("2026-12-31T00:00:00Z")
            .expect("ms")
            .to_string()
    );
    let instant = deal(json!({"close_date": [current("timestamp",
        json!({"value": "2026-12-31T17:30:00.123456789Z"}))]}));
    assert_eq!(
        map(&mapping, "deals", &instant)["closedate"],
        "1798738200123"
    );
    let none = deal(json!({}));
    assert!(!map(&mapping, "deals", &none).contains_key("closedate"));

    // A value that is no date dead-letters with the property named and the value withheld.
    let bad = deal(json!({"close_date": [current("text", json!({"value": "next spring"}))]}));
    let err = mapping
        .map_record("deals", "r1", &RecordValues(&bad.values))
        .unwrap_err();
    assert!(matches!(err, FieldMappingError::Unformattable { .. }));
    let message = err.to_string();
    assert!(
        message.contains("properties.closedate") && message.contains("close_date"),
        "{message}"
    );
    assert!(!message.contains("next spring"), "{message}");
}

const PIPELINES: &str = r#"
[objects.deals]
crm_object = "deals"
[objects.deals.properties]
dealname = "name"
[objects.deals.stage]
attribute = "stage"
pipeline = "default"
default_stage = "appointmentscheduled"
[objects.deals.stage.map]
"b7a8e0a5-1d3c-4c61-9d6e-5a0b2f3c4d5e" = "closedwon"
"c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f" = { pipeline = "renewals-pipeline", stage = "renewal-open" }
"Lost" = "closedlost"
"Won" = "should-not-win-over-the-id"
"#;

#[test]
fn deal_stages_map_by_status_id_across_pipelines_and_by_title_as_before() {
    let mapping = FieldMapping::from_toml(PIPELINES).expect("mapping");
    let stage_of = |record: &Record| {
        let props = map(&mapping, "deals", record);
        (props["pipeline"].clone(), props["dealstage"].clone())
    };
    // Renamed in Attio: the id still maps, and wins over a title entry.
    let renamed = deal(json!({"stage": [status(WON_ID, "Won")]}));
    assert_eq!(stage_of(&renamed), ("default".into(), "closedwon".into()));
    let renewal = deal(json!({"stage": [status(RENEWAL_ID, "Renewal")]}));
    assert_eq!(
        stage_of(&renewal),
        ("renewals-pipeline".into(), "renewal-open".into())
    );
    let lost = deal(json!({"stage": [status("f0000000-0000-4000-8000-000000000000", "Lost")]}));
    assert_eq!(stage_of(&lost), ("default".into(), "closedlost".into()));
    let fresh = deal(json!({}));
    assert_eq!(
        stage_of(&fresh),
        ("default".into(), "appointmentscheduled".into())
    );

    let unknown = deal(json!({"stage": [status("d0000000-0000-4000-8000-000000000001", "Pilot")]}));
    let err = mapping
        .map_record("deals", "r1", &RecordValues(&unknown.values))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Pilot") && err.contains("d0000000-0000-4000-8000-000000000001"),
        "{err}"
    );
}

#[test]
fn the_built_in_mapping_still_maps_stage_titles() {
    let won = deal(json!({"stage": [status("e0000000-0000-4000-8000-000000000002", "Won 🎉")]}));
    let props = map(&FieldMapping::default(), "deals", &won);
    assert_eq!(
        (props["pipeline"].as_str(), props["dealstage"].as_str()),
        ("default", "closedwon")
    );
}

#[test]
fn a_misspelt_format_or_key_is_named_when_the_mapping_loads() {
    for (bad, named) in [
        (
            r#"closedate = { attribute = "close_date", format = "epochms" }"#,
            "epochms",
        ),
        (
            r#"closedate = { attribute = "close_date", values = "second" }"#,
            "second",
        ),
        (
            r#"closedate = { attribute = "close_date", fromat = "date" }"#,
            "fromat",
        ),
        (r#"closedate = { format = "date" }"#, "attribute"),
    ] {
        let text =
            format!("[objects.deals]\ncrm_object = \"deals\"\n[objects.deals.properties]\n{bad}\n");
        let err = FieldMapping::from_toml(&text).unwrap_err();
        assert!(
            matches!(&err, FieldMappingError::Syntax(m) if m.contains(named)),
            "{bad}: {err}"
        );
    }
    assert_eq!(
        FieldMapping::default().crm_object("deals"),
        Some(CrmObject::Deals)
    );
}
