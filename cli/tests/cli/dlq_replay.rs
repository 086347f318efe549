//! `attio-relay dlq` against moto's SQS: a DLQ of 1,000 messages is replayed with none lost or
//! duplicated even when the command fails halfway and is run again — also with a filtered run
//! in between, an empty receive while messages remain, or a batch the source queue accepts
//! only in part; list, show (bounded) and purge.
//!
//! Failures are injected from outside the binary: a run talks to moto through a
//! [`FaultProxy`] that fails one SQS operation after a number of calls (`DeleteMessageBatch`
//! with a 500, `ReceiveMessage` answered empty, `SendMessageBatch` refusing an entry).

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
    let recorded = |verb: &str| {
        journalled
            .lines()
            .filter_map(|l| l.strip_prefix(verb))
            .collect::<HashSet<_>>()
    };
    assert_eq!(
        recorded("sent ").len(),
        500,
        "50 batches were sent and journalled"
    );
    assert_eq!(
        recorded("deleted ").len(),
        490,
        "49 batches were seen deleted"
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

/// The `n` of every message on `url`, drained: (how many messages, the distinct `n`s).
async fn drained_numbers(config: &aws_config::SdkConfig, url: &str) -> (usize, HashSet<u64>) {
    let messages = moto::drain(config, url).await;
    let numbers = messages
        .iter()
        .map(|m| {
            serde_json::from_str::<serde_json::Value>(&m.body).expect("body")["n"]
                .as_u64()
                .expect("n")
        })
        .collect();
    (messages.len(), numbers)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filtered_run_after_an_interrupted_one_does_not_make_the_next_run_resend() {
    let queues = DeadLetters::new("filtered", 30).await;
    let fast = ["--json", "--visibility-timeout", "2"];

    // The first run sends and journals its second batch, then dies deleting it.
    let proxy = FaultProxy::start(
        &moto::endpoint(),
        FaultRule::after(1, "AmazonSQS.DeleteMessageBatch", ProxyFault::InternalError),
    );
    let (ok, out) = queues.dlq_at(proxy.endpoint(), "replay", &fast);
    assert!(
        !ok && proxy.failed() >= 1,
        "the first run was meant to fail: {out}"
    );
    drop(proxy);

    // A filtered run finishes: the interrupted batch does not match (only n = 0 is a
    // record.deleted, and the first batch took it), so it stays in the DLQ, journalled.
    let (ok, out) = queues.dlq(
        "replay",
        &[&fast[..], &["--event-type", "record.deleted"]].concat(),
    );
    assert!(ok, "{out}");

    // The next full run must finish the interrupted batch without sending it again.
    let (ok, out) = queues.dlq("replay", &fast);
    assert!(ok, "{out}");
    let summary: serde_json::Value = serde_json::from_str(out.trim()).expect("json summary");
    let summary = &summary[format!("{}-records-dlq", queues.prefix)];
    assert_eq!(summary["resumed"], 10, "{summary}");

    let (count, numbers) = drained_numbers(&queues.config, &queues.source).await;
    assert_eq!(numbers, (0..30).collect::<HashSet<u64>>(), "none lost");
    assert_eq!(count, 30, "none sent twice");
    assert!(moto::drain(&queues.config, &queues.dlq).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_receive_does_not_end_a_replay_while_messages_remain() {
    let queues = DeadLetters::new("emptyrecv", 30).await;
    // One receive answers empty after the first batch, as a short poll may.
    let proxy = FaultProxy::start(
        &moto::endpoint(),
        FaultRule::after(1, "AmazonSQS.ReceiveMessage", ProxyFault::EmptyReceive).times(1),
    );
    let (ok, out) = queues.dlq_at(proxy.endpoint(), "replay", &["--json"]);
    assert!(ok, "{out}");
    assert_eq!(proxy.failed(), 1, "the empty answer was injected: {out}");
    drop(proxy);

    let (count, numbers) = drained_numbers(&queues.config, &queues.source).await;
    assert_eq!(
        (count, numbers.len()),
        (30, 30),
        "every message replayed: {out}"
    );
    assert!(moto::drain(&queues.config, &queues.dlq).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partly_refused_batch_journals_and_deletes_what_was_accepted() {
    let queues = DeadLetters::new("refused", 25).await;
    // The source queue refuses the last entry of every batch send (retries included).
    let proxy = FaultProxy::start(
        &moto::endpoint(),
        FaultRule::after(0, "AmazonSQS.SendMessageBatch", ProxyFault::RefuseLastEntry),
    );
    let (ok, out) = queues.dlq_at(
        proxy.endpoint(),
        "replay",
        &["--json", "--visibility-timeout", "2"],
    );
    drop(proxy);
    assert!(!ok, "refused messages make the run fail: {out}");
    assert!(out.contains("run the replay again"), "{out}");
    let summary: serde_json::Value =
        serde_json::from_str(out.lines().next().expect("json line")).expect("json summary");
    let summary = &summary[format!("{}-records-dlq", queues.prefix)];
    assert_eq!(
        (&summary["replayed"], &summary["refused"]),
        (&serde_json::json!(22), &serde_json::json!(3)),
        "batches of 10, 10 and 5, one refused each: {summary}"
    );

    // Only the refused ones are left; the next run sends just those.
    let (ok, out) = queues.dlq("replay", &["--json"]);
    assert!(ok, "{out}");
    let (count, numbers) = drained_numbers(&queues.config, &queues.source).await;
    assert_eq!(numbers, (0..25).collect::<HashSet<u64>>(), "none lost");
    assert_eq!(count, 25, "the accepted ones were not sent again");
    assert!(moto::drain(&queues.config, &queues.dlq).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn show_is_bounded_and_says_how_many_more_there_are() {
    let queues = DeadLetters::new("show", 120).await;
    let dlq = format!("{}-records-dlq", queues.prefix);

    let (ok, out) = queues.dlq("show", &["--json"]);
    assert!(ok, "{out}");
    let shown: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    let messages = shown[&dlq]["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 50, "the default limit");
    assert!(messages.iter().all(|m| m["body"].is_string()), "whole");
    assert_eq!(shown[&dlq]["more"], 70);

    let (ok, out) = queues.dlq("show", &["--limit", "5"]);
    assert!(ok, "{out}");
    assert_eq!(out.matches("\"body\"").count(), 5, "{out}");
    assert!(out.contains("115 more"), "{out}");

    // One id is searched for among at most --limit messages.
    let id = messages[49]["message_id"].as_str().expect("id");
    let (ok, out) = queues.dlq("show", &[id]);
    assert!(ok && out.contains(id), "{out}");
    let (ok, out) = queues.dlq("show", &["no-such-id", "--limit", "10"]);
    assert!(!ok && out.contains("raise --limit"), "{out}");
}
