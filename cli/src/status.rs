//! `attio-relay status`: queue and DLQ depths, in-flight counts, oldest message age and the
//! newest deliveries — of a stage on AWS, or of the local run (`--local`, which with `--show`
//! also prints every queued message; this was `attio-relay queues`).
//!
//! Depths come from the [queue admin](crate::queues); the deliveries from the idempotency
//! records of the same backend (the stage's DynamoDB table, or the local SQLite file).

use std::collections::BTreeMap;

use relay_idempotency::SqliteIdempotencyStore;
use serde::Serialize;

use crate::queues::{Depth, QueueAdmin, QueueArgs, QueueMessage};

/// At most this many messages per queue with --show.
const SHOW_MAX: usize = 100;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub queues: QueueArgs,
    /// How many recent idempotency records to show.
    #[arg(long, default_value_t = 10)]
    pub recent: usize,
    /// Also print the messages on each local queue (up to 100 per queue): event type,
    /// idempotency key, receive count, body. Local only: reading an SQS queue's messages
    /// counts as a receive, which would push live messages toward their DLQ.
    #[arg(long, requires = "local")]
    pub show: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Delivery {
    idempotency_key: String,
    status: String,
    created_at: i64,
}

#[derive(Debug, Serialize)]
struct Status {
    queues: Vec<Depth>,
    recent_deliveries: Vec<Delivery>,
    /// With --show: each non-empty queue's messages, by queue name.
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<BTreeMap<String, Vec<QueueMessage>>>,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let admin = QueueAdmin::connect(&args.queues).await?;
    let names: Vec<String> = admin
        .pairs(None)
        .into_iter()
        .flat_map(|pair| [pair.source, pair.dlq])
        .collect();
    let queues = admin.depths(&names).await?;
    let messages = if args.show {
        let mut shown = BTreeMap::new();
        for depth in queues.iter().filter(|d| d.visible > 0) {
            shown.insert(
                depth.queue.clone(),
                admin.peek(&depth.queue, SHOW_MAX, true).await?,
            );
        }
        Some(shown)
    } else {
        None
    };
    let status = Status {
        queues,
        recent_deliveries: recent_deliveries(&admin, args.recent).await?,
        messages,
    };
    if args.json {
        println!("{}", serde_json::to_string(&status)?);
    } else {
        print(&status);
    }
    Ok(())
}

fn print(status: &Status) {
    println!(
        "{:<36} {:>8} {:>9} {:>12}",
        "queue", "visible", "in flight", "oldest"
    );
    for q in &status.queues {
        let oldest = q
            .oldest_age_secs
            .map_or_else(|| "-".to_owned(), |s| format!("{s}s"));
        println!(
            "{:<36} {:>8} {:>9} {:>12}",
            q.queue, q.visible, q.in_flight, oldest
        );
    }
    if let Some(messages) = &status.messages {
        println!();
        println!("messages:");
        if messages.is_empty() {
            println!("  (all queues are empty)");
        }
        // In the table's order, not the map's.
        for q in status
            .queues
            .iter()
            .filter(|q| messages.contains_key(&q.queue))
        {
            println!("{:<16} {} message(s)", q.queue, q.visible);
            for message in &messages[&q.queue] {
                println!(
                    "  - {:<26} key={} receives={}",
                    message.event_type.as_deref().unwrap_or("?"),
                    message.idempotency_key.as_deref().unwrap_or("?"),
                    message
                        .receive_count
                        .map_or_else(|| "?".to_owned(), |c| c.to_string()),
                );
                println!("    {}", message.body.as_deref().unwrap_or_default());
            }
        }
    }
    println!();
    println!("recent deliveries:");
    for d in &status.recent_deliveries {
        println!("  {:<12} {}  {}", d.status, d.created_at, d.idempotency_key);
    }
    if status.recent_deliveries.is_empty() {
        println!("  (none)");
    }
}

/// The newest `limit` idempotency records of the admin's backend, newest first.
async fn recent_deliveries(admin: &QueueAdmin, limit: usize) -> anyhow::Result<Vec<Delivery>> {
    match admin {
        QueueAdmin::Local(local) => Ok(SqliteIdempotencyStore::new(local.db().clone())
            .recent(limit)
            .await?
            .into_iter()
            .map(|r| Delivery {
                idempotency_key: r.key,
                status: r.status,
                created_at: r.created_at,
            })
            .collect()),
        QueueAdmin::Sqs(sqs) => {
            let table = format!("{}-idempotency", sqs.prefix());
            let scan = aws_sdk_dynamodb::Client::new(sqs.config())
                .scan()
                .table_name(&table)
                .limit(200)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("reading {table}: {}", e.into_service_error()))?;
            let mut recent: Vec<Delivery> = scan
                .items()
                .iter()
                .map(|item| {
                    let s = |k: &str| {
                        item.get(k)
                            .and_then(|v| v.as_s().ok())
                            .cloned()
                            .unwrap_or_default()
                    };
                    Delivery {
                        idempotency_key: s(relay_idempotency::KEY_ATTRIBUTE),
                        status: s("status"),
                        created_at: item
                            .get("created_at")
                            .and_then(|v| v.as_n().ok())
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0),
                    }
                })
                .collect();
            recent.sort_by_key(|d| std::cmp::Reverse(d.created_at));
            recent.truncate(limit);
            Ok(recent)
        }
    }
}
