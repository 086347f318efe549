//! `attio-relay load`: a bounded load test of the ingest path over loopback HTTP.
//!
//! By default it needs nothing installed: it starts the same router `attio-relay dev` serves
//! (production ingest logic over the embedded SQLite adapters, consumers off) in this process
//! on `127.0.0.1:0`, with a temporary data folder, and drives it over real HTTP with a
//! keep-alive client at a fixed concurrency. Each delivery is the sample with a fresh record
//! id and its own `Idempotency-Key`, signed with the body-only scheme as Attio signs it. A share
//! of extra requests re-send an already acknowledged delivery byte for byte with the same key,
//! as Attio's retries do.
//!
//! It reports throughput and exact latency percentiles (from every request's sorted round-trip
//! time), then checks the promise that matters more than speed: reading what was queued back
//! from SQLite, every acknowledged delivery is on its queue (`lost = 0`) and none is there
//! twice (`duplicates_queued = 0`).
//!
//! It is bounded on purpose — in deliveries, in concurrency and in wall time — and it only
//! ever talks to loopback addresses, so neither a test nor a typo can load someone's server.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use axum::body::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use relay_embedded::LocalDb;
use relay_events::{Delivery, IdempotencyKey, QueuedEvent};
use relay_ingest::parse_secret_list;
use relay_queue::SqliteQueue;
use relay_signature::{
    LEGACY_SIGNATURE_HEADER, SIGNATURE_HEADER, SchemePolicy, WebhookSecret, sign_body,
};
use serde::Serialize;
use tokio::time::Instant;

use crate::dashboard::Dashboard;
use crate::dev::{DevArgs, database_file, secret_file};
use crate::sync_args::SyncArgs;

/// The delivery varied when no `--sample` is given: the most frequent event Attio sends.
const DEFAULT_SAMPLE: &str = include_str!("../../events/deliveries/record-updated.json");
const DEFAULT_SAMPLE_NAME: &str = "events/deliveries/record-updated.json (built in)";

/// Answers README.md documents as "retry later": a delivery answered so is not lost, Attio
/// would send it again. Anything else that is not 2xx is a failure of the run.
const RETRYABLE: [u16; 2] = [409, 503];

/// A single request that hangs longer than this counts as a transport error, so one stuck
/// connection cannot hold a worker for the whole run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How many unexpected answers or errors are quoted in the report (the rest are counted).
const QUOTED_PROBLEMS: usize = 5;

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Distinct deliveries to send (each its own Idempotency-Key and record id).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub deliveries: u64,
    /// Requests in flight at once (each worker waits for its answer before sending again).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Extra requests that re-send an already acknowledged delivery with the same
    /// Idempotency-Key, as a share of --deliveries (0.2 with 5000 deliveries: 1000 extra
    /// requests), mixed in at random. 0 to 10.
    #[arg(long, default_value_t = 0.2, value_parser = parse_duplicate_share)]
    pub duplicates: f64,
    /// Hard bound on the run in seconds: no request is started after it, and requests still
    /// in flight are abandoned (counted as "cut off") when it is reached.
    #[arg(long, value_name = "SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub max_duration: u64,
    /// The delivery to vary (default: a record.updated delivery built into the binary).
    #[arg(long, value_name = "FILE")]
    pub sample: Option<PathBuf>,
    /// Print one JSON summary on stdout instead of the report (and no progress bar).
    #[arg(long)]
    pub json: bool,
    /// Load an already running relay instead of an in-process one, e.g. `attio-relay dev` at
    /// http://127.0.0.1:8787/ or a `cargo lambda watch` Function URL. Loopback hosts only.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Secret the relay at --url accepts (default: the dev secret saved in --data-dir).
    #[arg(long, requires = "url")]
    pub secret: Option<String>,
    /// Data folder of the `attio-relay dev` server at --url: its SQLite file is read to verify
    /// nothing was lost or queued twice. Without it the verification is skipped.
    #[arg(long, value_name = "DIR", requires = "url")]
    pub data_dir: Option<PathBuf>,
}

/// Accepts a share of duplicates between 0 and 10 (Attio retries a message about 10 times).
fn parse_duplicate_share(text: &str) -> Result<f64, String> {
    let share: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number (e.g. 0.2)"))?;
    if (0.0..=10.0).contains(&share) {
        Ok(share)
    } else {
        Err(format!(
            "{share} is out of range: give a share from 0 to 10"
        ))
    }
}

/// Parses --url and refuses anything but a loopback host: a load test must never leave the
/// machine it runs on.
fn loopback_url(raw: &str) -> anyhow::Result<reqwest::Url> {
    let url = reqwest::Url::parse(raw)
        .with_context(|| format!("--url {raw:?} is not a URL (e.g. http://127.0.0.1:8787/)"))?;
    anyhow::ensure!(
        matches!(url.scheme(), "http" | "https"),
        "--url {raw:?} is not http(s): give the relay's URL, e.g. http://127.0.0.1:8787/"
    );
    let host = url.host_str().unwrap_or_default();
    let loopback = match host.trim_start_matches('[').trim_end_matches(']').parse() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    };
    anyhow::ensure!(
        loopback,
        "refusing to load {host:?}: `attio-relay load` only targets loopback addresses \
         (127.0.0.1, ::1, localhost) so a load test never leaves this machine. Run the relay \
         locally (`attio-relay dev`, or `cargo lambda watch`) and point --url at it, or leave \
         --url out to load an in-process dev server"
    );
    Ok(url)
}

/// One delivery, prepared before the clock starts so signing is not measured as latency.
struct Prepared {
    /// The Idempotency-Key header value.
    header_key: String,
    /// The key ingest stores for it (what queued messages carry).
    stored_key: String,
    body: Bytes,
    signature: String,
}

/// The sample, parsed once: its JSON, its name for the report and how many events it holds.
struct Sample {
    name: String,
    json: serde_json::Value,
    delivery: Delivery,
}

fn load_sample(path: Option<&Path>) -> anyhow::Result<Sample> {
    let (name, text) = match path {
        Some(path) => (
            path.display().to_string(),
            std::fs::read_to_string(path).with_context(|| {
                format!(
                    "cannot read --sample {}: give a delivery file such as events/deliveries/record-updated.json",
                    path.display()
                )
            })?,
        ),
        None => (DEFAULT_SAMPLE_NAME.to_owned(), DEFAULT_SAMPLE.to_owned()),
    };
    let delivery = Delivery::parse(text.as_bytes()).map_err(|e| {
        anyhow::anyhow!("{name} is not an Attio delivery ({e}): pick one from events/deliveries/")
    })?;
    let json = serde_json::from_str(&text).with_context(|| format!("{name} is not JSON"))?;
    Ok(Sample {
        name,
        json,
        delivery,
    })
}

/// The id keys naming what an event is about, most specific first: the one that is replaced
/// with a fresh id so every delivery is a distinct event (as a different record would be).
const SUBJECT_IDS: [&str; 9] = [
    "record_id",
    "entry_id",
    "note_id",
    "task_id",
    "comment_id",
    "call_recording_id",
    "workspace_member_id",
    "attribute_id",
    "list_id",
];

/// The sample with a fresh subject id in every event (a bare event or an envelope's events).
fn vary(sample: &serde_json::Value) -> serde_json::Value {
    let mut json = sample.clone();
    let events: Vec<&mut serde_json::Value> = match json.get_mut("events") {
        Some(serde_json::Value::Array(events)) => events.iter_mut().collect(),
        _ => vec![&mut json],
    };
    for event in events {
        if let Some(ids) = event.get_mut("id").and_then(|id| id.as_object_mut())
            && let Some(name) = SUBJECT_IDS.iter().find(|name| ids.contains_key(**name))
        {
            ids.insert(
                (*name).to_owned(),
                serde_json::Value::String(uuid::Uuid::new_v4().to_string()),
            );
        }
    }
    json
}

fn prepare(
    sample: &Sample,
    secret: &WebhookSecret,
    count: usize,
    run_id: &str,
) -> anyhow::Result<Vec<Prepared>> {
    (0..count)
        .map(|index| {
            let body = serde_json::to_vec(&vary(&sample.json))
                .context("cannot serialise a varied sample delivery")?;
            let header_key = format!("load-{run_id}-{index:07}");
            let stored_key =
                IdempotencyKey::for_delivery(Some(&header_key), &sample.delivery, None).to_string();
            Ok(Prepared {
                signature: sign_body(secret, &body),
                header_key,
                stored_key,
                body: Bytes::from(body),
            })
        })
        .collect()
}

/// Where the load goes, and whether what was queued can be read back.
struct Target {
    url: reqwest::Url,
    description: String,
    secret: WebhookSecret,
    /// The queue to read back for verification; `None` skips it (with the reason).
    queue: Result<SqliteQueue, String>,
    server: Option<InProcessServer>,
}

/// The dev router served from this process; stopped (and its data folder removed) on drop.
struct InProcessServer {
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _data_dir: tempfile::TempDir,
}

impl InProcessServer {
    /// Stops the server; reports it if it had already failed on its own (e.g. accept errors).
    async fn stop(mut self) -> anyhow::Result<()> {
        match self.task.take() {
            Some(task) if task.is_finished() => task
                .await
                .context("the in-process dev server panicked")?
                .context("the in-process dev server failed"),
            Some(task) => {
                task.abort();
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts `dev`'s service and router in this process on an ephemeral loopback port, on a
/// temporary data folder, with a generated dev secret and no consumers (nothing drains the
/// queues, so everything ingest queued is still there to count).
async fn start_in_process() -> anyhow::Result<Target> {
    let data_dir = tempfile::Builder::new()
        .prefix("attio-relay-load-")
        .tempdir()
        .context("cannot create a temporary data folder (is the temp dir writable? set TMPDIR)")?;
    let args = DevArgs {
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        data_dir: data_dir.path().to_owned(),
        secrets: None,
        policy: SchemePolicy::AcceptEither,
        max_receive_count: 5,
        sync: SyncArgs {
            attio_token: None,
            attio_api_url: relay_attio::DEFAULT_BASE_URL.to_owned(),
            hubspot_token: None,
            hubspot_api_url: "https://api.hubapi.com".to_owned(),
            field_mapping: None,
        },
    };
    let run = crate::dev::local_service(&args)?;
    let secret = run
        .secrets
        .first()
        .cloned()
        .context("the in-process dev server has no secret")?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .context("cannot listen on 127.0.0.1 for the in-process dev server")?;
    let addr = listener.local_addr()?;
    let app = crate::dev::router(
        Arc::clone(&run.ingest),
        Dashboard::new(run.db.clone(), run.queue.clone()),
    );
    // Stopped by dropping (aborting) the task: verification reads SQLite before that, and
    // requests abandoned at --max-duration need not finish.
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    let url = reqwest::Url::parse(&format!("http://{addr}/"))?;
    Ok(Target {
        description: format!("the in-process dev server at {url} (temporary SQLite)"),
        url,
        secret,
        queue: Ok(run.queue),
        server: Some(InProcessServer {
            task: Some(task),
            _data_dir: data_dir,
        }),
    })
}

/// A relay that is already running at `--url`, verified through `--data-dir` when given.
fn running_target(args: &LoadArgs, raw_url: &str) -> anyhow::Result<Target> {
    let url = loopback_url(raw_url)?;
    let secret = match (&args.secret, &args.data_dir) {
        (Some(list), _) => parse_secret_list(list)
            .into_iter()
            .next()
            .context("--secret is empty: give the secret the relay at --url accepts")?,
        (None, Some(dir)) => {
            let path = secret_file(dir);
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "no --secret given and {} is missing: pass --secret, or the --data-dir of the `attio-relay dev` server at --url",
                    path.display()
                )
            })?;
            parse_secret_list(&text)
                .into_iter()
                .next()
                .with_context(|| format!("{} is empty: pass --secret", path.display()))?
        }
        (None, None) => anyhow::bail!(
            "--url needs --secret (the webhook secret the relay accepts) or --data-dir (the \
             folder of the `attio-relay dev` server, where its dev secret is saved)"
        ),
    };
    let queue = match &args.data_dir {
        Some(dir) => {
            let path = database_file(dir);
            anyhow::ensure!(
                path.exists(),
                "{} does not exist: --data-dir must be the folder the `attio-relay dev` server at --url uses",
                path.display()
            );
            let db =
                LocalDb::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
            Ok(SqliteQueue::new(db, 5))
        }
        None => Err(
            "no --data-dir: the relay at --url keeps its queues elsewhere, so what \
                     was queued was not read back"
                .to_owned(),
        ),
    };
    Ok(Target {
        description: format!("{url}"),
        url,
        secret,
        queue,
        server: None,
    })
}

/// SplitMix64: where duplicates fall needs no cryptographic randomness, and a few lines here
/// keep the CLI's dependencies (and Cargo.lock) as they are.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        Self(uuid::Uuid::new_v4().as_u64_pair().0)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // Lemire's multiply-shift: unbiased enough for spreading duplicates, and never >= n.
        ((u128::from(z) * n as u128) >> 64) as usize
    }
}

/// What a worker does next.
enum Next {
    Send {
        index: usize,
        duplicate: bool,
    },
    /// A duplicate is due but nothing is acknowledged yet: wait for an answer.
    Wait,
    Done,
}

/// Hands out requests: every delivery once, and duplicates of acknowledged deliveries spread
/// at random among them. Duplicates only ever repeat a delivery that was already answered 2xx
/// — as Attio's retries come after an attempt — so they test deduplication, not the 409 for
/// a delivery still in progress.
struct Plan {
    deliveries: usize,
    next_delivery: usize,
    duplicates_left: usize,
    in_flight: usize,
    acknowledged: Vec<usize>,
    rng: Rng,
}

impl Plan {
    fn next(&mut self) -> Next {
        let fresh_left = self.deliveries - self.next_delivery;
        let duplicate_now = self.duplicates_left > 0
            && !self.acknowledged.is_empty()
            && (fresh_left == 0
                || self.rng.below(fresh_left + self.duplicates_left) < self.duplicates_left);
        if duplicate_now {
            self.duplicates_left -= 1;
            let index = self.acknowledged[self.rng.below(self.acknowledged.len())];
            return Next::Send {
                index,
                duplicate: true,
            };
        }
        if fresh_left > 0 {
            let index = self.next_delivery;
            self.next_delivery += 1;
            self.in_flight += 1;
            return Next::Send {
                index,
                duplicate: false,
            };
        }
        if self.duplicates_left > 0 && self.in_flight > 0 {
            return Next::Wait;
        }
        Next::Done
    }

    fn answered(&mut self, index: usize, acknowledged: bool) {
        self.in_flight -= 1;
        if acknowledged {
            self.acknowledged.push(index);
        }
    }
}

/// Counts for one kind of request (first sends, or duplicates).
#[derive(Debug, Default, Clone, Serialize)]
pub struct KindStats {
    pub sent: usize,
    pub answered: usize,
    /// Answers by HTTP status code.
    pub answers: BTreeMap<String, usize>,
    /// 2xx answers by the `status` of their body ("queued", "duplicate").
    pub outcomes: BTreeMap<String, usize>,
    /// No answer: connection refused, reset, or no answer within 30 s.
    pub transport_errors: usize,
    /// Abandoned when --max-duration was reached.
    pub cut_off: usize,
}

impl KindStats {
    fn merge(&mut self, other: &Self) {
        self.sent += other.sent;
        self.answered += other.answered;
        self.transport_errors += other.transport_errors;
        self.cut_off += other.cut_off;
        for (status, n) in &other.answers {
            *self.answers.entry(status.clone()).or_default() += n;
        }
        for (outcome, n) in &other.outcomes {
            *self.outcomes.entry(outcome.clone()).or_default() += n;
        }
    }
}

/// What one worker saw.
#[derive(Default)]
struct WorkerReport {
    originals: KindStats,
    duplicates: KindStats,
    latencies: Vec<Duration>,
    problems: Vec<String>,
    unexpected: usize,
}

struct Shared {
    client: reqwest::Client,
    url: reqwest::Url,
    deliveries: Vec<Prepared>,
    plan: Mutex<Plan>,
    deadline: Instant,
    progress: ProgressBar,
}

impl Shared {
    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        // The plan holds plain counters: still consistent if another worker panicked.
        self.plan.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `status` field of an ingest answer ("queued", "duplicate"), or "other".
fn outcome_of(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Answer {
        status: String,
    }
    serde_json::from_slice::<Answer>(body).map_or_else(|_| "other".to_owned(), |a| a.status)
}

async fn worker(shared: Arc<Shared>) -> WorkerReport {
    let mut report = WorkerReport::default();
    loop {
        if Instant::now() >= shared.deadline {
            break;
        }
        let next = shared.plan().next();
        let (index, duplicate) = match next {
            Next::Send { index, duplicate } => (index, duplicate),
            Next::Wait => {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            Next::Done => break,
        };
        let delivery = &shared.deliveries[index];
        let request = shared
            .client
            .post(shared.url.clone())
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, &delivery.signature)
            .header(LEGACY_SIGNATURE_HEADER, &delivery.signature)
            .header("idempotency-key", &delivery.header_key)
            .body(delivery.body.clone());
        let started = Instant::now();
        let result = tokio::time::timeout_at(shared.deadline, async {
            let response = request.send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        })
        .await;
        let elapsed = started.elapsed();

        let stats = if duplicate {
            &mut report.duplicates
        } else {
            &mut report.originals
        };
        stats.sent += 1;
        let acknowledged = match result {
            Err(_) => {
                stats.cut_off += 1;
                false
            }
            Ok(Err(err)) => {
                stats.transport_errors += 1;
                report.unexpected += 1;
                if report.problems.len() < QUOTED_PROBLEMS {
                    report
                        .problems
                        .push(format!("no answer for {}: {err}", delivery.header_key));
                }
                false
            }
            Ok(Ok((status, body))) => {
                stats.answered += 1;
                report.latencies.push(elapsed);
                *stats
                    .answers
                    .entry(status.as_u16().to_string())
                    .or_default() += 1;
                if status.is_success() {
                    *stats.outcomes.entry(outcome_of(&body)).or_default() += 1;
                } else if !RETRYABLE.contains(&status.as_u16()) {
                    report.unexpected += 1;
                    if report.problems.len() < QUOTED_PROBLEMS {
                        report.problems.push(format!(
                            "{status} for {}: {}",
                            delivery.header_key,
                            String::from_utf8_lossy(&body[..body.len().min(300)])
                        ));
                    }
                }
                status.is_success()
            }
        };
        if !duplicate {
            shared.plan().answered(index, acknowledged);
        }
        shared.progress.inc(1);
    }
    report
}

/// Latency of answered requests, in milliseconds, from the sorted samples (nearest rank).
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub samples: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    fn of(mut samples: Vec<Duration>) -> Option<Self> {
        samples.sort_unstable();
        let max = *samples.last()?;
        let n = samples.len();
        // Nearest rank: the smallest sample with at least p% of the samples at or below it.
        let at = |p: usize| samples[(n * p).div_ceil(100).clamp(1, n) - 1];
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Some(Self {
            samples: n,
            p50: ms(at(50)),
            p90: ms(at(90)),
            p99: ms(at(99)),
            max: ms(max),
        })
    }
}

/// What was read back from the queues.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    pub checked: bool,
    /// Why it was skipped, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Messages of this run found on the queues (and their dead-letter queues).
    pub queued_messages: Option<usize>,
    /// Distinct deliveries of this run found on the queues.
    pub queued_deliveries: Option<usize>,
    /// Acknowledged (2xx) deliveries with an event missing from the queues.
    pub lost: Option<usize>,
    /// Deliveries with an event queued more than once.
    pub duplicates_queued: Option<usize>,
    /// Deliveries queued without a 2xx reaching us (cut off at --max-duration, or an error
    /// after queueing): not a fault, Attio's retry would be answered "duplicate".
    pub queued_unacknowledged: Option<usize>,
}

/// Reads every queue (and DLQ) back and counts this run's messages per delivery and event.
async fn verify(
    queue: &SqliteQueue,
    deliveries: &[Prepared],
    events_per_delivery: usize,
    acknowledged: &[usize],
) -> anyhow::Result<Verification> {
    let ours: HashMap<&str, usize> = deliveries
        .iter()
        .enumerate()
        .map(|(index, d)| (d.stored_key.as_str(), index))
        .collect();
    // Per delivery: how many times each of its events was queued.
    let mut counts: HashMap<usize, HashMap<usize, usize>> = HashMap::new();
    let mut messages = 0;
    let names = queue
        .depths()
        .await
        .context("cannot read the local queues to verify the run")?;
    for (name, _) in names {
        for message in queue
            .peek(&name)
            .await
            .with_context(|| format!("cannot read queue {name}"))?
        {
            let Some(&index) = ours.get(message.attributes.idempotency_key.as_str()) else {
                continue;
            };
            let event_index = QueuedEvent::from_body(&message.body)
                .with_context(|| {
                    format!(
                        "message {} on {name} is not a queued event",
                        message.message_id
                    )
                })?
                .event_index;
            messages += 1;
            *counts
                .entry(index)
                .or_default()
                .entry(event_index)
                .or_default() += 1;
        }
    }
    let lost = acknowledged
        .iter()
        .filter(|index| {
            counts
                .get(index)
                .is_none_or(|events| events.len() < events_per_delivery)
        })
        .count();
    let duplicates_queued = counts
        .values()
        .filter(|events| events.values().any(|&n| n > 1))
        .count();
    let acked: std::collections::HashSet<&usize> = acknowledged.iter().collect();
    let queued_unacknowledged = counts.keys().filter(|i| !acked.contains(i)).count();
    Ok(Verification {
        checked: true,
        skipped: None,
        queued_messages: Some(messages),
        queued_deliveries: Some(counts.len()),
        lost: Some(lost),
        duplicates_queued: Some(duplicates_queued),
        queued_unacknowledged: Some(queued_unacknowledged),
    })
}

/// The run's summary: what `--json` prints, and what the report is written from.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub target: String,
    pub sample: String,
    pub concurrency: u32,
    pub max_duration_secs: u64,
    pub deliveries_planned: usize,
    pub deliveries_sent: usize,
    /// Deliveries answered 2xx on their first send.
    pub deliveries_acknowledged: usize,
    pub duplicates_planned: usize,
    pub duplicates_sent: usize,
    pub requests_sent: usize,
    pub requests_answered: usize,
    /// Every answer by HTTP status code.
    pub answers: BTreeMap<String, usize>,
    /// First sends of each delivery.
    pub originals: KindStats,
    /// Re-sends of an acknowledged delivery with the same Idempotency-Key.
    pub duplicates: KindStats,
    /// Answers that mean "retry later" (409, 503): not failures, Attio would retry.
    pub retryable_answers: usize,
    pub stopped_by_max_duration: bool,
    pub wall_secs: f64,
    /// Acknowledged deliveries per second of wall time.
    pub deliveries_per_sec: f64,
    /// Answered requests (deliveries and duplicates) per second of wall time.
    pub requests_per_sec: f64,
    /// Round trip of each answered request, in milliseconds.
    pub latency_ms: Option<Latency>,
    pub verification: Verification,
    /// What went wrong, when something did (an empty list when ok).
    pub problems: Vec<String>,
    pub ok: bool,
}

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let sample = load_sample(args.sample.as_deref())?;
    let mut target = match &args.url {
        Some(url) => running_target(&args, url)?,
        None => start_in_process().await?,
    };
    let deliveries = usize::try_from(args.deliveries).context("--deliveries is too large")?;
    // Bounded by the --duplicates range (at most 10 × --deliveries).
    let duplicates_planned = (deliveries as f64 * args.duplicates).round() as usize;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let prepared = prepare(&sample, &target.secret, deliveries, &run_id)?;

    let client = reqwest::Client::builder()
        // Loopback only: never route the load through a proxy from the environment.
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.concurrency as usize)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("cannot build the HTTP client")?;
    let total = deliveries + duplicates_planned;
    let progress = if args.json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} requests ({per_sec}) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    };
    if !args.json {
        // Printed before the bar starts drawing (a hidden bar would swallow it).
        println!(
            "attio-relay load: {deliveries} deliveries + {duplicates_planned} duplicates of {} \
             at concurrency {} against {} (bounded to {} s)",
            sample.name, args.concurrency, target.description, args.max_duration
        );
    }

    let started = Instant::now();
    let shared = Arc::new(Shared {
        client,
        url: target.url.clone(),
        deliveries: prepared,
        plan: Mutex::new(Plan {
            deliveries,
            next_delivery: 0,
            duplicates_left: duplicates_planned,
            in_flight: 0,
            acknowledged: Vec::with_capacity(deliveries),
            rng: Rng::seeded(),
        }),
        deadline: started + Duration::from_secs(args.max_duration),
        progress: progress.clone(),
    });
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| tokio::spawn(worker(Arc::clone(&shared))))
        .collect();
    let mut reports = Vec::with_capacity(workers.len());
    for worker in workers {
        reports.push(worker.await.context("a load worker panicked")?);
    }
    let wall = started.elapsed();
    progress.finish_and_clear();

    let mut originals = KindStats::default();
    let mut duplicates = KindStats::default();
    let mut latencies = Vec::with_capacity(total);
    let mut problems = Vec::new();
    let mut unexpected = 0;
    for report in reports {
        originals.merge(&report.originals);
        duplicates.merge(&report.duplicates);
        latencies.extend(report.latencies);
        problems.extend(report.problems);
        unexpected += report.unexpected;
    }
    problems.truncate(QUOTED_PROBLEMS);
    if unexpected > problems.len() {
        problems.push(format!(
            "… and {} more unexpected answers or errors",
            unexpected - problems.len()
        ));
    }
    let mut acknowledged = std::mem::take(&mut shared.plan().acknowledged);
    acknowledged.sort_unstable();
    // Deliveries are only left unsent when the deadline stopped the workers; duplicates also
    // when nothing was acknowledged to repeat.
    let stopped_by_max_duration = originals.sent < deliveries
        || originals.cut_off + duplicates.cut_off > 0
        || (duplicates.sent < duplicates_planned && Instant::now() >= shared.deadline);

    let verification = match &target.queue {
        Ok(queue) => {
            verify(
                queue,
                &shared.deliveries,
                sample.delivery.events.len(),
                &acknowledged,
            )
            .await?
        }
        Err(reason) => Verification {
            skipped: Some(reason.clone()),
            ..Verification::default()
        },
    };
    if let Some(server) = target.server.take() {
        server.stop().await?;
    }

    let mut answers = originals.answers.clone();
    for (status, n) in &duplicates.answers {
        *answers.entry(status.clone()).or_default() += n;
    }
    let retryable_answers = answers
        .iter()
        .filter(|(status, _)| RETRYABLE.iter().any(|r| r.to_string() == **status))
        .map(|(_, n)| n)
        .sum();
    let secs = wall.as_secs_f64().max(f64::EPSILON);
    let requests_answered = originals.answered + duplicates.answered;
    if originals.sent > 0 && acknowledged.is_empty() {
        problems.push("no delivery was acknowledged (answered 2xx)".to_owned());
    }
    if let Some(&requeued) = duplicates.outcomes.get("queued") {
        problems.push(format!(
            "{requeued} duplicate requests were answered \"queued\": the relay queued an \
             acknowledged delivery again instead of answering \"duplicate\""
        ));
    }
    if let Some(lost) = verification.lost.filter(|&n| n > 0) {
        problems.push(format!(
            "{lost} acknowledged deliveries are not on the queues{}",
            if args.url.is_some() {
                " (is --data-dir the folder of the server at --url, and are its consumers off?)"
            } else {
                ""
            }
        ));
    }
    if let Some(twice) = verification.duplicates_queued.filter(|&n| n > 0) {
        problems.push(format!(
            "{twice} deliveries were queued more than once: deduplication failed"
        ));
    }
    let summary = Summary {
        target: target.description.clone(),
        sample: sample.name.clone(),
        concurrency: args.concurrency,
        max_duration_secs: args.max_duration,
        deliveries_planned: deliveries,
        deliveries_sent: originals.sent,
        deliveries_acknowledged: acknowledged.len(),
        duplicates_planned,
        duplicates_sent: duplicates.sent,
        requests_sent: originals.sent + duplicates.sent,
        requests_answered,
        answers,
        retryable_answers,
        stopped_by_max_duration,
        wall_secs: wall.as_secs_f64(),
        deliveries_per_sec: acknowledged.len() as f64 / secs,
        requests_per_sec: requests_answered as f64 / secs,
        latency_ms: Latency::of(latencies),
        ok: problems.is_empty(),
        problems,
        verification,
        originals,
        duplicates,
    };

    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).context("cannot write the JSON summary")?
        );
    } else {
        print_report(&summary);
    }
    anyhow::ensure!(
        summary.ok,
        "the load run failed: {}",
        summary.problems.join("; ")
    );
    Ok(())
}

fn counts(map: &BTreeMap<String, usize>) -> String {
    if map.is_empty() {
        return "none".to_owned();
    }
    map.iter()
        .map(|(key, n)| format!("{key} × {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn kind_line(stats: &KindStats) -> String {
    let mut line = format!(
        "{} sent, {} answered: {}; 2xx bodies: {}",
        stats.sent,
        stats.answered,
        counts(&stats.answers),
        counts(&stats.outcomes)
    );
    if stats.transport_errors > 0 {
        line.push_str(&format!("; {} without an answer", stats.transport_errors));
    }
    if stats.cut_off > 0 {
        line.push_str(&format!("; {} cut off at --max-duration", stats.cut_off));
    }
    line
}

/// The human-readable report on stdout.
fn print_report(s: &Summary) {
    println!(
        "deliveries   {} sent of {}, {} acknowledged (2xx)",
        s.deliveries_sent, s.deliveries_planned, s.deliveries_acknowledged
    );
    println!("  first send {}", kind_line(&s.originals));
    println!("  duplicates {}", kind_line(&s.duplicates));
    println!(
        "requests     {} sent, {} answered: {}",
        s.requests_sent,
        s.requests_answered,
        counts(&s.answers)
    );
    if s.retryable_answers > 0 {
        println!(
            "             {} answered 409/503 (retry later): not re-sent here; Attio would retry them",
            s.retryable_answers
        );
    }
    println!("wall time    {:.3} s", s.wall_secs);
    println!(
        "throughput   {:.1} deliveries/s, {:.1} requests/s (concurrency {})",
        s.deliveries_per_sec, s.requests_per_sec, s.concurrency
    );
    match &s.latency_ms {
        Some(l) => println!(
            "latency      p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} round trips)",
            l.p50, l.p90, l.p99, l.max, l.samples
        ),
        None => println!("latency      no request was answered"),
    }
    if s.stopped_by_max_duration {
        println!(
            "stopped      --max-duration {} s reached: {} of {} deliveries and {} of {} duplicates sent",
            s.max_duration_secs,
            s.deliveries_sent,
            s.deliveries_planned,
            s.duplicates_sent,
            s.duplicates_planned
        );
    }
    let v = &s.verification;
    match (&v.skipped, v.lost, v.duplicates_queued) {
        (Some(reason), _, _) => println!("verification skipped: {reason}"),
        (None, Some(lost), Some(twice)) => {
            println!(
                "verified     {} deliveries on the queues ({} messages), {} queued without an acknowledgement",
                v.queued_deliveries.unwrap_or(0),
                v.queued_messages.unwrap_or(0),
                v.queued_unacknowledged.unwrap_or(0)
            );
            println!("lost = {lost}, duplicates_queued = {twice}");
        }
        _ => println!("verification skipped"),
    }
    for problem in &s.problems {
        println!("problem      {problem}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_accepted() {
        for ok in [
            "http://127.0.0.1:8787/",
            "http://127.0.0.2:1/x",
            "http://[::1]:9000/lambda-url/ingest/",
            "http://localhost:8787/",
        ] {
            assert!(loopback_url(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://10.0.0.1/",
            "https://example.com/",
            "http://[2001:db8::1]/",
            "ftp://127.0.0.1/",
        ] {
            assert!(loopback_url(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples = (1..=100).map(Duration::from_millis).collect();
        let l = Latency::of(samples).unwrap();
        assert_eq!((l.p50, l.p90, l.p99, l.max), (50.0, 90.0, 99.0, 100.0));
        let one = Latency::of(vec![Duration::from_millis(7)]).unwrap();
        assert_eq!((one.p50, one.p99), (7.0, 7.0));
        assert!(Latency::of(Vec::new()).is_none());
    }

    #[test]
    fn every_variation_is_a_distinct_event_of_the_same_shape() {
        let sample = load_sample(None).unwrap();
        let a = vary(&sample.json);
        let b = vary(&sample.json);
        let id = |v: &serde_json::Value| v["events"][0]["id"]["record_id"].clone();
        assert_ne!(id(&a), id(&b));
        assert_eq!(
            a["events"][0]["id"]["workspace_id"],
            sample.json["events"][0]["id"]["workspace_id"]
        );
        let bare = serde_json::json!({"event_type": "task.created", "id": {"workspace_id": "w", "task_id": "t"}});
        assert_ne!(vary(&bare)["id"]["task_id"], "t");
    }

    #[test]
    fn duplicates_only_repeat_acknowledged_deliveries() {
        let mut plan = Plan {
            deliveries: 1,
            next_delivery: 0,
            duplicates_left: 2,
            in_flight: 0,
            acknowledged: Vec::new(),
            rng: Rng(7),
        };
        assert!(matches!(
            plan.next(),
            Next::Send {
                index: 0,
                duplicate: false
            }
        ));
        assert!(matches!(plan.next(), Next::Wait));
        plan.answered(0, true);
        for _ in 0..2 {
            assert!(matches!(
                plan.next(),
                Next::Send {
                    index: 0,
                    duplicate: true
                }
            ));
        }
        assert!(matches!(plan.next(), Next::Done));
    }
}
