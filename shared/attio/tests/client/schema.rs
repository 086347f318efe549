//! The schema cache: one lookup per object, shared by concurrent callers, invalidated on demand
//! (one object, or everything) through the port.

use relay_attio::{AttioApi, CachedAttio};

use super::*;

#[tokio::test]
async fn the_schema_cache_looks_each_object_up_once() {
    let server = MockServer::start().await;
    attio("GET", &format!("/v2/objects/{PEOPLE_ID}"))
        .respond_with(json_response(200, fixture("object-people.json")))
        .expect(2)
        .mount(&server)
        .await;
    let cache = SchemaCache::new(client(&server));

    assert_eq!(cache.slug_for(PEOPLE_ID).await.expect("slug"), "people");
    assert_eq!(
        cache.clone().slug_for(PEOPLE_ID).await.expect("slug"),
        "people"
    );
    assert_eq!(request_count(&server).await, 1, "second lookup cached");
    assert_eq!(cache.slug_for("people").await.expect("slug"), "people");
    assert_eq!(request_count(&server).await, 1, "slugs need no lookup");

    cache.invalidate(PEOPLE_ID);
    assert_eq!(cache.slug_for(PEOPLE_ID).await.expect("slug"), "people");
    assert_eq!(
        request_count(&server).await,
        2,
        "refetched after invalidate"
    );
}

#[tokio::test]
async fn concurrent_schema_lookups_share_one_request() {
    let server = MockServer::start().await;
    attio("GET", &format!("/v2/objects/{PEOPLE_ID}"))
        .respond_with(
            json_response(200, fixture("object-people.json")).set_delay(Duration::from_millis(200)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let cache = SchemaCache::new(client(&server));

    let (a, b, c, d) = tokio::join!(
        cache.slug_for(PEOPLE_ID),
        cache.slug_for(PEOPLE_ID),
        cache.object(PEOPLE_ID),
        cache.slug_for(PEOPLE_ID),
    );
    for slug in [a, b, d] {
        assert_eq!(slug.expect("slug"), "people");
    }
    assert_eq!(c.expect("object").id.object_id, PEOPLE_ID);
    assert_eq!(request_count(&server).await, 1);
}

#[tokio::test]
async fn cached_attributes_are_dropped_when_their_object_id_is_invalidated() {
    let server = MockServer::start().await;
    attio("GET", "/v2/objects/people/attributes")
        .respond_with(json_response(200, fixture("attributes-people.json")))
        .expect(2)
        .mount(&server)
        .await;
    let cache = SchemaCache::new(client(&server));

    assert_eq!(
        cache.attributes("people").await.expect("attributes").len(),
        2
    );
    let company = cache
        .attribute("people", "7d1f3c2a-9a8b-4c6d-8e1f-2a3b4c5d6e7f")
        .await
        .expect("lookup")
        .expect("found by id");
    assert_eq!(company.api_slug, "company");
    assert!(
        cache
            .attribute("people", "nope")
            .await
            .expect("lookup")
            .is_none()
    );
    assert_eq!(request_count(&server).await, 1);

    // object-attribute.* events name the object by id; the cache was filled by slug.
    cache.invalidate(PEOPLE_ID);
    assert_eq!(
        cache.attributes("people").await.expect("attributes").len(),
        2
    );
    assert_eq!(request_count(&server).await, 2);
}

#[tokio::test]
async fn the_port_forgets_one_object_or_everything_and_the_next_lookup_refetches() {
    let server = MockServer::start().await;
    attio("GET", &format!("/v2/objects/{PEOPLE_ID}"))
        .respond_with(json_response(200, fixture("object-people.json")))
        .expect(3)
        .mount(&server)
        .await;
    attio("GET", "/v2/objects/people/attributes")
        .respond_with(json_response(200, fixture("attributes-people.json")))
        .expect(2)
        .mount(&server)
        .await;
    let attio = CachedAttio::new(client(&server));
    let fill = || async {
        assert_eq!(attio.object_slug(PEOPLE_ID).await.expect("slug"), "people");
        attio
            .schema()
            .attributes("people")
            .await
            .expect("attributes");
    };
    fill().await;
    fill().await;
    assert_eq!(request_count(&server).await, 2, "both cached");

    // An object-attribute event for another object (or a list id) leaves people cached.
    attio.forget_schema_of("0c4f1c6e-2b7a-4d8e-9f10-1a2b3c4d5e6f");
    fill().await;
    assert_eq!(request_count(&server).await, 2);
    // For people, by id: the definition goes (the attributes were cached by slug, and go too).
    attio.forget_schema_of(PEOPLE_ID);
    fill().await;
    assert_eq!(request_count(&server).await, 4);
    // Another container moved the generation: everything goes.
    attio.forget_schema();
    assert_eq!(attio.object_slug(PEOPLE_ID).await.expect("slug"), "people");
    assert_eq!(request_count(&server).await, 5);
}

#[tokio::test]
async fn a_failed_schema_lookup_is_not_cached() {
    let server = MockServer::start().await;
    attio("GET", &format!("/v2/objects/{PEOPLE_ID}"))
        .respond_with(attio_error(
            403,
            "unauthorized",
            "Missing scope object_configuration:read",
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    attio("GET", &format!("/v2/objects/{PEOPLE_ID}"))
        .respond_with(json_response(200, fixture("object-people.json")))
        .expect(1)
        .mount(&server)
        .await;
    let cache = SchemaCache::new(client(&server));

    let err = cache.slug_for(PEOPLE_ID).await.expect_err("403");
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(cache.slug_for(PEOPLE_ID).await.expect("slug"), "people");
}

#[tokio::test]
async fn connection_failures_are_transient_and_say_why() {
    // A port nothing listens on: bind, note the port, close.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let mut config = AttioConfig::new(TOKEN);
    config.base_url = format!("http://127.0.0.1:{port}/v2");
    config.backoff_base = Duration::from_millis(1);
    config.backoff_cap = Duration::from_millis(5);
    config.max_attempts = 2;
    let client = AttioClient::new(config).expect("client");

    let err = client.get_note("n1").await.expect_err("no server");
    let AttioError::BudgetExhausted { attempts, last, .. } = &err else {
        panic!("BudgetExhausted, got {err:?}");
    };
    assert_eq!(*attempts, 2);
    assert!(matches!(**last, AttioError::Transport { .. }), "{last:?}");
    assert!(!err.is_permanent());
    let shown = err.to_string().to_lowercase();
    assert!(
        shown.contains("refused") || shown.contains("connect"),
        "{shown}"
    );
}
