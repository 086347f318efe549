//! `attio-relay backfill --object people`: a full sync of one Attio object through the same
//! mapping, upsert and id mappings as the records consumer, page by page (500 records), with
//! the position saved after every page so an interrupted run resumes where it stopped.
//!
//! `--direction both` is initial matching for two-way sync instead (`pairing.rs`): existing
//! records of both sides paired by email or domain before anything is written.

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Arc;

use relay_attio::{AttioClient, RateLimit};
use relay_crm::CrmSink;
use relay_embedded::LocalDb;
use relay_events::clock::SystemClock;
use relay_mappings::{
    ConflictStore, DynamoDbConflicts, DynamoDbMappings, IdMappings, RecordLocks, SqliteConflicts,
    SqliteMappings, SyncLedger,
};
use relay_ratelimit::{Budgets, DynamoDbBudget, RateBudget, SqliteBudget};
use relay_reconcile::{FilePositions, SyncPosition, WalkObserver, WalkOptions, walk_object};
use relay_sync::two_way::TwoWaySettings;
use relay_sync::{FieldMapping, PageReport, SyncContext};

use crate::sync_args::{CrmTarget, SyncArgs};

#[derive(Debug, clap::Args)]
pub struct BackfillArgs {
    /// Attio object slug to sync (people, companies, deals, or a custom object).
    #[arg(long)]
    pub object: String,
    /// Records per page (Attio allows up to 500).
    #[arg(long, default_value_t = 500)]
    pub page_size: u32,
    /// Attio reads per second this run may use; the rest of Attio's ~100/s stays for live traffic.
    #[arg(long, default_value_t = 20)]
    pub rate: u32,
    /// Start from the first record even if an earlier run stopped halfway.
    #[arg(long)]
    pub restart: bool,
    /// attio-to-hubspot (default): sync every Attio record to HubSpot, as always. both:
    /// initial matching for two-way sync — pair existing records (people by email, companies
    /// by domain) before anything is written, link each pair, create what exists on one side
    /// only, and report what could not be matched (nothing is written for it). Needs
    /// HUBSPOT_TOKEN.
    #[arg(long, value_enum, default_value_t = Direction::AttioToHubspot)]
    pub direction: Direction,
    /// With --direction both: read both sides and print the report, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub sync: SyncArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Which way a backfill goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Direction {
    AttioToHubspot,
    Both,
}

/// Where a full sync keeps its state: the mappings (DynamoDB, or the local SQLite file) and the
/// saved positions. Shared by `backfill` and `reconcile`, so a reconcile resumes a backfill.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// DynamoDB mappings table (the stack's MappingsTableName); default: the local SQLite file.
    #[arg(long, env = "MAPPINGS_TABLE")]
    pub mappings_table: Option<String>,
    /// Endpoint for DynamoDB (an emulator).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Folder for the saved sync positions (and local mappings and outbox).
    #[arg(long, default_value_os_t = crate::default_data_dir(), env = "ATTIO_RELAY_DATA_DIR")]
    pub data_dir: PathBuf,
    /// DynamoDB conflicts table (the stack's ConflictsTableName), with --mappings-table:
    /// required when the field mapping sends a property back (`both`, `hubspot_to_attio`),
    /// since a full sync compares those fields with the ledger and keeps the conflicts it
    /// finds. Locally the conflicts go to the SQLite file beside the mappings (as in `dev`).
    #[arg(long, env = "CONFLICTS_TABLE")]
    pub conflicts_table: Option<String>,
}

pub async fn run(args: BackfillArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.store.data_dir)?;
    let fields = args.sync.fields()?;
    anyhow::ensure!(
        fields.crm_object(&args.object).is_some(),
        "the field mapping has no [objects.{}]: nothing to sync it to",
        args.object
    );
    anyhow::ensure!(
        !args.dry_run || args.direction == Direction::Both,
        "--dry-run goes with --direction both (a plain backfill has nothing to plan)"
    );
    let token =
        args.sync.attio_token.as_deref().context(
            "set ATTIO_API_TOKEN (or --attio-token): the backfill reads records from Attio",
        )?;
    let rate = args.rate.max(1);
    // The run draws from the deployment's budgets, in the store beside the mappings: the
    // DynamoDB table the consumers use, or the SQLite file `dev` uses.
    let dynamodb = match &args.store.mappings_table {
        Some(_) => {
            let mut loader = aws_config::from_env();
            if let Some(url) = &args.store.endpoint_url {
                loader = loader.endpoint_url(url);
            }
            Some(aws_sdk_dynamodb::Client::new(&loader.load().await))
        }
        None => None,
    };
    let (store, db): (Arc<dyn RateBudget>, _) = match (&dynamodb, &args.store.mappings_table) {
        (Some(client), Some(table)) => (Arc::new(DynamoDbBudget::new(client.clone(), table)), None),
        _ => {
            let db = LocalDb::open(&crate::dev::database_file(&args.store.data_dir))?;
            (Arc::new(SqliteBudget::new(db.clone())), Some(db))
        }
    };
    let mut sync = args.sync.clone();
    sync.budgets = crate::sync_args::open_budgets(store)?.map(|budgets| match sync.budget_share {
        // reconcile: its share of every budget.
        Some(share) => budgets.with_share(share),
        // backfill: `--rate` Attio reads/s as a share of the reads budget; HubSpot calls
        // compete in the shared bucket, which keeps the portal's total under its limit.
        None => {
            let aim = budgets.attio_reads.limits().rate_per_s;
            Budgets {
                attio_reads: budgets
                    .attio_reads
                    .with_share((f64::from(rate) / aim).min(1.0)),
                ..budgets
            }
        }
    });
    let attio = sync.attio(
        token,
        Some(RateLimit {
            per_second: rate,
            burst: rate,
        }),
    )?;
    let sink = sync.crm(&args.store.data_dir)?;
    match (&args.store.mappings_table, dynamodb, db) {
        (Some(table), Some(client), _) => {
            let conflicts = args
                .store
                .conflicts_table
                .as_ref()
                .map(|name| DynamoDbConflicts::new(client.clone(), name));
            let mappings = DynamoDbMappings::new(client, table);
            walk_with(sink, &args, attio, mappings, conflicts, fields).await
        }
        (_, _, Some(db)) => {
            let conflicts = Some(SqliteConflicts::new(db.clone()));
            walk_with(
                sink,
                &args,
                attio,
                SqliteMappings::new(db),
                conflicts,
                fields,
            )
            .await
        }
        _ => anyhow::bail!("no mappings store: give --mappings-table or a data folder"),
    }
}

/// Runs the walk with whichever sink was chosen (one monomorphised walk per sink type).
///
/// When the field mapping sends a property back, the context gets the two-way stores, as
/// `dev` and the reconcile Lambda give theirs: the ledger in the mappings store, `conflicts`
/// (required then: the local SQLite file, or `--conflicts-table`), and HubSpot as the source of the other side. Why: without them the forward sync strips
/// every `both` property (it cannot tell a change from a newer HubSpot value) and records no
/// ledger, so a backfill or reconcile would leave those fields unsent. The two ids of
/// `TwoWaySettings` only drop webhook echoes, which a full sync never reads: left unset. With
/// the outbox there is no HubSpot to compare with, so such a run is refused.
async fn walk_with<M, C>(
    target: CrmTarget,
    args: &BackfillArgs,
    attio: AttioClient,
    mappings: M,
    conflicts: Option<C>,
    fields: FieldMapping,
) -> anyhow::Result<()>
where
    M: IdMappings + SyncLedger + RecordLocks + Clone + 'static,
    C: ConflictStore + 'static,
{
    let flows_back = fields.flows_back();
    match (target, args.direction) {
        (CrmTarget::HubSpot(sink), direction) => {
            let object = fields.crm_object(&args.object).context("mapped above")?;
            let source = attio.clone();
            let mut ctx = SyncContext::new(attio, sink.clone(), mappings.clone(), fields);
            if flows_back {
                let conflicts = conflicts.context(
                    "the field mapping sends properties back from HubSpot (direction both or hubspot_to_attio): set --conflicts-table (CONFLICTS_TABLE, the stack's ConflictsTableName) so their conflicts can be kept",
                )?;
                ctx = ctx.with_two_way(mappings, conflicts, sink, TwoWaySettings::default());
            }
            if direction == Direction::AttioToHubspot {
                return walk(args, ctx).await;
            }
            let settings = crate::pairing::Pairing {
                slug: &args.object,
                object,
                page_size: args.page_size,
                dry_run: args.dry_run,
                clock: &SystemClock,
            };
            crate::pairing::run(&ctx, &source, &settings).await
        }
        (CrmTarget::Outbox(_), Direction::Both) => anyhow::bail!(
            "--direction both reads HubSpot to pair records: set HUBSPOT_TOKEN (or --hubspot-token)"
        ),
        (CrmTarget::Outbox(sink), Direction::AttioToHubspot) => {
            let ctx = SyncContext::new(attio, sink, mappings, fields);
            anyhow::ensure!(
                !ctx.needs_two_way(),
                "the field mapping sends properties back from HubSpot (direction both or hubspot_to_attio), and without HUBSPOT_TOKEN (the outbox) their values cannot be compared with HubSpot's: they would not be synced. Set HUBSPOT_TOKEN (or --hubspot-token)"
            );
            walk(args, ctx).await
        }
    }
}

/// Draws the progress bar and reports resumes and refused records on stderr.
struct Progress(ProgressBar);

impl WalkObserver for Progress {
    fn resumed(&mut self, position: &SyncPosition) {
        self.0.suspend(|| {
            eprintln!(
                "resuming {} at record {} ({} synced so far)",
                position.object, position.offset, position.records_synced
            );
        });
        self.0.set_position(position.records_synced);
    }

    fn page_done(&mut self, report: &PageReport, position: &SyncPosition) {
        for (record, why) in &report.failed {
            self.0
                .suspend(|| eprintln!("record {record} not synced: {why}"));
        }
        self.0.set_position(position.records_synced);
    }
}

/// The walk itself is `relay_reconcile::walk_object` (shared with the reconcile Lambda); here
/// its position is the `backfill-<object>.json` file, and there is no deadline.
async fn walk<S: CrmSink, M: IdMappings>(
    args: &BackfillArgs,
    ctx: SyncContext<S, M>,
) -> anyhow::Result<()> {
    let source = ctx.attio.client().clone();
    let positions = FilePositions::new(&args.store.data_dir);
    let progress = ProgressBar::new_spinner();
    progress.set_style(
        ProgressStyle::with_template("{spinner} {msg} {pos} records ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    progress.set_message(format!("backfilling {}", args.object));
    let options = WalkOptions {
        page_size: args.page_size,
        restart: args.restart,
        ..WalkOptions::new(args.object.as_str())
    };
    let mut observer = Progress(progress);
    let outcome = walk_object(
        &ctx,
        &source,
        &positions,
        &SystemClock,
        &options,
        &mut observer,
    )
    .await;
    observer.0.finish_and_clear();
    let position = outcome?.position().clone();
    println!(
        "{}: {} record(s) synced, {} failed",
        args.object, position.records_synced, position.records_failed
    );
    Ok(())
}
