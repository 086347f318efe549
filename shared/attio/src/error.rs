//! Every way an Attio call can fail, classified for the consumer's retry-or-dead-letter choice.

use std::time::{Duration, SystemTime};

/// Attio's error code for a write that raced another one; Attio asks callers to retry it.
pub(crate) const CONCURRENT_WRITE_CONFLICT: &str = "concurrent_write_conflict";

/// Attio's code on a 404 for something that does not exist (any more): the body is
/// `{"status_code": 404, "type": "invalid_request_error", "code": "not_found", "message":
/// "Record with ID \"…\" not found."}`.
pub const NOT_FOUND_CODE: &str = "not_found";

/// Attio's code on a 404 for the new record of a merge that is still being applied (the merge
/// endpoint answered 202): the record exists soon, so this is transient
/// (https://docs.attio.com/rest-api/endpoint-reference/records/merge-two-records).
pub const MERGE_IN_PROGRESS_CODE: &str = "merge_in_progress";

#[derive(Debug, thiserror::Error)]
pub enum AttioError {
    /// A 404 answer: `code` is Attio's error code when the body is Attio's error JSON, `None` when it
    /// is not (a proxy's or load balancer's 404 page). Only some 404s mean "deleted": ask
    /// [`AttioError::is_record_gone`], never match this variant for that.
    #[error("Attio has nothing at {path}: {message}{}", code_suffix(code))]
    NotFound {
        path: String,
        code: Option<String>,
        message: String,
    },
    /// Any other error status, decoded from Attio's `{status_code, type, code, message}`.
    #[error("Attio answered {status} to {path}: {message}{}", code_suffix(code))]
    Api {
        status: u16,
        code: Option<String>,
        message: String,
        path: String,
    },
    /// 429 (or the local pacer) asked for a wait longer than the call's remaining budget.
    #[error("Attio rate-limited {path}: retry in {} ms", retry_after.as_millis())]
    RateLimited { retry_after: Duration, path: String },
    /// Connecting, sending or reading the response failed.
    #[error("calling Attio {path} failed: {}", causes(source))]
    Transport {
        path: String,
        #[source]
        source: reqwest::Error,
    },
    /// One attempt took longer than the request timeout (or the rest of the budget).
    #[error("Attio did not answer {path} in time")]
    Timeout { path: String },
    /// A 2xx whose body is not the shape this crate expects.
    #[error("unexpected response body from Attio {path}: {source}")]
    Decode {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// Retries ran out of attempts or time; `last` is the final failure.
    #[error("gave up on Attio {path} after {attempts} attempt(s): {last}")]
    BudgetExhausted {
        path: String,
        attempts: u32,
        last: Box<AttioError>,
    },
    /// Calls for `object` failed repeatedly; they fail fast until `until`.
    #[error(
        "Attio calls for {object} are paused after repeated failures, until {}",
        httpdate::fmt_http_date(*until)
    )]
    CircuitOpen { object: String, until: SystemTime },
    /// The client could not be built from its configuration.
    #[error("invalid Attio client configuration: {reason}")]
    Config { reason: String },
}

/// The error and its causes: reqwest's own message omits the cause ("connection refused").
fn causes(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn code_suffix(code: &Option<String>) -> String {
    code.as_deref()
        .map(|c| format!(" ({c})"))
        .unwrap_or_default()
}

impl AttioError {
    /// A 404 as Attio answers it, with its code (tests and adapters build these).
    pub fn not_found(path: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        Self::NotFound {
            path: path.into(),
            code: Some(code.to_owned()),
            message: message.into(),
        }
    }

    /// True only for Attio's documented not-found of the thing asked for — a record, note or
    /// task that was deleted or merged away: code `not_found`, in Attio's error body. Its CRM
    /// copy may be archived. Not for a 404 without Attio's body (a proxy's page, a wrong base
    /// URL), not for `merge_in_progress` (the record is being made), and not when the object
    /// or list in the path is what Attio does not know (a stale slug): archiving live data on
    /// any of those would lose it.
    pub fn is_record_gone(&self) -> bool {
        match self {
            Self::NotFound {
                code: Some(code),
                message,
                ..
            } => code == NOT_FOUND_CODE && !names_a_container(message),
            _ => false,
        }
    }

    /// True for the 404 Attio answers while a merge is applied to its new record.
    pub fn is_merge_in_progress(&self) -> bool {
        matches!(self, Self::NotFound { code: Some(code), .. } if code == MERGE_IN_PROGRESS_CODE)
    }

    /// True when retrying the same call cannot succeed: Attio's documented 404s and other 4xx
    /// (except 408, 429 and Attio's write-conflict 409), undecodable bodies and bad
    /// configuration. Everything else — 5xx, timeouts, transport errors, rate limits, open
    /// circuits, exhausted budgets, `merge_in_progress`, a 404 that is not Attio's error body
    /// — is transient: hand the message back to the queue.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::NotFound { code, .. } => {
                code.as_deref().is_some_and(|c| c != MERGE_IN_PROGRESS_CODE)
            }
            Self::Decode { .. } | Self::Config { .. } => true,
            Self::Api { status, code, .. } => !is_transient_status(*status, code.as_deref()),
            Self::RateLimited { .. }
            | Self::Transport { .. }
            | Self::Timeout { .. }
            | Self::BudgetExhausted { .. }
            | Self::CircuitOpen { .. } => false,
        }
    }

    /// How long to wait before trying again, when Attio or the breaker said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            Self::CircuitOpen { until, .. } => Some(
                until
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO),
            ),
            Self::BudgetExhausted { last, .. } => last.retry_after(),
            _ => None,
        }
    }
}

/// Whether a not-found message is about the object or list in the path rather than the record,
/// note or task asked for: Attio names what is missing first ("Object with slug/ID \"x\" not
/// found.", "Record with ID \"y\" not found.").
fn names_a_container(message: &str) -> bool {
    let lower = message.trim_start().to_ascii_lowercase();
    ["object ", "list ", "workspace "]
        .iter()
        .any(|p| lower.starts_with(p))
}

/// Statuses worth retrying: 5xx, 408, 429, and Attio's concurrent write conflict.
pub(crate) fn is_transient_status(status: u16, code: Option<&str>) -> bool {
    status >= 500
        || status == 408
        || status == 429
        || (status == 409 && code == Some(CONCURRENT_WRITE_CONFLICT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: Option<&str>) -> AttioError {
        AttioError::Api {
            status,
            code: code.map(str::to_owned),
            message: "m".into(),
            path: "/p".into(),
        }
    }

    #[test]
    fn four_hundreds_are_permanent_except_timeouts_limits_and_write_conflicts() {
        assert!(api(400, Some("filter_error")).is_permanent());
        assert!(api(401, None).is_permanent());
        assert!(api(403, None).is_permanent());
        assert!(api(409, Some("uniqueness_conflict")).is_permanent());
        assert!(api(422, None).is_permanent());
        assert!(!api(408, None).is_permanent());
        assert!(!api(429, None).is_permanent());
        assert!(!api(409, Some(CONCURRENT_WRITE_CONFLICT)).is_permanent());
        assert!(!api(500, None).is_permanent());
        assert!(!api(503, None).is_permanent());
        let not_found = AttioError::not_found("/notes/n", NOT_FOUND_CODE, "gone");
        assert!(not_found.is_permanent());
    }

    #[test]
    fn only_attios_not_found_for_the_record_itself_means_gone() {
        let record = AttioError::not_found(
            "/objects/people/records/r",
            NOT_FOUND_CODE,
            "Record with ID \"r\" not found.",
        );
        assert!(record.is_record_gone() && record.is_permanent());

        let merging = AttioError::not_found(
            "/objects/people/records/r",
            MERGE_IN_PROGRESS_CODE,
            "Record is being merged.",
        );
        assert!(!merging.is_record_gone());
        assert!(merging.is_merge_in_progress());
        assert!(!merging.is_permanent(), "a running merge is waited out");

        let proxy = AttioError::NotFound {
            path: "/objects/people/records/r".into(),
            code: None,
            message: "<html><body>404 Not Found</body></html>".into(),
        };
        assert!(!proxy.is_record_gone());
        assert!(!proxy.is_permanent(), "a proxy's 404 is retried");

        let stale_slug = AttioError::not_found(
            "/objects/humans/records/r",
            NOT_FOUND_CODE,
            "Object with slug/ID \"humans\" not found.",
        );
        assert!(!stale_slug.is_record_gone());
        assert!(
            stale_slug.is_permanent(),
            "an unknown object cannot succeed on retry"
        );
    }

    #[test]
    fn exhausted_budgets_and_open_circuits_are_transient_and_say_when_to_retry() {
        let exhausted = AttioError::BudgetExhausted {
            path: "/p".into(),
            attempts: 3,
            last: Box::new(AttioError::RateLimited {
                retry_after: Duration::from_secs(7),
                path: "/p".into(),
            }),
        };
        assert!(!exhausted.is_permanent());
        assert_eq!(exhausted.retry_after(), Some(Duration::from_secs(7)));
        assert!(exhausted.to_string().contains("after 3 attempt(s)"));

        let open = AttioError::CircuitOpen {
            object: "people".into(),
            until: SystemTime::now() + Duration::from_secs(30),
        };
        assert!(!open.is_permanent());
        let wait = open.retry_after().unwrap_or_default();
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30));
    }

    #[test]
    fn api_errors_show_the_code() {
        let shown = api(400, Some("filter_error")).to_string();
        assert_eq!(shown, "Attio answered 400 to /p: m (filter_error)");
    }
}
