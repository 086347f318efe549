//! `attio-relay webhooks list|rotate` past Attio's first page, and `attio-relay reconcile`,
//! against a wiremock Attio that pages `GET /v2/webhooks` by `limit` (10–100, default 10) and
//! `offset` as Attio documents, reports webhook states (active, degraded, inactive), answers
//! `GET /v2/webhooks/{id}` (404 once deleted), and a wiremock HubSpot taking batch upserts.

use std::collections::HashSet;

use integration_tests::cli::Output;
use integration_tests::fixtures;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::relay;

const RELAY_URL: &str = "https://abc.lambda-url.eu-west-1.on.aws/";

fn webhook(id: &str, target: &str, status: &str) -> Value {
    json!({
        "target_url": target,
        "subscriptions": [{"event_type": "record.updated", "filter": null},
                          {"event_type": "note.created", "filter": null}],
        "id": {"workspace_id": "14beef7a-99f7-4534-a87e-70b564330a4c", "webhook_id": id},
        "status": status,
        "created_at": "2026-11-01T00:00:00.000000000Z"
    })
}

/// `GET /v2/webhooks` over `all`, as Attio pages it: `limit` between 10 and 100 (default 10),
/// `offset` default 0; anything else is refused the way Attio refuses a bad query.
fn list_page(req: &Request, all: &[Value]) -> ResponseTemplate {
    let param = |name: &str| {
        req.url
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.parse::<usize>().expect("a number"))
    };
    let (limit, offset) = (param("limit").unwrap_or(10), param("offset").unwrap_or(0));
    if !(10..=100).contains(&limit) {
        return ResponseTemplate::new(400).set_body_json(json!({
            "status_code": 400, "type": "invalid_request_error", "code": "validation_type",
            "message": "limit must be between 10 and 100"
        }));
    }
    let page: Vec<Value> = all.iter().skip(offset).take(limit).cloned().collect();
    ResponseTemplate::new(200).set_body_json(json!({ "data": page }))
}

/// Mounts the webhook list and `GET /v2/webhooks/{id}` over `all`.
async fn mount_webhooks(attio: &MockServer, all: Vec<Value>) {
    let list = all.clone();
    Mock::given(method("GET"))
        .and(path("/v2/webhooks"))
        .respond_with(move |req: &Request| list_page(req, &list))
        .mount(attio)
        .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(r"^/v2/webhooks/[^/]+$"))
        .respond_with(move |req: &Request| {
            let id = req.url.path().rsplit('/').next().expect("id");
            match all.iter().find(|w| w["id"]["webhook_id"] == id) {
                Some(w) => ResponseTemplate::new(200).set_body_json(json!({ "data": w })),
                None => ResponseTemplate::new(404).set_body_json(json!({
                    "status_code": 404, "type": "invalid_request_error", "code": "not_found",
                    "message": format!("Webhook with ID \"{id}\" was not found.")
                })),
            }
        })
        .mount(attio)
        .await;
}

/// (limit, offset) of every webhook list request Attio received.
async fn list_queries(attio: &MockServer) -> Vec<(String, String)> {
    attio
        .received_requests()
        .await
        .expect("recording")
        .iter()
        .filter(|r| r.method.as_str() == "GET" && r.url.path() == "/v2/webhooks")
        .map(|r| {
            let q = |name: &str| {
                r.url
                    .query_pairs()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            (q("limit"), q("offset"))
        })
        .collect()
}

fn attio_cli(attio: &MockServer) -> integration_tests::cli::Cli {
    relay()
        .env("ATTIO_API_TOKEN", "attio-token")
        .env("ATTIO_API_URL", &format!("{}/v2", attio.uri()))
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_list_and_rotate_reach_past_the_first_page() {
    let attio = MockServer::start().await;
    let all: Vec<Value> = (0..150)
        .map(|n| webhook(&format!("wh-{n:03}"), RELAY_URL, "active"))
        .collect();
    mount_webhooks(&attio, all).await;
    Mock::given(method("POST"))
        .and(path("/v2/webhooks"))
        .respond_with(|req: &Request| {
            let body: Value = serde_json::from_slice(&req.body).expect("json");
            let mut created = webhook("wh-new", RELAY_URL, "active");
            created["subscriptions"] = body["data"]["subscriptions"].clone();
            created["secret"] = json!("whsec_rotated");
            ResponseTemplate::new(200).set_body_json(json!({ "data": created }))
        })
        .expect(1)
        .mount(&attio)
        .await;

    let out = attio_cli(&attio).run(&["webhooks", "list"]);
    let text = out.text();
    assert!(out.ok, "{text}");
    let listed: HashSet<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|id| id.starts_with("wh-"))
        .collect();
    assert_eq!(
        listed.len(),
        150,
        "every webhook, not the first page: {text}"
    );
    assert!(listed.contains("wh-000") && listed.contains("wh-149"));
    assert!(text.contains("150 webhook(s)"), "{text}");
    assert_eq!(
        list_queries(&attio).await,
        vec![("100".into(), "0".into()), ("100".into(), "100".into())],
        "Attio's largest page, then the next offset; a short page ends the walk"
    );

    // The webhook being replaced is on the second page: read by id, its subscriptions copied.
    let out = attio_cli(&attio).run(&[
        "webhooks",
        "rotate",
        "--target-url",
        RELAY_URL,
        "--replaces",
        "wh-140",
        "--print-secret",
    ]);
    assert!(out.ok, "{}", out.text());
    let requests = attio.received_requests().await.expect("recording");
    let post = requests
        .iter()
        .find(|r| r.method.as_str() == "POST")
        .expect("create request");
    let body: Value = serde_json::from_slice(&post.body).expect("json");
    assert_eq!(
        body["data"]["subscriptions"],
        json!([{"event_type": "record.updated", "filter": null},
               {"event_type": "note.created", "filter": null}])
    );
    let out = attio_cli(&attio).run(&[
        "webhooks",
        "rotate",
        "--target-url",
        RELAY_URL,
        "--replaces",
        "wh-gone",
        "--print-secret",
    ]);
    assert!(
        !out.ok && out.text().contains("no webhook wh-gone"),
        "{}",
        out.text()
    );
}

fn person(n: u64) -> Value {
    let mut record = fixtures::attio("person.json")["data"].clone();
    record["id"]["record_id"] = json!(format!("rec-{n:03}"));
    record["values"]["email_addresses"][0]["email_address"] = json!(format!("p{n}@example.com"));
    record
}

fn upsert(req: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&req.body).expect("json");
    let results: Vec<Value> = body["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|i| json!({"id": format!("hs-{}", i["id"].as_str().expect("id")), "properties": {"attio_record_id": i["id"]}}))
        .collect();
    ResponseTemplate::new(200).set_body_json(json!({ "results": results }))
}

fn reconcile(attio: &MockServer, hubspot: &MockServer, data: &str, extra: &[&str]) -> Output {
    let hubspot_url = hubspot.uri();
    let base = [
        "reconcile",
        "--data-dir",
        data,
        "--hubspot-api-url",
        &hubspot_url,
    ];
    attio_cli(attio)
        .env("HUBSPOT_TOKEN", "hubspot-token")
        .without("MAPPINGS_TABLE")
        .run(&[&base[..], extra].concat())
}

#[tokio::test(flavor = "multi_thread")]
async fn reconcile_flags_a_degraded_webhook_and_still_resyncs_every_record() {
    let attio = MockServer::start().await;
    mount_webhooks(
        &attio,
        vec![
            webhook("wh-relay", RELAY_URL, "degraded"),
            // Another integration's webhook: not the relay's, so its state is not ours to flag.
            webhook("wh-other", "https://other.example/hook", "inactive"),
        ],
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/v2/objects/people/records/query"))
        .respond_with(|req: &Request| {
            let body: Value = serde_json::from_slice(&req.body).expect("json");
            let offset = body["offset"].as_u64().unwrap_or(0);
            let records: Vec<Value> = (offset..3).map(person).collect();
            ResponseTemplate::new(200).set_body_json(json!({ "data": records }))
        })
        .mount(&attio)
        .await;
    let hubspot = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/batch/upsert"))
        .respond_with(upsert)
        .mount(&hubspot)
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf8");

    let out = reconcile(
        &attio,
        &hubspot,
        data,
        &[
            "--target-url",
            RELAY_URL,
            "--object",
            "people",
            "--share",
            "0.2",
        ],
    );
    let text = out.text();
    assert!(!out.ok, "a degraded webhook fails the run: {text}");
    assert!(text.contains("webhook wh-relay is DEGRADED"), "{text}");
    assert!(
        !text.contains("wh-other is"),
        "only the relay's webhooks: {text}"
    );
    assert!(
        text.contains("20 Attio reads/s and 20 HubSpot requests per 10 s"),
        "{text}"
    );
    assert!(
        text.contains("people: 3 record(s) synced, 0 failed"),
        "{text}"
    );
    let upserted: Vec<String> = hubspot
        .received_requests()
        .await
        .expect("recording")
        .iter()
        .flat_map(|r| {
            let body: Value = serde_json::from_slice(&r.body).expect("json");
            body["inputs"]
                .as_array()
                .expect("inputs")
                .iter()
                .map(|i| i["id"].as_str().expect("id").to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(upserted, vec!["rec-000", "rec-001", "rec-002"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn reconcile_check_only_passes_when_active_and_names_a_deleted_webhook() {
    let attio = MockServer::start().await;
    mount_webhooks(&attio, vec![webhook("wh-relay", RELAY_URL, "active")]).await;
    let hubspot = MockServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf8");

    let out = reconcile(
        &attio,
        &hubspot,
        data,
        &["--webhook-id", "wh-relay", "--check-only"],
    );
    assert!(out.ok, "{}", out.text());
    assert!(out.text().contains("every relay webhook is active"));

    let out = reconcile(
        &attio,
        &hubspot,
        data,
        &[
            "--webhook-id",
            "wh-relay",
            "--webhook-id",
            "wh-deleted",
            "--check-only",
        ],
    );
    let text = out.text();
    assert!(!out.ok, "{text}");
    assert!(
        text.contains("webhook wh-deleted does not exist in this Attio workspace"),
        "{text}"
    );
    assert!(
        hubspot
            .received_requests()
            .await
            .expect("recording")
            .is_empty(),
        "--check-only re-syncs nothing"
    );
}
