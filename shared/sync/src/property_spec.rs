//! Where one CRM property's value comes from, and in which format HubSpot wants it.
//!
//! In the mapping file a property is either a path, `"slug"` or `"slug.field"` (the first
//! current value, as text — every older mapping file is written this way), or a table:
//!
//! ```toml
//! hs_additional_domains = { attribute = "domains", values = "rest" }
//! closedate = { attribute = "close_date", format = "epoch_ms" }
//! hubspot_owner_id = { attribute = "owner", format = "owner" }
//! ```

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
}

impl PropertySpec {
    /// A spec for the first value of `attribute`, as text.
    pub fn path(attribute: &str) -> Self {
        Self {
            attribute: attribute.to_owned(),
            values: Pick::First,
            format: Format::Text,
            separator: ";".to_owned(),
        }
    }

    /// The workspace member an `owner` property names: the first current value of its
    /// attribute, when that is a workspace member. `None` for other formats.
    pub fn owner_actor(&self, source: &impl AttributeSource) -> Option<String> {
        (self.format == Format::Owner)
            .then(|| source.text(self.slug_and_field().0, Some(MEMBER_FIELD)))
            .flatten()
    }

    fn slug_and_field(&self) -> (&str, Option<&str>) {
        match self.attribute.split_once('.') {
            Some((slug, field)) => (slug, Some(field)),
            None => (self.attribute.as_str(), None),
        }
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
}

impl<'de> Visitor<'de> for SpecVisitor {
    type Value = PropertySpec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#""slug", "slug.field" or { attribute = "...", values = ..., format = ... }"#)
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
        })
    }
}
