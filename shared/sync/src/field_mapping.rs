//! Declarative field mapping: which Attio object becomes which CRM object, and which attribute
//! fills which property. Configuration, not code per field (see `default-mapping.toml`).

use std::collections::BTreeMap;

use relay_crm::{CrmObject, Properties};
use serde::Deserialize;

pub use crate::property_spec::{Direction, Format, OwnerIds, Pick, PropertySpec};

/// Reads current attribute values from an Attio record (or list entry) as text.
pub trait AttributeSource {
    /// The first current value of `slug` as text; `field` picks a sub-field (e.g. a personal
    /// name's `first_name`, a status's `id`).
    fn text(&self, slug: &str, field: Option<&str>) -> Option<String>;

    /// Every current value of `slug` as text, in Attio's order (multi-valued attributes such as
    /// `email_addresses` and `domains`). Sources with single values need not implement it.
    fn texts(&self, slug: &str, field: Option<&str>) -> Vec<String> {
        self.text(slug, field).into_iter().collect()
    }
}

/// Deal stages: an Attio status (by id, or by title) → a HubSpot pipeline and stage id.
///
/// HubSpot wants internal ids for both ("you must use the internal ID of a deal stage or
/// pipeline", <https://developers.hubspot.com/docs/api/crm/deals>). Attio status ids survive a
/// rename of the status, titles do not, so ids are looked up first; titles keep older mapping
/// files working. A map entry is a stage id in `pipeline`, or `{ pipeline, stage }` for a stage
/// of another pipeline — several HubSpot pipelines from one Attio attribute.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StageMapping {
    /// The Attio attribute holding the stage (e.g. `stage`).
    pub attribute: String,
    /// HubSpot pipeline id (`default` for the default sales pipeline) of entries that name only
    /// a stage, and of `default_stage`.
    pub pipeline: String,
    /// Used when the record has no stage yet.
    pub default_stage: Option<String>,
    /// Attio status id or title → HubSpot stage.
    #[serde(default)]
    pub map: BTreeMap<String, StageTarget>,
    /// Which way a stage change goes, as for properties (default `attio_to_hubspot`). With
    /// `both` or `hubspot_to_attio`, a HubSpot `dealstage`/`pipeline` change is mapped back
    /// through the inverse of `map` (ledger property [`STAGE_PROPERTY`]).
    #[serde(default)]
    pub direction: Direction,
}

/// The HubSpot property a deal's stage is sent as, and the ledger's name for the stage.
pub const STAGE_PROPERTY: &str = "dealstage";
/// The HubSpot property a deal's pipeline is sent as, always with [`STAGE_PROPERTY`].
pub const PIPELINE_PROPERTY: &str = "pipeline";

/// Where one Attio stage lands in HubSpot.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum StageTarget {
    /// A stage id of the mapping's `pipeline`.
    Stage(String),
    /// A stage id of another pipeline.
    InPipeline { pipeline: String, stage: String },
}

impl StageMapping {
    /// The (pipeline, stage) a record's stage attribute maps to: its status (id first, then
    /// title), or `default_stage` when it has none. `Ok(None)`: no stage and no default.
    /// `Err((title, id))`: a stage the map does not name.
    #[allow(clippy::type_complexity)]
    pub fn target(
        &self,
        source: &impl AttributeSource,
    ) -> Result<Option<(&str, &str)>, (Option<String>, Option<String>)> {
        let id = source.text(&self.attribute, Some("id"));
        let title = source.text(&self.attribute, None);
        if id.is_none() && title.is_none() {
            return Ok(self
                .default_stage
                .as_deref()
                .map(|d| (self.pipeline.as_str(), d)));
        }
        self.resolve(id.as_deref(), title.as_deref())
            .map(Some)
            .ok_or((title, id))
    }

    /// The Attio status (the map's key: a status id or title) a HubSpot pipeline and stage
    /// come from. `None`: the map does not name it. Unique when the stage flows back
    /// ([`Self::ambiguities`] is checked at load).
    pub fn inverse(&self, pipeline: &str, stage: &str) -> Option<&str> {
        self.map
            .iter()
            .find(|(_, t)| t.pipeline_and_stage(&self.pipeline) == (pipeline, stage))
            .map(|(key, _)| key.as_str())
    }

    /// The HubSpot stages mapped from several Attio statuses, each with those statuses: such a
    /// stage cannot say which status to write back.
    pub fn ambiguities(&self) -> Vec<((&str, &str), Vec<&str>)> {
        let mut by_target: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
        for (key, target) in &self.map {
            by_target
                .entry(target.pipeline_and_stage(&self.pipeline))
                .or_default()
                .push(key.as_str());
        }
        by_target.into_iter().filter(|(_, k)| k.len() > 1).collect()
    }

    /// The (pipeline, stage) for an Attio status id or title: the id wins.
    fn resolve(&self, id: Option<&str>, title: Option<&str>) -> Option<(&str, &str)> {
        let target = id
            .and_then(|id| self.map.get(id))
            .or_else(|| title.and_then(|title| self.map.get(title)))?;
        Some(target.pipeline_and_stage(&self.pipeline))
    }
}

impl StageTarget {
    /// (pipeline, stage), `default_pipeline` for a bare stage id.
    fn pipeline_and_stage<'a>(&'a self, default_pipeline: &'a str) -> (&'a str, &'a str) {
        match self {
            Self::Stage(stage) => (default_pipeline, stage.as_str()),
            Self::InPipeline { pipeline, stage } => (pipeline.as_str(), stage.as_str()),
        }
    }
}

/// How one Attio object is written to the CRM.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ObjectMapping {
    pub crm_object: String,
    /// CRM property → where its value comes from (see [`PropertySpec`]).
    #[serde(default)]
    pub properties: BTreeMap<String, PropertySpec>,
    #[serde(default)]
    pub stage: Option<StageMapping>,
}

impl ObjectMapping {
    /// Whether anything of this object flows back to Attio: a property or the stage whose
    /// direction is `both` or `hubspot_to_attio`.
    pub fn flows_back(&self) -> bool {
        self.properties.values().any(|s| s.direction.to_attio())
            || self.stage.as_ref().is_some_and(|s| s.direction.to_attio())
    }

    /// The stage mapping when the stage flows back to Attio.
    pub fn stage_back(&self) -> Option<&StageMapping> {
        self.stage.as_ref().filter(|s| s.direction.to_attio())
    }
}

/// The whole mapping, keyed by Attio object slug.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FieldMapping {
    pub objects: BTreeMap<String, ObjectMapping>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldMappingError {
    #[error("field mapping is not valid TOML: {0}")]
    Syntax(String),
    #[error("cannot read FIELD_MAPPING_FILE {path}: {message}")]
    Unreadable { path: String, message: String },
    #[error("objects.{object}.crm_object = {value:?}: use contacts, companies or deals")]
    UnknownCrmObject { object: String, value: String },
    /// A property asked to flow HubSpot → Attio that cannot (see
    /// [`PropertySpec::reverse_problem`]).
    #[error(
        "objects.{object}.properties.{property} has direction = \"{direction}\", but {reason}; use direction = \"attio_to_hubspot\" (the default) for it"
    )]
    NotReversible {
        object: String,
        property: String,
        direction: &'static str,
        reason: String,
    },
    /// Two Attio objects map to one CRM object with properties flowing back: a HubSpot change
    /// would not say which Attio object to write.
    #[error(
        "objects.{first} and objects.{second} both map to {crm_object} with properties flowing to Attio; a HubSpot change could not say which Attio object to write"
    )]
    AmbiguousReverse {
        first: String,
        second: String,
        crm_object: String,
    },
    /// A HubSpot stage mapped from several Attio statuses while the stage flows back: a
    /// HubSpot change to it could not say which status to write.
    #[error(
        "objects.{object}.stage has direction = \"{direction}\", but HubSpot stage {stage:?} of pipeline {pipeline:?} is mapped from several Attio statuses ({}); a change in HubSpot could not say which to write back. Map it from one status only, or use direction = \"attio_to_hubspot\"",
        statuses.join(", ")
    )]
    AmbiguousStage {
        object: String,
        direction: &'static str,
        pipeline: String,
        stage: String,
        statuses: Vec<String>,
    },
    #[error(
        "Attio {object} record {record_id} has stage {title:?} (status id {id:?}), which objects.{object}.stage.map does not name; add its id or title to the field mapping"
    )]
    UnmappedStage {
        object: String,
        record_id: String,
        title: Option<String>,
        id: Option<String>,
    },
    /// The value itself is left out: it may be personal data, and the record names it.
    #[error(
        "Attio {object} record {record_id}: {attribute} has a value that is not {format}, as objects.{object}.properties.{property} asks; fix the value in Attio or the property's format"
    )]
    Unformattable {
        object: String,
        record_id: String,
        property: String,
        attribute: String,
        format: Format,
    },
}

const DEFAULT: &str = include_str!("default-mapping.toml");

impl Default for FieldMapping {
    fn default() -> Self {
        // The embedded default is checked by a unit test; parsing it cannot fail at run time.
        Self::from_toml(DEFAULT).unwrap_or_else(|e| unreachable!("default mapping: {e}"))
    }
}

impl FieldMapping {
    /// The mapping a deployment configured, read once at start-up: inline TOML
    /// (`FIELD_MAPPING`) wins over a file (`FIELD_MAPPING_FILE`); neither means the built-in
    /// default.
    pub fn load(
        inline: Option<&str>,
        file: Option<&std::path::Path>,
    ) -> Result<Self, FieldMappingError> {
        match (inline, file) {
            (Some(text), _) => Self::from_toml(text),
            (None, Some(path)) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| FieldMappingError::Unreadable {
                        path: path.display().to_string(),
                        message: e.to_string(),
                    })?;
                Self::from_toml(&text)
            }
            (None, None) => Ok(Self::default()),
        }
    }

    pub fn from_toml(text: &str) -> Result<Self, FieldMappingError> {
        let mapping: Self =
            toml::from_str(text).map_err(|e| FieldMappingError::Syntax(e.to_string()))?;
        for (object, m) in &mapping.objects {
            match CrmObject::parse(&m.crm_object) {
                Some(CrmObject::Contacts | CrmObject::Companies | CrmObject::Deals) => {}
                _ => {
                    return Err(FieldMappingError::UnknownCrmObject {
                        object: object.clone(),
                        value: m.crm_object.clone(),
                    });
                }
            }
            for (property, spec) in &m.properties {
                if !spec.direction.to_attio() {
                    continue;
                }
                let reason = if property == relay_crm::ID_PROPERTY {
                    Some(format!(
                        "{property} is the relay's own key, written only by the relay"
                    ))
                } else {
                    spec.reverse_problem()
                };
                if let Some(reason) = reason {
                    return Err(FieldMappingError::NotReversible {
                        object: object.clone(),
                        property: property.clone(),
                        direction: spec.direction.as_str(),
                        reason,
                    });
                }
            }
        }
        for (object, m) in &mapping.objects {
            let Some(stage) = m.stage_back() else {
                continue;
            };
            if let Some(((pipeline, stage_id), keys)) = stage.ambiguities().into_iter().next() {
                return Err(FieldMappingError::AmbiguousStage {
                    object: object.clone(),
                    direction: stage.direction.as_str(),
                    pipeline: pipeline.to_owned(),
                    stage: stage_id.to_owned(),
                    statuses: keys.into_iter().map(|k| format!("{k:?}")).collect(),
                });
            }
        }
        let mut reversed: BTreeMap<&str, &str> = BTreeMap::new();
        for (object, m) in &mapping.objects {
            if !m.flows_back() {
                continue;
            }
            if let Some(first) = reversed.insert(&m.crm_object, object) {
                return Err(FieldMappingError::AmbiguousReverse {
                    first: first.to_owned(),
                    second: object.clone(),
                    crm_object: m.crm_object.clone(),
                });
            }
        }
        Ok(mapping)
    }

    /// Whether any property flows back to Attio (`both` or `hubspot_to_attio`): only then do
    /// the consumers need the ledger, the conflicts store and the `hubspot` queue's handler.
    pub fn flows_back(&self) -> bool {
        self.objects.values().any(ObjectMapping::flows_back)
    }

    /// The Attio object (slug) a CRM object's changes flow back to: the one mapping to it
    /// with at least one property whose direction reaches Attio. `None`: nothing flows back.
    pub fn reverse_object(&self, crm_object: CrmObject) -> Option<(&str, &ObjectMapping)> {
        self.objects.iter().find_map(|(slug, m)| {
            (CrmObject::parse(&m.crm_object) == Some(crm_object) && m.flows_back())
                .then_some((slug.as_str(), m))
        })
    }

    /// The Attio object a CRM object's deletion names (`HUBSPOT_DELETIONS=delete`): the one
    /// its changes flow back to, else the only object mapping to it. `None` when none or
    /// several do (a deleted object could not say which Attio object to delete from).
    pub fn deletion_object(&self, crm_object: CrmObject) -> Option<&str> {
        if let Some((slug, _)) = self.reverse_object(crm_object) {
            return Some(slug);
        }
        let mut mapped = self
            .objects
            .iter()
            .filter(|(_, m)| CrmObject::parse(&m.crm_object) == Some(crm_object));
        match (mapped.next(), mapped.next()) {
            (Some((slug, _)), None) => Some(slug.as_str()),
            _ => None,
        }
    }

    /// The HubSpot properties of `object_slug` the forward path compares with the ledger
    /// before sending (`both`): the `both` properties, and `dealstage` and `pipeline` when
    /// the stage is `both`. Where no ledger is at hand they are never sent.
    pub fn two_way_properties(&self, object_slug: &str) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .both_ways(object_slug)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        if self.stage_both(object_slug).is_some() {
            names.extend([STAGE_PROPERTY, PIPELINE_PROPERTY]);
        }
        names
    }

    /// The stage mapping of `object_slug` when its direction is `both`.
    pub fn stage_both(&self, object_slug: &str) -> Option<&StageMapping> {
        self.objects
            .get(object_slug)
            .and_then(|m| m.stage.as_ref())
            .filter(|s| s.direction == Direction::Both)
    }

    /// The properties of `object_slug` with direction `both`: the ones the records consumer
    /// compares with the sync ledger before sending.
    pub fn both_ways(&self, object_slug: &str) -> Vec<(&str, &PropertySpec)> {
        self.objects
            .get(object_slug)
            .into_iter()
            .flat_map(|m| &m.properties)
            .filter(|(_, s)| s.direction == Direction::Both)
            .map(|(p, s)| (p.as_str(), s))
            .collect()
    }

    /// The CRM object an Attio object maps to, if any.
    pub fn crm_object(&self, object_slug: &str) -> Option<CrmObject> {
        self.objects
            .get(object_slug)
            .and_then(|m| CrmObject::parse(&m.crm_object))
    }

    /// The workspace members the mapping of one record reads as owners (`format = "owner"`):
    /// the ids to resolve to CRM owners before [`Self::map_record_with`]. Resolving is async
    /// (Attio, then the CRM), mapping stays synchronous.
    pub fn owner_actors(&self, object_slug: &str, source: &impl AttributeSource) -> Vec<String> {
        let Some(mapping) = self.objects.get(object_slug) else {
            return Vec::new();
        };
        let mut members: Vec<String> = mapping
            .properties
            .values()
            .filter_map(|spec| spec.owner_actor(source))
            .collect();
        members.sort();
        members.dedup();
        members
    }

    /// The CRM properties for one record; `None` when the object is not mapped (skipped).
    /// Owner properties are left out (see [`Self::map_record_with`]).
    pub fn map_record(
        &self,
        object_slug: &str,
        record_id: &str,
        source: &impl AttributeSource,
    ) -> Result<Option<(CrmObject, Properties)>, FieldMappingError> {
        self.map_record_with(object_slug, record_id, source, &OwnerIds::new())
    }

    /// [`Self::map_record`] with the owners of [`Self::owner_actors`] resolved: an owner
    /// property whose member has a CRM owner is sent, any other is left out.
    pub fn map_record_with(
        &self,
        object_slug: &str,
        record_id: &str,
        source: &impl AttributeSource,
        owners: &OwnerIds,
    ) -> Result<Option<(CrmObject, Properties)>, FieldMappingError> {
        let Some(mapping) = self.objects.get(object_slug) else {
            return Ok(None);
        };
        let Some(crm_object) = CrmObject::parse(&mapping.crm_object) else {
            return Ok(None);
        };
        let mut properties = Properties::new();
        for (property, spec) in &mapping.properties {
            // HubSpot's value wins for these; the records consumer never sends them.
            if !spec.direction.to_hubspot() {
                continue;
            }
            let value =
                spec.value(source, owners)
                    .map_err(|format| FieldMappingError::Unformattable {
                        object: object_slug.to_owned(),
                        record_id: record_id.to_owned(),
                        property: property.clone(),
                        attribute: spec.attribute.clone(),
                        format,
                    })?;
            if let Some(value) = value {
                properties.insert(property.clone(), value);
            }
        }
        // A `hubspot_to_attio` stage is HubSpot's: never sent.
        if let Some(stage) = mapping.stage.as_ref().filter(|s| s.direction.to_hubspot()) {
            let target =
                stage
                    .target(source)
                    .map_err(|(title, id)| FieldMappingError::UnmappedStage {
                        object: object_slug.to_owned(),
                        record_id: record_id.to_owned(),
                        title,
                        id,
                    })?;
            if let Some((pipeline, stage_id)) = target {
                properties.insert(PIPELINE_PROPERTY.into(), pipeline.to_owned());
                properties.insert(STAGE_PROPERTY.into(), stage_id.to_owned());
            }
        }
        Ok(Some((crm_object, properties)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(BTreeMap<&'static str, &'static str>);

    impl AttributeSource for Fake {
        fn text(&self, slug: &str, field: Option<&str>) -> Option<String> {
            let key = match field {
                Some(f) => format!("{slug}.{f}"),
                None => slug.to_owned(),
            };
            self.0.get(key.as_str()).map(|v| (*v).to_owned())
        }
    }

    #[test]
    fn the_default_mapping_parses_and_maps_people() {
        let mapping = FieldMapping::default();
        let person = Fake(
            [
                ("email_addresses", "ada@example.com"),
                ("name.first_name", "Ada"),
                ("name.last_name", "Lovelace"),
            ]
            .into(),
        );
        let (object, props) = mapping
            .map_record("people", "r1", &person)
            .unwrap()
            .unwrap();
        assert_eq!(object, CrmObject::Contacts);
        assert_eq!(props["email"], "ada@example.com");
        assert_eq!(props["firstname"], "Ada");
        assert!(!props.contains_key("phone"), "absent values are not sent");
    }

    #[test]
    fn deal_stages_map_through_configuration() {
        let mapping = FieldMapping::default();
        let won = Fake([("name", "Big deal"), ("stage", "Won 🎉")].into());
        let (_, props) = mapping.map_record("deals", "d1", &won).unwrap().unwrap();
        assert_eq!(
            (props["dealstage"].as_str(), props["pipeline"].as_str()),
            ("closedwon", "default")
        );
        let fresh = Fake([("name", "New deal")].into());
        let (_, props) = mapping.map_record("deals", "d2", &fresh).unwrap().unwrap();
        assert_eq!(props["dealstage"], "appointmentscheduled");
        let odd = Fake([("name", "Odd"), ("stage", "Negotiation")].into());
        let err = mapping.map_record("deals", "d3", &odd).unwrap_err();
        assert!(
            err.to_string().contains("Negotiation") && err.to_string().contains("stage.map"),
            "{err}"
        );
    }

    #[test]
    fn unmapped_objects_are_skipped_and_bad_config_is_named() {
        assert_eq!(
            FieldMapping::default()
                .map_record("invoices", "x", &Fake(BTreeMap::new()))
                .unwrap(),
            None
        );
        let err =
            FieldMapping::from_toml("[objects.people]\ncrm_object = \"tickets\"\n").unwrap_err();
        assert!(err.to_string().contains("tickets"), "{err}");
        assert!(matches!(
            FieldMapping::from_toml("objects = 3"),
            Err(FieldMappingError::Syntax(_))
        ));
    }

    #[test]
    fn inline_mapping_wins_over_the_file_and_an_unreadable_file_names_its_path() {
        let inline = "[objects.people]\ncrm_object = \"contacts\"\n";
        let missing = std::path::Path::new("/nonexistent/mapping.toml");
        let mapping = FieldMapping::load(Some(inline), Some(missing)).unwrap();
        assert_eq!(mapping.objects.len(), 1);
        assert_eq!(
            FieldMapping::load(None, None).unwrap(),
            FieldMapping::default()
        );
        let err = FieldMapping::load(None, Some(missing)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read FIELD_MAPPING_FILE /nonexistent/mapping.toml: "),
            "{err}"
        );
    }

    #[test]
    fn directions_parse_default_to_attio_to_hubspot_and_skip_hubspot_owned_properties() {
        let mapping = FieldMapping::from_toml(
            r#"
[objects.people]
crm_object = "contacts"
[objects.people.properties]
email = "email_addresses"
firstname = { attribute = "name.first_name", direction = "both" }
jobtitle = { attribute = "job_title", direction = "hubspot_to_attio" }
"#,
        )
        .unwrap();
        let props = &mapping.objects["people"].properties;
        assert_eq!(props["email"].direction, Direction::AttioToHubspot);
        assert_eq!(props["firstname"].direction, Direction::Both);
        assert_eq!(props["jobtitle"].direction, Direction::HubspotToAttio);
        let person = Fake(
            [
                ("email_addresses", "ada@example.com"),
                ("name.first_name", "Ada"),
                ("job_title", "CTO"),
            ]
            .into(),
        );
        let (_, sent) = mapping
            .map_record("people", "r1", &person)
            .unwrap()
            .unwrap();
        assert_eq!(sent.get("firstname").map(String::as_str), Some("Ada"));
        assert!(!sent.contains_key("jobtitle"), "HubSpot owns it: {sent:?}");
        assert_eq!(mapping.both_ways("people").len(), 1);
        assert_eq!(
            mapping.reverse_object(CrmObject::Contacts).map(|(s, _)| s),
            Some("people")
        );
        assert!(
            FieldMapping::default()
                .reverse_object(CrmObject::Contacts)
                .is_none()
        );
        let typo = FieldMapping::from_toml(
            "[objects.people]\ncrm_object = \"contacts\"\nproperties.x = { attribute = \"a\", direction = \"sideways\" }\n",
        );
        assert!(matches!(typo, Err(FieldMappingError::Syntax(m)) if m.contains("sideways")));
    }

    #[test]
    fn a_property_that_cannot_be_reversed_is_refused_with_its_name_and_why() {
        let cases = [
            (
                "hubspot_owner_id",
                r#"{ attribute = "owner", format = "owner", direction = "both" }"#,
                "owner",
            ),
            (
                "hs_additional_emails",
                r#"{ attribute = "email_addresses", values = "rest", direction = "hubspot_to_attio" }"#,
                "rest",
            ),
            (
                "city",
                r#"{ attribute = "primary_location.locality", direction = "both" }"#,
                "primary_location.locality",
            ),
            (
                "attio_record_id",
                r#"{ attribute = "record_id", direction = "both" }"#,
                "relay's own key",
            ),
        ];
        for (property, spec, why) in cases {
            let text = format!(
                "[objects.people]\ncrm_object = \"contacts\"\n[objects.people.properties]\n{property} = {spec}\n"
            );
            let err = FieldMapping::from_toml(&text).unwrap_err();
            let message = err.to_string();
            assert!(
                matches!(err, FieldMappingError::NotReversible { .. })
                    && message.contains(&format!("properties.{property}"))
                    && message.contains(why),
                "{message}"
            );
        }
        // The same specs one way only are fine, and so are the reversible sub-fields.
        FieldMapping::from_toml(
            r#"
[objects.people]
crm_object = "contacts"
[objects.people.properties]
hubspot_owner_id = { attribute = "owner", format = "owner" }
lastname = { attribute = "name.last_name", direction = "both" }
"#,
        )
        .unwrap();
    }
}
