//! The ingest routes for socket servers (the dev server, the load tool): axum over [`respond`].

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use relay_idempotency::IdempotencyStore;
use relay_queue::EventQueue;

use super::respond;
use crate::{Clock, IngestService, VerifierSource};

/// How the request body reaches the router, which decides who refuses an oversized body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The whole body is in memory before the handler runs (as in Lambda): every size reaches
    /// the handler and gets its JSON 413.
    Buffered,
    /// A socket. Bodies up to [`SOCKET_BODY_FACTOR`] times `MAX_BODY_BYTES` still reach the
    /// handler and get its JSON 413; larger ones are refused by axum with a plain 413 before
    /// they are read into memory.
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
    respond(&service, &method, &headers, &body)
        .await
        .map(Body::from)
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::header;
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
