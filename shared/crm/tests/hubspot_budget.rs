//! The HubSpot sink on the deployment's shared budget (`relay_ratelimit`, memory adapter), against a
//! wiremock HubSpot answering 429s as HubSpot's docs show them
//! (<https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines>: the body
//! names the policy, `TEN_SECONDLY_ROLLING` or `DAILY`).

use std::sync::Arc;
use std::time::Duration;

use relay_crm::{BUDGET_POLICY, CrmError, CrmId, CrmObject, CrmSink, HubSpotConfig, HubSpotSink};
use relay_ratelimit::{ApiBudget, Limits, MemoryBudget, RateBudget};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn container(server: &MockServer, store: &Arc<dyn RateBudget>) -> (HubSpotSink, ApiBudget) {
    let budget = ApiBudget::new(Arc::clone(store), Limits::hubspot(100.0, 0.85));
    let mut config = HubSpotConfig::new("pat-test-token");
    config.base_url = server.uri();
    config.backoff = Duration::from_millis(10);
    config.max_wait = Duration::from_secs(3);
    config.budget = Some(budget.clone());
    (HubSpotSink::new(config).expect("client"), budget)
}

fn limited(policy: &str) -> ResponseTemplate {
    ResponseTemplate::new(429)
        .insert_header("retry-after", "0")
        .set_body_json(
            json!({"status": "error", "message": "You have reached your limit.",
                              "errorType": "RATE_LIMIT", "policyName": policy}),
        )
}

#[tokio::test]
async fn a_ten_secondly_429_halves_the_portal_rate_for_every_container() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/crm/v3/objects/contacts/5"))
        .respond_with(limited("TEN_SECONDLY_ROLLING"))
        .up_to_n_times(1)
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(204))
        .expect(2)
        .with_priority(2)
        .mount(&server)
        .await;
    let store: Arc<dyn RateBudget> = Arc::new(MemoryBudget::new());
    let (a, a_budget) = container(&server, &store);
    let (b, b_budget) = container(&server, &store);

    a.archive(CrmObject::Contacts, &CrmId("5".into()))
        .await
        .expect("429 waited out");
    assert_eq!(a_budget.stats().cuts, 1);
    b.archive(CrmObject::Contacts, &CrmId("6".into()))
        .await
        .expect("archived");
    let rate = b_budget.stats().rate_per_s;
    assert!((4.25..4.4).contains(&rate), "8.5/s halved, got {rate}");
}

#[tokio::test]
async fn the_daily_limit_is_no_rate_and_cuts_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .respond_with(limited("DAILY"))
        .expect(1)
        .mount(&server)
        .await;
    let store: Arc<dyn RateBudget> = Arc::new(MemoryBudget::new());
    let (sink, budget) = container(&server, &store);
    let err = sink
        .archive(CrmObject::Contacts, &CrmId("5".into()))
        .await
        .expect_err("daily");
    assert!(matches!(err, CrmError::RateLimited { ref policy, .. } if policy == "DAILY"));
    assert_eq!(budget.stats().cuts, 0);
    assert_eq!(budget.stats().rate_per_s, 8.5);
}

#[tokio::test]
async fn a_spent_budget_refuses_before_sending_anything() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "77"})))
        .expect(0)
        .mount(&server)
        .await;
    let store: Arc<dyn RateBudget> = Arc::new(MemoryBudget::new());
    // Other containers spent the whole window (90 calls granted now): the next call waits
    // 11 s (the window and the lease), past the call's 3 s.
    let limits = Limits::hubspot(100.0, 0.85);
    let now = relay_ratelimit::MillisClock::now_ms(&relay_ratelimit::SystemMillis);
    let (debt, _) = limits
        .take(&limits.fresh(now), now, 90, Duration::from_secs(60))
        .expect("reserve");
    store.save(&limits.key, debt, None).await.expect("save");

    let (sink, _) = container(&server, &store);
    let err = sink
        .update(
            CrmObject::Deals,
            &CrmId("77".into()),
            &[("dealstage".to_owned(), "closedwon".to_owned())].into(),
        )
        .await
        .expect_err("no token within max_wait");
    let CrmError::RateLimited {
        policy,
        retry_after_secs,
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!(policy, BUDGET_POLICY);
    assert!(*retry_after_secs >= 9, "{retry_after_secs}");
    assert!(!err.is_permanent());
}
