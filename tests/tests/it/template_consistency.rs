//! The SAM template must give the ingest function every variable the code reads, and the
//! table the key and TTL attributes the DynamoDB adapter writes. (cfn-lint checks the
//! template's syntax and types in scripts/test; this checks it against the code.)

use relay_events::EventFamily;
use relay_queue::QueueUrls;

fn template() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_ingest_function_gets_every_variable_the_code_requires() {
    let text = template();
    let mut required = vec![
        "ATTIO_WEBHOOK_SECRET_ARN",
        "IDEMPOTENCY_TABLE",
        "IDEMPOTENCY_LEASE_SECS",
        "IDEMPOTENCY_TTL_SECS",
        "SIGNATURE_POLICY",
    ];
    required.extend(EventFamily::ALL.map(QueueUrls::env_var));
    for name in required {
        assert!(
            text.contains(&format!("{name}:")),
            "infra/template.yaml does not set {name}"
        );
    }
}

#[test]
fn the_table_matches_the_dynamodb_adapter() {
    let text = template();
    assert!(text.contains(relay_idempotency::KEY_ATTRIBUTE));
    assert!(text.contains(&format!(
        "AttributeName: {}",
        relay_idempotency::TTL_ATTRIBUTE
    )));
    assert!(
        text.contains("Binary: ingest"),
        "the SAM build must name the ingest binary"
    );
}

#[test]
fn every_consumer_function_is_wired_to_its_queue_with_partial_batch_responses() {
    let text = template();
    for (binary, queue) in [
        ("records", "RecordsQueue"),
        ("list-entries", "ListEntriesQueue"),
        ("notes", "NotesQueue"),
        ("tasks", "TasksQueue"),
    ] {
        assert!(
            text.contains(&format!("Binary: {binary}")),
            "no function builds {binary}"
        );
        assert!(
            text.contains(&format!("Queue: !GetAtt {queue}.Arn")),
            "{queue} feeds no function"
        );
    }
    assert_eq!(
        text.matches("FunctionResponseTypes: [ReportBatchItemFailures]")
            .count(),
        4
    );
    for name in [
        "ATTIO_API_TOKEN_SECRET_ARN",
        "HUBSPOT_TOKEN_SECRET_ARN",
        "MAPPINGS_TABLE",
        "DEAD_LETTER_QUEUE_URL",
    ] {
        assert_eq!(
            text.matches(&format!("{name}:")).count(),
            4,
            "{name} on every consumer"
        );
    }
    // Visibility timeout at least 6x the consumer timeout (60 s).
    assert_eq!(text.matches("VisibilityTimeout: 360").count(), 5);
    assert_eq!(text.matches("Timeout: 60\n").count(), 4);
    assert!(text.contains(&format!("AttributeName: {}", relay_mappings::KEY_ATTRIBUTE)));
}
