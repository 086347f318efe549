//! A consumer behind moto's SQS, driven the way Lambda's event source mapping drives it:
//! a poison message is the only one reported failed, and after maxReceiveCount receives SQS's
//! redrive policy moves it to the DLQ while its batch-mates are synced once.

use std::sync::Arc;
use std::time::Duration;

use integration_tests::event_source::{self, EventSource};
use integration_tests::fixtures::{
    self,
    ids::{ADA, PEOPLE, WORKSPACE as WS},
};
use integration_tests::moto;
use relay_attio::{AttioClient, AttioConfig};
use relay_consumer::{SqsDeadLetters, handle_sqs_event};
use relay_crm::{HubSpotConfig, HubSpotSink};
use relay_embedded::LocalDb;
use relay_events::{EventFamily, QueuedEvent};
use relay_mappings::SqliteMappings;
use relay_queue::{EventQueue, OutgoingMessage, SqsQueue};
use relay_sync::{FieldMapping, RecordsHandler, SyncContext};
use serde_json::json;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BROKEN: &str = "00000000-0000-4000-8000-00000000dead";

fn message(record_id: &str, attribute: &str) -> OutgoingMessage {
    let raw = json!({"event_type": "record.updated",
                     "id": {"workspace_id": WS, "object_id": PEOPLE, "record_id": record_id, "attribute_id": attribute},
                     "actor": {"type": "system", "id": null}});
    let raw = serde_json::to_vec(&raw).expect("json");
    let key = format!("{record_id}-{attribute}");
    let queued = QueuedEvent::first_of(&raw, &key, 1_763_000_000).expect("event");
    let mut message = OutgoingMessage::new(&queued, WS);
    message.entry_id = format!("{record_id}-{attribute}");
    message
}

#[tokio::test]
async fn a_poison_message_alone_fails_and_reaches_the_dlq_after_max_receive_count() {
    let config = moto::sdk_config().await;
    let queues = moto::fresh_queues(&config, 2).await;
    let url = queues
        .urls
        .get(EventFamily::Records)
        .expect("records queue")
        .to_owned();
    let dlq = queues.dlqs[&EventFamily::Records].clone();
    let sqs = aws_sdk_sqs::Client::new(&config);

    let attio = MockServer::start().await;
    let hubspot = MockServer::start().await;
    fixtures::mount_people(&attio).await;
    // The poison record breaks every query that asks for it (a 5xx), and its own GET: the
    // consumer reads the records of a failed query one by one, so only it fails.
    let boom = || {
        ResponseTemplate::new(500).set_body_json(json!({
            "status_code": 500, "type": "api_error", "code": "internal", "message": "boom"}))
    };
    Mock::given(method("POST"))
        .and(path("/v2/objects/people/records/query"))
        .and(body_string_contains(BROKEN))
        .respond_with(boom())
        .mount(&attio)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/objects/people/records/{BROKEN}")))
        .respond_with(boom())
        .mount(&attio)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/objects/people/records/{ADA}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixtures::attio("person.json")))
        .expect(1)
        .mount(&attio)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/batch/upsert"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "results": [{"id": "901", "properties": {"attio_record_id": ADA}}]})))
        .expect(1)
        .mount(&hubspot)
        .await;

    let mut attio_config = AttioConfig::new("attio-test-token");
    attio_config.base_url = format!("{}/v2", attio.uri());
    attio_config.max_attempts = 2;
    attio_config.backoff_base = Duration::from_millis(5);
    attio_config.backoff_cap = Duration::from_millis(10);
    let mut hubspot_config = HubSpotConfig::new("hubspot-test-token");
    hubspot_config.base_url = hubspot.uri();
    let ctx = Arc::new(SyncContext::new(
        AttioClient::new(attio_config).expect("attio"),
        HubSpotSink::new(hubspot_config).expect("hubspot"),
        SqliteMappings::new(LocalDb::in_memory().expect("sqlite")),
        FieldMapping::default(),
    ));
    let handler = RecordsHandler::new(ctx);
    let dead_letters = SqsDeadLetters::new(sqs.clone(), &dlq);

    SqsQueue::new(sqs.clone(), queues.urls.clone())
        .send(&[
            message(ADA, "a1"),
            message(BROKEN, "b1"),
            message(ADA, "a2"),
        ])
        .await
        .expect("queue three events");

    // The event source mapping: receive a batch, invoke, delete what succeeded, and let the
    // failed ones become visible again.
    let mut failures_per_round = Vec::new();
    let source = EventSource::new(sqs.clone(), &url);
    for _ in 0..6 {
        let received = source.receive(10).await;
        if received.is_empty() {
            break;
        }
        let event = event_source::sqs_event(&received, true);
        let response = handle_sqs_event(event, &handler, &dead_letters).await;
        let failed: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        source.settle(&received, Some(&failed)).await;
        failures_per_round.push(failed.len());
    }

    assert_eq!(
        failures_per_round,
        vec![1, 1],
        "only the poison message fails, twice"
    );
    let dead = moto::drain(&config, &dlq).await;
    assert_eq!(dead.len(), 1, "redrive moved it after maxReceiveCount");
    assert!(dead[0].body.contains(BROKEN));
    assert_eq!(source.depth().await, 0, "nothing left on the source queue");
}
