//! Attio's JSON shapes as Rust types, field names exactly as the API returns them.
//!
//! Attribute values are the open end: Attio adds attribute types over time, and a value whose
//! type (or shape) this crate does not know becomes [`Value::Other`] with its JSON kept — a
//! record never fails to decode because of one attribute.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Error as _};

/// Attribute values by attribute slug; each slug holds its history, current values included.
pub type ValueMap = BTreeMap<String, Vec<AttributeValue>>;

/// Who did something: `workspace-member`, `api-token`, `system` (no id), `app` — the same shape
/// in API answers as in webhook events.
pub use relay_events::Actor;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecordId {
    pub workspace_id: String,
    pub object_id: String,
    pub record_id: String,
}

/// A person, company, deal or custom-object record.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Record {
    pub id: RecordId,
    pub created_at: String,
    #[serde(default)]
    pub web_url: Option<String>,
    #[serde(default)]
    pub values: ValueMap,
}

/// One value of one attribute: when it was current, and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeValue {
    /// When the value became current (empty if Attio left it out).
    pub active_from: String,
    /// When it stopped being current; `None` for a current value.
    pub active_until: Option<String>,
    pub created_by_actor: Option<Actor>,
    /// Attio's type name (`email-address`, `personal-name`, ...), also for [`Value::Other`].
    pub attribute_type: String,
    pub value: Value,
}

/// An attribute value, typed by its `attribute_type`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `email-address`
    Email(EmailAddress),
    /// `personal-name`
    PersonalName(PersonalName),
    /// `phone-number`
    PhoneNumber(PhoneNumber),
    /// `domain`
    Domain(Domain),
    /// `status`
    Status(Status),
    /// `select`
    Select(SelectOption),
    /// `currency`
    Currency(Currency),
    /// `record-reference`
    RecordReference(RecordReference),
    /// `text`
    Text(String),
    /// `number`
    Number(f64),
    /// `rating` (0 to 5)
    Rating(f64),
    /// `date`: a calendar date, `YYYY-MM-DD`.
    Date(String),
    /// `checkbox`
    Checkbox(bool),
    /// `timestamp`: an ISO 8601 instant.
    Timestamp(String),
    /// `actor-reference` (e.g. `created_by`, owners).
    ActorReference(ActorReference),
    /// `location`
    Location(Location),
    /// `interaction` (first/last email, calendar event, ...).
    Interaction(Interaction),
    /// A type this crate does not model, or a known type in an unexpected shape: the whole
    /// value object as Attio sent it.
    Other(serde_json::Value),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EmailAddress {
    pub original_email_address: String,
    /// Normalised (lower-cased) address.
    pub email_address: String,
    pub email_domain: String,
    pub email_root_domain: String,
    pub email_local_specifier: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PersonalName {
    pub first_name: String,
    pub last_name: String,
    pub full_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PhoneNumber {
    /// As typed in.
    pub original_phone_number: String,
    /// E.164, e.g. `+15558675309`.
    pub phone_number: String,
    /// ISO 3166-1 alpha-2.
    #[serde(default)]
    pub country_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Domain {
    pub domain: String,
    pub root_domain: String,
}

/// A status of a status attribute (deal stage, pipeline step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The status id (Attio's `status.id.status_id`).
    pub id: String,
    pub title: String,
    pub is_archived: bool,
}

/// An option of a select attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectOption {
    /// The option id (Attio's `option.id.option_id`).
    pub id: String,
    pub title: String,
    pub is_archived: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Currency {
    /// The amount. Attio documents a number (<https://docs.attio.com/docs/attribute-types/attribute-types-currency>,
    /// up to four decimal places); a decimal string is accepted too, as some answers carry one.
    #[serde(deserialize_with = "number_or_decimal_string")]
    pub currency_value: f64,
    /// ISO 4217; `None` when the attribute has no currency set.
    #[serde(default)]
    pub currency_code: Option<String>,
}

/// A JSON number, or a string holding a plain decimal number (`"1500.25"`); not `"€1,500"`.
fn number_or_decimal_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Number(n) => n.as_f64().ok_or_else(|| D::Error::custom("amount")),
        serde_json::Value::String(text) => {
            let text = text.trim();
            let plain = text
                .bytes()
                .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
            match text.parse::<f64>() {
                Ok(n) if plain && n.is_finite() => Ok(n),
                _ => Err(D::Error::custom(format!(
                    "{text:?} is not a decimal amount"
                ))),
            }
        }
        other => Err(D::Error::custom(format!("{other} is not an amount"))),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecordReference {
    /// The target object's slug.
    pub target_object: String,
    pub target_record_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ActorReference {
    pub referenced_actor_type: String,
    #[serde(default)]
    pub referenced_actor_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Location {
    pub line_1: Option<String>,
    pub line_2: Option<String>,
    pub line_3: Option<String>,
    pub line_4: Option<String>,
    pub locality: Option<String>,
    pub region: Option<String>,
    pub postcode: Option<String>,
    pub country_code: Option<String>,
    pub latitude: Option<String>,
    pub longitude: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Interaction {
    pub interaction_type: String,
    pub interacted_at: String,
    #[serde(default)]
    pub owner_actor: Option<Actor>,
}

impl Value {
    /// The value as one string, for a CRM property: the address, full name, E.164 number,
    /// domain, status or option title, amount, number, date, text, `true`/`false`, referenced
    /// record or actor id, address lines, interaction time. `None` for [`Value::Other`].
    pub fn as_display_string(&self) -> Option<String> {
        match self {
            Self::Email(email) => Some(email.email_address.clone()),
            Self::PersonalName(name) => Some(name.display()),
            Self::PhoneNumber(phone) if phone.phone_number.is_empty() => {
                Some(phone.original_phone_number.clone())
            }
            Self::PhoneNumber(phone) => Some(phone.phone_number.clone()),
            Self::Domain(domain) => Some(domain.domain.clone()),
            Self::Status(status) => Some(status.title.clone()),
            Self::Select(option) => Some(option.title.clone()),
            Self::Currency(currency) => Some(currency.currency_value.to_string()),
            Self::Number(n) | Self::Rating(n) => Some(n.to_string()),
            Self::Text(s) | Self::Date(s) | Self::Timestamp(s) => Some(s.clone()),
            Self::Checkbox(b) => Some(b.to_string()),
            Self::RecordReference(r) => Some(r.target_record_id.clone()),
            Self::ActorReference(a) => a.referenced_actor_id.clone(),
            Self::Location(location) => location.display(),
            Self::Interaction(i) => Some(i.interacted_at.clone()),
            Self::Other(_) => None,
        }
    }

    /// Decodes the type-specific part of a value; `None` when its shape is not the documented
    /// one.
    fn decode(attribute_type: &str, raw: &serde_json::Value) -> Option<Self> {
        fn typed<T: DeserializeOwned>(raw: &serde_json::Value) -> Option<T> {
            T::deserialize(raw).ok()
        }
        #[derive(Deserialize)]
        struct Scalar<T> {
            value: T,
        }
        Some(match attribute_type {
            "email-address" => Self::Email(typed(raw)?),
            "personal-name" => Self::PersonalName(typed(raw)?),
            "phone-number" => Self::PhoneNumber(typed(raw)?),
            "domain" => Self::Domain(typed(raw)?),
            "status" => Self::Status(typed::<StatusWire>(raw)?.status.into()),
            "select" => Self::Select(typed::<OptionWire>(raw)?.option.into()),
            "currency" => Self::Currency(typed(raw)?),
            "record-reference" => Self::RecordReference(typed(raw)?),
            "text" => Self::Text(typed::<Scalar<String>>(raw)?.value),
            "number" => Self::Number(typed::<Scalar<f64>>(raw)?.value),
            "rating" => Self::Rating(typed::<Scalar<f64>>(raw)?.value),
            "date" => Self::Date(typed::<Scalar<String>>(raw)?.value),
            "checkbox" => Self::Checkbox(typed::<Scalar<bool>>(raw)?.value),
            "timestamp" => Self::Timestamp(typed::<Scalar<String>>(raw)?.value),
            "actor-reference" => Self::ActorReference(typed(raw)?),
            "location" => Self::Location(typed(raw)?),
            "interaction" => Self::Interaction(typed(raw)?),
            _ => return None,
        })
    }

    fn is_modelled(attribute_type: &str) -> bool {
        matches!(
            attribute_type,
            "email-address"
                | "personal-name"
                | "phone-number"
                | "domain"
                | "status"
                | "select"
                | "currency"
                | "record-reference"
                | "text"
                | "number"
                | "rating"
                | "date"
                | "checkbox"
                | "timestamp"
                | "actor-reference"
                | "location"
                | "interaction"
        )
    }
}

impl PersonalName {
    /// `full_name`, or first and last name when Attio left it empty.
    pub fn display(&self) -> String {
        if self.full_name.trim().is_empty() {
            format!("{} {}", self.first_name, self.last_name)
                .trim()
                .to_owned()
        } else {
            self.full_name.clone()
        }
    }
}

impl Location {
    /// The non-empty parts, comma-separated; `None` when there are none.
    pub fn display(&self) -> Option<String> {
        let parts: Vec<&str> = [
            &self.line_1,
            &self.line_2,
            &self.line_3,
            &self.line_4,
            &self.locality,
            &self.region,
            &self.postcode,
            &self.country_code,
        ]
        .into_iter()
        .filter_map(|part| part.as_deref().map(str::trim))
        .filter(|part| !part.is_empty())
        .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// `status` values as returned: `{"status": {"id": {..., "status_id"}, "title", ...}}`.
#[derive(Deserialize)]
struct StatusWire {
    status: TitledWire<StatusIdWire>,
}

#[derive(Deserialize)]
struct OptionWire {
    option: TitledWire<OptionIdWire>,
}

#[derive(Deserialize)]
struct TitledWire<I> {
    id: I,
    title: String,
    #[serde(default)]
    is_archived: bool,
}

#[derive(Deserialize)]
struct StatusIdWire {
    status_id: String,
}

#[derive(Deserialize)]
struct OptionIdWire {
    option_id: String,
}

impl From<TitledWire<StatusIdWire>> for Status {
    fn from(wire: TitledWire<StatusIdWire>) -> Self {
        Self {
            id: wire.id.status_id,
            title: wire.title,
            is_archived: wire.is_archived,
        }
    }
}

impl From<TitledWire<OptionIdWire>> for SelectOption {
    fn from(wire: TitledWire<OptionIdWire>) -> Self {
        Self {
            id: wire.id.option_id,
            title: wire.title,
            is_archived: wire.is_archived,
        }
    }
}

impl<'de> Deserialize<'de> for AttributeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Envelope {
            #[serde(default)]
            active_from: Option<String>,
            #[serde(default)]
            active_until: Option<String>,
            #[serde(default)]
            created_by_actor: Option<Actor>,
            #[serde(default)]
            attribute_type: Option<String>,
        }
        let raw = serde_json::Value::deserialize(deserializer)?;
        let envelope = Envelope::deserialize(&raw).map_err(D::Error::custom)?;
        let attribute_type = envelope.attribute_type.unwrap_or_default();
        let value = Value::decode(&attribute_type, &raw).unwrap_or_else(|| {
            if Value::is_modelled(&attribute_type) {
                tracing::warn!(
                    attribute_type,
                    "Attio value not in its documented shape; kept as raw JSON"
                );
            }
            Value::Other(raw)
        });
        Ok(Self {
            active_from: envelope.active_from.unwrap_or_default(),
            active_until: envelope.active_until,
            created_by_actor: envelope.created_by_actor,
            attribute_type,
            value,
        })
    }
}

impl AttributeValue {
    /// True while the value is current (no `active_until`).
    pub fn is_current(&self) -> bool {
        self.active_until.is_none()
    }

    pub fn as_display_string(&self) -> Option<String> {
        self.value.as_display_string()
    }
}

/// The current values of one attribute, in Attio's order.
pub fn current_values<'a>(
    values: &'a ValueMap,
    slug: &str,
) -> impl Iterator<Item = &'a Value> + use<'a> {
    values
        .get(slug)
        .into_iter()
        .flatten()
        .filter(|v| v.is_current())
        .map(|v| &v.value)
}

fn display_strings(values: &ValueMap, slug: &str) -> Vec<String> {
    current_values(values, slug)
        .filter_map(Value::as_display_string)
        .collect()
}

impl Record {
    pub fn record_id(&self) -> &str {
        &self.id.record_id
    }

    pub fn object_id(&self) -> &str {
        &self.id.object_id
    }

    /// Current values of the attribute `slug` (values no longer active are skipped).
    pub fn current(&self, slug: &str) -> impl Iterator<Item = &Value> + use<'_> {
        current_values(&self.values, slug)
    }

    /// The first current value of `slug`.
    pub fn first(&self, slug: &str) -> Option<&Value> {
        self.current(slug).next()
    }

    /// The first current value of `slug` as a string (see [`Value::as_display_string`]).
    pub fn first_text(&self, slug: &str) -> Option<String> {
        self.current(slug).find_map(Value::as_display_string)
    }

    /// Every current value of `slug` as a string, for multi-value attributes.
    pub fn texts(&self, slug: &str) -> Vec<String> {
        display_strings(&self.values, slug)
    }

    /// Current email addresses (normalised) of `slug`, e.g. `email_addresses`.
    pub fn emails(&self, slug: &str) -> impl Iterator<Item = &str> + use<'_> {
        self.current(slug).filter_map(|v| match v {
            Value::Email(email) => Some(email.email_address.as_str()),
            _ => None,
        })
    }

    /// Current E.164 phone numbers of `slug`, e.g. `phone_numbers`.
    pub fn phone_numbers(&self, slug: &str) -> impl Iterator<Item = &str> + use<'_> {
        self.current(slug).filter_map(|v| match v {
            Value::PhoneNumber(phone) => Some(phone.phone_number.as_str()),
            _ => None,
        })
    }

    /// Current domains of `slug`, e.g. `domains`.
    pub fn domains(&self, slug: &str) -> impl Iterator<Item = &str> + use<'_> {
        self.current(slug).filter_map(|v| match v {
            Value::Domain(domain) => Some(domain.domain.as_str()),
            _ => None,
        })
    }

    /// Records referenced by `slug`, e.g. a person's `company`.
    pub fn references(&self, slug: &str) -> impl Iterator<Item = &RecordReference> + use<'_> {
        self.current(slug).filter_map(|v| match v {
            Value::RecordReference(reference) => Some(reference),
            _ => None,
        })
    }

    /// The `name` attribute as a string: a person's full name, a company's or deal's name.
    pub fn name(&self) -> Option<String> {
        self.first_text("name")
    }

    /// A person's structured name (`name` of type `personal-name`).
    pub fn personal_name(&self) -> Option<&PersonalName> {
        self.current("name").find_map(|v| match v {
            Value::PersonalName(name) => Some(name),
            _ => None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EntryId {
    pub workspace_id: String,
    pub list_id: String,
    pub entry_id: String,
}

/// A record's entry in a list, with the list's own attribute values.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ListEntry {
    pub id: EntryId,
    pub parent_record_id: String,
    /// The parent record's object slug.
    pub parent_object: String,
    pub created_at: String,
    #[serde(default)]
    pub entry_values: ValueMap,
}

impl ListEntry {
    /// Current values of the list attribute `slug`.
    pub fn current(&self, slug: &str) -> impl Iterator<Item = &Value> + use<'_> {
        current_values(&self.entry_values, slug)
    }

    /// The first current value of `slug` as a string.
    pub fn first_text(&self, slug: &str) -> Option<String> {
        self.current(slug).find_map(Value::as_display_string)
    }

    /// Every current value of `slug` as a string.
    pub fn texts(&self, slug: &str) -> Vec<String> {
        display_strings(&self.entry_values, slug)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NoteId {
    pub workspace_id: String,
    pub note_id: String,
}

/// A note on a record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Note {
    pub id: NoteId,
    /// The parent record's object slug.
    pub parent_object: String,
    pub parent_record_id: String,
    pub title: String,
    #[serde(default)]
    pub meeting_id: Option<String>,
    pub content_plaintext: String,
    #[serde(default)]
    pub content_markdown: Option<String>,
    #[serde(default)]
    pub tags: Vec<NoteTag>,
    #[serde(default)]
    pub created_by_actor: Option<Actor>,
    pub created_at: String,
}

/// A mention in a note.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum NoteTag {
    WorkspaceMember {
        workspace_member_id: String,
    },
    Record {
        /// Object slug.
        object: String,
        record_id: String,
    },
    /// A tag type this crate does not know.
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TaskId {
    pub workspace_id: String,
    pub task_id: String,
}

/// A task. Completion arrives as `task.updated` with `is_completed: true`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Task {
    pub id: TaskId,
    pub content_plaintext: String,
    /// ISO 8601; `None` without a deadline.
    #[serde(default)]
    pub deadline_at: Option<String>,
    pub is_completed: bool,
    #[serde(default)]
    pub linked_records: Vec<LinkedRecord>,
    #[serde(default)]
    pub assignees: Vec<Assignee>,
    #[serde(default)]
    pub created_by_actor: Option<Actor>,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LinkedRecord {
    /// The object's id (Attio's examples also show a slug here).
    pub target_object_id: String,
    pub target_record_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Assignee {
    pub referenced_actor_type: String,
    pub referenced_actor_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ObjectId {
    pub workspace_id: String,
    pub object_id: String,
}

/// An object's definition: its id and slug, which events and API paths use respectively.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ObjectSchema {
    pub id: ObjectId,
    /// `people`, `companies`, ...; Attio documents it as nullable.
    pub api_slug: Option<String>,
    pub singular_noun: Option<String>,
    pub plural_noun: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
}

impl ObjectSchema {
    /// What to put in API paths: the slug, or the object id when there is none.
    pub fn slug(&self) -> &str {
        self.api_slug.as_deref().unwrap_or(&self.id.object_id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AttributeId {
    pub workspace_id: String,
    pub object_id: String,
    pub attribute_id: String,
}

/// An attribute of an object.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Attribute {
    pub id: AttributeId,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    pub api_slug: String,
    /// Attio's `type`: `text`, `email-address`, `record-reference`, ...
    #[serde(rename = "type")]
    pub attribute_type: String,
    #[serde(default)]
    pub is_system_attribute: bool,
    #[serde(default)]
    pub is_writable: bool,
    #[serde(default)]
    pub is_required: bool,
    #[serde(default)]
    pub is_unique: bool,
    #[serde(default)]
    pub is_multiselect: bool,
    #[serde(default)]
    pub is_archived: bool,
    #[serde(default)]
    pub created_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn value(raw: serde_json::Value) -> AttributeValue {
        serde_json::from_value(raw).expect("decodes")
    }

    #[test]
    fn a_known_type_in_an_unexpected_shape_is_kept_raw() {
        // The write-side shape of a select (an option id, no title).
        let raw = json!({
            "active_from": "2026-01-01T00:00:00Z", "active_until": null,
            "option": "08c2c59a-c18e-40c6-8dc4-95415313b2ea", "attribute_type": "select"
        });
        let v = value(raw.clone());
        assert_eq!(v.attribute_type, "select");
        assert_eq!(v.value, Value::Other(raw));
        assert_eq!(v.as_display_string(), None);
    }

    #[test]
    fn a_value_without_envelope_fields_still_decodes() {
        let v = value(json!({"value": "x", "attribute_type": "text"}));
        assert_eq!(v.active_from, "");
        assert!(v.is_current());
        assert_eq!(v.value, Value::Text("x".into()));
    }

    #[test]
    fn display_strings_cover_the_edge_cases() {
        let name = PersonalName {
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            full_name: "".into(),
        };
        assert_eq!(name.display(), "Ada Lovelace");
        assert_eq!(
            Value::Number(42.0).as_display_string().as_deref(),
            Some("42")
        );
        assert_eq!(
            Value::Number(0.25).as_display_string().as_deref(),
            Some("0.25")
        );
        let empty = Location {
            line_1: None,
            line_2: None,
            line_3: None,
            line_4: None,
            locality: Some(" ".into()),
            region: None,
            postcode: None,
            country_code: None,
            latitude: Some("51.5".into()),
            longitude: None,
        };
        assert_eq!(Value::Location(empty).as_display_string(), None);
        let phone = PhoneNumber {
            original_phone_number: "555 0100".into(),
            phone_number: "".into(),
            country_code: None,
        };
        assert_eq!(
            Value::PhoneNumber(phone).as_display_string().as_deref(),
            Some("555 0100")
        );
    }

    #[test]
    fn unknown_note_tags_do_not_fail_the_note() {
        let tags: Vec<NoteTag> = serde_json::from_value(json!([
            {"type": "workspace-member", "workspace_member_id": "m"},
            {"type": "record", "object": "people", "record_id": "r"},
            {"type": "meeting", "meeting_id": "x"}
        ]))
        .expect("decodes");
        assert_eq!(
            tags,
            vec![
                NoteTag::WorkspaceMember {
                    workspace_member_id: "m".into()
                },
                NoteTag::Record {
                    object: "people".into(),
                    record_id: "r".into()
                },
                NoteTag::Other,
            ]
        );
    }

    #[test]
    fn an_object_without_a_slug_is_addressed_by_its_id() {
        let schema: ObjectSchema = serde_json::from_value(json!({
            "id": {"workspace_id": "w", "object_id": "o"},
            "api_slug": null, "singular_noun": null, "plural_noun": null,
            "created_at": "2026-01-01T00:00:00Z"
        }))
        .expect("decodes");
        assert_eq!(schema.slug(), "o");
    }
}
