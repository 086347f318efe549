//! Two-way sync (issue 14): which way a changed field goes, and what the relay must not send
//! back.
//!
//! Every property whose direction is `both` has a last agreed value per record in the
//! [`SyncLedger`] (a fingerprint in HubSpot's form). Each side's current value is compared with
//! it ([`verdict`]): a value equal to the ledger's did not change — in particular the relay's
//! own write coming back as a webhook — so nothing ping-pongs; a side that differs changed; when
//! both did, the later change wins (Attio's `active_from` against HubSpot's property history
//! timestamp) and the loser is kept in the [`ConflictStore`].
//!
//! * Forward (`forward.rs`, inside the records consumer's batch): `hubspot_to_attio` properties
//!   are never sent; `both` properties only when Attio changed; one ledger read per upsert
//!   chunk, one HubSpot batch read for the records whose `both` fields changed.
//! * Reverse (`reverse.rs`, the `hubspot` queue's consumer): events the relay caused are
//!   dropped (`hubspot_events.rs`), the objects are batch-read, the Attio record found by
//!   `attio_record_id` or asserted by email/domain, and changed fields written with the
//!   [`relay_attio::AttioWriter`].
//! * Attio events whose actor is the relay's own API token are dropped by the records consumer
//!   (`TwoWaySettings::attio_token_id`): the relay's writes to Attio cause them.
//!
//! The stores are reached through [`TwoWayStores`], an object-safe view of the three ports
//! ([`Stores`] adapts any `SyncLedger`, `ConflictStore` and `CrmSource`), so the
//! `SyncContext` every binary names keeps its type parameters: two-way sync is an option set
//! with [`crate::SyncContext::with_two_way`], off unless configured.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use relay_crm::{CrmError, CrmId, CrmObject, CrmRecordState, CrmSource};
use relay_mappings::{
    Conflict, ConflictStore, Ledger, MappingError, RecordLocks, Side, SyncLedger, Synced,
    UnixSeconds, fingerprint,
};

use crate::PropertySpec;

mod deletions;
mod forward;
mod hubspot_events;
mod locks;
mod reverse;
mod stage;
mod values;

pub(crate) use forward::FieldState;
pub use hubspot_events::{HubspotChange, HubspotChangeKind, HubspotMessage};
pub(crate) use locks::Held;
pub use reverse::{HubspotHandler, TwoWayNotConfigured};
pub use values::{attio_changed_at, write_value};

type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The ledger, the conflicts and the CRM's read side, object-safe.
pub trait TwoWayStores: Send + Sync {
    fn ledgers<'a>(
        &'a self,
        object: CrmObject,
        ids: &'a [String],
    ) -> Fut<'a, Result<BTreeMap<String, Ledger>, MappingError>>;
    fn record_ledger<'a>(
        &'a self,
        object: CrmObject,
        id: &'a str,
        entries: &'a Ledger,
    ) -> Fut<'a, Result<(), MappingError>>;
    fn record_conflict<'a>(&'a self, conflict: &'a Conflict) -> Fut<'a, Result<(), MappingError>>;
    fn read_crm<'a>(
        &'a self,
        object: CrmObject,
        ids: &'a [CrmId],
        properties: &'a [&'a str],
    ) -> Fut<'a, Result<Vec<CrmRecordState>, CrmError>>;
    fn read_archived<'a>(
        &'a self,
        object: CrmObject,
        ids: &'a [CrmId],
        properties: &'a [&'a str],
    ) -> Fut<'a, Result<Vec<CrmRecordState>, CrmError>>;
    fn lock<'a>(
        &'a self,
        object: CrmObject,
        id: &'a str,
        holder: &'a str,
        now: UnixSeconds,
    ) -> Fut<'a, Result<bool, MappingError>>;
    fn unlock<'a>(
        &'a self,
        object: CrmObject,
        id: &'a str,
        holder: &'a str,
    ) -> Fut<'a, Result<(), MappingError>>;
}

/// Any ledger, conflict store and CRM source as [`TwoWayStores`].
#[derive(Debug)]
pub struct Stores<L, C, R> {
    pub ledger: L,
    pub conflicts: C,
    pub source: R,
}

impl<L: SyncLedger + RecordLocks, C: ConflictStore, R: CrmSource> TwoWayStores for Stores<L, C, R> {
    fn lock<'a>(
        &'a self,
        object: CrmObject,
        id: &'a str,
        holder: &'a str,
        now: UnixSeconds,
    ) -> Fut<'a, Result<bool, MappingError>> {
        Box::pin(self.ledger.lock(object, id, holder, now, locks::LOCK_LEASE))
    }

    fn unlock<'a>(
        &'a self,
        object: CrmObject,
        id: &'a str,
        holder: &'a str,
    ) -> Fut<'a, Result<(), MappingError>> {
        Box::pin(self.ledger.unlock(object, id, holder))
    }

    fn ledgers<'a>(
        &'a self,
        object: CrmObject,
        ids: &'a [String],
    ) -> Fut<'a, Result<BTreeMap<String, Ledger>, MappingError>> {
        Box::pin(self.ledger.ledgers(object, ids))
    }

    fn record_ledger<'a>(
        &'a self,
        object: CrmObject,
        id: &'a str,
        entries: &'a Ledger,
    ) -> Fut<'a, Result<(), MappingError>> {
        Box::pin(self.ledger.record(object, id, entries))
    }

    fn record_conflict<'a>(&'a self, conflict: &'a Conflict) -> Fut<'a, Result<(), MappingError>> {
        Box::pin(self.conflicts.record(conflict))
    }

    fn read_crm<'a>(
        &'a self,
        object: CrmObject,
        ids: &'a [CrmId],
        properties: &'a [&'a str],
    ) -> Fut<'a, Result<Vec<CrmRecordState>, CrmError>> {
        Box::pin(self.source.read_batch(object, ids, properties))
    }

    fn read_archived<'a>(
        &'a self,
        object: CrmObject,
        ids: &'a [CrmId],
        properties: &'a [&'a str],
    ) -> Fut<'a, Result<Vec<CrmRecordState>, CrmError>> {
        Box::pin(self.source.read_archived(object, ids, properties))
    }
}

/// Who the relay is on each side, and what it may do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TwoWaySettings {
    /// The relay's HubSpot app id (`HUBSPOT_APP_ID`): the `sourceId` of its own writes in
    /// HubSpot's webhooks and property history. Unset: echoes are told by the ledger alone.
    pub hubspot_app_id: Option<String>,
    /// The id of the relay's Attio API token (`ATTIO_TOKEN_ID`): the actor of the events its
    /// writes to Attio cause. Unset: those events are read and settled by the ledger.
    pub attio_token_id: Option<String>,
    /// What a HubSpot deletion does to the Attio record (`HUBSPOT_DELETIONS`).
    pub deletions: HubspotDeletions,
}

/// What a person deleting a synced object in HubSpot does in Attio (`HUBSPOT_DELETIONS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HubspotDeletions {
    /// Nothing (the default): the deletion is acknowledged with a log line. Deleting people
    /// in Attio because a HubSpot contact was archived is not a safe default.
    #[default]
    Ignore,
    /// The Attio record is deleted (Attio has no archive for records), buried and unmapped,
    /// so the forward path never recreates the HubSpot object (`two_way/deletions.rs`).
    Delete,
}

impl HubspotDeletions {
    /// `ignore` or `delete` (any case, trimmed); `Err` names the accepted values.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "ignore" => Ok(Self::Ignore),
            "delete" => Ok(Self::Delete),
            other => Err(format!(
                "HUBSPOT_DELETIONS must be ignore or delete, not {other:?}"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ignore => "ignore",
            Self::Delete => "delete",
        }
    }
}

/// Two-way sync as a `SyncContext` holds it.
pub struct TwoWay {
    pub stores: Box<dyn TwoWayStores>,
    pub settings: TwoWaySettings,
}

impl std::fmt::Debug for TwoWay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwoWay")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// How a field stands against its ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Both sides hold the same value.
    Same,
    /// Only Attio changed since the last sync: Attio's value goes to HubSpot.
    AttioChanged,
    /// Only HubSpot changed: HubSpot's value goes to Attio.
    HubspotChanged,
    /// Both changed (or, never synced, both hold different values): this side's change is the
    /// later and wins.
    Conflict(Side),
}

/// One field's value on one side: its fingerprint (HubSpot's form, normalised) and when that
/// side last changed it, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SideValue {
    pub value: Option<String>,
    pub fingerprint: String,
    pub at_ms: i64,
}

impl SideValue {
    pub fn new(spec: &PropertySpec, value: Option<String>, at_ms: i64) -> Self {
        let value = value.filter(|v| !v.trim().is_empty());
        let fingerprint = ledger_fingerprint(spec, value.as_deref());
        Self {
            value,
            fingerprint,
            at_ms,
        }
    }
}

/// The ledger's fingerprint of a value in HubSpot's form for `spec` (normalised first, so a
/// date written as milliseconds and read back as `YYYY-MM-DD` compares equal). Public for the
/// operator's tools, which record what they wrote in the ledger as the consumers do.
pub fn ledger_fingerprint(spec: &PropertySpec, value: Option<&str>) -> String {
    fingerprint(Some(&spec.normalise(value)))
}

/// HubSpot's side of one field as a batch read gave it, and whether HubSpot said when it
/// changed. Both directions read it here, so both take the same time for the same value (a
/// conflict's id hashes both times: two fallbacks would store one conflict twice).
///
/// A value with no history entry has no change time, and none is guessed: 0 would make Attio
/// win every conflict, the webhook's `occurredAt` is the time of another event. HubSpot keeps
/// history for every value it holds (`propertiesWithHistory`, imports included), so a missing
/// entry is a partial answer; [`need_times`] retries a conflict that would need it.
pub(crate) fn hubspot_side(
    spec: &PropertySpec,
    state: &CrmRecordState,
    property: &str,
) -> (SideValue, bool) {
    let value = state.properties.get(property).cloned().flatten();
    let change = state.changes.get(property);
    let side = SideValue::new(spec, value, change.map_or(0, |c| c.at_ms));
    // An empty value that was never set has no history, and needs none: it never wins.
    let timed = change.is_some() || side.value.is_none();
    (side, timed)
}

/// A conflict is decided by the sides' change times: when HubSpot gave none for its value,
/// the message is retried instead of deciding on a guess ([`hubspot_side`]).
pub(crate) fn need_times(
    decided: Verdict,
    hubspot_timed: bool,
    property: &str,
) -> Result<Verdict, crate::context::StepError> {
    match decided {
        Verdict::Conflict(_) if !hubspot_timed => Err(crate::context::StepError(
            crate::Disposition::retry(format!(
                "both sides changed {property}, and HubSpot's answer has no history for it to tell which change is later"
            )),
        )),
        other => Ok(other),
    }
}

/// The rule both directions apply. With a ledger entry: a side equal to its own form of the
/// agreed value did not change (each side is compared with the fingerprint of the value as
/// that side stored it, [`relay_mappings::Synced::attio_side`], so Attio reformatting a value
/// is no change); two sides that read the same are agreed whatever the ledger says. Without
/// one (never synced both ways): an empty side takes the other's value, two different values
/// are a conflict. A conflict goes to the later change; on a tie Attio wins (the record the
/// relay started from).
pub(crate) fn verdict(ledger: Option<&Synced>, attio: &SideValue, hubspot: &SideValue) -> Verdict {
    let same = attio.fingerprint == hubspot.fingerprint;
    let later = || {
        if hubspot.at_ms > attio.at_ms {
            Verdict::Conflict(Side::Hubspot)
        } else {
            Verdict::Conflict(Side::Attio)
        }
    };
    match ledger {
        Some(agreed) => {
            let attio_changed = attio.fingerprint != agreed.attio_side();
            let hubspot_changed = hubspot.fingerprint != agreed.fingerprint;
            match (attio_changed, hubspot_changed) {
                (false, false) => Verdict::Same,
                _ if same => Verdict::Same,
                (true, false) => Verdict::AttioChanged,
                (false, true) => Verdict::HubspotChanged,
                (true, true) => later(),
            }
        }
        None if same => Verdict::Same,
        None if hubspot.value.is_none() => Verdict::AttioChanged,
        None if attio.value.is_none() => Verdict::HubspotChanged,
        None => later(),
    }
}

/// The ledger entry for a value both sides hold now: HubSpot's fingerprint, and Attio's when
/// Attio holds it in another form.
pub(crate) fn agreed_entry(
    hubspot_fingerprint: &str,
    attio_fingerprint: &str,
    now_ms: i64,
    direction: relay_mappings::SyncDirection,
) -> Synced {
    Synced {
        fingerprint: hubspot_fingerprint.to_owned(),
        at_ms: now_ms,
        direction,
        attio_fingerprint: (attio_fingerprint != hubspot_fingerprint)
            .then(|| attio_fingerprint.to_owned()),
    }
}

/// The conflict record for a field both sides changed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conflict(
    object: CrmObject,
    attio_record_id: &str,
    crm_id: &CrmId,
    property: &str,
    spec: &PropertySpec,
    attio: &SideValue,
    hubspot: &SideValue,
    winner: Side,
    now_ms: i64,
) -> Conflict {
    let value = |side: &SideValue| relay_mappings::ConflictValue {
        value: side.value.clone(),
        changed_at_ms: side.at_ms,
    };
    Conflict {
        id: Conflict::derive_id(
            object,
            attio_record_id,
            property,
            attio.at_ms,
            hubspot.at_ms,
        ),
        object,
        attio_record_id: attio_record_id.to_owned(),
        crm_id: crm_id.0.clone(),
        property: property.to_owned(),
        attribute: spec.attribute.clone(),
        attio: value(attio),
        hubspot: value(hubspot),
        winner,
        detected_at_ms: now_ms,
        resolution: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(value: Option<&str>, at_ms: i64) -> SideValue {
        SideValue::new(&PropertySpec::path("x"), value.map(str::to_owned), at_ms)
    }

    #[test]
    fn the_ledger_tells_a_change_from_an_echo_and_the_later_change_wins() {
        let agreed = agreed_entry(
            &fingerprint(Some("a")),
            &fingerprint(Some("a")),
            0,
            relay_mappings::SyncDirection::AttioToHubspot,
        );
        let l = Some(&agreed);
        assert_eq!(
            verdict(l, &side(Some("a"), 1), &side(Some("a"), 2)),
            Verdict::Same
        );
        assert_eq!(
            verdict(l, &side(Some("b"), 1), &side(Some("a"), 2)),
            Verdict::AttioChanged
        );
        assert_eq!(
            verdict(l, &side(Some("a"), 1), &side(Some("c"), 2)),
            Verdict::HubspotChanged
        );
        assert_eq!(
            verdict(l, &side(Some("b"), 1), &side(Some("c"), 2)),
            Verdict::Conflict(Side::Hubspot)
        );
        assert_eq!(
            verdict(l, &side(Some("b"), 3), &side(Some("c"), 2)),
            Verdict::Conflict(Side::Attio)
        );
        assert_eq!(
            verdict(None, &side(Some("b"), 1), &side(None, 2)),
            Verdict::AttioChanged
        );
        assert_eq!(
            verdict(None, &side(None, 1), &side(Some("c"), 2)),
            Verdict::HubspotChanged
        );
        assert_eq!(
            verdict(None, &side(Some("b"), 1), &side(Some("c"), 2)),
            Verdict::Conflict(Side::Hubspot)
        );
        // Emptied is a value like any other once synced.
        assert_eq!(
            verdict(l, &side(None, 5), &side(Some("a"), 2)),
            Verdict::AttioChanged
        );
    }

    #[test]
    fn a_value_each_side_stores_in_its_own_form_is_no_change() {
        // HubSpot holds "(415) 555-0100", Attio the same number as "+14155550100".
        let hubspot_form = side(Some("(415) 555-0100"), 1);
        let attio_form = side(Some("+14155550100"), 2);
        let agreed = agreed_entry(
            &hubspot_form.fingerprint,
            &attio_form.fingerprint,
            0,
            relay_mappings::SyncDirection::HubspotToAttio,
        );
        let l = Some(&agreed);
        assert_eq!(verdict(l, &attio_form, &hubspot_form), Verdict::Same);
        assert_eq!(
            verdict(l, &side(Some("+14155550199"), 3), &hubspot_form),
            Verdict::AttioChanged
        );
        assert_eq!(
            verdict(l, &attio_form, &side(Some("(415) 555-0199"), 3)),
            Verdict::HubspotChanged
        );
    }
}
