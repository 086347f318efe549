//! A deal's stage both ways (`[objects.deals.stage]` with `direction`): one field made of two
//! HubSpot properties, `pipeline` and `dealstage`, mapped through the stage map instead of a
//! property spec.
//!
//! Both sides are compared in HubSpot's form, `"{pipeline}/{stage}"`, under the ledger
//! property `dealstage`: Attio's side is the stage its status maps to (as the records
//! consumer would send it), HubSpot's the two properties it holds, timed by the newer of
//! their history entries. HubSpot's stage is written back as the status the map's inverse
//! names — unique, or the mapping is refused at load (`FieldMappingError::AmbiguousStage`).
//!
//! Attio's status write format (<https://docs.attio.com/docs/attribute-types/attribute-types-status>,
//! "Writing values"): "pass the title of the status as a string. You can also pass an object
//! with a status property which references either the status_id or the title of the
//! status"; an id or title Attio cannot find is an error, never a new status. A map key is a
//! status id or a title, so the key is written as `[{"status": key}]`, which takes either.

use relay_attio::{AttioValues, ValueMap};
use relay_crm::{CrmRecordState, Properties};
use serde_json::json;

use super::SideValue;
use super::values::attio_changed_at;
use crate::field_mapping::{PIPELINE_PROPERTY, STAGE_PROPERTY, StageMapping};
use crate::{PropertySpec, RecordValues};

/// The spec the stage is fingerprinted and timed with: its attribute, as text.
pub(crate) fn spec(stage: &StageMapping) -> PropertySpec {
    PropertySpec::path(&stage.attribute)
}

fn joined(pipeline: &str, stage: &str) -> String {
    format!("{pipeline}/{stage}")
}

/// Attio's side: the HubSpot stage the record's status maps to (its `default_stage` when it
/// has none), timed by the status's `active_from`. A status the map does not name has no
/// HubSpot form: `None`.
pub(crate) fn attio_side(stage: &StageMapping, values: &ValueMap) -> SideValue {
    let spec = spec(stage);
    let value = stage
        .target(&RecordValues(values))
        .ok()
        .flatten()
        .map(|(pipeline, id)| joined(pipeline, id));
    SideValue::new(&spec, value, attio_changed_at(values, &spec))
}

/// HubSpot's side as a batch read gave it, and whether HubSpot said when it changed (see
/// `two_way::hubspot_side`): a move to another pipeline changes both properties, so the
/// newer history entry of the two is the change's time.
pub(crate) fn hubspot_side(stage: &StageMapping, state: &CrmRecordState) -> (SideValue, bool) {
    let get = |p: &str| state.properties.get(p).cloned().flatten();
    let value = get(STAGE_PROPERTY).map(|id| {
        let pipeline = get(PIPELINE_PROPERTY).unwrap_or_else(|| stage.pipeline.clone());
        joined(&pipeline, &id)
    });
    let at = [STAGE_PROPERTY, PIPELINE_PROPERTY]
        .iter()
        .filter_map(|p| state.changes.get(*p))
        .map(|c| c.at_ms)
        .max();
    let side = SideValue::new(&spec(stage), value, at.unwrap_or(0));
    let timed = at.is_some() || side.value.is_none();
    (side, timed)
}

/// Adds to `out` the Attio write for HubSpot's stage (`"{pipeline}/{stage}"`). `Err` says why
/// it cannot be written: HubSpot's deal has no stage, or the map names no status for it.
pub(crate) fn write(
    stage: &StageMapping,
    value: Option<&str>,
    out: &mut AttioValues,
) -> Result<(), String> {
    let Some(value) = value else {
        return Err("the HubSpot deal has no dealstage to write back".into());
    };
    let (pipeline, id) = value
        .split_once('/')
        .unwrap_or((stage.pipeline.as_str(), value));
    let key = stage.inverse(pipeline, id).ok_or_else(|| {
        format!(
            "HubSpot stage {id:?} of pipeline {pipeline:?} is not in the field mapping's stage.map; add the Attio status it stands for"
        )
    })?;
    out.insert(stage.attribute.clone(), json!([{ "status": key }]));
    Ok(())
}

/// Adds to `out` Attio's stage in HubSpot's two properties (a conflict Attio won).
pub(crate) fn send(stage: &StageMapping, value: Option<&str>, out: &mut Properties) {
    let Some(value) = value else {
        return;
    };
    let (pipeline, id) = value
        .split_once('/')
        .unwrap_or((stage.pipeline.as_str(), value));
    out.insert(PIPELINE_PROPERTY.to_owned(), pipeline.to_owned());
    out.insert(STAGE_PROPERTY.to_owned(), id.to_owned());
}
