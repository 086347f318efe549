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
    /// The relay's HubSpot app id (`HUBSPOT_APP_ID`): its own changes come back with it as
    /// `sourceId` and are dropped unread.
    pub hubspot_app_id: Option<String>,
    /// The id of the relay's Attio API token (`ATTIO_TOKEN_ID`): the actor of the Attio events
    /// its own writes cause, dropped by the records consumer.
    pub attio_token_id: Option<String>,
    /// Two-way sync's conflicts table (`CONFLICTS_TABLE`).
    pub conflicts_table: Option<String>,
    /// What a HubSpot deletion does in Attio (`HUBSPOT_DELETIONS`: `ignore`, the default, or
    /// `delete`). Read here, at start-up, so a typo stops the function with its name instead
    /// of quietly ignoring deletions.
    pub hubspot_deletions: relay_sync::two_way::HubspotDeletions,
}

/// Which consumer asks for two-way sync, and so what it cannot start without.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwoWayUse {
    /// The records consumer: two-way only when the field mapping sends a property back
    /// (`both` or `hubspot_to_attio`); with none, nothing changes (no ledger reads) and no
    /// two-way variable is needed.
    IfMapped,
    /// The `hubspot` queue's consumer: it exists only for two-way sync, so every variable it
    /// needs is required, named in one startup error.
    Required,
}

/// What a consumer running two-way sync is wired with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwoWayWiring {
    pub conflicts_table: String,
    pub settings: relay_sync::two_way::TwoWaySettings,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("{0}")]
    Missing(String),
    #[error("{name} must be a whole number of seconds, not {value:?}")]
    Seconds { name: &'static str, value: String },
    #[error("field mapping: {0}")]
    Mapping(#[from] relay_sync::FieldMappingError),
    #[error("{0}")]
    Invalid(String),
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
            hubspot_app_id: get("HUBSPOT_APP_ID"),
            attio_token_id: get("ATTIO_TOKEN_ID"),
            conflicts_table: get("CONFLICTS_TABLE"),
            hubspot_deletions: get("HUBSPOT_DELETIONS")
                .map(|v| relay_sync::two_way::HubspotDeletions::parse(&v))
                .transpose()
                .map_err(SettingsError::Invalid)?
                .unwrap_or_default(),
        })
    }

    /// The two-way wiring `usage` calls for, checked at startup: `None` when the records
    /// consumer's mapping sends nothing back. Why required and not defaulted: without the
    /// conflicts table a conflict could not be kept, and without the two ids every one of
    /// the relay's own writes would come back to be read and compared (the ledger still
    /// settles them, at a read per echo), so a misconfigured stack fails loudly instead.
    pub fn two_way(&self, usage: TwoWayUse) -> Result<Option<TwoWayWiring>, SettingsError> {
        let flows_back = self.field_mapping.flows_back();
        if usage == TwoWayUse::IfMapped && !flows_back {
            return Ok(None);
        }
        let mut missing = Vec::new();
        if self.conflicts_table.is_none() {
            missing.push("CONFLICTS_TABLE (the conflicts table)");
        }
        if usage == TwoWayUse::Required {
            if self.hubspot_app_id.is_none() {
                missing.push(
                    "HUBSPOT_APP_ID (the HubSpot app's id: its own changes are dropped by it)",
                );
            }
            if self.attio_token_id.is_none() {
                missing.push("ATTIO_TOKEN_ID (the Attio API token's id: the actor of the relay's own Attio writes)");
            }
        }
        if !missing.is_empty() {
            let why = match usage {
                TwoWayUse::IfMapped => "the field mapping sends properties back from HubSpot",
                TwoWayUse::Required => "the HubSpot -> Attio consumer syncs two ways",
            };
            return Err(SettingsError::Missing(format!(
                "{why}; set {}",
                missing.join(", ")
            )));
        }
        if !flows_back {
            // Started, it would acknowledge every HubSpot event unread: edits made while the
            // mapping sends nothing back would be gone when it later does. Refusing leaves them
            // waiting on the queue (then its DLQ, 14 days, to replay), as the README promises.
            return Err(SettingsError::Missing(
                "the HubSpot -> Attio consumer needs a field mapping that sends a property back (FIELD_MAPPING with direction = \"both\" or \"hubspot_to_attio\"); its events wait on the queue until then".into(),
            ));
        }
        if self.attio_token_id.is_none() {
            tracing::warn!(
                "ATTIO_TOKEN_ID is not set: the Attio events the relay's own writes cause are read and settled by the ledger instead of dropped"
            );
        }
        Ok(Some(TwoWayWiring {
            conflicts_table: self.conflicts_table.clone().unwrap_or_default(),
            settings: relay_sync::two_way::TwoWaySettings {
                hubspot_app_id: self.hubspot_app_id.clone(),
                attio_token_id: self.attio_token_id.clone(),
                deletions: self.hubspot_deletions,
            },
        }))
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

    const BOTH: &str = r#"
[objects.people]
crm_object = "contacts"
[objects.people.properties]
email = "email_addresses"
firstname = { attribute = "name.first_name", direction = "both" }
"#;

    #[test]
    fn two_way_is_off_without_a_property_flowing_back_and_names_what_is_missing_when_on() {
        let plain = settings(&[("ATTIO_API_TOKEN", "t")]).expect("ok");
        assert_eq!(plain.two_way(TwoWayUse::IfMapped), Ok(None));

        let records = settings(&[("ATTIO_API_TOKEN", "t"), ("FIELD_MAPPING", BOTH)]).expect("ok");
        let err = records
            .two_way(TwoWayUse::IfMapped)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "the field mapping sends properties back from HubSpot; set CONFLICTS_TABLE (the conflicts table)"
        );

        let hubspot = settings(&[
            ("ATTIO_API_TOKEN", "t"),
            ("FIELD_MAPPING", BOTH),
            ("CONFLICTS_TABLE", "conflicts"),
        ])
        .expect("ok");
        let err = hubspot
            .two_way(TwoWayUse::Required)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("HUBSPOT_APP_ID") && err.contains("ATTIO_TOKEN_ID"),
            "{err}"
        );
        assert!(!err.contains("CONFLICTS_TABLE"), "{err}");
        let wired = hubspot
            .two_way(TwoWayUse::IfMapped)
            .expect("ok")
            .expect("on");
        assert_eq!(wired.conflicts_table, "conflicts");

        let full = settings(&[
            ("ATTIO_API_TOKEN", "t"),
            ("FIELD_MAPPING", BOTH),
            ("CONFLICTS_TABLE", "conflicts"),
            ("HUBSPOT_APP_ID", " 4242 "),
            ("ATTIO_TOKEN_ID", "tok-1"),
        ])
        .expect("ok");
        let wired = full.two_way(TwoWayUse::Required).expect("ok").expect("on");
        assert_eq!(wired.settings.hubspot_app_id.as_deref(), Some("4242"));
        assert_eq!(wired.settings.attio_token_id.as_deref(), Some("tok-1"));

        // Everything set but nothing flows back: hubspot-sync refuses to start (its events
        // wait) instead of acknowledging every event unread; records just runs one-way.
        let one_way = settings(&[
            ("ATTIO_API_TOKEN", "t"),
            ("CONFLICTS_TABLE", "conflicts"),
            ("HUBSPOT_APP_ID", "4242"),
            ("ATTIO_TOKEN_ID", "tok-1"),
        ])
        .expect("ok");
        let err = one_way
            .two_way(TwoWayUse::Required)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sends a property back"), "{err}");
        assert!(one_way.two_way(TwoWayUse::IfMapped).expect("ok").is_none());
        assert_eq!(
            wired.settings.deletions,
            relay_sync::two_way::HubspotDeletions::Ignore,
            "deletions are ignored unless asked"
        );
    }

    #[test]
    fn hubspot_deletions_is_ignore_or_delete_and_anything_else_is_refused_by_name() {
        let delete = settings(&[
            ("ATTIO_API_TOKEN", "t"),
            ("FIELD_MAPPING", BOTH),
            ("CONFLICTS_TABLE", "conflicts"),
            ("HUBSPOT_DELETIONS", " Delete "),
        ])
        .expect("ok");
        let wired = delete
            .two_way(TwoWayUse::IfMapped)
            .expect("ok")
            .expect("on");
        assert_eq!(
            wired.settings.deletions,
            relay_sync::two_way::HubspotDeletions::Delete
        );
        let err = settings(&[("ATTIO_API_TOKEN", "t"), ("HUBSPOT_DELETIONS", "archive")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "HUBSPOT_DELETIONS must be ignore or delete, not \"archive\""
        );
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
