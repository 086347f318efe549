//! The Lambda wiring every consumer function shares: configuration, AWS clients, secrets, and
//! the SQS event loop. A function's `main.rs` only names its handler.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use relay_attio::{AttioClient, AttioConfig, CachedAttio};
use relay_crm::{HubSpotConfig, HubSpotSink};
use relay_mappings::DynamoDbMappings;
use relay_sync::{BatchHandler, SyncContext};

use crate::settings::{ConsumerSettings, TokenSource};
use crate::{SqsDeadLetters, handle_lambda_event};

/// The context production consumers run with.
pub type AwsContext = SyncContext<HubSpotSink, DynamoDbMappings, CachedAttio>;

async fn resolve(
    source: &TokenSource,
    secrets: &aws_sdk_secretsmanager::Client,
) -> Result<String, Error> {
    match source {
        TokenSource::Inline(token) => Ok(token.clone()),
        TokenSource::Secret(arn) => {
            let out = secrets
                .get_secret_value()
                .secret_id(arn)
                .send()
                .await
                .map_err(|e| format!("cannot read secret {arn}: {}", e.into_service_error()))?;
            out.secret_string()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("secret {arn} is empty: store the token in it").into())
        }
    }
}

/// Runs a consumer function: `make` builds its handler from the shared context.
pub async fn run<H, F>(make: F) -> Result<(), Error>
where
    H: BatchHandler + 'static,
    F: FnOnce(Arc<AwsContext>) -> H,
{
    relay_logging::init_json();
    let settings = ConsumerSettings::from_lookup(|name| std::env::var(name).ok())?;
    let table = settings.mappings_table.clone().ok_or(
        "MAPPINGS_TABLE is required: the DynamoDB table of Attio id -> HubSpot id mappings",
    )?;
    let dlq = settings
        .dead_letter_queue_url
        .clone()
        .ok_or("DEAD_LETTER_QUEUE_URL is required: where messages that cannot succeed are sent")?;
    let hubspot = settings
        .hubspot_token
        .clone()
        .ok_or("HUBSPOT_TOKEN_SECRET_ARN (or HUBSPOT_TOKEN) is required in Lambda")?;

    let aws = aws_config::load_from_env().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let mut attio_config = AttioConfig::new(resolve(&settings.attio_token, &secrets).await?);
    if let Some(url) = &settings.attio_api_url {
        attio_config.base_url = url.clone();
    }
    let mut hubspot_config = HubSpotConfig::new(resolve(&hubspot, &secrets).await?);
    if let Some(url) = &settings.hubspot_api_url {
        hubspot_config.base_url = url.clone();
    }
    let ctx = Arc::new(SyncContext::new(
        AttioClient::new(attio_config)?,
        HubSpotSink::new(hubspot_config)?,
        DynamoDbMappings::new(aws_sdk_dynamodb::Client::new(&aws), table),
        settings.field_mapping,
    ));
    let handler = Arc::new(make(ctx));
    let mut dead_letters = SqsDeadLetters::new(aws_sdk_sqs::Client::new(&aws), dlq);
    match &settings.source_queue_url {
        Some(url) => dead_letters = dead_letters.with_source_queue(url),
        None => tracing::warn!(
            "SOURCE_QUEUE_URL is not set: messages the CRM refuses the token for are retried after the visibility timeout instead of held"
        ),
    }
    let dead_letters = Arc::new(dead_letters);
    let margin = settings.deadline_margin;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (handler, dead_letters) = (Arc::clone(&handler), Arc::clone(&dead_letters));
        async move {
            let now = std::time::SystemTime::now();
            Ok::<SqsBatchResponse, Error>(
                handle_lambda_event(event, now, margin, &*handler, &*dead_letters).await,
            )
        }
    }))
    .await
}
