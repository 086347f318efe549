//! `attio-relay backfill --object people`: a full sync of one Attio object through the same
//! mapping, upsert and id mappings as the records consumer, page by page (500 records), with
//! the position saved after every page so an interrupted run resumes where it stopped.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use relay_attio::{AttioClient, RateLimit, RecordQuery};
use relay_crm::CrmSink;
use relay_embedded::LocalDb;
use relay_mappings::SqliteMappings;
use relay_mappings::{DynamoDbMappings, IdMappings};
use relay_sync::{FieldMapping, StepError, SyncContext};
use serde::{Deserialize, Serialize};

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
    #[command(flatten)]
    pub sync: SyncArgs,
    #[command(flatten)]
    pub store: StoreArgs,
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
}

/// Where a backfill of one object stands; saved after every page.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SyncState {
    pub object: String,
    /// Records before this offset are synced.
    pub offset: u32,
    pub records_synced: u64,
    pub records_failed: u64,
    pub started_at: u64,
    /// When the last run that reached the end finished (unix seconds).
    pub last_full_sync: Option<u64>,
}

fn now() -> u64 {
    u64::try_from(relay_events::clock::unix_now()).unwrap_or(0)
}

fn state_file(data_dir: &Path, object: &str) -> PathBuf {
    data_dir.join(format!("backfill-{object}.json"))
}

fn save(path: &Path, state: &SyncState) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(state)?)?;
    // Rename is atomic: a crash leaves the old state or the new one, never half of one.
    std::fs::rename(&tmp, path).with_context(|| format!("cannot save {}", path.display()))
}

pub async fn run(args: BackfillArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.store.data_dir)?;
    let fields = args.sync.fields()?;
    anyhow::ensure!(
        fields.crm_object(&args.object).is_some(),
        "the field mapping has no [objects.{}]: nothing to sync it to",
        args.object
    );
    let token =
        args.sync.attio_token.as_deref().context(
            "set ATTIO_API_TOKEN (or --attio-token): the backfill reads records from Attio",
        )?;
    let rate = args.rate.max(1);
    let attio = args.sync.attio(
        token,
        Some(RateLimit {
            per_second: rate,
            burst: rate,
        }),
    )?;
    let sink = args.sync.crm(&args.store.data_dir)?;
    match (&args.store.mappings_table, sink) {
        (Some(table), sink) => {
            let mut loader = aws_config::from_env();
            if let Some(url) = &args.store.endpoint_url {
                loader = loader.endpoint_url(url);
            }
            let mappings =
                DynamoDbMappings::new(aws_sdk_dynamodb::Client::new(&loader.load().await), table);
            walk_with(sink, &args, attio, mappings, fields).await
        }
        (None, sink) => {
            let db = LocalDb::open(&crate::dev::database_file(&args.store.data_dir))?;
            walk_with(sink, &args, attio, SqliteMappings::new(db), fields).await
        }
    }
}

/// Runs the walk with whichever sink was chosen (one monomorphised walk per sink type).
async fn walk_with<M: IdMappings>(
    target: CrmTarget,
    args: &BackfillArgs,
    attio: AttioClient,
    mappings: M,
    fields: FieldMapping,
) -> anyhow::Result<()> {
    match target {
        CrmTarget::HubSpot(sink) => {
            walk(args, SyncContext::new(attio, sink, mappings, fields)).await
        }
        CrmTarget::Outbox(sink) => {
            walk(args, SyncContext::new(attio, sink, mappings, fields)).await
        }
    }
}

async fn walk<S: CrmSink, M: IdMappings>(
    args: &BackfillArgs,
    ctx: SyncContext<S, M>,
) -> anyhow::Result<()> {
    let ctx = Arc::new(ctx);
    let path = state_file(&args.store.data_dir, &args.object);
    let mut state = match std::fs::read(&path) {
        Ok(bytes) if !args.restart => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is corrupt; use --restart", path.display()))?,
        _ => SyncState::default(),
    };
    if state.object.is_empty() || state.offset == 0 {
        state = SyncState {
            object: args.object.clone(),
            started_at: now(),
            last_full_sync: state.last_full_sync,
            ..SyncState::default()
        };
    } else {
        eprintln!(
            "resuming {} at record {} ({} synced so far)",
            args.object, state.offset, state.records_synced
        );
    }
    // Sorted by creation so offsets stay stable while the walk is paused.
    let query = RecordQuery::new()
        .sort(serde_json::json!({"direction": "asc", "attribute": "created_at"}))
        .limit(args.page_size)
        .offset(state.offset);
    let mut pages = ctx.attio.client().record_pages(&args.object, query);
    let progress = ProgressBar::new_spinner();
    progress.set_style(
        ProgressStyle::with_template("{spinner} {msg} {pos} records ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    progress.set_message(format!("backfilling {}", args.object));
    progress.set_position(state.records_synced);
    while let Some(records) = pages.next_page().await? {
        let report = ctx
            .sync_page(&args.object, &records)
            .await
            .map_err(|StepError(d)| {
                anyhow::anyhow!(
                    "page at offset {} failed: {d:?}; run again to resume",
                    state.offset
                )
            })?;
        for (record, why) in &report.failed {
            progress.suspend(|| eprintln!("record {record} not synced: {why}"));
        }
        state.offset = pages.offset();
        state.records_synced += report.synced as u64;
        state.records_failed += report.failed.len() as u64;
        save(&path, &state)?;
        progress.set_position(state.records_synced);
    }
    progress.finish_and_clear();
    let summary = format!(
        "{}: {} record(s) synced, {} failed",
        args.object, state.records_synced, state.records_failed
    );
    state.offset = 0;
    state.last_full_sync = Some(now());
    save(&path, &state)?;
    println!("{summary}");
    Ok(())
}
