//! The HubSpot adapter (CRM v3 objects API).
//!
//! Rate limits: HubSpot allows 100–190 requests per 10 s per portal. A limiter shared by every
//! clone of the sink keeps this container under `requests_per_10s`; a 429 is waited out
//! (`Retry-After`, else one window of the named policy) while the call's wait budget lasts,
//! and a `DAILY` limit is returned at once so the message goes back to SQS. 5xx and network
//! errors are retried with backoff; other 4xx are not.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::{
    Association, CrmError, CrmId, CrmObject, CrmSink, ItemFailure, Properties, RecordUpsert,
    UpsertReport,
};

/// The unique HubSpot property holding the Attio record id; upserts are keyed on it.
pub const ID_PROPERTY: &str = "attio_record_id";

/// HubSpot's API root. The one place it is written: the CLI's `--hubspot-api-url` defaults and
/// [`HubSpotConfig::new`] read it, and tests point `base_url` at a stand-in instead.
pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";

/// HubSpot accepts at most 100 inputs per batch call.
const BATCH_LIMIT: usize = 100;
const WINDOW: Duration = Duration::from_secs(10);

/// HubSpot connection settings.
#[derive(Clone)]
pub struct HubSpotConfig {
    pub base_url: String,
    pub token: String,
    pub request_timeout: Duration,
    /// Longest total time one call may spend waiting on rate limits and backoff.
    pub max_wait: Duration,
    pub max_attempts: u32,
    /// Client-side ceiling, below HubSpot's per-portal limit to leave room for other apps.
    pub requests_per_10s: usize,
    /// First backoff after a 5xx or network error; doubles per attempt.
    pub backoff: Duration,
}

impl std::fmt::Debug for HubSpotConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSpotConfig")
            .field("base_url", &self.base_url)
            .field("token", &"<redacted>")
            .field("requests_per_10s", &self.requests_per_10s)
            .finish_non_exhaustive()
    }
}

impl HubSpotConfig {
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.into(),
            token: token.into(),
            request_timeout: Duration::from_secs(10),
            max_wait: Duration::from_secs(20),
            max_attempts: 4,
            requests_per_10s: 90,
            backoff: Duration::from_millis(250),
        }
    }
}

/// Requests sent in the last window, shared by clones.
#[derive(Debug, Default)]
struct Limiter {
    sent: Mutex<VecDeque<Instant>>,
}

impl Limiter {
    /// Waits until one more request fits in the window, then records it.
    async fn acquire(&self, per_window: usize) {
        loop {
            let wait = {
                let mut sent = self.sent.lock().await;
                let now = Instant::now();
                while sent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= WINDOW)
                {
                    sent.pop_front();
                }
                if sent.len() < per_window.max(1) {
                    sent.push_back(now);
                    return;
                }
                sent.front()
                    .map_or(Duration::ZERO, |t| WINDOW - now.duration_since(*t))
            };
            tracing::debug!(
                wait_ms = wait.as_millis() as u64,
                "HubSpot limiter full; waiting"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

/// [`CrmSink`] on HubSpot.
#[derive(Debug, Clone)]
pub struct HubSpotSink {
    http: reqwest::Client,
    config: Arc<HubSpotConfig>,
    limiter: Arc<Limiter>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    category: Option<String>,
    #[serde(default, rename = "policyName")]
    policy_name: Option<String>,
}

impl HubSpotSink {
    pub fn new(config: HubSpotConfig) -> Result<Self, CrmError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| CrmError::Unavailable {
                operation: "client setup".into(),
                message: e.to_string(),
            })?;
        Ok(Self {
            http,
            config: Arc::new(config),
            limiter: Arc::new(Limiter::default()),
        })
    }

    /// Sends one request with rate limiting and retries; returns the status and JSON body
    /// (`Value::Null` when empty). 404 is returned to the caller, other 4xx become errors.
    async fn call(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), CrmError> {
        let url = format!("{}{path}", self.config.base_url.trim_end_matches('/'));
        let started = Instant::now();
        let mut backoff = self.config.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.limiter.acquire(self.config.requests_per_10s).await;
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&self.config.token)
                .header("accept", "application/json");
            if let Some(body) = body {
                request = request.json(body);
            }
            let unavailable = |message: String| CrmError::Unavailable {
                operation: operation.to_owned(),
                message,
            };
            let outcome = request.send().await;
            let (retry_in, failure) = match outcome {
                Err(err) => (Some(backoff), unavailable(err.to_string())),
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    let text = response.text().await.unwrap_or_default();
                    let json: Value = if text.trim().is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_str(&text).unwrap_or(Value::String(text))
                    };
                    if status.is_success() || status == StatusCode::NOT_FOUND {
                        return Ok((status, json));
                    }
                    let error: ErrorBody = serde_json::from_value(json.clone()).unwrap_or_default();
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        let policy = error.policy_name.unwrap_or_else(|| "UNKNOWN".into());
                        let wait = retry_after.unwrap_or(match policy.as_str() {
                            "SECONDLY" => Duration::from_secs(1),
                            _ => WINDOW,
                        });
                        let limited = CrmError::RateLimited {
                            retry_after_secs: wait.as_secs().max(1),
                            policy: policy.clone(),
                        };
                        if policy == "DAILY" {
                            return Err(limited);
                        }
                        (Some(wait), limited)
                    } else if status.is_server_error() {
                        (
                            Some(backoff),
                            unavailable(format!("HTTP {status}: {}", error.message)),
                        )
                    } else {
                        return Err(CrmError::Rejected {
                            operation: operation.to_owned(),
                            status: status.as_u16(),
                            category: error.category,
                            message: error.message,
                        });
                    }
                }
            };
            let Some(wait) = retry_in else {
                return Err(failure);
            };
            if attempt >= self.config.max_attempts
                || started.elapsed() + wait > self.config.max_wait
            {
                return Err(failure);
            }
            tracing::warn!(operation, attempt, wait_ms = wait.as_millis() as u64, error = %failure, "retrying HubSpot call");
            tokio::time::sleep(wait).await;
            backoff = backoff.saturating_mul(2);
        }
    }

    async fn upsert_batch(
        &self,
        object: CrmObject,
        batch: &[RecordUpsert],
        report: &mut UpsertReport,
    ) -> Result<(), CrmError> {
        let inputs: Vec<Value> = batch
            .iter()
            .map(|r| {
                let mut properties = r.properties.clone();
                properties.insert(ID_PROPERTY.into(), r.attio_record_id.clone());
                json!({"id": r.attio_record_id, "idProperty": ID_PROPERTY, "properties": properties})
            })
            .collect();
        let operation = format!("{object} batch upsert");
        let (_, body) = self
            .call(
                &operation,
                Method::POST,
                &format!("/crm/v3/objects/{object}/batch/upsert"),
                Some(&json!({"inputs": inputs})),
            )
            .await?;
        for result in body["results"].as_array().into_iter().flatten() {
            let (Some(id), Some(attio)) = (
                result["id"].as_str(),
                result["properties"][ID_PROPERTY].as_str(),
            ) else {
                continue;
            };
            report.ids.insert(attio.to_owned(), CrmId(id.to_owned()));
        }
        let errors: Vec<(String, bool)> = body["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let category = e["category"].as_str().unwrap_or("");
                let permanent = matches!(
                    category,
                    "VALIDATION_ERROR"
                        | "INVALID_PARAMS"
                        | "OBJECT_NOT_FOUND"
                        | "PROPERTY_DOESNT_EXIST"
                );
                (
                    format!("{category}: {}", e["message"].as_str().unwrap_or("")),
                    permanent,
                )
            })
            .collect();
        for record in batch {
            if report.ids.contains_key(&record.attio_record_id) {
                continue;
            }
            let (message, permanent) = errors
                .first()
                .cloned()
                .unwrap_or_else(|| ("HubSpot returned no result for this input".into(), false));
            report.failures.push(ItemFailure {
                attio_record_id: record.attio_record_id.clone(),
                message,
                permanent,
            });
        }
        Ok(())
    }
}

impl HubSpotSink {
    /// Creates the unique `attio_record_id` property on `object` unless it exists; upserts are
    /// keyed on it. Returns true when it was created. A one-time setup step.
    pub async fn ensure_id_property(&self, object: CrmObject) -> Result<bool, CrmError> {
        let path = format!("/crm/v3/properties/{object}/{ID_PROPERTY}");
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
            &format!("/crm/v3/properties/{object}"),
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
        let path = format!("/crm/v3/properties/{object}/{name}");
        let (status, body) = self.call("read property", Method::GET, &path, None).await?;
        Ok((status != StatusCode::NOT_FOUND).then_some(body))
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value.trim()).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// HubSpot's default association type ids (v4) from a note or task to a record.
fn association_type(from: CrmObject, to: CrmObject) -> Option<u32> {
    use CrmObject::*;
    match (from, to) {
        (Notes, Contacts) => Some(202),
        (Notes, Companies) => Some(190),
        (Notes, Deals) => Some(214),
        (Tasks, Contacts) => Some(204),
        (Tasks, Companies) => Some(192),
        (Tasks, Deals) => Some(216),
        _ => None,
    }
}

impl CrmSink for HubSpotSink {
    async fn upsert_records(
        &self,
        object: CrmObject,
        records: &[RecordUpsert],
    ) -> Result<UpsertReport, CrmError> {
        let mut report = UpsertReport::default();
        for batch in records.chunks(BATCH_LIMIT) {
            self.upsert_batch(object, batch, &mut report).await?;
        }
        Ok(report)
    }

    async fn create(
        &self,
        object: CrmObject,
        properties: &Properties,
        associations: &[Association],
    ) -> Result<CrmId, CrmError> {
        let associations: Vec<Value> = associations
            .iter()
            .filter_map(|a| {
                association_type(object, a.to).map(|type_id| {
                    json!({
                        "to": {"id": a.id.0},
                        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]
                    })
                })
            })
            .collect();
        let operation = format!("create {object}");
        let (_, body) = self
            .call(
                &operation,
                Method::POST,
                &format!("/crm/v3/objects/{object}"),
                Some(&json!({"properties": properties, "associations": associations})),
            )
            .await?;
        body["id"]
            .as_str()
            .map(|id| CrmId(id.to_owned()))
            .ok_or_else(|| CrmError::Unavailable {
                operation,
                message: "HubSpot answered without an id".into(),
            })
    }

    async fn update(
        &self,
        object: CrmObject,
        id: &CrmId,
        properties: &Properties,
    ) -> Result<(), CrmError> {
        let operation = format!("update {object}");
        let (status, _) = self
            .call(
                &operation,
                Method::PATCH,
                &format!("/crm/v3/objects/{object}/{id}"),
                Some(&json!({"properties": properties})),
            )
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Err(CrmError::NotFound { operation });
        }
        Ok(())
    }

    async fn archive(&self, object: CrmObject, id: &CrmId) -> Result<(), CrmError> {
        // A 404 means it is gone already: archiving is idempotent.
        self.call(
            &format!("archive {object}"),
            Method::DELETE,
            &format!("/crm/v3/objects/{object}/{id}"),
            None,
        )
        .await
        .map(drop)
    }

    async fn merge(
        &self,
        object: CrmObject,
        primary: &CrmId,
        duplicate: &CrmId,
    ) -> Result<CrmId, CrmError> {
        let operation = format!("merge {object}");
        let (status, body) = self
            .call(
                &operation,
                Method::POST,
                &format!("/crm/v3/objects/{object}/merge"),
                Some(&json!({"primaryObjectId": primary.0, "objectIdToMerge": duplicate.0})),
            )
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Err(CrmError::NotFound { operation });
        }
        Ok(body["id"]
            .as_str()
            .map_or_else(|| primary.clone(), |id| CrmId(id.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_limiter_holds_the_request_past_the_window() {
        let limiter = Limiter::default();
        let start = Instant::now();
        limiter.acquire(2).await;
        limiter.acquire(2).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        limiter.acquire(2).await;
        assert!(
            start.elapsed() >= WINDOW,
            "third request waited for the window"
        );
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        let soon = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        let wait = parse_retry_after(&soon).unwrap();
        assert!(
            wait <= Duration::from_secs(30) && wait >= Duration::from_secs(28),
            "{wait:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
