//! `attio-relay`: run the whole ingest path on this machine, and send it signed deliveries.
//!
//! ```text
//! attio-relay dev                          # local server on embedded SQLite, prints its secret
//! attio-relay send events/deliveries/record-updated.json
//! attio-relay status --local --show        # what landed on the local queues
//! attio-relay outbox                       # what the consumers would have sent to HubSpot
//! ```

mod backfill;
mod consumers;
mod dashboard;
mod dev;
mod dlq;
mod hubspot;
mod load;
mod outbox;
mod queues;
mod send;
mod status;
mod sync_args;
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
    /// Full sync of one Attio object to the CRM, resumable, paced to leave room for live traffic.
    Backfill(backfill::BackfillArgs),
    /// Bounded load test on loopback: deliveries/s and p50/p90/p99 latency, with duplicates
    /// mixed in, and a check that nothing was lost or queued twice.
    ///
    /// By default it needs no AWS and no servers: it starts the `dev` server's router in this
    /// process on 127.0.0.1 (a temporary SQLite data folder, consumers off) and drives it over
    /// real HTTP with a keep-alive client at a fixed --concurrency. Every delivery is the
    /// --sample with a fresh record id and its own Idempotency-Key, signed with the body-only
    /// scheme (Attio-Signature) and the dev secret. A share of extra requests (--duplicates)
    /// re-send an already acknowledged delivery byte for byte with the same key, as Attio's
    /// retries do; they must be answered 200 "duplicate".
    ///
    /// Measured: deliveries/s (acknowledged deliveries per second of wall time), requests/s
    /// (all answered requests, duplicates included), answers by status, and latency p50, p90,
    /// p99 and max — exact, from the sorted round-trip time of every answered request, measured
    /// at the client (signing happens before the clock starts). The client and the server share
    /// this machine's cores, so compare runs on one machine, not across machines.
    ///
    /// Verified afterwards by reading the queues back from SQLite: lost = acknowledged (2xx)
    /// deliveries with no queued message, duplicates_queued = deliveries queued more than once.
    /// The command exits non-zero when either is above 0, or when any answer is neither 2xx nor
    /// a documented retry-later answer (409, 503).
    ///
    /// Bounded: at most --deliveries plus their duplicates, --concurrency requests in flight,
    /// and --max-duration seconds (then it stops sending, abandons what is in flight and says
    /// so). Loopback only: --url may name an already running relay (`attio-relay dev`, or a
    /// `cargo lambda watch` Function URL such as http://127.0.0.1:9000/lambda-url/ingest/),
    /// but any host other than 127.0.0.0/8, ::1 or localhost is refused, and no proxy is used.
    /// With --url, give --data-dir (the dev server's folder) to verify against its SQLite file
    /// — with its consumers off, since they delete what they handle; without --data-dir the
    /// verification is skipped and the summary says so.
    Load(load::LoadArgs),
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
        Command::Outbox(args) => outbox::run(args),
        Command::Hubspot(args) => hubspot::run(args).await,
        Command::Dlq(args) => dlq::run(args).await,
        Command::Webhooks(args) => webhooks::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Backfill(args) => backfill::run(args).await,
        Command::Load(args) => load::run(args).await,
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
