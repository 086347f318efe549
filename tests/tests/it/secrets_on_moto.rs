//! Webhook secrets from AWS Secrets Manager (moto): read, cached per container, rotated.

use std::time::Duration;

use http::StatusCode;
use integration_tests::faults::ManualClock;
use integration_tests::fixtures::{self, body_only_headers, post};
use integration_tests::moto;
use relay_embedded::LocalDb;
use relay_idempotency::SqliteIdempotencyStore;
use relay_ingest::{IngestConfig, IngestService, SecretsManagerSource, VerifierSource};
use relay_queue::SqliteQueue;
use relay_signature::SchemePolicy;

async fn secret_with(client: &aws_sdk_secretsmanager::Client, value: &str) -> String {
    client
        .create_secret()
        .name(moto::unique("attio-relay/test/webhook-secrets"))
        .secret_string(value)
        .send()
        .await
        .expect("create secret")
        .arn
        .expect("arn")
}

fn source(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
    refresh: Duration,
) -> SecretsManagerSource {
    SecretsManagerSource::new(
        client.clone(),
        arn,
        refresh,
        SchemePolicy::AcceptEither,
        300,
        60,
    )
}

fn local_service<V>(
    verifiers: V,
) -> IngestService<SqliteIdempotencyStore, SqliteQueue, V, ManualClock> {
    let db = LocalDb::in_memory().expect("sqlite");
    IngestService::with_clock(
        SqliteIdempotencyStore::new(db.clone()),
        SqliteQueue::new(db, 3),
        verifiers,
        IngestConfig::default(),
        ManualClock::now_real(),
    )
}

#[tokio::test]
async fn a_rotation_reaches_warm_containers_after_the_cache_period() {
    let config = moto::sdk_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let arn = secret_with(&client, r#"{"secrets": ["whsec_old"]}"#).await;
    let body = fixtures::delivery("record-updated");

    let cached = local_service(source(&client, &arn, Duration::from_secs(3600)));
    let fresh = local_service(source(&client, &arn, Duration::ZERO));
    for service_status in [
        cached
            .handle(post(&body_only_headers("whsec_old", &body), &body))
            .await
            .status,
        fresh
            .handle(post(&body_only_headers("whsec_old", &body), &body))
            .await
            .status,
    ] {
        assert_eq!(service_status, StatusCode::OK);
    }

    // `webhooks rotate` stores the new secret beside the old one.
    client
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(r#"{"secrets": ["whsec_new", "whsec_old"]}"#)
        .send()
        .await
        .expect("rotate");

    let new_body = fixtures::delivery("task-created");
    let signed_new = body_only_headers("whsec_new", &new_body);
    assert_eq!(
        cached.handle(post(&signed_new, &new_body)).await.status,
        StatusCode::UNAUTHORIZED,
        "cached secrets are used until the cache period ends"
    );
    assert_eq!(
        fresh.handle(post(&signed_new, &new_body)).await.status,
        StatusCode::OK
    );
    let old_body = fixtures::delivery("task-deleted");
    assert_eq!(
        fresh
            .handle(post(&body_only_headers("whsec_old", &old_body), &old_body))
            .await
            .status,
        StatusCode::OK,
        "the previous secret stays valid during the switch"
    );
}

#[tokio::test]
async fn a_missing_or_empty_secret_is_a_503_not_a_401() {
    let config = moto::sdk_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let body = fixtures::delivery("record-updated");

    let missing = local_service(source(
        &client,
        "attio-relay/does-not-exist",
        Duration::ZERO,
    ));
    let response = missing
        .handle(post(&body_only_headers("x", &body), &body))
        .await;
    fixtures::assert_retry_later(&response);

    let arn = secret_with(&client, r#"{"secrets": []}"#).await;
    let empty = source(&client, &arn, Duration::ZERO);
    let err = empty.verifier().await.expect_err("empty secret list");
    assert!(err.to_string().contains("holds no secrets"), "{err}");
}
