//! The way back's writes ([`AttioWriter`]) against a wiremock Attio answering as the endpoint
//! references show: assert (`PUT …/records?matching_attribute=`) and update
//! (`PUT …/records/{id}`), the body, slug resolution, the write budget, 429s, refusals, and a
//! token that never reaches the logs.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use relay_attio::{AttioValues, AttioWriter, CachedAttio};
use relay_ratelimit::{ApiBudget, Limits, MemoryBudget, RateBudget};

use super::*;

fn values(json: Json) -> AttioValues {
    json.as_object().cloned().expect("an object of values")
}

fn put_record() -> MockBuilder {
    attio("PUT", &format!("/v2/objects/people/records/{RECORD_ID}"))
}

#[tokio::test]
async fn assert_sends_the_values_and_the_matching_attribute_through_the_port() {
    let server = MockServer::start().await;
    let given = json!({
        "email_addresses": ["ada@analytical.example"],
        "job_title": "Countess"
    });
    attio("PUT", "/v2/objects/people/records")
        .and(query_param("matching_attribute", "email_addresses"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({"data": {"values": given}})))
        .respond_with(every_type_record())
        .expect(1)
        .mount(&server)
        .await;

    let record = AttioWriter::assert_record(
        &client(&server),
        "people",
        "email_addresses",
        &values(given.clone()),
    )
    .await
    .expect("asserted");

    assert_eq!(record.record_id(), RECORD_ID);
}

#[tokio::test]
async fn update_puts_the_values_on_the_record_and_resolves_an_object_id_once() {
    let server = MockServer::start().await;
    attio("GET", &format!("/v2/objects/{PEOPLE_ID}"))
        .respond_with(json_response(200, fixture("object-people.json")))
        .expect(1)
        .mount(&server)
        .await;
    let first = json!({"job_title": "Countess"});
    let second = json!({"job_title": "Analyst", "description": "Notes on the engine"});
    for body in [&first, &second] {
        put_record()
            .and(header("content-type", "application/json"))
            .and(body_json(json!({"data": {"values": body}})))
            .respond_with(every_type_record())
            .expect(1)
            .mount(&server)
            .await;
    }
    let attio = CachedAttio::new(client(&server));

    for body in [first, second] {
        let record = attio
            .update_record(PEOPLE_ID, RECORD_ID, &values(body))
            .await
            .expect("updated");
        assert_eq!(record.record_id(), RECORD_ID);
    }
    // The path named the slug both times; no PUT used the object id.
    let requests = server.received_requests().await.expect("recording");
    let puts: Vec<_> = requests
        .iter()
        .filter(|r| r.method.as_str() == "PUT")
        .collect();
    assert_eq!(puts.len(), 2);
    assert!(
        puts.iter()
            .all(|r| r.url.path().starts_with("/v2/objects/people/"))
    );
}

#[tokio::test]
async fn a_429_is_waited_out_for_as_long_as_retry_after_says() {
    let server = MockServer::start().await;
    // Attio's Retry-After is an HTTP date (whole seconds): 2 s ahead waits between 1 and 2 s.
    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    put_record()
        .respond_with(
            attio_error(
                429,
                "rate_limit_exceeded",
                "Rate limit exceeded, please try again later",
            )
            .insert_header("retry-after", at.as_str()),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    put_record()
        .respond_with(every_type_record())
        .expect(1)
        .mount(&server)
        .await;

    let started = Instant::now();
    AttioWriter::update_record(
        &client(&server),
        "people",
        RECORD_ID,
        &values(json!({"job_title": "Countess"})),
    )
    .await
    .expect("written after the wait");

    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "waited {waited:?}");
    assert_eq!(request_count(&server).await, 2);
}

#[tokio::test]
async fn a_validation_error_is_permanent_with_attios_message_and_is_not_retried() {
    let server = MockServer::start().await;
    let message = "No attribute was found for matching_attribute slug/ID \"e-mail\".";
    attio("PUT", "/v2/objects/people/records")
        .respond_with(attio_error(400, "value_not_found", message))
        .expect(1)
        .mount(&server)
        .await;

    let err = AttioWriter::assert_record(
        &client(&server),
        "people",
        "e-mail",
        &values(json!({"e-mail": ["ada@analytical.example"]})),
    )
    .await
    .expect_err("refused");

    assert!(err.is_permanent(), "{err:?}");
    let AttioError::Api {
        status,
        code,
        message: shown,
        ..
    } = &err
    else {
        panic!("Api error, got {err:?}");
    };
    assert_eq!(*status, 400);
    assert_eq!(code.as_deref(), Some("value_not_found"));
    assert_eq!(shown, message);
    assert!(err.to_string().contains(message));
}

#[tokio::test]
async fn updating_a_deleted_record_is_its_not_found() {
    let server = MockServer::start().await;
    put_record()
        .respond_with(attio_error(
            404,
            "not_found",
            &format!("Record with ID \"{RECORD_ID}\" not found."),
        ))
        .expect(1)
        .mount(&server)
        .await;

    let err = AttioWriter::update_record(
        &client(&server),
        "people",
        RECORD_ID,
        &values(json!({"job_title": "Countess"})),
    )
    .await
    .expect_err("gone");

    assert!(err.is_record_gone() && err.is_permanent(), "{err:?}");
}

#[tokio::test]
async fn server_errors_and_write_conflicts_are_retried_since_a_put_may_be_repeated() {
    let server = MockServer::start().await;
    put_record()
        .respond_with(attio_error(503, "unavailable", "Service unavailable"))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    put_record()
        .respond_with(attio_error(
            409,
            "concurrent_write_conflict",
            "The record was modified by another request while this write was being validated. Please try again.",
        ))
        .up_to_n_times(1)
        .with_priority(2)
        .expect(1)
        .mount(&server)
        .await;
    put_record()
        .respond_with(every_type_record())
        .expect(1)
        .mount(&server)
        .await;

    AttioWriter::update_record(
        &client(&server),
        "people",
        RECORD_ID,
        &values(json!({"job_title": "Countess"})),
    )
    .await
    .expect("third attempt succeeds");
    assert_eq!(request_count(&server).await, 3);
}

fn limits(key: &str) -> Limits {
    Limits {
        key: key.into(),
        published_per_s: 25.0,
        rate_per_s: 20.0,
        capacity: 5.0,
        max_block: 2,
        lease: Duration::from_millis(50),
        min_rate_per_s: 1.0,
        recovery_per_s: 0.5,
        cut_cooldown: Duration::from_secs(1),
        window: None,
    }
}

#[tokio::test]
async fn writes_spend_the_write_budget_and_a_429_cuts_it_not_the_read_budget() {
    let server = MockServer::start().await;
    put_record()
        .respond_with(
            attio_error(429, "rate_limit_exceeded", "slow down").insert_header("retry-after", "0"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    put_record()
        .respond_with(every_type_record())
        .expect(1)
        .mount(&server)
        .await;
    get_the_record()
        .respond_with(every_type_record())
        .expect(1)
        .mount(&server)
        .await;
    let store: Arc<dyn RateBudget> = Arc::new(MemoryBudget::new());
    let reads = ApiBudget::new(Arc::clone(&store), limits("attio-reads"));
    let writes = ApiBudget::new(Arc::clone(&store), limits("attio-writes"));
    let mut config = config(&server);
    config.read_budget = Some(reads.clone());
    config.write_budget = Some(writes.clone());
    let client = AttioClient::new(config).expect("client");

    AttioWriter::update_record(
        &client,
        "people",
        RECORD_ID,
        &values(json!({"job_title": "Countess"})),
    )
    .await
    .expect("written");
    client.get_record("people", RECORD_ID).await.expect("read");

    let (r, w) = (reads.stats(), writes.stats());
    assert_eq!(w.spent, 2, "both write attempts took a write token");
    assert_eq!(w.cuts, 1, "the 429 cut the write rate");
    assert_eq!(r.spent, 1, "the read took a read token");
    assert_eq!(r.cuts, 0, "reads keep their rate");
}

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_token_never_reaches_the_logs_or_the_errors() {
    let server = MockServer::start().await;
    put_record()
        .respond_with(attio_error(502, "bad_gateway", "upstream failed"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    put_record()
        .respond_with(attio_error(
            400,
            "validation_type",
            "job_title must be text",
        ))
        .mount(&server)
        .await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let client = client(&server);
    let err = AttioWriter::update_record(
        &client,
        "people",
        RECORD_ID,
        &values(json!({"job_title": 7})),
    )
    .await
    .expect_err("refused after two retries");

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap_or_else(PoisonError::into_inner))
        .into_owned();
    assert!(logs.contains("retrying"), "the retries were logged: {logs}");
    for shown in [
        logs,
        err.to_string(),
        format!("{err:?}"),
        format!("{client:?}"),
    ] {
        assert!(!shown.contains(TOKEN), "the token leaked: {shown}");
    }
    assert_eq!(request_count(&server).await, 3);
}

/// `DELETE /v2/objects/{object}/records/{record_id}` answers `200 {}` ("Delete a record",
/// <https://docs.attio.com/rest-api/endpoint-reference/records/delete-a-record>); an object id
/// is sent as its slug; a 5xx is sent again (deleting twice changes nothing); a record that
/// is gone already is Attio's `not_found`, permanent, for the caller to take as done.
#[tokio::test]
async fn delete_removes_the_record_retries_a_5xx_and_reports_not_found() {
    let server = MockServer::start().await;
    attio("GET", &format!("/v2/objects/{PEOPLE_ID}"))
        .respond_with(json_response(200, fixture("object-people.json")))
        .mount(&server)
        .await;
    let delete = || attio("DELETE", &format!("/v2/objects/people/records/{RECORD_ID}"));
    delete()
        .respond_with(attio_error(503, "internal_error", "try again"))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    delete()
        .respond_with(json_response(200, json!({})))
        .up_to_n_times(1)
        .with_priority(2)
        .expect(1)
        .mount(&server)
        .await;
    delete()
        .respond_with(attio_error(
            404,
            "not_found",
            &format!("Record with ID \"{RECORD_ID}\" not found."),
        ))
        .with_priority(3)
        .mount(&server)
        .await;
    let attio = CachedAttio::new(client(&server));

    attio
        .delete_record(PEOPLE_ID, RECORD_ID)
        .await
        .expect("deleted after one 503");
    let again = attio.delete_record(PEOPLE_ID, RECORD_ID).await;
    match again {
        Err(err @ relay_attio::AttioError::NotFound { .. }) => {
            assert!(err.is_permanent(), "{err}");
            assert!(err.is_record_gone(), "{err}");
        }
        other => panic!("a second delete is not_found: {other:?}"),
    }
    let requests = server.received_requests().await.expect("recording");
    let deletes: Vec<_> = requests
        .iter()
        .filter(|r| r.method.as_str() == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 3, "503, 200, 404");
    assert!(deletes.iter().all(|r| r.body.is_empty()), "no body");
}
