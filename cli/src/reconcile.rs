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
//!    ([`crate::backfill`]: same mapping, upsert, id mappings and resumable position, and the
//!    same two-way stores when the mapping sends a property back — the ledger beside the
//!    mappings, conflicts in SQLite or `--conflicts-table` — so a pass never overwrites a
//!    newer HubSpot edit of a `both` field, nor leaves those fields unsent).
//!
//! The status check, the share of the budgets and the walk are `relay_reconcile`'s, shared
//! with the scheduled reconcile Lambda (`functions/reconcile`): why a full pass, and the
//! budgets' sources, are documented there.

use anyhow::{Context, bail};
use relay_attio::AttioClient;
use relay_reconcile::{Attention, Share};

use crate::backfill::{self, BackfillArgs, StoreArgs};
use crate::sync_args::SyncArgs;

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
    Share::parse(text)
        .map(Share::get)
        .map_err(|e| e.to_string())
}

/// Reads the relay's webhooks and returns what needs an operator, printing each webhook.
pub async fn check_webhooks(
    client: &AttioClient,
    webhook_ids: &[String],
    target_url: Option<&str>,
) -> anyhow::Result<Vec<Attention>> {
    let check = relay_reconcile::status::check_webhooks(client, webhook_ids, target_url).await?;
    for webhook in &check.webhooks {
        println!("{}", crate::webhooks::describe(webhook));
    }
    Ok(check.attention)
}

pub async fn run(args: ReconcileArgs) -> anyhow::Result<()> {
    let token = args.sync.attio_token.as_deref().context(
        "set ATTIO_API_TOKEN (or --attio-token): reconcile reads webhooks and records from Attio",
    )?;
    let share = Share::new(args.share).map_err(|e| anyhow::anyhow!(e))?;
    let (attio_rate, hubspot_rate) = (
        share.attio_reads_per_second(),
        share.hubspot_requests_per_10s(),
    );
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
        eprintln!("re-syncing {} at {}", objects.join(", "), share.describe());
        let mut sync = args.sync.clone();
        sync.hubspot_requests_per_10s = Some(hubspot_rate);
        // With the shared budgets (the default), the share is of them: drawn with the consumers.
        sync.budget_share = Some(share.get());
        for object in objects {
            let walk = BackfillArgs {
                object: object.clone(),
                page_size: PAGE_SIZE,
                rate: attio_rate,
                restart: false,
                direction: backfill::Direction::AttioToHubspot,
                dry_run: false,
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

    #[test]
    fn the_share_flag_takes_only_a_share() {
        assert_eq!(parse_share("0.25"), Ok(0.25));
        for bad in ["0", "-0.5", "1.5", "ten", "NaN"] {
            assert!(parse_share(bad).is_err(), "{bad}");
        }
    }
}
