//! The ingest Lambda: adapts Function URL / HTTP API requests to [`relay_ingest::IngestService`]
//! over DynamoDB, SQS and Secrets Manager. Configuration is read once per container.

use std::sync::Arc;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use lambda_http::{Body, Error, Request, Response, service_fn};
use relay_idempotency::DynamoDbStore;
use relay_ingest::{
    IngestRequest, IngestService, SecretsConfig, SecretsManagerSource, Settings, StaticSecrets,
};
use relay_queue::{QueueUrls, SqsQueue};
use relay_signature::Verifier;

/// One AWS call may not take longer than this, so a slow dependency becomes a 503 that Attio
/// retries well within the function timeout and the idempotency lease.
const AWS_CALL_TIMEOUT: Duration = Duration::from_secs(3);

#[tokio::main]
async fn main() -> Result<(), Error> {
    relay_logging::init_json();

    let settings = Settings::from_lookup(|name| std::env::var(name).ok())?;
    let table = std::env::var("IDEMPOTENCY_TABLE")
        .map_err(|_| "IDEMPOTENCY_TABLE is required: the DynamoDB idempotency table name")?;
    let urls = QueueUrls::from_lookup(|name| std::env::var(name).ok())?;

    let aws = aws_config::from_env()
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(AWS_CALL_TIMEOUT)
                .operation_timeout(AWS_CALL_TIMEOUT * 2)
                .build(),
        )
        .load()
        .await;
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&aws), table);
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&aws), urls);

    match settings.secrets.clone() {
        SecretsConfig::Inline(secrets) => {
            let verifier = Verifier::new(secrets, settings.policy)
                .with_tolerance_secs(settings.tolerance_secs)
                .with_future_skew_secs(settings.future_skew_secs);
            let service =
                IngestService::new(store, queue, StaticSecrets::new(verifier), settings.ingest);
            serve(Arc::new(service)).await
        }
        SecretsConfig::SecretsManager { secret_id, refresh } => {
            let source = SecretsManagerSource::new(
                aws_sdk_secretsmanager::Client::new(&aws),
                secret_id,
                refresh,
                settings.policy,
                settings.tolerance_secs,
                settings.future_skew_secs,
            );
            let service = IngestService::new(store, queue, source, settings.ingest);
            serve(Arc::new(service)).await
        }
    }
}

async fn serve<V>(service: Arc<IngestService<DynamoDbStore, SqsQueue, V>>) -> Result<(), Error>
where
    V: relay_ingest::VerifierSource + 'static,
{
    lambda_http::run(service_fn(move |request: Request| {
        let service = Arc::clone(&service);
        async move { handle(&service, request).await }
    }))
    .await
}

async fn handle<V>(
    service: &IngestService<DynamoDbStore, SqsQueue, V>,
    request: Request,
) -> Result<Response<Body>, Error>
where
    V: relay_ingest::VerifierSource,
{
    let answer = service
        .handle(IngestRequest {
            method: request.method(),
            headers: request.headers(),
            body: request.body().as_ref(),
        })
        .await;
    let mut response = Response::builder()
        .status(answer.status)
        .header("content-type", "application/json");
    if let Some(secs) = answer.retry_after_secs {
        response = response.header("retry-after", secs);
    }
    if let Some(allow) = answer.allow {
        response = response.header("allow", allow);
    }
    Ok(response.body(Body::from(answer.body))?)
}
