//! The HubSpot ingest Lambda: [`relay_ingest::hubspot::HubSpotIngest`] over DynamoDB, SQS and
//! the HubSpot app secrets, answered through the shared HTTP mapping. Configuration is read once
//! per container.

use std::sync::Arc;

use lambda_http::{Body, Error, Request, service_fn};
use relay_idempotency::DynamoDbStore;
use relay_ingest::hubspot::{
    HubSpotIngest, HubSpotIngestRequest, HubSpotSecrets, HubSpotSettings, respond,
};
use relay_queue::SqsQueue;

#[tokio::main]
async fn main() -> Result<(), Error> {
    relay_logging::init_json();

    let settings = HubSpotSettings::from_lookup(|name| std::env::var(name).ok())?;
    let aws = relay_ingest::load_aws_config().await;
    let service = HubSpotIngest::new(
        DynamoDbStore::new(
            aws_sdk_dynamodb::Client::new(&aws),
            settings.idempotency_table.clone(),
        ),
        SqsQueue::new(aws_sdk_sqs::Client::new(&aws), settings.queues.clone()),
        HubSpotSecrets::from_settings(&settings, || aws_sdk_secretsmanager::Client::new(&aws)),
        settings.ingest.clone(),
    )
    .with_target_url(settings.target_url.clone());
    let service = Arc::new(service);
    lambda_http::run(service_fn(move |request: Request| {
        let service = Arc::clone(&service);
        async move {
            // lambda_http rebuilds the URL HubSpot called: https (or X-Forwarded-Proto), the
            // Host header, the raw path and the raw query string: what the v3 signature covers.
            let uri = request.uri().to_string();
            let response = respond(
                &service,
                HubSpotIngestRequest {
                    method: request.method(),
                    uri: &uri,
                    headers: request.headers(),
                    body: request.body(),
                },
            )
            .await;
            Ok::<_, Error>(response.map(Body::from))
        }
    }))
    .await
}
