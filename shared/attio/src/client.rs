//! The HTTP client: each public method is one logical call, retried within its budget, behind
//! its object's circuit breaker. See the crate docs for the policy.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use relay_credentials::{Credential, Token};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::breaker::Breaker;
use crate::error::is_transient_status;
use crate::pacer::Pacer;
use crate::{
    AttioConfig, AttioError, Attribute, ListEntry, Note, ObjectSchema, Record, RecordPages,
    RecordQuery, Task,
};
use relay_ratelimit::ApiBudget;

/// Wait assumed when a 429 has no usable `Retry-After`: Attio's limits reset every second.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Longest error body kept in an error message.
const MAX_ERROR_TEXT: usize = 500;

/// Attio API client. Cheap to clone; clones share the connection pool, the circuit breakers
/// and the pacer.
#[derive(Clone)]
pub struct AttioClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    /// Read per call, so a rotated token reaches a warm container.
    token: Credential,
    request_timeout: Duration,
    call_budget: Duration,
    max_attempts: u32,
    backoff_base: Duration,
    backoff_cap: Duration,
    breaker: Breaker,
    reads: Option<Pacer>,
    writes: Option<Pacer>,
    /// The deployment-wide budgets; when set they replace the container's pacers.
    read_budget: Option<ApiBudget>,
    write_budget: Option<ApiBudget>,
}

impl fmt::Debug for AttioClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttioClient")
            .field("base_url", &self.inner.base.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Read,
    Write,
}

/// One logical call.
pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    pub(crate) segments: &'a [&'a str],
    /// Query-string pairs, in order (`&[]` for none).
    pub(crate) query: &'a [(&'a str, &'a str)],
    pub(crate) body: Option<Vec<u8>>,
    /// The circuit this call belongs to: object, `notes`, `tasks` or list.
    pub(crate) circuit: &'a str,
    pub(crate) kind: Kind,
    /// False for calls that must not be sent twice (creating a webhook): a transient failure
    /// is returned at once, since the first attempt may have succeeded.
    pub(crate) retry_transient: bool,
}

/// How one attempt ended.
enum Outcome {
    Success(Vec<u8>),
    /// Retrying cannot help.
    Permanent(AttioError),
    /// Worth retrying after a backoff; counts against the circuit.
    Transient(AttioError),
    /// 429: retry after this long.
    RateLimited(Duration),
}

#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

/// Attio's error body: `{status_code, type, code, message}`.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl AttioClient {
    pub fn new(config: AttioConfig) -> Result<Self, AttioError> {
        let invalid = |reason: String| AttioError::Config { reason };
        let base = Url::parse(&config.base_url)
            .map_err(|e| invalid(format!("base URL {:?}: {e}", config.base_url)))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "base URL {:?} is not an http(s) URL",
                config.base_url
            )));
        }
        let token = config.token.peek();
        if token.expose().trim().is_empty() {
            return Err(invalid("the API token is empty".into()));
        }
        HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| invalid("the API token has characters not allowed in a header".into()))?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("attio-relay/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| invalid(format!("HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                token: config.token,
                request_timeout: config.request_timeout,
                call_budget: config.call_budget,
                max_attempts: config.max_attempts.max(1),
                backoff_base: config.backoff_base,
                backoff_cap: config.backoff_cap,
                breaker: Breaker::new(
                    config.breaker_threshold,
                    config.breaker_cooldown,
                    config.request_timeout,
                ),
                reads: config.read_rate.map(Pacer::new),
                writes: config.write_rate.map(Pacer::new),
                read_budget: config.read_budget,
                write_budget: config.write_budget,
            }),
        })
    }

    pub fn base_url(&self) -> &str {
        self.inner.base.as_str()
    }

    /// `GET /objects/{object}/records/{record_id}`; `object` is an id or a slug.
    pub async fn get_record(&self, object: &str, record_id: &str) -> Result<Record, AttioError> {
        self.call(Call::get(
            &["objects", object, "records", record_id],
            object,
        ))
        .await
    }

    /// `POST /objects/{object}/records/query`: one page.
    pub async fn query_records(
        &self,
        object: &str,
        query: &RecordQuery,
    ) -> Result<Vec<Record>, AttioError> {
        let body = to_json(&query.body())?;
        self.call(Call {
            method: Method::POST,
            segments: &["objects", object, "records", "query"],
            query: &[],
            body: Some(body),
            circuit: object,
            kind: Kind::Read,
            retry_transient: true,
        })
        .await
    }

    /// Every record matching `filter`, `page_size` at a time from offset 0.
    pub fn query_all_records(
        &self,
        object: &str,
        filter: Option<serde_json::Value>,
        page_size: u32,
    ) -> RecordPages {
        let query = RecordQuery {
            filter,
            limit: page_size,
            ..RecordQuery::default()
        };
        RecordPages::new(self.clone(), object, query)
    }

    /// Pages of `query` from its offset (to sort, or to resume a saved walk).
    pub fn record_pages(&self, object: &str, query: RecordQuery) -> RecordPages {
        RecordPages::new(self.clone(), object, query)
    }

    /// `PUT /objects/{object}/records?matching_attribute=...`: create or update the record
    /// whose (unique) `matching_attribute` has the value given in `values`. Idempotent (sending
    /// it twice leaves what sending it once does), so a 5xx or timeout is retried like a read;
    /// it draws from the write pacer or budget (`writer.rs`).
    pub async fn assert_record(
        &self,
        object: &str,
        matching_attribute: &str,
        values: serde_json::Value,
    ) -> Result<Record, AttioError> {
        let body = to_json(&serde_json::json!({ "data": { "values": values } }))?;
        self.call(Call {
            method: Method::PUT,
            segments: &["objects", object, "records"],
            query: &[("matching_attribute", matching_attribute)],
            body: Some(body),
            circuit: object,
            kind: Kind::Write,
            retry_transient: true,
        })
        .await
    }

    /// `GET /lists/{list}/entries/{entry_id}`; `list` is an id or a slug.
    pub async fn get_list_entry(
        &self,
        list: &str,
        entry_id: &str,
    ) -> Result<ListEntry, AttioError> {
        self.call(Call::get(&["lists", list, "entries", entry_id], list))
            .await
    }

    /// `GET /notes/{note_id}`.
    pub async fn get_note(&self, note_id: &str) -> Result<Note, AttioError> {
        self.call(Call::get(&["notes", note_id], "notes")).await
    }

    /// `GET /tasks/{task_id}`.
    pub async fn get_task(&self, task_id: &str) -> Result<Task, AttioError> {
        self.call(Call::get(&["tasks", task_id], "tasks")).await
    }

    /// `GET /objects/{object}`; `object` is an id or a slug.
    pub async fn get_object(&self, object: &str) -> Result<ObjectSchema, AttioError> {
        self.call(Call::get(&["objects", object], object)).await
    }

    /// `GET /objects/{object}/attributes`.
    pub async fn list_attributes(&self, object: &str) -> Result<Vec<Attribute>, AttioError> {
        self.call(Call::get(&["objects", object, "attributes"], object))
            .await
    }

    /// Runs one logical call under its object's circuit breaker. The breaker counts calls,
    /// not attempts: one call that exhausts its retries on transient errors is one failure, so
    /// a single broken record cannot open the circuit for its whole object on its own.
    pub(crate) async fn call<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, AttioError> {
        let permit =
            self.inner
                .breaker
                .acquire(call.circuit)
                .map_err(|wait| AttioError::CircuitOpen {
                    object: call.circuit.to_owned(),
                    until: SystemTime::now() + wait,
                })?;
        let result = self.attempts(&call).await;
        match &result {
            Err(AttioError::BudgetExhausted { last, .. })
                if !matches!(**last, AttioError::RateLimited { .. }) =>
            {
                permit.failed();
            }
            _ => permit.succeeded(),
        }
        result
    }

    /// One logical call's attempts, waits and retries within the budget.
    async fn attempts<T: DeserializeOwned>(&self, call: &Call<'_>) -> Result<T, AttioError> {
        let inner = &*self.inner;
        let path = call.display_path();
        let url = inner.url(call);
        let deadline = Instant::now() + inner.call_budget;
        let mut attempts = 0;
        let mut last = None;
        let mut token = inner.token.current().await;
        let mut reauthorized = false;
        loop {
            if let Some(budget) = inner.budget(call.kind) {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if let Err(denied) = budget.acquire(remaining).await {
                    return Err(AttioError::RateLimited {
                        retry_after: denied.wait,
                        path,
                    });
                }
            } else if let Some(pacer) = inner.pacer(call.kind) {
                let remaining = deadline.saturating_duration_since(Instant::now());
                match pacer.reserve(Instant::now(), remaining) {
                    Ok(wait) if wait.is_zero() => {}
                    Ok(wait) => tokio::time::sleep(wait).await,
                    Err(wait) => {
                        return Err(AttioError::RateLimited {
                            retry_after: wait,
                            path,
                        });
                    }
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(AttioError::BudgetExhausted {
                    last: Box::new(
                        last.unwrap_or_else(|| AttioError::Timeout { path: path.clone() }),
                    ),
                    path,
                    attempts,
                });
            }
            attempts += 1;
            let timeout = remaining.min(inner.request_timeout);
            let (error, wait) = match inner.attempt(call, &url, &path, timeout, &token).await {
                Outcome::Success(body) => return decode(&path, &body),
                // A 401 may mean the token was rotated since it was read: re-read it once
                // and send this call again with the new one (a refused call changed nothing).
                Outcome::Permanent(error) if is_unauthorized(&error) && !reauthorized => {
                    reauthorized = true;
                    match inner.token.after_rejection(&token).await {
                        Some(fresh) => {
                            token = fresh;
                            continue;
                        }
                        None => return Err(error),
                    }
                }
                Outcome::Permanent(error) => return Err(error),
                Outcome::RateLimited(retry_after) => {
                    // Every container overran together: halve the shared rate for all.
                    if let Some(budget) = inner.budget(call.kind) {
                        budget.throttled().await;
                    }
                    let error = AttioError::RateLimited {
                        retry_after,
                        path: path.clone(),
                    };
                    (error, retry_after)
                }
                Outcome::Transient(error) if !call.retry_transient => return Err(error),
                Outcome::Transient(error) => (error, inner.backoff(attempts)),
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let rate_limited = matches!(error, AttioError::RateLimited { .. });
            if attempts < inner.max_attempts && rate_limited && wait >= remaining {
                // Waiting would outlive the budget: hand the wait back to the caller now.
                return Err(error);
            }
            if attempts >= inner.max_attempts || wait >= remaining {
                return Err(AttioError::BudgetExhausted {
                    path,
                    attempts,
                    last: Box::new(error),
                });
            }
            tracing::warn!(
                path,
                attempt = attempts,
                wait_ms = wait.as_millis() as u64,
                error = %error,
                "Attio call failed; retrying"
            );
            last = Some(error);
            tokio::time::sleep(wait).await;
        }
    }
}

impl<'a> Call<'a> {
    pub(crate) fn get(segments: &'a [&'a str], circuit: &'a str) -> Self {
        Self {
            method: Method::GET,
            segments,
            query: &[],
            body: None,
            circuit,
            kind: Kind::Read,
            retry_transient: true,
        }
    }

    /// The path below the base URL, for errors and logs.
    fn display_path(&self) -> String {
        let mut path = format!("/{}", self.segments.join("/"));
        for (i, (key, value)) in self.query.iter().enumerate() {
            let separator = if i == 0 { '?' } else { '&' };
            path.push_str(&format!("{separator}{key}={value}"));
        }
        path
    }
}

impl Inner {
    fn url(&self, call: &Call<'_>) -> Url {
        let mut url = self.base.clone();
        // `new` checked that the base URL can have path segments.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(call.segments);
        }
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(call.query);
        }
        url
    }

    fn budget(&self, kind: Kind) -> Option<&ApiBudget> {
        match kind {
            Kind::Read => self.read_budget.as_ref(),
            Kind::Write => self.write_budget.as_ref(),
        }
    }

    fn pacer(&self, kind: Kind) -> Option<&Pacer> {
        match kind {
            Kind::Read => self.reads.as_ref(),
            Kind::Write => self.writes.as_ref(),
        }
    }

    /// Exponential backoff with full jitter: uniform in `0..=min(cap, base * 2^(attempt-1))`.
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let ceiling = self
            .backoff_base
            .saturating_mul(factor)
            .min(self.backoff_cap);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }

    async fn attempt(
        &self,
        call: &Call<'_>,
        url: &Url,
        path: &str,
        timeout: Duration,
        token: &Token,
    ) -> Outcome {
        // `bearer_auth` marks the header sensitive: it is never shown in debug output.
        let mut request = self
            .http
            .request(call.method.clone(), url.clone())
            .bearer_auth(token.expose())
            .timeout(timeout);
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return Outcome::Transient(transport_error(path, e)),
        };
        let status = response.status();
        let retry_after = (status == StatusCode::TOO_MANY_REQUESTS)
            .then(|| retry_after(response.headers(), SystemTime::now()));
        let body = match response.bytes().await {
            Ok(body) => body.to_vec(),
            Err(e) => return Outcome::Transient(transport_error(path, e)),
        };
        if status.is_success() {
            return Outcome::Success(body);
        }
        if let Some(wait) = retry_after {
            return Outcome::RateLimited(wait);
        }
        let (code, message) = error_detail(status, &body);
        if status == StatusCode::NOT_FOUND {
            // Not retried here either way: whether a 404 is final (`not_found`) or waited out
            // (`merge_in_progress`, a proxy's page) is the queue's call, by `is_permanent`.
            return Outcome::Permanent(AttioError::NotFound {
                path: path.to_owned(),
                code,
                message,
            });
        }
        let transient = is_transient_status(status.as_u16(), code.as_deref());
        let error = AttioError::Api {
            status: status.as_u16(),
            code,
            message,
            path: path.to_owned(),
        };
        if transient {
            Outcome::Transient(error)
        } else {
            Outcome::Permanent(error)
        }
    }
}

/// Attio's answer to a token it does not accept (missing, revoked, rotated away).
fn is_unauthorized(error: &AttioError) -> bool {
    matches!(error, AttioError::Api { status: 401, .. })
}

fn to_json<T: serde::Serialize>(body: &T) -> Result<Vec<u8>, AttioError> {
    serde_json::to_vec(body).map_err(|e| AttioError::Config {
        reason: format!("request body does not serialise: {e}"),
    })
}

fn decode<T: DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, AttioError> {
    serde_json::from_slice::<Data<T>>(body)
        .map(|d| d.data)
        .map_err(|source| AttioError::Decode {
            path: path.to_owned(),
            source,
        })
}

fn transport_error(path: &str, error: reqwest::Error) -> AttioError {
    if error.is_timeout() {
        AttioError::Timeout {
            path: path.to_owned(),
        }
    } else {
        AttioError::Transport {
            path: path.to_owned(),
            source: error,
        }
    }
}

/// Attio's `code` and `message`, or the body text when it is not Attio's error JSON.
fn error_detail(status: StatusCode, body: &[u8]) -> (Option<String>, String) {
    if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body)
        && let Some(message) = parsed.message
    {
        return (parsed.code, message);
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        let reason = status.canonical_reason().unwrap_or("no reason given");
        (None, reason.to_owned())
    } else {
        (None, text.chars().take(MAX_ERROR_TEXT).collect())
    }
}

/// The wait a 429 asks for: `Retry-After` as an HTTP date (Attio's format) or in seconds.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Duration {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v.trim(), now))
        .unwrap_or(DEFAULT_RETRY_AFTER)
}

fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_http_dates_and_seconds() {
        let now = httpdate::parse_http_date("Tue, 23 May 2023 14:42:00 GMT").unwrap();
        let wait = |v| parse_retry_after(v, now);
        assert_eq!(
            wait("Tue, 23 May 2023 14:42:01 GMT"),
            Some(Duration::from_secs(1))
        );
        assert_eq!(wait("Tue, 23 May 2023 14:41:00 GMT"), Some(Duration::ZERO));
        assert_eq!(wait("3"), Some(Duration::from_secs(3)));
        assert_eq!(wait("soon"), None);

        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), DEFAULT_RETRY_AFTER);
        headers.insert(RETRY_AFTER, HeaderValue::from_static(" 12 "));
        assert_eq!(retry_after(&headers, now), Duration::from_secs(12));
    }

    #[test]
    fn error_details_fall_back_to_the_body_text_or_the_reason() {
        let attio = br#"{"status_code":400,"type":"invalid_request_error","code":"filter_error","message":"Error in filter."}"#;
        assert_eq!(
            error_detail(StatusCode::BAD_REQUEST, attio),
            (Some("filter_error".into()), "Error in filter.".into())
        );
        assert_eq!(
            error_detail(StatusCode::BAD_GATEWAY, b"<html>upstream</html>"),
            (None, "<html>upstream</html>".into())
        );
        assert_eq!(
            error_detail(StatusCode::SERVICE_UNAVAILABLE, b""),
            (None, "Service Unavailable".into())
        );
    }

    #[test]
    fn backoff_stays_under_the_exponential_ceiling_and_the_cap() {
        let mut config = AttioConfig::new("t");
        config.backoff_base = Duration::from_millis(200);
        config.backoff_cap = Duration::from_secs(5);
        let client = AttioClient::new(config).expect("client");
        for attempt in 1..=40 {
            let ceiling = (Duration::from_millis(200) * 2u32.saturating_pow(attempt - 1))
                .min(Duration::from_secs(5));
            for _ in 0..20 {
                assert!(client.inner.backoff(attempt) <= ceiling);
            }
        }
    }

    #[test]
    fn urls_encode_segments_and_keep_the_base_path() {
        let mut config = AttioConfig::new("t");
        config.base_url = "https://api.attio.com/v2/".into();
        let client = AttioClient::new(config).expect("client");
        let call = Call {
            method: Method::PUT,
            segments: &["objects", "odd/slug", "records"],
            query: &[("matching_attribute", "email addresses")],
            body: None,
            circuit: "odd/slug",
            kind: Kind::Write,
            retry_transient: true,
        };
        assert_eq!(
            client.inner.url(&call).as_str(),
            "https://api.attio.com/v2/objects/odd%2Fslug/records?matching_attribute=email+addresses"
        );
    }

    #[test]
    fn bad_configuration_is_refused() {
        let mut config = AttioConfig::new("t");
        config.base_url = "not a url".into();
        assert!(matches!(
            AttioClient::new(config),
            Err(AttioError::Config { .. })
        ));
        assert!(matches!(
            AttioClient::new(AttioConfig::new("")),
            Err(AttioError::Config { .. })
        ));
        assert!(matches!(
            AttioClient::new(AttioConfig::new("line\nbreak")),
            Err(AttioError::Config { .. })
        ));
    }
}
