//! The run's summary: what `--json` prints, and the human-readable report written from it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::verify::Verification;
use crate::worker::KindStats;

/// The run's summary.
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
    pub fn of(mut samples: Vec<Duration>) -> Option<Self> {
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
pub fn print_report(s: &Summary) {
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
    print_verification(&s.verification);
    for problem in &s.problems {
        println!("problem      {problem}");
    }
}

fn print_verification(v: &Verification) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn counts_read_as_a_list() {
        let mut stats = KindStats {
            sent: 3,
            answered: 2,
            cut_off: 1,
            ..KindStats::default()
        };
        stats.answers.insert("200".into(), 2);
        assert_eq!(
            kind_line(&stats),
            "3 sent, 2 answered: 200 × 2; 2xx bodies: none; 1 cut off at --max-duration"
        );
    }
}
