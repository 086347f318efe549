//! Reading Attio attribute values for the field mapping.

use relay_attio::{Value, ValueMap, WORKSPACE_MEMBER, current_values};

use crate::AttributeSource;

/// A record's (or list entry's) values, read as the field mapping asks.
#[derive(Debug)]
pub struct RecordValues<'a>(pub &'a ValueMap);

impl AttributeSource for RecordValues<'_> {
    fn text(&self, slug: &str, field: Option<&str>) -> Option<String> {
        value_text(current_values(self.0, slug).next()?, field)
    }

    fn texts(&self, slug: &str, field: Option<&str>) -> Vec<String> {
        current_values(self.0, slug)
            .filter_map(|value| value_text(value, field))
            .collect()
    }
}

fn value_text(value: &Value, field: Option<&str>) -> Option<String> {
    let text = match field {
        None => value.as_display_string(),
        Some(field) => sub_field(value, field),
    };
    text.filter(|t| !t.trim().is_empty())
}

/// The named part of a structured value (`name.first_name`, `primary_location.locality`, ...).
fn sub_field(value: &Value, field: &str) -> Option<String> {
    match (value, field) {
        (Value::PersonalName(n), "first_name") => Some(n.first_name.clone()),
        (Value::PersonalName(n), "last_name") => Some(n.last_name.clone()),
        (Value::PersonalName(n), "full_name") => Some(n.full_name.clone()),
        (Value::Email(e), "email_domain") => Some(e.email_domain.clone()),
        (Value::PhoneNumber(p), "country_code") => p.country_code.clone(),
        (Value::Domain(d), "root_domain") => Some(d.root_domain.clone()),
        (Value::Currency(c), "currency_code") => c.currency_code.clone(),
        (Value::Currency(c), "currency_value") => Some(c.currency_value.to_string()),
        // Status and option ids: stable across renames, unlike titles (stage mapping).
        (Value::Status(s), "id" | "status_id") => Some(s.id.clone()),
        (Value::Select(o), "id" | "option_id") => Some(o.id.clone()),
        // The member an actor reference names (owners): other actors own nothing in a CRM.
        (Value::ActorReference(a), crate::property_spec::MEMBER_FIELD)
            if a.referenced_actor_type == WORKSPACE_MEMBER =>
        {
            a.referenced_actor_id.clone()
        }
        (Value::Location(l), "locality") => l.locality.clone(),
        (Value::Location(l), "region") => l.region.clone(),
        (Value::Location(l), "postcode") => l.postcode.clone(),
        (Value::Location(l), "country_code") => l.country_code.clone(),
        _ => None,
    }
}
