//! Finding a note or task whose create lost its answer, and the properties `hubspot setup`
//! makes.
//!
//! HubSpot has no idempotency key for `POST /crm/v3/objects/{type}`, and unique-value
//! properties exist only for companies, deals, tickets, custom objects and (since 2023)
//! contacts (<https://developers.hubspot.com/changelog/unique-properties-for-contacts>) — not
//! for notes or tasks, so neither an upsert nor a 409 can stop a second note. What is left is
//! a marker: every note is created with `attio_note_id` and every task with `attio_task_id`
//! (plain string properties, [`marker_property`]), and a create whose outcome is unknown is
//! looked up with the CRM search API, `POST /crm/v3/objects/{notes,tasks}/search` with an `EQ`
//! filter on the marker. Notes and tasks are searchable objects ("Searchable CRM objects and
//! engagements", <https://developers.hubspot.com/docs/api/crm/search>), and custom properties
//! are created per object type with `POST /crm/v3/properties/{objectType}`
//! (<https://developers.hubspot.com/docs/api-reference/crm-properties-v3/core/post-crm-v3-properties-objectType>;
//! the properties overview lists notes and tasks among the objects with properties,
//! <https://developers.hubspot.com/docs/api/crm/properties>).
//!
//! Search is eventually consistent (a new object appears in results after a short delay) and
//! limited to a few requests per second per portal, so it is never a routine
//! search-then-create: the sync only asks about an attempt older than its settle delay, and
//! only when an attempt's outcome is unknown (`relay-sync`'s `engagements.rs`). A 429 from the
//! search limit (`SECONDLY`) is waited out like any other.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::hubspot::{OBJECTS, PROPERTIES};
use crate::{CrmError, CrmId, CrmObject, HubSpotSink, ID_PROPERTY};

/// The property that carries the Attio id on the CRM copy of a note or task; `None` for
/// records, which carry the unique [`ID_PROPERTY`] instead.
pub fn marker_property(object: CrmObject) -> Option<&'static str> {
    match object {
        CrmObject::Notes => Some("attio_note_id"),
        CrmObject::Tasks => Some("attio_task_id"),
        CrmObject::Contacts | CrmObject::Companies | CrmObject::Deals => None,
    }
}

/// A default property of the object, whose group the marker joins (so it shows beside it).
fn anchor_property(object: CrmObject) -> Option<&'static str> {
    match object {
        CrmObject::Notes => Some("hs_note_body"),
        CrmObject::Tasks => Some("hs_task_subject"),
        _ => None,
    }
}

/// More copies than this of one note would mean something else is writing the marker.
const SEARCH_LIMIT: usize = 20;

/// Ids in creation order: HubSpot object ids grow over time.
fn oldest_first(mut ids: Vec<CrmId>) -> Vec<CrmId> {
    ids.sort_by_key(|id| (id.0.parse::<u64>().unwrap_or(u64::MAX), id.0.clone()));
    ids
}

fn no_marker(object: CrmObject, operation: &str) -> CrmError {
    CrmError::Rejected {
        operation: operation.to_owned(),
        status: 400,
        category: None,
        message: format!(
            "{object} carry no marker property; records are upserted on {ID_PROPERTY}"
        ),
    }
}

impl HubSpotSink {
    /// Every `object` whose marker is `attio_id`, oldest first.
    pub(crate) async fn search_marker(
        &self,
        object: CrmObject,
        attio_id: &str,
    ) -> Result<Vec<CrmId>, CrmError> {
        let operation = format!("search {object} by marker");
        let marker = marker_property(object).ok_or_else(|| no_marker(object, &operation))?;
        let body = json!({
            "filterGroups": [{"filters": [{"propertyName": marker, "operator": "EQ", "value": attio_id}]}],
            "properties": [marker],
            "limit": SEARCH_LIMIT
        });
        let (_, answer) = self
            .call(
                &operation,
                Method::POST,
                &format!("{OBJECTS}/{object}/search"),
                Some(&body),
            )
            .await?;
        let results = answer["results"].as_array().into_iter().flatten();
        // The filter is exact; checking the echoed value keeps a loose stand-in honest.
        let ids = results
            .filter(|r| {
                r["properties"][marker]
                    .as_str()
                    .is_none_or(|v| v == attio_id)
            })
            .filter_map(|r| r["id"].as_str().map(|id| CrmId(id.to_owned())))
            .collect();
        Ok(oldest_first(ids))
    }

    /// Creates the marker property of notes or tasks unless it exists, in the group of the
    /// object's own body or subject property. Returns true when it was created. Plain
    /// (non-unique) text: HubSpot offers no unique values on notes or tasks.
    pub async fn ensure_marker_property(&self, object: CrmObject) -> Result<bool, CrmError> {
        let operation = "create marker property";
        let (Some(marker), Some(anchor)) = (marker_property(object), anchor_property(object))
        else {
            return Err(no_marker(object, operation));
        };
        if self.property_definition(object, marker).await?.is_some() {
            return Ok(false);
        }
        let group = self
            .property_definition(object, anchor)
            .await?
            .and_then(|d| d["groupName"].as_str().map(str::to_owned))
            .ok_or_else(|| CrmError::Rejected {
                operation: operation.into(),
                status: 404,
                category: None,
                message: format!("{object} have no {anchor} property to take a group from"),
            })?;
        let kind = &object.as_str()[..object.as_str().len() - 1];
        let body = json!({
            "name": marker,
            "label": format!("Attio {kind} ID"),
            "description": format!("The Attio {kind} this {kind} is synced from (set by attio-relay; finds a create whose answer was lost)."),
            "type": "string",
            "fieldType": "text",
            "groupName": group,
            "hasUniqueValue": false
        });
        self.call(
            operation,
            Method::POST,
            &format!("{PROPERTIES}/{object}"),
            Some(&body),
        )
        .await?;
        Ok(true)
    }
}

impl HubSpotSink {
    /// Creates the unique `attio_record_id` property on `object` unless it exists; upserts are
    /// keyed on it. Returns true when it was created. A one-time setup step.
    pub async fn ensure_id_property(&self, object: CrmObject) -> Result<bool, CrmError> {
        let path = format!("{PROPERTIES}/{object}/{ID_PROPERTY}");
        let (status, _) = self
            .call("read id property", Method::GET, &path, None)
            .await?;
        if status != StatusCode::NOT_FOUND {
            return Ok(false);
        }
        let group = match object {
            CrmObject::Contacts => "contactinformation",
            CrmObject::Companies => "companyinformation",
            CrmObject::Deals => "dealinformation",
            CrmObject::Notes | CrmObject::Tasks => {
                return Err(CrmError::Rejected {
                    operation: "create id property".into(),
                    status: 400,
                    category: None,
                    message: format!(
                        "{object} are not upserted by Attio id; they need no id property"
                    ),
                });
            }
        };
        let body = json!({
            "name": ID_PROPERTY,
            "label": "Attio record ID",
            "description": "The Attio record this object is synced from (set by attio-relay).",
            "type": "string",
            "fieldType": "text",
            "groupName": group,
            "hasUniqueValue": true
        });
        self.call(
            "create id property",
            Method::POST,
            &format!("{PROPERTIES}/{object}"),
            Some(&body),
        )
        .await?;
        Ok(true)
    }

    /// `GET /crm/v3/properties/{object}/{name}`: the property's definition as HubSpot
    /// returns it (`type`, `hasUniqueValue`, `modificationMetadata`, …), or `None` when the
    /// object has no such (unarchived) property
    /// (<https://developers.hubspot.com/docs/api-reference/crm-properties-v3/core/get-crm-v3-properties-objectType-propertyName>).
    /// `hubspot setup` reads it to check that an existing `attio_record_id` really is unique:
    /// upserts keyed on a property without `hasUniqueValue` are refused.
    pub async fn property_definition(
        &self,
        object: CrmObject,
        name: &str,
    ) -> Result<Option<Value>, CrmError> {
        let path = format!("{PROPERTIES}/{object}/{name}");
        let (status, body) = self.call("read property", Method::GET, &path, None).await?;
        Ok((status != StatusCode::NOT_FOUND).then_some(body))
    }
}
