//! What ingest answers, in one place: each outcome's status code and JSON body.

use std::collections::BTreeMap;

use http::StatusCode;
use serde::Serialize;

/// A request refused for its content: a 4xx, nothing queued, Attio's retries will fail alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    MethodNotAllowed,
    TooLarge { bytes: usize, limit: usize },
    Signature(relay_signature::VerifyError),
    Body(relay_events::ParseError),
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every event is on its queue.
    Queued {
        key: String,
        events: usize,
        queues: BTreeMap<&'static str, usize>,
    },
    /// This delivery was queued before.
    Duplicate {
        key: String,
    },
    /// Another invocation holds the key; retry after the lease.
    InProgress {
        key: String,
        retry_after_secs: u64,
    },
    Rejected(Rejection),
    /// Something we depend on failed; nothing is marked done, so Attio's retry is safe.
    Unavailable {
        reason: &'static str,
    },
}

/// An HTTP answer for any transport to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestResponse {
    pub status: StatusCode,
    /// `Retry-After` in seconds, on 409 and 503.
    pub retry_after_secs: Option<u64>,
    /// `Allow`, on 405.
    pub allow: Option<&'static str>,
    pub body: String,
}

#[derive(Serialize)]
struct Accepted<'a> {
    status: &'a str,
    idempotency_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queues: Option<&'a BTreeMap<&'static str, usize>>,
}

#[derive(Serialize)]
struct Refused<'a> {
    error: &'a str,
    message: String,
}

impl Rejection {
    pub fn code(&self) -> &'static str {
        match self {
            Self::MethodNotAllowed => "method_not_allowed",
            Self::TooLarge { .. } => "body_too_large",
            Self::Signature(e) => e.code(),
            Self::Body(e) => e.code(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Signature(_) => StatusCode::UNAUTHORIZED,
            Self::Body(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::MethodNotAllowed => "webhooks must be sent with POST".into(),
            Self::TooLarge { bytes, limit } => {
                format!("body is {bytes} bytes; the limit is {limit} (MAX_BODY_BYTES)")
            }
            Self::Signature(e) => e.to_string(),
            Self::Body(e) => e.to_string(),
        }
    }
}

fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned())
}

impl Outcome {
    /// A short word for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Queued { .. } => "queued",
            Self::Duplicate { .. } => "duplicate",
            Self::InProgress { .. } => "in_progress",
            Self::Rejected(_) => "rejected",
            Self::Unavailable { .. } => "unavailable",
        }
    }

    pub fn to_response(&self) -> IngestResponse {
        let plain = |status, body| IngestResponse {
            status,
            retry_after_secs: None,
            allow: None,
            body,
        };
        match self {
            Self::Queued {
                key,
                events,
                queues,
            } => plain(
                StatusCode::OK,
                json(&Accepted {
                    status: "queued",
                    idempotency_key: key,
                    events: Some(*events),
                    queues: Some(queues),
                }),
            ),
            Self::Duplicate { key } => plain(
                StatusCode::OK,
                json(&Accepted {
                    status: "duplicate",
                    idempotency_key: key,
                    events: None,
                    queues: None,
                }),
            ),
            Self::InProgress {
                key,
                retry_after_secs,
            } => IngestResponse {
                retry_after_secs: Some(*retry_after_secs),
                ..plain(
                    StatusCode::CONFLICT,
                    json(&Refused {
                        error: "in_progress",
                        message: format!(
                            "delivery {key} is being processed by another request; retry after {retry_after_secs}s"
                        ),
                    }),
                )
            },
            Self::Rejected(rejection) => IngestResponse {
                allow: matches!(rejection, Rejection::MethodNotAllowed).then_some("POST"),
                ..plain(
                    rejection.status(),
                    json(&Refused {
                        error: rejection.code(),
                        message: rejection.message(),
                    }),
                )
            },
            Self::Unavailable { reason } => IngestResponse {
                retry_after_secs: Some(5),
                ..plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json(&Refused {
                        error: "unavailable",
                        message: format!("{reason}; nothing was recorded, retry the delivery"),
                    }),
                )
            },
        }
    }
}
