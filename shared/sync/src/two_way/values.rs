//! HubSpot's text back into Attio's write format, and when Attio last changed a value.
//!
//! Attio's write format (<https://docs.attio.com/docs/attribute-types>): text, select and
//! status titles as strings; numbers as numbers; dates as `YYYY-MM-DD`; timestamps as ISO 8601;
//! email addresses, domains and phone numbers as a list (each a string, or
//! `{original_phone_number}`); a personal name as `{first_name, last_name, full_name}`, all
//! three given. A property maps the FIRST of a multi-valued attribute, so writing one back
//! replaces the first value and keeps the others; a name part is written with the other part
//! as the record holds it (or as another property of the same write sets it).

use relay_attio::{AttioValues, ValueMap, current_values};
use serde_json::{Value as Json, json};

use crate::formats;
use crate::{Format, PropertySpec};

/// Attributes that hold several values, the first of which a property maps.
fn multi_valued(slug: &str) -> bool {
    matches!(slug, "email_addresses" | "domains" | "phone_numbers")
}

/// When Attio last changed the attribute a spec reads, in epoch milliseconds: the newest
/// `active_from` of its current values, or, when it has none (emptied), the newest
/// `active_until`. 0 when Attio says nothing. Public for the operator's tools (`attio-relay
/// conflicts resolve` says when Attio's value last changed), which must read it as the
/// consumer does.
pub fn attio_changed_at(values: &ValueMap, spec: &PropertySpec) -> i64 {
    let (slug, _) = spec.slug_and_field();
    let history = values.get(slug).map(Vec::as_slice).unwrap_or_default();
    let current = history
        .iter()
        .filter(|v| v.is_current())
        .filter_map(|v| formats::epoch_millis(&v.active_from))
        .max();
    current
        .or_else(|| {
            history
                .iter()
                .filter_map(|v| v.active_until.as_deref().and_then(formats::epoch_millis))
                .max()
        })
        .unwrap_or(0)
}

/// Adds to `out` the write that gives the spec's attribute HubSpot's `value` (`None`: empty).
/// Public for the operator's tools (`attio-relay conflicts resolve`, `backfill --direction
/// both`), which must reverse values exactly as the consumer does.
pub fn write_value(
    spec: &PropertySpec,
    value: Option<&str>,
    record: Option<&ValueMap>,
    out: &mut AttioValues,
) {
    let value = value.map(str::trim).filter(|v| !v.is_empty());
    let (slug, field) = spec.slug_and_field();
    if let (Some(part), "name") = (field, slug) {
        let held = |key: &str| -> String {
            if let Some(pending) = out.get("name").and_then(|n| n.get(0)) {
                return pending
                    .get(key)
                    .and_then(Json::as_str)
                    .unwrap_or("")
                    .to_owned();
            }
            record
                .and_then(|r| current_values(r, "name").next())
                .and_then(|v| match v {
                    relay_attio::Value::PersonalName(n) => Some(match key {
                        "first_name" => n.first_name.clone(),
                        _ => n.last_name.clone(),
                    }),
                    _ => None,
                })
                .unwrap_or_default()
        };
        let (mut first, mut last) = (held("first_name"), held("last_name"));
        let new = value.unwrap_or("").to_owned();
        if part == "first_name" {
            first = new;
        } else {
            last = new;
        }
        let full = format!("{first} {last}").trim().to_owned();
        out.insert(
            "name".into(),
            json!([{"first_name": first, "last_name": last, "full_name": full}]),
        );
        return;
    }
    if multi_valued(slug) {
        let rest: Vec<String> = record
            .map(|r| {
                current_values(r, slug)
                    .filter_map(relay_attio::Value::as_display_string)
                    .skip(1)
                    .filter(|v| Some(v.as_str()) != value)
                    .collect()
            })
            .unwrap_or_default();
        let items = value.map(str::to_owned).into_iter().chain(rest);
        let items: Vec<Json> = if slug == "phone_numbers" {
            items.map(|p| json!({"original_phone_number": p})).collect()
        } else {
            items.map(Json::String).collect()
        };
        out.insert(slug.to_owned(), Json::Array(items));
        return;
    }
    let Some(text) = value else {
        out.insert(slug.to_owned(), Json::Array(Vec::new()));
        return;
    };
    let ms = || {
        text.parse::<i64>()
            .ok()
            .or_else(|| formats::epoch_millis(text))
    };
    let written = match spec.format {
        Format::Number => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Json::String(text.to_owned()), Json::Number),
        Format::Date => ms().map_or_else(|| json!(text), |ms| json!(formats::iso_date(ms))),
        Format::EpochMs => ms().map_or_else(|| json!(text), |ms| json!(formats::iso_instant(ms))),
        Format::Text | Format::Owner => json!(text),
    };
    out.insert(slug.to_owned(), written);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{ADA, person};

    fn spec(toml: &str) -> PropertySpec {
        #[derive(serde::Deserialize)]
        struct One {
            p: PropertySpec,
        }
        toml::from_str::<One>(&format!("p = {toml}"))
            .expect("spec")
            .p
    }

    #[test]
    fn name_parts_keep_the_other_part_and_join_the_full_name() {
        let ada = person(ADA, "ada@example.com", "Ada");
        let mut out = AttioValues::new();
        write_value(
            &spec(r#""name.first_name""#),
            Some("Augusta"),
            Some(&ada.values),
            &mut out,
        );
        assert_eq!(
            out["name"],
            json!([{"first_name": "Augusta", "last_name": "Example", "full_name": "Augusta Example"}])
        );
        write_value(
            &spec(r#""name.last_name""#),
            Some("King"),
            Some(&ada.values),
            &mut out,
        );
        assert_eq!(
            out["name"][0]["full_name"], "Augusta King",
            "both parts in one write"
        );
    }

    #[test]
    fn scalars_take_the_attios_format_and_multi_values_replace_the_first() {
        let ada = person(ADA, "ada@example.com", "Ada");
        let mut out = AttioValues::new();
        write_value(
            &spec(r#""email_addresses""#),
            Some("ada@new.example"),
            Some(&ada.values),
            &mut out,
        );
        write_value(
            &spec(r#"{ attribute = "employees", format = "number" }"#),
            Some("12.5"),
            None,
            &mut out,
        );
        write_value(
            &spec(r#"{ attribute = "born", format = "date" }"#),
            Some("1815-12-10"),
            None,
            &mut out,
        );
        write_value(
            &spec(r#"{ attribute = "seen", format = "epoch_ms" }"#),
            Some("1767225600000"),
            None,
            &mut out,
        );
        write_value(&spec(r#""job_title""#), None, None, &mut out);
        assert_eq!(out["email_addresses"], json!(["ada@new.example"]));
        assert_eq!(out["employees"], json!(12.5));
        assert_eq!(out["born"], json!("1815-12-10"));
        assert_eq!(out["seen"], json!("2026-01-01T00:00:00.000Z"));
        assert_eq!(
            out["job_title"],
            json!([]),
            "emptied in HubSpot empties it in Attio"
        );
        assert_eq!(
            attio_changed_at(&ada.values, &spec(r#""name.first_name""#)),
            1_793_610_764_000
        );
    }
}
