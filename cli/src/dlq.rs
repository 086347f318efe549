//! `attio-relay dlq list|show|replay|purge`: inspect and replay the dead-letter queues, on AWS
//! (SQS) or locally (`--local`), through the [queue admin](crate::queues).
//!
//! This module is the command's face only: flags, what is printed, the `--json` report (one
//! object keyed by DLQ name). How each backend lists, replays and purges — and why an SQS
//! replay can be stopped anywhere — is in `queues::sqs` and `queues::sqlite`.

use std::collections::BTreeMap;

use anyhow::bail;
use relay_events::EventFamily;

use crate::queues::{QueueAdmin, QueueArgs, QueueMessage, ReplayRequest, Selector};

#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub command: DlqCommand,
    /// Only this family's DLQ (default: all five).
    #[arg(long, global = true)]
    pub family: Option<EventFamily>,
    #[command(flatten)]
    pub queues: QueueArgs,
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
    ///
    /// On SQS each batch of 10 is sent, journalled in --data-dir, then deleted: stop it
    /// anywhere and run it again, and it finishes without sending a journalled message twice.
    /// Locally the messages move back in one transaction.
    Replay {
        /// Only messages of this event type (e.g. note.created).
        #[arg(long)]
        event_type: Option<String>,
        /// Only these message ids (repeatable).
        #[arg(long = "id")]
        ids: Vec<String>,
        /// Let SQS move every message itself (StartMessageMoveTask); no filters. Emulators
        /// lack it. Ignored with --local, where a replay is one transaction anyway.
        #[arg(long, conflicts_with_all = ["event_type", "ids"])]
        native: bool,
        /// Seconds a received message stays hidden from other readers while it is replayed
        /// (SQS); an interrupted run's batch comes back after it.
        #[arg(long, default_value_t = 60)]
        visibility_timeout: i32,
    },
    /// Delete every message in the DLQ. Needs --yes.
    Purge {
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(args: DlqArgs) -> anyhow::Result<()> {
    let admin = QueueAdmin::connect(&args.queues).await?;
    let mut report = BTreeMap::new();
    for pair in admin.pairs(args.family) {
        let value = match &args.command {
            DlqCommand::List { max } => {
                let letters = admin.peek(&pair.dlq, *max, false).await?;
                print_letters(&args, &letters);
                serde_json::to_value(letters)?
            }
            DlqCommand::Show { message_id } => {
                let Some(letter) = admin.find(&pair.dlq, message_id).await? else {
                    continue;
                };
                if !args.json {
                    println!("{}", serde_json::to_string_pretty(&letter)?);
                }
                serde_json::to_value(letter)?
            }
            DlqCommand::Replay {
                event_type,
                ids,
                native,
                visibility_timeout,
            } => {
                let request = ReplayRequest {
                    selector: Selector {
                        event_type: event_type.clone(),
                        ids: ids.iter().cloned().collect(),
                    },
                    native: *native,
                    visibility_timeout: *visibility_timeout,
                    journal_dir: &args.queues.data_dir,
                    progress: !args.json,
                };
                let replayed = admin.replay(&pair, &request).await?;
                if !args.json {
                    println!("{} -> {}: {replayed}", pair.dlq, pair.source);
                }
                serde_json::to_value(replayed)?
            }
            DlqCommand::Purge { yes } => {
                if !yes {
                    bail!(
                        "purge deletes every message in {} for good: add --yes to confirm",
                        pair.dlq
                    );
                }
                let purged = admin.purge(&pair.dlq).await?;
                if !args.json {
                    println!("{}: {purged}", pair.dlq);
                }
                serde_json::json!({"purged": purged.count})
            }
        };
        report.insert(pair.dlq, value);
    }
    if let DlqCommand::Show { message_id } = &args.command
        && report.is_empty()
    {
        bail!(
            "no dead-lettered message {message_id} in {}",
            admin.dlqs_described()
        );
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

fn print_letters(args: &DlqArgs, letters: &[QueueMessage]) {
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
