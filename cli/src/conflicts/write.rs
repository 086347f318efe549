//! Writing a conflict's kept (losing) value to BOTH sides — and first making sure neither
//! side holds a value newer than the conflict.
//!
//! Why both: when a conflict is recorded the consumer syncs the winner's value to the loser's
//! side at once, so by the time an operator resolves, both sides hold the winner's value.
//! Writing the kept value to the winner's side only would leave the loser's own side holding
//! the winner's value, which differs from the ledger (now the kept value), reads as a change
//! there, and is pushed back by the consumers: the operator's choice would be undone. So the
//! kept value goes to the winner's side and then to the loser's own side, and the ledger
//! records it once, in each side's form.
//!
//! The guard: a conflict can sit open for days. Meanwhile someone may edit the field again on
//! either side; the consumers then sync that newer edit as any other change. Writing the kept
//! (older) value over it would silently undo a change nobody saw in the conflict. So
//! `resolve` reads each side's current value first — HubSpot with [`CrmSource::read_batch`]
//! of the one property on the mapped object, Attio with the record read through the field
//! mapping exactly as the records consumer maps it — and accepts only the two values the
//! conflict explains: the winner's (the winner's side kept it; the loser's side got it from
//! the consumer) or the kept one (the loser's side before the consumer synced, or a side an
//! operator already copied it to). Both compare as the ledger normalises
//! ([`ledger_fingerprint`], so `2026-03-01` and its epoch milliseconds are the same value).
//! Any other value refuses the whole resolve with a [`NewerEdit`] naming the side, what it
//! holds now and when it changed (when the side says); `--force` skips the check. The check
//! and the write are separate requests, so an edit in the moment between them is not caught:
//! the guard is for the hours and days a conflict waits, not for that instant.
//!
//! The plans (what would be written where) are built before anything is written, so a
//! refusal on either side writes nothing on either, and `--dry-run` prints exactly what a
//! real run would send.

use std::fmt;

use anyhow::Context;
use relay_attio::{AttioApi, AttioValues, AttioWriter};
use relay_crm::{CrmId, CrmSink, CrmSource, Properties};
use relay_mappings::{Conflict, IdMappings, Ledger, Side, SyncDirection, SyncLedger, Synced};
use relay_sync::formats::iso_instant;
use relay_sync::two_way::{attio_changed_at, ledger_fingerprint, write_value};
use relay_sync::{FieldMapping, OwnerIds, PropertySpec, RecordValues};

/// Writing a conflict's kept value to both sides.
pub(crate) struct Write<'a, M> {
    pub fields: &'a FieldMapping,
    pub mappings: &'a M,
    pub conflict: &'a Conflict,
    pub now_ms: i64,
}

/// A side's value as the conflict recorded it.
pub(crate) fn value_of(conflict: &Conflict, side: Side) -> Option<&str> {
    match side {
        Side::Attio => conflict.attio.value.as_deref(),
        Side::Hubspot => conflict.hubspot.value.as_deref(),
    }
}

/// How a side's current value was checked before the plan would write over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Checked {
    /// Read: it holds the winner's value (`None`: empty) — the winner's side still does, the
    /// loser's side got it from the consumer — so no newer edit is lost.
    Holds(Option<String>),
    /// Read: it already holds the kept value (the loser's side before the consumer synced the
    /// winner, or a side someone copied it to by hand); writing it again changes nothing and
    /// records it as agreed.
    AlreadyKept,
    /// Not read: `--force`.
    Forced,
    /// Not read: there is no HubSpot to read (no `HUBSPOT_TOKEN`), the write only goes to the
    /// local outbox, so nothing real can be overwritten.
    Outbox,
}

/// Where the kept value goes, as it will be sent.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Hubspot { id: CrmId, properties: Properties },
    Attio { slug: String, values: AttioValues },
}

/// One write `resolve` will make (or, with `--dry-run`, would).
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub target: Target,
    pub checked: Checked,
}

impl Plan {
    /// The side written to.
    pub fn side(&self) -> Side {
        match self.target {
            Target::Hubspot { .. } => Side::Hubspot,
            Target::Attio { .. } => Side::Attio,
        }
    }

    /// "HubSpot contacts 123" / "Attio people <id>".
    pub fn place(&self, conflict: &Conflict) -> String {
        match &self.target {
            Target::Hubspot { id, .. } => format!("HubSpot {} {id}", conflict.object),
            Target::Attio { slug, .. } => format!("Attio {slug} {}", conflict.attio_record_id),
        }
    }

    /// The body as sent: HubSpot's properties or Attio's values, JSON.
    pub fn body(&self) -> serde_json::Value {
        match &self.target {
            Target::Hubspot { properties, .. } => serde_json::json!(properties),
            Target::Attio { values, .. } => serde_json::Value::Object(values.clone()),
        }
    }

    /// One line on the check, for the operator: which side, and why its value was safe to
    /// write over.
    pub fn describe_check(&self, conflict: &Conflict) -> String {
        let side = self.side();
        let name = side.as_str();
        let winners_side = side == conflict.winner;
        match (&self.checked, winners_side) {
            (Checked::Holds(value), true) => format!(
                "checked: {name} still holds the winner's value {}",
                shown(value.as_deref())
            ),
            (Checked::Holds(value), false) => format!(
                "checked: {name} holds the winner's value {} (synced there when the conflict was recorded)",
                shown(value.as_deref())
            ),
            (Checked::AlreadyKept, true) => {
                format!("checked: {name} already holds the kept value")
            }
            (Checked::AlreadyKept, false) => format!(
                "checked: {name} still holds the kept value (the winner's was not synced there)"
            ),
            (Checked::Forced, _) => format!(
                "not checked (--force): {name}'s current value is overwritten whatever it is"
            ),
            (Checked::Outbox, _) => {
                "not checked: no HUBSPOT_TOKEN, the write goes to the local outbox".to_owned()
            }
        }
    }
}

/// A side holds neither value the conflict explains: someone edited it after the conflict,
/// and writing the kept value would overwrite that newer edit. The operator decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewerEdit {
    pub conflict_id: String,
    /// The side checked, which holds the newer edit (the winner's or the loser's).
    pub side: Side,
    /// The side whose change won the conflict.
    pub winner: Side,
    /// "HubSpot contacts 123" / "Attio people <id>".
    pub place: String,
    pub property: String,
    /// The winner's value as the conflict recorded it.
    pub recorded: Option<String>,
    /// The kept (losing) value as the conflict recorded it: also expected on the loser's own
    /// side, before the consumer synced the winner's there.
    pub kept: Option<String>,
    /// What the side holds now.
    pub now: Option<String>,
    /// When it got that value, when the side says (HubSpot's property history, Attio's
    /// `active_from`).
    pub changed_at_ms: Option<i64>,
    /// Who changed it, when HubSpot says (`sourceType` and `sourceId`).
    pub by: Option<String>,
}

impl fmt::Display for NewerEdit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = self.side.as_str();
        let winner = self.winner.as_str();
        let loser = self.winner.other().as_str();
        if self.side == self.winner {
            write!(
                f,
                "refused: {} changed on {side} since this conflict: {} held {} (the winner's value), it now holds {}",
                self.property,
                self.place,
                shown(self.recorded.as_deref()),
                shown(self.now.as_deref()),
            )?;
        } else {
            write!(
                f,
                "refused: {} changed on {side} since this conflict: {} was to hold {} (the winner's value, synced there when the conflict was recorded) or {} (its own losing value, if not synced yet), it now holds {}",
                self.property,
                self.place,
                shown(self.recorded.as_deref()),
                shown(self.kept.as_deref()),
                shown(self.now.as_deref()),
            )?;
        }
        match (self.changed_at_ms, &self.by) {
            (Some(at), Some(by)) => write!(f, ", changed {} by {by}", iso_instant(at))?,
            (Some(at), None) => write!(f, ", changed {}", iso_instant(at))?,
            (None, Some(by)) => write!(f, ", changed by {by} (time unknown)")?,
            (None, None) => write!(f, " (when it changed is unknown)")?,
        }
        write!(
            f,
            ". Keeping {loser}'s value would overwrite that newer edit; nothing was written on either side and the conflict is still open.\n\
             To overwrite it anyway: attio-relay conflicts resolve {id} --keep {loser} --force\n\
             To close the conflict without writing and leave {side}'s newer value (the consumers sync it like any other change): attio-relay conflicts resolve {id} --keep {winner}",
            id = self.conflict_id,
        )
    }
}

impl std::error::Error for NewerEdit {}

/// A value for the operator's terminal: quoted, or `(empty)`.
fn shown(value: Option<&str>) -> String {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => format!("{v:?}"),
        None => "(empty)".to_owned(),
    }
}

impl<M: IdMappings + SyncLedger> Write<'_, M> {
    /// The side whose value is kept: the loser's (keeping the winner writes nothing).
    fn kept_side(&self) -> Side {
        self.conflict.loser()
    }

    /// The kept value as the conflict recorded it (HubSpot's form).
    fn kept(&self) -> Option<&str> {
        value_of(self.conflict, self.kept_side())
    }

    /// The Attio object and the property's spec, from the field mapping as it is now.
    fn spec(&self) -> anyhow::Result<(&str, &PropertySpec)> {
        let c = self.conflict;
        let (slug, mapping) = self
            .fields
            .objects
            .iter()
            .find(|(_, m)| {
                relay_crm::CrmObject::parse(&m.crm_object) == Some(c.object)
                    && m.properties.contains_key(&c.property)
            })
            .with_context(|| {
                format!(
                    "the field mapping no longer maps {} property {}: nothing to write it with",
                    c.object, c.property
                )
            })?;
        Ok((slug.as_str(), &mapping.properties[&c.property]))
    }

    /// Compares `side`'s current value with the two the conflict explains on it: the
    /// winner's (held by the winner's side, synced to the loser's) and the kept one (the
    /// loser's side before that sync). Anything else is a newer edit.
    fn guard(
        &self,
        side: Side,
        spec: &PropertySpec,
        place: String,
        now: Option<String>,
        changed_at_ms: Option<i64>,
        by: Option<String>,
    ) -> Result<Checked, Box<NewerEdit>> {
        let c = self.conflict;
        let recorded = value_of(c, c.winner);
        let held = ledger_fingerprint(spec, now.as_deref());
        if held == ledger_fingerprint(spec, recorded) {
            return Ok(Checked::Holds(now));
        }
        if held == ledger_fingerprint(spec, self.kept()) {
            return Ok(Checked::AlreadyKept);
        }
        Err(Box::new(NewerEdit {
            conflict_id: c.id.clone(),
            side,
            winner: c.winner,
            place,
            property: c.property.clone(),
            recorded: recorded.map(str::to_owned),
            kept: self.kept().map(str::to_owned),
            now,
            changed_at_ms,
            by,
        }))
    }

    /// The kept value for HubSpot: one property of the mapped object (the mapping's id, which
    /// follows merges; the conflict's as recorded otherwise), after checking HubSpot holds
    /// the winner's or the kept value — unless `source` is `None` (the outbox) or `force`.
    pub async fn plan_hubspot<R: CrmSource>(
        &self,
        source: Option<&R>,
        force: bool,
    ) -> anyhow::Result<Plan> {
        let c = self.conflict;
        let (_, spec) = self.spec()?;
        let id = self
            .mappings
            .get(c.object, &c.attio_record_id)
            .await?
            .unwrap_or_else(|| CrmId(c.crm_id.clone()));
        let place = format!("HubSpot {} {id}", c.object);
        let checked = match (source, force) {
            (_, true) => Checked::Forced,
            (None, false) => Checked::Outbox,
            (Some(source), false) => {
                // One property, with its history for when and by whom it changed
                // (https://developers.hubspot.com/docs/api-reference/latest/crm/objects/objects/batch/get-objects).
                let read = source
                    .read_batch(c.object, std::slice::from_ref(&id), &[c.property.as_str()])
                    .await
                    .with_context(|| format!("reading {} of {place}", c.property))?;
                let state = read.into_iter().find(|s| s.id == id).with_context(|| {
                    format!(
                        "{place} is gone (archived or merged away): nothing to write to; close the conflict with `attio-relay conflicts resolve {} --keep {}`",
                        c.id,
                        c.winner.as_str()
                    )
                })?;
                let now = state.properties.get(&c.property).cloned().flatten();
                let change = state.changes.get(&c.property);
                let by = change.and_then(|ch| {
                    let parts: Vec<&str> = [ch.source_type.as_deref(), ch.source_id.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect();
                    (!parts.is_empty()).then(|| parts.join(" "))
                });
                self.guard(
                    Side::Hubspot,
                    spec,
                    place,
                    now,
                    change.map(|ch| ch.at_ms),
                    by,
                )?
            }
        };
        let value = self.kept().unwrap_or_default().to_owned();
        Ok(Plan {
            target: Target::Hubspot {
                id,
                properties: [(c.property.clone(), value)].into(),
            },
            checked,
        })
    }

    /// The kept value for Attio, reversed through the field mapping by the consumer's own
    /// function over the record as it is now (a name part keeps the other part; a first email
    /// replaces the first and keeps the rest), after checking the attribute, read as the
    /// records consumer maps it, holds the winner's or the kept value — unless `force`.
    pub async fn plan_attio<A: AttioApi>(&self, attio: &A, force: bool) -> anyhow::Result<Plan> {
        let c = self.conflict;
        let (slug, spec) = self.spec()?;
        anyhow::ensure!(
            spec.reverse_problem().is_none(),
            "{} cannot be written back to Attio: {}",
            c.property,
            spec.reverse_problem().unwrap_or_default()
        );
        let record = attio
            .get_record(slug, &c.attio_record_id)
            .await
            .with_context(|| format!("reading Attio {slug} {}", c.attio_record_id))?;
        let checked = if force {
            Checked::Forced
        } else {
            // As `forward_fields` reads it: the property's value in HubSpot's form, and the
            // newest `active_from` of the attribute's current values
            // (https://docs.attio.com/rest-api/endpoint-reference/records/list-record-attribute-values).
            let now = spec
                .value(&RecordValues(&record.values), &OwnerIds::new())
                .ok()
                .flatten();
            let at = attio_changed_at(&record.values, spec);
            let place = format!("Attio {slug} {}", c.attio_record_id);
            self.guard(Side::Attio, spec, place, now, (at > 0).then_some(at), None)?
        };
        let mut values = AttioValues::new();
        write_value(spec, self.kept(), Some(&record.values), &mut values);
        Ok(Plan {
            target: Target::Attio {
                slug: slug.to_owned(),
                values,
            },
            checked,
        })
    }

    /// Sends a HubSpot plan (the ledger is recorded once both sides are written).
    pub async fn send_hubspot<S: CrmSink>(&self, crm: &S, plan: &Plan) -> anyhow::Result<()> {
        let c = self.conflict;
        let Target::Hubspot { id, properties } = &plan.target else {
            anyhow::bail!("not a HubSpot plan");
        };
        crm.update(c.object, id, properties)
            .await
            .with_context(|| format!("writing {} to HubSpot {} {id}", c.property, c.object))?;
        Ok(())
    }

    /// Sends an Attio plan; returns the ledger fingerprint of the value as Attio stored it
    /// (the write's answer, read as the records consumer reads it): Attio may reformat what
    /// it is given, and the ledger keeps that form so the next read is no change.
    pub async fn send_attio<A: AttioWriter>(
        &self,
        attio: &A,
        plan: &Plan,
    ) -> anyhow::Result<String> {
        let c = self.conflict;
        let Target::Attio { slug, values } = &plan.target else {
            anyhow::bail!("not an Attio plan");
        };
        let (_, spec) = self.spec()?;
        let stored = attio
            .update_record(slug, &c.attio_record_id, values)
            .await
            .with_context(|| {
                format!(
                    "writing {} to Attio {slug} {}",
                    c.attribute, c.attio_record_id
                )
            })?;
        let now = spec
            .value(&RecordValues(&stored.values), &OwnerIds::new())
            .ok()
            .flatten()
            .filter(|v| !v.trim().is_empty());
        Ok(ledger_fingerprint(spec, now.as_deref()))
    }

    /// The kept value as the field's agreed value, once both sides hold it: their webhooks
    /// are then echoes. `attio_form`: its fingerprint as Attio stored it ([`Self::send_attio`]),
    /// kept when it differs from HubSpot's form (as the consumers record it).
    pub async fn record(&self, attio_form: Option<String>) -> anyhow::Result<()> {
        let c = self.conflict;
        let (_, spec) = self.spec()?;
        let fingerprint = ledger_fingerprint(spec, self.kept());
        let direction = match self.kept_side() {
            Side::Attio => SyncDirection::AttioToHubspot,
            Side::Hubspot => SyncDirection::HubspotToAttio,
        };
        let entry = Synced {
            attio_fingerprint: attio_form.filter(|f| *f != fingerprint),
            fingerprint,
            at_ms: self.now_ms,
            direction,
        };
        let entries: Ledger = [(c.property.clone(), entry)].into();
        self.mappings
            .record(c.object, &c.attio_record_id, &entries)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
