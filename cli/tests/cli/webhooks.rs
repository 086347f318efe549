//! `attio-relay webhooks` against a wiremock Attio that checks the exact requests Attio
//! documents, and moto's Secrets Manager holding the signing secrets: create, list, rotate,
//! and delete and retire, after which the old secret no longer verifies a delivery.

use integration_tests::moto;
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::relay_on_moto;

/// Runs `attio-relay webhooks <args>` against the stand-in Attio and moto's Secrets Manager:
/// (exit 0, all it printed).
fn webhooks(attio: &MockServer, args: &[&str]) -> (bool, String) {
    let api_url = format!("{}/v2", attio.uri());
    let out = relay_on_moto()
        .env("ATTIO_API_TOKEN", "attio-admin-token")
        .run(&[&["webhooks"][..], args, &["--api-url", &api_url][..]].concat());
    (out.ok, out.text())
}

fn created(id: &str, secret: &str, subscriptions: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"data": {
        "target_url": "https://abc.lambda-url.eu-west-1.on.aws/",
        "subscriptions": subscriptions,
        "id": {"workspace_id": "14beef7a-99f7-4534-a87e-70b564330a4c", "webhook_id": id},
        "status": "active",
        "created_at": "2026-11-23T07:00:00.000000000Z",
        "secret": secret
    }}))
}

#[tokio::test(flavor = "multi_thread")]
async fn create_sends_the_documented_request_and_stores_the_secret_beside_the_old_one() {
    let config = moto::sdk_config().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let secret_id = moto::unique("attio-relay/test/webhook-secrets");
    secrets
        .create_secret()
        .name(&secret_id)
        .secret_string(r#"{"secrets": ["whsec_old"]}"#)
        .send()
        .await
        .expect("secret");

    let attio = MockServer::start().await;
    let filter = json!({"$and": [{"field": "id.list_id", "operator": "equals", "value": "7fb3a2f1-0000-4000-8000-000000000001"}]});
    let subscriptions = json!([
        {"event_type": "record.updated", "filter": null},
        {"event_type": "list-entry.created", "filter": filter}
    ]);
    Mock::given(method("POST"))
        .and(path("/v2/webhooks"))
        .and(header("authorization", "Bearer attio-admin-token"))
        .and(body_json(json!({"data": {
            "target_url": "https://abc.lambda-url.eu-west-1.on.aws/",
            "subscriptions": subscriptions
        }})))
        .respond_with(created(
            "23e42eaf-323a-41da-b5bb-fd67eebda553",
            "whsec_new",
            subscriptions.clone(),
        ))
        .expect(1)
        .mount(&attio)
        .await;

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("subscriptions.toml");
    std::fs::write(
        &file,
        r#"
[[subscriptions]]
event_type = "record.updated"

[[subscriptions]]
event_type = "list-entry.created"
filter = { "$and" = [{ field = "id.list_id", operator = "equals", value = "7fb3a2f1-0000-4000-8000-000000000001" }] }
"#,
    )
    .expect("write");
    let (ok, out) = webhooks(
        &attio,
        &[
            "create",
            "--target-url",
            "https://abc.lambda-url.eu-west-1.on.aws/",
            "--subscriptions",
            file.to_str().expect("utf8"),
            "--store-secret",
            &secret_id,
        ],
    );
    assert!(ok, "{out}");
    assert!(
        !out.contains("whsec_new"),
        "a stored secret is not printed: {out}"
    );

    let stored = secrets
        .get_secret_value()
        .secret_id(&secret_id)
        .send()
        .await
        .expect("read");
    let stored: serde_json::Value =
        serde_json::from_str(stored.secret_string().expect("string")).expect("json");
    assert_eq!(stored["secrets"], json!(["whsec_new", "whsec_old"]));
    let records = stored["webhooks"].as_array().expect("records");
    assert_eq!(records.len(), 1, "the old secret has no recorded webhook");
    assert_eq!(
        records[0]["webhook_id"],
        "23e42eaf-323a-41da-b5bb-fd67eebda553"
    );
    assert!(
        records[0]["added_at"]
            .as_i64()
            .is_some_and(|t| t > 1_700_000_000)
    );
    assert!(
        !stored["webhooks"].to_string().contains("whsec"),
        "records hold no secret: {stored}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_delete_and_a_default_create_that_prints_the_secret() {
    let attio = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/webhooks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [{
            "target_url": "https://abc.lambda-url.eu-west-1.on.aws/",
            "subscriptions": [{"event_type": "note.created", "filter": null}],
            "id": {"workspace_id": "w", "webhook_id": "wh-1"},
            "status": "active",
            "created_at": "2026-11-01T00:00:00.000000000Z"
        }]})))
        .mount(&attio)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v2/webhooks/wh-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&attio)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/webhooks"))
        .respond_with(|req: &wiremock::Request| {
            let body: serde_json::Value = serde_json::from_slice(&req.body).expect("json");
            created("wh-2", "whsec_local", body["data"]["subscriptions"].clone())
        })
        .expect(1)
        .mount(&attio)
        .await;

    let (ok, out) = webhooks(&attio, &["list"]);
    assert!(
        ok && out.contains("wh-1") && out.contains("note.created"),
        "{out}"
    );
    let (ok, out) = webhooks(&attio, &["delete", "wh-1"]);
    assert!(
        !ok && out.contains("--store-secret"),
        "delete asks what to do with the secret: {out}"
    );
    let (ok, out) = webhooks(&attio, &["delete", "wh-1", "--keep-secret"]);
    assert!(ok && out.contains("deleted webhook wh-1"), "{out}");
    let (ok, out) = webhooks(
        &attio,
        &[
            "create",
            "--target-url",
            "https://abc.lambda-url.eu-west-1.on.aws/",
            "--print-secret",
        ],
    );
    assert!(ok && out.contains("whsec_local"), "{out}");
    let requests = attio.received_requests().await.expect("recording");
    let post = requests
        .iter()
        .find(|r| r.method.as_str() == "POST")
        .expect("create request");
    let body: serde_json::Value = serde_json::from_slice(&post.body).expect("json");
    let types: Vec<&str> = body["data"]["subscriptions"]
        .as_array()
        .expect("subscriptions")
        .iter()
        .map(|s| s["event_type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types.len(),
        18,
        "every event the consumers handle: {types:?}"
    );
    assert!(types.contains(&"task.updated") && types.contains(&"note-content.updated"));
    for schema in [
        "object-attribute.created",
        "object-attribute.updated",
        "list-attribute.created",
        "list-attribute.updated",
    ] {
        assert!(
            types.contains(&schema),
            "{schema} keeps the schema cache fresh"
        );
    }
    assert!(
        !types.contains(&"task.completed"),
        "Attio has no task.completed event"
    );
}

/// The stored secret list, read back from moto.
async fn stored(secrets: &aws_sdk_secretsmanager::Client, secret_id: &str) -> String {
    secrets
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .expect("read")
        .secret_string()
        .expect("string")
        .to_owned()
}

/// Whether the ingest function, given the stored list, accepts a delivery signed with
/// `secret` (Attio's body-only scheme).
fn verifies(stored: &str, secret: &str) -> bool {
    let body = br#"{"webhook_id":"w","events":[]}"#;
    let signing = relay_signature::WebhookSecret::new(secret).expect("secret");
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        "attio-signature",
        relay_signature::sign_body(&signing, body)
            .parse()
            .expect("header"),
    );
    let request = relay_signature::SignedRequest::from_headers(&headers, body).expect("request");
    let verifier = relay_signature::Verifier::new(
        relay_ingest::parse_secret_list(stored),
        relay_signature::SchemePolicy::AcceptEither,
    );
    verifier.verify(&request, 1_767_225_600).is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_then_delete_and_retire_stop_the_old_secrets_verifying() {
    let config = moto::sdk_config().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let secret_id = moto::unique("attio-relay/test/rotation");
    // A list stored before secrets were recorded: the legacy one belongs to no known webhook.
    secrets
        .create_secret()
        .name(&secret_id)
        .secret_string(r#"{"secrets": ["whsec_legacy"]}"#)
        .send()
        .await
        .expect("secret");

    let attio = MockServer::start().await;
    let subscriptions = json!([{"event_type": "record.updated", "filter": null}]);
    let webhook = |id: &str| {
        ResponseTemplate::new(200).set_body_json(json!({"data": {
            "target_url": "https://abc.lambda-url.eu-west-1.on.aws/",
            "subscriptions": [{"event_type": "record.updated", "filter": null}],
            "id": {"workspace_id": "w", "webhook_id": id},
            "status": "active",
            "created_at": "2026-11-01T00:00:00.000000000Z"
        }}))
    };
    Mock::given(method("GET"))
        .and(path("/v2/webhooks/wh-1"))
        .respond_with(webhook("wh-1"))
        .mount(&attio)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/webhooks"))
        .respond_with(created("wh-1", "whsec_one", subscriptions.clone()))
        .up_to_n_times(1)
        .mount(&attio)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/webhooks"))
        .respond_with(created("wh-2", "whsec_two", subscriptions.clone()))
        .mount(&attio)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v2/webhooks/wh-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&attio)
        .await;
    let target = ["--target-url", "https://abc.lambda-url.eu-west-1.on.aws/"];
    let store = ["--store-secret", secret_id.as_str()];

    let (ok, out) = webhooks(&attio, &[&["create"][..], &target, &store].concat());
    assert!(ok, "{out}");
    let (ok, out) = webhooks(
        &attio,
        &[&["rotate", "--replaces", "wh-1"][..], &target, &store].concat(),
    );
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("webhooks delete wh-1 --store-secret {secret_id}")),
        "rotate says how to retire the old one: {out}"
    );
    let list = stored(&secrets, &secret_id).await;
    for secret in ["whsec_two", "whsec_one", "whsec_legacy"] {
        assert!(
            verifies(&list, secret),
            "{secret} verifies during the overlap"
        );
    }

    // Deleting the old webhook retires its secret: a delivery signed with it is refused.
    let (ok, out) = webhooks(&attio, &[&["delete", "wh-1"][..], &store].concat());
    assert!(ok, "{out}");
    assert!(!out.contains("whsec_"), "no secret is printed: {out}");
    let list = stored(&secrets, &secret_id).await;
    assert!(
        !verifies(&list, "whsec_one"),
        "the deleted webhook's secret: {list}"
    );
    assert!(verifies(&list, "whsec_two") && verifies(&list, "whsec_legacy"));

    // Retiring needs a webhook whose secret is recorded, and no Attio token.
    let out = relay_on_moto()
        .without("ATTIO_API_TOKEN")
        .run(&[&["webhooks", "retire", "--keep", "wh-unknown"][..], &store].concat());
    assert!(
        !out.ok && out.text().contains("no signing secret is recorded"),
        "{}",
        out.text()
    );
    assert_eq!(
        stored(&secrets, &secret_id).await,
        list,
        "a refused retire changes nothing"
    );
    let out = relay_on_moto()
        .without("ATTIO_API_TOKEN")
        .run(&[&["webhooks", "retire", "--keep", "wh-2"][..], &store].concat());
    assert!(
        out.ok && out.text().contains("retired 1 secret(s)"),
        "{}",
        out.text()
    );
    let list = stored(&secrets, &secret_id).await;
    assert!(
        !verifies(&list, "whsec_legacy"),
        "a leaked legacy secret: {list}"
    );
    assert!(verifies(&list, "whsec_two"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&list).expect("json")["secrets"],
        json!(["whsec_two"])
    );
}
