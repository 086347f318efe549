//! `attio-relay`: run the whole ingest path on this machine, and send it signed deliveries.
//!
//! ```text
//! attio-relay dev                          # local server on embedded SQLite, prints its secret
//! attio-relay send events/deliveries/record-updated.json
//! attio-relay send-hubspot events/hubspot/contact-changes.json   # with HUBSPOT_APP_SECRET
//! attio-relay status --local --show        # what landed on the local queues
//! attio-relay outbox                       # what the consumers would have sent to HubSpot
//! ```

mod backfill;
mod conflicts;
mod consumers;
mod dashboard;
mod dev;
mod dlq;
mod hubspot;
mod outbox;
mod pairing;
mod queues;
mod reconcile;
mod send;
mod send_hubspot;
mod status;
mod sync_args;
mod webhook_secrets;
mod webhooks;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Attio webhooks into AWS, and the tools to run and operate it.
#[derive(Debug, Parser)]
#[command(name = "attio-relay", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the ingest handler locally on embedded storage (SQLite), no AWS account needed.
    ///
    /// Serves POST / (and any other path) on 127.0.0.1, verifies signatures with a dev secret
    /// (generated on first run and printed), records each delivery once and queues its events
    /// in a local SQLite file with SQS-like semantics.
    Dev(dev::DevArgs),
    /// Sign a delivery file the way Attio does and POST it to a relay.
    Send(send::SendArgs),
    /// Sign a HubSpot webhook request file the way HubSpot does (v3) and POST it to a relay's
    /// /hubspot/webhooks.
    SendHubspot(send_hubspot::SendHubSpotArgs),
    /// Show the CRM calls the local consumers made to the outbox (when no HubSpot token is set).
    Outbox(outbox::OutboxArgs),
    /// Prepare HubSpot for syncing (create the attio_record_id property).
    Hubspot(hubspot::HubSpotArgs),
    /// Inspect, replay and purge the dead-letter queues (SQS, or --local).
    Dlq(dlq::DlqArgs),
    /// Register, list, delete and rotate Attio webhooks; store their signing secrets.
    Webhooks(webhooks::WebhooksArgs),
    /// Queue and DLQ depths, oldest message age, recent deliveries (AWS, or --local; with
    /// --local --show also every queued message).
    Status(status::StatusArgs),
    /// See and settle two-way sync's conflicts: fields changed on both sides since their last
    /// sync (list, show, resolve --keep attio|hubspot).
    Conflicts(conflicts::ConflictsArgs),
    /// Full sync of one Attio object to the CRM, resumable, paced to leave room for live traffic.
    Backfill(backfill::BackfillArgs),
    /// Check that Attio still delivers (each relay webhook's status; non-zero exit when one is
    /// not active) and re-sync every mapped object within a share of the rate budgets.
    Reconcile(reconcile::ReconcileArgs),
}

/// Where local runs keep their SQLite file and dev secret.
pub(crate) fn default_data_dir() -> PathBuf {
    PathBuf::from(".attio-relay")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Dev(args) => dev::run(args).await,
        Command::Send(args) => send::run(args).await,
        Command::SendHubspot(args) => send_hubspot::run(args).await,
        Command::Outbox(args) => outbox::run(args),
        Command::Hubspot(args) => hubspot::run(args).await,
        Command::Dlq(args) => dlq::run(args).await,
        Command::Webhooks(args) => webhooks::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Conflicts(args) => conflicts::run(args).await,
        Command::Backfill(args) => backfill::run(args).await,
        Command::Reconcile(args) => reconcile::run(args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
