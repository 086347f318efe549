//! Webhook management: `POST /webhooks`, `GET /webhooks`, `DELETE /webhooks/{id}`.
//!
//! The signing secret is returned once, in the create response only: callers must store it
//! before anything else can fail.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::client::{Call, Kind};
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
            query: None,
            body: Some(body),
            circuit: CIRCUIT,
            kind: Kind::Write,
            retry_transient: false,
        })
        .await
    }

    /// Every webhook of the workspace.
    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>, AttioError> {
        self.call(Call::get(&["webhooks"], CIRCUIT)).await
    }

    /// Deletes a webhook; Attio stops sending to it.
    pub async fn delete_webhook(&self, webhook_id: &str) -> Result<(), AttioError> {
        let _: Option<serde::de::IgnoredAny> = self
            .call(Call {
                method: Method::DELETE,
                segments: &["webhooks", webhook_id],
                query: None,
                body: None,
                circuit: CIRCUIT,
                kind: Kind::Write,
                retry_transient: true,
            })
            .await?;
        Ok(())
    }
}
