//! The library over the in-memory adapters (records, CRM, mappings, positions) with a manual
//! clock, and the status check against a wiremock Attio that answers `GET /v2/webhooks` and
//! `GET /v2/webhooks/{id}` as Attio documents (paged list, 404 `not_found` once deleted).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use relay_attio::{AttioClient, AttioConfig, AttioError, MemoryAttio, Record};
use relay_crm::{CrmObject, MemoryCrm, OutboxEntry};
use relay_events::clock::{Clock, UnixSeconds};
use relay_mappings::MemoryMappings;
use relay_sync::{FieldMapping, SyncContext};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::lambda::{Plan, reconcile_once};
use crate::walk::RecordPageSource;
use crate::*;

const WS: &str = "a9f6fd20-80d5-4bd1-b8fe-60a7c5a9178a";
const T0: UnixSeconds = 1_770_000_000;

type Ctx = SyncContext<MemoryCrm, MemoryMappings, MemoryAttio>;

fn context() -> Ctx {
    SyncContext::with_attio(
        MemoryAttio::new(),
        MemoryCrm::new(),
        MemoryMappings::new(),
        FieldMapping::default(),
    )
}

fn person(n: usize) -> Record {
    let current = |extra: Value| {
        let mut value = json!({"active_from": "2026-11-02T09:12:44Z", "active_until": null});
        value
            .as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        json!([value])
    };
    let email = format!("p{n}@example.com");
    serde_json::from_value(json!({
        "id": {"workspace_id": WS, "object_id": "people-id", "record_id": format!("rec-{n:04}")},
        "created_at": "2026-11-02T09:12:44Z",
        "values": {
            "email_addresses": current(json!({
                "attribute_type": "email-address", "email_address": email,
                "original_email_address": email, "email_domain": "example.com",
                "email_root_domain": "example.com", "email_local_specifier": format!("p{n}")})),
            "name": current(json!({
                "attribute_type": "personal-name", "first_name": format!("P{n}"),
                "last_name": "Example", "full_name": format!("P{n} Example")})),
        }
    }))
    .expect("record")
}

fn people(count: usize) -> Vec<Record> {
    (0..count).map(person).collect()
}

/// Attio record ids in every upsert the CRM received, in order.
fn upserted(crm: &MemoryCrm) -> Vec<String> {
    crm.calls()
        .into_iter()
        .filter_map(|c| match c {
            OutboxEntry::Upsert { records, .. } => Some(records),
            _ => None,
        })
        .flatten()
        .map(|r| r.attio_record_id)
        .collect()
}

/// A clock that moves only when told.
#[derive(Debug, Default)]
struct ManualClock(AtomicI64);

impl ManualClock {
    fn at(t: UnixSeconds) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(t)))
    }
    fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixSeconds {
        self.0.load(Ordering::SeqCst)
    }
}

/// Pages that each take `secs` of the clock's time, as a slow Attio page plus its upserts do.
struct SlowPages {
    inner: MemoryRecords,
    clock: Arc<ManualClock>,
    secs: i64,
}

impl RecordPageSource for SlowPages {
    async fn page(&self, object: &str, offset: u32, limit: u32) -> Result<Vec<Record>, AttioError> {
        self.clock.advance(self.secs);
        self.inner.page(object, offset, limit).await
    }
}

fn options(object: &str, page_size: u32, stop_at: Option<UnixSeconds>) -> WalkOptions {
    WalkOptions {
        page_size,
        stop_at,
        ..WalkOptions::new(object)
    }
}

#[tokio::test]
async fn an_interrupted_walk_resumes_at_the_saved_position_and_syncs_each_record_once() {
    let ctx = context();
    let source = MemoryRecords::new().with_records("people", people(1120));
    let positions = MemoryPositions::new();
    let clock = ManualClock::at(T0);
    source.fail_once(
        "people",
        500,
        AttioError::RateLimited {
            path: "/objects/people/records/query".into(),
            retry_after: std::time::Duration::from_secs(30),
        },
    );

    let first = walk_object(
        &ctx,
        &source,
        &positions,
        &*clock,
        &options("people", 500, None),
        &mut Quiet,
    )
    .await;
    let err = first.expect_err("page two fails");
    assert!(err.to_string().contains("offset 500"), "{err}");
    let saved = positions.get("people").expect("saved after page one");
    assert_eq!((saved.offset, saved.records_synced), (500, 500));
    assert_eq!(saved.started_at, T0 as u64);

    clock.advance(3600);
    let second = walk_object(
        &ctx,
        &source,
        &positions,
        &*clock,
        &options("people", 500, None),
        &mut Quiet,
    )
    .await
    .expect("the second run finishes");
    let WalkOutcome::Finished(done) = second else {
        panic!("expected a finished walk: {second:?}");
    };
    assert_eq!(done.records_synced, 1120);
    assert_eq!(done.offset, 0, "the next pass starts over");
    assert_eq!(done.last_full_sync, Some((T0 + 3600) as u64));
    assert_eq!(positions.get("people"), Some(done));
    assert_eq!(
        source.requests(),
        [0, 500, 500, 1000].map(|o| ("people".to_owned(), o)),
        "the failed page is retried; page one is not read again"
    );
    let ids = upserted(&ctx.crm);
    assert_eq!(ids.len(), 1120, "each record upserted once");
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 1120);
    assert_eq!(ctx.crm.objects(CrmObject::Contacts).len(), 1120);
}

#[tokio::test]
async fn a_walk_starts_no_page_past_the_deadline_and_the_next_invocation_continues() {
    let ctx = context();
    let clock = ManualClock::at(T0);
    let source = SlowPages {
        inner: MemoryRecords::new().with_records("people", people(45)),
        clock: Arc::clone(&clock),
        secs: 100,
    };
    let positions = MemoryPositions::new();

    // Pages start at T0, T0+100, T0+200; at T0+300 the stop time (T0+250) has passed.
    let first = walk_object(
        &ctx,
        &source,
        &positions,
        &*clock,
        &options("people", 10, Some(T0 + 250)),
        &mut Quiet,
    )
    .await
    .expect("walk");
    assert!(matches!(first, WalkOutcome::Paused(_)), "{first:?}");
    assert_eq!(first.position().offset, 30);
    assert_eq!(upserted(&ctx.crm).len(), 30);
    assert_eq!(positions.get("people").map(|p| p.offset), Some(30));

    // A deadline already past starts nothing at all.
    let none = walk_object(
        &ctx,
        &source,
        &positions,
        &*clock,
        &options("people", 10, Some(clock.now())),
        &mut Quiet,
    )
    .await
    .expect("walk");
    assert_eq!(none.position().offset, 30);
    assert_eq!(source.inner.requests().len(), 3, "no page was read");

    let second = walk_object(
        &ctx,
        &source,
        &positions,
        &*clock,
        &options("people", 10, Some(clock.now() + 900)),
        &mut Quiet,
    )
    .await
    .expect("walk");
    assert!(matches!(second, WalkOutcome::Finished(_)), "{second:?}");
    assert_eq!(second.position().records_synced, 45);
    let offsets: Vec<u32> = source.inner.requests().iter().map(|(_, o)| *o).collect();
    assert_eq!(
        offsets,
        [0, 10, 20, 30, 40],
        "resumed at 30, ended on a short page"
    );
    assert_eq!(upserted(&ctx.crm).len(), 45);
}

#[tokio::test]
async fn a_pass_resumes_the_unfinished_object_first_then_the_longest_unsynced() {
    let ctx = context();
    let clock = ManualClock::at(T0);
    let source = MemoryRecords::new()
        .with_records("people", people(3))
        .with_records("companies", Vec::new())
        .with_records("deals", Vec::new());
    let positions = MemoryPositions::new();
    let mut people_pos = SyncPosition::start("people", T0 - 10, Some((T0 - 5000) as u64));
    people_pos.offset = 2;
    positions.save(&people_pos).await.expect("save");
    positions
        .save(&SyncPosition {
            last_full_sync: Some((T0 - 100) as u64),
            ..SyncPosition::start("deals", T0 - 200, None)
        })
        .await
        .expect("save");
    // A read of `deals` that fails must not keep the others from running.
    source.fail_once(
        "deals",
        0,
        AttioError::RateLimited {
            path: "/objects/people/records/query".into(),
            retry_after: std::time::Duration::from_secs(5),
        },
    );

    let objects = ["deals", "companies", "people"].map(String::from);
    let report = walk_objects(
        &ctx,
        &source,
        &positions,
        &*clock,
        &objects,
        &options("", 500, None),
        &mut Quiet,
    )
    .await;
    let order: Vec<&str> = report.objects.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(
        order,
        ["people", "companies", "deals"],
        "in progress, never synced, synced longest ago"
    );
    assert_eq!(report.failed(), ["deals"]);
    assert!(!report.complete());
    assert_eq!(
        upserted(&ctx.crm),
        ["rec-0002"],
        "people resumed at offset 2"
    );

    // With the stop time already reached, nothing starts.
    let late = walk_objects(
        &ctx,
        &source,
        &positions,
        &*clock,
        &objects,
        &options("", 500, Some(T0)),
        &mut Quiet,
    )
    .await;
    assert!(
        late.objects
            .iter()
            .all(|(_, r)| matches!(r, ObjectResult::NotStarted)),
        "{late:?}"
    );
}

const RELAY_URL: &str = "https://abc.lambda-url.eu-west-1.on.aws/";

fn webhook(id: &str, target: &str, status: &str) -> Value {
    json!({
        "target_url": target,
        "subscriptions": [{"event_type": "record.updated", "filter": null}],
        "id": {"workspace_id": WS, "webhook_id": id},
        "status": status,
        "created_at": "2026-11-01T00:00:00.000000000Z"
    })
}

/// Attio's webhook endpoints over `all`: the list paged by `limit` (10–100, default 10) and
/// `offset`, and one webhook by id (404 `not_found` when there is none).
async fn attio_with(all: Vec<Value>) -> (MockServer, AttioClient) {
    let server = MockServer::start().await;
    let list = all.clone();
    Mock::given(method("GET"))
        .and(path("/v2/webhooks"))
        .respond_with(move |req: &Request| {
            let param = |name: &str| {
                req.url
                    .query_pairs()
                    .find(|(k, _)| k == name)
                    .and_then(|(_, v)| v.parse::<usize>().ok())
            };
            let (limit, offset) = (param("limit").unwrap_or(10), param("offset").unwrap_or(0));
            let page: Vec<Value> = list.iter().skip(offset).take(limit).cloned().collect();
            ResponseTemplate::new(200).set_body_json(json!({ "data": page }))
        })
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/v2/webhooks/[^/]+$"))
        .respond_with(move |req: &Request| {
            let id = req.url.path().rsplit('/').next().unwrap_or_default();
            match all.iter().find(|w| w["id"]["webhook_id"] == id) {
                Some(w) => ResponseTemplate::new(200).set_body_json(json!({ "data": w })),
                None => ResponseTemplate::new(404).set_body_json(json!({
                    "status_code": 404, "type": "invalid_request_error", "code": "not_found",
                    "message": format!("Webhook with ID \"{id}\" was not found.")
                })),
            }
        })
        .mount(&server)
        .await;
    let mut config = AttioConfig::new("attio-token");
    config.base_url = format!("{}/v2", server.uri());
    let client = AttioClient::new(config).expect("client");
    (server, client)
}

/// The JSON log lines `f` writes, as the Lambda's JSON logging writes them.
fn json_lines(f: impl FnOnce()) -> Vec<Value> {
    #[derive(Clone, Default)]
    struct Buffer(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buffer.0.lock().expect("lock").clone();
    String::from_utf8(bytes)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[tokio::test]
async fn a_webhook_that_is_not_active_becomes_the_alarm_line_and_an_active_one_does_not() {
    let (_server, client) = attio_with(vec![
        webhook("wh-active", "https://other.example/hook", "active"),
        webhook("wh-relay", RELAY_URL, "degraded"),
        webhook("wh-old", "https://other.example/hook", "inactive"),
    ])
    .await;

    // By target: only the relay's webhook (another integration's inactive one is not ours).
    let check = status::check_webhooks(&client, &[], Some(RELAY_URL.trim_end_matches('/')))
        .await
        .expect("check");
    assert_eq!(check.webhooks.len(), 1);
    assert_eq!(check.attention.len(), 1);
    assert_eq!(check.attention[0].webhook_id, "wh-relay");
    assert_eq!(check.attention[0].status, "degraded");
    let lines = json_lines(|| status::signal_alarm(&check.attention));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["event"], ALARM_EVENT, "the metric filter's field");
    assert_eq!(lines[0]["webhook_id"], "wh-relay");
    assert_eq!(lines[0]["level"], "ERROR");
    assert!(
        !lines[0].to_string().contains("attio-token"),
        "no token in logs"
    );

    // By id: active is silent; a deleted one needs attention; an inactive one says how to
    // replace it.
    let ids = ["wh-active", "wh-gone", "wh-old"].map(String::from);
    let check = status::check_webhooks(&client, &ids, None)
        .await
        .expect("check");
    let flagged: Vec<(&str, &str)> = check
        .attention
        .iter()
        .map(|a| (a.webhook_id.as_str(), a.status.as_str()))
        .collect();
    assert_eq!(flagged, [("wh-gone", "missing"), ("wh-old", "inactive")]);
    assert!(check.attention[1].what_to_do.contains("--replaces wh-old"));
    assert!(json_lines(|| status::signal_alarm(&[])).is_empty());

    // No webhook for the target at all: nothing reaches the relay.
    let check = status::check_webhooks(&client, &[], Some("https://nowhere.example/"))
        .await
        .expect("check");
    assert_eq!(check.attention.len(), 1);
    assert_eq!(check.attention[0].status, "missing");
}

#[test]
fn only_an_active_webhook_needs_nothing() {
    let hook = |status: Option<&str>| -> relay_attio::Webhook {
        let mut value = webhook("wh-1", RELAY_URL, "x");
        value["status"] = json!(status);
        serde_json::from_value(value).expect("webhook")
    };
    assert_eq!(attention(&hook(Some("active"))), None);
    let degraded = attention(&hook(Some("degraded"))).expect("degraded");
    assert!(degraded.what_to_do.contains("DEGRADED"), "{degraded:?}");
    assert!(attention(&hook(None)).is_some(), "no state is not active");
    assert!(attention(&hook(Some("paused"))).is_some());
}

#[tokio::test]
async fn one_invocation_checks_the_webhooks_then_walks_until_its_stop_time() {
    let (_server, client) = attio_with(vec![webhook("wh-relay", RELAY_URL, "inactive")]).await;
    let ctx = context();
    let clock = ManualClock::at(T0);
    let source = SlowPages {
        inner: MemoryRecords::new().with_records("people", people(25)),
        clock: Arc::clone(&clock),
        secs: 60,
    };
    let positions = MemoryPositions::new();
    let plan = Plan {
        webhook_ids: Vec::new(),
        target_url: Some(RELAY_URL.into()),
        objects: vec!["people".into()],
        page_size: 10,
    };

    let report = reconcile_once(&ctx, &client, &source, &positions, &*clock, &plan, T0 + 30).await;
    let check = report.check.as_ref().expect("status read");
    assert_eq!(check.attention[0].status, "inactive");
    let summary = report.summary();
    assert_eq!(summary["webhooks_not_active"], 1);
    assert_eq!(summary["objects"][0]["outcome"], "paused");
    assert_eq!(summary["objects"][0]["offset"], 10);
    assert_eq!(summary["pass_complete"], false);
    assert_eq!(report.failure(), None, "a paused walk is not a failure");

    let report = reconcile_once(&ctx, &client, &source, &positions, &*clock, &plan, T0 + 900).await;
    let summary = report.summary();
    assert_eq!(summary["objects"][0]["outcome"], "finished");
    assert_eq!(summary["objects"][0]["records_synced"], 25);
    assert_eq!(summary["pass_complete"], true);
    assert_eq!(upserted(&ctx.crm).len(), 25);

    // Attio refusing the token: the state is unknown, which fails the invocation (the
    // reconcile-failing alarm), while the walk still runs.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "status_code": 401, "type": "auth_error", "code": "unauthorized",
            "message": "Invalid access token"})))
        .mount(&server)
        .await;
    let mut config = AttioConfig::new("bad-token");
    config.base_url = format!("{}/v2", server.uri());
    let refused = AttioClient::new(config).expect("client");
    let report = reconcile_once(
        &ctx,
        &refused,
        &source,
        &positions,
        &*clock,
        &plan,
        T0 + 2000,
    )
    .await;
    let failure = report.failure().expect("a failure");
    assert!(failure.contains("webhook status unknown"), "{failure}");
    assert_eq!(report.summary()["objects"][0]["outcome"], "finished");
}
