//! Where synced Attio state goes: the [`CrmSink`] port and its adapters.
//!
//! * [`HubSpotSink`] — HubSpot's CRM v3 API: records are upserted in batches on a unique
//!   `attio_record_id` property (idempotent by construction); notes and tasks have no
//!   idempotent create, so callers keep an Attio id → HubSpot id mapping and update instead of
//!   creating twice.
//! * [`OutboxSink`] — appends the operations it would make to a JSONL file: the embedded
//!   default, so a local run needs no HubSpot account and shows exactly what would be sent.
//! * [`MemoryCrm`] — records every call in memory and fails the ones it is told to: for tests
//!   of the sync handlers without a server.
//!
//! Errors classify themselves ([`ErrorClass`]): transient, permanent, or an authentication
//! failure that no retry fixes until an operator replaces the token or adds a scope.
//!
//! The port speaks in CRM terms (object types, property maps, ids); mapping Attio records to
//! properties happens in the sync crate.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use serde::{Deserialize, Serialize};

mod associations;
mod hubspot;
mod markers;
mod memory;
mod outbox;
mod owners;
mod source;

pub use hubspot::{
    BUDGET_POLICY, DEFAULT_BASE_URL as HUBSPOT_API_URL, HubSpotConfig, HubSpotSink, ID_PROPERTY,
};
pub use markers::marker_property;
pub use memory::{CrmOp, Link, MemoryCrm, MsClock};
pub use outbox::{OutboxEntry, OutboxSink};
pub use source::{CrmPage, CrmRecordState, CrmSource, PropertyChange};

/// The CRM object types attio-relay writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CrmObject {
    Contacts,
    Companies,
    Deals,
    Notes,
    Tasks,
}

impl CrmObject {
    /// HubSpot's path segment for the object type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Contacts => "contacts",
            Self::Companies => "companies",
            Self::Deals => "deals",
            Self::Notes => "notes",
            Self::Tasks => "tasks",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Contacts,
            Self::Companies,
            Self::Deals,
            Self::Notes,
            Self::Tasks,
        ]
        .into_iter()
        .find(|o| o.as_str() == name)
    }
}

impl fmt::Display for CrmObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An object's id in the CRM.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CrmId(pub String);

impl fmt::Display for CrmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Property values to write, by CRM property name.
pub type Properties = BTreeMap<String, String>;

/// One record to create or update, keyed by its Attio record id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordUpsert {
    pub attio_record_id: String,
    pub properties: Properties,
}

/// A link from a note, task or record to a record: what it is associated with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Association {
    pub to: CrmObject,
    pub id: CrmId,
}

/// What retrying a failed call or input can achieve; the sync crate turns it into the
/// message's disposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Rate limits, 5xx, timeouts, locks: the same request may succeed later.
    Transient,
    /// The CRM refused the data itself (validation, unknown property, conflict that cannot be
    /// resolved): the same request fails again until an operator changes something.
    Permanent,
    /// 401/403: the token is wrong, expired or lacks a scope. Every call fails the same way
    /// until an operator fixes the credentials, so retrying quickly only burns receives, and
    /// dead-lettering at once would flood the DLQ with messages that are fine.
    Auth,
}

/// One input of a batch the CRM refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemFailure {
    pub attio_record_id: String,
    /// The CRM's error category (HubSpot: `VALIDATION_ERROR`, `CONFLICT`, ...), when given.
    pub category: Option<String>,
    pub message: String,
    pub class: ErrorClass,
    /// For a uniqueness conflict (a contact with this email exists): the object that holds
    /// the value, so the caller can adopt it instead of creating a second one.
    pub existing: Option<CrmId>,
}

impl ItemFailure {
    /// True when retrying the same input cannot succeed (validation, unknown property).
    pub fn is_permanent(&self) -> bool {
        self.class == ErrorClass::Permanent
    }
}

/// What a batch upsert did: the CRM id of every accepted input, and the refused ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpsertReport {
    pub ids: BTreeMap<String, CrmId>,
    pub failures: Vec<ItemFailure>,
}

#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    /// Rate limited beyond what this call may wait; retry later (the message goes back to SQS).
    #[error("CRM rate limit ({policy}) reached; retry after {retry_after_secs}s")]
    RateLimited {
        policy: String,
        retry_after_secs: u64,
    },
    /// The CRM refused the request itself (bad token, bad property, bad association).
    #[error(
        "CRM refused {operation}: HTTP {status}{}: {message}",
        category_suffix(category)
    )]
    Rejected {
        operation: String,
        status: u16,
        category: Option<String>,
        message: String,
    },
    /// The object does not exist (e.g. archived already).
    #[error("CRM object not found during {operation}")]
    NotFound { operation: String },
    /// Network failure, timeout or 5xx: retry later.
    #[error("CRM unavailable during {operation}: {message}")]
    Unavailable { operation: String, message: String },
    /// A write that is not idempotent (creating a note or task) was sent, and no answer says
    /// whether it was applied: a 5xx, a timeout or a dropped connection. HubSpot may hold the
    /// object, so the caller must look for it ([`CrmSink::find_by_marker`]) before creating
    /// again; retrying blindly is how one note becomes two. Transient: the retry resolves it.
    #[error("CRM outcome unknown for {operation}: {message}; it may have been applied")]
    OutcomeUnknown { operation: String, message: String },
    #[error("local outbox failed: {0}")]
    Outbox(#[from] std::io::Error),
}

fn category_suffix(category: &Option<String>) -> String {
    category
        .as_deref()
        .map(|c| format!(" {c}"))
        .unwrap_or_default()
}

/// Classifies a refusal by HTTP status and HubSpot `category`
/// (https://developers.hubspot.com/docs/api-reference/error-handling): 401/403 and the
/// authentication categories are [`ErrorClass::Auth`]; 408, 423 (a lock that lasts about 2 s),
/// 429, 477 (portal migration in progress) and 5xx are transient; every other 4xx —
/// `VALIDATION_ERROR`, `CONFLICT`, `OBJECT_NOT_FOUND`, `INVALID_PARAMS`, ... — is permanent.
pub fn classify(status: u16, category: Option<&str>) -> ErrorClass {
    const AUTH_CATEGORIES: [&str; 4] = [
        "INVALID_AUTHENTICATION",
        "EXPIRED_AUTHENTICATION",
        "MISSING_SCOPES",
        "REVOKED_AUTHENTICATION",
    ];
    const TRANSIENT_CATEGORIES: [&str; 2] = ["RATE_LIMITS", "LOCKED"];
    if matches!(status, 401 | 403) || category.is_some_and(|c| AUTH_CATEGORIES.contains(&c)) {
        ErrorClass::Auth
    } else if matches!(status, 408 | 423 | 429 | 477)
        || status >= 500
        || category.is_some_and(|c| TRANSIENT_CATEGORIES.contains(&c))
    {
        ErrorClass::Transient
    } else {
        ErrorClass::Permanent
    }
}

impl CrmError {
    /// Whether retrying can help, and how long the wait should be.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Rejected {
                status, category, ..
            } => classify(*status, category.as_deref()),
            Self::NotFound { .. } => ErrorClass::Permanent,
            Self::RateLimited { .. }
            | Self::Unavailable { .. }
            | Self::OutcomeUnknown { .. }
            | Self::Outbox(_) => ErrorClass::Transient,
        }
    }

    /// True when retrying the same request cannot succeed.
    pub fn is_permanent(&self) -> bool {
        self.class() == ErrorClass::Permanent
    }
}

/// The port the consumers write through.
pub trait CrmSink: Send + Sync {
    /// Creates or updates records by Attio record id, in batches the adapter sizes.
    fn upsert_records(
        &self,
        object: CrmObject,
        records: &[RecordUpsert],
    ) -> impl Future<Output = Result<UpsertReport, CrmError>> + Send;

    /// Creates a note or task with its associations; not idempotent: callers keep a mapping,
    /// and set the object's [`marker_property`] so an attempt whose answer was lost can be
    /// found. Adapters never repeat it on their own: a failure after the request may have been
    /// applied is [`CrmError::OutcomeUnknown`].
    fn create(
        &self,
        object: CrmObject,
        properties: &Properties,
        associations: &[Association],
    ) -> impl Future<Output = Result<CrmId, CrmError>> + Send;

    /// The ids of every `object` (a note or task) whose [`marker_property`] is `attio_id`,
    /// oldest first: how an earlier create whose outcome is unknown is found. HubSpot's search
    /// is eventually consistent, so callers only ask about attempts older than a settle delay.
    fn find_by_marker(
        &self,
        object: CrmObject,
        attio_id: &str,
    ) -> impl Future<Output = Result<Vec<CrmId>, CrmError>> + Send;

    /// Updates properties of an existing object.
    fn update(
        &self,
        object: CrmObject,
        id: &CrmId,
        properties: &Properties,
    ) -> impl Future<Output = Result<(), CrmError>> + Send;

    /// Reads the named properties of one object; `None` when it does not exist. Adoption
    /// reads an existing contact's `attio_record_id` before claiming it.
    fn read(
        &self,
        object: CrmObject,
        id: &CrmId,
        properties: &[&str],
    ) -> impl Future<Output = Result<Option<Properties>, CrmError>> + Send;

    /// Archives (soft-deletes) an object; archiving a missing object succeeds.
    fn archive(
        &self,
        object: CrmObject,
        id: &CrmId,
    ) -> impl Future<Output = Result<(), CrmError>> + Send;

    /// Merges `duplicate` into `primary`; returns the merged object's id, which is usually NEW
    /// (HubSpot keeps `primary` only with Primary ID Preservation): callers re-point every
    /// mapping of either id to it. The merged object holds both objects' notes, tasks and
    /// associations (HubSpot moves them).
    fn merge(
        &self,
        object: CrmObject,
        primary: &CrmId,
        duplicate: &CrmId,
    ) -> impl Future<Output = Result<CrmId, CrmError>> + Send;

    /// Links two records with the CRM's default (most generic) association type: a contact or
    /// deal to its company, a deal to its contacts. Idempotent — linking a linked pair again
    /// changes nothing — so a redelivered message may link again. [`Self::dissociate`] removes one.
    fn associate(
        &self,
        from: CrmObject,
        from_id: &CrmId,
        to: CrmObject,
        to_id: &CrmId,
    ) -> impl Future<Output = Result<(), CrmError>> + Send;

    /// Removes every association between two records (HubSpot has no call that removes only
    /// the default one: removing it removes the labelled ones too), so callers remove only
    /// pairs they associated themselves. Idempotent: removing a pair that is not associated,
    /// or whose record is gone, succeeds.
    fn dissociate(
        &self,
        from: CrmObject,
        from_id: &CrmId,
        to: CrmObject,
        to_id: &CrmId,
    ) -> impl Future<Output = Result<(), CrmError>> + Send;

    /// The id of the CRM owner (the user records and activities are assigned to, HubSpot's
    /// `hubspot_owner_id`) whose email is `email`; `None` when the CRM has no such owner.
    /// Uncached: the sync caches answers per container. The default knows no owners — a sink
    /// without users (the local outbox) leaves owner properties out.
    fn owner_by_email(
        &self,
        email: &str,
    ) -> impl Future<Output = Result<Option<CrmId>, CrmError>> + Send {
        let _ = email;
        std::future::ready(Ok(None))
    }
}
