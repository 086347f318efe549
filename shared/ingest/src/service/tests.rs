//! Every answer of [`IngestService`] over the embedded SQLite adapters, with the store and the
//! queue failing on command: no moto, no network.

use http::{HeaderMap, Method, StatusCode};
use relay_idempotency::{Claim, IdempotencyStore};
use relay_signature::WebhookSecret;
use serde_json::Value;

use crate::testing::{DELIVERY, NOW, TestService, secret, service, signed_headers};
use crate::{IngestConfig, IngestRequest, IngestResponse};

async fn post(service: &TestService, headers: &HeaderMap, body: &[u8]) -> IngestResponse {
    service
        .handle(IngestRequest {
            method: &Method::POST,
            headers,
            body,
        })
        .await
}

fn json(response: &IngestResponse) -> Value {
    serde_json::from_str(&response.body).expect("every answer is JSON")
}

#[tokio::test]
async fn a_signed_delivery_is_queued_on_its_family_queue() {
    let service = service(IngestConfig::default());
    let headers = signed_headers(&secret(), DELIVERY, "k1");

    let answer = post(&service, &headers, DELIVERY).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let body = json(&answer);
    assert_eq!(body["status"], "queued");
    assert_eq!(body["idempotency_key"], "h:k1");
    assert_eq!(body["events"], 1);
    assert_eq!(body["queues"]["records"], 1);
    assert_eq!((answer.retry_after_secs, answer.allow), (None, None));
    assert_eq!(
        service.queue().contents().await,
        [("records".to_owned(), "h:k1".to_owned())]
    );
}

#[tokio::test]
async fn a_repeated_delivery_is_a_duplicate_and_queued_once() {
    let service = service(IngestConfig::default());
    let headers = signed_headers(&secret(), DELIVERY, "k1");
    post(&service, &headers, DELIVERY).await;

    let again = post(&service, &headers, DELIVERY).await;

    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(json(&again)["status"], "duplicate");
    assert_eq!(service.queue().contents().await.len(), 1);
}

#[tokio::test]
async fn a_bad_or_missing_signature_is_401_and_nothing_is_queued() {
    let service = service(IngestConfig::default());
    let forged = signed_headers(&WebhookSecret::new("attacker").unwrap(), DELIVERY, "k1");
    let answer = post(&service, &forged, DELIVERY).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(json(&answer)["error"], "signature_mismatch");

    let answer = post(&service, &HeaderMap::new(), DELIVERY).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(service.queue().contents().await.is_empty());
}

#[tokio::test]
async fn a_signed_body_that_is_not_a_delivery_is_400() {
    let service = service(IngestConfig::default());
    for body in [&b"not json"[..], br#"{"webhook_id":"w","events":[]}"#] {
        let answer = post(&service, &signed_headers(&secret(), body, "k"), body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
        assert!(json(&answer)["message"].is_string());
    }
    assert!(service.queue().contents().await.is_empty());
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_before_it_is_verified() {
    let service = service(IngestConfig {
        max_body_bytes: DELIVERY.len() - 1,
        ..IngestConfig::default()
    });
    let answer = post(&service, &HeaderMap::new(), DELIVERY).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    let body = json(&answer);
    assert_eq!(body["error"], "body_too_large");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains(&DELIVERY.len().to_string())),
        "{body}"
    );
}

#[tokio::test]
async fn only_post_is_accepted() {
    let service = service(IngestConfig::default());
    let headers = signed_headers(&secret(), DELIVERY, "k1");
    let answer = service
        .handle(IngestRequest {
            method: &Method::GET,
            headers: &headers,
            body: DELIVERY,
        })
        .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.allow, Some("POST"));
    assert_eq!(json(&answer)["error"], "method_not_allowed");
}

#[tokio::test]
async fn a_live_claim_elsewhere_is_409_with_its_lease_as_retry_after() {
    let config = IngestConfig::default();
    let service = service(config.clone());
    let delivery = relay_events::Delivery::parse(DELIVERY).unwrap();
    let key = relay_events::IdempotencyKey::for_delivery(Some("k1"), &delivery, None);
    let claim = service
        .store()
        .inner
        .claim(&key, NOW - 10, config.lease, config.retain)
        .await
        .unwrap();
    assert!(matches!(claim, Claim::Acquired(_)));

    let answer = post(
        &service,
        &signed_headers(&secret(), DELIVERY, "k1"),
        DELIVERY,
    )
    .await;

    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);
    assert_eq!(answer.retry_after_secs, Some(config.lease.as_secs() - 10));
    assert!(service.queue().contents().await.is_empty());
}

#[tokio::test]
async fn a_failing_store_is_503_and_nothing_is_queued() {
    let service = service(IngestConfig::default());
    service.store().fail_claim.set(true);

    let answer = post(
        &service,
        &signed_headers(&secret(), DELIVERY, "k1"),
        DELIVERY,
    )
    .await;

    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.retry_after_secs, Some(5));
    assert_eq!(json(&answer)["error"], "unavailable");
    assert!(service.queue().contents().await.is_empty());
}

#[tokio::test]
async fn a_failing_queue_is_503_and_releases_the_key_for_the_retry() {
    let service = service(IngestConfig::default());
    let headers = signed_headers(&secret(), DELIVERY, "k1");
    service.queue().fail.set(true);

    let answer = post(&service, &headers, DELIVERY).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.retry_after_secs, Some(5));
    assert!(service.queue().contents().await.is_empty());

    // Released, not leased: Attio's retry is queued at once rather than answered 409.
    service.queue().fail.set(false);
    let retry = post(&service, &headers, DELIVERY).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.body);
    assert_eq!(json(&retry)["status"], "queued");
    assert_eq!(service.queue().contents().await.len(), 1);
}

#[tokio::test]
async fn queued_events_are_acknowledged_even_if_completing_the_key_fails() {
    let service = service(IngestConfig::default());
    service.store().fail_complete.set(true);

    let answer = post(
        &service,
        &signed_headers(&secret(), DELIVERY, "k1"),
        DELIVERY,
    )
    .await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(json(&answer)["status"], "queued");
    assert_eq!(service.queue().contents().await.len(), 1);
}
