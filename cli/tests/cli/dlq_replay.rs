//! `attio-relay dlq` against moto's SQS: a DLQ of 1,000 messages is replayed with none lost or
//! duplicated even when the command fails halfway and is run again; list, show and purge.
//!
//! The failure is injected from outside the binary: the first run talks to moto through a
//! [`FaultProxy`] that fails `DeleteMessageBatch` after a number of calls.

use std::collections::HashSet;
use std::path::Path;

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use integration_tests::fault_proxy::{FaultProxy, FaultRule, ProxyFault};
use integration_tests::moto;

use crate::relay_on;

fn text(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("attribute")
}

/// A records queue and its DLQ, named after a fresh prefix, with `count` dead letters on the
/// DLQ; and a data folder for the CLI's journal.
struct DeadLetters {
    config: aws_config::SdkConfig,
    prefix: String,
    source: String,
    dlq: String,
    data: tempfile::TempDir,
}

impl DeadLetters {
    async fn new(prefix: &str, count: usize) -> Self {
        let config = moto::sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let prefix = moto::unique(prefix);
        let source = moto::create_queue(&sqs, &format!("{prefix}-records")).await;
        let dlq = moto::create_queue(&sqs, &format!("{prefix}-records-dlq")).await;
        fill(&sqs, &dlq, count).await;
        let data = tempfile::tempdir().expect("tempdir");
        Self {
            config,
            prefix,
            source,
            dlq,
            data,
        }
    }

    fn data_dir(&self) -> &str {
        self.data.path().to_str().expect("utf8")
    }

    /// Runs `attio-relay dlq <command>` on these queues, then `extra`, through `endpoint`
    /// (moto, or a fault proxy before it): (exit 0, all it printed).
    fn dlq_at(&self, endpoint: &str, command: &str, extra: &[&str]) -> (bool, String) {
        let on_these = [
            "--family",
            "records",
            "--queue-prefix",
            &self.prefix,
            "--data-dir",
            self.data_dir(),
        ];
        let out = relay_on(endpoint).run(&[&["dlq", command][..], &on_these, extra].concat());
        (out.ok, out.text())
    }

    /// The same against moto.
    fn dlq(&self, command: &str, extra: &[&str]) -> (bool, String) {
        self.dlq_at(&moto::endpoint(), command, extra)
    }
}

async fn fill(sqs: &aws_sdk_sqs::Client, url: &str, count: usize) {
    for chunk in (0..count).collect::<Vec<_>>().chunks(10) {
        let entries = chunk
            .iter()
            .map(|n| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("e{n}"))
                    .message_body(format!("{{\"n\":{n}}}"))
                    .message_attributes(
                        "event_type",
                        text(if n % 100 == 0 {
                            "record.deleted"
                        } else {
                            "record.updated"
                        }),
                    )
                    .message_attributes("idempotency_key", text(&format!("h:{n}")))
                    .message_attributes("failure_reason", text("CRM: HTTP 400"))
                    .build()
                    .expect("entry")
            })
            .collect();
        sqs.send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("fill");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_dead_letters_replay_once_even_when_the_first_run_dies() {
    let queues = DeadLetters::new("replay", 1000).await;
    let (config, prefix, data) = (&queues.config, &queues.prefix, queues.data_dir());
    let replay = ["--json", "--visibility-timeout", "2"];

    // The first run fails after sending (and journalling) its 50th batch, before deleting it:
    // the proxy lets 49 DeleteMessageBatch calls through and fails every later one (so the
    // SDK's retries fail too).
    let proxy = FaultProxy::start(
        &moto::endpoint(),
        FaultRule::after(
            49,
            "AmazonSQS.DeleteMessageBatch",
            ProxyFault::InternalError,
        ),
    );
    let (ok, out) = queues.dlq_at(proxy.endpoint(), "replay", &replay);
    assert!(!ok, "the first run was meant to fail: {out}");
    assert!(out.contains("run the replay again"), "{out}");
    assert_eq!(proxy.matched(), 49 + proxy.failed(), "{out}");
    assert!(proxy.failed() >= 1, "the fault was injected: {out}");
    drop(proxy);
    let journal = Path::new(data).join(format!("replay-journal-{prefix}-records-dlq.log"));
    let journalled =
        std::fs::read_to_string(&journal).expect("the journal outlives the failed run");
    assert_eq!(
        journalled.lines().collect::<HashSet<_>>().len(),
        500,
        "50 batches were sent and journalled"
    );

    // The second run waits for the failed run's in-flight batch, deletes it without resending
    // (the journal says it was sent), and replays the rest.
    let (ok, out) = queues.dlq("replay", &replay);
    assert!(ok, "{out}");
    let summary: serde_json::Value = serde_json::from_str(out.trim()).expect("json summary");
    let summary = &summary[format!("{prefix}-records-dlq")];
    assert_eq!(summary["resumed"], 10, "{summary}");
    assert_eq!(summary["replayed"], 500, "{summary}");
    assert!(!journal.exists(), "a finished replay clears its journal");

    let replayed = moto::drain(config, &queues.source).await;
    let numbers: HashSet<u64> = replayed
        .iter()
        .map(|m| {
            serde_json::from_str::<serde_json::Value>(&m.body).expect("body")["n"]
                .as_u64()
                .expect("n")
        })
        .collect();
    assert_eq!(replayed.len(), 1000, "none duplicated");
    assert_eq!(numbers, (0..1000).collect::<HashSet<u64>>(), "none lost");
    assert!(
        replayed
            .iter()
            .all(|m| m.attributes.contains_key("replayed_from"))
    );
    assert!(
        replayed
            .iter()
            .all(|m| !m.attributes.contains_key("failure_reason"))
    );
    assert!(moto::drain(config, &queues.dlq).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn list_show_filtered_replay_and_purge() {
    let queues = DeadLetters::new("ops", 201).await;
    let (config, prefix) = (&queues.config, &queues.prefix);

    let (ok, out) = queues.dlq("list", &["--json", "--max", "500"]);
    assert!(ok, "{out}");
    let listed: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    let letters = listed[format!("{prefix}-records-dlq")]
        .as_array()
        .expect("list")
        .clone();
    assert_eq!(letters.len(), 201);
    assert!(
        letters
            .iter()
            .all(|l| l["failure_reason"] == "CRM: HTTP 400")
    );
    let id = letters[0]["message_id"].as_str().expect("id").to_owned();

    let (ok, out) = queues.dlq("show", &[&id]);
    assert!(ok && out.contains("\"body\"") && out.contains(&id), "{out}");

    // Only the three record.deleted events (n = 0, 100, 200) go back.
    let (ok, out) = queues.dlq("replay", &["--event-type", "record.deleted", "--json"]);
    assert!(ok, "{out}");
    assert_eq!(moto::drain(config, &queues.source).await.len(), 3);

    let (ok, out) = queues.dlq("purge", &[]);
    assert!(
        !ok && out.contains("--yes"),
        "purge asks for confirmation: {out}"
    );
    let (ok, out) = queues.dlq("purge", &["--yes"]);
    assert!(ok, "{out}");
    assert!(moto::drain(config, &queues.dlq).await.is_empty());
}
