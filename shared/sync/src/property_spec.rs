//! Where one CRM property's value comes from, and in which format HubSpot wants it.
//!
//! In the mapping file a property is either a path, `"slug"` or `"slug.field"` (the first
//! current value, as text — every older mapping file is written this way), or a table:
//!
//! ```toml
//! hs_additional_domains = { attribute = "domains", values = "rest" }
//! closedate = { attribute = "close_date", format = "epoch_ms" }
//! ```

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
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::EpochMs => "a date or timestamp (epoch_ms)",
            Self::Date => "a date or timestamp (date)",
            Self::Number => "a plain number (number)",
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

    /// The property's value; `Ok(None)` when the record has none (the property is not sent),
    /// `Err(format)` when a value is not in the form `format` needs.
    pub fn value(&self, source: &impl AttributeSource) -> Result<Option<String>, Format> {
        let (slug, field) = match self.attribute.split_once('.') {
            Some((slug, field)) => (slug, Some(field)),
            None => (self.attribute.as_str(), None),
        };
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
