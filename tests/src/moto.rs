//! AWS SDK clients against `moto_server`, and per-test resources.

use std::collections::HashMap;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use relay_events::EventFamily;
use relay_queue::QueueUrls;

/// The moto endpoint `scripts/test` exported. Tests fail (not skip) without it: a suite that
/// silently skips its AWS tests proves nothing.
pub fn endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "MOTO_ENDPOINT is not set: run the tests with ./scripts/test, which installs and \
             starts moto_server, or start `moto_server -p 5000` and export \
             MOTO_ENDPOINT=http://127.0.0.1:5000"
        )
    })
}

/// SDK configuration for moto: fixed test credentials, a region, the endpoint override.
pub async fn sdk_config() -> SdkConfig {
    sdk_config_for(&endpoint()).await
}

pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .load()
        .await
}

/// A short unique suffix for resource names.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A new idempotency table shaped like the SAM template's.
pub async fn fresh_table(config: &SdkConfig) -> String {
    fresh_table_keyed(config, "idempotency", "idempotency_key").await
}

/// A new on-demand table with a string partition key.
pub async fn fresh_table_keyed(config: &SdkConfig, prefix: &str, key: &str) -> String {
    let name = unique(prefix);
    create_table_named(config, &name, key).await;
    name
}

/// Creates an on-demand table named `name` with a string partition key.
pub async fn create_table_named(config: &SdkConfig, name: &str, key: &str) {
    aws_sdk_dynamodb::Client::new(config)
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(key)
                .key_type(KeyType::Hash)
                .build()
                .expect("key schema"),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(key)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute definition"),
        )
        .send()
        .await
        .expect("create table on moto");
}

/// Every item in a table, as (key, status).
pub async fn table_items(config: &SdkConfig, table: &str) -> Vec<(String, String)> {
    let out = aws_sdk_dynamodb::Client::new(config)
        .scan()
        .table_name(table)
        .consistent_read(true)
        .send()
        .await
        .expect("scan");
    out.items()
        .iter()
        .map(|item| {
            let s = |name: &str| {
                item.get(name)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            (s("idempotency_key"), s("status"))
        })
        .collect()
}

/// Creates a plain queue named `name` (no redrive policy); returns its URL.
pub async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("create queue on moto")
        .queue_url
        .expect("queue url")
}

/// Five queues, each with a DLQ and a redrive policy, as in the SAM template.
#[derive(Debug, Clone)]
pub struct TestQueues {
    pub urls: QueueUrls,
    pub dlqs: HashMap<EventFamily, String>,
}

pub async fn fresh_queues(config: &SdkConfig, max_receive_count: u32) -> TestQueues {
    fresh_queues_of(config, &EventFamily::ALL, max_receive_count).await
}

/// [`fresh_queues`] for the given families (`EventFamily::EVERY` adds the HubSpot ingest's
/// `hubspot` queue, which the two-way tests drive).
pub async fn fresh_queues_of(
    config: &SdkConfig,
    families: &[EventFamily],
    max_receive_count: u32,
) -> TestQueues {
    let sqs = aws_sdk_sqs::Client::new(config);
    let run = unique("q");
    let mut urls = QueueUrls::new();
    let mut dlqs = HashMap::new();
    for &family in families {
        let dlq_url = sqs
            .create_queue()
            .queue_name(format!("{run}-{family}-dlq"))
            .send()
            .await
            .expect("create DLQ")
            .queue_url
            .expect("DLQ url");
        let dlq_arn = sqs
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("DLQ attributes")
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .expect("DLQ arn");
        let url = sqs
            .create_queue()
            .queue_name(format!("{run}-{family}"))
            .attributes(
                QueueAttributeName::RedrivePolicy,
                format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{max_receive_count}"}}"#),
            )
            .attributes(QueueAttributeName::VisibilityTimeout, "30")
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url");
        urls = urls.with(family, url);
        dlqs.insert(family, dlq_url);
    }
    TestQueues { urls, dlqs }
}

/// A received SQS message: body and string attributes.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: String,
    pub attributes: HashMap<String, String>,
}

/// Receives (and deletes) everything currently on a queue.
pub async fn drain(config: &SdkConfig, url: &str) -> Vec<Received> {
    let sqs = aws_sdk_sqs::Client::new(config);
    let mut all = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .visibility_timeout(30)
            .send()
            .await
            .expect("receive");
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return all;
        }
        for message in messages {
            if let Some(receipt) = message.receipt_handle() {
                sqs.delete_message()
                    .queue_url(url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .expect("delete");
            }
            let attributes = message
                .message_attributes()
                .map(|attrs| {
                    attrs
                        .iter()
                        .filter_map(|(k, v)| v.string_value().map(|s| (k.clone(), s.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            all.push(Received {
                body: message.body().unwrap_or_default().to_owned(),
                attributes,
            });
        }
    }
}

/// Drains every family queue; returns messages per family (empty families included).
pub async fn drain_all(
    config: &SdkConfig,
    urls: &QueueUrls,
) -> HashMap<EventFamily, Vec<Received>> {
    let mut out = HashMap::new();
    for (family, url) in urls.iter() {
        out.insert(family, drain(config, url).await);
    }
    out
}
