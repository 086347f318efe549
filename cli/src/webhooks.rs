//! `attio-relay webhooks create|list|delete|rotate`: register the Attio webhook and keep its
//! signing secret where the ingest function reads it.
//!
//! Attio returns a webhook's secret once, in the create response only, so it is stored in
//! Secrets Manager immediately; should that fail, it is printed so it is not lost. Rotation
//! registers a second webhook and stores its secret beside the old one (ingest accepts both),
//! so the old webhook can be deleted once the new one delivers.

use std::path::PathBuf;

use anyhow::{Context, bail};
use relay_attio::{AttioClient, AttioConfig, AttioError, Subscription, Webhook};
use serde::Deserialize;

#[derive(Debug, clap::Args)]
pub struct WebhooksArgs {
    #[command(subcommand)]
    pub command: WebhooksCommand,
    /// Attio API token with the webhook:read-write scope.
    #[arg(long, global = true, env = "ATTIO_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Attio API root.
    #[arg(long, global = true, env = "ATTIO_API_URL", default_value = relay_attio::DEFAULT_BASE_URL)]
    pub api_url: String,
    /// Endpoint for Secrets Manager (an emulator); credentials and region come from the AWS environment.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct Target {
    /// Where Attio sends deliveries: the stack's IngestFunctionUrl output.
    #[arg(long)]
    pub target_url: String,
    /// Subscribe to this event type (repeatable; default: every record, list-entry, note and
    /// task event).
    #[arg(long = "event-type")]
    pub event_types: Vec<String>,
    /// Subscriptions with filters, from a TOML file of [[subscriptions]] tables
    /// (event_type = "...", filter = { "$and" = [{ field = "id.list_id", operator = "equals", value = "..." }] }).
    #[arg(long, conflicts_with = "event_types")]
    pub subscriptions: Option<PathBuf>,
    /// Secrets Manager secret to add the new signing secret to (e.g. attio-relay/prod/webhook-secrets).
    #[arg(long, required_unless_present = "print_secret")]
    pub store_secret: Option<String>,
    /// Print the signing secret instead of storing it (local runs: pass it to `dev --secrets`).
    #[arg(long)]
    pub print_secret: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum WebhooksCommand {
    /// Register a webhook and store its signing secret.
    Create(Target),
    /// List every webhook of the workspace (all pages) with its state: active, degraded
    /// (deliveries failing, still retried) or inactive (Attio stopped sending).
    List,
    /// Delete a webhook.
    Delete { webhook_id: String },
    /// Register a replacement webhook and store its secret beside the current one; delete the
    /// old webhook (`webhooks delete`) once the new one delivers.
    Rotate {
        #[command(flatten)]
        target: Target,
        /// The webhook being replaced: its subscriptions are copied unless given.
        #[arg(long)]
        replaces: Option<String>,
    },
}

/// Every event the consumers handle. The attribute events keep every consumer's cached Attio
/// schema fresh (`relay_sync::SchemaAware`); without them the cache's TTL is the only refresh.
const DEFAULT_EVENT_TYPES: &[&str] = &[
    "record.created",
    "record.updated",
    "record.deleted",
    "record.merged",
    "list-entry.created",
    "list-entry.updated",
    "list-entry.deleted",
    "note.created",
    "note.updated",
    "note-content.updated",
    "note.deleted",
    "task.created",
    "task.updated",
    "task.deleted",
    "object-attribute.created",
    "object-attribute.updated",
    "list-attribute.created",
    "list-attribute.updated",
];

#[derive(Deserialize)]
struct SubscriptionsFile {
    subscriptions: Vec<Subscription>,
}

fn subscriptions(target: &Target) -> anyhow::Result<Vec<Subscription>> {
    if let Some(path) = &target.subscriptions {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let file: SubscriptionsFile = toml::from_str(&text)
            .with_context(|| format!("{} is not a [[subscriptions]] file", path.display()))?;
        return Ok(file.subscriptions);
    }
    let types: Vec<String> = if target.event_types.is_empty() {
        DEFAULT_EVENT_TYPES
            .iter()
            .map(|t| (*t).to_owned())
            .collect()
    } else {
        target.event_types.clone()
    };
    Ok(types
        .into_iter()
        .map(|event_type| Subscription {
            event_type,
            filter: None,
        })
        .collect())
}

async fn secrets_client(args: &WebhooksArgs) -> aws_sdk_secretsmanager::Client {
    let mut loader = aws_config::from_env();
    if let Some(url) = &args.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    aws_sdk_secretsmanager::Client::new(&loader.load().await)
}

/// Puts `secret` first in the stored list, keeping the others valid (rotation).
async fn store(args: &WebhooksArgs, secret_id: &str, secret: &str) -> anyhow::Result<usize> {
    let client = secrets_client(args).await;
    let current = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("reading {secret_id}: {}", e.into_service_error()))?;
    let mut secrets: Vec<String> =
        relay_ingest::parse_secret_list(current.secret_string().unwrap_or_default())
            .iter()
            .map(|s| s.expose().to_owned())
            .filter(|s| s != secret)
            .collect();
    secrets.insert(0, secret.to_owned());
    client
        .put_secret_value()
        .secret_id(secret_id)
        .secret_string(serde_json::json!({ "secrets": secrets }).to_string())
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("writing {secret_id}: {}", e.into_service_error()))?;
    Ok(secrets.len())
}

async fn register(
    args: &WebhooksArgs,
    client: &AttioClient,
    target: &Target,
    subs: &[Subscription],
) -> anyhow::Result<()> {
    let webhook = client
        .create_webhook(&target.target_url, subs)
        .await
        .context("Attio refused the webhook")?;
    let secret = webhook
        .secret
        .clone()
        .context("Attio returned no signing secret")?;
    println!(
        "created webhook {} -> {} ({} subscriptions)",
        webhook.id.webhook_id,
        webhook.target_url,
        subs.len()
    );
    match &target.store_secret {
        Some(secret_id) => match store(args, secret_id, &secret).await {
            Ok(count) => {
                println!("stored its signing secret in {secret_id} ({count} secret(s) now valid)")
            }
            Err(err) => {
                // The secret is shown once by Attio: never lose it.
                eprintln!("could not store the signing secret: {err:#}");
                eprintln!("store it by hand: {{\"secrets\": [\"{secret}\"]}}");
                bail!(
                    "webhook {} created but its secret is not stored",
                    webhook.id.webhook_id
                );
            }
        },
        None => println!("signing secret (shown once): {secret}"),
    }
    Ok(())
}

/// One line per webhook: id, state, target, event types.
pub(crate) fn describe(webhook: &Webhook) -> String {
    let types: Vec<&str> = webhook
        .subscriptions
        .iter()
        .map(|s| s.event_type.as_str())
        .collect();
    format!(
        "{}  {}  {}  {}",
        webhook.id.webhook_id,
        webhook.status.as_deref().unwrap_or("?"),
        webhook.target_url,
        types.join(",")
    )
}

pub async fn run(args: WebhooksArgs) -> anyhow::Result<()> {
    let token = args.token.clone().context(
        "set ATTIO_API_TOKEN (or --token) to an Attio token with the webhook:read-write scope",
    )?;
    let mut config = AttioConfig::new(token);
    config.base_url = args.api_url.clone();
    let client = AttioClient::new(config)?;
    match &args.command {
        WebhooksCommand::Create(target) => {
            register(&args, &client, target, &subscriptions(target)?).await
        }
        WebhooksCommand::List => {
            // Every page: Attio answers at most 100 webhooks per call (10 unless asked).
            let webhooks = client.list_webhooks().await?;
            for webhook in &webhooks {
                println!("{}", describe(webhook));
            }
            println!("{} webhook(s)", webhooks.len());
            Ok(())
        }
        WebhooksCommand::Delete { webhook_id } => {
            client.delete_webhook(webhook_id).await?;
            println!("deleted webhook {webhook_id}");
            Ok(())
        }
        WebhooksCommand::Rotate { target, replaces } => {
            let subs = match (
                replaces,
                target.subscriptions.is_some() || !target.event_types.is_empty(),
            ) {
                // Read the one webhook by id: a scan of the list would miss it past the
                // first page.
                (Some(old), false) => match client.get_webhook(old).await {
                    Ok(webhook) => webhook.subscriptions,
                    Err(AttioError::NotFound { .. }) => {
                        bail!("no webhook {old} in this workspace")
                    }
                    Err(err) => return Err(err).context(format!("reading webhook {old}")),
                },
                _ => subscriptions(target)?,
            };
            register(&args, &client, target, &subs).await?;
            if let Some(old) = replaces {
                println!(
                    "once deliveries arrive from the new webhook: attio-relay webhooks delete {old}"
                );
            }
            Ok(())
        }
    }
}
