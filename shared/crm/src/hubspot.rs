//! The HubSpot adapter (CRM v3 objects API).
//!
//! Rate limits: HubSpot allows 100–190 requests per 10 s per portal, shared by every container
//! and every app. With [`HubSpotConfig::budget`] set every container draws from one shared
//! bucket (`relay_ratelimit`; a 429 of a burst policy halves it for all, then it climbs back;
//! no token within `max_wait` is [`CrmError::RateLimited`] with policy [`BUDGET_POLICY`] and
//! nothing sent). Without it a limiter shared by every
//! clone of the sink keeps this container under `requests_per_10s`. A 429 is waited out
//! (`Retry-After`, else one window of the named policy) while the call's wait budget lasts,
//! and a `DAILY` limit is returned at once so the message goes back to SQS. 5xx, network
//! errors and 423 (a lock HubSpot holds for about 2 s) are retried with backoff; other 4xx are
//! not, and classify themselves by status and `category` ([`crate::classify`]).
//!
//! Except for creates. `POST /crm/v3/objects/{type}` is not idempotent: a 5xx, a timeout or a
//! dropped connection may come after HubSpot made the note, and sending it again makes a
//! second one. A create is therefore sent once ([`Replay::Never`], as the Attio client sends a
//! webhook create once); only answers that say it was refused and not done — 429, 423, a
//! connection that never opened — are retried. Anything else is [`CrmError::OutcomeUnknown`],
//! which the sync resolves by looking for the object's marker (`markers.rs`) before any new
//! create.
//!
//! Batch upserts send each input with an `objectWriteTraceId` (its position in the batch) and
//! read every result and error back by it, so one refused input fails only its own record
//! (https://developers.hubspot.com/docs/api-reference/error-handling, "Multi-status errors":
//! errors carry `context.objectWriteTraceId: ["<id>"]`). A whole-call refusal of a batch of
//! several inputs, or errors without a trace id, are isolated by sending the unsettled inputs
//! one by one, so one bad input never fails its neighbours.
//!
//! Contacts are unique by email: creating (or upserting on `attio_record_id`) a contact whose
//! email another contact holds answers `CONFLICT` "Contact already exists. Existing ID: N",
//! with `context.existingId`. That input is reported with [`ItemFailure::existing`] set, and the
//! sync crate adopts the existing contact instead of creating a second one. Companies have no
//! unique domain in HubSpot and never conflict; the adapter never searches (search is
//! eventually consistent and limited to a few requests per second).

use std::sync::Arc;
use std::time::Duration;

use relay_credentials::{Credential, Token};
use relay_ratelimit::ApiBudget;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::{
    Association, CrmError, CrmId, CrmObject, CrmSink, ErrorClass, ItemFailure, Properties,
    RecordUpsert, UpsertReport, classify,
};

/// The unique HubSpot property holding the Attio record id; upserts are keyed on it.
pub const ID_PROPERTY: &str = "attio_record_id";

/// HubSpot's API root. The one place it is written: the CLI's `--hubspot-api-url` defaults and
/// [`HubSpotConfig::new`] read it, and tests point `base_url` at a stand-in instead.
pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";

/// The versioned CRM path prefixes, in one place: HubSpot's v1–v3 paths become unsupported in
/// September 2027 and date-versioned paths (`/crm/objects/2026-03/...`) replace them with the
/// same bodies, so moving is a change here (and in the stand-ins' matchers).
pub(crate) const OBJECTS: &str = "/crm/v3/objects";
pub(crate) const PROPERTIES: &str = "/crm/v3/properties";
pub(crate) const OWNERS: &str = "/crm/v3/owners";
/// Associations v4 (default associations have no v3 equivalent).
pub(crate) const ASSOCIATIONS: &str = "/crm/v4/objects";

mod auth;
mod limiter;
mod source;

use limiter::Limiter;

/// HubSpot accepts at most 100 inputs per batch call.
pub(crate) const BATCH_LIMIT: usize = 100;
const WINDOW: Duration = Duration::from_secs(10);
/// The `policy` of a [`CrmError::RateLimited`] the shared budget gave (no token within the
/// call's wait budget), not HubSpot.
pub const BUDGET_POLICY: &str = "RELAY_BUDGET";
/// "Locks will last for 2 seconds" (423; https://developers.hubspot.com/docs/api-reference/error-handling).
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Whether a request may be sent again after a failure that does not say it was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Reads and idempotent writes (upserts on a unique property, PATCH, PUT, DELETE): any
    /// transient failure is retried.
    Safe,
    /// A create: only a refusal that says nothing was done (429, 423, no connection) is
    /// retried; a 5xx, timeout or dropped connection is [`CrmError::OutcomeUnknown`].
    Never,
}

/// HubSpot connection settings.
#[derive(Clone)]
pub struct HubSpotConfig {
    pub base_url: String,
    /// Read per call: a stored [`Credential`] follows rotations (`hubspot/auth.rs`).
    pub token: Credential,
    pub request_timeout: Duration,
    /// Longest total time one call may spend waiting on rate limits and backoff.
    pub max_wait: Duration,
    pub max_attempts: u32,
    /// Client-side ceiling, below HubSpot's per-portal limit to leave room for other apps.
    /// Per container: used only without a `budget`.
    pub requests_per_10s: usize,
    /// The deployment's shared budget: HubSpot's limit is per portal, so every container draws
    /// from one bucket; replaces `requests_per_10s` when set, and is cut on a 429.
    pub budget: Option<ApiBudget>,
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
    pub fn new(token: impl Into<Credential>) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.into(),
            token: token.into(),
            request_timeout: Duration::from_secs(10),
            max_wait: Duration::from_secs(20),
            max_attempts: 4,
            requests_per_10s: 90,
            budget: None,
            backoff: Duration::from_millis(250),
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

/// A refusal read from an error object: HubSpot's whole-call error body and each entry of a
/// batch's `errors` have the same shape (`status`, `category`, `message`, `context`).
pub(crate) fn refusal(
    status: u16,
    error: &Value,
) -> (Option<String>, String, ErrorClass, Option<CrmId>) {
    let category = error["category"].as_str().map(str::to_owned);
    let mut message = error["message"].as_str().unwrap_or("").to_owned();
    if message.is_empty() {
        message = format!("HTTP {status}");
    }
    let class = if status == 207 || status < 300 {
        // A per-input error of a multi-status answer: its category says what it is.
        match category.as_deref() {
            Some(c) => classify(400, Some(c)),
            None => ErrorClass::Transient,
        }
    } else {
        classify(status, category.as_deref())
    };
    let existing = (category.as_deref() == Some("CONFLICT"))
        .then(|| existing_id(error))
        .flatten();
    (category, message, class, existing)
}

/// The id of the object holding a unique value, from a `CONFLICT` error: `context.existingId`
/// when present, else the documented message "Contact already exists. Existing ID: N".
fn existing_id(error: &Value) -> Option<CrmId> {
    let from_context = error["context"]["existingId"]
        .as_array()
        .and_then(|ids| ids.first())
        .and_then(|id| {
            id.as_str()
                .map(str::to_owned)
                .or_else(|| id.as_u64().map(|n| n.to_string()))
        });
    from_context
        .or_else(|| {
            let message = error["message"].as_str()?;
            let (_, tail) = message.split_once("Existing ID:")?;
            let digits: String = tail
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            (!digits.is_empty()).then_some(digits)
        })
        .map(CrmId)
}

/// The input positions an error or result names in `objectWriteTraceId` (an array on errors'
/// `context`, a string on results).
fn trace_indices(value: &Value, inputs: usize) -> Vec<usize> {
    let traces: Vec<&Value> = match (
        &value["objectWriteTraceId"],
        &value["context"]["objectWriteTraceId"],
    ) {
        (Value::String(_), _) => vec![&value["objectWriteTraceId"]],
        (_, Value::Array(items)) => items.iter().collect(),
        (_, Value::String(_)) => vec![&value["context"]["objectWriteTraceId"]],
        _ => Vec::new(),
    };
    traces
        .into_iter()
        .filter_map(|t| t.as_str()?.parse::<usize>().ok())
        .filter(|i| *i < inputs)
        .collect()
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
    pub(crate) async fn call(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), CrmError> {
        let (status, json) = self.call_raw(operation, method, path, body).await?;
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok((status, json));
        }
        let error: ErrorBody = serde_json::from_value(json).unwrap_or_default();
        Err(CrmError::Rejected {
            operation: operation.to_owned(),
            status: status.as_u16(),
            category: error.category,
            message: error.message,
        })
    }

    /// [`Self::call`] for a call on one object: a 404 is [`CrmError::NotFound`] (the object
    /// is gone), so only success comes back, with its status and JSON body.
    pub(crate) async fn call_found(
        &self,
        operation: String,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), CrmError> {
        let (status, json) = self.call(&operation, method, path, body).await?;
        if status == StatusCode::NOT_FOUND {
            return Err(CrmError::NotFound { operation });
        }
        Ok((status, json))
    }

    /// Sends one request with `token`, rate limited, retrying what `replay` allows; returns
    /// every final answer (4xx included) with its JSON body. Callers go through
    /// `call_replaying` (in `hubspot/auth.rs`), which re-reads the token once on a 401.
    async fn send(
        &self,
        token: &Token,
        operation: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        replay: Replay,
    ) -> Result<(StatusCode, Value), CrmError> {
        let url = format!("{}{path}", self.config.base_url.trim_end_matches('/'));
        let started = Instant::now();
        let mut backoff = self.config.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match &self.config.budget {
                Some(budget) => {
                    let left = self.config.max_wait.saturating_sub(started.elapsed());
                    if let Err(denied) = budget.acquire(left).await {
                        return Err(CrmError::RateLimited {
                            retry_after_secs: denied.wait.as_secs().max(1),
                            policy: BUDGET_POLICY.into(),
                        });
                    }
                }
                None => self.limiter.acquire(self.config.requests_per_10s).await,
            }
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(token.expose())
                .header("accept", "application/json");
            if let Some(body) = body {
                request = request.json(body);
            }
            let unavailable = |message: String| CrmError::Unavailable {
                operation: operation.to_owned(),
                message,
            };
            let unknown = |message: String| CrmError::OutcomeUnknown {
                operation: operation.to_owned(),
                message,
            };
            let outcome = request.send().await;
            let (retry_in, failure) = match outcome {
                // A connection that never opened sent nothing; any later failure may have.
                Err(err) if replay == Replay::Never && !err.is_connect() => {
                    return Err(unknown(err.to_string()));
                }
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
                    let locked = status == StatusCode::LOCKED;
                    let transient = classify(status.as_u16(), None) == ErrorClass::Transient;
                    if status.is_success() || (status.is_client_error() && !transient) {
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
                        // A burst limit: every container overran together, so halve the
                        // shared rate for all (the daily quota is not a rate).
                        if let Some(budget) = &self.config.budget {
                            budget.throttled().await;
                        }
                        (Some(wait), limited)
                    } else if replay == Replay::Never && !locked {
                        // 5xx, 408, 477: the write may have happened before the answer failed.
                        return Err(unknown(format!("HTTP {status}: {}", error.message)));
                    } else {
                        // 5xx, 408, 423 (HubSpot's locks last 2 s), 477 (with Retry-After).
                        let floor = if locked { LOCK_WAIT } else { backoff };
                        (
                            Some(retry_after.unwrap_or(floor).max(floor)),
                            unavailable(format!("HTTP {status}: {}", error.message)),
                        )
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

    /// Upserts one batch (at most [`BATCH_LIMIT`] inputs) and records every input's outcome in
    /// `report`. Only failures of the whole call that no input can escape (rate limit, 5xx,
    /// bad token) are returned as errors.
    async fn upsert_batch(
        &self,
        object: CrmObject,
        batch: &[RecordUpsert],
        report: &mut UpsertReport,
    ) -> Result<(), CrmError> {
        let inputs: Vec<Value> = batch
            .iter()
            .enumerate()
            .map(|(trace, r)| {
                let mut properties = r.properties.clone();
                properties.insert(ID_PROPERTY.into(), r.attio_record_id.clone());
                json!({
                    "id": r.attio_record_id,
                    "idProperty": ID_PROPERTY,
                    "objectWriteTraceId": trace.to_string(),
                    "properties": properties
                })
            })
            .collect();
        let operation = format!("{object} batch upsert");
        let (status, body) = self
            .call_raw(
                &operation,
                Method::POST,
                &format!("{OBJECTS}/{object}/batch/upsert"),
                Some(&json!({"inputs": inputs})),
            )
            .await?;
        if !status.is_success() {
            let (category, message, class, existing) = refusal(status.as_u16(), &body);
            if class != ErrorClass::Permanent {
                return Err(CrmError::Rejected {
                    operation,
                    status: status.as_u16(),
                    category,
                    message,
                });
            }
            if let [only] = batch {
                report.failures.push(ItemFailure {
                    attio_record_id: only.attio_record_id.clone(),
                    category,
                    message,
                    class,
                    existing,
                });
                return Ok(());
            }
            // Which input was refused is not said: send each alone so only it fails.
            tracing::info!(%object, inputs = batch.len(), category = ?category, "batch refused as a whole; isolating its inputs");
            return self.upsert_singly(object, batch, report).await;
        }

        let mut settled = vec![false; batch.len()];
        for result in body["results"].as_array().into_iter().flatten() {
            let Some(id) = result["id"].as_str() else {
                continue;
            };
            let mut at = trace_indices(result, batch.len());
            if at.is_empty() {
                // No trace id echoed: fall back to the unique id property HubSpot returns.
                let echoed = result["properties"][ID_PROPERTY].as_str();
                at.extend(
                    batch
                        .iter()
                        .position(|r| Some(r.attio_record_id.as_str()) == echoed),
                );
            }
            for i in at {
                report
                    .ids
                    .insert(batch[i].attio_record_id.clone(), CrmId(id.to_owned()));
                settled[i] = true;
            }
        }
        let mut untraced = Vec::new();
        for error in body["errors"].as_array().into_iter().flatten() {
            let (category, message, class, existing) = refusal(status.as_u16(), error);
            let at = trace_indices(error, batch.len());
            if at.is_empty() {
                untraced.push((category, message, class, existing));
                continue;
            }
            for i in at {
                report.failures.push(ItemFailure {
                    attio_record_id: batch[i].attio_record_id.clone(),
                    category: category.clone(),
                    message: message.clone(),
                    class,
                    existing: existing.clone(),
                });
                settled[i] = true;
            }
        }
        let unsettled: Vec<RecordUpsert> = batch
            .iter()
            .zip(&settled)
            .filter(|(_, done)| !**done)
            .map(|(r, _)| r.clone())
            .collect();
        match (unsettled.as_slice(), untraced.len()) {
            ([], _) => {}
            ([only], 1) => {
                let (category, message, class, existing) = untraced.remove(0);
                report.failures.push(ItemFailure {
                    attio_record_id: only.attio_record_id.clone(),
                    category,
                    message,
                    class,
                    existing,
                });
            }
            (several, n) if n > 0 && batch.len() > 1 => {
                self.upsert_singly(object, several, report).await?;
            }
            (rest, _) => {
                for r in rest {
                    report.failures.push(ItemFailure {
                        attio_record_id: r.attio_record_id.clone(),
                        category: None,
                        message: "HubSpot returned no result for this input".into(),
                        class: ErrorClass::Transient,
                        existing: None,
                    });
                }
            }
        }
        Ok(())
    }

    /// Upserts each input in its own call: how a refusal that names no input is pinned on the
    /// input that caused it.
    async fn upsert_singly(
        &self,
        object: CrmObject,
        inputs: &[RecordUpsert],
        report: &mut UpsertReport,
    ) -> Result<(), CrmError> {
        for input in inputs {
            Box::pin(self.upsert_batch(object, std::slice::from_ref(input), report)).await?;
        }
        Ok(())
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
        let (status, body) = self
            .call_replaying(
                &operation,
                Method::POST,
                &format!("{OBJECTS}/{object}"),
                Some(&json!({"properties": properties, "associations": associations})),
                Replay::Never,
            )
            .await?;
        if !status.is_success() {
            let (category, message, _, _) = refusal(status.as_u16(), &body);
            return Err(CrmError::Rejected {
                operation,
                status: status.as_u16(),
                category,
                message,
            });
        }
        // A success whose body was lost (a connection dropped mid-answer) made the object.
        body["id"]
            .as_str()
            .map(|id| CrmId(id.to_owned()))
            .ok_or_else(|| CrmError::OutcomeUnknown {
                operation,
                message: "HubSpot answered without an id".into(),
            })
    }

    /// `POST /crm/v3/objects/{type}/search` on the marker (see `markers.rs`).
    async fn find_by_marker(
        &self,
        object: CrmObject,
        attio_id: &str,
    ) -> Result<Vec<CrmId>, CrmError> {
        self.search_marker(object, attio_id).await
    }

    async fn update(
        &self,
        object: CrmObject,
        id: &CrmId,
        properties: &Properties,
    ) -> Result<(), CrmError> {
        self.call_found(
            format!("update {object}"),
            Method::PATCH,
            &format!("{OBJECTS}/{object}/{id}"),
            Some(&json!({"properties": properties})),
        )
        .await
        .map(drop)
    }

    async fn read(
        &self,
        object: CrmObject,
        id: &CrmId,
        properties: &[&str],
    ) -> Result<Option<Properties>, CrmError> {
        let (status, body) = self
            .call(
                &format!("read {object}"),
                Method::GET,
                &format!(
                    "{OBJECTS}/{object}/{id}?properties={}",
                    properties.join(",")
                ),
                None,
            )
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let values = body["properties"].as_object().into_iter().flatten();
        Ok(Some(
            values
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect(),
        ))
    }

    async fn archive(&self, object: CrmObject, id: &CrmId) -> Result<(), CrmError> {
        // A 404 means it is gone already: archiving is idempotent.
        self.call(
            &format!("archive {object}"),
            Method::DELETE,
            &format!("{OBJECTS}/{object}/{id}"),
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
        let (_, body) = self
            .call_found(
                format!("merge {object}"),
                Method::POST,
                &format!("{OBJECTS}/{object}/merge"),
                Some(&json!({"primaryObjectId": primary.0, "objectIdToMerge": duplicate.0})),
            )
            .await?;
        Ok(body["id"]
            .as_str()
            .map_or_else(|| primary.clone(), |id| CrmId(id.to_owned())))
    }

    /// The v4 default association PUT (see `associations.rs`).
    async fn associate(
        &self,
        from: CrmObject,
        from_id: &CrmId,
        to: CrmObject,
        to_id: &CrmId,
    ) -> Result<(), CrmError> {
        self.put_default_association(from, from_id, to, to_id).await
    }

    /// The v4 DELETE of every association between the pair (see `associations.rs`).
    async fn dissociate(
        &self,
        from: CrmObject,
        from_id: &CrmId,
        to: CrmObject,
        to_id: &CrmId,
    ) -> Result<(), CrmError> {
        self.delete_associations(from, from_id, to, to_id).await
    }

    /// `GET /crm/v3/owners/?email=` (see `owners.rs`).
    async fn owner_by_email(&self, email: &str) -> Result<Option<CrmId>, CrmError> {
        self.find_owner(email).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
