//! A consumer behind moto's SQS, driven the way Lambda's event source mapping drives it:
//! a poison message is the only one reported failed, and after maxReceiveCount receives SQS's
//! redrive policy moves it to the DLQ while its batch-mates are synced once.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use integration_tests::moto;
use relay_attio::{AttioClient, AttioConfig};
use relay_consumer::{SqsDeadLetters, handle_sqs_event};
use relay_crm::{HubSpotConfig, HubSpotSink};
use relay_embedded::LocalDb;
use relay_events::{Delivery, EventFamily, IdempotencyKey, QueuedEvent};
use relay_mappings::SqliteMappings;
use relay_queue::{EventQueue, OutgoingMessage, SqsQueue};
use relay_sync::{FieldMapping, RecordsHandler, SyncContext};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const WS: &str = "a9f6fd20-80d5-4bd1-b8fe-60a7c5a9178a";
const PEOPLE: &str = "f436cad2-7090-4b86-8ae2-27260febbefe";
const ADA: &str = "443d9969-4842-451e-96bc-ffb9ad6744df";
const BROKEN: &str = "00000000-0000-4000-8000-00000000dead";

fn fixture(name: &str) -> serde_json::Value {
    integration_tests::fixtures::attio(name)
}

fn message(record_id: &str, attribute: &str) -> OutgoingMessage {
    let raw = json!({"event_type": "record.updated",
                     "id": {"workspace_id": WS, "object_id": PEOPLE, "record_id": record_id, "attribute_id": attribute},
                     "actor": {"type": "system", "id": null}});
    let delivery = Delivery::parse(&serde_json::to_vec(&raw).expect("json")).expect("event");
    let key =
        IdempotencyKey::for_delivery(Some(&format!("{record_id}-{attribute}")), &delivery, None);
    let queued = QueuedEvent::new(&key, None, 0, 1_763_000_000, &delivery.events[0]);
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
    Mock::given(method("GET"))
        .and(path(format!("/v2/objects/{PEOPLE}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("people-object.json")))
        .mount(&attio)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/objects/people/records/{ADA}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("person.json")))
        .expect(1)
        .mount(&attio)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/objects/people/records/{BROKEN}")))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "status_code": 500, "type": "api_error", "code": "internal", "message": "boom"})))
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
    for _ in 0..6 {
        let received = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default();
        if received.is_empty() {
            break;
        }
        let mut event = SqsEvent::default();
        event.records = received
            .iter()
            .map(|m| {
                let mut sqs_message = SqsMessage::default();
                sqs_message.message_id = m.message_id.clone();
                sqs_message.receipt_handle = m.receipt_handle.clone();
                sqs_message.body = m.body.clone();
                sqs_message
            })
            .collect();
        let response = handle_sqs_event(event, &handler, &dead_letters).await;
        let failed: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        for m in &received {
            let id = m.message_id.clone().unwrap_or_default();
            let receipt = m.receipt_handle.clone().unwrap_or_default();
            if failed.contains(&id) {
                sqs.change_message_visibility()
                    .queue_url(&url)
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .expect("release");
            } else {
                sqs.delete_message()
                    .queue_url(&url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .expect("delete");
            }
        }
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
    let depth = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .expect("attributes");
    assert_eq!(
        depth
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
            .map(String::as_str),
        Some("0")
    );
}
