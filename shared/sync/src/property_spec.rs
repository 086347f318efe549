//! Where one CRM property's value comes from, and in which format HubSpot wants it.
//!
//! In the mapping file a property is either a path, `"slug"` or `"slug.field"` (the first
//! current value, as text — every older mapping file is written this way), or a table:
//!
//! ```toml
//! hs_additional_domains = { attribute = "domains", values = "rest" }
//! closedate = { attribute = "close_date", format = "epoch_ms" }
//! hubspot_owner_id = { attribute = "owner", format = "owner" }
//! jobtitle = { attribute = "job_title", direction = "both" }
//! ```
//!
//! `direction` (issue 14, two-way sync) says which way the value flows: `attio_to_hubspot` (the
//! default, and the only direction of the string form, so a mapping file that never names a
//! direction syncs exactly as before), `hubspot_to_attio`, or `both`. A property that flows
//! back must be reversible — HubSpot's text must say which Attio value to write — which is
//! checked when the mapping is loaded ([`PropertySpec::reverse_problem`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::field_mapping::AttributeSource;
use crate::formats;

/// Which current values of a multi-valued attribute a property takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pick {
    /// The first (Attio's primary): `email`, `domain`.
    #[default]
    First,
    /// All but the first, joined: `hs_additional_emails`, `hs_additional_domains`.
    Rest,
    /// All of them, joined.
    All,
}

/// The form HubSpot wants a value in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// As Attio shows it.
    #[default]
    Text,
    /// An Attio date or timestamp as epoch milliseconds: datetime properties (`closedate`).
    EpochMs,
    /// Midnight UTC of the UTC date, in epoch milliseconds: HubSpot date properties.
    Date,
    /// A plain decimal number (`amount` from a currency value).
    Number,
    /// An `actor-reference` attribute (a deal's `owner`) as the id of the CRM owner with the
    /// workspace member's email (`hubspot_owner_id`). Owners are resolved before mapping
    /// ([`OwnerIds`]); a member with no CRM owner leaves the property out — never an error.
    Owner,
}

/// Which way a property's value flows (two-way sync, issue 14).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Attio's value is written to HubSpot; HubSpot's changes are left alone (and overwritten
    /// by Attio's next change). The default: nothing changes for users who do not opt in.
    #[default]
    AttioToHubspot,
    /// HubSpot's value is written to Attio; Attio's changes are not sent to HubSpot.
    HubspotToAttio,
    /// Both ways; when both sides changed since the last sync, the later change wins.
    Both,
}

impl Direction {
    /// The value is written to HubSpot by the records consumer.
    pub fn to_hubspot(self) -> bool {
        matches!(self, Self::AttioToHubspot | Self::Both)
    }

    /// The value is written to Attio by the HubSpot consumer.
    pub fn to_attio(self) -> bool {
        matches!(self, Self::HubspotToAttio | Self::Both)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AttioToHubspot => "attio_to_hubspot",
            Self::HubspotToAttio => "hubspot_to_attio",
            Self::Both => "both",
        }
    }
}

/// The sub-field of an `actor-reference` value that names a workspace member: the actor id
/// when the actor is a `workspace-member` (an API token or the system owns nothing in a CRM).
pub const MEMBER_FIELD: &str = "workspace_member";

/// Resolved owners for one mapping: workspace member id → CRM owner id. Members without an
/// owner are absent.
pub type OwnerIds = BTreeMap<String, String>;

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::EpochMs => "a date or timestamp (epoch_ms)",
            Self::Date => "a date or timestamp (date)",
            Self::Number => "a plain number (number)",
            Self::Owner => "a workspace member (owner)",
        })
    }
}

impl Format {
    fn apply(self, text: &str) -> Option<String> {
        match self {
            Self::Text => Some(text.to_owned()),
            Self::EpochMs => formats::hubspot_timestamp(text),
            Self::Date => formats::hubspot_date(text),
            Self::Number => formats::plain_number(text),
            // Resolved in `PropertySpec::value`, never formatted from text.
            Self::Owner => None,
        }
    }
}

/// One property's source: an attribute (`slug` or `slug.field`), which of its values, the
/// format, and how several values are joined (`;`, HubSpot's separator for multi-value
/// properties such as `hs_additional_domains`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertySpec {
    pub attribute: String,
    pub values: Pick,
    pub format: Format,
    pub separator: String,
    /// Which way the value flows ([`Direction`]).
    pub direction: Direction,
}

impl PropertySpec {
    /// A spec for the first value of `attribute`, as text.
    pub fn path(attribute: &str) -> Self {
        Self {
            attribute: attribute.to_owned(),
            values: Pick::First,
            format: Format::Text,
            separator: ";".to_owned(),
            direction: Direction::AttioToHubspot,
        }
    }

    /// Why HubSpot's text for this property cannot be turned back into the Attio value it
    /// came from, if it cannot: then the property may only flow Attio → HubSpot. Reversible:
    /// the first value of an attribute as text, number, date or timestamp (text, number, date,
    /// timestamp, select and status titles, email addresses, domains and phone numbers, whose
    /// first value is replaced and the others kept), and a personal name's `first_name` or
    /// `last_name` (written with the other part kept). Not: owners (a CRM owner id names no
    /// workspace member), `values = "rest"`/`"all"` (a joined list loses where the values
    /// split and which was first), and other sub-fields (a status id, a location part, an
    /// email's domain are parts of a value that cannot be written alone).
    pub fn reverse_problem(&self) -> Option<String> {
        if self.format == Format::Owner {
            return Some(
                "format = \"owner\" holds a HubSpot owner id, which names no Attio workspace member to write back".into(),
            );
        }
        if self.values != Pick::First {
            return Some(format!(
                "values = \"{}\" joins several Attio values into one text, which cannot be split back faithfully",
                match self.values {
                    Pick::Rest => "rest",
                    _ => "all",
                }
            ));
        }
        match self.slug_and_field() {
            (_, None) | ("name", Some("first_name" | "last_name")) => None,
            (slug, Some(field)) => Some(format!(
                "{slug}.{field} is a part of an Attio value that cannot be written alone (only name.first_name and name.last_name are)"
            )),
        }
    }

    /// The attribute slug and the sub-field, if any (`name.first_name` → `("name",
    /// Some("first_name"))`).
    pub fn slug_and_field(&self) -> (&str, Option<&str>) {
        match self.attribute.split_once('.') {
            Some((slug, field)) => (slug, Some(field)),
            None => (self.attribute.as_str(), None),
        }
    }

    /// A value in HubSpot's form reduced to what it means, so the same value written one way
    /// and read back the other compares equal: dates and timestamps as epoch milliseconds
    /// (HubSpot may answer a date property as `YYYY-MM-DD`, the relay sends milliseconds),
    /// numbers without trailing zeros, text trimmed. The empty string for no value.
    pub fn normalise(&self, value: Option<&str>) -> String {
        let text = value.map(str::trim).unwrap_or("");
        if text.is_empty() {
            return String::new();
        }
        let parsed = match self.format {
            Format::EpochMs | Format::Date => text
                .parse::<i64>()
                .ok()
                .or_else(|| formats::epoch_millis(text))
                .map(|ms| ms.to_string()),
            Format::Number => formats::plain_number(text),
            Format::Text | Format::Owner => None,
        };
        parsed.unwrap_or_else(|| text.to_owned())
    }

    /// The workspace member an `owner` property names: the first current value of its
    /// attribute, when that is a workspace member. `None` for other formats.
    pub fn owner_actor(&self, source: &impl AttributeSource) -> Option<String> {
        (self.format == Format::Owner)
            .then(|| source.text(self.slug_and_field().0, Some(MEMBER_FIELD)))
            .flatten()
    }

    /// The property's value; `Ok(None)` when the record has none (the property is not sent),
    /// `Err(format)` when a value is not in the form `format` needs. `owners` holds the
    /// resolved owners for [`Format::Owner`]; an unresolved member is `Ok(None)`.
    pub fn value(
        &self,
        source: &impl AttributeSource,
        owners: &OwnerIds,
    ) -> Result<Option<String>, Format> {
        if self.format == Format::Owner {
            return Ok(self
                .owner_actor(source)
                .and_then(|member| owners.get(&member).cloned()));
        }
        let (slug, field) = self.slug_and_field();
        let texts: Vec<String> = match self.values {
            Pick::First => source.text(slug, field).into_iter().collect(),
            Pick::Rest => source.texts(slug, field).into_iter().skip(1).collect(),
            Pick::All => source.texts(slug, field),
        };
        let formatted = texts
            .iter()
            .map(|text| self.format.apply(text).ok_or(self.format))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(formats::join_values(&formatted, &self.separator))
    }
}

impl<'de> Deserialize<'de> for PropertySpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SpecVisitor)
    }
}

/// A string path, or a table — with serde's own messages for a misspelt key or format.
struct SpecVisitor;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecTable {
    attribute: String,
    #[serde(default)]
    values: Pick,
    #[serde(default)]
    format: Format,
    #[serde(default)]
    separator: Option<String>,
    #[serde(default)]
    direction: Direction,
}

impl<'de> Visitor<'de> for SpecVisitor {
    type Value = PropertySpec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#""slug", "slug.field" or { attribute = "...", values = ..., format = ..., direction = ... }"#)
    }

    fn visit_str<E: de::Error>(self, path: &str) -> Result<PropertySpec, E> {
        Ok(PropertySpec::path(path))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PropertySpec, A::Error> {
        let table = SpecTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(PropertySpec {
            attribute: table.attribute,
            values: table.values,
            format: table.format,
            separator: table.separator.unwrap_or_else(|| ";".to_owned()),
            direction: table.direction,
        })
    }
}
