//! [`CrmSource`] on HubSpot: what the way back (HubSpot → Attio) and initial matching read.
//!
//! * **Batch read with history** — `POST /crm/v3/objects/{object}/batch/read` with
//!   `{"properties": [...], "propertiesWithHistory": [...], "inputs": [{"id": ...}]}`, at most
//!   100 inputs per call
//!   (<https://developers.hubspot.com/docs/api-reference/latest/crm/objects/objects/batch/get-objects>).
//!   Each result carries `properties` (an asked property without a value is `null` or absent)
//!   and `propertiesWithHistory: {name: [{value, timestamp, sourceType, sourceId, sourceLabel,
//!   updatedByUserId}]}`. Why the history: the sync needs *when* and *by whom* each value was
//!   set — the time decides a conflict (later change wins) and `sourceType`/`sourceId` tell the
//!   relay's own writes (its app id) from a user's. The newest entry (largest `timestamp`, read
//!   as ISO-8601 or epoch milliseconds) is kept, whatever order HubSpot lists them in.
//! * **Ids HubSpot does not hold** (archived, merged away, never existed) come back as a 207
//!   multi-status whose `errors` name them (`category` `OBJECT_NOT_FOUND`, `context.ids`); they
//!   are simply absent from the answer, as the port promises
//!   (<https://developers.hubspot.com/docs/api-reference/error-handling>, "Multi-status
//!   errors"). A 404 for the whole call (every id missing) is the same. Any other per-input
//!   error fails the read, classified by its category.
//! * **Listing** — `GET /crm/v3/objects/{object}?limit=100&properties=…&after=…`: one page, and
//!   `paging.next.after` for the next (absent on the last page;
//!   <https://developers.hubspot.com/docs/api-reference/latest/crm/objects/objects/get-objects>).
//!
//! Both go through the sink's one request path: the same rate budget or limiter, the token
//! re-read once on a 401, 429/5xx retried within the wait budget, other 4xx classified
//! ([`crate::classify`]). Reads are safe to repeat.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{BATCH_LIMIT, HubSpotSink, OBJECTS};
use crate::{CrmError, CrmId, CrmObject, CrmPage, CrmRecordState, CrmSource, PropertyChange};

/// Objects per listing page (HubSpot's maximum for the list endpoint).
const PAGE_LIMIT: usize = 100;
/// The category of a batch read's error for ids HubSpot does not hold.
const NOT_FOUND_CATEGORY: &str = "OBJECT_NOT_FOUND";

impl CrmSource for HubSpotSink {
    async fn read_batch(
        &self,
        object: CrmObject,
        ids: &[CrmId],
        properties: &[&str],
    ) -> Result<Vec<CrmRecordState>, CrmError> {
        self.read_all(object, ids, properties, false).await
    }

    /// The same batch read with `?archived=true` (only archived objects are answered), and
    /// no history: the deleted object's `attio_record_id` is all that is asked of it.
    async fn read_archived(
        &self,
        object: CrmObject,
        ids: &[CrmId],
        properties: &[&str],
    ) -> Result<Vec<CrmRecordState>, CrmError> {
        self.read_all(object, ids, properties, true).await
    }

    async fn list_page(
        &self,
        object: CrmObject,
        properties: &[&str],
        after: Option<&str>,
    ) -> Result<CrmPage, CrmError> {
        let mut path = format!(
            "{OBJECTS}/{object}?limit={PAGE_LIMIT}&archived=false&properties={}",
            encode(&properties.join(","))
        );
        if let Some(after) = after {
            path.push_str(&format!("&after={}", encode(after)));
        }
        let operation = format!("list {object}");
        let (_, body) = self.call_found(operation, Method::GET, &path, None).await?;
        let records = body["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|result| state(result, properties))
            .collect();
        let after = body["paging"]["next"]["after"]
            .as_str()
            .filter(|a| !a.is_empty())
            .map(str::to_owned);
        Ok(CrmPage { records, after })
    }
}

impl HubSpotSink {
    /// The distinct `ids`, [`BATCH_LIMIT`] per batch read; `archived` asks for archived objects
    /// only (`read_archived`), otherwise live ones with their history (`read_batch`).
    async fn read_all(
        &self,
        object: CrmObject,
        ids: &[CrmId],
        properties: &[&str],
        archived: bool,
    ) -> Result<Vec<CrmRecordState>, CrmError> {
        let mut seen = BTreeSet::new();
        let ids: Vec<&CrmId> = ids.iter().filter(|id| seen.insert(*id)).collect();
        let mut states = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_LIMIT) {
            states.extend(self.read_chunk(object, chunk, properties, archived).await?);
        }
        Ok(states)
    }

    /// One batch read of at most [`BATCH_LIMIT`] ids.
    async fn read_chunk(
        &self,
        object: CrmObject,
        ids: &[&CrmId],
        properties: &[&str],
        archived: bool,
    ) -> Result<Vec<CrmRecordState>, CrmError> {
        let inputs: Vec<Value> = ids.iter().map(|id| json!({"id": id.0})).collect();
        let (body, path) = if archived {
            let body = json!({"properties": properties, "inputs": inputs});
            (body, format!("{OBJECTS}/{object}/batch/read?archived=true"))
        } else {
            let body = json!({
                "properties": properties,
                "propertiesWithHistory": properties,
                "inputs": inputs,
            });
            (body, format!("{OBJECTS}/{object}/batch/read"))
        };
        let operation = format!("{object} batch read");
        let (status, body) = self
            .call(&operation, Method::POST, &path, Some(&body))
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        for error in body["errors"].as_array().into_iter().flatten() {
            let category = error["category"].as_str();
            if category == Some(NOT_FOUND_CATEGORY) {
                continue;
            }
            let (category, message, _, _) = super::refusal(status.as_u16(), error);
            return Err(CrmError::Rejected {
                operation,
                status: status.as_u16(),
                category,
                message,
            });
        }
        Ok(body["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|result| state(result, properties))
            .collect())
    }
}

/// One result as the port states it: every asked property (`None` when empty), and the newest
/// history entry of each that has one. `None` for a result without an id.
fn state(result: &Value, asked: &[&str]) -> Option<CrmRecordState> {
    let id = match &result["id"] {
        Value::String(id) => id.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let values = &result["properties"];
    let properties: BTreeMap<String, Option<String>> = asked
        .iter()
        .map(|name| (name.to_string(), text(&values[*name])))
        .collect();
    let mut changes = BTreeMap::new();
    let history = result["propertiesWithHistory"].as_object();
    for (name, entries) in history.into_iter().flatten() {
        let newest = entries
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| Some((timestamp_ms(&entry["timestamp"])?, entry)))
            .max_by_key(|(at, _)| *at);
        if let Some((at_ms, entry)) = newest {
            changes.insert(
                name.clone(),
                PropertyChange {
                    at_ms,
                    source_type: text(&entry["sourceType"]),
                    source_id: text(&entry["sourceId"]),
                },
            );
        }
    }
    Some(CrmRecordState {
        id: CrmId(id),
        properties,
        changes,
    })
}

/// A property value as text; `None` for null, absent or empty (HubSpot's "no value").
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A history timestamp in epoch milliseconds: ISO-8601 UTC (`2024-01-15T10:30:00.000Z`, as
/// the API answers) or a number of milliseconds.
fn timestamp_ms(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse::<i64>().ok().or_else(|| parse_iso_ms(s)),
        _ => None,
    }
}

/// An RFC 3339 instant (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, what HubSpot answers) →
/// epoch milliseconds, parsed by `time`. The fraction is truncated (rounded towards the past,
/// also before 1970), never rounded up into the next second. `None` for anything else,
/// including impossible dates (`2024-02-30`).
pub(crate) fn parse_iso_ms(text: &str) -> Option<i64> {
    let at = OffsetDateTime::parse(text.trim(), &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass, `,` too: HubSpot reads
/// `properties` as a comma-separated list).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b',' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_timestamps_read_as_epoch_milliseconds() {
        assert_eq!(parse_iso_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_iso_ms("2024-01-15T10:30:00.000Z"),
            Some(1_705_314_600_000)
        );
        assert_eq!(
            parse_iso_ms("2024-01-15T10:30:00.123456Z"),
            Some(1_705_314_600_123)
        );
        assert_eq!(
            parse_iso_ms("2024-01-15T12:30:00.5+02:00"),
            Some(1_705_314_600_500)
        );
        assert_eq!(
            parse_iso_ms("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000)
        );
        assert_eq!(parse_iso_ms("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_iso_ms("yesterday"), None);
        assert_eq!(
            timestamp_ms(&json!(1_705_314_600_000_i64)),
            Some(1_705_314_600_000)
        );
    }

    #[test]
    fn offsets_and_fractions_read_as_the_same_instant() {
        let utc = parse_iso_ms("2024-01-15T10:30:00.000Z");
        for same in [
            "2024-01-15T10:30:00Z",
            "2024-01-15t10:30:00z",
            "2024-01-15 10:30:00Z",
            "2024-01-15T12:30:00+02:00",
            "2024-01-15T00:30:00-10:00",
            "2024-01-14T21:00:00-13:30",
            "2024-01-15T10:00:00-00:30",
            "2024-01-15T16:15:00.000000000+05:45",
        ] {
            assert_eq!(parse_iso_ms(same), utc, "{same}");
        }
        // Fractions of any length are truncated to the millisecond, never rounded up.
        assert_eq!(
            parse_iso_ms("2024-12-31T23:59:59.999999999Z"),
            Some(1_735_689_599_999)
        );
        assert_eq!(
            parse_iso_ms("2024-01-15T10:30:00.9Z"),
            Some(1_705_314_600_900)
        );
        assert_eq!(
            parse_iso_ms("2024-01-15T10:30:00.0789+00:00"),
            Some(1_705_314_600_078)
        );
        assert_eq!(parse_iso_ms("1969-12-31T23:59:59.9995Z"), Some(-1));
        assert_eq!(parse_iso_ms("1969-12-31T19:59:59.001-04:00"), Some(-999));
        // An impossible day or offset, or a missing fraction, is refused rather than rolled over.
        for bad in [
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-01-15T24:00:00Z",
            "2024-01-15T10:30:00+24:00",
            "2024-01-15T10:30:00.Z",
            "2024-01-15T10:30Z",
            "2024-01-15",
        ] {
            assert_eq!(parse_iso_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_newest_history_entry_wins_whatever_the_order() {
        let result = json!({
            "id": "512",
            "properties": {"email": "ada@analytical.example", "jobtitle": null},
            "propertiesWithHistory": {"email": [
                {"value": "old@analytical.example", "timestamp": "2024-01-01T00:00:00Z",
                 "sourceType": "CRM_UI", "sourceId": "userId:1"},
                {"value": "ada@analytical.example", "timestamp": "2024-03-01T00:00:00Z",
                 "sourceType": "INTEGRATION", "sourceId": "4242"}
            ], "jobtitle": []}
        });
        let state = state(&result, &["email", "jobtitle", "phone"]).expect("state");
        assert_eq!(state.id, CrmId("512".into()));
        assert_eq!(
            state.properties["email"].as_deref(),
            Some("ada@analytical.example")
        );
        assert_eq!(state.properties["jobtitle"], None);
        assert_eq!(state.properties["phone"], None);
        let email = &state.changes["email"];
        assert_eq!(email.at_ms, parse_iso_ms("2024-03-01T00:00:00Z").unwrap());
        assert_eq!(email.source_type.as_deref(), Some("INTEGRATION"));
        assert_eq!(email.source_id.as_deref(), Some("4242"));
        assert!(!state.changes.contains_key("jobtitle"));
    }
}
