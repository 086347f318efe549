//! The sync ledger: what each two-way field held when it was last synced, per record.
//!
//! Two-way sync needs to know, for every field that flows both ways, the value both sides agreed
//! on at the last sync. With it a change is told from an echo, and a conflict from a plain
//! change:
//!
//! * a value equal to the ledger's is no change — in particular the relay's own write coming
//!   back as a webhook (HubSpot's `propertyChange` for a property the relay set, Attio's
//!   `record.updated` for a value the relay wrote) is dropped, so nothing ping-pongs;
//! * a side whose value differs from the ledger's changed since the last sync; when both sides
//!   did, it is a conflict and the later change wins (`relay_sync`'s `two_way` rules).
//!
//! Values are kept as fingerprints (a digest of the normalised value, see [`fingerprint`]), not
//! as text: the ledger sits beside the mappings, and personal data has no reason to be copied
//! there. The conflicts table keeps the two values of a conflict, where an operator needs them.
//!
//! Each entry keeps the value's fingerprint as HubSpot holds it and, when Attio stores it in
//! another form, as Attio holds it ([`Synced::attio_fingerprint`]).
//!
//! Storage key: `"{crm object}#{attio record id}#synced"`, a derived key beside the mapping's own,
//! as `#links` and `#deleted` are. Adapters: the three mapping stores.

use std::collections::BTreeMap;
use std::future::Future;

use relay_crm::CrmObject;

use crate::MappingError;

/// Which way a value last went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SyncDirection {
    /// Attio's value was written to HubSpot.
    AttioToHubspot,
    /// HubSpot's value was written to Attio.
    HubspotToAttio,
}

impl SyncDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AttioToHubspot => "attio_to_hubspot",
            Self::HubspotToAttio => "hubspot_to_attio",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "attio_to_hubspot" => Some(Self::AttioToHubspot),
            "hubspot_to_attio" => Some(Self::HubspotToAttio),
            _ => None,
        }
    }
}

/// One field's last synced value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    /// [`fingerprint`] of the value as HubSpot holds it (the mapped property's text; the empty
    /// string for no value). Both directions compare in HubSpot's form, so a value formatted
    /// one way and parsed back the other compares equal.
    pub fingerprint: String,
    /// When the value was written, in milliseconds since the epoch: the sync's clock.
    pub at_ms: i64,
    pub direction: SyncDirection,
    /// [`fingerprint`] of the same value as Attio holds it (read in HubSpot's form), when it
    /// differs from [`Self::fingerprint`]: Attio reformats what it is given (phone numbers to
    /// E.164, domains, email case), so the value agreed on can read differently on each
    /// side, and each side is compared with its own form — a reformatting never reads as a
    /// change. `None`: both sides read the same (entries written before this field, too).
    pub attio_fingerprint: Option<String>,
}

impl Synced {
    /// The fingerprint Attio's side is compared with.
    pub fn attio_side(&self) -> &str {
        self.attio_fingerprint
            .as_deref()
            .unwrap_or(&self.fingerprint)
    }
}

/// A record's ledger: HubSpot property name → its last synced value.
pub type Ledger = BTreeMap<String, Synced>;

/// The storage key of a record's ledger.
pub fn ledger_key(object: CrmObject, attio_record_id: &str) -> String {
    format!("{object}#{attio_record_id}#synced")
}

/// A short, stable digest of a value in HubSpot's form: SHA-256 of the trimmed text, first 16
/// bytes, hex. `None` (no value) and the empty string are the same value to HubSpot.
pub fn fingerprint(value: Option<&str>) -> String {
    use sha2::Digest;
    let text = value.map(str::trim).unwrap_or("");
    let digest = sha2::Sha256::digest(text.as_bytes());
    hex::encode(&digest[..16])
}

/// The port.
pub trait SyncLedger: Send + Sync {
    /// The ledgers of `attio_record_ids` (absent ids: no field synced yet), in one round trip
    /// per 100 ids where the store allows (DynamoDB `BatchGetItem`), strongly consistent.
    fn ledgers(
        &self,
        object: CrmObject,
        attio_record_ids: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, Ledger>, MappingError>> + Send;

    /// Records what was just written for one record: each entry replaces that field's entry;
    /// fields not named are kept. Last write wins per field (callers write after the other
    /// side accepted the value, so a later sync of the same field always has a later value).
    fn record(
        &self,
        object: CrmObject,
        attio_record_id: &str,
        entries: &Ledger,
    ) -> impl Future<Output = Result<(), MappingError>> + Send;
}
