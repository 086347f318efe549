//! `attio-relay webhooks create|list|delete|rotate`: register the Attio webhook and keep its
//! signing secret where the ingest function reads it.
//!
//! Attio returns a webhook's secret once, in the create response only, so it is stored in
//! Secrets Manager immediately; should that fail, it is printed so it is not lost. Rotation
//! registers a second webhook and stores its secret beside the old one (ingest accepts both),
//! so the old webhook can be deleted once the new one delivers. A secret that outlives its
//! webhook is a key nobody needs that still opens the door: `delete` retires the deleted
//! webhook's secret, and `retire --keep` every secret but the current webhook's (one stored
//! before secrets were recorded, or a leaked one). The stored list records which webhook each
//! secret belongs to and when it was added ([`crate::webhook_secrets`]).

use std::path::PathBuf;

use anyhow::{Context, bail};
use relay_attio::{AttioClient, AttioConfig, AttioError, Subscription, Webhook};
use relay_events::clock::{UnixSeconds, unix_now};
use relay_signature::WebhookSecret;
use serde::Deserialize;

use crate::webhook_secrets::SecretList;

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
    /// Secrets Manager secret to add the new signing secret to (its ARN: the stack output WebhookSecretArn).
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
    /// Delete a webhook and retire its signing secret, so it no longer verifies.
    Delete {
        webhook_id: String,
        /// Secrets Manager secret holding the signing secrets: the webhook's is removed.
        #[arg(long, required_unless_present = "keep_secret")]
        store_secret: Option<String>,
        /// Delete the webhook only, leaving its signing secret valid.
        #[arg(long, conflicts_with = "store_secret")]
        keep_secret: bool,
    },
    /// Register a replacement webhook and store its secret beside the current one; delete the
    /// old webhook (`webhooks delete --store-secret`) once the new one delivers, which retires
    /// its secret.
    Rotate {
        #[command(flatten)]
        target: Target,
        /// The webhook being replaced: its subscriptions are copied unless given.
        #[arg(long)]
        replaces: Option<String>,
    },
    /// Retire every stored signing secret except the one of the webhook given with --keep:
    /// after a rotation, for a secret stored before secrets were recorded, or a leaked one.
    /// Needs no Attio token.
    Retire {
        /// Secrets Manager secret holding the signing secrets.
        #[arg(long)]
        store_secret: String,
        /// The webhook whose secret stays valid (the one Attio delivers with now).
        #[arg(long)]
        keep: String,
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

/// The stored signing secrets, in any form the ingest function reads.
async fn read_list(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> anyhow::Result<SecretList> {
    let current = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("reading {secret_id}: {}", e.into_service_error()))?;
    Ok(SecretList::parse(
        current.secret_string().unwrap_or_default(),
    ))
}

async fn write_list(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
    list: &SecretList,
) -> anyhow::Result<()> {
    client
        .put_secret_value()
        .secret_id(secret_id)
        .secret_string(list.to_json())
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("writing {secret_id}: {}", e.into_service_error()))?;
    Ok(())
}

/// Puts `secret` first in the stored list as `webhook_id`'s, added `now`, keeping the others
/// valid (rotation).
async fn store(
    args: &WebhooksArgs,
    secret_id: &str,
    webhook_id: &str,
    secret: &str,
    now: UnixSeconds,
) -> anyhow::Result<usize> {
    let client = secrets_client(args).await;
    let mut list = read_list(&client, secret_id).await?;
    let secret = WebhookSecret::new(secret).context("Attio returned an empty signing secret")?;
    list.add(webhook_id, secret, now);
    write_list(&client, secret_id, &list).await?;
    Ok(list.len())
}

/// Prints what stays valid after a retirement, and when ingest stops accepting the rest.
fn print_remaining(secret_id: &str, list: &SecretList) {
    println!("{} secret(s) remain valid in {secret_id}:", list.len());
    for line in list.describe() {
        println!("  {line}");
    }
    if list.len() == 0 {
        println!(
            "no secret is left: ingest refuses every delivery until a webhook is created with --store-secret {secret_id}"
        );
    }
    println!(
        "warm ingest functions stop accepting retired secrets within SECRETS_CACHE_SECS (300 s by default)"
    );
}

/// Deletes `webhook_id` in Attio (already gone counts as done, so a failed run can be run
/// again), then retires its secret unless told to keep it.
async fn delete(
    args: &WebhooksArgs,
    client: &AttioClient,
    webhook_id: &str,
    store_secret: Option<&str>,
) -> anyhow::Result<()> {
    match client.delete_webhook(webhook_id).await {
        Ok(()) => println!("deleted webhook {webhook_id}"),
        Err(AttioError::NotFound { .. }) => {
            println!("webhook {webhook_id} is not in Attio (already deleted)");
        }
        Err(err) => return Err(err).context(format!("deleting webhook {webhook_id}")),
    }
    let Some(secret_id) = store_secret else {
        println!("its signing secret stays valid (--keep-secret)");
        return Ok(());
    };
    let secrets = secrets_client(args).await;
    let mut list = read_list(&secrets, secret_id).await?;
    if !list.has_webhook(webhook_id) {
        bail!(
            "no signing secret is recorded for webhook {webhook_id} in {secret_id} ({} secret(s) with no webhook recorded: stored by hand or by an older version); \
             to keep only the current webhook's: attio-relay webhooks retire --store-secret {secret_id} --keep <current webhook id>",
            list.unrecorded()
        );
    }
    let retired = list.retire_webhook(webhook_id);
    write_list(&secrets, secret_id, &list).await?;
    println!("retired its signing secret ({} removed)", retired.removed);
    print_remaining(secret_id, &list);
    Ok(())
}

/// Keeps only `keep`'s secret. Refuses when `keep` has none recorded: retiring every other
/// secret would then refuse the deliveries of the webhook that is meant to stay.
async fn retire(args: &WebhooksArgs, secret_id: &str, keep: &str) -> anyhow::Result<()> {
    let secrets = secrets_client(args).await;
    let mut list = read_list(&secrets, secret_id).await?;
    if !list.has_webhook(keep) {
        let known = list.describe().join("\n  ");
        bail!(
            "no signing secret is recorded for webhook {keep} in {secret_id}, so retiring the others would leave none for it; stored:\n  {known}"
        );
    }
    let retired = list.retire_all_but(keep);
    write_list(&secrets, secret_id, &list).await?;
    println!("retired {} secret(s)", retired.removed);
    print_remaining(secret_id, &list);
    Ok(())
}

async fn register(
    args: &WebhooksArgs,
    client: &AttioClient,
    target: &Target,
    subs: &[Subscription],
    now: UnixSeconds,
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
        Some(secret_id) => match store(args, secret_id, &webhook.id.webhook_id, &secret, now).await
        {
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

/// The Attio client; every command but `retire` needs one.
fn attio(args: &WebhooksArgs) -> anyhow::Result<AttioClient> {
    let token = args.token.clone().context(
        "set ATTIO_API_TOKEN (or --token) to an Attio token with the webhook:read-write scope",
    )?;
    let mut config = AttioConfig::new(token);
    config.base_url = args.api_url.clone();
    Ok(AttioClient::new(config)?)
}

pub async fn run(args: WebhooksArgs) -> anyhow::Result<()> {
    // The clock is read here, at the edge; what is stored takes it as a value.
    let now = unix_now();
    let client = match &args.command {
        WebhooksCommand::Retire { store_secret, keep } => {
            return retire(&args, store_secret, keep).await;
        }
        _ => attio(&args)?,
    };
    match &args.command {
        WebhooksCommand::Create(target) => {
            register(&args, &client, target, &subscriptions(target)?, now).await
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
        WebhooksCommand::Delete {
            webhook_id,
            store_secret,
            ..
        } => delete(&args, &client, webhook_id, store_secret.as_deref()).await,
        // Retired above, before an Attio token is asked for.
        WebhooksCommand::Retire { .. } => Ok(()),
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
            register(&args, &client, target, &subs, now).await?;
            if let Some(old) = replaces {
                let store = target
                    .store_secret
                    .as_deref()
                    .map_or_else(String::new, |id| format!(" --store-secret {id}"));
                println!(
                    "both secrets verify until the old one is retired; once deliveries arrive from the new webhook: attio-relay webhooks delete {old}{store}"
                );
            }
            Ok(())
        }
    }
}
