//! The fake HubSpot's CRM search for notes and tasks by the relay's marker property
//! (`attio_note_id`, `attio_task_id`): `POST /crm/v3/objects/{notes,tasks}/search` with one
//! `EQ` filter, answered `{"total", "results": [{"id", "properties"}]}` as the search guide
//! shows (<https://developers.hubspot.com/docs/api/crm/search>); archived objects are not in
//! the results. The search limit (about 5 requests per second per portal) is kept: a sixth
//! search within a second answers 429 `SECONDLY`. Unlike HubSpot's, this index has no lag: the
//! sync's settle delay is what covers HubSpot's.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::ResponseTemplate;

use super::{HubSpotState, Outcome};

/// HubSpot's documented search rate: a few requests per second per portal.
pub const SEARCHES_PER_SECOND: usize = 5;

/// The marker each searchable object carries.
pub(super) fn marker(object: &str) -> Option<&'static str> {
    match object {
        "notes" => Some("attio_note_id"),
        "tasks" => Some("attio_task_id"),
        _ => None,
    }
}

impl HubSpotState {
    /// True when one more search now goes over the per-second limit (and then it is not
    /// counted).
    pub(super) fn search_limited(&mut self) -> bool {
        let now = Instant::now();
        self.searches
            .retain(|t| now.duration_since(*t) < Duration::from_secs(1));
        if self.searches.len() >= SEARCHES_PER_SECOND {
            return true;
        }
        self.searches.push(now);
        false
    }

    pub(super) fn search_engagements(&mut self, object: &str, body: &Value) -> Outcome {
        let Some(marker) = marker(object) else {
            return Outcome::Reject(format!("search of {object}"));
        };
        let filter = &body["filterGroups"][0]["filters"][0];
        let (Some(property), Some("EQ"), Some(value)) = (
            filter["propertyName"].as_str(),
            filter["operator"].as_str(),
            filter["value"].as_str(),
        ) else {
            return Outcome::Reject(format!("{object} search without one EQ filter: {body}"));
        };
        if property != marker {
            return Outcome::Reject(format!("{object} searched by {property}, not {marker}"));
        }
        self.marker_searches += 1;
        let results: Vec<Value> = self
            .engagements
            .values()
            .filter(|o| o.object == object && !o.archived)
            .filter(|o| o.properties.get(marker).and_then(Value::as_str) == Some(value))
            .map(|o| json!({"id": o.id, "properties": {marker: value, "hs_object_id": o.id}}))
            .collect();
        Outcome::Answer(
            ResponseTemplate::new(200)
                .set_body_json(json!({"total": results.len(), "results": results})),
        )
    }
}
