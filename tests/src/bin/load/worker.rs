//! The workers: each takes the next request from the shared plan, sends it, waits for its
//! answer and counts what came back.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use indicatif::ProgressBar;
use relay_signature::{LEGACY_SIGNATURE_HEADER, SIGNATURE_HEADER};
use reqwest::StatusCode;
use serde::Serialize;
use tokio::time::Instant;

use crate::plan::{Next, Plan};
use crate::sample::Prepared;

/// Answers README.md documents as "retry later": a delivery answered so is not lost, Attio
/// would send it again. Anything else that is not 2xx is a failure of the run.
pub const RETRYABLE: [u16; 2] = [409, 503];

/// How many unexpected answers or errors are quoted in the report (the rest are counted).
pub const QUOTED_PROBLEMS: usize = 5;

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
    pub fn merge(&mut self, other: &Self) {
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
pub struct WorkerReport {
    pub originals: KindStats,
    pub duplicates: KindStats,
    pub latencies: Vec<Duration>,
    pub problems: Vec<String>,
    pub unexpected: usize,
}

/// What the workers share: the client, the prepared deliveries and the plan.
pub struct Shared {
    pub client: reqwest::Client,
    pub url: reqwest::Url,
    pub deliveries: Vec<Prepared>,
    pub plan: Mutex<Plan>,
    pub deadline: Instant,
    pub progress: ProgressBar,
}

impl Shared {
    pub fn plan(&self) -> MutexGuard<'_, Plan> {
        // The plan holds plain counters: still consistent if another worker panicked.
        self.plan.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How one request ended.
enum Sent {
    /// --max-duration was reached first.
    CutOff,
    Failed(reqwest::Error),
    Answered {
        status: StatusCode,
        body: Bytes,
        elapsed: Duration,
    },
}

/// Sends requests until the plan is done or the deadline passes.
pub async fn worker(shared: Arc<Shared>) -> WorkerReport {
    let mut report = WorkerReport::default();
    while Instant::now() < shared.deadline {
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
        let sent = send(&shared, delivery).await;
        let acknowledged = report.record(delivery, duplicate, sent);
        if !duplicate {
            shared.plan().answered(index, acknowledged);
        }
        shared.progress.inc(1);
    }
    report
}

/// One request, timed from send to the last byte of the answer.
async fn send(shared: &Shared, delivery: &Prepared) -> Sent {
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
    match result {
        Err(_) => Sent::CutOff,
        Ok(Err(err)) => Sent::Failed(err),
        Ok(Ok((status, body))) => Sent::Answered {
            status,
            body,
            elapsed: started.elapsed(),
        },
    }
}

impl WorkerReport {
    /// Counts one request; true when it was acknowledged (2xx).
    fn record(&mut self, delivery: &Prepared, duplicate: bool, sent: Sent) -> bool {
        let stats = if duplicate {
            &mut self.duplicates
        } else {
            &mut self.originals
        };
        stats.sent += 1;
        match sent {
            Sent::CutOff => {
                stats.cut_off += 1;
                false
            }
            Sent::Failed(err) => {
                stats.transport_errors += 1;
                self.problem(|| format!("no answer for {}: {err}", delivery.header_key));
                false
            }
            Sent::Answered {
                status,
                body,
                elapsed,
            } => {
                stats.answered += 1;
                self.latencies.push(elapsed);
                *stats
                    .answers
                    .entry(status.as_u16().to_string())
                    .or_default() += 1;
                if status.is_success() {
                    *stats.outcomes.entry(outcome_of(&body)).or_default() += 1;
                } else if !RETRYABLE.contains(&status.as_u16()) {
                    self.problem(|| {
                        format!(
                            "{status} for {}: {}",
                            delivery.header_key,
                            String::from_utf8_lossy(&body[..body.len().min(300)])
                        )
                    });
                }
                status.is_success()
            }
        }
    }

    /// Counts an unexpected answer or error, quoting the first few.
    fn problem(&mut self, quote: impl FnOnce() -> String) {
        self.unexpected += 1;
        if self.problems.len() < QUOTED_PROBLEMS {
            self.problems.push(quote());
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_by_status_and_outcome() {
        let delivery = Prepared {
            header_key: "k".into(),
            stored_key: "h:k".into(),
            body: Bytes::new(),
            signature: String::new(),
        };
        let answered = |status: u16, body: &'static str| Sent::Answered {
            status: StatusCode::from_u16(status).unwrap(),
            body: Bytes::from_static(body.as_bytes()),
            elapsed: Duration::from_millis(1),
        };
        let mut report = WorkerReport::default();
        assert!(report.record(&delivery, false, answered(200, r#"{"status":"queued"}"#)));
        assert!(report.record(&delivery, true, answered(200, r#"{"status":"duplicate"}"#)));
        assert!(!report.record(&delivery, false, answered(503, "{}")));
        assert!(!report.record(&delivery, false, answered(401, r#"{"error":"x"}"#)));
        assert!(!report.record(&delivery, false, Sent::CutOff));

        assert_eq!(report.originals.sent, 4);
        assert_eq!(report.originals.answered, 3);
        assert_eq!(report.originals.cut_off, 1);
        assert_eq!(report.originals.outcomes["queued"], 1);
        assert_eq!(report.duplicates.outcomes["duplicate"], 1);
        assert_eq!(report.originals.answers["503"], 1);
        assert_eq!(report.unexpected, 1, "503 is retry-later, 401 is not");
        assert!(
            report.problems[0].starts_with("401"),
            "{:?}",
            report.problems
        );
        assert_eq!(report.latencies.len(), 4);
    }
}
