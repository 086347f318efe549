//! The budget settings a Lambda function reads from its environment, and the buckets they make.

use std::sync::Arc;

use crate::{ApiBudget, Limits, RateBudget};

/// `RATE_BUDGET=off` turns the shared budget off (each container paces alone, as before);
/// `RATE_BUDGET_HEADROOM` (default 0.8 for Attio, 0.85 for HubSpot) is the share of each
/// published limit the whole deployment aims at; `HUBSPOT_REQUESTS_PER_10S` (default 100,
/// the smallest portal's) is the portal's limit — 190 on the larger tiers.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetSettings {
    pub enabled: bool,
    pub headroom: Option<f64>,
    pub hubspot_per_10s: f64,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            headroom: None,
            hubspot_per_10s: 100.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} must be {expected}, not {value:?}")]
pub struct SettingsError {
    pub name: &'static str,
    pub expected: &'static str,
    pub value: String,
}

/// The three budgets a process uses.
#[derive(Debug, Clone)]
pub struct Budgets {
    pub attio_reads: ApiBudget,
    pub attio_writes: ApiBudget,
    pub hubspot: ApiBudget,
}

impl BudgetSettings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut settings = Self::default();
        if let Some(value) = get("RATE_BUDGET") {
            settings.enabled = match value.as_str() {
                "shared" | "on" => true,
                "off" => false,
                _ => {
                    return Err(SettingsError {
                        name: "RATE_BUDGET",
                        expected: "shared or off",
                        value,
                    });
                }
            };
        }
        if let Some(value) = get("RATE_BUDGET_HEADROOM") {
            settings.headroom = Some(
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|h| *h > 0.0 && *h <= 1.0)
                    .ok_or(SettingsError {
                        name: "RATE_BUDGET_HEADROOM",
                        expected: "a number above 0 and at most 1",
                        value,
                    })?,
            );
        }
        if let Some(value) = get("HUBSPOT_REQUESTS_PER_10S") {
            settings.hubspot_per_10s =
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|n| *n >= 1.0)
                    .ok_or(SettingsError {
                        name: "HUBSPOT_REQUESTS_PER_10S",
                        expected: "a number of requests (100 or 190 by HubSpot tier)",
                        value,
                    })?;
        }
        Ok(settings)
    }

    /// One limit set per API with these settings.
    pub fn limits(&self) -> [Limits; 3] {
        let headroom = |l: Limits| match self.headroom {
            Some(h) => l.with_headroom(h),
            None => l,
        };
        [
            headroom(Limits::attio_reads()),
            headroom(Limits::attio_writes()),
            Limits::hubspot(self.hubspot_per_10s, self.headroom.unwrap_or(0.85)),
        ]
    }

    /// The budgets on `store`, or `None` when turned off.
    pub fn budgets(&self, store: Arc<dyn RateBudget>) -> Option<Budgets> {
        if !self.enabled {
            return None;
        }
        let [reads, writes, hubspot] = self.limits();
        Some(Budgets {
            attio_reads: ApiBudget::new(Arc::clone(&store), reads),
            attio_writes: ApiBudget::new(Arc::clone(&store), writes),
            hubspot: ApiBudget::new(store, hubspot),
        })
    }
}

impl Budgets {
    /// The same buckets, each taker capped at `share` of the rate in force (backfill,
    /// reconcile).
    pub fn with_share(self, share: f64) -> Self {
        Self {
            attio_reads: self.attio_reads.with_share(share),
            attio_writes: self.attio_writes.with_share(share),
            hubspot: self.hubspot.with_share(share),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<BudgetSettings, SettingsError> {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        BudgetSettings::from_lookup(|name| vars.get(name).map(|v| (*v).to_owned()))
    }

    #[test]
    fn settings_default_and_can_be_set() {
        let defaults = settings(&[]).expect("defaults");
        assert_eq!(defaults, BudgetSettings::default());
        let [reads, _, hubspot] = defaults.limits();
        assert_eq!((reads.rate_per_s, hubspot.rate_per_s), (80.0, 8.5));

        let set = settings(&[
            ("RATE_BUDGET_HEADROOM", "0.5"),
            ("HUBSPOT_REQUESTS_PER_10S", "190"),
        ])
        .expect("set");
        let [reads, writes, hubspot] = set.limits();
        assert_eq!((reads.rate_per_s, writes.rate_per_s), (50.0, 12.5));
        assert_eq!(hubspot.rate_per_s, 9.5);
        assert!(!settings(&[("RATE_BUDGET", "off")]).expect("off").enabled);
        assert_eq!(
            settings(&[("RATE_BUDGET_HEADROOM", "2")]).unwrap_err().name,
            "RATE_BUDGET_HEADROOM"
        );
    }
}
