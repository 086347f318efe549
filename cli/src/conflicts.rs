//! `attio-relay conflicts list|show|resolve`: see and settle two-way sync's conflicts.
//!
//! A conflict is a `both` field that changed in Attio and in HubSpot since its last sync. The
//! consumers already synced the later change to the other side ("most recent wins") and kept
//! the losing value here ([`relay_mappings::ConflictStore`]). An operator reads both values and
//! keeps one:
//!
//! * `--keep <the winner>`: nothing to write, both sides already hold it; the conflict is
//!   marked resolved.
//! * `--keep <the loser>`: the loser's value is written to BOTH sides. The consumer synced
//!   the winner's value to the loser's side when it recorded the conflict, so a write to the
//!   winner's side alone would leave the loser's own side holding the winner's value: it
//!   differs from the ledger (now the kept value), reads as a change, and the consumers push
//!   the winner's value back — the operator's choice undone. So the kept value goes to the
//!   winner's side, then to the loser's own side — HubSpot with `CrmSink::update` of that one
//!   property on the mapped object, Attio with `AttioWriter::update_record` after reversing
//!   HubSpot's text through the field mapping (`relay_sync::two_way::write_value`, the
//!   consumer's own function, so the CLI cannot write a value the consumer would not). Then
//!   the ledger records it once as agreed (HubSpot's form, and Attio's form from the write's
//!   answer when it differs), so the webhooks the writes cause are echoes and go nowhere, and
//!   only then is the conflict marked resolved: a failed write leaves it open to try again.
//!   Keeping either side's value needs the Attio token; without a HubSpot token the HubSpot
//!   write goes to the local outbox, which a deployment's ledger (`--conflicts-table`) refuses.
//! * Before any write, both sides are read: each must hold the winner's value or the kept one
//!   (the loser's side before the consumer synced it). Anything else is an edit made since,
//!   the kept value is older than it, and overwriting it silently is the one thing an
//!   operator settling a conflict must not do by accident (`write.rs`): nothing is written on
//!   either side and the conflict stays open. `--force` writes anyway.
//! * `--dry-run` reads as a real run does (the check included) and prints what would be
//!   written where; it writes nothing, records nothing, resolves nothing.
//!
//! The store is chosen as `backfill` chooses its mappings: the local SQLite file of `attio-relay
//! dev` (`--data-dir`) by default, DynamoDB with `--conflicts-table` (`CONFLICTS_TABLE`, the
//! stack output `ConflictsTableName`) and, to resolve, `--mappings-table` for the ledger and
//! the id mappings. The values are personal data: they are printed to the operator's
//! terminal, which is what the command is for, and never logged.

use std::path::PathBuf;

use anyhow::{Context, bail};
use relay_crm::HubSpotSink;
use relay_embedded::LocalDb;
use relay_events::clock::{Clock, SystemClock};
use relay_mappings::{
    Conflict, ConflictFilter, ConflictStore, DynamoDbConflicts, DynamoDbMappings, IdMappings,
    Resolution, Side, SqliteConflicts, SqliteMappings, SyncLedger,
};
use relay_sync::formats::iso_instant;
use serde_json::{Value, json};

use crate::sync_args::{CrmTarget, SyncArgs};

mod write;

use write::{Plan, Write};

/// The shortest id prefix `show` and `resolve` accept: 6 hex digits make a collision among a
/// few thousand conflicts unlikely, and an ambiguous one is refused with the candidates.
const MIN_PREFIX: usize = 6;
/// Conflicts read per page when a prefix is searched.
const SEARCH_PAGE: usize = 500;

#[derive(Debug, clap::Args)]
#[command(long_about = "See and settle two-way sync's conflicts.

A conflict is a field synced both ways (direction = \"both\" in the field mapping) that \
changed in Attio and in HubSpot since its last sync. The later change has already been \
synced to the other side; the losing value is kept here, with both values and when each \
side changed it, until you decide.

`resolve --keep attio|hubspot` keeps one side's value: if it is the winner's, the conflict \
is only marked resolved (both sides already hold it); if it is the loser's, it is written to \
both sides — the winner's, then the loser's own, which the consumer left holding the \
winner's value (HubSpot: that one property of the mapped object; Attio: the mapped \
attribute, reversed through the field mapping) — recorded as the agreed value so the writes \
do not come back as changes, and then marked resolved.

Before writing the loser's value, resolve reads both sides and refuses when either holds \
something other than the winner's value or the kept one: someone edited the field after the \
conflict, and the kept value would overwrite that newer edit. Nothing is written on either \
side; the refusal says which side, what it holds now and when it changed; then either \
--force (overwrite it anyway) or --keep <the winner> (close the conflict, leave the newer \
value). --dry-run shows both writes, writing nothing.

By default the local run's SQLite file (attio-relay dev, --data-dir) is used; give \
--conflicts-table (the stack output ConflictsTableName) for a deployment, and to resolve \
also --mappings-table (MappingsTableName). Values are personal data: they are shown here, \
never logged.")]
pub struct ConflictsArgs {
    #[command(subcommand)]
    pub command: ConflictsCommand,
    #[command(flatten)]
    pub store: ConflictStoreArgs,
    /// Print JSON instead of a table, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Where the conflicts (and, to resolve, the ledger and id mappings) are.
#[derive(Debug, Clone, clap::Args)]
pub struct ConflictStoreArgs {
    /// DynamoDB conflicts table (the stack output ConflictsTableName); default: the local
    /// SQLite file in --data-dir.
    #[arg(long, global = true, env = "CONFLICTS_TABLE")]
    pub conflicts_table: Option<String>,
    /// DynamoDB mappings table (MappingsTableName): the sync ledger and id mappings `resolve`
    /// updates. Needed with --conflicts-table to resolve.
    #[arg(long, global = true, env = "MAPPINGS_TABLE")]
    pub mappings_table: Option<String>,
    /// Endpoint for DynamoDB (an emulator).
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Use the local run's SQLite file even when CONFLICTS_TABLE is set.
    #[arg(long, global = true)]
    pub local: bool,
    /// Folder of the local run (its relay.sqlite holds the conflicts).
    #[arg(long, global = true, default_value_os_t = crate::default_data_dir(), env = "ATTIO_RELAY_DATA_DIR")]
    pub data_dir: PathBuf,
}

/// The side to keep, as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Keep {
    Attio,
    Hubspot,
}

impl From<Keep> for Side {
    fn from(keep: Keep) -> Self {
        match keep {
            Keep::Attio => Side::Attio,
            Keep::Hubspot => Side::Hubspot,
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum ConflictsCommand {
    /// List conflicts, newest first: open ones by default.
    List {
        /// Open and resolved conflicts.
        #[arg(long, conflicts_with = "resolved")]
        all: bool,
        /// Only resolved conflicts.
        #[arg(long)]
        resolved: bool,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show one conflict whole: both values in full, when each side changed, the winner.
    Show {
        /// Its id, or a unique prefix of at least 6 characters.
        id: String,
    },
    /// Keep one side's value: write it to both sides if it lost, then mark the conflict
    /// resolved.
    ///
    /// Keeping the winner only marks it resolved (nothing is read or written). Keeping the
    /// loser writes its value to both sides — the winner's, then the loser's own, which the
    /// consumer left holding the winner's value (needs ATTIO_API_TOKEN, and HUBSPOT_TOKEN to
    /// write to HubSpot — without it the write goes to the local outbox, as in `dev`, which
    /// --conflicts-table refuses) — records it in the sync ledger so it does not echo back,
    /// then marks the conflict resolved.
    ///
    /// Safe against newer edits: before writing, both sides' current values are read; each
    /// must hold the winner's value or the kept one. If someone changed either since, nothing
    /// is written on either side, the conflict stays open, and the error says which side,
    /// what it holds now and when it changed. Then either rerun with --force to overwrite
    /// that newer value anyway, or resolve with --keep <the winner> to close the conflict and
    /// leave it.
    Resolve {
        /// Its id, or a unique prefix of at least 6 characters.
        id: String,
        /// The side whose value to keep.
        #[arg(long, value_enum)]
        keep: Keep,
        /// Write the kept value even if a side changed since the conflict: whatever the sides
        /// hold now is overwritten (the checks are skipped).
        #[arg(long)]
        force: bool,
        /// Show what would be written where (after the same check as a real run) and write
        /// nothing: no write to either side, no ledger entry, the conflict stays open.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        sync: Box<SyncArgs>,
    },
}

/// The conflicts store the flags chose.
enum Store {
    Local(LocalDb),
    Aws {
        client: aws_sdk_dynamodb::Client,
        conflicts: String,
        mappings: Option<String>,
    },
}

impl Store {
    async fn open(args: &ConflictStoreArgs) -> anyhow::Result<Self> {
        match (&args.conflicts_table, args.local) {
            (Some(table), false) => {
                let mut loader = aws_config::from_env();
                if let Some(url) = &args.endpoint_url {
                    loader = loader.endpoint_url(url);
                }
                Ok(Self::Aws {
                    client: aws_sdk_dynamodb::Client::new(&loader.load().await),
                    conflicts: table.clone(),
                    mappings: args.mappings_table.clone(),
                })
            }
            _ => {
                let file = crate::dev::database_file(&args.data_dir);
                anyhow::ensure!(
                    file.exists(),
                    "no local run in {} (no {}): run `attio-relay dev` there, or give --conflicts-table",
                    args.data_dir.display(),
                    file.display()
                );
                Ok(Self::Local(LocalDb::open(&file)?))
            }
        }
    }
}

pub async fn run(args: ConflictsArgs) -> anyhow::Result<()> {
    match Store::open(&args.store).await? {
        Store::Local(db) => {
            let conflicts = SqliteConflicts::new(db.clone());
            command(&args, &conflicts, || Ok(SqliteMappings::new(db.clone()))).await
        }
        Store::Aws {
            client,
            conflicts,
            mappings,
        } => {
            let store = DynamoDbConflicts::new(client.clone(), conflicts);
            command(&args, &store, || {
                let table = mappings.clone().context(
                    "give --mappings-table (MAPPINGS_TABLE, the stack output MappingsTableName): resolving records the kept value in the sync ledger there",
                )?;
                Ok(DynamoDbMappings::new(client.clone(), table))
            })
            .await
        }
    }
}

/// Runs the subcommand on one store; `mappings` opens the ledger and id mappings (only
/// `resolve` needs them).
async fn command<C, M>(
    args: &ConflictsArgs,
    store: &C,
    mappings: impl FnOnce() -> anyhow::Result<M>,
) -> anyhow::Result<()>
where
    C: ConflictStore,
    M: IdMappings + SyncLedger,
{
    match &args.command {
        ConflictsCommand::List {
            all,
            resolved,
            limit,
        } => {
            let filter = match (all, resolved) {
                (true, _) => ConflictFilter::All,
                (_, true) => ConflictFilter::Resolved,
                _ => ConflictFilter::Open,
            };
            let (listed, more) = list(store, filter, *limit).await?;
            if args.json {
                let rows: Vec<Value> = listed.iter().map(to_json).collect();
                println!("{}", json!({"conflicts": rows, "more": more}));
            } else {
                print_table(&listed);
                if more {
                    println!("(more: raise --limit to see them)");
                }
            }
            Ok(())
        }
        ConflictsCommand::Show { id } => {
            let conflict = find(store, id).await?;
            if args.json {
                println!("{}", to_json(&conflict));
            } else {
                print_one(&conflict);
            }
            Ok(())
        }
        ConflictsCommand::Resolve {
            id,
            keep,
            force,
            dry_run,
            sync,
        } => {
            let conflict = find(store, id).await?;
            let keep = Side::from(*keep);
            let mappings = mappings()?;
            let how = How {
                force: *force,
                dry_run: *dry_run,
                deployed: args.store.conflicts_table.is_some() && !args.store.local,
            };
            let done = resolve_with(
                store,
                &mappings,
                sync,
                &args.store.data_dir,
                &conflict,
                keep,
                how,
                &SystemClock,
            )
            .await?;
            if args.json {
                println!("{}", done.to_json(&conflict, keep));
            } else {
                println!("{}", done.describe(&conflict, keep));
            }
            Ok(())
        }
    }
}

/// Up to `limit` conflicts of `filter`, newest first, and whether there are more.
async fn list<C: ConflictStore>(
    store: &C,
    filter: ConflictFilter,
    limit: usize,
) -> anyhow::Result<(Vec<Conflict>, bool)> {
    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    while listed.len() < limit {
        let page = store
            .list(filter, limit - listed.len(), after.as_deref())
            .await?;
        listed.extend(page.conflicts);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok((listed, false)),
        }
    }
    listed.truncate(limit);
    let more = match after {
        Some(next) => !store
            .list(filter, 1, Some(&next))
            .await?
            .conflicts
            .is_empty(),
        None => false,
    };
    Ok((listed, more))
}

/// The conflict `text` names: its whole id, or a prefix of at least [`MIN_PREFIX`]
/// characters that only one conflict (open or resolved) has.
async fn find<C: ConflictStore>(store: &C, text: &str) -> anyhow::Result<Conflict> {
    let text = text.trim().to_ascii_lowercase();
    if let Some(conflict) = store.get(&text).await? {
        return Ok(conflict);
    }
    anyhow::ensure!(
        text.len() >= MIN_PREFIX,
        "no conflict {text}; a prefix needs at least {MIN_PREFIX} characters"
    );
    let mut found: Vec<Conflict> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list(ConflictFilter::All, SEARCH_PAGE, after.as_deref())
            .await?;
        found.extend(
            page.conflicts
                .into_iter()
                .filter(|c| c.id.starts_with(&text)),
        );
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    match found.len() {
        0 => bail!("no conflict {text} (`attio-relay conflicts list --all` lists them)"),
        1 => Ok(found.remove(0)),
        _ => {
            let ids: Vec<&str> = found.iter().map(|c| c.id.as_str()).collect();
            bail!(
                "{text} is the start of {} conflicts ({}): give more of the id",
                ids.len(),
                ids.join(", ")
            )
        }
    }
}

/// How `resolve` goes about it.
#[derive(Debug, Clone, Copy, Default)]
struct How {
    /// Write without checking that the sides hold the values the conflict explains.
    force: bool,
    /// Read and plan, write nothing.
    dry_run: bool,
    /// The conflicts (and so the ledger) are a deployment's DynamoDB tables, not the local
    /// run's file: a HubSpot write that would only reach the local outbox is refused.
    deployed: bool,
}

/// What `resolve` did (or, with `--dry-run`, would do).
struct Resolved {
    /// The writes of the kept value, in order: the winner's side, then the loser's own side.
    /// Empty: the winner was kept (nothing to write).
    plans: Vec<Plan>,
    /// The HubSpot write went (would go) to the local outbox (no HubSpot token).
    to_outbox: bool,
    dry_run: bool,
}

impl Resolved {
    fn describe(&self, conflict: &Conflict, keep: Side) -> String {
        let id = &conflict.id;
        if self.plans.is_empty() {
            return if self.dry_run {
                format!(
                    "dry run: {id}: would keep {} (the winner, already on both sides) and mark it resolved; nothing written",
                    keep.as_str()
                )
            } else {
                format!(
                    "{id}: kept {} (the winner, already on both sides); marked resolved",
                    keep.as_str()
                )
            };
        }
        let outbox = |plan: &Plan| {
            if self.to_outbox && plan.side() == Side::Hubspot {
                " (the local outbox: no HUBSPOT_TOKEN)"
            } else {
                ""
            }
        };
        let checks: Vec<String> = self
            .plans
            .iter()
            .map(|p| p.describe_check(conflict))
            .collect();
        let checks = checks.join("\n");
        if self.dry_run {
            let writes: Vec<String> = self
                .plans
                .iter()
                .map(|p| format!("{}{}: {}", p.place(conflict), outbox(p), p.body()))
                .collect();
            format!(
                "dry run: {id}: would write {}'s value of {} to both sides, in order:\n  {}\n{checks}\nthen record it in the sync ledger and mark the conflict resolved; nothing written",
                keep.as_str(),
                conflict.property,
                writes.join("\n  "),
            )
        } else {
            let writes: Vec<String> = self
                .plans
                .iter()
                .map(|p| format!("{} ({}{})", p.side().as_str(), p.place(conflict), outbox(p)))
                .collect();
            format!(
                "{id}: kept {}'s value of {}: written to {}, recorded in the sync ledger; marked resolved\n{checks}",
                keep.as_str(),
                conflict.property,
                writes.join(" and to "),
            )
        }
    }

    fn to_json(&self, conflict: &Conflict, keep: Side) -> Value {
        let writes: Vec<Value> = self
            .plans
            .iter()
            .map(|p| {
                json!({
                    "side": p.side().as_str(),
                    "to": p.place(conflict),
                    "to_outbox": self.to_outbox && p.side() == Side::Hubspot,
                    "body": p.body(),
                    "checked": p.describe_check(conflict),
                    "written": !self.dry_run,
                })
            })
            .collect();
        json!({
            "id": conflict.id,
            "kept": keep.as_str(),
            "dry_run": self.dry_run,
            "to_outbox": self.to_outbox,
            "writes": writes,
        })
    }
}

/// Builds the clients a loser's value needs and resolves: keeping the winner only marks the
/// conflict (no read, no write); keeping the loser plans the write to both sides — reading
/// each, refusing a newer edit on either unless forced, before anything is written — then,
/// unless a dry run, writes the winner's side, then the loser's own side (which the consumer
/// left holding the winner's value), records the ledger once and marks the conflict. A failed
/// write leaves the ledger and the conflict as they were, to try again (the guard accepts a
/// side already holding the kept value).
#[allow(clippy::too_many_arguments)]
async fn resolve_with<C: ConflictStore, M: IdMappings + SyncLedger>(
    store: &C,
    mappings: &M,
    sync: &SyncArgs,
    data_dir: &std::path::Path,
    conflict: &Conflict,
    keep: Side,
    how: How,
    clock: &dyn Clock,
) -> anyhow::Result<Resolved> {
    let now_ms = clock.now() * 1000;
    if keep == conflict.winner {
        if !how.dry_run {
            mark(store, conflict, keep, now_ms).await?;
        }
        return Ok(Resolved {
            plans: Vec::new(),
            to_outbox: false,
            dry_run: how.dry_run,
        });
    }
    let fields = sync.fields()?;
    let write = Write {
        fields: &fields,
        mappings,
        conflict,
        now_ms,
    };
    let token = sync.attio_token.as_deref().with_context(|| {
        format!(
            "set ATTIO_API_TOKEN (or --attio-token): keeping {}'s value writes it to Attio{}",
            keep.as_str(),
            match keep {
                Side::Attio => " too (the consumer synced HubSpot's winning value there)",
                Side::Hubspot => "",
            }
        )
    })?;
    let attio = sync.attio(token, None)?;
    let crm = sync.crm(data_dir)?;
    let to_outbox = matches!(crm, CrmTarget::Outbox(_));
    if to_outbox && how.deployed {
        bail!(
            "set HUBSPOT_TOKEN (or --hubspot-token): without it the HubSpot write only reaches the local outbox, and the deployment's sync ledger (--conflicts-table) must never record a value HubSpot did not get"
        );
    }
    // Both checks before any write: a newer edit on either side writes nothing on either.
    let mut plans = Vec::with_capacity(2);
    for side in [conflict.winner, conflict.loser()] {
        let plan = match (side, &crm) {
            (Side::Hubspot, CrmTarget::HubSpot(sink)) => {
                write.plan_hubspot(Some(sink), how.force).await?
            }
            (Side::Hubspot, CrmTarget::Outbox(_)) => {
                write.plan_hubspot(None::<&HubSpotSink>, how.force).await?
            }
            (Side::Attio, _) => write.plan_attio(&attio, how.force).await?,
        };
        plans.push(plan);
    }
    if !how.dry_run {
        let mut attio_form = None;
        for plan in &plans {
            match (plan.side(), &crm) {
                (Side::Hubspot, CrmTarget::HubSpot(sink)) => write.send_hubspot(sink, plan).await?,
                (Side::Hubspot, CrmTarget::Outbox(sink)) => write.send_hubspot(sink, plan).await?,
                (Side::Attio, _) => attio_form = Some(write.send_attio(&attio, plan).await?),
            }
        }
        write.record(attio_form).await?;
        mark(store, conflict, keep, now_ms).await?;
    }
    Ok(Resolved {
        plans,
        to_outbox,
        dry_run: how.dry_run,
    })
}

async fn mark<C: ConflictStore>(
    store: &C,
    conflict: &Conflict,
    keep: Side,
    now_ms: i64,
) -> anyhow::Result<()> {
    let resolution = Resolution {
        kept: keep,
        at_ms: now_ms,
    };
    store.resolve(&conflict.id, &resolution).await?;
    Ok(())
}

fn status(conflict: &Conflict) -> String {
    match &conflict.resolution {
        None => "open".to_owned(),
        Some(r) => format!("kept {}", r.kept.as_str()),
    }
}

fn to_json(c: &Conflict) -> Value {
    json!({
        "id": c.id,
        "object": c.object.as_str(),
        "attio_record_id": c.attio_record_id,
        "crm_id": c.crm_id,
        "property": c.property,
        "attribute": c.attribute,
        "attio": {"value": c.attio.value, "changed_at": iso_instant(c.attio.changed_at_ms)},
        "hubspot": {"value": c.hubspot.value, "changed_at": iso_instant(c.hubspot.changed_at_ms)},
        "winner": c.winner.as_str(),
        "detected_at": iso_instant(c.detected_at_ms),
        "resolution": c.resolution.as_ref().map(|r| json!({"kept": r.kept.as_str(), "at": iso_instant(r.at_ms)})),
    })
}

/// A value cut to `width` characters for the table (`show` prints it whole).
fn cell(value: Option<&str>, width: usize) -> String {
    let text = value.unwrap_or("(empty)");
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let cut: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{cut}…")
}

fn print_table(conflicts: &[Conflict]) {
    if conflicts.is_empty() {
        println!("no conflicts");
        return;
    }
    println!(
        "{:<24}  {:<9}  {:<36}  {:<16}  {:<24}  {:<24}  {:<24}  {:<24}  {:<7}  status",
        "id",
        "object",
        "record",
        "property",
        "attio value",
        "attio changed",
        "hubspot value",
        "hubspot changed",
        "winner"
    );
    for c in conflicts {
        println!(
            "{:<24}  {:<9}  {:<36}  {:<16}  {:<24}  {:<24}  {:<24}  {:<24}  {:<7}  {}",
            c.id,
            c.object.as_str(),
            c.attio_record_id,
            c.property,
            cell(c.attio.value.as_deref(), 24),
            iso_instant(c.attio.changed_at_ms),
            cell(c.hubspot.value.as_deref(), 24),
            iso_instant(c.hubspot.changed_at_ms),
            c.winner.as_str(),
            status(c)
        );
    }
}

fn print_one(c: &Conflict) {
    let value = |v: &Option<String>| v.clone().unwrap_or_else(|| "(empty)".to_owned());
    println!("conflict  {}", c.id);
    println!(
        "record    {} {} (HubSpot {} {})",
        c.object, c.attio_record_id, c.object, c.crm_id
    );
    println!("field     {} (Attio {})", c.property, c.attribute);
    println!(
        "attio     {}  changed {}",
        value(&c.attio.value),
        iso_instant(c.attio.changed_at_ms)
    );
    println!(
        "hubspot   {}  changed {}",
        value(&c.hubspot.value),
        iso_instant(c.hubspot.changed_at_ms)
    );
    println!(
        "winner    {} (the later change; synced to {})",
        c.winner.as_str(),
        c.loser().as_str()
    );
    println!("detected  {}", iso_instant(c.detected_at_ms));
    match &c.resolution {
        None => println!(
            "status    open: attio-relay conflicts resolve {} --keep attio|hubspot",
            c.id
        ),
        Some(r) => println!(
            "status    resolved {}: kept {}",
            iso_instant(r.at_ms),
            r.kept.as_str()
        ),
    }
}

#[cfg(test)]
mod tests;
