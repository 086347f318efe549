//! Where the verifier's secrets come from: inline (local runs) or AWS Secrets Manager, cached
//! per container and re-read periodically so a rotation reaches warm containers.
//!
//! [`WebhookSecrets`] is whichever of the two the settings name, as one type, so the ingest
//! function builds its service on one path whatever the configuration.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_signature::{SchemePolicy, Verifier, WebhookSecret};
use tokio::sync::Mutex;

use crate::{SecretsConfig, Settings};

/// Provides the verifier for the next request.
pub trait VerifierSource: Send + Sync {
    fn verifier(&self) -> impl Future<Output = Result<Arc<Verifier>, SecretError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read webhook secret {secret_id}: {source}")]
    Fetch {
        secret_id: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "webhook secret {secret_id} holds no secrets: store {{\"secrets\": [\"<secret from Attio>\"]}}"
    )]
    Empty { secret_id: String },
}

/// Secrets fixed at start-up.
#[derive(Debug, Clone)]
pub struct StaticSecrets(Arc<Verifier>);

impl StaticSecrets {
    pub fn new(verifier: Verifier) -> Self {
        Self(Arc::new(verifier))
    }
}

impl VerifierSource for StaticSecrets {
    async fn verifier(&self) -> Result<Arc<Verifier>, SecretError> {
        Ok(Arc::clone(&self.0))
    }
}

/// Reads a secret list in any of the accepted forms: `{"secrets": [..]}`, a JSON array, a JSON
/// string, or plain text separated by commas or newlines.
pub fn parse_secret_list(text: &str) -> Vec<WebhookSecret> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Object { secrets: Vec<String> },
        List(Vec<String>),
        One(String),
    }
    let values = match serde_json::from_str::<Stored>(text.trim()) {
        Ok(Stored::Object { secrets } | Stored::List(secrets)) => secrets,
        Ok(Stored::One(secret)) => vec![secret],
        Err(_) => text.split([',', '\n']).map(str::to_owned).collect(),
    };
    values.into_iter().filter_map(WebhookSecret::new).collect()
}

/// Verifier settings applied to whatever secrets are fetched.
#[derive(Debug, Clone, Copy)]
struct VerifierSettings {
    policy: SchemePolicy,
    tolerance_secs: u64,
    future_skew_secs: u64,
}

/// Secrets from AWS Secrets Manager, cached for `refresh`. When a refresh fails the last good
/// secrets are kept (a Secrets Manager blip must not reject every delivery).
#[derive(Debug)]
pub struct SecretsManagerSource {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    refresh: Duration,
    settings: VerifierSettings,
    cache: Mutex<Option<(Instant, Arc<Verifier>)>>,
}

impl SecretsManagerSource {
    pub fn new(
        client: aws_sdk_secretsmanager::Client,
        secret_id: impl Into<String>,
        refresh: Duration,
        policy: SchemePolicy,
        tolerance_secs: u64,
        future_skew_secs: u64,
    ) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
            refresh,
            settings: VerifierSettings {
                policy,
                tolerance_secs,
                future_skew_secs,
            },
            cache: Mutex::new(None),
        }
    }

    async fn fetch(&self) -> Result<Arc<Verifier>, SecretError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| SecretError::Fetch {
                secret_id: self.secret_id.clone(),
                source: e.into_service_error().into(),
            })?;
        let secrets = parse_secret_list(out.secret_string().unwrap_or_default());
        if secrets.is_empty() {
            return Err(SecretError::Empty {
                secret_id: self.secret_id.clone(),
            });
        }
        let s = self.settings;
        Ok(Arc::new(
            Verifier::new(secrets, s.policy)
                .with_tolerance_secs(s.tolerance_secs)
                .with_future_skew_secs(s.future_skew_secs),
        ))
    }
}

impl VerifierSource for SecretsManagerSource {
    async fn verifier(&self) -> Result<Arc<Verifier>, SecretError> {
        let mut cache = self.cache.lock().await;
        if let Some((fetched, verifier)) = cache.as_ref()
            && fetched.elapsed() < self.refresh
        {
            return Ok(Arc::clone(verifier));
        }
        match self.fetch().await {
            Ok(verifier) => {
                *cache = Some((Instant::now(), Arc::clone(&verifier)));
                Ok(verifier)
            }
            Err(err) => match cache.as_ref() {
                Some((_, stale)) => {
                    tracing::warn!(error = %err, "keeping cached webhook secrets after a failed refresh");
                    Ok(Arc::clone(stale))
                }
                None => Err(err),
            },
        }
    }
}

/// The secrets source the settings configure: fixed secrets or Secrets Manager.
#[derive(Debug)]
pub enum WebhookSecrets {
    Static(StaticSecrets),
    SecretsManager(SecretsManagerSource),
}

impl WebhookSecrets {
    /// The source `settings` name. `secrets_manager` builds the client only when a secret ARN
    /// is configured, so local runs with inline secrets never construct one.
    pub fn from_settings(
        settings: &Settings,
        secrets_manager: impl FnOnce() -> aws_sdk_secretsmanager::Client,
    ) -> Self {
        match &settings.secrets {
            SecretsConfig::Inline(secrets) => {
                Self::Static(StaticSecrets::new(settings.verifier(secrets.clone())))
            }
            SecretsConfig::SecretsManager { secret_id, refresh } => {
                Self::SecretsManager(SecretsManagerSource::new(
                    secrets_manager(),
                    secret_id.clone(),
                    *refresh,
                    settings.policy,
                    settings.tolerance_secs,
                    settings.future_skew_secs,
                ))
            }
        }
    }
}

impl VerifierSource for WebhookSecrets {
    async fn verifier(&self) -> Result<Arc<Verifier>, SecretError> {
        match self {
            Self::Static(source) => source.verifier().await,
            Self::SecretsManager(source) => source.verifier().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stored_form_is_read() {
        for text in [
            r#"{"secrets": ["a", "b"]}"#,
            r#"["a", "b"]"#,
            "a,b",
            "a\nb\n",
            " a , b ,, ",
        ] {
            let got: Vec<_> = parse_secret_list(text)
                .iter()
                .map(|s| s.expose().to_owned())
                .collect();
            assert_eq!(got, ["a", "b"], "{text:?}");
        }
        assert_eq!(parse_secret_list(r#""only""#).len(), 1);
        assert!(parse_secret_list(r#"{"secrets": []}"#).is_empty());
    }

    #[tokio::test]
    async fn inline_settings_need_no_secrets_manager_client() {
        let map: std::collections::HashMap<String, String> = [
            ("ATTIO_WEBHOOK_SECRETS", "a"),
            ("IDEMPOTENCY_TABLE", "keys"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .chain(relay_events::EventFamily::ALL.map(|f| {
            (
                relay_queue::QueueUrls::env_var(f).to_owned(),
                "q".to_owned(),
            )
        }))
        .collect();
        let settings = Settings::from_lookup(|name| map.get(name).cloned()).unwrap();
        let source = WebhookSecrets::from_settings(&settings, || {
            panic!("no Secrets Manager client for inline secrets")
        });
        assert!(matches!(source, WebhookSecrets::Static(_)));
        let verifier = source.verifier().await.unwrap();
        assert_eq!(verifier.secret_count(), 1);
        assert_eq!(verifier.policy(), settings.policy);
    }
}
