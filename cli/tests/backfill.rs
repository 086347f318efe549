//! `attio-relay backfill` against wiremock Attio and HubSpot: 1,120 people in pages of 500,
//! interrupted after the first page and resumed, reach HubSpot once each.

use std::collections::HashSet;
use std::process::Command;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const BIN: &str = env!("CARGO_BIN_EXE_attio-relay");
const TOTAL: u64 = 1120;

fn person(n: u64) -> Value {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/attio/person.json"),
    )
    .expect("fixture");
    let mut record: Value = serde_json::from_str::<Value>(&text).expect("json")["data"].clone();
    record["id"]["record_id"] = json!(format!("rec-{n:05}"));
    record["values"]["email_addresses"][0]["email_address"] = json!(format!("p{n}@example.com"));
    record
}

fn query_page(req: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&req.body).expect("json");
    let (offset, limit) = (
        body["offset"].as_u64().unwrap_or(0),
        body["limit"].as_u64().expect("limit"),
    );
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

fn backfill(
    attio: &MockServer,
    hubspot: &MockServer,
    data: &str,
    extra: &[&str],
) -> (bool, String) {
    let out = Command::new(BIN)
        .args([
            "backfill",
            "--object",
            "people",
            "--data-dir",
            data,
            "--rate",
            "1000",
        ])
        .args([
            "--attio-api-url",
            &format!("{}/v2", attio.uri()),
            "--hubspot-api-url",
            &hubspot.uri(),
        ])
        .args(extra)
        .env("ATTIO_API_TOKEN", "attio-token")
        .env("HUBSPOT_TOKEN", "hubspot-token")
        .env_remove("MAPPINGS_TABLE")
        .output()
        .expect("run");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_backfill_resumes_and_syncs_every_record_once() {
    let attio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/objects/people/records/query"))
        .respond_with(query_page)
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

    let (ok, out) = backfill(&attio, &hubspot, data, &["--abort-after-pages", "1"]);
    assert!(!ok, "the first run was meant to die: {out}");
    let state: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("backfill-people.json")).expect("state"),
    )
    .expect("json");
    assert_eq!(
        (state["offset"].as_u64(), state["records_synced"].as_u64()),
        (Some(500), Some(500)),
        "{state}"
    );

    let (ok, out) = backfill(&attio, &hubspot, data, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("resuming people at record 500"), "{out}");
    assert!(out.contains("1120 record(s) synced, 0 failed"), "{out}");

    // Attio was asked for offsets 0, 500 and 1000, 500 at a time, in creation order.
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
    assert_eq!(queries, vec![(0, 500), (500, 500), (1000, 500)]);

    // HubSpot saw every record exactly once, in batches of at most 100.
    let mut seen = HashSet::new();
    let mut inputs = 0;
    for request in hubspot.received_requests().await.expect("recording") {
        let body: Value = serde_json::from_slice(&request.body).expect("json");
        let batch = body["inputs"].as_array().expect("inputs");
        assert!(batch.len() <= 100);
        for input in batch {
            inputs += 1;
            seen.insert(input["id"].as_str().expect("id").to_owned());
            assert_eq!(
                input["properties"]["email"]
                    .as_str()
                    .map(|e| e.ends_with("@example.com")),
                Some(true)
            );
        }
    }
    assert_eq!((inputs, seen.len()), (1120, 1120));

    let state: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("backfill-people.json")).expect("state"),
    )
    .expect("json");
    assert_eq!(state["offset"], 0, "a finished walk starts over next time");
    assert!(state["last_full_sync"].as_u64().is_some());
}
