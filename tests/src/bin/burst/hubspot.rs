//! The HubSpot stand-in: contacts keyed by the unique `attio_record_id`, written by batch
//! upsert (the relay) or by a PATCH per contact (the reference design), under the portal's
//! limits, remembering when each record's versions became visible.
//!
//! Served: `POST /crm/v3/objects/contacts/batch/upsert` (at most 100 inputs, each with
//! `idProperty` `attio_record_id` and an `objectWriteTraceId`; 200, or 207 with per-input
//! errors, <https://developers.hubspot.com/docs/api-reference/error-handling>),
//! `PATCH /crm/v3/objects/contacts/{id}` by HubSpot id or, with `?idProperty=attio_record_id`,
//! by that unique value ("identified by ID or email/unique property value",
//! <https://developers.hubspot.com/docs/api-reference/2026-03/crm/objects/contacts/update-contact>),
//! `GET /crm/v3/owners/` (no owners) and `POST /crm/v3/objects/{type}/search` (no results).
//! Anything else: 400 and counted as unexpected.
//!
//! Limits (<https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details>): 190
//! requests per rolling 10 s for the portal (a Professional or Enterprise portal's limit),
//! refused with 429 `policyName` `TEN_SECONDLY_ROLLING`; the search API about 5 per second,
//! refused with `SECONDLY`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::attio::AttioStandin;
use crate::limits::Rolling;

pub const REQUESTS_PER_10S: usize = 190;
pub const SEARCHES_PER_SECOND: usize = 5;
pub const MAX_BATCH_INPUTS: usize = 100;

/// One contact, and when each Attio version of its record first became visible.
#[derive(Debug, Clone)]
pub struct Contact {
    pub id: String,
    pub properties: Map<String, Value>,
    /// The version its `jobtitle` names now, and since when.
    pub version: u64,
    pub current_since: Instant,
    /// version → when it first became visible.
    pub first_seen: HashMap<u64, Instant>,
}

#[derive(Debug, Default)]
pub struct HubSpotCounts {
    pub batch_upserts: AtomicU64,
    pub upserted_inputs: AtomicU64,
    pub patches: AtomicU64,
    pub other: AtomicU64,
    pub rate_limited: AtomicU64,
    pub unexpected: AtomicU64,
}

impl HubSpotCounts {
    pub fn served(&self) -> u64 {
        self.batch_upserts.load(Ordering::Relaxed)
            + self.patches.load(Ordering::Relaxed)
            + self.other.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct Limits {
    portal: Rolling,
    search: Rolling,
}

#[derive(Debug)]
pub struct HubSpotStandin {
    authorization: String,
    started: Instant,
    limits: Mutex<Limits>,
    /// Contacts by `attio_record_id`.
    pub contacts: Mutex<HashMap<String, Contact>>,
    pub counts: HubSpotCounts,
    pub unexpected: Mutex<Vec<String>>,
}

impl HubSpotStandin {
    /// A portal that already holds a contact for each record at version 0 (the people were
    /// synced before the import or bulk edit that the run replays).
    pub fn new(token: &str, record_ids: &[String]) -> Self {
        let now = Instant::now();
        let contacts = record_ids
            .iter()
            .enumerate()
            .map(|(i, record)| {
                let mut properties = Map::new();
                properties.insert("attio_record_id".into(), json!(record));
                properties.insert("email".into(), json!(AttioStandin::email(record)));
                properties.insert("jobtitle".into(), json!(AttioStandin::job_title(record, 0)));
                let contact = Contact {
                    id: (5_000_001 + i).to_string(),
                    properties,
                    version: 0,
                    current_since: now,
                    first_seen: HashMap::from([(0, now)]),
                };
                (record.clone(), contact)
            })
            .collect();
        Self {
            authorization: format!("Bearer {token}"),
            started: now,
            limits: Mutex::new(Limits {
                portal: Rolling::new(REQUESTS_PER_10S, Duration::from_secs(10)),
                search: Rolling::new(SEARCHES_PER_SECOND, Duration::from_secs(1)),
            }),
            contacts: Mutex::new(contacts),
            counts: HubSpotCounts::default(),
            unexpected: Mutex::default(),
        }
    }

    fn unexpected(&self, what: String) -> Response {
        self.counts.unexpected.fetch_add(1, Ordering::Relaxed);
        let mut seen = self.unexpected.lock().expect("hubspot unexpected");
        if seen.len() < 10 {
            seen.push(what.clone());
        }
        let body = json!({"status": "error", "category": "VALIDATION_ERROR", "message": what});
        (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
    }

    /// Writes `properties` to the contact of `attio_record_id`; its HubSpot id, or `None`
    /// when the portal has no such contact.
    fn write(&self, attio_record_id: &str, properties: &Map<String, Value>) -> Option<String> {
        let mut contacts = self.contacts.lock().expect("hubspot contacts");
        let contact = contacts.get_mut(attio_record_id)?;
        contact.properties.extend(properties.clone());
        let now = Instant::now();
        let version = contact
            .properties
            .get("jobtitle")
            .and_then(Value::as_str)
            .and_then(AttioStandin::version_of)
            .unwrap_or(contact.version);
        if version != contact.version {
            contact.version = version;
            contact.current_since = now;
        }
        contact.first_seen.entry(version).or_insert(now);
        Some(contact.id.clone())
    }

    fn record_of_hubspot_id(&self, id: &str) -> Option<String> {
        let contacts = self.contacts.lock().expect("hubspot contacts");
        contacts
            .iter()
            .find(|(_, c)| c.id == id)
            .map(|(record, _)| record.clone())
    }

    fn batch_upsert(&self, body: &Value) -> Result<Value, String> {
        let inputs = body["inputs"].as_array().ok_or("upsert without inputs")?;
        if inputs.is_empty() || inputs.len() > MAX_BATCH_INPUTS {
            return Err(format!(
                "{} inputs: a batch takes 1 to {MAX_BATCH_INPUTS}",
                inputs.len()
            ));
        }
        let (mut results, mut errors) = (Vec::new(), Vec::new());
        for input in inputs {
            let (Some(record), Some(properties), Some(trace)) = (
                input["id"].as_str(),
                input["properties"].as_object(),
                input["objectWriteTraceId"].as_str(),
            ) else {
                return Err("upsert input without id, properties or objectWriteTraceId".into());
            };
            if input["idProperty"] != "attio_record_id" {
                return Err(format!("upsert not keyed on attio_record_id: {input}"));
            }
            match self.write(record, properties) {
                Some(id) => results.push(json!({"id": id, "objectWriteTraceId": trace,
                                                "properties": properties})),
                // The run's records all exist: a new one would be a wrong id.
                None => errors.push(json!({"status": "error", "category": "VALIDATION_ERROR",
                    "message": format!("no contact for attio_record_id {record} in this run"),
                    "context": {"objectWriteTraceId": [trace]}})),
            }
        }
        self.counts
            .upserted_inputs
            .fetch_add(results.len() as u64, Ordering::Relaxed);
        Ok(json!({"status": "COMPLETE", "results": results,
                  "numErrors": errors.len(), "errors": errors}))
    }
}

fn not_found() -> Response {
    let body = json!({"status": "error", "category": "OBJECT_NOT_FOUND",
                      "message": "Object not found"});
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

fn rate_limited(policy: &str) -> Response {
    let body = json!({"status": "error", "errorType": "RATE_LIMIT", "policyName": policy,
        "message": format!("You have reached your {} limit.", policy.to_ascii_lowercase())});
    (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
}

pub async fn handle(
    State(hubspot): State<Arc<HubSpotStandin>>,
    method: Method,
    uri: Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let seen = format!("{method} {}", uri.path());
    let authorised = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(hubspot.authorization.as_str());
    if !authorised {
        return hubspot.unexpected(format!("{seen} without the HubSpot token"));
    }
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let is_search = method == Method::POST && segments.last() == Some(&"search");
    {
        let now = hubspot.started.elapsed();
        let mut limits = hubspot.limits.lock().expect("hubspot limits");
        if limits.portal.take(now).is_err() {
            hubspot.counts.rate_limited.fetch_add(1, Ordering::Relaxed);
            return rate_limited("TEN_SECONDLY_ROLLING");
        }
        if is_search && limits.search.take(now).is_err() {
            hubspot.counts.rate_limited.fetch_add(1, Ordering::Relaxed);
            return rate_limited("SECONDLY");
        }
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let by_unique = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "idProperty=attio_record_id"));
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["crm", "v3", "objects", "contacts", "batch", "upsert"]) => {
            match hubspot.batch_upsert(&parsed) {
                Ok(answer) => {
                    hubspot.counts.batch_upserts.fetch_add(1, Ordering::Relaxed);
                    let status = if answer["numErrors"] == 0 {
                        StatusCode::OK
                    } else {
                        StatusCode::MULTI_STATUS
                    };
                    (status, axum::Json(answer)).into_response()
                }
                Err(why) => hubspot.unexpected(format!("{seen}: {why}")),
            }
        }
        ("PATCH", ["crm", "v3", "objects", "contacts", id]) => {
            let Some(properties) = parsed["properties"].as_object() else {
                return hubspot.unexpected(format!("{seen} without properties"));
            };
            let record = if by_unique {
                Some((*id).to_owned())
            } else {
                hubspot.record_of_hubspot_id(id)
            };
            hubspot.counts.patches.fetch_add(1, Ordering::Relaxed);
            match record.and_then(|r| hubspot.write(&r, properties)) {
                Some(id) => axum::Json(json!({"id": id, "properties": properties})).into_response(),
                None => not_found(),
            }
        }
        ("GET", ["crm", "v3", "owners"]) => {
            hubspot.counts.other.fetch_add(1, Ordering::Relaxed);
            axum::Json(json!({"results": []})).into_response()
        }
        ("POST", ["crm", "v3", "objects", _, "search"]) => {
            hubspot.counts.other.fetch_add(1, Ordering::Relaxed);
            axum::Json(json!({"total": 0, "results": []})).into_response()
        }
        _ => hubspot.unexpected(seen),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upsert_moves_a_contact_to_the_version_it_carries_and_remembers_when() {
        let hubspot = HubSpotStandin::new("t", &["r1".to_owned(), "r2".to_owned()]);
        let input = |record: &str, version: u64| {
            json!({"id": record, "idProperty": "attio_record_id", "objectWriteTraceId": record,
                   "properties": {"jobtitle": AttioStandin::job_title(record, version)}})
        };
        let answer = hubspot
            .batch_upsert(&json!({"inputs": [input("r1", 3), input("nobody", 1)]}))
            .unwrap();
        assert_eq!(answer["numErrors"], 1);
        assert_eq!(answer["results"][0]["objectWriteTraceId"], "r1");
        let contacts = hubspot.contacts.lock().unwrap();
        assert_eq!(contacts["r1"].version, 3);
        assert!(contacts["r1"].first_seen.contains_key(&3));
        assert_eq!(contacts["r2"].version, 0);
    }

    #[test]
    fn a_batch_over_100_inputs_is_refused() {
        let hubspot = HubSpotStandin::new("t", &[]);
        let inputs: Vec<Value> = (0..101).map(|i| json!({"id": i.to_string()})).collect();
        assert!(hubspot.batch_upsert(&json!({ "inputs": inputs })).is_err());
    }
}
