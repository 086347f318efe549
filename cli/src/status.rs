//! `attio-relay status`: queue and DLQ depths, oldest message age, recent deliveries.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use relay_embedded::LocalDb;
use relay_events::EventFamily;
use relay_idempotency::SqliteIdempotencyStore;
use relay_queue::{SqliteQueue, dlq_name};
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Stage whose queues and table to read (attio-relay-<stage>-...).
    #[arg(long, default_value = "dev")]
    pub stage: String,
    /// Resource name prefix, instead of attio-relay-<stage>.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Endpoint for SQS and DynamoDB (an emulator).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Read the local run (attio-relay dev) instead of AWS.
    #[arg(long)]
    pub local: bool,
    #[arg(long, default_value_os_t = crate::default_data_dir(), env = "ATTIO_RELAY_DATA_DIR")]
    pub data_dir: PathBuf,
    /// How many recent idempotency records to show.
    #[arg(long, default_value_t = 10)]
    pub recent: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct QueueStatus {
    queue: String,
    visible: u64,
    in_flight: u64,
    /// Age of the oldest message (exact locally; the oldest of a sample on SQS).
    oldest_age_secs: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Delivery {
    idempotency_key: String,
    status: String,
    created_at: i64,
}

#[derive(Debug, Serialize)]
struct Status {
    queues: Vec<QueueStatus>,
    recent_deliveries: Vec<Delivery>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn age(sent_ms: i64) -> u64 {
    u64::try_from((now_ms() - sent_ms).max(0) / 1000).unwrap_or(0)
}

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let status = if args.local {
        local(&args).await?
    } else {
        aws(&args).await?
    };
    if args.json {
        println!("{}", serde_json::to_string(&status)?);
        return Ok(());
    }
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
    println!();
    println!("recent deliveries:");
    for d in &status.recent_deliveries {
        println!("  {:<12} {}  {}", d.status, d.created_at, d.idempotency_key);
    }
    if status.recent_deliveries.is_empty() {
        println!("  (none)");
    }
    Ok(())
}

async fn local(args: &StatusArgs) -> anyhow::Result<Status> {
    let path = crate::dev::database_file(&args.data_dir);
    anyhow::ensure!(
        path.exists(),
        "{} does not exist: no local run here (see attio-relay dev)",
        path.display()
    );
    let db = LocalDb::open(&path)?;
    let queue = SqliteQueue::new(db.clone(), 5);
    let depths = queue.depths().await?;
    let oldest = queue.oldest().await?;
    let mut queues = Vec::new();
    for family in EventFamily::ALL {
        for name in [family.as_str().to_owned(), dlq_name(family.as_str())] {
            let visible = depths
                .iter()
                .find(|(q, _)| *q == name)
                .map_or(0, |(_, n)| *n);
            queues.push(QueueStatus {
                oldest_age_secs: oldest
                    .iter()
                    .find(|(q, _)| *q == name)
                    .map(|(_, sent)| age(*sent)),
                queue: name,
                visible: u64::try_from(visible).unwrap_or(0),
                in_flight: 0,
            });
        }
    }
    let recent = SqliteIdempotencyStore::new(db)
        .recent(args.recent)
        .await?
        .into_iter()
        .map(|r| Delivery {
            idempotency_key: r.key,
            status: r.status,
            created_at: r.created_at,
        })
        .collect();
    Ok(Status {
        queues,
        recent_deliveries: recent,
    })
}

async fn aws(args: &StatusArgs) -> anyhow::Result<Status> {
    let mut loader = aws_config::from_env();
    if let Some(url) = &args.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let config = loader.load().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let prefix = args
        .prefix
        .clone()
        .unwrap_or_else(|| format!("attio-relay-{}", args.stage));
    let mut queues = Vec::new();
    for family in EventFamily::ALL {
        for name in [
            format!("{prefix}-{family}"),
            format!("{prefix}-{family}-dlq"),
        ] {
            let url = sqs
                .get_queue_url()
                .queue_name(&name)
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "queue {name}: {} (check --stage and AWS credentials)",
                        e.into_service_error()
                    )
                })?
                .queue_url
                .context("no queue URL")?;
            let attrs = sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("reading {name}: {}", e.into_service_error()))?
                .attributes
                .unwrap_or_default();
            let read =
                |a: QueueAttributeName| attrs.get(&a).and_then(|v| v.parse().ok()).unwrap_or(0);
            // SQS has no "oldest message" attribute; sample without consuming (visibility 0).
            let sample = sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                .send()
                .await
                .ok()
                .and_then(|o| o.messages)
                .unwrap_or_default();
            let oldest = sample
                .iter()
                .filter_map(|m| {
                    m.attributes()
                        .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                })
                .filter_map(|t| t.parse::<i64>().ok())
                .min();
            queues.push(QueueStatus {
                queue: name,
                visible: read(QueueAttributeName::ApproximateNumberOfMessages),
                in_flight: read(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
                oldest_age_secs: oldest.map(age),
            });
        }
    }
    let table = format!("{prefix}-idempotency");
    let scan = aws_sdk_dynamodb::Client::new(&config)
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
                idempotency_key: s("idempotency_key"),
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
    recent.truncate(args.recent);
    Ok(Status {
        queues,
        recent_deliveries: recent,
    })
}
