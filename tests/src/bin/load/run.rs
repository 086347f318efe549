//! The steps of a run, in order: prepare, drive the workers, tally, verify, report.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;

use crate::args::LoadArgs;
use crate::plan::Plan;
use crate::report::{Latency, Summary, print_report};
use crate::sample::Sample;
use crate::target::Target;
use crate::verify::{Verification, verify};
use crate::worker::{KindStats, QUOTED_PROBLEMS, RETRYABLE, Shared, WorkerReport, worker};

/// A single request that hangs longer than this counts as a transport error, so one stuck
/// connection cannot hold a worker for the whole run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let sample = Sample::load(args.sample.as_deref())?;
    let mut target = Target::for_args(&args).await?;
    let deliveries = usize::try_from(args.deliveries).context("--deliveries is too large")?;
    // Bounded by the --duplicates range (at most 10 × --deliveries).
    let duplicates_planned = (deliveries as f64 * args.duplicates).round() as usize;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let prepared = sample.prepare(&target.secret, deliveries, &run_id)?;
    let progress = progress_bar(&args, deliveries + duplicates_planned);
    if !args.json {
        // Printed before the bar starts drawing (a hidden bar would swallow it).
        println!(
            "load: {deliveries} deliveries + {duplicates_planned} duplicates of {} \
             at concurrency {} against {} (bounded to {} s)",
            sample.name, args.concurrency, target.description, args.max_duration
        );
    }

    let started = Instant::now();
    let shared = Arc::new(Shared {
        client: client(args.concurrency)?,
        url: target.url.clone(),
        deliveries: prepared,
        plan: Mutex::new(Plan::new(
            deliveries,
            duplicates_planned,
            fastrand::Rng::new(),
        )),
        deadline: started + Duration::from_secs(args.max_duration),
        progress: progress.clone(),
    });
    let tally = Tally::of(drive(&shared, args.concurrency).await?);
    let wall = started.elapsed();
    progress.finish_and_clear();

    let mut acknowledged = std::mem::take(&mut shared.plan().acknowledged);
    acknowledged.sort_unstable();
    // Deliveries are only left unsent when the deadline stopped the workers; duplicates also
    // when nothing was acknowledged to repeat.
    let stopped_by_max_duration = tally.originals.sent < deliveries
        || tally.originals.cut_off + tally.duplicates.cut_off > 0
        || (tally.duplicates.sent < duplicates_planned && Instant::now() >= shared.deadline);
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
        Err(reason) => Verification::skipped(reason),
    };
    if let Some(server) = target.server.take() {
        server.stop().await?;
    }

    let summary = tally.summarise(Outcome {
        args: &args,
        target: &target,
        sample: &sample,
        deliveries,
        duplicates_planned,
        acknowledged: acknowledged.len(),
        stopped_by_max_duration,
        wall,
        verification,
    });
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

/// A keep-alive client for loopback: one idle connection per worker, no proxy.
fn client(concurrency: u32) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        // Loopback only: never route the load through a proxy from the environment.
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(concurrency as usize)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("cannot build the HTTP client")
}

/// A progress bar on a terminal; hidden for `--json` and when stderr is not a terminal.
fn progress_bar(args: &LoadArgs, total: usize) -> ProgressBar {
    if args.json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} requests ({per_sec}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// Runs `concurrency` workers to the end of the plan (or the deadline); their reports.
async fn drive(shared: &Arc<Shared>, concurrency: u32) -> anyhow::Result<Vec<WorkerReport>> {
    let workers: Vec<_> = (0..concurrency)
        .map(|_| tokio::spawn(worker(Arc::clone(shared))))
        .collect();
    let mut reports = Vec::with_capacity(workers.len());
    for worker in workers {
        reports.push(worker.await.context("a load worker panicked")?);
    }
    Ok(reports)
}

/// Every worker's counts, merged.
struct Tally {
    originals: KindStats,
    duplicates: KindStats,
    latencies: Vec<Duration>,
    /// The first few unexpected answers, then how many more there were.
    problems: Vec<String>,
}

/// What the summary is made of besides the tally.
struct Outcome<'a> {
    args: &'a LoadArgs,
    target: &'a Target,
    sample: &'a Sample,
    deliveries: usize,
    duplicates_planned: usize,
    acknowledged: usize,
    stopped_by_max_duration: bool,
    wall: Duration,
    verification: Verification,
}

impl Tally {
    fn of(reports: Vec<WorkerReport>) -> Self {
        let mut tally = Self {
            originals: KindStats::default(),
            duplicates: KindStats::default(),
            latencies: Vec::new(),
            problems: Vec::new(),
        };
        let mut unexpected = 0;
        for report in reports {
            tally.originals.merge(&report.originals);
            tally.duplicates.merge(&report.duplicates);
            tally.latencies.extend(report.latencies);
            tally.problems.extend(report.problems);
            unexpected += report.unexpected;
        }
        tally.problems.truncate(QUOTED_PROBLEMS);
        if unexpected > tally.problems.len() {
            tally.problems.push(format!(
                "… and {} more unexpected answers or errors",
                unexpected - tally.problems.len()
            ));
        }
        tally
    }

    /// The summary, with every problem the run found after the workers' own.
    fn summarise(self, run: Outcome<'_>) -> Summary {
        let Self {
            originals,
            duplicates,
            latencies,
            mut problems,
        } = self;
        let mut answers = originals.answers.clone();
        for (status, n) in &duplicates.answers {
            *answers.entry(status.clone()).or_default() += n;
        }
        let retryable_answers = answers
            .iter()
            .filter(|(status, _)| RETRYABLE.iter().any(|r| r.to_string() == **status))
            .map(|(_, n)| n)
            .sum();
        let secs = run.wall.as_secs_f64().max(f64::EPSILON);
        let requests_answered = originals.answered + duplicates.answered;
        problems.extend(later_problems(&run, &originals, &duplicates));
        Summary {
            target: run.target.description.clone(),
            sample: run.sample.name.clone(),
            concurrency: run.args.concurrency,
            max_duration_secs: run.args.max_duration,
            deliveries_planned: run.deliveries,
            deliveries_sent: originals.sent,
            deliveries_acknowledged: run.acknowledged,
            duplicates_planned: run.duplicates_planned,
            duplicates_sent: duplicates.sent,
            requests_sent: originals.sent + duplicates.sent,
            requests_answered,
            answers,
            retryable_answers,
            stopped_by_max_duration: run.stopped_by_max_duration,
            wall_secs: run.wall.as_secs_f64(),
            deliveries_per_sec: run.acknowledged as f64 / secs,
            requests_per_sec: requests_answered as f64 / secs,
            latency_ms: Latency::of(latencies),
            ok: problems.is_empty(),
            problems,
            verification: run.verification,
            originals,
            duplicates,
        }
    }
}

/// What the run as a whole got wrong: nothing acknowledged, duplicates queued again, and what
/// the verification found.
fn later_problems(run: &Outcome<'_>, originals: &KindStats, duplicates: &KindStats) -> Vec<String> {
    let mut problems = Vec::new();
    if originals.sent > 0 && run.acknowledged == 0 {
        problems.push("no delivery was acknowledged (answered 2xx)".to_owned());
    }
    if let Some(&requeued) = duplicates.outcomes.get("queued") {
        problems.push(format!(
            "{requeued} duplicate requests were answered \"queued\": the relay queued an \
             acknowledged delivery again instead of answering \"duplicate\""
        ));
    }
    if let Some(lost) = run.verification.lost.filter(|&n| n > 0) {
        problems.push(format!(
            "{lost} acknowledged deliveries are not on the queues{}",
            if run.args.url.is_some() {
                " (is --data-dir the folder of the server at --url, and are its consumers off?)"
            } else {
                ""
            }
        ));
    }
    if let Some(twice) = run.verification.duplicates_queued.filter(|&n| n > 0) {
        problems.push(format!(
            "{twice} deliveries were queued more than once: deduplication failed"
        ));
    }
    problems
}
