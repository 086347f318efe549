//! Failures: how each is classified, what is retried or waited out, and the circuit breaker.

use super::*;

#[tokio::test]
async fn not_found_is_permanent_and_not_retried() {
    let server = MockServer::start().await;
    attio("GET", "/v2/objects/people/records/gone")
        .respond_with(attio_error(
            404,
            "not_found",
            "Record with ID \"gone\" not found.",
        ))
        .expect(1)
        .mount(&server)
        .await;

    let err = client(&server)
        .get_record("people", "gone")
        .await
        .expect_err("404");
    let AttioError::NotFound { path, message, .. } = &err else {
        panic!("NotFound, got {err:?}");
    };
    assert_eq!(path, "/objects/people/records/gone");
    assert_eq!(message, "Record with ID \"gone\" not found.");
    assert!(err.is_permanent());
    assert!(err.is_record_gone());
}

/// Only Attio's own `not_found` is a deletion: a proxy's HTML 404 and a merge still being
/// applied (https://docs.attio.com/rest-api/endpoint-reference/records/merge-two-records) are
/// handed back to the queue, neither retried in the call nor taken as "gone".
#[tokio::test]
async fn a_proxy_404_and_a_running_merge_are_transient_not_gone() {
    let server = MockServer::start().await;
    attio("GET", "/v2/objects/people/records/merging")
        .respond_with(attio_error(
            404,
            "merge_in_progress",
            "This record is being merged.",
        ))
        .expect(1)
        .mount(&server)
        .await;
    attio("GET", "/v2/objects/people/records/behind-proxy")
        .respond_with(
            ResponseTemplate::new(404).set_body_string("<html><body>404 Not Found</body></html>"),
        )
        .expect(1)
        .mount(&server)
        .await;

    let merging = client(&server)
        .get_record("people", "merging")
        .await
        .expect_err("404");
    assert!(merging.is_merge_in_progress());
    assert!(!merging.is_record_gone());
    assert!(!merging.is_permanent());

    let proxied = client(&server)
        .get_record("people", "behind-proxy")
        .await
        .expect_err("404");
    assert!(!proxied.is_record_gone());
    assert!(!proxied.is_permanent());
}

#[tokio::test]
async fn a_bad_request_is_decoded_permanent_and_not_retried() {
    let server = MockServer::start().await;
    attio("POST", "/v2/objects/people/records/query")
        .respond_with(attio_error(400, "filter_error", "Error in filter."))
        .expect(1)
        .mount(&server)
        .await;

    let query = RecordQuery::new().filter(json!({"$nonsense": true}));
    let err = client(&server)
        .query_records("people", &query)
        .await
        .expect_err("400");
    let AttioError::Api {
        status,
        code,
        message,
        path,
    } = &err
    else {
        panic!("Api, got {err:?}");
    };
    assert_eq!(*status, 400);
    assert_eq!(code.as_deref(), Some("filter_error"));
    assert_eq!(message, "Error in filter.");
    assert_eq!(path, "/objects/people/records/query");
    assert!(err.is_permanent());
}

#[tokio::test]
async fn an_undecodable_success_is_permanent() {
    let server = MockServer::start().await;
    attio("GET", "/v2/tasks/t1")
        .respond_with(json_response(
            200,
            json!({"data": {"id": "not an id object"}}),
        ))
        .expect(1)
        .mount(&server)
        .await;

    let err = client(&server).get_task("t1").await.expect_err("decode");
    assert!(matches!(err, AttioError::Decode { .. }), "{err:?}");
    assert!(err.is_permanent());
}

#[tokio::test]
async fn a_429_with_a_retry_after_date_is_waited_out() {
    let server = MockServer::start().await;
    let reset = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    attio("GET", "/v2/notes/n1")
        .respond_with(
            attio_error(
                429,
                "rate_limit_exceeded",
                "Rate limit exceeded, please try again later",
            )
            .insert_header("retry-after", reset.as_str()),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    attio("GET", "/v2/notes/n1")
        .respond_with(json_response(200, fixture("note.json")))
        .expect(1)
        .mount(&server)
        .await;

    let started = Instant::now();
    let note = client(&server)
        .get_note("n1")
        .await
        .expect("note after the wait");
    assert_eq!(note.title, "Intro call");
    // Coarse sanity only: the date is one to two seconds ahead at one-second resolution.
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(request_count(&server).await, 2);
}

#[tokio::test]
async fn a_429_beyond_the_budget_returns_rate_limited_without_waiting() {
    let server = MockServer::start().await;
    let reset = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(90));
    attio("GET", "/v2/tasks/t1")
        .respond_with(
            attio_error(429, "rate_limit_exceeded", "Rate limit exceeded")
                .insert_header("retry-after", reset.as_str()),
        )
        .expect(1)
        .mount(&server)
        .await;

    let started = Instant::now();
    let err = client(&server).get_task("t1").await.expect_err("limited");
    assert!(started.elapsed() < Duration::from_secs(5), "did not sleep");
    let AttioError::RateLimited { retry_after, path } = &err else {
        panic!("RateLimited, got {err:?}");
    };
    assert!(*retry_after > Duration::from_secs(80) && *retry_after <= Duration::from_secs(90));
    assert_eq!(path, "/tasks/t1");
    assert!(!err.is_permanent());
    assert_eq!(err.retry_after(), Some(*retry_after));
}

#[tokio::test]
async fn a_retry_after_in_seconds_is_understood() {
    let server = MockServer::start().await;
    attio("GET", "/v2/tasks/t1")
        .respond_with(
            attio_error(429, "rate_limit_exceeded", "Rate limit exceeded")
                .insert_header("retry-after", "120"),
        )
        .expect(1)
        .mount(&server)
        .await;

    let err = client(&server).get_task("t1").await.expect_err("limited");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)), "{err:?}");
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let server = MockServer::start().await;
    get_the_record()
        .respond_with(attio_error(500, "internal_error", "Something went wrong"))
        .up_to_n_times(2)
        .with_priority(1)
        .expect(2)
        .mount(&server)
        .await;
    get_the_record()
        .respond_with(every_type_record())
        .expect(1)
        .mount(&server)
        .await;

    let record = read_the_record(&server)
        .await
        .expect("third attempt succeeds");
    assert_eq!(record.record_id(), RECORD_ID);
    assert_eq!(request_count(&server).await, 3);
}

#[tokio::test]
async fn a_write_conflict_is_retried() {
    let server = MockServer::start().await;
    let values = json!({"domains": ["analytical.example"]});
    attio("PUT", "/v2/objects/companies/records")
        .and(query_param("matching_attribute", "domains"))
        .respond_with(attio_error(
            409,
            "concurrent_write_conflict",
            "The record was modified by another request while this write was being validated. Please try again.",
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    attio("PUT", "/v2/objects/companies/records")
        .and(body_json(json!({"data": {"values": values}})))
        .respond_with(every_type_record())
        .expect(1)
        .mount(&server)
        .await;

    client(&server)
        .assert_record("companies", "domains", values.clone())
        .await
        .expect("second attempt succeeds");
}

#[tokio::test]
async fn persistent_server_errors_exhaust_the_attempts() {
    let server = MockServer::start().await;
    attio("GET", "/v2/notes/n1")
        .respond_with(attio_error(503, "unavailable", "Service unavailable"))
        .expect(5)
        .mount(&server)
        .await;

    let err = client(&server).get_note("n1").await.expect_err("exhausted");
    let AttioError::BudgetExhausted {
        path,
        attempts,
        last,
    } = &err
    else {
        panic!("BudgetExhausted, got {err:?}");
    };
    assert_eq!(path, "/notes/n1");
    assert_eq!(*attempts, 5);
    assert!(
        matches!(**last, AttioError::Api { status: 503, .. }),
        "{last:?}"
    );
    assert!(!err.is_permanent());
}

#[tokio::test]
async fn timeouts_are_retried_but_never_past_the_budget() {
    let server = MockServer::start().await;
    attio("GET", "/v2/tasks/slow")
        .respond_with(json_response(200, fixture("task.json")).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.request_timeout = Duration::from_millis(100);
    config.call_budget = Duration::from_millis(350);
    config.max_attempts = 50;
    config.breaker_threshold = 1000;
    let client = AttioClient::new(config).expect("client");

    let started = Instant::now();
    let err = client.get_task("slow").await.expect_err("out of budget");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the budget cut it short"
    );
    let AttioError::BudgetExhausted { attempts, last, .. } = &err else {
        panic!("BudgetExhausted, got {err:?}");
    };
    assert!((2..50).contains(attempts), "{attempts} attempts");
    assert!(matches!(**last, AttioError::Timeout { .. }), "{last:?}");
    let received = request_count(&server).await;
    assert!(received >= 2, "retried after a timeout: {received}");
}

#[tokio::test]
async fn the_circuit_opens_after_five_failed_calls_and_fails_fast() {
    let server = MockServer::start().await;
    attio("GET", &format!("/v2/objects/{PEOPLE_ID}/records/r1"))
        .respond_with(attio_error(502, "bad_gateway", "Bad gateway"))
        .expect(5)
        .mount(&server)
        .await;
    attio("GET", "/v2/objects/companies/records/c1")
        .respond_with(every_type_record())
        .expect(1)
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.max_attempts = 1;
    let client = AttioClient::new(config).expect("client");

    for _ in 0..5 {
        let err = client.get_record(PEOPLE_ID, "r1").await.expect_err("fails");
        assert!(
            matches!(err, AttioError::BudgetExhausted { attempts: 1, .. }),
            "{err:?}"
        );
    }
    assert_eq!(request_count(&server).await, 5);

    // Open: no request is made, for this client or any clone of it.
    for c in [client.clone(), client.clone()] {
        let err = c.get_record(PEOPLE_ID, "r1").await.expect_err("open");
        let AttioError::CircuitOpen { object, until } = &err else {
            panic!("CircuitOpen, got {err:?}");
        };
        assert_eq!(object, PEOPLE_ID);
        assert!(*until > SystemTime::now() + Duration::from_secs(25));
        assert!(!err.is_permanent());
    }
    assert_eq!(request_count(&server).await, 5, "failed fast");

    // Other objects have their own circuit.
    client
        .get_record("companies", "c1")
        .await
        .expect("companies unaffected");
}

#[tokio::test]
async fn one_call_exhausting_its_retries_does_not_open_the_circuit() {
    let server = MockServer::start().await;
    attio("GET", &format!("/v2/objects/{PEOPLE_ID}/records/broken"))
        .respond_with(attio_error(500, "internal_error", "Something went wrong"))
        .expect(5)
        .mount(&server)
        .await;
    attio("GET", &format!("/v2/objects/{PEOPLE_ID}/records/fine"))
        .respond_with(every_type_record())
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    let err = client
        .get_record(PEOPLE_ID, "broken")
        .await
        .expect_err("exhausted");
    assert!(
        matches!(err, AttioError::BudgetExhausted { attempts: 5, .. }),
        "{err:?}"
    );
    client
        .get_record(PEOPLE_ID, "fine")
        .await
        .expect("one broken record does not block its object");
}

#[tokio::test]
async fn after_the_cooldown_one_trial_call_closes_the_circuit() {
    let server = MockServer::start().await;
    attio("GET", "/v2/tasks/t1")
        .respond_with(attio_error(500, "internal_error", "Something went wrong"))
        .up_to_n_times(5)
        .with_priority(1)
        .expect(5)
        .mount(&server)
        .await;
    attio("GET", "/v2/tasks/t1")
        .respond_with(json_response(200, fixture("task.json")))
        .expect(2)
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.breaker_cooldown = Duration::from_millis(100);
    config.max_attempts = 1;
    let client = AttioClient::new(config).expect("client");

    for _ in 0..5 {
        client.get_task("t1").await.expect_err("exhausted");
    }
    let open = client.get_task("t1").await.expect_err("open");
    assert!(matches!(open, AttioError::CircuitOpen { .. }), "{open:?}");

    tokio::time::sleep(Duration::from_millis(150)).await;
    client.get_task("t1").await.expect("the trial succeeds");
    client.get_task("t1").await.expect("closed again");
    assert_eq!(request_count(&server).await, 7);
}
