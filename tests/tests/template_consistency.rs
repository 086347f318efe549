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
