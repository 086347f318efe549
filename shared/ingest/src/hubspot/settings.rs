//! The HubSpot ingest's settings and where its app secrets come from: `HUBSPOT_APP_SECRET`
//! (comma-separated, local runs) or a Secrets Manager secret (`HUBSPOT_APP_SECRET_ARN`), cached
//! per container and re-read so a rotation reaches warm containers.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_queue::QueueUrls;
use relay_signature::WebhookSecret;
use relay_signature::hubspot::HubSpotVerifier;
use tokio::sync::Mutex;

use crate::config::Env;
use crate::{ConfigError, IngestConfig, SecretError, parse_secret_list};

/// Provides the verifier for the next request.
pub trait HubSpotVerifierSource: Send + Sync {
    fn verifier(&self) -> impl Future<Output = Result<Arc<HubSpotVerifier>, SecretError>> + Send;
}

/// App secrets fixed at start-up.
#[derive(Debug, Clone)]
pub struct StaticHubSpotSecrets(Arc<HubSpotVerifier>);

impl StaticHubSpotSecrets {
    pub fn new(secrets: Vec<WebhookSecret>) -> Self {
        Self(Arc::new(HubSpotVerifier::new(secrets)))
    }
}

impl HubSpotVerifierSource for StaticHubSpotSecrets {
    async fn verifier(&self) -> Result<Arc<HubSpotVerifier>, SecretError> {
        Ok(Arc::clone(&self.0))
    }
}

/// Where the app secrets come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubSpotSecretsConfig {
    Inline(Vec<WebhookSecret>),
    SecretsManager {
        secret_id: String,
        refresh: Duration,
    },
}

/// Everything the HubSpot ingest function reads from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSpotSettings {
    pub ingest: IngestConfig,
    pub secrets: HubSpotSecretsConfig,
    pub idempotency_table: String,
    /// The `hubspot` queue (`HUBSPOT_QUEUE_URL`).
    pub queues: QueueUrls,
    /// `HUBSPOT_TARGET_URL`: the URL registered in HubSpot, when it is not the one requests
    /// arrive on (a custom domain in front of the Function URL).
    pub target_url: Option<String>,
}

impl HubSpotSettings {
    /// Reads settings through `lookup` (`std::env::var` in the function, a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let get = |name: &str| env.get(name);
        let number = |name: &'static str, default: u64| env.number(name, default);
        let ingest = IngestConfig::from_env(&env)?;
        let secrets = match (get("HUBSPOT_APP_SECRET_ARN"), get("HUBSPOT_APP_SECRET")) {
            (Some(secret_id), _) => HubSpotSecretsConfig::SecretsManager {
                secret_id,
                refresh: Duration::from_secs(number("SECRETS_CACHE_SECS", 300)?),
            },
            (None, Some(list)) => match parse_secret_list(&list) {
                secrets if !secrets.is_empty() => HubSpotSecretsConfig::Inline(secrets),
                _ => return Err(missing_secret()),
            },
            (None, None) => return Err(missing_secret()),
        };
        let idempotency_table = get("IDEMPOTENCY_TABLE").ok_or(ConfigError::Missing {
            name: "IDEMPOTENCY_TABLE",
            what: "the DynamoDB idempotency table name",
        })?;
        let family = relay_events::EventFamily::Hubspot;
        let queue = get(QueueUrls::env_var(family)).ok_or(ConfigError::Missing {
            name: "HUBSPOT_QUEUE_URL",
            what: "the SQS queue HubSpot events are parked on",
        })?;
        Ok(Self {
            ingest,
            secrets,
            idempotency_table,
            queues: QueueUrls::new().with(family, queue),
            target_url: get("HUBSPOT_TARGET_URL"),
        })
    }
}

fn missing_secret() -> ConfigError {
    ConfigError::Missing {
        name: "HUBSPOT_APP_SECRET_ARN",
        what: "the HubSpot app's client secret (or HUBSPOT_APP_SECRET, comma-separated, locally)",
    }
}

/// The secrets source the settings name: fixed, or Secrets Manager with a cache that keeps the
/// last good secrets when a refresh fails (a Secrets Manager blip must not refuse HubSpot).
#[derive(Debug)]
pub enum HubSpotSecrets {
    Static(StaticHubSpotSecrets),
    SecretsManager {
        client: aws_sdk_secretsmanager::Client,
        secret_id: String,
        refresh: Duration,
        cache: Mutex<Option<(Instant, Arc<HubSpotVerifier>)>>,
    },
}

impl HubSpotSecrets {
    /// `secrets_manager` builds the client only when a secret ARN is configured.
    pub fn from_settings(
        settings: &HubSpotSettings,
        secrets_manager: impl FnOnce() -> aws_sdk_secretsmanager::Client,
    ) -> Self {
        match &settings.secrets {
            HubSpotSecretsConfig::Inline(secrets) => {
                Self::Static(StaticHubSpotSecrets::new(secrets.clone()))
            }
            HubSpotSecretsConfig::SecretsManager { secret_id, refresh } => Self::SecretsManager {
                client: secrets_manager(),
                secret_id: secret_id.clone(),
                refresh: *refresh,
                cache: Mutex::new(None),
            },
        }
    }
}

async fn fetch(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<Arc<HubSpotVerifier>, SecretError> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| SecretError::Fetch {
            secret_id: secret_id.to_owned(),
            source: e.into_service_error().into(),
        })?;
    let secrets = parse_secret_list(out.secret_string().unwrap_or_default());
    if secrets.is_empty() {
        return Err(SecretError::Empty {
            secret_id: secret_id.to_owned(),
        });
    }
    Ok(Arc::new(HubSpotVerifier::new(secrets)))
}

impl HubSpotVerifierSource for HubSpotSecrets {
    async fn verifier(&self) -> Result<Arc<HubSpotVerifier>, SecretError> {
        let (client, secret_id, refresh, cache) = match self {
            Self::Static(source) => return source.verifier().await,
            Self::SecretsManager {
                client,
                secret_id,
                refresh,
                cache,
            } => (client, secret_id, refresh, cache),
        };
        let mut cache = cache.lock().await;
        if let Some((fetched, verifier)) = cache.as_ref()
            && fetched.elapsed() < *refresh
        {
            return Ok(Arc::clone(verifier));
        }
        match fetch(client, secret_id).await {
            Ok(verifier) => {
                *cache = Some((Instant::now(), Arc::clone(&verifier)));
                Ok(verifier)
            }
            Err(err) => match cache.as_ref() {
                Some((_, stale)) => {
                    tracing::warn!(error = %err, "keeping cached HubSpot app secrets after a failed refresh");
                    Ok(Arc::clone(stale))
                }
                None => Err(err),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<HubSpotSettings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        HubSpotSettings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn several_inline_secrets_or_a_secret_arn() {
        let base = [("IDEMPOTENCY_TABLE", "t"), ("HUBSPOT_QUEUE_URL", "q")];
        let inline = settings(&[base[0], base[1], ("HUBSPOT_APP_SECRET", "a, b")]).unwrap();
        match &inline.secrets {
            HubSpotSecretsConfig::Inline(list) => assert_eq!(list.len(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            inline.queues.get(relay_events::EventFamily::Hubspot),
            Some("q")
        );
        let arn = settings(&[base[0], base[1], ("HUBSPOT_APP_SECRET_ARN", "arn:x")]).unwrap();
        assert!(matches!(
            arn.secrets,
            HubSpotSecretsConfig::SecretsManager { .. }
        ));
        assert!(!format!("{inline:?}").contains("a, b"));
    }

    #[test]
    fn each_missing_setting_is_named() {
        let err = settings(&[("IDEMPOTENCY_TABLE", "t"), ("HUBSPOT_QUEUE_URL", "q")]).unwrap_err();
        assert!(err.to_string().contains("HUBSPOT_APP_SECRET"), "{err}");
        let err = settings(&[("HUBSPOT_APP_SECRET", "s"), ("IDEMPOTENCY_TABLE", "t")]).unwrap_err();
        assert!(err.to_string().contains("HUBSPOT_QUEUE_URL"), "{err}");
        let err = settings(&[("HUBSPOT_APP_SECRET", "s"), ("HUBSPOT_QUEUE_URL", "q")]).unwrap_err();
        assert!(err.to_string().contains("IDEMPOTENCY_TABLE"), "{err}");
    }
}
