//! Conflicts: a field changed on both sides since its last sync.
//!
//! The later change wins and is synced to the other side at once ("most recent wins", the
//! default of two-way sync tools); the losing value is not dropped silently but kept here, with
//! both values and times, until an operator looks (`attio-relay conflicts list|show`, the
//! dashboard) and keeps one (`attio-relay conflicts resolve --keep attio|hubspot`), which writes
//! the kept value to the other side if it lost.
//!
//! The values are personal data an operator needs to decide: they are stored here (DynamoDB
//! encrypts at rest; locally the SQLite file) and shown by the CLI, never logged.
//!
//! Adapters: DynamoDB (its own table, `ConflictsTable` in the SAM stack, keyed by [`Conflict::id`]),
//! SQLite (`attio-relay dev`, a table in the local file) and memory (tests).

use std::future::Future;

use relay_crm::CrmObject;

use crate::MappingError;

/// A side of the sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    Attio,
    Hubspot,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Attio => "attio",
            Self::Hubspot => "hubspot",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "attio" => Some(Self::Attio),
            "hubspot" => Some(Self::Hubspot),
            _ => None,
        }
    }

    pub fn other(self) -> Self {
        match self {
            Self::Attio => Self::Hubspot,
            Self::Hubspot => Self::Attio,
        }
    }
}

/// One side's value in a conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictValue {
    /// In HubSpot's form (the mapped property's text); `None`: the field was emptied.
    pub value: Option<String>,
    /// When that side changed it (Attio's `active_from`, HubSpot's property history timestamp),
    /// in milliseconds since the epoch.
    pub changed_at_ms: i64,
}

/// How a conflict was settled by an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The side whose value was kept.
    pub kept: Side,
    pub at_ms: i64,
}

/// A field that changed on both sides since its last sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// Stable for the same conflict seen twice (a redelivered message records it again):
    /// derived from object, record, property and both change times — see [`Conflict::derive_id`].
    pub id: String,
    pub object: CrmObject,
    pub attio_record_id: String,
    pub crm_id: String,
    /// The HubSpot property (the mapping's key).
    pub property: String,
    /// The Attio attribute it maps to.
    pub attribute: String,
    pub attio: ConflictValue,
    pub hubspot: ConflictValue,
    /// The side whose value was synced (the later change).
    pub winner: Side,
    pub detected_at_ms: i64,
    pub resolution: Option<Resolution>,
}

impl Conflict {
    /// The id for a conflict: SHA-256 over its identifying fields, first 12 bytes, hex.
    pub fn derive_id(
        object: CrmObject,
        attio_record_id: &str,
        property: &str,
        attio_changed_at_ms: i64,
        hubspot_changed_at_ms: i64,
    ) -> String {
        use sha2::Digest;
        let text = format!(
            "{object}#{attio_record_id}#{property}#{attio_changed_at_ms}#{hubspot_changed_at_ms}"
        );
        hex::encode(&sha2::Sha256::digest(text.as_bytes())[..12])
    }

    pub fn loser(&self) -> Side {
        self.winner.other()
    }
}

/// Which conflicts a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConflictFilter {
    /// Not yet resolved by an operator (the default).
    #[default]
    Open,
    Resolved,
    All,
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConflictPage {
    pub conflicts: Vec<Conflict>,
    /// Pass back to read the next page; `None` on the last.
    pub next: Option<String>,
}

/// The port.
pub trait ConflictStore: Send + Sync {
    /// Stores a conflict; storing the same id again changes nothing (idempotent).
    fn record(&self, conflict: &Conflict) -> impl Future<Output = Result<(), MappingError>> + Send;

    /// Up to `limit` conflicts matching `filter`, newest detected first, from `after` (a
    /// previous page's `next`).
    fn list(
        &self,
        filter: ConflictFilter,
        limit: usize,
        after: Option<&str>,
    ) -> impl Future<Output = Result<ConflictPage, MappingError>> + Send;

    /// One conflict by id (a unique prefix of at least 6 characters is accepted by the CLI,
    /// not here).
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<Conflict>, MappingError>> + Send;

    /// Marks a conflict resolved. Resolving a resolved conflict again replaces the resolution.
    fn resolve(
        &self,
        id: &str,
        resolution: &Resolution,
    ) -> impl Future<Output = Result<(), MappingError>> + Send;
}
