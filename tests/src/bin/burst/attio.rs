//! The Attio stand-in: people records whose values change with every update the run makes,
//! served as the API documents them, under Attio's limits.
//!
//! Each record has a version, bumped by [`AttioStandin::update`] just before the run sends
//! that update's `record.updated` delivery (Attio changes the record, then tells the webhook).
//! The version shows in `job_title` (`title-<record>-v<version>`), so the HubSpot stand-in
//! can tell which update a write carried, and the run can check final values.
//!
//! Served: `GET /v2/objects/{people|object id}` (the schema lookup),
//! `GET /v2/objects/{object}/records/{id}`, `POST /v2/objects/{object}/records/query` with a
//! `record_id` `$in` filter (the batched read: "`$in` … records where record_id is one of
//! many values", <https://docs.attio.com/rest-api/guides/filtering-and-sorting>) or none
//! (pages by `limit`/`offset`, up to 500), and `GET /v2/objects/{object}/attributes`.
//! Anything else is answered 400 and counted as unexpected, so a run that calls something the
//! stand-in does not know fails loudly instead of passing by accident.
//!
//! Limits (<https://docs.attio.com/rest-api/guides/rate-limiting>): 100 reads and 25 writes
//! per clock second; beyond, 429 `rate_limit_exceeded` with `Retry-After` as the HTTP date of
//! the next second. A query is a read: it changes nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::limits::ClockSecond;

pub const READS_PER_SECOND: u32 = 100;
pub const WRITES_PER_SECOND: u32 = 25;
/// Attio's largest page for a records query.
pub const MAX_QUERY_LIMIT: usize = 500;

/// The people object of the checked-in fixtures: events name it by id.
pub const PEOPLE_OBJECT_ID: &str = "f436cad2-7090-4b86-8ae2-27260febbefe";
pub const WORKSPACE_ID: &str = "a9f6fd20-80d5-4bd1-b8fe-60a7c5a9178a";
/// The `job_title` attribute, named by every `record.updated` the run sends.
pub const JOB_TITLE_ATTRIBUTE_ID: &str = "ca016473-5a16-4c61-9560-4a3ba91d6a9c";

const PERSON: &str = include_str!("../../../fixtures/attio/person.json");
const PEOPLE_OBJECT: &str = include_str!("../../../fixtures/attio/people-object.json");

/// What the stand-in served, for requests-per-event and the 429 share.
#[derive(Debug, Default)]
pub struct AttioCounts {
    pub record_gets: AtomicU64,
    pub record_queries: AtomicU64,
    /// Records answered by queries, summed: how well reads were batched.
    pub records_queried: AtomicU64,
    pub schema_reads: AtomicU64,
    pub writes: AtomicU64,
    pub rate_limited: AtomicU64,
    pub unexpected: AtomicU64,
}

impl AttioCounts {
    /// Requests served (not refused by the limit).
    pub fn served(&self) -> u64 {
        self.record_gets.load(Ordering::Relaxed)
            + self.record_queries.load(Ordering::Relaxed)
            + self.schema_reads.load(Ordering::Relaxed)
            + self.writes.load(Ordering::Relaxed)
    }
}

/// The stand-in's state; shared with the axum handler.
#[derive(Debug)]
pub struct AttioStandin {
    authorization: String,
    /// record id → version (0: as created, before the run).
    versions: Mutex<HashMap<String, u64>>,
    /// Record ids in creation order, for unfiltered pages.
    order: Vec<String>,
    reads: Mutex<ClockSecond>,
    writes: Mutex<ClockSecond>,
    person: Value,
    people_object: Value,
    pub counts: AttioCounts,
    /// The first few unexpected requests, to say what they were.
    pub unexpected: Mutex<Vec<String>>,
}

impl AttioStandin {
    pub fn new(token: &str, record_ids: &[String]) -> Self {
        Self {
            authorization: format!("Bearer {token}"),
            versions: Mutex::new(record_ids.iter().map(|id| (id.clone(), 0)).collect()),
            order: record_ids.to_vec(),
            reads: Mutex::new(ClockSecond::new(READS_PER_SECOND)),
            writes: Mutex::new(ClockSecond::new(WRITES_PER_SECOND)),
            person: serde_json::from_str(PERSON).expect("person fixture is JSON"),
            people_object: serde_json::from_str(PEOPLE_OBJECT).expect("object fixture is JSON"),
            counts: AttioCounts::default(),
            unexpected: Mutex::default(),
        }
    }

    /// Changes a record (as a user's edit or an import would); returns its new version.
    pub fn update(&self, record_id: &str) -> u64 {
        let mut versions = self.versions.lock().expect("attio versions");
        let version = versions.entry(record_id.to_owned()).or_default();
        *version += 1;
        *version
    }

    /// The job title a record has at `version`: how HubSpot's copy tells versions apart.
    pub fn job_title(record_id: &str, version: u64) -> String {
        format!("title-{record_id}-v{version}")
    }

    /// The version a job title written by [`Self::job_title`] names.
    pub fn version_of(job_title: &str) -> Option<u64> {
        job_title.rsplit_once("-v")?.1.parse().ok()
    }

    pub fn email(record_id: &str) -> String {
        format!("{record_id}@burst.example")
    }

    /// The record as `GET /v2/objects/people/records/{id}` answers it, at its current version.
    fn record(&self, record_id: &str, version: u64) -> Value {
        let mut person = self.person["data"].clone();
        person["id"]["record_id"] = json!(record_id);
        let title = Self::job_title(record_id, version);
        if let Some(email) = person["values"]["email_addresses"][0].as_object_mut() {
            email.insert("email_address".into(), json!(Self::email(record_id)));
            email.insert(
                "original_email_address".into(),
                json!(Self::email(record_id)),
            );
            email.insert("email_local_specifier".into(), json!(record_id));
            email.insert("email_domain".into(), json!("burst.example"));
            email.insert("email_root_domain".into(), json!("burst.example"));
        }
        // One current title: the history of the fixture would not change with the version.
        if let Some(titles) = person["values"]["job_title"].as_array_mut() {
            titles.truncate(1);
            if let Some(current) = titles[0].as_object_mut() {
                current.insert("value".into(), json!(title));
            }
        }
        person
    }

    fn current(&self, record_id: &str) -> Option<u64> {
        self.versions
            .lock()
            .expect("attio versions")
            .get(record_id)
            .copied()
    }

    fn is_people(&self, object: &str) -> bool {
        object == "people" || object == PEOPLE_OBJECT_ID
    }

    fn unexpected(&self, what: String) -> Response {
        self.counts.unexpected.fetch_add(1, Ordering::Relaxed);
        let mut seen = self.unexpected.lock().expect("attio unexpected");
        if seen.len() < 10 {
            seen.push(what.clone());
        }
        error(StatusCode::BAD_REQUEST, "unexpected_request", &what)
    }

    /// `POST /v2/objects/{object}/records/query`: `record_id` `$in` (or `$eq`, or a bare id),
    /// or every record, paged.
    fn query(&self, body: &Value) -> Result<Value, String> {
        let limit = body["limit"].as_u64().unwrap_or(MAX_QUERY_LIMIT as u64);
        let limit = usize::try_from(limit).unwrap_or(MAX_QUERY_LIMIT);
        if limit > MAX_QUERY_LIMIT {
            return Err(format!("limit {limit} is over {MAX_QUERY_LIMIT}"));
        }
        let offset = usize::try_from(body["offset"].as_u64().unwrap_or(0)).unwrap_or(0);
        let wanted: Vec<String> = match &body["filter"] {
            Value::Null => self.order.clone(),
            filter => match &filter["record_id"] {
                Value::String(id) => vec![id.clone()],
                Value::Object(ops) => match (ops.get("$in"), ops.get("$eq")) {
                    (Some(Value::Array(ids)), _) => ids
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                    (_, Some(Value::String(id))) => vec![id.clone()],
                    _ => return Err(format!("filter the stand-in does not read: {filter}")),
                },
                _ => return Err(format!("filter the stand-in does not read: {filter}")),
            },
        };
        let versions = self.versions.lock().expect("attio versions").clone();
        let data: Vec<Value> = wanted
            .iter()
            .filter_map(|id| versions.get(id).map(|v| self.record(id, *v)))
            .skip(offset)
            .take(limit)
            .collect();
        self.counts
            .records_queried
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(json!({ "data": data }))
    }

    fn attributes(&self) -> Value {
        let attribute = |slug: &str, kind: &str| {
            json!({"id": {"workspace_id": WORKSPACE_ID, "object_id": PEOPLE_OBJECT_ID,
                          "attribute_id": uuid::Uuid::new_v4().to_string()},
                   "title": slug, "api_slug": slug, "type": kind, "is_multiselect": false,
                   "is_archived": false, "is_required": false, "is_unique": false})
        };
        json!({"data": [
            attribute("name", "personal-name"),
            attribute("email_addresses", "email-address"),
            attribute("job_title", "text"),
            attribute("phone_numbers", "phone-number"),
        ]})
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"status_code": status.as_u16(), "type": "invalid_request_error",
                      "code": code, "message": message});
    (status, axum::Json(body)).into_response()
}

/// Every request: token, limit, then the route.
pub async fn handle(
    State(attio): State<Arc<AttioStandin>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = format!("{method} {}", uri.path());
    let authorised = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(attio.authorization.as_str());
    if !authorised {
        return attio.unexpected(format!("{seen} without the Attio token"));
    }
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let is_read =
        method == Method::GET || (method == Method::POST && segments.last() == Some(&"query"));
    let limiter = if is_read { &attio.reads } else { &attio.writes };
    if let Err(reset) = limiter
        .lock()
        .expect("attio limiter")
        .take(SystemTime::now())
    {
        attio.counts.rate_limited.fetch_add(1, Ordering::Relaxed);
        let body = json!({"status_code": 429, "type": "rate_limit_error",
            "code": "rate_limit_exceeded", "message": "Rate limit exceeded, please try again later"});
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", httpdate::fmt_http_date(reset))],
            axum::Json(body),
        )
            .into_response();
    }
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["v2", "objects", object]) if attio.is_people(object) => {
            attio.counts.schema_reads.fetch_add(1, Ordering::Relaxed);
            axum::Json(attio.people_object.clone()).into_response()
        }
        ("GET", ["v2", "objects", object, "attributes"]) if attio.is_people(object) => {
            attio.counts.schema_reads.fetch_add(1, Ordering::Relaxed);
            axum::Json(attio.attributes()).into_response()
        }
        ("GET", ["v2", "objects", object, "records", id]) if attio.is_people(object) => {
            attio.counts.record_gets.fetch_add(1, Ordering::Relaxed);
            match attio.current(id) {
                Some(version) => {
                    axum::Json(json!({"data": attio.record(id, version)})).into_response()
                }
                None => error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    &format!("Record with ID \"{id}\" not found."),
                ),
            }
        }
        ("POST", ["v2", "objects", object, "records", "query"]) if attio.is_people(object) => {
            let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            match attio.query(&parsed) {
                Ok(answer) => {
                    attio.counts.record_queries.fetch_add(1, Ordering::Relaxed);
                    axum::Json(answer).into_response()
                }
                Err(why) => attio.unexpected(format!("{seen}: {why}")),
            }
        }
        _ => attio.unexpected(seen),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standin() -> AttioStandin {
        AttioStandin::new("t", &["r1".to_owned(), "r2".to_owned(), "r3".to_owned()])
    }

    #[test]
    fn a_record_reads_at_its_current_version() {
        let attio = standin();
        assert_eq!(attio.update("r2"), 1);
        assert_eq!(attio.update("r2"), 2);
        let record = attio.record("r2", attio.current("r2").unwrap());
        let title = record["values"]["job_title"][0]["value"].as_str().unwrap();
        assert_eq!(AttioStandin::version_of(title), Some(2));
        assert_eq!(
            record["values"]["email_addresses"][0]["email_address"],
            "r2@burst.example"
        );
    }

    #[test]
    fn a_query_answers_the_records_named_by_in_and_pages_the_rest() {
        let attio = standin();
        attio.update("r3");
        let answer = attio
            .query(&json!({"filter": {"record_id": {"$in": ["r3", "r1", "nope"]}}, "limit": 500}))
            .unwrap();
        let ids: Vec<&str> = answer["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"]["record_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["r3", "r1"]);
        let page = attio.query(&json!({"limit": 2, "offset": 1})).unwrap();
        assert_eq!(page["data"].as_array().unwrap().len(), 2);
        assert!(attio.query(&json!({"limit": 501})).is_err());
        assert!(attio.query(&json!({"filter": {"name": "x"}})).is_err());
    }
}
