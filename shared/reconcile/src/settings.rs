//! The reconcile function's configuration, from environment variables (README, "Reconcile").
//! The Attio and HubSpot tokens, API roots, field mapping and mappings table are read as the
//! consumers read them ([`relay_consumer::ConsumerSettings`]).

use std::time::Duration;

use relay_consumer::{ConsumerSettings, SettingsError, TokenSource};
use relay_sync::FieldMapping;

use crate::Share;

/// Share of the rate budgets (0 < share ≤ 1; default 0.1).
pub const SHARE_VAR: &str = "RECONCILE_SHARE";
/// The relay's webhook ids, comma-separated; empty: every webhook delivering to the target.
pub const WEBHOOK_IDS_VAR: &str = "ATTIO_WEBHOOK_IDS";
/// The ingest Function URL, to find the relay's webhooks by target.
pub const TARGET_URL_VAR: &str = "RELAY_TARGET_URL";
/// Objects to re-sync, comma-separated; empty: every object of the field mapping.
pub const OBJECTS_VAR: &str = "RECONCILE_OBJECTS";
/// Seconds before the invocation's deadline after which no page is started.
pub const STOP_BEFORE_VAR: &str = "RECONCILE_STOP_BEFORE_SECS";

/// Every variable the function reads besides the consumers' (the template test checks them).
pub const ENV_VARS: [&str; 5] = [
    SHARE_VAR,
    WEBHOOK_IDS_VAR,
    TARGET_URL_VAR,
    OBJECTS_VAR,
    STOP_BEFORE_VAR,
];

/// Default reserve before the deadline. A page is one Attio query (its call budget is 20 s)
/// and up to five HubSpot batch upserts paced to the share (10 requests per 10 s at 0.1), plus
/// the saves: two minutes leaves room for a slow page and the position write.
pub const DEFAULT_STOP_BEFORE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    pub attio_token: TokenSource,
    pub hubspot_token: TokenSource,
    pub attio_api_url: Option<String>,
    pub hubspot_api_url: Option<String>,
    pub field_mapping: FieldMapping,
    pub mappings_table: String,
    pub share: Share,
    pub webhook_ids: Vec<String>,
    pub target_url: Option<String>,
    /// The objects to walk (never empty once loaded: the field mapping's by default).
    pub objects: Vec<String>,
    pub stop_before: Duration,
    /// Two-way sync, when the field mapping sends a property back: pages then go through the
    /// ledger (`SyncContext::sync_page`), so a pass never overwrites a newer HubSpot value.
    pub two_way: Option<relay_consumer::TwoWayWiring>,
}

fn list(value: Option<String>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl ReconcileSettings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let share = match get(SHARE_VAR) {
            Some(text) => Share::parse(&text)
                .map_err(|e| SettingsError::Missing(format!("{SHARE_VAR}: {e}")))?,
            None => Share::default(),
        };
        let stop_before =
            match get(STOP_BEFORE_VAR) {
                Some(text) => Duration::from_secs(text.parse().map_err(|e| {
                    SettingsError::Missing(format!("{STOP_BEFORE_VAR}={text:?}: {e}"))
                })?),
                None => DEFAULT_STOP_BEFORE,
            };
        let consumer = ConsumerSettings::from_lookup(&lookup)?;
        let two_way = consumer.two_way(relay_consumer::TwoWayUse::IfMapped)?;
        let hubspot_token = consumer.hubspot_token.ok_or_else(|| {
            SettingsError::Missing(
                "HUBSPOT_TOKEN_SECRET_ARN (or HUBSPOT_TOKEN) is required: reconcile writes to HubSpot".into(),
            )
        })?;
        let mappings_table = consumer.mappings_table.ok_or_else(|| {
            SettingsError::Missing(
                "MAPPINGS_TABLE is required: the id mappings, and where the walk's position is kept".into(),
            )
        })?;
        let mut objects = list(get(OBJECTS_VAR));
        if objects.is_empty() {
            objects = consumer.field_mapping.objects.keys().cloned().collect();
        }
        Ok(Self {
            attio_token: consumer.attio_token,
            hubspot_token,
            attio_api_url: consumer.attio_api_url,
            hubspot_api_url: consumer.hubspot_api_url,
            field_mapping: consumer.field_mapping,
            mappings_table,
            share,
            webhook_ids: list(get(WEBHOOK_IDS_VAR)),
            target_url: get(TARGET_URL_VAR),
            objects,
            stop_before,
            two_way,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<ReconcileSettings, SettingsError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ReconcileSettings::from_lookup(|name| vars.get(name).cloned())
    }

    const BASE: [(&str, &str); 3] = [
        ("ATTIO_API_TOKEN", "a"),
        ("HUBSPOT_TOKEN", "h"),
        ("MAPPINGS_TABLE", "t"),
    ];

    #[test]
    fn defaults_walk_every_mapped_object_at_a_tenth_of_the_budgets() {
        let s = settings(&BASE).expect("settings");
        assert_eq!(s.share, Share::default());
        assert_eq!(s.stop_before, DEFAULT_STOP_BEFORE);
        let mut objects = s.objects.clone();
        objects.sort();
        assert_eq!(objects, ["companies", "deals", "people"]);
        assert!(s.webhook_ids.is_empty() && s.target_url.is_none());
        assert!(
            !format!("{s:?}").contains("\"h\""),
            "tokens are redacted in Debug: {s:?}"
        );
    }

    #[test]
    fn every_variable_is_read_and_a_bad_share_is_refused() {
        let mut vars = BASE.to_vec();
        vars.extend([
            (SHARE_VAR, "0.25"),
            (WEBHOOK_IDS_VAR, "wh-1, wh-2,"),
            (TARGET_URL_VAR, "https://x.lambda-url.eu-west-1.on.aws/"),
            (OBJECTS_VAR, "people"),
            (STOP_BEFORE_VAR, "90"),
        ]);
        let s = settings(&vars).expect("settings");
        assert_eq!(s.share.get(), 0.25);
        assert_eq!(s.webhook_ids, ["wh-1", "wh-2"]);
        assert_eq!(s.objects, ["people"]);
        assert_eq!(s.stop_before, Duration::from_secs(90));
        assert!(s.target_url.is_some());

        let mut bad = BASE.to_vec();
        bad.push((SHARE_VAR, "2"));
        assert!(settings(&bad).is_err());
        assert!(settings(&BASE[..2]).is_err(), "no mappings table");
    }
}
