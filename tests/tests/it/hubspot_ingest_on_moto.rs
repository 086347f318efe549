//! The HubSpot ingest as the `hubspot-ingest` Lambda builds it — settings read from the variables
//! the SAM template sets, the app secret from Secrets Manager, keys in DynamoDB, events on SQS,
//! answered through the shared HTTP mapping — against moto, with faults injected between the
//! steps. The invariant: every event of a request answered 2xx is on the `hubspot` queue once;
//! any other answer leaves no key marked done, so HubSpot's retry queues the events.

use std::collections::HashMap;
use std::sync::Arc;

use aws_config::SdkConfig;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use integration_tests::faults::{Fault, FaultyQueue, FaultyStore, ManualClock};
use integration_tests::{fixtures, moto};
use relay_idempotency::DynamoDbStore;
use relay_ingest::hubspot::{
    HubSpotIngest, HubSpotIngestRequest, HubSpotSecrets, HubSpotSettings, respond,
};
use relay_queue::SqsQueue;
use relay_signature::WebhookSecret;
use relay_signature::hubspot::sign_v3;

/// The app's current client secret and the one it replaced (both stored: rotation).
const APP_SECRET: &str = "hs-moto-app-secret";
const PREVIOUS_SECRET: &str = "hs-moto-previous-secret";
/// The URL HubSpot calls: the stack's `HubspotWebhookUrl` output.
const URL: &str = "https://abc123.lambda-url.eu-west-1.on.aws/hubspot/webhooks";

type Service =
    HubSpotIngest<FaultyStore<DynamoDbStore>, FaultyQueue<SqsQueue>, HubSpotSecrets, ManualClock>;

struct Harness {
    config: SdkConfig,
    table: String,
    queue: String,
    clock: ManualClock,
    service: Arc<Service>,
}

impl Harness {
    /// A fresh table, queue and app secret holding `stored` (the secret's JSON).
    async fn with_secret(stored: &str) -> Self {
        let config = moto::sdk_config().await;
        let table = moto::fresh_table(&config).await;
        let queue =
            moto::create_queue(&aws_sdk_sqs::Client::new(&config), &moto::unique("hubspot")).await;
        let secrets = aws_sdk_secretsmanager::Client::new(&config);
        let arn = secrets
            .create_secret()
            .name(moto::unique("attio-relay/test/hubspot-app"))
            .secret_string(stored)
            .send()
            .await
            .expect("create secret")
            .arn
            .expect("arn");
        // The variables infra/template.yaml gives HubspotIngestFunction (HUBSPOT_TARGET_URL is
        // empty by default), read as functions/hubspot-ingest reads them.
        let env: HashMap<&str, String> = HashMap::from([
            ("HUBSPOT_APP_SECRET_ARN", arn),
            ("HUBSPOT_QUEUE_URL", queue.clone()),
            ("HUBSPOT_TARGET_URL", String::new()),
            ("IDEMPOTENCY_TABLE", table.clone()),
            ("IDEMPOTENCY_LEASE_SECS", "60".into()),
            ("IDEMPOTENCY_TTL_SECS", "172800".into()),
        ]);
        let settings =
            HubSpotSettings::from_lookup(|name| env.get(name).cloned()).expect("settings");
        let clock = ManualClock::now_real();
        let service = HubSpotIngest::with_clock(
            FaultyStore::new(DynamoDbStore::new(
                aws_sdk_dynamodb::Client::new(&config),
                settings.idempotency_table.clone(),
            )),
            FaultyQueue::new(SqsQueue::new(
                aws_sdk_sqs::Client::new(&config),
                settings.queues.clone(),
            )),
            HubSpotSecrets::from_settings(&settings, || secrets.clone()),
            settings.ingest.clone(),
            clock.clone(),
        )
        .with_target_url(settings.target_url.clone());
        Self {
            config,
            table,
            queue,
            clock,
            service: Arc::new(service),
        }
    }

    async fn new() -> Self {
        Self::with_secret(&format!(
            r#"{{"secrets": ["{APP_SECRET}", "{PREVIOUS_SECRET}"]}}"#
        ))
        .await
    }

    /// Now, in the milliseconds HubSpot's timestamp header carries.
    fn now_ms(&self) -> i64 {
        self.clock.get() * 1000
    }

    /// POSTs `body` to [`URL`] with `headers`; the status and the JSON answer.
    async fn send(&self, headers: &HeaderMap, body: &[u8]) -> (StatusCode, serde_json::Value) {
        let response = respond(
            &self.service,
            HubSpotIngestRequest {
                method: &Method::POST,
                uri: URL,
                headers,
                body,
            },
        )
        .await;
        let json = serde_json::from_str(response.body()).expect("answers are JSON");
        (response.status(), json)
    }

    /// Signs `body` as HubSpot does (now) and sends it.
    async fn send_signed(&self, body: &[u8]) -> (StatusCode, serde_json::Value) {
        self.send(&signed(APP_SECRET, URL, body, self.now_ms()), body)
            .await
    }

    /// Receives (and deletes) everything on the `hubspot` queue.
    async fn drain(&self) -> Vec<moto::Received> {
        moto::drain(&self.config, &self.queue).await
    }

    async fn keys(&self) -> Vec<(String, String)> {
        let mut items = moto::table_items(&self.config, &self.table).await;
        items.sort();
        items
    }
}

/// v3 headers: base64 HMAC-SHA256 of method + URL + body + timestamp, keyed with `secret`.
fn signed(secret: &str, url: &str, body: &[u8], ts_ms: i64) -> HeaderMap {
    let secret = WebhookSecret::new(secret).expect("secret");
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-hubspot-signature-v3",
        HeaderValue::from_str(&sign_v3(&secret, "POST", url, body, ts_ms)).expect("base64"),
    );
    headers.insert(
        "x-hubspot-request-timestamp",
        HeaderValue::from_str(&ts_ms.to_string()).expect("digits"),
    );
    headers
}

/// The sample request in events/hubspot/ (three contact events of portal 62515).
fn sample() -> Vec<u8> {
    std::fs::read(fixtures::events_dir().join("hubspot/contact-changes.json")).expect("sample")
}

/// One `contact.propertyChange` event of contact 123.
fn change(event_id: u64, occurred_at: i64, attempt: u32, value: &str) -> serde_json::Value {
    serde_json::json!({
        "eventId": event_id, "subscriptionId": 25001, "portalId": 62515, "appId": 54321,
        "occurredAt": occurred_at, "subscriptionType": "contact.propertyChange",
        "attemptNumber": attempt, "objectId": 123, "propertyName": "firstname",
        "propertyValue": value, "changeSource": "CRM_UI", "sourceId": "userId:45678"
    })
}

fn batch(events: &[serde_json::Value]) -> Vec<u8> {
    serde_json::to_vec(events).expect("json")
}

fn event_ids(messages: &[moto::Received]) -> Vec<u64> {
    let mut ids: Vec<u64> = messages
        .iter()
        .map(|m| {
            let body: serde_json::Value = serde_json::from_str(&m.body).expect("message body");
            body["event"]["eventId"].as_u64().expect("eventId")
        })
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn a_signed_request_queues_each_event_once_and_its_retry_is_a_duplicate() {
    let h = Harness::new().await;
    let body = sample();
    let (status, json) = h.send_signed(&body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        (json["status"].as_str(), json["events"].as_u64()),
        (Some("queued"), Some(3)),
        "{json}"
    );

    let queued = h.drain().await;
    assert_eq!(event_ids(&queued), [1001, 1002, 1003]);
    let sent: Vec<serde_json::Value> = serde_json::from_slice(&body).expect("sample");
    for message in &queued {
        let parsed: serde_json::Value = serde_json::from_str(&message.body).expect("json");
        assert_eq!(parsed["source"], "hubspot", "{parsed}");
        let id = parsed["event"]["eventId"].clone();
        let original = sent.iter().find(|e| e["eventId"] == id).expect("sent");
        assert_eq!(&parsed["event"], original, "the event is queued as sent");
        assert_eq!(
            message.attributes["event_type"],
            original["subscriptionType"]
        );
        assert_eq!(message.attributes["workspace_id"], "62515");
        assert_eq!(
            message.attributes["idempotency_key"], parsed["dedupe_key"],
            "{parsed}"
        );
    }
    let keys = h.keys().await;
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(
        keys.iter().all(|(_, status)| status == "COMPLETED"),
        "{keys:?}"
    );

    // HubSpot's retry of the request (signed again, a second later): nothing queued twice.
    h.clock.advance(1);
    let (status, json) = h.send_signed(&body).await;
    assert_eq!(
        (status, json["status"].as_str(), json["duplicates"].as_u64()),
        (StatusCode::OK, Some("duplicate"), Some(3)),
        "{json}"
    );
    assert!(h.drain().await.is_empty());
}

#[tokio::test]
async fn a_retried_event_beside_a_new_one_queues_only_the_new_one() {
    let h = Harness::new().await;
    let first = batch(&[change(7001, 1_763_000_000_000, 0, "Ada")]);
    assert_eq!(h.send_signed(&first).await.0, StatusCode::OK);
    assert_eq!(event_ids(&h.drain().await), [7001]);

    // Event 7001 again (attemptNumber grows on a retry) with a new change of the same contact
    // and property: only the change is queued.
    let next = batch(&[
        change(7001, 1_763_000_000_000, 1, "Ada"),
        change(7002, 1_763_000_060_000, 0, "Ada L."),
    ]);
    let (status, json) = h.send_signed(&next).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        (json["events"].as_u64(), json["duplicates"].as_u64()),
        (Some(1), Some(1)),
        "{json}"
    );
    assert_eq!(event_ids(&h.drain().await), [7002]);
    assert_eq!(h.keys().await.len(), 2);
}

#[tokio::test]
async fn forged_stale_and_unsigned_requests_get_401_and_take_nothing() {
    let h = Harness::new().await;
    let body = sample();
    let now = h.now_ms();
    let mut unsigned = signed(APP_SECRET, URL, &body, now);
    unsigned.remove("x-hubspot-signature-v3");
    let cases: Vec<(&str, HeaderMap, Vec<u8>)> = vec![
        (
            "another secret",
            signed("not-the-app-secret", URL, &body, now),
            body.clone(),
        ),
        (
            "stale (6 minutes)",
            signed(APP_SECRET, URL, &body, now - 6 * 60 * 1000),
            body.clone(),
        ),
        (
            "from the future",
            signed(APP_SECRET, URL, &body, now + 5 * 60 * 1000),
            body.clone(),
        ),
        (
            "body changed after signing",
            signed(APP_SECRET, URL, &body, now),
            [&body[..], b" "].concat(),
        ),
        (
            "signed for another URL",
            signed(
                APP_SECRET,
                "https://evil.example/hubspot/webhooks",
                &body,
                now,
            ),
            body.clone(),
        ),
        ("no signature", unsigned, body.clone()),
        ("no headers", HeaderMap::new(), body.clone()),
    ];
    for (what, headers, body) in cases {
        let (status, json) = h.send(&headers, &body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {json}");
        let message = json["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{what} explains itself");
        assert!(!message.contains(APP_SECRET), "{what}: {message}");
    }
    assert!(h.drain().await.is_empty(), "nothing queued");
    assert!(h.keys().await.is_empty(), "no key taken");
}

#[tokio::test]
async fn a_failed_claim_answers_503_queues_the_others_and_the_retry_queues_the_rest_once() {
    let h = Harness::new().await;
    let body = sample();
    // One of the three claims fails: the two that succeeded are queued and completed, so the
    // retry (HubSpot resends the whole request) finds them done and queues only the third.
    h.service.store().claim.then_pass().then(Fault::Fail);
    let (status, json) = h.send_signed(&body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    assert_eq!(h.service.store().claim.injected(), 1);
    let first = event_ids(&h.drain().await);
    assert_eq!(first.len(), 2, "the claimable events are queued: {first:?}");
    assert_eq!(h.keys().await.len(), 2, "and their keys completed");

    let (status, json) = h.send_signed(&body).await;
    assert_eq!(
        (status, json["events"].as_u64(), json["duplicates"].as_u64()),
        (StatusCode::OK, Some(1), Some(2)),
        "{json}"
    );
    let mut all = first;
    all.extend(event_ids(&h.drain().await));
    all.sort_unstable();
    assert_eq!(all, [1001, 1002, 1003], "each event queued exactly once");
}

#[tokio::test]
async fn a_failed_send_answers_503_releases_every_key_and_the_retry_queues_once() {
    let h = Harness::new().await;
    let body = sample();
    h.service.queue().plan.then(Fault::Fail);
    let response = respond(
        &h.service,
        HubSpotIngestRequest {
            method: &Method::POST,
            uri: URL,
            headers: &signed(APP_SECRET, URL, &body, h.now_ms()),
            body: &body,
        },
    )
    .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(http::header::RETRY_AFTER));
    assert!(h.keys().await.is_empty(), "no key marked done");
    assert!(h.drain().await.is_empty());

    assert_eq!(h.send_signed(&body).await.0, StatusCode::OK);
    assert_eq!(event_ids(&h.drain().await), [1001, 1002, 1003]);
    assert!(h.keys().await.iter().all(|(_, s)| s == "COMPLETED"));
}

#[tokio::test]
async fn a_queue_that_does_not_exist_is_a_503_from_the_real_protocol() {
    let h = Harness::new().await;
    aws_sdk_sqs::Client::new(&h.config)
        .delete_queue()
        .queue_url(&h.queue)
        .send()
        .await
        .expect("delete queue");
    let (status, json) = h.send_signed(&sample()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    assert!(h.keys().await.is_empty(), "every key released");
}

#[tokio::test]
async fn the_previous_app_secret_still_verifies_during_a_rotation() {
    let h = Harness::new().await;
    let body = batch(&[change(8001, 1_763_000_000_000, 0, "Grace")]);
    let (status, json) = h
        .send(&signed(PREVIOUS_SECRET, URL, &body, h.now_ms()), &body)
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(event_ids(&h.drain().await), [8001]);
}

/// The stack creates the secret as `{"secrets":[]}` for the operator to fill: until then
/// HubSpot gets 503 (and retries for 24 hours), not a 401 that reads as a forgery.
#[tokio::test]
async fn an_app_secret_not_filled_in_yet_answers_503() {
    let h = Harness::with_secret(r#"{"secrets":[]}"#).await;
    let (status, json) = h.send_signed(&sample()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    assert!(h.keys().await.is_empty());
    assert!(h.drain().await.is_empty());
}
