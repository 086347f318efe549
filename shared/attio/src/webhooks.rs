//! Webhook management: `POST /webhooks`, `GET /webhooks` (paged), `GET /webhooks/{id}`,
//! `DELETE /webhooks/{id}`.
//!
//! The signing secret is returned once, in the create response only: callers must store it
//! before anything else can fail.
//!
//! A webhook's `status` is how an operator learns that deliveries stopped: Attio retries a
//! failing delivery for about 3 days, marks the webhook `degraded`, and after 7 days degraded
//! marks it `inactive` and sends nothing more
//! (<https://docs.attio.com/api-reference/webhooks/get-a-webhook>).

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::client::{Call, Kind};
use crate::pages::{WEBHOOK_PAGE_MAX, WebhookPages};
use crate::{AttioClient, AttioError};

/// The circuit webhook calls share.
const CIRCUIT: &str = "webhooks";

/// One subscription: an event type and an optional filter
/// (`{"$and"|"$or": [{"field", "operator", "value"}]}`; `None` for every event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub event_type: String,
    #[serde(default)]
    pub filter: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WebhookId {
    pub workspace_id: String,
    pub webhook_id: String,
}

/// A registered webhook. `secret` is present only in the create response.
#[derive(Clone, PartialEq, Deserialize)]
pub struct Webhook {
    pub id: WebhookId,
    pub target_url: String,
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub secret: Option<String>,
}

/// Attio's webhook states. "Webhooks marked as active and degraded will receive events,
/// inactive ones will not. If a webhook remains in the degraded state for 7 days, it will be
/// marked inactive." (<https://docs.attio.com/api-reference/webhooks/get-a-webhook>)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookStatus {
    Active,
    /// Deliveries are failing; Attio still sends (and retries) them.
    Degraded,
    /// Attio sends nothing any more: events since are lost to the relay.
    Inactive,
    /// A state Attio added after this was written, or none given: treated as not active.
    Other(String),
}

impl WebhookStatus {
    pub fn parse(status: Option<&str>) -> Self {
        match status {
            Some("active") => Self::Active,
            Some("degraded") => Self::Degraded,
            Some("inactive") => Self::Inactive,
            other => Self::Other(other.unwrap_or("").to_owned()),
        }
    }

    pub fn is_active(&self) -> bool {
        matches!(self, Self::Active)
    }
}

impl Webhook {
    /// The webhook's state, parsed.
    pub fn health(&self) -> WebhookStatus {
        WebhookStatus::parse(self.status.as_deref())
    }
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("target_url", &self.target_url)
            .field("subscriptions", &self.subscriptions)
            .field("status", &self.status)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl AttioClient {
    /// Registers a webhook. Not retried on transient failures (a retry could register it
    /// twice); the returned webhook carries the signing secret.
    pub async fn create_webhook(
        &self,
        target_url: &str,
        subscriptions: &[Subscription],
    ) -> Result<Webhook, AttioError> {
        let body = serde_json::to_vec(&serde_json::json!({
            "data": {"target_url": target_url, "subscriptions": subscriptions}
        }))
        .map_err(|source| AttioError::Decode {
            path: "/webhooks".into(),
            source,
        })?;
        self.call(Call {
            method: Method::POST,
            segments: &["webhooks"],
            query: &[],
            body: Some(body),
            circuit: CIRCUIT,
            kind: Kind::Write,
            retry_transient: false,
        })
        .await
    }

    /// Every webhook of the workspace, 100 per call (Attio's largest page).
    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>, AttioError> {
        self.webhook_pages(WEBHOOK_PAGE_MAX).collect_all().await
    }

    /// The workspace's webhooks, `limit` (10..=100) per page.
    pub fn webhook_pages(&self, limit: u32) -> WebhookPages {
        WebhookPages::new(self.clone(), limit)
    }

    /// `GET /webhooks?limit=&offset=`: one page.
    pub async fn list_webhooks_page(
        &self,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<Webhook>, AttioError> {
        let (limit, offset) = (limit.to_string(), offset.to_string());
        let query = [("limit", limit.as_str()), ("offset", offset.as_str())];
        let mut call = Call::get(&["webhooks"], CIRCUIT);
        call.query = &query;
        self.call(call).await
    }

    /// `GET /webhooks/{id}`: one webhook; [`AttioError::NotFound`] once it is deleted.
    pub async fn get_webhook(&self, webhook_id: &str) -> Result<Webhook, AttioError> {
        self.call(Call::get(&["webhooks", webhook_id], CIRCUIT))
            .await
    }

    /// Deletes a webhook; Attio stops sending to it.
    pub async fn delete_webhook(&self, webhook_id: &str) -> Result<(), AttioError> {
        let _: Option<serde::de::IgnoredAny> = self
            .call(Call {
                method: Method::DELETE,
                segments: &["webhooks", webhook_id],
                query: &[],
                body: None,
                circuit: CIRCUIT,
                kind: Kind::Write,
                retry_transient: true,
            })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attios_three_states_and_anything_else_is_not_active() {
        assert_eq!(WebhookStatus::parse(Some("active")), WebhookStatus::Active);
        assert_eq!(
            WebhookStatus::parse(Some("degraded")),
            WebhookStatus::Degraded
        );
        assert_eq!(
            WebhookStatus::parse(Some("inactive")),
            WebhookStatus::Inactive
        );
        assert!(WebhookStatus::parse(Some("active")).is_active());
        for other in [Some("degraded"), Some("inactive"), Some("paused"), None] {
            assert!(!WebhookStatus::parse(other).is_active(), "{other:?}");
        }
    }
}
