use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The queue an event is routed to; one consumer function reads each (the "other" queue parks
/// types no consumer handles yet, so nothing Attio sends is ever dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventFamily {
    Records,
    ListEntries,
    Notes,
    Tasks,
    Other,
    /// HubSpot webhook events (the HubSpot → Attio direction). No consumer reads it yet: they
    /// are parked, visible in `status --show`, until the HubSpot → Attio consumer exists.
    Hubspot,
}

impl EventFamily {
    /// The families Attio events are routed to: the Attio ingest needs a queue for each.
    pub const ALL: [EventFamily; 5] = [
        Self::Records,
        Self::ListEntries,
        Self::Notes,
        Self::Tasks,
        Self::Other,
    ];

    /// Every queue the relay has: [`Self::ALL`] and the HubSpot ingest's `hubspot` queue (what
    /// an operator lists, inspects and replays).
    pub const EVERY: [EventFamily; 6] = [
        Self::Records,
        Self::ListEntries,
        Self::Notes,
        Self::Tasks,
        Self::Other,
        Self::Hubspot,
    ];

    /// Stable short name, used in queue names, logs and message attributes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Records => "records",
            Self::ListEntries => "list-entries",
            Self::Notes => "notes",
            Self::Tasks => "tasks",
            Self::Other => "other",
            Self::Hubspot => "hubspot",
        }
    }
}

impl fmt::Display for EventFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventFamily {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::EVERY
            .into_iter()
            .find(|family| family.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown queue {s:?}: use records, list-entries, notes, tasks, other or hubspot"
                )
            })
    }
}
