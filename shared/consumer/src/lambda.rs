//! The Lambda wiring every consumer function shares: configuration, AWS clients, secrets, and
//! the SQS event loop. A function's `main.rs` only names its handler.
//!
//! Each invocation runs under its deadline (`deadline.rs`); the API tokens follow their
//! secrets (`secrets.rs`): re-read every `TOKEN_CACHE_SECS` and on a 401.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use relay_attio::{AttioClient, AttioConfig, CachedAttio};
use relay_credentials::{Credential, Token};
use relay_crm::{HubSpotConfig, HubSpotSink};
use relay_mappings::{DynamoDbConflicts, DynamoDbMappings};
use relay_ratelimit::{BudgetSettings, Budgets, DynamoDbBudget};
use relay_sync::{BatchHandler, QueueHandler, SchemaAware, SyncContext};

use crate::secrets::SecretsManagerToken;
use crate::settings::{ConsumerSettings, TokenSource, TwoWayUse};
use crate::{SqsDeadLetters, handle_lambda_event};

/// The context production consumers run with.
pub type AwsContext = SyncContext<HubSpotSink, DynamoDbMappings, CachedAttio>;

/// The token `source` names: inline text is fixed (local runs); a secret is re-read every
/// `ttl` and whenever an API refuses the token, so a rotation reaches warm containers. The
/// reconcile function reads its two tokens the same way.
pub async fn credential(
    source: &TokenSource,
    secrets: &aws_sdk_secretsmanager::Client,
    ttl: Duration,
) -> Result<Credential, Error> {
    match source {
        TokenSource::Inline(token) => Ok(Credential::fixed(Token::parse(token)?)),
        TokenSource::Secret(arn) => {
            let store = SecretsManagerToken::new(secrets.clone(), arn);
            Credential::stored(store, ttl)
                .await
                .map_err(|e| format!("secret {arn}: {e}").into())
        }
    }
}

/// The deployment-wide rate budgets (`relay_ratelimit`), one item per API in the mappings
/// table, unless `RATE_BUDGET=off`. Every consumer and the reconcile function draw from them,
/// so together they stay under Attio's per-workspace and HubSpot's per-portal limits.
pub fn shared_budgets(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Option<Budgets>, Error> {
    let settings = BudgetSettings::from_lookup(|name| std::env::var(name).ok())?;
    let budgets = settings.budgets(Arc::new(DynamoDbBudget::new(dynamodb.clone(), table)));
    match &budgets {
        Some(_) => {
            let [reads, writes, hubspot] = settings.limits();
            tracing::info!(
                attio_reads_per_s = reads.rate_per_s,
                attio_writes_per_s = writes.rate_per_s,
                hubspot_per_s = hubspot.rate_per_s,
                "shared rate budgets"
            );
        }
        None => tracing::warn!("RATE_BUDGET=off: each container paces itself alone"),
    }
    Ok(budgets)
}

/// Runs a consumer function: `make` builds its handler from the shared context. The handler
/// runs inside [`SchemaAware`], so Attio's attribute events invalidate every container's
/// schema cache (through the schema generation in the mappings table).
pub async fn run<H, F>(make: F) -> Result<(), Error>
where
    H: BatchHandler + 'static,
    F: FnOnce(Arc<AwsContext>) -> H,
{
    run_queue(None, |ctx| {
        Ok::<_, Error>(SchemaAware::new(Arc::clone(&ctx), make(ctx)))
    })
    .await
}

/// [`run`] for the records consumer: two-way sync is on when the field mapping sends a
/// property back ([`TwoWayUse::IfMapped`]; then `CONFLICTS_TABLE` is required), off (no
/// ledger reads, nothing changed) otherwise.
pub async fn run_two_way<H, F>(make: F) -> Result<(), Error>
where
    H: BatchHandler + 'static,
    F: FnOnce(Arc<AwsContext>) -> H,
{
    run_queue(Some(TwoWayUse::IfMapped), |ctx| {
        Ok::<_, Error>(SchemaAware::new(Arc::clone(&ctx), make(ctx)))
    })
    .await
}

/// The generic sibling of [`run`]: any [`QueueHandler`] (the `hubspot` queue's included) under
/// the same settings, clients, secrets, budgets, dead letters, holds and deadline; with
/// `two_way`, the context carries the DynamoDB ledger (the mappings table), the conflicts
/// table and HubSpot's read side. Settings are read and validated once, before anything
/// is built, so a missing variable is a startup error naming it; so is a handler `make`
/// refuses to build (the hubspot queue's without two-way stores).
pub async fn run_queue<H, E, F>(two_way: Option<TwoWayUse>, make: F) -> Result<(), Error>
where
    H: QueueHandler + 'static,
    E: Into<Error>,
    F: FnOnce(Arc<AwsContext>) -> Result<H, E>,
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
    let two_way = match two_way {
        Some(usage) => settings.two_way(usage)?,
        None => None,
    };

    let aws = aws_config::load_from_env().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let ttl = settings.token_cache;
    let mut attio_config =
        AttioConfig::new(credential(&settings.attio_token, &secrets, ttl).await?);
    if let Some(url) = &settings.attio_api_url {
        attio_config.base_url = url.clone();
    }
    let mut hubspot_config = HubSpotConfig::new(credential(&hubspot, &secrets, ttl).await?);
    if let Some(url) = &settings.hubspot_api_url {
        hubspot_config.base_url = url.clone();
    }
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    if let Some(budgets) = shared_budgets(&dynamodb, &table)? {
        attio_config.read_budget = Some(budgets.attio_reads);
        attio_config.write_budget = Some(budgets.attio_writes);
        hubspot_config.budget = Some(budgets.hubspot);
    }
    let sink = HubSpotSink::new(hubspot_config)?;
    let mappings = DynamoDbMappings::new(dynamodb.clone(), table);
    let mut ctx = SyncContext::new(
        AttioClient::new(attio_config)?,
        sink.clone(),
        mappings.clone(),
        settings.field_mapping,
    );
    if let Some(wiring) = two_way {
        tracing::info!(conflicts_table = %wiring.conflicts_table, hubspot_app_id = ?wiring.settings.hubspot_app_id, hubspot_deletions = wiring.settings.deletions.as_str(), "two-way sync on");
        let conflicts = DynamoDbConflicts::new(dynamodb, wiring.conflicts_table);
        // The ledger lives in the mappings table (`{object}#{attio id}#synced`), and HubSpot's
        // side is read with the same sink, so both share its budget and token.
        ctx = ctx.with_two_way(mappings, conflicts, sink, wiring.settings);
    }
    let ctx = Arc::new(ctx);
    let handler = Arc::new(make(ctx).map_err(Into::into)?);
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
            // Boxed: the handler's future is deep (every port call nested in it), and inlining
            // it into the runtime's own future type overflows the compiler's query depth.
            let response = Box::pin(handle_lambda_event(
                event,
                now,
                margin,
                &*handler,
                &*dead_letters,
            ));
            Ok::<SqsBatchResponse, Error>(response.await)
        }
    }))
    .await
}
