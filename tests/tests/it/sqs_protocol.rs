//! The SQS adapter against a wiremock server speaking SQS's JSON protocol: partial batch
//! failures are retried for exactly the failed entries; a sender fault is not retried and
//! releases the key so nothing is marked done.

use http::StatusCode;
use integration_tests::faults::ManualClock;
use integration_tests::fixtures::{self, SECRET, body_only_headers, post, with_key};
use integration_tests::moto;
use relay_embedded::LocalDb;
use relay_events::EventFamily;
use relay_idempotency::SqliteIdempotencyStore;
use relay_ingest::IngestResponse;
use relay_queue::{QueueUrls, SqsQueue};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TARGET: &str = "AmazonSQS.SendMessageBatch";

/// Three record events in one delivery: one SQS batch of three entries.
fn three_updates() -> Vec<u8> {
    let event = |attr: &str| {
        json!({
            "event_type": "record.updated",
            "id": {
                "workspace_id": "a9f6fd20-80d5-4bd1-b8fe-60a7c5a9178a",
                "object_id": "0b6f1f53-0f0e-4a47-9a0c-cf1d6b0d6f4e",
                "record_id": "7c2a1d2e-3f4b-4c5d-8e9f-0a1b2c3d4e5f",
                "attribute_id": attr
            },
            "actor": {"type": "workspace-member", "id": "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"}
        })
    };
    serde_json::to_vec(&json!({
        "webhook_id": "b3b7a27e-1cf8-4f4b-8e5c-330b7f349ea8",
        "events": [event("attr-a"), event("attr-b"), event("attr-c")]
    }))
    .expect("json")
}

fn batch_response(ok: &[&str], failed: &[(&str, bool)]) -> ResponseTemplate {
    let successful: Vec<Value> = ok
        .iter()
        .map(|id| json!({"Id": id, "MessageId": format!("msg-{id}"), "MD5OfMessageBody": "0"}))
        .collect();
    let failed: Vec<Value> = failed
        .iter()
        .map(|(id, sender)| {
            json!({"Id": id, "SenderFault": sender, "Code": "InternalError", "Message": "injected"})
        })
        .collect();
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/x-amz-json-1.0")
        .set_body_json(json!({"Successful": successful, "Failed": failed}))
}

/// The entry ids of each SendMessageBatch request the server saw.
async fn entry_ids(server: &MockServer) -> Vec<Vec<String>> {
    server
        .received_requests()
        .await
        .expect("recording on")
        .iter()
        .map(|request| {
            let body: Value = serde_json::from_slice(&request.body).expect("JSON request");
            body["Entries"]
                .as_array()
                .expect("Entries")
                .iter()
                .map(|e| e["Id"].as_str().expect("Id").to_owned())
                .collect()
        })
        .collect()
}

/// A SendMessageBatch call to the SQS stand-in, to be answered by the test.
fn send_batch() -> wiremock::MockBuilder {
    Mock::given(method("POST")).and(header("x-amz-target", TARGET))
}

/// Sends [`three_updates`] (with Attio's `Idempotency-Key` when `key` is given) through an
/// ingest service whose queue is the SQS stand-in; returns its answer and its idempotency
/// store.
async fn deliver(
    server: &MockServer,
    key: Option<&str>,
) -> (IngestResponse, SqliteIdempotencyStore) {
    let config = moto::sdk_config_for(&server.uri()).await;
    let url = format!("{}/123456789012/records", server.uri());
    let queue = SqsQueue::new(
        aws_sdk_sqs::Client::new(&config),
        QueueUrls::new().with(EventFamily::Records, url),
    );
    let store = SqliteIdempotencyStore::new(LocalDb::in_memory().expect("sqlite"));
    let service = fixtures::service(store.clone(), queue, ManualClock::now_real());
    let body = three_updates();
    let mut headers = body_only_headers(SECRET, &body);
    if let Some(key) = key {
        headers = with_key(headers, key);
    }
    (service.handle(post(&headers, &body)).await, store)
}

#[tokio::test]
async fn only_the_failed_entries_of_a_partial_batch_are_sent_again() {
    let server = MockServer::start().await;
    send_batch()
        .and(path("/"))
        .respond_with(batch_response(
            &["event-0", "event-2"],
            &[("event-1", false)],
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    send_batch()
        .respond_with(batch_response(&["event-1"], &[]))
        .with_priority(2)
        .mount(&server)
        .await;

    let (response, _) = deliver(&server, Some("k-partial")).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(
        entry_ids(&server).await,
        vec![vec!["event-0", "event-1", "event-2"], vec!["event-1"]]
    );

    // The exact request: queue URL, the event verbatim in the body, the attributes.
    let first: Value =
        serde_json::from_slice(&server.received_requests().await.expect("requests")[0].body)
            .expect("json");
    assert!(
        first["QueueUrl"]
            .as_str()
            .expect("url")
            .ends_with("/123456789012/records")
    );
    let entry = &first["Entries"][1];
    assert!(
        entry["MessageBody"]
            .as_str()
            .expect("body")
            .contains("\"attr-b\"")
    );
    assert_eq!(
        entry["MessageAttributes"]["event_type"]["StringValue"],
        "record.updated"
    );
    assert_eq!(
        entry["MessageAttributes"]["event_type"]["DataType"],
        "String"
    );
    assert_eq!(
        entry["MessageAttributes"]["idempotency_key"]["StringValue"],
        "h:k-partial"
    );
}

#[tokio::test]
async fn a_sender_fault_is_not_retried_and_the_delivery_is_not_marked_done() {
    let server = MockServer::start().await;
    send_batch()
        .respond_with(batch_response(
            &["event-0", "event-2"],
            &[("event-1", true)],
        ))
        .mount(&server)
        .await;
    let (response, store) = deliver(&server, Some("k-sender")).await;
    fixtures::assert_retry_later(&response);
    assert_eq!(
        entry_ids(&server).await.len(),
        1,
        "a sender fault is not retried"
    );
    assert!(
        store.recent(10).await.expect("rows").is_empty(),
        "key released"
    );
}

#[tokio::test]
async fn a_batch_that_keeps_failing_gives_up_after_three_attempts() {
    let server = MockServer::start().await;
    send_batch()
        .respond_with(batch_response(
            &["event-0"],
            &[("event-1", false), ("event-2", false)],
        ))
        .mount(&server)
        .await;
    let (response, store) = deliver(&server, None).await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        entry_ids(&server).await,
        vec![
            vec!["event-0", "event-1", "event-2"],
            vec!["event-1", "event-2"],
            vec!["event-1", "event-2"]
        ]
    );
    assert!(
        store.recent(10).await.expect("rows").is_empty(),
        "key released"
    );
}
