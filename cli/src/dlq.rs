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
    /// Show dead letters whole (body and attributes): the one given, or the first --limit.
    Show {
        /// The message to show; without it, the first --limit messages of each DLQ.
        message_id: Option<String>,
        /// At most this many messages are read per DLQ (on SQS each read counts as a
        /// receive and hides the message for a moment, so a large DLQ is never read whole);
        /// how many more there are is printed.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
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
    // DLQs larger than `dlq show --limit` that a searched id was not found in.
    let mut not_found_within: Vec<String> = Vec::new();
    // Messages the source queues refused during a replay (left in the DLQs).
    let mut refused = 0;
    for pair in admin.pairs(args.family) {
        let value = match &args.command {
            DlqCommand::List { max } => {
                let letters = admin.peek(&pair.dlq, *max, false).await?;
                print_letters(&args, &letters);
                if !args.json {
                    print_more(&admin, &pair.dlq, letters.len(), "--max").await?;
                }
                serde_json::to_value(letters)?
            }
            DlqCommand::Show {
                message_id: Some(message_id),
                limit,
            } => {
                let Some(letter) = admin.find(&pair.dlq, message_id, *limit).await? else {
                    let (total, _) = admin.total(&pair.dlq).await?;
                    if total as usize > *limit {
                        not_found_within.push(format!("{} ({total} messages)", pair.dlq));
                    }
                    continue;
                };
                if !args.json {
                    println!("{}", serde_json::to_string_pretty(&letter)?);
                }
                serde_json::to_value(letter)?
            }
            DlqCommand::Show {
                message_id: None,
                limit,
            } => {
                let letters = admin.peek(&pair.dlq, *limit, true).await?;
                let (total, _) = admin.total(&pair.dlq).await?;
                let more = total.saturating_sub(letters.len() as u64);
                if !args.json {
                    for letter in &letters {
                        println!("{}", serde_json::to_string_pretty(letter)?);
                    }
                    if letters.is_empty() {
                        println!("{}: (empty)", pair.dlq);
                    }
                    print_more(&admin, &pair.dlq, letters.len(), "--limit").await?;
                }
                serde_json::json!({"messages": letters, "more": more})
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
                refused += replayed.refused();
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
    if let DlqCommand::Show {
        message_id: Some(message_id),
        limit,
    } = &args.command
        && report.is_empty()
    {
        if !not_found_within.is_empty() {
            bail!(
                "no dead-lettered message {message_id} among the first {limit} read of {}: raise --limit to search further",
                not_found_within.join(", ")
            );
        }
        bail!(
            "no dead-lettered message {message_id} in {}",
            admin.dlqs_described()
        );
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    if refused > 0 {
        bail!(
            "the source queue refused {refused} message(s); they are still in the DLQ: run the replay again"
        );
    }
    Ok(())
}

/// "N more" under a bounded listing of `dlq`, when there are more than `shown`.
async fn print_more(admin: &QueueAdmin, dlq: &str, shown: usize, flag: &str) -> anyhow::Result<()> {
    let (total, approximate) = admin.total(dlq).await?;
    let more = total.saturating_sub(shown as u64);
    if more > 0 {
        let about = if approximate { "about " } else { "" };
        println!("{dlq}: {about}{more} more not shown ({flag} to see more)");
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
