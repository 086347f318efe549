//! One design's run: fresh stand-ins, a fresh `attio-relay dev` on a temporary data folder,
//! the event stream sent, then waiting until HubSpot holds every record's final values.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use integration_tests::cli::Cli;
use relay_embedded::LocalDb;
use relay_queue::SqliteQueue;
use relay_signature::WebhookSecret;

use crate::args::{BurstArgs, Design};
use crate::attio::{self, AttioStandin};
use crate::hubspot::{self, HubSpotStandin};
use crate::plan::{Plan, SendProgress, send};
use crate::reference;
use crate::report::{DesignResult, measure};

const ATTIO_TOKEN: &str = "burst-attio-token";
const HUBSPOT_TOKEN: &str = "burst-hubspot-token";

/// Both stand-ins, served on loopback for one design's run.
pub struct Standins {
    pub attio: Arc<AttioStandin>,
    pub hubspot: Arc<HubSpotStandin>,
    pub attio_url: String,
    pub hubspot_url: String,
    tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Standins {
    pub async fn start(record_ids: &[String]) -> anyhow::Result<Self> {
        let attio = Arc::new(AttioStandin::new(ATTIO_TOKEN, record_ids));
        let hubspot = Arc::new(HubSpotStandin::new(HUBSPOT_TOKEN, record_ids));
        let attio_app = axum::Router::new()
            .fallback(attio::handle)
            .with_state(Arc::clone(&attio));
        let hubspot_app = axum::Router::new()
            .fallback(hubspot::handle)
            .with_state(Arc::clone(&hubspot));
        let (attio_listener, hubspot_listener) = (
            tokio::net::TcpListener::bind("127.0.0.1:0").await?,
            tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        );
        let attio_url = format!("http://{}/v2", attio_listener.local_addr()?);
        let hubspot_url = format!("http://{}", hubspot_listener.local_addr()?);
        let tasks = vec![
            tokio::spawn(async move { axum::serve(attio_listener, attio_app).await }),
            tokio::spawn(async move { axum::serve(hubspot_listener, hubspot_app).await }),
        ];
        Ok(Self {
            attio,
            hubspot,
            attio_url,
            hubspot_url,
            tasks,
        })
    }
}

impl Drop for Standins {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

/// How many of the records HubSpot holds at their final version.
fn settled(hubspot: &HubSpotStandin, plan: &Plan, finals: &[u64]) -> usize {
    let contacts = hubspot.contacts.lock().expect("hubspot contacts");
    plan.record_ids
        .iter()
        .zip(finals)
        .filter(|(id, v)| contacts.get(*id).is_some_and(|c| c.version == **v))
        .count()
}

/// Runs `design` over `plan`; the result as measured.
pub async fn run_design(
    design: Design,
    args: &BurstArgs,
    plan: Arc<Plan>,
) -> anyhow::Result<DesignResult> {
    let standins = Standins::start(&plan.record_ids).await?;
    let data_dir = tempfile::Builder::new()
        .prefix("attio-relay-burst-")
        .tempdir()
        .context("cannot create a temporary data folder")?;
    let secret = WebhookSecret::new(format!("whsec_burst_{}", uuid::Uuid::new_v4().simple()))
        .context("generated secret is empty")?;
    let relay_bin = args.relay_bin()?;
    let mut cli = Cli::new(&relay_bin)
        .env("ATTIO_WEBHOOK_SECRETS", secret.expose())
        .env("RUST_LOG", "warn")
        .without("SIGNATURE_POLICY")
        .without("FIELD_MAPPING")
        .without("FIELD_MAPPING_FILE");
    cli = match design {
        Design::Relay => cli
            .env("ATTIO_API_TOKEN", ATTIO_TOKEN)
            .env("ATTIO_API_URL", &standins.attio_url)
            .env("HUBSPOT_TOKEN", HUBSPOT_TOKEN)
            .env("HUBSPOT_API_URL", &standins.hubspot_url),
        // Ingest only: the tool's reference consumer drains the queue.
        Design::Reference => cli.without("ATTIO_API_TOKEN").without("HUBSPOT_TOKEN"),
    };
    let dev = cli.start_dev(data_dir.path(), &[]);
    let url = reqwest::Url::parse(&dev.url)?;
    let queue = open_queue(data_dir.path())?;

    let stop = Arc::new(AtomicBool::new(false));
    let consumers = match design {
        Design::Relay => Vec::new(),
        Design::Reference => reference::spawn(
            queue.clone(),
            reference::Apis {
                attio_url: standins.attio_url.clone(),
                attio_token: ATTIO_TOKEN.into(),
                hubspot_url: standins.hubspot_url.clone(),
                hubspot_token: HUBSPOT_TOKEN.into(),
            },
            usize::try_from(args.reference_workers).unwrap_or(10),
            Arc::clone(&stop),
        )?,
    };

    let finals = plan.final_versions();
    let progress = Arc::new(SendProgress::default());
    let started = Instant::now();
    let sender = tokio::spawn(send(
        Arc::clone(&plan),
        Arc::clone(&standins.attio),
        url,
        secret,
        args.rate.per_second(),
        usize::try_from(args.concurrency).unwrap_or(16),
        Arc::clone(&progress),
    ));
    let deadline = started + Duration::from_secs(args.max_duration);
    let mut next_line = started;
    let mut sent = None;
    let mut sender = Some(sender);
    let drained = loop {
        if let Some(task) = sender.take_if(|t| t.is_finished()) {
            sent = Some(task.await.context("the sender panicked")??);
        }
        let done = settled(&standins.hubspot, &plan, &finals);
        if sent.is_some() && done == plan.record_ids.len() {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        if !args.json && Instant::now() >= next_line {
            next_line += Duration::from_secs(2);
            eprintln!(
                "[{design} {:>5.1}s] sent {}/{}  acked {}  final in HubSpot {done}/{}  \
                 Attio {} (429: {})  HubSpot {} (429: {})",
                started.elapsed().as_secs_f64(),
                progress.sent.load(Ordering::Relaxed),
                plan.events.len(),
                progress.acknowledged.load(Ordering::Relaxed),
                plan.record_ids.len(),
                standins.attio.counts.served(),
                standins.attio.counts.rate_limited.load(Ordering::Relaxed),
                standins.hubspot.counts.served(),
                standins.hubspot.counts.rate_limited.load(Ordering::Relaxed),
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let gave_up_at = Instant::now();
    // Requests per event count the whole stream's work: the events still queued when the
    // last final value landed are handled (a consumer cannot know they are redundant) before
    // the counts are read.
    let queue_emptied = drained && wait_until_empty(&queue, deadline).await?;
    stop.store(true, Ordering::Relaxed);
    if let Some(task) = sender {
        task.abort();
    }
    for consumer in consumers {
        let _ = consumer.await;
    }
    let dead_letters = dead_letters(&queue).await?;
    drop(dev);
    let sent = sent.unwrap_or_default();
    Ok(measure(
        design,
        &plan,
        &finals,
        &standins,
        &sent,
        drained,
        gave_up_at,
        dead_letters,
        queue_emptied,
    ))
}

/// Waits until the records queue holds nothing (in flight included); false at `deadline`.
async fn wait_until_empty(queue: &SqliteQueue, deadline: Instant) -> anyhow::Result<bool> {
    let records = relay_events::EventFamily::Records.as_str();
    loop {
        let depths = queue.depths().await?;
        if !depths.iter().any(|(name, n)| name == records && *n > 0) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn open_queue(data_dir: &Path) -> anyhow::Result<SqliteQueue> {
    let path = data_dir.join("relay.sqlite");
    let db = LocalDb::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    // dev's default --max-receive-count: a message received this often moves to its DLQ.
    Ok(SqliteQueue::new(db, 5))
}

/// Messages in any dead-letter queue of the run.
async fn dead_letters(queue: &SqliteQueue) -> anyhow::Result<u64> {
    Ok(queue
        .depths()
        .await?
        .into_iter()
        .filter(|(name, _)| name.ends_with("-dlq"))
        .map(|(_, n)| u64::try_from(n).unwrap_or(0))
        .sum())
}
