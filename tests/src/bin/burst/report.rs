//! What a run measured, the bound it is judged against, and the summary (table or JSON).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::args::Design;
use crate::attio::{MAX_QUERY_LIMIT, READS_PER_SECOND};
use crate::hubspot::{MAX_BATCH_INPUTS, REQUESTS_PER_10S};
use crate::plan::{Plan, Sent};
use crate::run::Standins;

/// The least time the limits and ingest allow for the run, whatever the design:
/// every delivery must be ingested, every record read from Attio (at best 500 per query at
/// 100 queries per clock second) and written to HubSpot (at best 100 per batch upsert; the
/// first 190 requests of a rolling 10 s go at once, then 19 per second).
#[derive(Debug, Clone, Serialize)]
pub struct Bound {
    pub ingest_secs: f64,
    pub attio_secs: f64,
    pub hubspot_secs: f64,
    pub secs: f64,
}

impl Bound {
    pub fn new(ingest: Duration, records: usize) -> Self {
        let queries = records.div_ceil(MAX_QUERY_LIMIT) as f64;
        let upserts = records.div_ceil(MAX_BATCH_INPUTS) as f64;
        let burst = REQUESTS_PER_10S as f64;
        let attio_secs = queries / f64::from(READS_PER_SECOND);
        let hubspot_secs = (upserts - burst).max(0.0) / (burst / 10.0);
        let ingest_secs = ingest.as_secs_f64();
        Self {
            ingest_secs,
            attio_secs,
            hubspot_secs,
            secs: ingest_secs.max(attio_secs).max(hubspot_secs),
        }
    }
}

/// Calls to one API.
#[derive(Debug, Clone, Serialize)]
pub struct ApiCalls {
    /// Served, not counting the refused, until every queued event was handled.
    pub requests: u64,
    pub per_event: f64,
    pub rate_limited: u64,
    /// 429s as a share of every request sent.
    pub rate_limited_share: f64,
    pub unexpected: u64,
}

impl ApiCalls {
    fn new(requests: u64, rate_limited: u64, unexpected: u64, events: usize) -> Self {
        let attempted = requests + rate_limited;
        Self {
            requests,
            per_event: requests as f64 / events.max(1) as f64,
            rate_limited,
            rate_limited_share: if attempted == 0 {
                0.0
            } else {
                rate_limited as f64 / attempted as f64
            },
            unexpected,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DesignResult {
    pub design: String,
    /// Every record's final values reached HubSpot before --max-duration.
    pub drained: bool,
    /// First send → the last record's final values visible in HubSpot (or giving up).
    pub drain_secs: f64,
    pub bound: Bound,
    pub ratio: f64,
    pub attio: ApiCalls,
    pub hubspot: ApiCalls,
    /// Records per Attio query and inputs per HubSpot batch upsert, on average.
    pub records_per_query: f64,
    pub inputs_per_upsert: f64,
    /// Last update sent → its value visible in HubSpot, per record, in milliseconds.
    pub freshness_p50_ms: f64,
    pub freshness_p99_ms: f64,
    pub dead_letters: u64,
    /// Every queued event was handled (the requests counted are the whole stream's).
    pub queue_emptied: bool,
    /// Records whose HubSpot copy is not at the final version.
    pub records_not_final: usize,
    pub deliveries_not_acknowledged: u64,
}

impl DesignResult {
    /// What is wrong with this run, if anything.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let d = &self.design;
        if !self.drained {
            problems.push(format!("{d}: not drained before --max-duration"));
        }
        if self.records_not_final > 0 {
            problems.push(format!(
                "{d}: {} records not at their final values",
                self.records_not_final
            ));
        }
        if self.drained && !self.queue_emptied {
            problems.push(format!("{d}: events still queued at --max-duration"));
        }
        if self.dead_letters > 0 {
            problems.push(format!("{d}: {} dead letters", self.dead_letters));
        }
        if self.deliveries_not_acknowledged > 0 {
            problems.push(format!(
                "{d}: {} deliveries never acknowledged",
                self.deliveries_not_acknowledged
            ));
        }
        if self.attio.unexpected + self.hubspot.unexpected > 0 {
            problems.push(format!(
                "{d}: {} requests the stand-ins do not serve (Attio {}, HubSpot {})",
                self.attio.unexpected + self.hubspot.unexpected,
                self.attio.unexpected,
                self.hubspot.unexpected
            ));
        }
        problems
    }
}

/// Exact percentile of sorted values (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[allow(clippy::too_many_arguments)]
pub fn measure(
    design: Design,
    plan: &Plan,
    finals: &[u64],
    standins: &Standins,
    sent: &Sent,
    drained: bool,
    gave_up_at: Instant,
    dead_letters: u64,
    queue_emptied: bool,
) -> DesignResult {
    let started = sent.started.unwrap_or(gave_up_at);
    let contacts = standins
        .hubspot
        .contacts
        .lock()
        .expect("hubspot contacts")
        .clone();
    let mut last_visible = started;
    let mut freshness = Vec::new();
    let mut not_final = 0;
    for (index, record) in plan.record_ids.iter().enumerate() {
        let contact = contacts.get(record);
        match contact {
            Some(c) if c.version == finals[index] => {
                last_visible = last_visible.max(c.current_since)
            }
            _ => not_final += 1,
        }
        let seen = contact.and_then(|c| c.first_seen.get(&finals[index]));
        if let (Some(seen), Some(updated)) = (seen, sent.last_update[index]) {
            freshness.push(seen.saturating_duration_since(updated).as_secs_f64() * 1000.0);
        }
    }
    freshness.sort_by(f64::total_cmp);
    let drain = if drained {
        last_visible.saturating_duration_since(started)
    } else {
        gave_up_at.saturating_duration_since(started)
    };
    let ingest = sent
        .acknowledged_at
        .map_or(Duration::ZERO, |at| at.saturating_duration_since(started));
    let bound = Bound::new(ingest, plan.record_ids.len());
    let events = plan.events.len();
    let a = &standins.attio.counts;
    let h = &standins.hubspot.counts;
    let queries = a.record_queries.load(Ordering::Relaxed);
    let upserts = h.batch_upserts.load(Ordering::Relaxed);
    DesignResult {
        design: design.to_string(),
        drained,
        drain_secs: drain.as_secs_f64(),
        ratio: if bound.secs > 0.0 {
            drain.as_secs_f64() / bound.secs
        } else {
            0.0
        },
        bound,
        attio: ApiCalls::new(
            a.served(),
            a.rate_limited.load(Ordering::Relaxed),
            a.unexpected.load(Ordering::Relaxed),
            events,
        ),
        hubspot: ApiCalls::new(
            h.served(),
            h.rate_limited.load(Ordering::Relaxed),
            h.unexpected.load(Ordering::Relaxed),
            events,
        ),
        records_per_query: ratio_of(a.records_queried.load(Ordering::Relaxed), queries),
        inputs_per_upsert: ratio_of(h.upserted_inputs.load(Ordering::Relaxed), upserts),
        freshness_p50_ms: percentile(&freshness, 50.0),
        freshness_p99_ms: percentile(&freshness, 99.0),
        dead_letters,
        queue_emptied,
        records_not_final: not_final,
        deliveries_not_acknowledged: sent.failed,
    }
}

fn ratio_of(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// The summary table, one row per design.
pub fn table(results: &[DesignResult]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<10} {:>8} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>5} {:>6}\n",
        "design",
        "drain s",
        "bound s",
        "ratio",
        "Attio/ev",
        "HubSp/ev",
        "Attio429",
        "HubSp429",
        "fresh p50",
        "fresh p99",
        "DLQ",
        "final"
    ));
    for r in results {
        out.push_str(&format!(
            "{:<10} {:>8.1} {:>8.1} {:>6.2} {:>9.3} {:>9.3} {:>9} {:>9} {:>8.2}s {:>8.2}s {:>5} {:>6}\n",
            r.design,
            r.drain_secs,
            r.bound.secs,
            r.ratio,
            r.attio.per_event,
            r.hubspot.per_event,
            r.attio.rate_limited,
            r.hubspot.rate_limited,
            r.freshness_p50_ms / 1000.0,
            r.freshness_p99_ms / 1000.0,
            r.dead_letters,
            if r.records_not_final == 0 { "ok" } else { "WRONG" },
        ));
    }
    for r in results {
        out.push_str(&format!(
            "{}: bound = max(ingest {:.1} s, Attio {:.2} s, HubSpot {:.2} s); Attio {} requests \
             ({:.1} records per query), HubSpot {} requests ({:.1} inputs per batch upsert) \
             (0.0: none made)\n",
            r.design,
            r.bound.ingest_secs,
            r.bound.attio_secs,
            r.bound.hubspot_secs,
            r.attio.requests,
            r.records_per_query,
            r.hubspot.requests,
            r.inputs_per_upsert,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn the_bound_is_ingest_until_hubspot_batches_run_out_of_the_burst() {
        let small = Bound::new(Duration::from_secs(7), 1_000);
        assert_eq!(small.secs, 7.0);
        assert!((small.attio_secs - 0.02).abs() < 1e-9);
        assert_eq!(small.hubspot_secs, 0.0);
        // 100,000 records: 1,000 upserts, 810 past the burst at 19/s.
        let large = Bound::new(Duration::from_secs(1), 100_000);
        assert!((large.hubspot_secs - 810.0 / 19.0).abs() < 1e-9);
        assert_eq!(large.secs, large.hubspot_secs);
    }
}
