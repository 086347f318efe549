//! The way back in the pipeline tests (`two_way_chaos`): HubSpot's side of its ingest (signed
//! v3 requests of up to 100 events, retried until answered 2xx) and the consumers' context
//! with two-way sync on (ledger in the mappings table, conflicts in their own table, HubSpot
//! read through the same sink). The `hubspot` queue's consumer is driven like the others,
//! with [`super::drive_consumer`] (it is a `QueueHandler`).

use std::sync::Arc;

use aws_config::SdkConfig;
use http::{HeaderMap, HeaderValue, Method};
use relay_idempotency::DynamoDbStore;
use relay_ingest::IngestConfig;
use relay_ingest::hubspot::{HubSpotIngest, HubSpotIngestRequest, StaticHubSpotSecrets};
use relay_mappings::{DynamoDbConflicts, DynamoDbMappings};
use relay_queue::{QueueUrls, SqsQueue};
use relay_signature::WebhookSecret;
use relay_signature::hubspot::sign_v3;
use relay_sync::two_way::TwoWaySettings;
use serde_json::Value;

use super::{Counts, Ctx, Sender};
use crate::faults::{self, FaultyQueue, FaultyStore, ManualClock};

/// The HubSpot app's client secret in the two-way tests.
pub const APP_SECRET: &str = "hs-chaos-app-secret";
/// The URL HubSpot calls (signed as called: the stack's `HubspotWebhookUrl`).
pub const HUBSPOT_WEBHOOK_URL: &str = "https://abc123.lambda-url.eu-west-1.on.aws/hubspot/webhooks";
/// HubSpot sends up to 100 events per request
/// (<https://developers.hubspot.com/docs/api/webhooks>, "Webhook payloads").
pub const EVENTS_PER_REQUEST: usize = 100;

/// The HubSpot ingest on moto, its DynamoDB and SQS adapters wrapped to fail on command.
pub type HubspotIngest = HubSpotIngest<
    FaultyStore<DynamoDbStore>,
    FaultyQueue<SqsQueue>,
    StaticHubSpotSecrets,
    ManualClock,
>;

/// The HubSpot ingest over `table` and the `hubspot` queue of `urls`, with `share` of its
/// DynamoDB and SQS calls failing at random (seeded), verifying [`APP_SECRET`].
pub fn hubspot_ingest(
    config: &SdkConfig,
    table: &str,
    urls: QueueUrls,
    share: f64,
    seed: u64,
    clock: ManualClock,
) -> HubspotIngest {
    let (store, queue) = faults::randomly_faulty_aws(config, table, urls, share, seed);
    let secret = WebhookSecret::new(APP_SECRET).expect("secret");
    HubSpotIngest::with_clock(
        store,
        queue,
        StaticHubSpotSecrets::new(vec![secret]),
        IngestConfig::default(),
        clock,
    )
}

/// v3 headers as HubSpot sends them: base64 HMAC-SHA256 of method + URI + body + timestamp
/// (<https://developers.hubspot.com/docs/apps/legacy-apps/authentication/validating-requests>).
fn signed(body: &[u8], ts_ms: i64) -> HeaderMap {
    let secret = WebhookSecret::new(APP_SECRET).expect("secret");
    let signature = sign_v3(&secret, "POST", HUBSPOT_WEBHOOK_URL, body, ts_ms);
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-hubspot-signature-v3",
        HeaderValue::from_str(&signature).expect("base64"),
    );
    headers.insert(
        "x-hubspot-request-timestamp",
        HeaderValue::from_str(&ts_ms.to_string()).expect("digits"),
    );
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers
}

/// HubSpot's side of its ingest: `events` in requests of 1 to `per_request` events (at most
/// [`EVENTS_PER_REQUEST`]; HubSpot batches what it has), each signed at the ingest clock's
/// now; `kill_share` of the requests killed at a random point; whatever did not get a 2xx
/// sent again (HubSpot retries failed deliveries), re-signed.
///
/// Why a test may want small requests: the ingest claims one key per event and answers 5xx
/// unless every claim succeeds, so under the chaos tests' 10% of failing DynamoDB calls a
/// 100-event request passes about once in 38,000 attempts (0.9^100).
pub async fn deliver_hubspot_with_retries(
    service: &Arc<HubspotIngest>,
    clock: &ManualClock,
    events: &[Value],
    (per_request, kill_share): (usize, f64),
    counts: &Counts,
) {
    let mut rng = fastrand::Rng::with_seed(13 + events.len() as u64);
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let mut rest = events;
    while !rest.is_empty() {
        let take = rng
            .usize(1..=per_request.clamp(1, EVENTS_PER_REQUEST))
            .min(rest.len());
        let (chunk, after) = rest.split_at(take);
        bodies.push(serde_json::to_vec(chunk).expect("json"));
        rest = after;
    }
    let send = |n: usize| {
        let headers = signed(&bodies[n], clock.get() * 1000);
        let body = &bodies[n];
        async move {
            let request = HubSpotIngestRequest {
                method: &Method::POST,
                uri: HUBSPOT_WEBHOOK_URL,
                headers: &headers,
                body,
            };
            service.handle(request).await.status
        }
    };
    Sender::new("HubSpot request", kill_share, clock, counts)
        .until_acknowledged(bodies.len(), &mut rng, send)
        .await;
}

/// `ctx` with two-way sync on: the ledger in `mappings_table`, conflicts in
/// `conflicts_table`, HubSpot's side read with the context's own sink.
pub fn two_way_context(
    ctx: Ctx,
    config: &SdkConfig,
    mappings_table: &str,
    conflicts_table: &str,
    settings: TwoWaySettings,
) -> Arc<Ctx> {
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let source = ctx.crm.clone();
    Arc::new(ctx.with_two_way(
        DynamoDbMappings::new(dynamodb.clone(), mappings_table),
        DynamoDbConflicts::new(dynamodb, conflicts_table),
        source,
        settings,
    ))
}
