//! Is Attio still delivering to the relay? Each relay webhook's `status`, read from Attio.
//!
//! Attio retries a failed delivery for about 3 days, marks the webhook `degraded`, and after
//! 7 days degraded marks it `inactive` and sends nothing more: "Webhooks marked as active and
//! degraded will receive events, inactive ones will not"
//! (<https://docs.attio.com/api-reference/webhooks/get-a-webhook>). Events lost that way never
//! reach the queues, so no DLQ alarm sees them: a webhook that is not `active` is reported as
//! an [`Attention`], and [`signal_alarm`] logs the line the stack's `webhook-not-active` alarm
//! counts.

use relay_attio::{AttioClient, AttioError, Webhook, WebhookStatus};

/// The `event` field of the log line the template's metric filter counts
/// (`{ $.event = "webhook_not_active" }` in infra/template.yaml): keep the two in step.
pub const ALARM_EVENT: &str = "webhook_not_active";

/// A relay webhook that needs an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attention {
    /// Empty when no webhook delivers to the relay at all.
    pub webhook_id: String,
    /// Attio's state (`degraded`, `inactive`, …), or `missing` when there is no such webhook.
    pub status: String,
    pub what_to_do: String,
}

/// What the check found: the relay's webhooks, and those that need an operator.
#[derive(Debug, Clone, Default)]
pub struct WebhookCheck {
    pub webhooks: Vec<Webhook>,
    pub attention: Vec<Attention>,
}

/// Reading the webhooks failed: the state is unknown (not the same as "not active").
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct StatusCheckError {
    pub what: String,
    #[source]
    pub source: AttioError,
}

const MISSING: &str = "missing";

/// What to do about one webhook, or `None` when it is active.
pub fn attention(webhook: &Webhook) -> Option<Attention> {
    let id = &webhook.id.webhook_id;
    let target = &webhook.target_url;
    let what_to_do = match webhook.health() {
        WebhookStatus::Active => return None,
        WebhookStatus::Degraded => format!(
            "webhook {id} is DEGRADED: Attio's deliveries to {target} are failing. Attio still \
             retries each one for about 3 days, and marks the webhook inactive after 7 days \
             degraded. Find why ingest refuses them (`attio-relay status --stage <stage>`; \
             ingest logs: 401 = a signing secret ingest does not hold, 5xx = an AWS failure) \
             and fix it; this reconcile re-syncs what was missed meanwhile."
        ),
        WebhookStatus::Inactive => format!(
            "webhook {id} is INACTIVE: Attio no longer sends anything to {target}. Fix ingest \
             first, then register a replacement with the same subscriptions: `attio-relay \
             webhooks rotate --target-url {target} --replaces {id} --store-secret <secret id>`, \
             and once it delivers `attio-relay webhooks delete {id}`. Run reconcile again \
             after that: changes made before the new webhook existed reach HubSpot only this way."
        ),
        WebhookStatus::Other(state) => format!(
            "webhook {id} reports state {state:?}, which is not \"active\": check it in Attio \
             (Workspace settings > Developers > Webhooks) before trusting its deliveries."
        ),
    };
    Some(Attention {
        webhook_id: id.clone(),
        status: webhook.status.clone().unwrap_or_default(),
        what_to_do,
    })
}

/// Reads the relay's webhooks: by id when `webhook_ids` is not empty, else every webhook whose
/// target is `target_url` (trailing slashes ignored), or every webhook when that is `None`.
/// A named webhook Attio no longer has, or no webhook at all for the target, needs attention
/// too: nothing reaches the relay then.
pub async fn check_webhooks(
    client: &AttioClient,
    webhook_ids: &[String],
    target_url: Option<&str>,
) -> Result<WebhookCheck, StatusCheckError> {
    let mut check = WebhookCheck::default();
    if webhook_ids.is_empty() {
        let all = client
            .list_webhooks()
            .await
            .map_err(|source| StatusCheckError {
                what: "listing Attio's webhooks (the token needs webhook:read)".into(),
                source,
            })?;
        let wanted = target_url.map(|t| t.trim_end_matches('/'));
        check.webhooks.extend(
            all.into_iter()
                .filter(|w| wanted.is_none_or(|t| w.target_url.trim_end_matches('/') == t)),
        );
        if check.webhooks.is_empty() {
            let whose = target_url.map_or(String::new(), |t| format!(" delivering to {t}"));
            check.attention.push(Attention {
                webhook_id: String::new(),
                status: MISSING.into(),
                what_to_do: format!(
                    "no webhook{whose} is registered in this Attio workspace: nothing reaches \
                     the relay. Register one: `attio-relay webhooks create --target-url \
                     <IngestFunctionUrl> --store-secret <secret id>`."
                ),
            });
        }
    } else {
        for id in webhook_ids {
            match client.get_webhook(id).await {
                Ok(webhook) => check.webhooks.push(webhook),
                Err(AttioError::NotFound { .. }) => check.attention.push(Attention {
                    webhook_id: id.clone(),
                    status: MISSING.into(),
                    what_to_do: format!(
                        "webhook {id} does not exist in this Attio workspace (deleted?): \
                         nothing it delivered reaches the relay any more. Register one: \
                         `attio-relay webhooks create --target-url <IngestFunctionUrl> \
                         --store-secret <secret id>`."
                    ),
                }),
                Err(source) => {
                    return Err(StatusCheckError {
                        what: format!("reading webhook {id}"),
                        source,
                    });
                }
            }
        }
    }
    check
        .attention
        .extend(check.webhooks.iter().filter_map(attention));
    Ok(check)
}

/// Logs one [`ALARM_EVENT`] line per webhook that needs attention. In Lambda the line is JSON
/// (`relay_logging::init_json`) and a metric filter turns it into the `webhook-not-active`
/// alarm, the way `crm_auth_failure` feeds `hubspot-auth-failing`.
pub fn signal_alarm(attention: &[Attention]) {
    for item in attention {
        tracing::error!(
            event = ALARM_EVENT,
            webhook_id = %item.webhook_id,
            status = %item.status,
            what_to_do = %item.what_to_do,
            "a relay webhook is not active in Attio"
        );
    }
}
