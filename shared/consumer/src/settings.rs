//! Consumer configuration, from environment variables (see the README's table).

use std::time::Duration;

use relay_sync::FieldMapping;

/// A token given inline (local runs) or as a Secrets Manager secret holding it.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenSource {
    Inline(String),
    Secret(String),
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("Inline(<redacted>)"),
            Self::Secret(arn) => write!(f, "Secret({arn})"),
        }
    }
}

/// Everything a consumer reads at start-up.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub attio_token: TokenSource,
    /// None: no CRM configured (local runs write to the outbox instead).
    pub hubspot_token: Option<TokenSource>,
    pub attio_api_url: Option<String>,
    pub hubspot_api_url: Option<String>,
    pub field_mapping: FieldMapping,
    pub mappings_table: Option<String>,
    pub dead_letter_queue_url: Option<String>,
    /// The queue this consumer receives from; needed to hold messages (401/403 from the CRM).
    pub source_queue_url: Option<String>,
    /// Time left before the invocation's deadline under which no new group is started
    /// (`DEADLINE_MARGIN_SECS`, default [`crate::DEFAULT_DEADLINE_MARGIN`]).
    pub deadline_margin: Duration,
    /// How long a token read from its secret is used before it is read again
    /// (`TOKEN_CACHE_SECS`, default 300); a 401 re-reads it at once.
    pub token_cache: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("{0}")]
    Missing(String),
    #[error("{name} must be a whole number of seconds, not {value:?}")]
    Seconds { name: &'static str, value: String },
    #[error("field mapping: {0}")]
    Mapping(#[from] relay_sync::FieldMappingError),
}

fn token(
    lookup: &impl Fn(&str) -> Option<String>,
    inline: &str,
    secret: &str,
) -> Option<TokenSource> {
    let get = |name: &str| {
        lookup(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    get(secret)
        .map(TokenSource::Secret)
        .or_else(|| get(inline).map(TokenSource::Inline))
}

/// An optional whole number of seconds.
fn seconds(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<Duration>, SettingsError> {
    get(name)
        .map(|value| {
            value
                .parse()
                .map(Duration::from_secs)
                .map_err(|_| SettingsError::Seconds { name, value })
        })
        .transpose()
}

impl ConsumerSettings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let attio_token = token(&lookup, "ATTIO_API_TOKEN", "ATTIO_API_TOKEN_SECRET_ARN").ok_or_else(|| {
            SettingsError::Missing(
                "set ATTIO_API_TOKEN_SECRET_ARN (Secrets Manager) or ATTIO_API_TOKEN: consumers read current state from the Attio API".into(),
            )
        })?;
        let field_mapping = FieldMapping::load(
            get("FIELD_MAPPING").as_deref(),
            get("FIELD_MAPPING_FILE")
                .as_deref()
                .map(std::path::Path::new),
        )?;
        Ok(Self {
            attio_token,
            hubspot_token: token(&lookup, "HUBSPOT_TOKEN", "HUBSPOT_TOKEN_SECRET_ARN"),
            attio_api_url: get("ATTIO_API_URL"),
            hubspot_api_url: get("HUBSPOT_API_URL"),
            field_mapping,
            mappings_table: get("MAPPINGS_TABLE"),
            dead_letter_queue_url: get("DEAD_LETTER_QUEUE_URL"),
            source_queue_url: get("SOURCE_QUEUE_URL"),
            deadline_margin: seconds(&get, "DEADLINE_MARGIN_SECS")?
                .unwrap_or(crate::DEFAULT_DEADLINE_MARGIN),
            token_cache: seconds(&get, "TOKEN_CACHE_SECS")?
                .unwrap_or(relay_credentials::DEFAULT_TTL),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<ConsumerSettings, SettingsError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ConsumerSettings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn the_deadline_margin_and_token_cache_default_and_can_be_set() {
        let defaults = settings(&[("ATTIO_API_TOKEN_SECRET_ARN", "arn:attio")]).expect("ok");
        assert_eq!(defaults.deadline_margin, Duration::from_secs(50));
        assert_eq!(defaults.token_cache, Duration::from_secs(300));
        assert_eq!(
            defaults.attio_token,
            TokenSource::Secret("arn:attio".into())
        );

        let set = settings(&[
            ("ATTIO_API_TOKEN", "inline"),
            ("DEADLINE_MARGIN_SECS", "20"),
            ("TOKEN_CACHE_SECS", " 60 "),
        ])
        .expect("ok");
        assert_eq!(set.deadline_margin, Duration::from_secs(20));
        assert_eq!(set.token_cache, Duration::from_secs(60));
        assert_eq!(format!("{:?}", set.attio_token), "Inline(<redacted>)");
    }

    #[test]
    fn a_duration_that_is_not_whole_seconds_is_refused_by_name() {
        let err = settings(&[("ATTIO_API_TOKEN", "t"), ("TOKEN_CACHE_SECS", "5m")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "TOKEN_CACHE_SECS must be a whole number of seconds, not \"5m\""
        );
    }
}
