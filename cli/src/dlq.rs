//! `attio-relay dlq list|show|replay|purge`: inspect and replay the dead-letter queues, on AWS
//! (SQS, named `<prefix>-<family>-dlq` as the SAM template names them) or locally (`--local`).
//!
//! Replay on SQS is receive → send to the source queue → record in a journal → delete, one
//! batch of 10 at a time. Stopping anywhere loses nothing: a message is deleted from the DLQ
//! only after the source queue accepted it. The journal (in the data folder) remembers what was
//! already sent, so a replay that stopped between sending and deleting is completed by the next
//! run without sending those messages twice. (A run killed while a send is in flight cannot know
//! whether SQS accepted it; such a message may be sent again — consumers are idempotent.)
//! `--native` instead asks SQS to move the messages itself (StartMessageMoveTask).

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use indicatif::{ProgressBar, ProgressStyle};
use relay_embedded::LocalDb;
use relay_events::EventFamily;
use relay_queue::{SqliteQueue, dlq_name};
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub command: DlqCommand,
    /// Only this family's DLQ (default: all five).
    #[arg(long, global = true)]
    pub family: Option<EventFamily>,
    /// Stage whose queues to use: queues are named attio-relay-<stage>-<family>[-dlq].
    #[arg(long, global = true, default_value = "dev")]
    pub stage: String,
    /// Queue name prefix, instead of attio-relay-<stage>.
    #[arg(long, global = true)]
    pub queue_prefix: Option<String>,
    /// Endpoint for SQS (an emulator); credentials and region come from the AWS environment.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Use the local run's queues (attio-relay dev) instead of SQS.
    #[arg(long, global = true)]
    pub local: bool,
    /// Folder of the local run, and of the replay journal.
    #[arg(long, global = true, default_value_os_t = crate::default_data_dir(), env = "ATTIO_RELAY_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Print JSON (one object) instead of text, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// List dead-lettered messages: event type, idempotency key, receive count, failure reason.
    List {
        /// At most this many messages per queue.
        #[arg(long, default_value_t = 100)]
        max: usize,
    },
    /// Show one message whole (body and attributes).
    Show { message_id: String },
    /// Send messages back to the queue they failed on, then delete them from the DLQ.
    Replay {
        /// Only messages of this event type (e.g. note.created).
        #[arg(long)]
        event_type: Option<String>,
        /// Only these message ids (repeatable).
        #[arg(long = "id")]
        ids: Vec<String>,
        /// Let SQS move every message itself (StartMessageMoveTask); no filters.
        #[arg(long, conflicts_with_all = ["event_type", "ids"])]
        native: bool,
        /// Seconds a received message stays hidden from other readers while it is replayed.
        #[arg(long, default_value_t = 60)]
        visibility_timeout: i32,
        /// Test hook: abort after journalling this many batches, before deleting (a crash).
        #[arg(long, hide = true)]
        abort_after_batches: Option<usize>,
    },
    /// Delete every message in the DLQ. Needs --yes.
    Purge {
        #[arg(long)]
        yes: bool,
    },
}

/// One dead-lettered message as shown to operators.
#[derive(Debug, Clone, Serialize)]
struct DeadLetter {
    queue: String,
    message_id: String,
    event_type: Option<String>,
    idempotency_key: Option<String>,
    receive_count: Option<u32>,
    failure_reason: Option<String>,
    sent_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
}

fn families(args: &DlqArgs) -> Vec<EventFamily> {
    args.family
        .map_or_else(|| EventFamily::ALL.to_vec(), |f| vec![f])
}

fn prefix(args: &DlqArgs) -> String {
    args.queue_prefix
        .clone()
        .unwrap_or_else(|| format!("attio-relay-{}", args.stage))
}

pub async fn run(args: DlqArgs) -> anyhow::Result<()> {
    if args.local {
        return run_local(&args).await;
    }
    let mut loader = aws_config::from_env();
    if let Some(url) = &args.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let sqs = Client::new(&loader.load().await);
    let prefix = prefix(&args);
    let mut report = BTreeMap::new();
    for family in families(&args) {
        let dlq_name = format!("{prefix}-{family}-dlq");
        let source_name = format!("{prefix}-{family}");
        let dlq = queue_url(&sqs, &dlq_name).await?;
        let value = match &args.command {
            DlqCommand::List { max } => {
                let letters = peek(&sqs, &dlq, &dlq_name, *max, false).await?;
                print_letters(&args, &letters);
                serde_json::to_value(letters)?
            }
            DlqCommand::Show { message_id } => {
                let letters = peek(&sqs, &dlq, &dlq_name, usize::MAX, true).await?;
                match show(&args, letters, message_id)? {
                    Some(value) => value,
                    None => continue,
                }
            }
            DlqCommand::Replay {
                event_type,
                ids,
                native,
                visibility_timeout,
                abort_after_batches,
            } => {
                let source = queue_url(&sqs, &source_name).await?;
                let summary = if *native {
                    native_move(&sqs, &dlq, &source).await?
                } else {
                    let selector = Selector {
                        event_type: event_type.clone(),
                        ids: ids.iter().cloned().collect(),
                    };
                    let journal = Journal::open(&args.data_dir, &dlq_name)?;
                    replay(
                        &sqs,
                        &dlq,
                        &source,
                        &selector,
                        journal,
                        *visibility_timeout,
                        *abort_after_batches,
                        args.json,
                    )
                    .await?
                };
                if !args.json {
                    println!("{dlq_name} -> {source_name}: {summary}");
                }
                serde_json::to_value(summary)?
            }
            DlqCommand::Purge { yes } => {
                if !yes {
                    bail!(
                        "purge deletes every message in {dlq_name} for good: add --yes to confirm"
                    );
                }
                let depth = depth(&sqs, &dlq).await?.0;
                sqs.purge_queue()
                    .queue_url(&dlq)
                    .send()
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!("purging {dlq_name}: {}", e.into_service_error())
                    })?;
                if !args.json {
                    println!("{dlq_name}: purged about {depth} message(s)");
                }
                serde_json::json!({"purged": depth})
            }
        };
        report.insert(dlq_name, value);
    }
    if let DlqCommand::Show { message_id } = &args.command
        && report.is_empty()
    {
        bail!("no dead-lettered message {message_id} in {prefix}-*-dlq");
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

async fn queue_url(sqs: &Client, name: &str) -> anyhow::Result<String> {
    sqs.get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "queue {name} not found ({}): check --stage/--queue-prefix, the region, and your AWS credentials",
                e.into_service_error()
            )
        })?
        .queue_url
        .context("SQS returned no queue URL")
}

/// (visible, in flight) message counts.
async fn depth(sqs: &Client, url: &str) -> anyhow::Result<(u64, u64)> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("reading {url}: {}", e.into_service_error()))?;
    let attrs = out.attributes.unwrap_or_default();
    let read =
        |name: QueueAttributeName| attrs.get(&name).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok((
        read(QueueAttributeName::ApproximateNumberOfMessages),
        read(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    ))
}

async fn receive(sqs: &Client, url: &str, visibility: i32) -> anyhow::Result<Vec<Message>> {
    Ok(sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(visibility)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("receiving from {url}: {}", e.into_service_error()))?
        .messages
        .unwrap_or_default())
}

fn attribute(message: &Message, name: &str) -> Option<String> {
    message
        .message_attributes()
        .and_then(|a| a.get(name))
        .and_then(|v| v.string_value())
        .map(str::to_owned)
}

fn letter(queue: &str, message: &Message, with_body: bool) -> DeadLetter {
    let system =
        |name: MessageSystemAttributeName| message.attributes().and_then(|a| a.get(&name)).cloned();
    DeadLetter {
        queue: queue.to_owned(),
        message_id: message.message_id().unwrap_or_default().to_owned(),
        event_type: attribute(message, "event_type"),
        idempotency_key: attribute(message, "idempotency_key"),
        receive_count: system(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|c| c.parse().ok()),
        failure_reason: attribute(message, "failure_reason"),
        sent_at: system(MessageSystemAttributeName::SentTimestamp),
        body: with_body.then(|| message.body().unwrap_or_default().to_owned()),
    }
}

/// Reads up to `max` messages without consuming them: each is received, then made visible
/// again at once.
async fn peek(
    sqs: &Client,
    url: &str,
    queue: &str,
    max: usize,
    with_body: bool,
) -> anyhow::Result<Vec<DeadLetter>> {
    let mut seen = HashSet::new();
    let mut letters = Vec::new();
    let mut receipts = Vec::new();
    while letters.len() < max {
        let batch = receive(sqs, url, 30).await?;
        if batch.is_empty() {
            break;
        }
        for message in batch {
            receipts.extend(message.receipt_handle().map(str::to_owned));
            if seen.insert(message.message_id().unwrap_or_default().to_owned())
                && letters.len() < max
            {
                letters.push(letter(queue, &message, with_body));
            }
        }
    }
    for receipt in receipts {
        let _ = sqs
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await;
    }
    Ok(letters)
}

/// Prints the letter with `message_id`, if it is among `letters`; returns it for `--json`.
fn show(
    args: &DlqArgs,
    letters: Vec<DeadLetter>,
    message_id: &str,
) -> anyhow::Result<Option<serde_json::Value>> {
    let Some(letter) = letters.into_iter().find(|l| l.message_id == message_id) else {
        return Ok(None);
    };
    if !args.json {
        println!("{}", serde_json::to_string_pretty(&letter)?);
    }
    Ok(Some(serde_json::to_value(letter)?))
}

fn print_letters(args: &DlqArgs, letters: &[DeadLetter]) {
    if args.json {
        return;
    }
    for l in letters {
        println!(
            "{}  {:<24} receives={:<3} key={}  reason={}",
            l.message_id,
            l.event_type.as_deref().unwrap_or("?"),
            l.receive_count
                .map_or_else(|| "?".to_owned(), |c| c.to_string()),
            l.idempotency_key.as_deref().unwrap_or("?"),
            l.failure_reason
                .as_deref()
                .unwrap_or("(redriven after maxReceiveCount)"),
        );
    }
    if letters.is_empty() {
        println!("(empty)");
    }
}

/// Which dead letters to replay.
struct Selector {
    event_type: Option<String>,
    ids: HashSet<String>,
}

impl Selector {
    fn matches(&self, message: &Message) -> bool {
        let id_ok =
            self.ids.is_empty() || message.message_id().is_some_and(|id| self.ids.contains(id));
        let type_ok = self
            .event_type
            .as_ref()
            .is_none_or(|t| attribute(message, "event_type").as_deref() == Some(t.as_str()));
        id_ok && type_ok
    }
}

/// Message ids of one DLQ already sent back, so a resumed replay does not send them twice.
struct Journal {
    path: PathBuf,
    sent: HashSet<String>,
}

impl Journal {
    fn open(data_dir: &Path, dlq: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let path = data_dir.join(format!("replay-journal-{dlq}.log"));
        let sent = match std::fs::read_to_string(&path) {
            Ok(text) => text.lines().map(str::to_owned).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashSet::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Ok(Self { path, sent })
    }

    fn record(&mut self, ids: &[String]) -> anyhow::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        for id in ids {
            writeln!(file, "{id}")?;
        }
        file.sync_all()?;
        self.sent.extend(ids.iter().cloned());
        Ok(())
    }

    /// A finished replay leaves nothing to resume.
    fn clear(self) -> anyhow::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Default, Serialize)]
struct ReplaySummary {
    replayed: usize,
    /// Sent by an earlier, interrupted run; only deleted now.
    resumed: usize,
    /// Received but not matching the filters; left in the DLQ.
    skipped: usize,
    native_task: Option<String>,
}

impl std::fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(task) = &self.native_task {
            return write!(f, "SQS move task started ({task})");
        }
        write!(
            f,
            "replayed {} message(s); {} finished from an interrupted run; {} left (not matching)",
            self.replayed, self.resumed, self.skipped
        )
    }
}

fn copy_attributes(message: &Message) -> Vec<(String, MessageAttributeValue)> {
    message
        .message_attributes()
        .map(|attrs| attrs.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
async fn replay(
    sqs: &Client,
    dlq: &str,
    source: &str,
    selector: &Selector,
    mut journal: Journal,
    visibility: i32,
    abort_after_batches: Option<usize>,
    quiet: bool,
) -> anyhow::Result<ReplaySummary> {
    let (visible, _) = depth(sqs, dlq).await?;
    let progress = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(visible)
    };
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} replaying [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut summary = ReplaySummary::default();
    let mut skipped_receipts: Vec<String> = Vec::new();
    let mut skipped_ids: HashSet<String> = HashSet::new();
    let mut batches = 0;
    let mut idle_rounds = 0;
    loop {
        let batch = receive(sqs, dlq, visibility).await?;
        if batch.is_empty() {
            // Messages an interrupted run was holding come back after the visibility timeout.
            let (_, in_flight) = depth(sqs, dlq).await?;
            let others = in_flight.saturating_sub(skipped_ids.len() as u64);
            // Half-second polls for up to the visibility timeout plus a margin.
            if others == 0 || idle_rounds > (visibility.max(1) + 5) * 2 {
                if others > 0 {
                    progress.suspend(|| {
                        eprintln!(
                            "{others} message(s) are still held by another reader; run the replay again after its visibility timeout"
                        );
                    });
                }
                break;
            }
            idle_rounds += 1;
            progress.set_message(format!("waiting for {others} in-flight message(s)"));
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        idle_rounds = 0;
        let (selected, skipped): (Vec<Message>, Vec<Message>) =
            batch.into_iter().partition(|m| selector.matches(m));
        for m in skipped {
            if skipped_ids.insert(m.message_id().unwrap_or_default().to_owned()) {
                summary.skipped += 1;
            }
            skipped_receipts.extend(m.receipt_handle().map(str::to_owned));
        }
        if selected.is_empty() {
            continue;
        }
        let (resumed, to_send): (Vec<&Message>, Vec<&Message>) = selected
            .iter()
            .partition(|m| m.message_id().is_some_and(|id| journal.sent.contains(id)));
        if !to_send.is_empty() {
            send_all(sqs, source, &to_send).await?;
            let ids: Vec<String> = to_send
                .iter()
                .filter_map(|m| m.message_id().map(str::to_owned))
                .collect();
            journal.record(&ids)?;
        }
        batches += 1;
        if abort_after_batches.is_some_and(|n| batches >= n) {
            // Test hook: die between journalling and deleting, like a killed process.
            std::process::abort();
        }
        let entries: Vec<DeleteMessageBatchRequestEntry> = selected
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
                    .ok()
            })
            .collect();
        let deleted = sqs
            .delete_message_batch()
            .queue_url(dlq)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("deleting replayed messages: {}", e.into_service_error())
            })?;
        if !deleted.failed.is_empty() {
            // They were sent and journalled: the next run deletes them without resending.
            bail!(
                "{} replayed message(s) could not be deleted from the DLQ; run the replay again to finish",
                deleted.failed.len()
            );
        }
        summary.resumed += resumed.len();
        summary.replayed += to_send.len();
        progress.inc(selected.len() as u64);
    }
    for receipt in skipped_receipts {
        let _ = sqs
            .change_message_visibility()
            .queue_url(dlq)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await;
    }
    progress.finish_and_clear();
    journal.clear()?;
    Ok(summary)
}

/// Sends copies to the source queue (body and attributes unchanged, plus where they came from),
/// retrying entries SQS failed on its side.
async fn send_all(sqs: &Client, source: &str, messages: &[&Message]) -> anyhow::Result<()> {
    let replayed_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut pending: Vec<&Message> = messages.to_vec();
    for attempt in 1u64..=3 {
        let entries = pending
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut entry = SendMessageBatchRequestEntry::builder()
                    .id(format!("r{i}"))
                    .message_body(m.body().unwrap_or_default());
                for (name, value) in copy_attributes(m) {
                    if !matches!(
                        name.as_str(),
                        "failure_reason" | "failed_at" | "source_message_id"
                    ) {
                        entry = entry.message_attributes(name, value);
                    }
                }
                let replayed = |v: String| {
                    MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(v)
                        .build()
                };
                entry = entry
                    .message_attributes(
                        "replayed_from",
                        replayed(m.message_id().unwrap_or_default().to_owned())?,
                    )
                    .message_attributes("replayed_at", replayed(replayed_at.to_string())?);
                entry.build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = sqs
            .send_message_batch()
            .queue_url(source)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("sending to {source}: {}", e.into_service_error()))?;
        if out.failed.is_empty() {
            return Ok(());
        }
        let failed: HashSet<usize> = out
            .failed
            .iter()
            .filter_map(|f| f.id.strip_prefix('r').and_then(|i| i.parse().ok()))
            .collect();
        if attempt == 3 || out.failed.iter().any(|f| f.sender_fault) {
            bail!(
                "SQS refused {} replayed message(s): {}",
                failed.len(),
                out.failed[0].message.clone().unwrap_or_default()
            );
        }
        pending = pending
            .into_iter()
            .enumerate()
            .filter(|(i, _)| failed.contains(i))
            .map(|(_, m)| m)
            .collect();
        tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
    }
    Ok(())
}

async fn native_move(sqs: &Client, dlq: &str, source: &str) -> anyhow::Result<ReplaySummary> {
    let arn = |url: String| async move {
        sqs.get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .ok()
            .and_then(|o| o.attributes)
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .with_context(|| format!("cannot read the ARN of {url}"))
    };
    let (dlq_arn, source_arn) = (arn(dlq.to_owned()).await?, arn(source.to_owned()).await?);
    let task = sqs
        .start_message_move_task()
        .source_arn(&dlq_arn)
        .destination_arn(&source_arn)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "StartMessageMoveTask failed ({}); emulators do not support it: replay without --native",
                e.into_service_error()
            )
        })?;
    Ok(ReplaySummary {
        native_task: task.task_handle,
        ..ReplaySummary::default()
    })
}

async fn run_local(args: &DlqArgs) -> anyhow::Result<()> {
    let path = crate::dev::database_file(&args.data_dir);
    anyhow::ensure!(
        path.exists(),
        "{} does not exist: no local run here (see attio-relay dev)",
        path.display()
    );
    let queue = SqliteQueue::new(LocalDb::open(&path)?, 5);
    let mut report = BTreeMap::new();
    for family in families(args) {
        let dlq = dlq_name(family.as_str());
        let letters: Vec<DeadLetter> = queue
            .peek(&dlq)
            .await?
            .into_iter()
            .map(|m| DeadLetter {
                queue: dlq.clone(),
                message_id: m.message_id,
                event_type: Some(m.attributes.event_type),
                idempotency_key: Some(m.attributes.idempotency_key),
                receive_count: Some(m.receive_count),
                failure_reason: m.failure_reason,
                sent_at: Some(m.sent_at_ms.to_string()),
                body: Some(m.body),
            })
            .collect();
        let value = match &args.command {
            DlqCommand::List { max } => {
                let shown: Vec<DeadLetter> = letters
                    .into_iter()
                    .take(*max)
                    .map(|l| DeadLetter { body: None, ..l })
                    .collect();
                print_letters(args, &shown);
                serde_json::to_value(shown)?
            }
            DlqCommand::Show { message_id } => match show(args, letters, message_id)? {
                Some(value) => value,
                None => continue,
            },
            DlqCommand::Replay {
                event_type, ids, ..
            } => {
                let selected: Vec<String> = letters
                    .iter()
                    .filter(|l| ids.is_empty() || ids.contains(&l.message_id))
                    .filter(|l| event_type.is_none() || l.event_type == *event_type)
                    .map(|l| l.message_id.clone())
                    .collect();
                let moved = if selected.is_empty() {
                    0
                } else {
                    queue.replay(&dlq, &selected).await?
                };
                if !args.json {
                    println!("{dlq} -> {family}: replayed {moved} message(s)");
                }
                serde_json::json!({"replayed": moved})
            }
            DlqCommand::Purge { yes } => {
                if !yes {
                    bail!("purge deletes every message in {dlq} for good: add --yes to confirm");
                }
                let purged = queue.purge(&dlq).await?;
                if !args.json {
                    println!("{dlq}: purged {purged} message(s)");
                }
                serde_json::json!({"purged": purged})
            }
        };
        report.insert(dlq, value);
    }
    if let DlqCommand::Show { message_id } = &args.command
        && report.is_empty()
    {
        bail!("no dead-lettered message {message_id} in the local DLQs");
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}
