//! The reference design, for comparison: the consumer the design card first describes — for
//! each event, one `GET` of the record from Attio and one `PATCH` of its HubSpot contact —
//! reading the same local queue `attio-relay dev` fills (its own consumers off), so both
//! designs get the same ingest, the same event stream and the same stand-ins.
//!
//! It is not a straw man: it paces itself just under both limits (Attio 95 reads per clock
//! second, HubSpot 185 per rolling 10 s, shared by all its workers, as one deployment-wide
//! budget would), waits out a 429 (Attio's `Retry-After` date; HubSpot's window) and runs
//! `--reference-workers` messages at once. What it cannot do is share a read or a write
//! between two events of one record: one Attio and one HubSpot request per event.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use relay_events::{EventFamily, QueuedEvent};
use relay_queue::SqliteQueue;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::limits::{ClockSecond, Rolling};

/// Its pace: just under each limit. Paced exactly at a limit, a client's window and the
/// server's never line up (the server counts on arrival, later), and each miss costs
/// HubSpot's whole 10 s window.
const ATTIO_READS_PER_SECOND: u32 = crate::attio::READS_PER_SECOND - 5;
const HUBSPOT_REQUESTS_PER_10S: usize = crate::hubspot::REQUESTS_PER_10S - 5;

/// How long a received message stays hidden (the SQS visibility timeout `dev` uses).
const VISIBILITY: Duration = Duration::from_secs(60);

/// Where the reference consumer sends its calls.
#[derive(Debug, Clone)]
pub struct Apis {
    pub attio_url: String,
    pub attio_token: String,
    pub hubspot_url: String,
    pub hubspot_token: String,
}

struct Pacers {
    attio: Mutex<ClockSecond>,
    hubspot: Mutex<Rolling>,
    started: Instant,
}

impl Pacers {
    async fn attio(&self) {
        loop {
            let wait = match self.attio.lock().await.take(SystemTime::now()) {
                Ok(()) => return,
                Err(reset) => reset
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::from_millis(1)),
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn hubspot(&self) {
        loop {
            let wait = match self.hubspot.lock().await.take(self.started.elapsed()) {
                Ok(()) => return,
                Err(wait) => wait,
            };
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }
}

/// Runs `workers` consumers on the records queue of `queue` until `stop` is set.
pub fn spawn(
    queue: SqliteQueue,
    apis: Apis,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .context("HTTP client")?;
    let pacers = Arc::new(Pacers {
        attio: Mutex::new(ClockSecond::new(ATTIO_READS_PER_SECOND)),
        hubspot: Mutex::new(Rolling::new(
            HUBSPOT_REQUESTS_PER_10S,
            Duration::from_secs(10),
        )),
        started: Instant::now(),
    });
    let apis = Arc::new(apis);
    Ok((0..workers.max(1))
        .map(|_| {
            let (queue, apis, http, pacers, stop) = (
                queue.clone(),
                Arc::clone(&apis),
                http.clone(),
                Arc::clone(&pacers),
                Arc::clone(&stop),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let received = queue
                        .receive(EventFamily::Records.as_str(), 1, VISIBILITY)
                        .await
                        .unwrap_or_default();
                    if received.is_empty() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    for message in received {
                        let done = handle(&message.message.body, &apis, &http, &pacers).await;
                        let _ = match done {
                            Ok(()) => queue.delete(&message.receipt_handle).await,
                            Err(_) => {
                                let delay = Duration::from_secs(
                                    2u64.saturating_pow(message.message.receive_count.min(6)),
                                );
                                queue
                                    .change_visibility(&message.receipt_handle, delay)
                                    .await
                            }
                        };
                    }
                }
            })
        })
        .collect())
}

/// One event: GET the record, PATCH its contact.
async fn handle(
    body: &str,
    apis: &Apis,
    http: &reqwest::Client,
    pacers: &Pacers,
) -> anyhow::Result<()> {
    let queued = QueuedEvent::from_body(body).context("not a queued event")?;
    let event: Value = serde_json::from_str(queued.event.get())?;
    let (object, record) = (
        event["id"]["object_id"].as_str().context("no object_id")?,
        event["id"]["record_id"].as_str().context("no record_id")?,
    );
    let url = format!("{}/objects/{object}/records/{record}", apis.attio_url);
    let fetched = call(pacers, true, || {
        http.get(&url).bearer_auth(&apis.attio_token)
    })
    .await?;
    let values = &fetched["data"]["values"];
    let first = |attribute: &str, field: &str| values[attribute][0][field].clone();
    let properties = json!({
        "email": first("email_addresses", "email_address"),
        "firstname": first("name", "first_name"),
        "lastname": first("name", "last_name"),
        "jobtitle": first("job_title", "value"),
    });
    let url = format!(
        "{}/crm/v3/objects/contacts/{record}?idProperty=attio_record_id",
        apis.hubspot_url
    );
    call(pacers, false, || {
        http.patch(&url)
            .bearer_auth(&apis.hubspot_token)
            .json(&json!({ "properties": properties }))
    })
    .await?;
    Ok(())
}

/// Sends a request (paced), waiting out 429s; up to 8 attempts.
async fn call(
    pacers: &Pacers,
    attio: bool,
    request: impl Fn() -> reqwest::RequestBuilder,
) -> anyhow::Result<Value> {
    for _ in 0..8 {
        if attio {
            pacers.attio().await;
        } else {
            pacers.hubspot().await;
        }
        let answer = request().send().await?;
        let status = answer.status();
        if status.is_success() {
            return Ok(answer.json().await.unwrap_or(Value::Null));
        }
        if status.as_u16() != 429 {
            anyhow::bail!("HTTP {status}");
        }
        let wait = answer
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .and_then(|at| at.duration_since(SystemTime::now()).ok())
            .unwrap_or(if attio {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(10)
            });
        tokio::time::sleep(wait).await;
    }
    anyhow::bail!("still rate limited after 8 attempts")
}
