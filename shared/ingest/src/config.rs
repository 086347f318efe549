//! Ingest settings, read from environment variables (see the README's configuration table):
//! one typed load per container, so a missing or malformed variable stops the function at
//! start-up with a message that names it, instead of failing a delivery later.

use std::time::Duration;

use relay_queue::QueueUrls;
use relay_signature::{
    DEFAULT_FUTURE_SKEW_SECS, DEFAULT_TOLERANCE_SECS, SchemePolicy, Verifier, WebhookSecret,
};

/// Limits and retention for the handler itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    /// Larger bodies get 413 before any work. Attio deliveries are a few KB.
    pub max_body_bytes: usize,
    /// How long a claim protects an in-flight delivery; must exceed the function timeout.
    pub lease: Duration,
    /// How long completed keys are remembered; Attio retries for about 3 days.
    pub retain: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 256 * 1024,
            lease: Duration::from_secs(60),
            retain: Duration::from_secs(4 * 24 * 3600),
        }
    }
}

/// Where the webhook secrets come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsConfig {
    /// Listed in `ATTIO_WEBHOOK_SECRETS` (local runs).
    Inline(Vec<WebhookSecret>),
    /// An AWS Secrets Manager secret (`ATTIO_WEBHOOK_SECRET_ARN`), re-read every `refresh`.
    SecretsManager {
        secret_id: String,
        refresh: Duration,
    },
}

/// Everything the ingest function reads from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub ingest: IngestConfig,
    pub secrets: SecretsConfig,
    pub policy: SchemePolicy,
    pub tolerance_secs: u64,
    pub future_skew_secs: u64,
    /// The DynamoDB idempotency table (`IDEMPOTENCY_TABLE`).
    pub idempotency_table: String,
    /// Every family's SQS queue URL (`RECORDS_QUEUE_URL`, ...).
    pub queues: QueueUrls,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}={value:?} is not valid: {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: String,
    },
    #[error(
        "no webhook secret configured: set ATTIO_WEBHOOK_SECRET_ARN (AWS Secrets Manager) or \
         ATTIO_WEBHOOK_SECRETS (comma-separated, for local runs)"
    )]
    NoSecrets,
    #[error("{name} is required: {what}")]
    Missing {
        name: &'static str,
        what: &'static str,
    },
    /// A queue URL is missing; the message lists every one to set.
    #[error("{0}")]
    Queues(String),
}

/// Variables read through a lookup (`std::env::var`, or a map in tests): trimmed, and empty
/// counts as unset. Both ingest functions read their settings through it.
pub(crate) struct Env<L>(pub(crate) L);

impl<L: Fn(&str) -> Option<String>> Env<L> {
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// A whole number, or `default` when unset.
    pub(crate) fn number(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|_| ConfigError::Invalid {
                name,
                value,
                expected: "a whole number".into(),
            }),
        }
    }
}

impl IngestConfig {
    /// `MAX_BODY_BYTES`, `IDEMPOTENCY_LEASE_SECS` and `IDEMPOTENCY_TTL_SECS` over the defaults.
    pub(crate) fn from_env<L: Fn(&str) -> Option<String>>(
        env: &Env<L>,
    ) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            max_body_bytes: usize::try_from(
                env.number("MAX_BODY_BYTES", defaults.max_body_bytes as u64)?,
            )
            .unwrap_or(usize::MAX),
            lease: Duration::from_secs(
                env.number("IDEMPOTENCY_LEASE_SECS", defaults.lease.as_secs())?,
            ),
            retain: Duration::from_secs(
                env.number("IDEMPOTENCY_TTL_SECS", defaults.retain.as_secs())?,
            ),
        })
    }
}

impl Settings {
    /// Reads settings through `lookup` (`std::env::var` in production, a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let get = |name: &str| env.get(name);
        let number = |name: &'static str, default: u64| env.number(name, default);
        let ingest = IngestConfig::from_env(&env)?;
        let secrets = match (
            get("ATTIO_WEBHOOK_SECRET_ARN"),
            get("ATTIO_WEBHOOK_SECRETS"),
        ) {
            (Some(secret_id), _) => SecretsConfig::SecretsManager {
                secret_id,
                refresh: Duration::from_secs(number("SECRETS_CACHE_SECS", 300)?),
            },
            (None, Some(list)) => {
                let secrets = crate::parse_secret_list(&list);
                if secrets.is_empty() {
                    return Err(ConfigError::NoSecrets);
                }
                SecretsConfig::Inline(secrets)
            }
            (None, None) => return Err(ConfigError::NoSecrets),
        };
        let policy = match get("SIGNATURE_POLICY") {
            None => SchemePolicy::default(),
            Some(value) => value.parse().map_err(|expected| ConfigError::Invalid {
                name: "SIGNATURE_POLICY",
                value,
                expected,
            })?,
        };
        let tolerance_secs = number("SIGNATURE_TOLERANCE_SECS", DEFAULT_TOLERANCE_SECS)?;
        let future_skew_secs = number("SIGNATURE_FUTURE_SKEW_SECS", DEFAULT_FUTURE_SKEW_SECS)?;
        let idempotency_table = get("IDEMPOTENCY_TABLE").ok_or(ConfigError::Missing {
            name: "IDEMPOTENCY_TABLE",
            what: "the DynamoDB idempotency table name",
        })?;
        let queues = QueueUrls::from_lookup(&lookup).map_err(ConfigError::Queues)?;
        Ok(Self {
            ingest,
            secrets,
            policy,
            tolerance_secs,
            future_skew_secs,
            idempotency_table,
            queues,
        })
    }

    /// A verifier over `secrets` with the configured scheme policy and clock tolerances.
    pub fn verifier(&self, secrets: Vec<WebhookSecret>) -> Verifier {
        Verifier::new(secrets, self.policy)
            .with_tolerance_secs(self.tolerance_secs)
            .with_future_skew_secs(self.future_skew_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_events::EventFamily;
    use std::collections::HashMap;

    /// The AWS names every deployment sets, so each test states only what it is about.
    fn deployed(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = EventFamily::ALL
            .iter()
            .map(|&f| {
                let name = QueueUrls::env_var(f);
                (name.to_owned(), format!("https://sqs.local/{name}"))
            })
            .collect();
        all.push(("IDEMPOTENCY_TABLE".into(), "keys".into()));
        all.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        all
    }

    fn from(pairs: Vec<(String, String)>) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs.into_iter().collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        from(deployed(pairs))
    }

    #[test]
    fn defaults_apply_when_only_a_secret_is_set() {
        let s = settings(&[("ATTIO_WEBHOOK_SECRETS", "a, b")]).unwrap();
        assert_eq!(s.ingest, IngestConfig::default());
        assert_eq!(s.policy, SchemePolicy::AcceptEither);
        assert_eq!(s.tolerance_secs, 300);
        assert!(matches!(s.secrets, SecretsConfig::Inline(ref list) if list.len() == 2));
        assert_eq!(s.idempotency_table, "keys");
        assert_eq!(
            s.queues.get(EventFamily::Tasks),
            Some("https://sqs.local/TASKS_QUEUE_URL")
        );
    }

    #[test]
    fn the_secrets_manager_arn_wins_over_inline_secrets() {
        let s = settings(&[
            ("ATTIO_WEBHOOK_SECRETS", "a"),
            (
                "ATTIO_WEBHOOK_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:1:secret:x",
            ),
            ("SIGNATURE_POLICY", "timestamped"),
        ])
        .unwrap();
        assert!(matches!(s.secrets, SecretsConfig::SecretsManager { .. }));
        assert_eq!(s.policy, SchemePolicy::RequireTimestamped);
    }

    #[test]
    fn mistakes_say_what_to_do() {
        assert_eq!(settings(&[]).unwrap_err(), ConfigError::NoSecrets);
        let err =
            settings(&[("ATTIO_WEBHOOK_SECRETS", "a"), ("MAX_BODY_BYTES", "lots")]).unwrap_err();
        assert!(err.to_string().contains("MAX_BODY_BYTES"), "{err}");
        let err = settings(&[
            ("ATTIO_WEBHOOK_SECRETS", "a"),
            ("SIGNATURE_POLICY", "maybe"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("timestamped"), "{err}");
    }

    #[test]
    fn missing_aws_names_are_named() {
        let without = |name: &str| {
            let pairs = deployed(&[("ATTIO_WEBHOOK_SECRETS", "a")])
                .into_iter()
                .filter(|(k, _)| k != name)
                .collect();
            from(pairs).unwrap_err().to_string()
        };
        let err = without("IDEMPOTENCY_TABLE");
        assert!(
            err.contains("IDEMPOTENCY_TABLE is required") && err.contains("DynamoDB"),
            "{err}"
        );
        let err = without("NOTES_QUEUE_URL");
        assert!(err.contains("set NOTES_QUEUE_URL"), "{err}");
        assert!(
            !err.contains("RECORDS_QUEUE_URL"),
            "only what is missing: {err}"
        );
    }

    #[test]
    fn the_verifier_gets_the_configured_policy_and_tolerance() {
        let s = settings(&[
            ("ATTIO_WEBHOOK_SECRETS", "a"),
            ("SIGNATURE_POLICY", "timestamped"),
            ("SIGNATURE_TOLERANCE_SECS", "1000"),
        ])
        .unwrap();
        let secret = WebhookSecret::new("a").unwrap();
        let verifier = s.verifier(vec![secret.clone()]);
        assert_eq!(verifier.policy(), SchemePolicy::RequireTimestamped);
        let body = b"{}";
        let signature = relay_signature::sign_timestamped(&secret, 0, body);
        let signed = relay_signature::SignedRequest {
            signature: Some(&signature),
            timestamp: Some("0"),
            body,
        };
        assert!(verifier.verify(&signed, 999).is_ok(), "within 1000 s");
        assert!(verifier.verify(&signed, 1001).is_err(), "past 1000 s");
    }
}
