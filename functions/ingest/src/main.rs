//! The ingest Lambda: [`relay_ingest::IngestService`] over DynamoDB, SQS and the configured
//! webhook secrets, answered through the shared HTTP adapter ([`relay_ingest::http::respond`]).
//! Configuration is read once per container.

use std::sync::Arc;

use lambda_http::{Body, Error, Request, service_fn};
use relay_idempotency::DynamoDbStore;
use relay_ingest::http::respond;
use relay_ingest::{IngestService, Settings, WebhookSecrets};
use relay_queue::SqsQueue;

#[tokio::main]
async fn main() -> Result<(), Error> {
    relay_logging::init_json();

    let settings = Settings::from_lookup(|name| std::env::var(name).ok())?;
    let aws = relay_ingest::load_aws_config().await;
    let service = IngestService::new(
        DynamoDbStore::new(
            aws_sdk_dynamodb::Client::new(&aws),
            settings.idempotency_table.clone(),
        ),
        SqsQueue::new(aws_sdk_sqs::Client::new(&aws), settings.queues.clone()),
        WebhookSecrets::from_settings(&settings, || aws_sdk_secretsmanager::Client::new(&aws)),
        settings.ingest,
    );
    // Lambda hands over the whole body (already base64-decoded): every size reaches the handler
    // and its JSON 413.
    let service = Arc::new(service);
    lambda_http::run(service_fn(move |request: Request| {
        let service = Arc::clone(&service);
        async move {
            let response = respond(
                &service,
                request.method(),
                request.headers(),
                request.body(),
            )
            .await;
            Ok::<_, Error>(response.map(Body::from))
        }
    }))
    .await
}
