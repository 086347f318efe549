//! `attio-relay status` against moto: depths, in-flight counts, oldest age, recent deliveries.

use integration_tests::moto;

use crate::relay_on_moto;

#[tokio::test(flavor = "multi_thread")]
async fn status_reads_every_queue_and_the_idempotency_table() {
    let config = moto::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let prefix = moto::unique("status");
    let mut urls = Vec::new();
    for family in ["records", "list-entries", "notes", "tasks", "other"] {
        for name in [
            format!("{prefix}-{family}"),
            format!("{prefix}-{family}-dlq"),
        ] {
            let url = moto::create_queue(&sqs, &name).await;
            urls.push((name, url));
        }
    }
    let notes_dlq = urls
        .iter()
        .find(|(n, _)| n.ends_with("-notes-dlq"))
        .expect("dlq")
        .1
        .clone();
    for _ in 0..3 {
        sqs.send_message()
            .queue_url(&notes_dlq)
            .message_body("{}")
            .send()
            .await
            .expect("send");
    }
    let table = format!("{prefix}-idempotency");
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    moto::create_table_named(&config, &table, "idempotency_key").await;
    for (key, at) in [("h:older", 100), ("h:newer", 200)] {
        dynamodb
            .put_item()
            .table_name(&table)
            .item(
                "idempotency_key",
                aws_sdk_dynamodb::types::AttributeValue::S(key.into()),
            )
            .item(
                "status",
                aws_sdk_dynamodb::types::AttributeValue::S("COMPLETED".into()),
            )
            .item(
                "created_at",
                aws_sdk_dynamodb::types::AttributeValue::N(at.to_string()),
            )
            .send()
            .await
            .expect("put");
    }

    let out = relay_on_moto().run(&["status", "--prefix", &prefix, "--json"]);
    assert!(out.ok, "{}", out.text());
    let text = out.stdout;
    let status: serde_json::Value = serde_json::from_str(text.trim()).expect("json");
    let queues = status["queues"].as_array().expect("queues");
    assert_eq!(queues.len(), 10);
    let dlq = queues
        .iter()
        .find(|q| q["queue"] == format!("{prefix}-notes-dlq"))
        .expect("notes dlq");
    assert_eq!(dlq["visible"], 3, "{status}");
    assert!(dlq["oldest_age_secs"].as_u64().is_some(), "{status}");
    assert_eq!(status["recent_deliveries"][0]["idempotency_key"], "h:newer");
    assert_eq!(status["recent_deliveries"][1]["idempotency_key"], "h:older");
}
