//! `attio-relay backfill` against wiremock Attio and HubSpot: 1,120 people in pages of 500,
//! interrupted after the first page and resumed, reach HubSpot once each.
//!
//! The interruption is injected from here, not through a flag in the shipped CLI: the Attio
//! stand-in refuses the second page once (a 400, which the client does not retry), so the first
//! run stops with its position saved after page one.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use integration_tests::cli::Output;
use integration_tests::fixtures;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::relay;

const TOTAL: u64 = 1120;

fn person(n: u64) -> Value {
    let mut record = fixtures::attio("person.json")["data"].clone();
    record["id"]["record_id"] = json!(format!("rec-{n:05}"));
    record["values"]["email_addresses"][0]["email_address"] = json!(format!("p{n}@example.com"));
    record
}

/// The Attio stand-in's record query, paged by `offset`/`limit`. While `fail_second_page` is
/// set, the query at offset 500 is answered 400 (once: the flag is cleared when it fires).
fn query_page(req: &Request, fail_second_page: &AtomicBool) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&req.body).expect("json");
    let (offset, limit) = (
        body["offset"].as_u64().unwrap_or(0),
        body["limit"].as_u64().expect("limit"),
    );
    if offset == 500 && fail_second_page.swap(false, Ordering::SeqCst) {
        return ResponseTemplate::new(400).set_body_json(json!({
            "status_code": 400,
            "type": "invalid_request_error",
            "code": "validation_type",
            "message": "injected by the test: the second page fails once",
        }));
    }
    let records: Vec<Value> = (offset..(offset + limit).min(TOTAL)).map(person).collect();
    ResponseTemplate::new(200).set_body_json(json!({ "data": records }))
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

fn backfill(attio: &MockServer, hubspot: &MockServer, data: &str) -> Output {
    relay()
        .env("ATTIO_API_TOKEN", "attio-token")
        .env("HUBSPOT_TOKEN", "hubspot-token")
        .without("MAPPINGS_TABLE")
        .run(&[
            "backfill",
            "--object",
            "people",
            "--data-dir",
            data,
            "--rate",
            "1000",
            "--attio-api-url",
            &format!("{}/v2", attio.uri()),
            "--hubspot-api-url",
            &hubspot.uri(),
        ])
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_backfill_resumes_and_syncs_every_record_once() {
    let attio = MockServer::start().await;
    let fail_second_page = Arc::new(AtomicBool::new(true));
    let fail = Arc::clone(&fail_second_page);
    Mock::given(method("POST"))
        .and(path("/v2/objects/people/records/query"))
        .respond_with(move |req: &Request| query_page(req, &fail))
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

    let run = backfill(&attio, &hubspot, data);
    let out = run.text();
    assert!(
        !run.ok,
        "the first run was meant to fail on page two: {out}"
    );
    assert!(
        !fail_second_page.load(Ordering::SeqCst),
        "the fault fired: {out}"
    );
    assert!(
        out.contains("400"),
        "the failure names Attio's answer: {out}"
    );
    assert_eq!(
        upserted(&hubspot).await.len(),
        500,
        "only page one reached HubSpot"
    );
    let state = saved_state(dir.path());
    assert_eq!(
        (state["offset"].as_u64(), state["records_synced"].as_u64()),
        (Some(500), Some(500)),
        "{state}"
    );

    let run = backfill(&attio, &hubspot, data);
    let out = run.text();
    assert!(run.ok, "{out}");
    assert!(out.contains("resuming people at record 500"), "{out}");
    assert!(out.contains("1120 record(s) synced, 0 failed"), "{out}");

    // Attio was asked for offsets 0 and 500 (refused), then 500 again and 1000 by the resumed
    // run, 500 at a time, in creation order: the resume starts at the saved position.
    let queries: Vec<(u64, u64)> = attio
        .received_requests()
        .await
        .expect("recording")
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).expect("json");
            assert_eq!(
                body["sorts"],
                json!([{"direction": "asc", "attribute": "created_at"}])
            );
            (
                body["offset"].as_u64().unwrap_or(0),
                body["limit"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(queries, vec![(0, 500), (500, 500), (500, 500), (1000, 500)]);

    // HubSpot saw every record exactly once (no page synced twice), in batches of at most 100.
    let inputs = upserted(&hubspot).await;
    let seen: HashSet<&str> = inputs.iter().map(String::as_str).collect();
    assert_eq!((inputs.len(), seen.len()), (1120, 1120));
    assert!(seen.contains("rec-00000") && seen.contains("rec-01119"));

    let state = saved_state(dir.path());
    assert_eq!(state["offset"], 0, "a finished walk starts over next time");
    assert!(state["last_full_sync"].as_u64().is_some());
}

/// The position the backfill saved in its data folder.
fn saved_state(data_dir: &std::path::Path) -> Value {
    let bytes = std::fs::read(data_dir.join("backfill-people.json")).expect("state");
    serde_json::from_slice(&bytes).expect("json")
}

/// The Attio record id of every upsert input HubSpot received, in order; checks each batch's
/// size and each input's mapped email on the way.
async fn upserted(hubspot: &MockServer) -> Vec<String> {
    let mut ids = Vec::new();
    for request in hubspot.received_requests().await.expect("recording") {
        let body: Value = serde_json::from_slice(&request.body).expect("json");
        let batch = body["inputs"].as_array().expect("inputs");
        assert!(batch.len() <= 100);
        for input in batch {
            ids.push(input["id"].as_str().expect("id").to_owned());
            assert_eq!(
                input["properties"]["email"]
                    .as_str()
                    .map(|e| e.ends_with("@example.com")),
                Some(true)
            );
        }
    }
    ids
}
