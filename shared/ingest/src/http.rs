//! The one HTTP adapter for [`IngestService`]: an axum [`Router`] that answers every path with
//! the ingest handler.
//!
//! The Lambda serves it through `lambda_http::run(router)`; the dev server and the load tool
//! serve it on a socket with `axum::serve`, merged with their own routes. So the mapping of an
//! [`IngestResponse`] to status, JSON body, `content-type`, `retry-after` and `allow` exists
//! once, and every transport answers byte for byte alike.
//!
//! Only the body limit differs by transport ([`Transport`]): Lambda has the whole body in memory
//! before the function runs, while a socket server must not read an arbitrarily large body to
//! then refuse it.
//!
//! Why axum in the Lambda rather than one plain function over `http` types: the router costs
//! the release `ingest` binary 87,560 bytes (7,238,168 → 7,325,728, shipped profile, x86_64),
//! and gives the Lambda and the socket servers literally the same service, tested in-crate with
//! `tower::ServiceExt::oneshot`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use relay_idempotency::IdempotencyStore;
use relay_queue::EventQueue;

use crate::{Clock, IngestRequest, IngestResponse, IngestService, VerifierSource};

/// How the request body reaches the router, which decides who refuses an oversized body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The platform buffered the whole body before the handler runs (Lambda, at most 6 MB):
    /// reading it costs nothing more, so every size reaches the handler and gets its JSON 413.
    Buffered,
    /// A socket (the dev server, the load tool). Bodies up to [`SOCKET_BODY_FACTOR`] times
    /// `MAX_BODY_BYTES` still reach the handler and get its JSON 413; larger ones are refused by
    /// axum with a plain 413 before they are read into memory.
    Socket,
}

/// How many times `MAX_BODY_BYTES` a socket transport reads before refusing on its own.
pub const SOCKET_BODY_FACTOR: usize = 4;

/// The ingest routes: any method on any path is a delivery for [`IngestService::handle`].
///
/// Callers add their own routes (the dev server's `/healthz` and dashboard) with
/// [`Router::route`] or [`Router::merge`]; the ingest handler stays the fallback.
pub fn router<S, Q, V, C>(service: Arc<IngestService<S, Q, V, C>>, transport: Transport) -> Router
where
    S: IdempotencyStore + 'static,
    Q: EventQueue + 'static,
    V: VerifierSource + 'static,
    C: Clock + 'static,
{
    let limit = match transport {
        Transport::Buffered => DefaultBodyLimit::disable(),
        Transport::Socket => DefaultBodyLimit::max(
            service
                .config()
                .max_body_bytes
                .saturating_mul(SOCKET_BODY_FACTOR),
        ),
    };
    Router::new()
        .fallback(any(ingest::<S, Q, V, C>))
        .layer(limit)
        .with_state(service)
}

async fn ingest<S, Q, V, C>(
    State(service): State<Arc<IngestService<S, Q, V, C>>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response
where
    S: IdempotencyStore,
    Q: EventQueue,
    V: VerifierSource,
    C: Clock,
{
    service
        .handle(IngestRequest {
            method: &method,
            headers: &headers,
            body: &body,
        })
        .await
        .into_response()
}

impl IntoResponse for IngestResponse {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body,
        )
            .into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, secs.into());
        }
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use crate::IngestConfig;
    use crate::testing::{DELIVERY, TestService, secret, service, signed_headers};

    /// Sends one request through the router, without a socket; status, headers and body.
    async fn call(
        router: Router,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> (StatusCode, HeaderMap, String) {
        let mut request = Request::builder().method(method).uri(path);
        *request.headers_mut().expect("builder") = headers;
        let response = router
            .oneshot(request.body(Body::from(body)).expect("request"))
            .await
            .expect("infallible");
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.expect("body");
        (
            parts.status,
            parts.headers,
            String::from_utf8(bytes.to_vec()).expect("utf8"),
        )
    }

    fn app(service: TestService, transport: Transport) -> Router {
        router(Arc::new(service), transport)
    }

    #[tokio::test]
    async fn a_delivery_on_any_path_gets_the_service_answer_as_json() {
        let headers = signed_headers(&secret(), DELIVERY, "k1");
        for path in ["/", "/lambda-url/ingest/", "/webhooks/attio"] {
            let (status, got, body) = call(
                app(service(IngestConfig::default()), Transport::Buffered),
                Method::POST,
                path,
                headers.clone(),
                DELIVERY.to_vec(),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            assert_eq!(got[header::CONTENT_TYPE], "application/json");
            assert!(got.get(header::RETRY_AFTER).is_none());
            let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            assert_eq!(json["status"], "queued", "{path}");
        }
    }

    #[tokio::test]
    async fn every_answer_header_is_mapped() {
        // 405 carries Allow.
        let (status, headers, body) = call(
            app(service(IngestConfig::default()), Transport::Socket),
            Method::GET,
            "/",
            HeaderMap::new(),
            Vec::new(),
        )
        .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[header::ALLOW], "POST");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert!(body.contains("method_not_allowed"), "{body}");

        // 503 carries Retry-After, and the body the service wrote.
        let failing = service(IngestConfig::default());
        failing.queue().fail.set(true);
        let expected = {
            let shadow = service(IngestConfig::default());
            shadow.queue().fail.set(true);
            shadow
                .handle(crate::IngestRequest {
                    method: &Method::POST,
                    headers: &signed_headers(&secret(), DELIVERY, "k1"),
                    body: DELIVERY,
                })
                .await
        };
        let (status, headers, body) = call(
            app(failing, Transport::Socket),
            Method::POST,
            "/",
            signed_headers(&secret(), DELIVERY, "k1"),
            DELIVERY.to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::RETRY_AFTER], "5");
        assert!(headers.get(header::ALLOW).is_none());
        assert_eq!(body, expected.body);
    }

    #[tokio::test]
    async fn a_socket_reads_a_little_over_the_limit_and_answers_the_json_413() {
        let limit = 64;
        let config = IngestConfig {
            max_body_bytes: limit,
            ..IngestConfig::default()
        };
        let (status, headers, body) = call(
            app(service(config.clone()), Transport::Socket),
            Method::POST,
            "/",
            HeaderMap::new(),
            vec![b'x'; limit * SOCKET_BODY_FACTOR],
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert!(body.contains("body_too_large"), "{body}");

        // Beyond that, axum refuses it without reading it: still 413, not the handler's JSON.
        let (status, _, body) = call(
            app(service(config), Transport::Socket),
            Method::POST,
            "/",
            HeaderMap::new(),
            vec![b'x'; limit * SOCKET_BODY_FACTOR + 1],
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(!body.contains("body_too_large"), "{body}");
    }

    #[tokio::test]
    async fn a_buffered_body_of_any_size_gets_the_json_413() {
        let config = IngestConfig {
            max_body_bytes: 64,
            ..IngestConfig::default()
        };
        // Larger than both the socket allowance and axum's own 2 MB default.
        let size = 3 * 1024 * 1024;
        let (status, headers, body) = call(
            app(service(config), Transport::Buffered),
            Method::POST,
            "/",
            HeaderMap::new(),
            vec![b'x'; size],
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert!(body.contains(&format!("body is {size} bytes")), "{body}");
    }
}
