//! `attio-relay reconcile`: notice when Attio stopped delivering, and re-sync what its webhooks
//! may have missed.
//!
//! Attio retries a failed delivery for about 3 days, marks the webhook `degraded`, and after
//! 7 days degraded marks it `inactive` and sends nothing more
//! (<https://docs.attio.com/api-reference/webhooks/get-a-webhook>). Events lost that way never
//! reach the queues, so no DLQ alarm sees them. Reconcile therefore:
//!
//! 1. reads each relay webhook's `status` from Attio and prints, for any that is not
//!    `active`, what to do; the run then exits non-zero so a scheduler (cron, CI) alerts;
//! 2. re-syncs every record of each mapped object through the backfill walk
//!    ([`crate::backfill`]: same mapping, upsert, id mappings and resumable position).
//!
//! Why a full pass rather than "changed since the last reconcile": the only timestamp Attio
//! documents on every record is `created_at`
//! (<https://docs.attio.com/docs/attribute-types/attribute-types-timestamp>); there is no
//! updated-at to filter a record query on, so an update that was missed can only be found by
//! reading every record. The pass is paced to `--share` of the rate budgets instead: Attio's
//! 100 reads/s per workspace (<https://docs.attio.com/rest-api/guides/rate-limiting>) and
//! HubSpot's smallest per-portal burst limit, 100 requests per 10 s
//! (<https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines>), both
//! shared with the live consumers.

use anyhow::{Context, bail};
use relay_attio::{AttioClient, AttioError, Webhook, WebhookStatus};

use crate::backfill::{self, BackfillArgs, StoreArgs};
use crate::sync_args::SyncArgs;

/// Attio's read limit per workspace (requests per second).
const ATTIO_READS_PER_SECOND: f64 = 100.0;
/// HubSpot's smallest per-portal burst limit (requests per 10 seconds).
const HUBSPOT_REQUESTS_PER_10S: f64 = 100.0;
/// Records per Attio page, as the backfill reads them.
const PAGE_SIZE: u32 = 500;

#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    /// Share of Attio's read budget (100/s) and HubSpot's request budget (100 per 10 s) this
    /// run may use; the rest stays for live traffic. Between 0 and 1.
    #[arg(long, default_value_t = 0.1, value_parser = parse_share)]
    pub share: f64,
    /// Attio object to re-sync (repeatable); default: every object of the field mapping.
    #[arg(long = "object")]
    pub objects: Vec<String>,
    /// The relay's webhook (repeatable): its status is read by id. Default: the webhooks whose
    /// target is --target-url, or every webhook of the workspace.
    #[arg(long = "webhook-id")]
    pub webhook_ids: Vec<String>,
    /// Check the webhooks delivering to this URL (the stack's IngestFunctionUrl).
    #[arg(long, conflicts_with = "webhook_ids")]
    pub target_url: Option<String>,
    /// Only check the webhooks' status; re-sync nothing.
    #[arg(long)]
    pub check_only: bool,
    #[command(flatten)]
    pub sync: SyncArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

fn parse_share(text: &str) -> Result<f64, String> {
    let share: f64 = text.parse().map_err(|e| format!("{text:?}: {e}"))?;
    if share > 0.0 && share <= 1.0 {
        Ok(share)
    } else {
        Err(format!(
            "{share} is not a share: give a number above 0 and at most 1"
        ))
    }
}

/// The rates a share allows: (Attio reads per second, HubSpot requests per 10 s), at least 1.
fn rates(share: f64) -> (u32, usize) {
    let attio = (ATTIO_READS_PER_SECOND * share).floor().max(1.0) as u32;
    let hubspot = (HUBSPOT_REQUESTS_PER_10S * share).floor().max(1.0) as usize;
    (attio, hubspot)
}

/// A relay webhook that needs an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attention {
    pub webhook_id: String,
    pub what_to_do: String,
}

/// What to do about one webhook, or `None` when it is active.
fn attention(webhook: &Webhook) -> Option<Attention> {
    let id = &webhook.id.webhook_id;
    let target = &webhook.target_url;
    let what_to_do = match webhook.health() {
        WebhookStatus::Active => return None,
        WebhookStatus::Degraded => format!(
            "webhook {id} is DEGRADED: Attio's deliveries to {target} are failing. Attio still \
             retries each one for about 3 days, and marks the webhook inactive after 7 days \
             degraded. Find why ingest refuses them (`attio-relay status --stage <stage>`; \
             ingest logs: 401 = a signing secret ingest does not hold, 5xx = an AWS failure) \
             and fix it; this reconcile re-syncs what was missed meanwhile."
        ),
        WebhookStatus::Inactive => format!(
            "webhook {id} is INACTIVE: Attio no longer sends anything to {target}. Fix ingest \
             first, then register a replacement with the same subscriptions: `attio-relay \
             webhooks rotate --target-url {target} --replaces {id} --store-secret <secret id>`, \
             and once it delivers `attio-relay webhooks delete {id}`. Run reconcile again \
             after that: changes made before the new webhook existed reach HubSpot only this way."
        ),
        WebhookStatus::Other(state) => format!(
            "webhook {id} reports state {state:?}, which is not \"active\": check it in Attio \
             (Workspace settings > Developers > Webhooks) before trusting its deliveries."
        ),
    };
    Some(Attention {
        webhook_id: id.clone(),
        what_to_do,
    })
}

/// Reads the relay's webhooks and returns what needs an operator, printing each webhook.
pub async fn check_webhooks(
    client: &AttioClient,
    webhook_ids: &[String],
    target_url: Option<&str>,
) -> anyhow::Result<Vec<Attention>> {
    let mut found = Vec::new();
    let mut attention_needed = Vec::new();
    if webhook_ids.is_empty() {
        let all = client
            .list_webhooks()
            .await
            .context("listing Attio's webhooks (the token needs webhook:read)")?;
        let wanted = target_url.map(|t| t.trim_end_matches('/'));
        found.extend(
            all.into_iter()
                .filter(|w| wanted.is_none_or(|t| w.target_url.trim_end_matches('/') == t)),
        );
        if found.is_empty() {
            let whose = target_url.map_or(String::new(), |t| format!(" delivering to {t}"));
            attention_needed.push(Attention {
                webhook_id: String::new(),
                what_to_do: format!(
                    "no webhook{whose} is registered in this Attio workspace: nothing reaches \
                     the relay. Register one: `attio-relay webhooks create --target-url \
                     <IngestFunctionUrl> --store-secret <secret id>`."
                ),
            });
        }
    } else {
        for id in webhook_ids {
            match client.get_webhook(id).await {
                Ok(webhook) => found.push(webhook),
                Err(AttioError::NotFound { .. }) => attention_needed.push(Attention {
                    webhook_id: id.clone(),
                    what_to_do: format!(
                        "webhook {id} does not exist in this Attio workspace (deleted?): \
                         nothing it delivered reaches the relay any more. Register one: \
                         `attio-relay webhooks create --target-url <IngestFunctionUrl> \
                         --store-secret <secret id>`."
                    ),
                }),
                Err(err) => return Err(err).context(format!("reading webhook {id}")),
            }
        }
    }
    for webhook in &found {
        println!("{}", crate::webhooks::describe(webhook));
        attention_needed.extend(attention(webhook));
    }
    Ok(attention_needed)
}

pub async fn run(args: ReconcileArgs) -> anyhow::Result<()> {
    let token = args.sync.attio_token.as_deref().context(
        "set ATTIO_API_TOKEN (or --attio-token): reconcile reads webhooks and records from Attio",
    )?;
    let (attio_rate, hubspot_rate) = rates(args.share);
    // The status check is a handful of calls: the client's default pacing is fine for it.
    let client = args.sync.attio(token, None)?;
    let attention_needed =
        check_webhooks(&client, &args.webhook_ids, args.target_url.as_deref()).await?;
    for item in &attention_needed {
        eprintln!("ATTENTION: {}", item.what_to_do);
    }

    let mut failed_objects = Vec::new();
    if !args.check_only {
        let fields = args.sync.fields()?;
        let objects: Vec<String> = if args.objects.is_empty() {
            fields.objects.keys().cloned().collect()
        } else {
            args.objects.clone()
        };
        eprintln!(
            "re-syncing {} at {attio_rate} Attio reads/s and {hubspot_rate} HubSpot requests \
             per 10 s ({}% of each budget)",
            objects.join(", "),
            args.share * 100.0
        );
        let mut sync = args.sync.clone();
        sync.hubspot_requests_per_10s = Some(hubspot_rate);
        for object in objects {
            let walk = BackfillArgs {
                object: object.clone(),
                page_size: PAGE_SIZE,
                rate: attio_rate,
                restart: false,
                sync: sync.clone(),
                store: args.store.clone(),
            };
            // One object failing (a page Attio refuses) must not keep the others stale; its
            // position is saved, so the next run resumes it.
            if let Err(err) = backfill::run(walk).await {
                eprintln!("{object}: not reconciled: {err:#}");
                failed_objects.push(object);
            }
        }
    }

    match (attention_needed.len(), failed_objects.is_empty()) {
        (0, true) => {
            println!("every relay webhook is active");
            Ok(())
        }
        (0, false) => bail!(
            "re-sync incomplete for {}: run reconcile again to resume",
            failed_objects.join(", ")
        ),
        (n, _) => bail!(
            "{n} relay webhook(s) need attention (see ATTENTION above){}",
            if failed_objects.is_empty() {
                String::new()
            } else {
                format!("; re-sync incomplete for {}", failed_objects.join(", "))
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_attio::WebhookId;

    fn webhook(status: Option<&str>) -> Webhook {
        Webhook {
            id: WebhookId {
                workspace_id: "w".into(),
                webhook_id: "wh-1".into(),
            },
            target_url: "https://relay.example/".into(),
            subscriptions: Vec::new(),
            status: status.map(str::to_owned),
            created_at: None,
            secret: None,
        }
    }

    #[test]
    fn only_an_active_webhook_needs_nothing() {
        assert_eq!(attention(&webhook(Some("active"))), None);
        let degraded = attention(&webhook(Some("degraded"))).expect("degraded");
        assert!(degraded.what_to_do.contains("DEGRADED"), "{degraded:?}");
        let inactive = attention(&webhook(Some("inactive"))).expect("inactive");
        assert!(
            inactive.what_to_do.contains("--replaces wh-1"),
            "says how to replace it: {inactive:?}"
        );
        assert!(
            attention(&webhook(None)).is_some(),
            "no state is not active"
        );
    }

    #[test]
    fn a_share_becomes_both_rates_and_stays_a_share() {
        assert_eq!(rates(0.1), (10, 10));
        assert_eq!(rates(1.0), (100, 100));
        assert_eq!(rates(0.001), (1, 1), "never zero");
        assert!(parse_share("0.25").is_ok());
        for bad in ["0", "-0.5", "1.5", "ten", "NaN"] {
            assert!(parse_share(bad).is_err(), "{bad}");
        }
    }
}
