//! The reconcile function: each scheduled invocation checks the relay webhooks' status (and
//! logs the alarm line for any that is not active), then walks the mapped objects from their
//! saved positions until the invocation's deadline draws near.
//!
//! Overlapping invocations would double the rate use (the upserts are idempotent, so nothing
//! is written twice wrongly), so the schedule must be at least 15 minutes apart (README). No
//! reserved concurrency guards it: reserving any needs unreserved account concurrency that new
//! accounts lack, and the function is deployed even while its schedule is off. A failed
//! invocation is not retried by Lambda (`MaximumRetryAttempts: 0`): the next scheduled one
//! continues from the saved position, so a failure costs no budget twice.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use relay_attio::{AttioApi, AttioClient, AttioConfig, RateLimit};
use relay_crm::{CrmSink, HubSpotConfig, HubSpotSink};
use relay_events::clock::{Clock, SystemClock, UnixSeconds};
use relay_mappings::{DynamoDbMappings, IdMappings};
use relay_sync::{PageReport, SyncContext};
use serde_json::{Value, json};

use crate::position::{DynamoDbPositions, PositionStore, SyncPosition};
use crate::settings::ReconcileSettings;
use crate::status::{StatusCheckError, WebhookCheck, check_webhooks, signal_alarm};
use crate::walk::{
    ObjectResult, PassReport, RecordPageSource, WalkObserver, WalkOptions, WalkOutcome,
    walk_objects,
};

/// What one invocation does, independent of AWS.
#[derive(Debug, Clone)]
pub struct Plan {
    pub webhook_ids: Vec<String>,
    pub target_url: Option<String>,
    pub objects: Vec<String>,
    pub page_size: u32,
}

/// What one invocation found and did.
#[derive(Debug)]
pub struct InvocationReport {
    pub check: Result<WebhookCheck, StatusCheckError>,
    pub pass: PassReport,
}

impl InvocationReport {
    /// The invocation's answer (shown in the Lambda console and by `aws lambda invoke`).
    pub fn summary(&self) -> Value {
        let objects: Vec<Value> = self
            .pass
            .objects
            .iter()
            .map(|(object, result)| match result {
                ObjectResult::Walked(outcome) => {
                    let p = outcome.position();
                    let state = match outcome {
                        WalkOutcome::Finished(_) => "finished",
                        WalkOutcome::Paused(_) => "paused",
                    };
                    json!({"object": object, "outcome": state, "offset": p.offset,
                           "records_synced": p.records_synced, "records_failed": p.records_failed})
                }
                ObjectResult::Failed(err) => {
                    json!({"object": object, "outcome": "failed", "error": err.to_string()})
                }
                ObjectResult::NotStarted => json!({"object": object, "outcome": "not_started"}),
            })
            .collect();
        let (checked, not_active) = match &self.check {
            Ok(check) => (json!(check.webhooks.len()), json!(check.attention.len())),
            Err(_) => (Value::Null, Value::Null),
        };
        json!({"webhooks_checked": checked, "webhooks_not_active": not_active,
               "pass_complete": self.pass.complete(), "objects": objects})
    }

    /// What makes the invocation count as failed (Lambda's `Errors` metric and the
    /// `reconcile-failing` alarm): an unknown webhook state, or an object that failed.
    pub fn failure(&self) -> Option<String> {
        let mut problems = Vec::new();
        if let Err(err) = &self.check {
            problems.push(format!("webhook status unknown: {err}"));
        }
        for (object, result) in &self.pass.objects {
            if let ObjectResult::Failed(err) = result {
                problems.push(format!("{object}: {err}"));
            }
        }
        (!problems.is_empty()).then(|| problems.join("; "))
    }
}

/// Logs each page, so a pass can be followed in CloudWatch.
#[derive(Debug, Default)]
struct LogObserver;

impl WalkObserver for LogObserver {
    fn resumed(&mut self, position: &SyncPosition) {
        tracing::info!(object = %position.object, offset = position.offset, records_synced = position.records_synced, "resuming the walk where the last run stopped");
    }

    fn page_done(&mut self, report: &PageReport, position: &SyncPosition) {
        for (record_id, why) in &report.failed {
            tracing::warn!(object = %position.object, record_id, reason = %why, "record not synced");
        }
        tracing::info!(object = %position.object, offset = position.offset, synced = report.synced, failed = report.failed.len(), "page synced");
    }
}

/// One invocation: the status check (alarm lines for webhooks that are not active), then the
/// walk, starting no page at or after `stop_at`. The walk runs even when the check fails: a
/// re-sync does not depend on it.
pub async fn reconcile_once<S, M, A, R, P>(
    ctx: &SyncContext<S, M, A>,
    webhooks: &AttioClient,
    source: &R,
    positions: &P,
    clock: &dyn Clock,
    plan: &Plan,
    stop_at: UnixSeconds,
) -> InvocationReport
where
    S: CrmSink,
    M: IdMappings,
    A: AttioApi,
    R: RecordPageSource,
    P: PositionStore,
{
    let check = check_webhooks(webhooks, &plan.webhook_ids, plan.target_url.as_deref()).await;
    match &check {
        Ok(check) => signal_alarm(&check.attention),
        Err(err) => {
            tracing::error!(error = %err, "could not read the relay webhooks' status in Attio")
        }
    }
    let template = WalkOptions {
        page_size: plan.page_size,
        stop_at: Some(stop_at),
        ..WalkOptions::new(String::new())
    };
    let pass = walk_objects(
        ctx,
        source,
        positions,
        clock,
        &plan.objects,
        &template,
        &mut LogObserver,
    )
    .await;
    InvocationReport { check, pass }
}

/// Runs the reconcile function.
pub async fn run() -> Result<(), Error> {
    relay_logging::init_json();
    let settings = ReconcileSettings::from_lookup(|name| std::env::var(name).ok())?;
    let aws = aws_config::load_from_env().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let share = settings.share;
    // A run lasts up to 15 minutes: a token rotated meanwhile is picked up on a 401.
    let token_ttl = relay_credentials::DEFAULT_TTL;

    let mut attio_config = AttioConfig::new(
        relay_consumer::lambda::credential(&settings.attio_token, &secrets, token_ttl).await?,
    );
    if let Some(url) = &settings.attio_api_url {
        attio_config.base_url = url.clone();
    }
    let per_second = share.attio_reads_per_second();
    attio_config.read_rate = Some(RateLimit {
        per_second,
        burst: per_second,
    });
    let mut hubspot_config = HubSpotConfig::new(
        relay_consumer::lambda::credential(&settings.hubspot_token, &secrets, token_ttl).await?,
    );
    if let Some(url) = &settings.hubspot_api_url {
        hubspot_config.base_url = url.clone();
    }
    hubspot_config.requests_per_10s = share.hubspot_requests_per_10s();

    // The share applies to the deployment's budgets, drawn from with the consumers; the
    // per-container rates above stay for `RATE_BUDGET=off`.
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    if let Some(budgets) =
        relay_consumer::lambda::shared_budgets(&dynamodb, &settings.mappings_table)?
    {
        let budgets = budgets.with_share(share.get());
        attio_config.read_budget = Some(budgets.attio_reads);
        attio_config.write_budget = Some(budgets.attio_writes);
        hubspot_config.budget = Some(budgets.hubspot);
    }
    let client = AttioClient::new(attio_config)?;
    let sink = HubSpotSink::new(hubspot_config)?;
    let mappings = DynamoDbMappings::new(dynamodb.clone(), &settings.mappings_table);
    let mut ctx = SyncContext::new(
        client.clone(),
        sink.clone(),
        mappings.clone(),
        settings.field_mapping.clone(),
    );
    if let Some(wiring) = settings.two_way.clone() {
        // `both` fields are compared with the ledger before a page is sent (`sync_page`).
        let conflicts =
            relay_mappings::DynamoDbConflicts::new(dynamodb.clone(), wiring.conflicts_table);
        ctx = ctx.with_two_way(mappings, conflicts, sink, wiring.settings);
    }
    let ctx = Arc::new(ctx);
    let positions = Arc::new(DynamoDbPositions::new(dynamodb, &settings.mappings_table));
    let plan = Arc::new(Plan {
        webhook_ids: settings.webhook_ids.clone(),
        target_url: settings.target_url.clone(),
        objects: settings.objects.clone(),
        page_size: relay_attio::MAX_PAGE_SIZE,
    });
    let reserve = i64::try_from(settings.stop_before.as_secs()).unwrap_or(i64::MAX);
    tracing::info!(objects = ?plan.objects, rates = %share.describe(), "reconcile function ready");

    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (ctx, client, positions, plan) = (
            Arc::clone(&ctx),
            client.clone(),
            Arc::clone(&positions),
            Arc::clone(&plan),
        );
        async move {
            // The deadline is in milliseconds; whole seconds, rounded down, err on the early side.
            let deadline = i64::try_from(event.context.deadline / 1000).unwrap_or(i64::MAX);
            let stop_at = deadline.saturating_sub(reserve);
            let report = reconcile_once(
                &*ctx,
                &client,
                &client,
                &*positions,
                &SystemClock,
                &plan,
                stop_at,
            )
            .await;
            let summary = report.summary();
            tracing::info!(summary = %summary, "reconcile invocation done");
            match report.failure() {
                Some(problem) => Err::<Value, Error>(problem.into()),
                None => Ok(summary),
            }
        }
    }))
    .await
}
