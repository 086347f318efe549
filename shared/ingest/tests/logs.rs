//! What ingest writes to the logs: the idempotency key, event types and outcome — never the
//! webhook secret or a signature.

use std::io::Write;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderValue, Method};
use relay_embedded::LocalDb;
use relay_idempotency::SqliteIdempotencyStore;
use relay_ingest::{IngestConfig, IngestRequest, IngestService, StaticSecrets};
use relay_queue::SqliteQueue;
use relay_signature::{SchemePolicy, Verifier, WebhookSecret, sign_body};

const SECRET: &str = "whsec_log_test_secret_value";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_name_the_delivery_but_never_the_secret_or_signature() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let db = LocalDb::in_memory().expect("sqlite");
    let service = IngestService::new(
        SqliteIdempotencyStore::new(db.clone()),
        SqliteQueue::new(db, 3),
        StaticSecrets::new(Verifier::new(
            vec![WebhookSecret::new(SECRET).expect("secret")],
            SchemePolicy::AcceptEither,
        )),
        IngestConfig::default(),
    );
    let body = br#"{"webhook_id":"w","events":[{"event_type":"task.updated","id":{"workspace_id":"ws","task_id":"t1"},"actor":{"type":"system","id":null}}]}"#;
    let good = sign_body(&WebhookSecret::new(SECRET).expect("secret"), body);
    let forged = sign_body(&WebhookSecret::new("attacker").expect("secret"), body);
    for signature in [&good, &forged] {
        let mut headers = HeaderMap::new();
        headers.insert(
            "attio-signature",
            HeaderValue::from_str(signature).expect("hex"),
        );
        headers.insert("idempotency-key", HeaderValue::from_static("log-test-key"));
        service
            .handle(IngestRequest {
                method: &Method::POST,
                headers: &headers,
                body,
            })
            .await;
    }

    let logs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf8");
    assert!(
        logs.contains("h:log-test-key") && logs.contains("task.updated"),
        "{logs}"
    );
    assert!(logs.contains("signature_mismatch"), "{logs}");
    assert!(!logs.contains(SECRET), "secret leaked: {logs}");
    for signature in [&good, &forged] {
        assert!(!logs.contains(&signature[..16]), "signature leaked: {logs}");
    }
}
