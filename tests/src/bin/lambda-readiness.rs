//! Lambda readiness: for each function binary, its size, the time from process start to its
//! first answered invocation, and its peak RSS, measured under `cargo lambda watch`.
//!
//! `cargo lambda watch --only-lambda-apis` runs the Lambda Runtime and Invoke APIs; this program
//! sends an invocation, then starts the function binary as Lambda would (`AWS_LAMBDA_RUNTIME_API`
//! and friends), and times process start → the invocation's answer. That span is what Lambda
//! bills as Init Duration plus the first invocation. Each invocation does the function's real
//! work: ingest claims the key in DynamoDB and queues to SQS (moto); the consumers fetch from
//! Attio and write to HubSpot (in-process fakes on loopback) and keep id mappings in DynamoDB.
//! Peak RSS is the process's `VmHWM` after the cold invocation and `--warm` more.
//!
//! Run it with `scripts/lambda-readiness`, which installs the tools, starts moto, builds the
//! release binaries and passes their folder. Exits non-zero when an invocation's answer is wrong.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::fake_apis::{self, FakeAttio, FakeHubSpot, FaultDice};
use integration_tests::fixtures::ids::{PEOPLE, WORKSPACE as WS};
use integration_tests::fixtures::{self, SECRET};
use integration_tests::moto;
use relay_events::QueuedEvent;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

const ATTIO_TOKEN: &str = "attio-readiness-token";
const HUBSPOT_TOKEN: &str = "hubspot-readiness-token";
const FUNCTIONS: [&str; 5] = ["ingest", "records", "list-entries", "notes", "tasks"];

struct Options {
    bin_dir: PathBuf,
    runs: usize,
    warm: usize,
    memory_mb: u32,
    only: Vec<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: lambda-readiness --bin-dir DIR [--runs N] [--warm N] [--memory-mb MB]\n\n\
         DIR holds the release binaries ingest, records, list-entries, notes, tasks.\n\
         --runs: cold starts per function (default 10); --warm: invocations after each cold one\n\
         before reading peak RSS (default 10); --memory-mb: AWS_LAMBDA_FUNCTION_MEMORY_SIZE\n\
         (default 128); --only NAME (repeatable): measure just these functions.\n\
         Needs MOTO_ENDPOINT and `cargo lambda` on PATH: use scripts/lambda-readiness."
    );
    std::process::exit(2)
}

fn options() -> Options {
    let mut options = Options {
        bin_dir: PathBuf::new(),
        runs: 10,
        warm: 10,
        memory_mb: 128,
        only: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--bin-dir" => options.bin_dir = PathBuf::from(value()),
            "--runs" => options.runs = value().parse().unwrap_or_else(|_| usage()),
            "--warm" => options.warm = value().parse().unwrap_or_else(|_| usage()),
            "--memory-mb" => options.memory_mb = value().parse().unwrap_or_else(|_| usage()),
            "--only" => options.only.push(value()),
            _ => usage(),
        }
    }
    if options.bin_dir.as_os_str().is_empty() || options.runs == 0 {
        usage()
    }
    options
}

/// Kills a process group when dropped: `cargo lambda watch`, or a function binary.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(pid) = self.0.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An SQS event for a consumer: one message carrying `event` the way ingest queues it.
fn sqs_event(event: Value) -> Value {
    let body = serde_json::to_vec(&json!({"webhook_id": uuid(), "events": [event]}))
        .expect("delivery serialises");
    let queued = QueuedEvent::first_of(&body, &uuid(), 1_763_000_000)
        .expect("the readiness delivery parses");
    json!({"Records": [{
        "messageId": uuid(),
        "receiptHandle": "readiness",
        "body": queued.to_body(),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1763000000000"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:readiness",
        "awsRegion": "us-east-1"
    }]})
}

/// The invocation each function gets, with fresh ids, and the check of its answer.
struct Workload {
    function_url_event: Value,
    person_ids: Vec<String>,
    note_ids: Vec<String>,
    task_ids: Vec<String>,
}

impl Workload {
    fn new(people: usize) -> Self {
        let path = fixtures::events_dir().join("lambda/ingest-function-url.json");
        let text = std::fs::read_to_string(&path).expect("events/lambda/ingest-function-url.json");
        Self {
            function_url_event: serde_json::from_str(&text).expect("Function URL event is JSON"),
            person_ids: (0..people).map(|_| uuid()).collect(),
            note_ids: (0..people).map(|_| uuid()).collect(),
            task_ids: (0..people).map(|_| uuid()).collect(),
        }
    }

    fn payload(&self, function: &str, n: usize) -> Value {
        let person = &self.person_ids[n % self.person_ids.len()];
        let actor =
            json!({"type": "workspace-member", "id": "061b809a-2423-4955-94c9-07c16d05be79"});
        match function {
            "ingest" => {
                // A new Idempotency-Key makes each a new delivery: claimed and queued.
                let mut event = self.function_url_event.clone();
                event["headers"]["idempotency-key"] = json!(uuid());
                event
            }
            "records" => sqs_event(json!({
                "event_type": "record.updated",
                "id": {"workspace_id": WS, "object_id": PEOPLE, "record_id": person, "attribute_id": "job-title"},
                "actor": actor
            })),
            "list-entries" => sqs_event(json!({
                "event_type": "list-entry.updated",
                "id": {"workspace_id": WS, "list_id": uuid(), "entry_id": uuid(), "attribute_id": "stage"},
                "parent_object_id": PEOPLE, "parent_record_id": person,
                "actor": actor
            })),
            "notes" => sqs_event(json!({
                "event_type": "note.created",
                "id": {"workspace_id": WS, "note_id": self.note_ids[n % self.note_ids.len()]},
                "parent_object_id": PEOPLE, "parent_record_id": person,
                "actor": actor
            })),
            "tasks" => sqs_event(json!({
                "event_type": "task.created",
                "id": {"workspace_id": WS, "task_id": self.task_ids[n % self.task_ids.len()]},
                "actor": actor
            })),
            other => unreachable!("no workload for {other}"),
        }
    }
}

/// An invocation the function answers without any I/O: a forged signature for ingest (401), an
/// empty batch for a consumer. Its cold answer time is the function's time to ready.
fn no_io_payload(function: &str, function_url_event: &Value) -> Value {
    if function == "ingest" {
        let mut event = function_url_event.clone();
        event["headers"]["attio-signature"] = json!("0".repeat(64));
        event["headers"]["x-attio-signature"] = json!("0".repeat(64));
        event
    } else {
        json!({"Records": []})
    }
}

fn check_no_io_answer(function: &str, answer: &Value) -> Result<(), String> {
    let ok = if function == "ingest" {
        answer["statusCode"] == 401
    } else {
        answer["batchItemFailures"] == json!([])
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{function} answered {answer} to an invocation without I/O"
        ))
    }
}

fn check_answer(function: &str, answer: &Value) -> Result<(), String> {
    let ok = if function == "ingest" {
        answer["statusCode"] == 200
            && answer["body"]
                .as_str()
                .is_some_and(|b| b.contains("queued"))
    } else {
        answer["batchItemFailures"] == json!([])
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{function} answered {answer}"))
    }
}

/// Peak resident set size of a running process, from /proc (kB → bytes).
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

struct Sample {
    to_first_answer: Duration,
    warm: Vec<Duration>,
    peak_rss: u64,
}

struct Bench {
    client: reqwest::Client,
    workspace: PathBuf,
    env: Vec<(String, String)>,
    workload: Workload,
    options: Options,
}

impl Bench {
    fn invoke(
        &self,
        port: u16,
        payload: Value,
    ) -> impl Future<Output = Result<Value, String>> + 'static {
        let request = self
            .client
            .post(format!(
                "http://127.0.0.1:{port}/2015-03-31/functions/_/invocations"
            ))
            .json(&payload);
        async move {
            let response = request.send().await.map_err(|e| e.to_string())?;
            response.json::<Value>().await.map_err(|e| e.to_string())
        }
    }

    async fn cold_start(
        &self,
        function: &str,
        run: usize,
        env: &[(String, String)],
        no_io: bool,
    ) -> Result<Sample, String> {
        let binary = self.options.bin_dir.join(function);
        // A fresh emulator per cold start: one whose previous function was killed while
        // waiting for work would hand the next invocation to that dead request.
        let port = free_port();
        let _watch = start_watch(&self.workspace, port).await;
        // The invocation waits in cargo lambda's queue until the function asks for work.
        let payload = if no_io {
            no_io_payload(function, &self.workload.function_url_event)
        } else {
            self.workload.payload(function, run)
        };
        let first = tokio::spawn(self.invoke(port, payload));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let child = Command::new(&binary)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let child = Killed(child);
        let answer = tokio::time::timeout(Duration::from_secs(30), first)
            .await
            .map_err(|_| format!("{function} did not answer within 30 s"))?
            .map_err(|e| e.to_string())??;
        let to_first_answer = started.elapsed();
        if no_io {
            check_no_io_answer(function, &answer)?;
        } else {
            check_answer(function, &answer)?;
        }
        let mut warm = Vec::new();
        for n in 0..if no_io { 0 } else { self.options.warm } {
            let started = Instant::now();
            let payload = self
                .workload
                .payload(function, run * (self.options.warm + 1) + n + 1);
            let answer = self.invoke(port, payload).await?;
            warm.push(started.elapsed());
            check_answer(function, &answer)?;
        }
        let pid = child.0.id().ok_or("the function exited")?;
        let peak_rss = peak_rss(pid).ok_or("cannot read the function's /proc status")?;
        drop(child);
        Ok(Sample {
            to_first_answer,
            warm,
            peak_rss,
        })
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn start_watch(workspace: &Path, port: u16) -> Killed {
    let child = Command::new("cargo")
        .current_dir(workspace)
        .args(["lambda", "watch", "--only-lambda-apis", "--quiet"])
        .args([
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| {
            eprintln!(
                "cannot start `cargo lambda watch` ({e}): scripts/lambda-readiness installs it"
            );
            std::process::exit(1)
        });
    let watch = Killed(child);
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return watch;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("cargo lambda watch did not listen on 127.0.0.1:{port} within 30 s");
    std::process::exit(1)
}

#[tokio::main]
async fn main() {
    let options = options();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = moto::sdk_config().await;
    let table = moto::fresh_table(&config).await;
    let mappings =
        moto::fresh_table_keyed(&config, "mappings", relay_mappings::KEY_ATTRIBUTE).await;
    let queues = moto::fresh_queues(&config, 3).await;
    let workload = Workload::new(options.runs * (options.warm + 1));

    let mut attio_fake = FakeAttio::from_fixtures(ATTIO_TOKEN, PEOPLE, FaultDice::new(0.0, 1));
    for (i, person) in workload.person_ids.iter().enumerate() {
        attio_fake = attio_fake
            .with_note(&workload.note_ids[i], person)
            .with_task(&workload.task_ids[i], person, i % 2 == 0);
    }
    let attio_fake = Arc::new(attio_fake);
    let hubspot_fake = Arc::new(FakeHubSpot::new(HUBSPOT_TOKEN, FaultDice::new(0.0, 2)));
    let attio = fake_apis::serve(&attio_fake).await;
    let hubspot = fake_apis::serve(&hubspot_fake).await;

    let mut env: Vec<(String, String)> = vec![
        ("AWS_LAMBDA_FUNCTION_NAME".into(), "_".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION".into(), "1".into()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
            options.memory_mb.to_string(),
        ),
        ("AWS_ENDPOINT_URL".into(), moto::endpoint()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("RUST_LOG".into(), "info".into()),
        ("ATTIO_WEBHOOK_SECRETS".into(), SECRET.into()),
        ("IDEMPOTENCY_TABLE".into(), table),
        ("ATTIO_API_TOKEN".into(), ATTIO_TOKEN.into()),
        ("ATTIO_API_URL".into(), format!("{}/v2", attio.uri())),
        ("HUBSPOT_TOKEN".into(), HUBSPOT_TOKEN.into()),
        ("HUBSPOT_API_URL".into(), hubspot.uri()),
        ("MAPPINGS_TABLE".into(), mappings),
    ];
    for (family, url) in queues.urls.iter() {
        env.push((
            relay_queue::QueueUrls::env_var(family).to_owned(),
            url.to_owned(),
        ));
    }
    let bench = Bench {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .no_proxy()
            .build()
            .expect("HTTP client"),
        workspace,
        env,
        workload,
        options,
    };

    println!(
        "| function | binary size | start → ready: first answer without I/O (median / p90 / max of {runs}) \
         | start → first real answer (median / p90 / max of {runs}) | warm invocation (median) | peak RSS (max) |",
        runs = bench.options.runs
    );
    println!("|---|---|---|---|---|---|");
    let mut failed = false;
    let selected: Vec<&str> = if bench.options.only.is_empty() {
        FUNCTIONS.to_vec()
    } else {
        bench.options.only.iter().map(String::as_str).collect()
    };
    for function in selected {
        if !FUNCTIONS.contains(&function) {
            eprintln!("--only {function}: not one of {FUNCTIONS:?}");
            failed = true;
            continue;
        }
        let binary = bench.options.bin_dir.join(function);
        let size = match std::fs::metadata(&binary) {
            Ok(meta) => meta.len(),
            Err(e) => {
                eprintln!("{}: {e}", binary.display());
                failed = true;
                continue;
            }
        };
        let mut env = bench.env.clone();
        // Each consumer dead-letters to its family's DLQ (the template wires one per queue).
        let family = match function {
            "records" => Some(relay_events::EventFamily::Records),
            "list-entries" => Some(relay_events::EventFamily::ListEntries),
            "notes" => Some(relay_events::EventFamily::Notes),
            "tasks" => Some(relay_events::EventFamily::Tasks),
            _ => None,
        };
        if let Some(family) = family {
            env.push(("DEAD_LETTER_QUEUE_URL".into(), queues.dlqs[&family].clone()));
        }
        // One untimed start first: the binary in the page cache, as on a warm Lambda host.
        if let Err(e) = bench.cold_start(function, 0, &env, true).await {
            eprintln!("{function}, warm-up: {e}");
            failed = true;
            continue;
        }
        let mut readies = Vec::new();
        let mut firsts = Vec::new();
        let mut warm = Vec::new();
        let mut rss = 0;
        for run in 0..bench.options.runs {
            let samples = match bench.cold_start(function, run, &env, true).await {
                Ok(ready) => bench
                    .cold_start(function, run, &env, false)
                    .await
                    .map(|first| (ready, first)),
                Err(e) => Err(e),
            };
            match samples {
                Ok((ready, sample)) => {
                    readies.push(ready.to_first_answer);
                    firsts.push(sample.to_first_answer);
                    warm.extend(sample.warm);
                    rss = rss.max(sample.peak_rss).max(ready.peak_rss);
                }
                Err(e) => {
                    eprintln!("{function}, run {run}: {e}");
                    failed = true;
                    break;
                }
            }
        }
        if firsts.is_empty() {
            continue;
        }
        firsts.sort();
        readies.sort();
        warm.sort();
        println!(
            "| {function} | {} ({size} B) | {} / {} / {} | {} / {} / {} | {} | {} |",
            mb(size),
            ms(percentile(&readies, 0.5)),
            ms(percentile(&readies, 0.9)),
            ms(readies[readies.len() - 1]),
            ms(percentile(&firsts, 0.5)),
            ms(percentile(&firsts, 0.9)),
            ms(firsts[firsts.len() - 1]),
            if warm.is_empty() {
                "—".into()
            } else {
                ms(percentile(&warm, 0.5))
            },
            mb(rss),
        );
    }
    let unexpected = attio_fake
        .unexpected
        .lock()
        .map(|u| u.clone())
        .unwrap_or_default();
    let hubspot_unexpected = hubspot_fake
        .state
        .lock()
        .map(|s| s.unexpected.clone())
        .unwrap_or_default();
    if !unexpected.is_empty() || !hubspot_unexpected.is_empty() {
        eprintln!("unexpected API calls: Attio {unexpected:?}, HubSpot {hubspot_unexpected:?}");
        failed = true;
    }
    if failed {
        std::process::exit(1);
    }
}
