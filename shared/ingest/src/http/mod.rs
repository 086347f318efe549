//! The one HTTP adapter for [`IngestService`]: [`respond`] turns a request's method, headers
//! and raw body into the `http::Response` every transport sends, so the mapping of an
//! [`IngestResponse`] to status, JSON body, `content-type`, `retry-after` and `allow` exists once.
//!
//! * The Lambda calls [`respond`] from `lambda_http::run(service_fn(..))`: the platform hands
//!   over the whole body, so every size reaches the handler and gets its JSON 413.
//! * The dev server and the load tool serve [`router`] (feature `axum`) on a socket, merged with
//!   their own routes; it calls the same [`respond`]. Only the body limit differs
//!   ([`Transport`]): a socket server must not read an arbitrarily large body to then refuse it.
//!
//! Why the Lambda does not serve the axum router too: it would cost the release `ingest` binary
//! 87,560 bytes (7,238,168 → 7,325,728, shipped profile, x86_64) for no difference in answers;
//! the router stays out of the Lambda's dependency graph behind the `axum` feature.

use http::{HeaderMap, HeaderValue, Method, Response, header};
use relay_idempotency::IdempotencyStore;
use relay_queue::EventQueue;

use crate::{Clock, IngestRequest, IngestResponse, IngestService, VerifierSource};

#[cfg(any(test, feature = "axum"))]
mod router;
#[cfg(any(test, feature = "axum"))]
pub use router::{SOCKET_BODY_FACTOR, Transport, router};

/// Handles one request and answers it as HTTP: the body is the service's JSON.
pub async fn respond<S, Q, V, C>(
    service: &IngestService<S, Q, V, C>,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Response<String>
where
    S: IdempotencyStore,
    Q: EventQueue,
    V: VerifierSource,
    C: Clock,
{
    to_http(
        service
            .handle(IngestRequest {
                method,
                headers,
                body,
            })
            .await,
    )
}

/// The one mapping of an [`IngestResponse`] to HTTP.
pub fn to_http(answer: IngestResponse) -> Response<String> {
    let mut response = Response::new(answer.body);
    *response.status_mut() = answer.status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(secs) = answer.retry_after_secs {
        headers.insert(header::RETRY_AFTER, secs.into());
    }
    if let Some(allow) = answer.allow {
        headers.insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IngestConfig;
    use crate::testing::{DELIVERY, secret, service, signed_headers};
    use http::StatusCode;

    #[tokio::test]
    async fn the_lambda_path_answers_like_the_router() {
        let answer = respond(
            &service(IngestConfig::default()),
            &Method::POST,
            &signed_headers(&secret(), DELIVERY, "k1"),
            DELIVERY,
        )
        .await;
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/json");
        let json: serde_json::Value = serde_json::from_str(answer.body()).expect("JSON");
        assert_eq!(json["status"], "queued");
    }

    #[tokio::test]
    async fn a_whole_body_of_any_size_gets_the_json_413() {
        let config = IngestConfig {
            max_body_bytes: 64,
            ..IngestConfig::default()
        };
        let size = 3 * 1024 * 1024;
        let answer = respond(
            &service(config),
            &Method::POST,
            &HeaderMap::new(),
            &vec![b'x'; size],
        )
        .await;
        assert_eq!(answer.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/json");
        assert!(answer.body().contains(&format!("body is {size} bytes")));
    }
}
