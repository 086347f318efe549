//! Writing a conflict's losing value to the side that holds the winner's — and first making
//! sure that side still holds it.
//!
//! A conflict can sit open for days. Meanwhile someone may edit the field again on the side
//! that won; the consumers then sync that newer edit as any other change. Writing the kept
//! (older, losing) value over it would silently undo a change nobody saw in the conflict. So
//! `resolve` reads the winning side's current value first — HubSpot with
//! [`CrmSource::read_batch`] of the one property on the mapped object, Attio with the record
//! read through the field mapping exactly as the records consumer maps it — and compares it
//! with the value the conflict recorded for the winner, normalised as the ledger normalises
//! ([`ledger_fingerprint`], so `2026-03-01` and its epoch milliseconds are the same value).
//! A different value refuses the write with a [`NewerEdit`] that says what the side holds now,
//! when it changed (when the side says) and what to do. `--force` skips the check. The check
//! and the write are two requests, so an edit in the moment between them is not caught: the
//! guard is for the hours and days a conflict waits, not for that instant.
//!
//! The plan (what would be written where) is built before anything is written, so `--dry-run`
//! prints exactly what a real run would send.

use std::fmt;

use anyhow::Context;
use relay_attio::{AttioApi, AttioValues, AttioWriter};
use relay_crm::{CrmId, CrmSink, CrmSource, Properties};
use relay_mappings::{Conflict, IdMappings, Ledger, Side, SyncDirection, SyncLedger, Synced};
use relay_sync::formats::iso_instant;
use relay_sync::two_way::{attio_changed_at, ledger_fingerprint, write_value};
use relay_sync::{FieldMapping, OwnerIds, PropertySpec, RecordValues};

/// Writing a conflict's losing value to the side that holds the winner's.
pub(crate) struct Write<'a, M> {
    pub fields: &'a FieldMapping,
    pub mappings: &'a M,
    pub conflict: &'a Conflict,
    pub now_ms: i64,
}

/// How the winning side's current value was checked before the plan would write over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Checked {
    /// Read: it still holds the winner's value (`None`: empty), so no newer edit is lost.
    Holds(Option<String>),
    /// Read: it already holds the kept value (someone copied it by hand); writing it again
    /// changes nothing and records it as agreed.
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

/// What `resolve` will write (or, with `--dry-run`, would).
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

    /// One line on the check, for the operator.
    pub fn describe_check(&self, conflict: &Conflict) -> String {
        let side = conflict.winner.as_str();
        match &self.checked {
            Checked::Holds(value) => format!(
                "checked: {side} still holds the winner's value {}",
                shown(value.as_deref())
            ),
            Checked::AlreadyKept => format!("checked: {side} already holds the kept value"),
            Checked::Forced => format!(
                "not checked (--force): {side}'s current value is overwritten whatever it is"
            ),
            Checked::Outbox => {
                "not checked: no HUBSPOT_TOKEN, the write goes to the local outbox".to_owned()
            }
        }
    }
}

/// The winning side no longer holds the winner's value: someone edited it after the conflict,
/// and writing the kept value would overwrite that newer edit. The operator decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewerEdit {
    pub conflict_id: String,
    /// The side that won, and would be written to.
    pub side: Side,
    /// "HubSpot contacts 123" / "Attio people <id>".
    pub place: String,
    pub property: String,
    /// The winner's value as the conflict recorded it.
    pub recorded: Option<String>,
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
        let winner = self.side.as_str();
        let loser = self.side.other().as_str();
        write!(
            f,
            "refused: {} changed on {winner} since this conflict: {} held {} (the winner's value), it now holds {}",
            self.property,
            self.place,
            shown(self.recorded.as_deref()),
            shown(self.now.as_deref()),
        )?;
        match (self.changed_at_ms, &self.by) {
            (Some(at), Some(by)) => write!(f, ", changed {} by {by}", iso_instant(at))?,
            (Some(at), None) => write!(f, ", changed {}", iso_instant(at))?,
            (None, Some(by)) => write!(f, ", changed by {by} (time unknown)")?,
            (None, None) => write!(f, " (when it changed is unknown)")?,
        }
        write!(
            f,
            ". Keeping {loser}'s value would overwrite that newer edit; nothing was written and the conflict is still open.\n\
             To overwrite it anyway: attio-relay conflicts resolve {id} --keep {loser} --force\n\
             To keep {winner}'s current value (the consumers sync it like any other change) and close the conflict: attio-relay conflicts resolve {id} --keep {winner}",
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

    /// Compares the winning side's current value with the conflict's record of it.
    fn guard(
        &self,
        spec: &PropertySpec,
        place: String,
        now: Option<String>,
        changed_at_ms: Option<i64>,
        by: Option<String>,
    ) -> Result<Checked, Box<NewerEdit>> {
        let c = self.conflict;
        let (recorded, kept) = match c.winner {
            Side::Attio => (&c.attio.value, &c.hubspot.value),
            Side::Hubspot => (&c.hubspot.value, &c.attio.value),
        };
        let held = ledger_fingerprint(spec, now.as_deref());
        if held == ledger_fingerprint(spec, recorded.as_deref()) {
            return Ok(Checked::Holds(now));
        }
        if held == ledger_fingerprint(spec, kept.as_deref()) {
            return Ok(Checked::AlreadyKept);
        }
        Err(Box::new(NewerEdit {
            conflict_id: c.id.clone(),
            side: c.winner,
            place,
            property: c.property.clone(),
            recorded: recorded.clone(),
            now,
            changed_at_ms,
            by,
        }))
    }

    /// Attio's value for HubSpot: one property of the mapped object (the mapping's id, which
    /// follows merges; the conflict's as recorded otherwise), after checking HubSpot still
    /// holds the winner's value — unless `source` is `None` (the outbox) or `force`.
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
                self.guard(spec, place, now, change.map(|ch| ch.at_ms), by)?
            }
        };
        let value = c.attio.value.clone().unwrap_or_default();
        Ok(Plan {
            target: Target::Hubspot {
                id,
                properties: [(c.property.clone(), value)].into(),
            },
            checked,
        })
    }

    /// HubSpot's value for Attio, reversed through the field mapping by the consumer's own
    /// function over the record as it is now (a name part keeps the other part; a first email
    /// replaces the first and keeps the rest), after checking the attribute, read as the
    /// records consumer maps it, still holds the winner's value — unless `force`.
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
            self.guard(spec, place, now, (at > 0).then_some(at), None)?
        };
        let mut values = AttioValues::new();
        write_value(
            spec,
            c.hubspot.value.as_deref(),
            Some(&record.values),
            &mut values,
        );
        Ok(Plan {
            target: Target::Attio {
                slug: slug.to_owned(),
                values,
            },
            checked,
        })
    }

    /// Sends a HubSpot plan, then records the value in the ledger.
    pub async fn send_hubspot<S: CrmSink>(&self, crm: &S, plan: &Plan) -> anyhow::Result<()> {
        let c = self.conflict;
        let Target::Hubspot { id, properties } = &plan.target else {
            anyhow::bail!("not a HubSpot plan");
        };
        let (_, spec) = self.spec()?;
        crm.update(c.object, id, properties)
            .await
            .with_context(|| format!("writing {} to HubSpot {} {id}", c.property, c.object))?;
        let value = c.attio.value.clone().unwrap_or_default();
        self.record(spec, Some(&value), SyncDirection::AttioToHubspot)
            .await
    }

    /// Sends an Attio plan, then records the value in the ledger.
    pub async fn send_attio<A: AttioWriter>(&self, attio: &A, plan: &Plan) -> anyhow::Result<()> {
        let c = self.conflict;
        let Target::Attio { slug, values } = &plan.target else {
            anyhow::bail!("not an Attio plan");
        };
        let (_, spec) = self.spec()?;
        attio
            .update_record(slug, &c.attio_record_id, values)
            .await
            .with_context(|| {
                format!(
                    "writing {} to Attio {slug} {}",
                    c.attribute, c.attio_record_id
                )
            })?;
        self.record(
            spec,
            c.hubspot.value.as_deref(),
            SyncDirection::HubspotToAttio,
        )
        .await
    }

    /// The kept value as the field's agreed value: its webhook is then an echo.
    async fn record(
        &self,
        spec: &PropertySpec,
        value: Option<&str>,
        direction: SyncDirection,
    ) -> anyhow::Result<()> {
        let c = self.conflict;
        let entry = Synced {
            fingerprint: ledger_fingerprint(spec, value),
            at_ms: self.now_ms,
            direction,
            // The operator's write is recorded in HubSpot's form only: a value Attio then
            // reformats reads as one more change, and is synced once more (not lost).
            attio_fingerprint: None,
        };
        let entries: Ledger = [(c.property.clone(), entry)].into();
        self.mappings
            .record(c.object, &c.attio_record_id, &entries)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The guard over the in-memory HubSpot (`MemoryCrm`, a `CrmSource` with property
    //! history) and the embedded mappings store; the CLI test drives the whole command
    //! against the wiremock stand-ins of both APIs.

    use std::sync::Arc;

    use relay_crm::{CrmObject, MemoryCrm};
    use relay_embedded::LocalDb;
    use relay_mappings::{ConflictValue, SqliteMappings};

    use super::*;

    /// 2026-03-01T00:00:00Z, HubSpot's date form of "2026-03-01".
    const MARCH_1: &str = "1772323200000";
    /// When the user's edits in HubSpot happen.
    const EDITED_AT: i64 = 1_772_400_000_000;

    const MAPPING: &str = r#"
[objects.people]
crm_object = "contacts"
[objects.people.properties]
email = "email_addresses"
birthday = { attribute = "birthday", format = "date", direction = "both" }
"#;

    /// HubSpot won with `hubspot`; Attio's `attio` is the loser an operator keeps.
    fn conflict(crm_id: &CrmId, attio: &str, hubspot: &str) -> Conflict {
        Conflict {
            id: "c0ffee".into(),
            object: CrmObject::Contacts,
            attio_record_id: "p1".into(),
            crm_id: crm_id.0.clone(),
            property: "birthday".into(),
            attribute: "birthday".into(),
            attio: ConflictValue {
                value: Some(attio.into()),
                changed_at_ms: 1,
            },
            hubspot: ConflictValue {
                value: Some(hubspot.into()),
                changed_at_ms: 2,
            },
            winner: Side::Hubspot,
            detected_at_ms: 3,
            resolution: None,
        }
    }

    struct World {
        crm: MemoryCrm,
        mappings: SqliteMappings,
        fields: FieldMapping,
        _dir: tempfile::TempDir,
    }

    fn world() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = LocalDb::open(&dir.path().join("relay.sqlite")).expect("db");
        World {
            crm: MemoryCrm::new().with_clock(Arc::new(|| EDITED_AT)),
            mappings: SqliteMappings::new(db),
            fields: FieldMapping::load(Some(MAPPING), None).expect("mapping"),
            _dir: dir,
        }
    }

    impl World {
        /// A contact whose birthday a user set in HubSpot.
        fn contact(&self, birthday: &str) -> CrmId {
            let properties: Properties = [("birthday".to_owned(), birthday.to_owned())].into();
            self.crm.edit_by_user(CrmObject::Contacts, None, properties)
        }

        async fn plan(&self, conflict: &Conflict, force: bool) -> anyhow::Result<Plan> {
            let write = Write {
                fields: &self.fields,
                mappings: &self.mappings,
                conflict,
                now_ms: 0,
            };
            write.plan_hubspot(Some(&self.crm), force).await
        }
    }

    #[tokio::test]
    async fn the_winner_held_in_another_form_is_no_newer_edit() {
        let w = world();
        // The conflict recorded "2026-03-01"; HubSpot hands the same date back as epoch ms.
        let id = w.contact(MARCH_1);
        let c = conflict(&id, "2026-02-01", "2026-03-01");
        let plan = w.plan(&c, false).await.expect("the check passes");
        assert_eq!(plan.checked, Checked::Holds(Some(MARCH_1.to_owned())));
        assert_eq!(plan.place(&c), format!("HubSpot contacts {id}"));
        assert_eq!(plan.body(), serde_json::json!({"birthday": "2026-02-01"}));
        assert_eq!(w.crm.batch_reads(), [1], "one read of the one object");
    }

    #[tokio::test]
    async fn a_newer_edit_is_refused_with_what_and_when_and_force_reads_nothing() {
        let w = world();
        let id = w.contact("2026-04-01");
        let c = conflict(&id, "2026-02-01", "2026-03-01");
        let err = w.plan(&c, false).await.expect_err("a newer edit");
        let newer = err
            .downcast_ref::<Box<NewerEdit>>()
            .unwrap_or_else(|| panic!("not a NewerEdit: {err:#}"));
        assert_eq!(newer.side, Side::Hubspot);
        assert_eq!(newer.now.as_deref(), Some("2026-04-01"));
        assert_eq!(newer.recorded.as_deref(), Some("2026-03-01"));
        assert_eq!(newer.changed_at_ms, Some(EDITED_AT));
        assert!(
            newer.by.as_deref().is_some_and(|b| b.contains("CRM_UI")),
            "{newer:?}"
        );
        let text = err.to_string();
        for needle in [
            "\"2026-04-01\"",
            &iso_instant(EDITED_AT),
            "resolve c0ffee --keep attio --force",
            "resolve c0ffee --keep hubspot",
            "nothing was written",
        ] {
            assert!(text.contains(needle), "no {needle:?} in {text}");
        }

        let reads = w.crm.batch_reads().len();
        let plan = w.plan(&c, true).await.expect("forced");
        assert_eq!(plan.checked, Checked::Forced);
        assert_eq!(w.crm.batch_reads().len(), reads, "--force does not read");
    }

    #[tokio::test]
    async fn a_winner_side_already_holding_the_kept_value_may_be_written() {
        let w = world();
        let id = w.contact("2026-02-01");
        let c = conflict(&id, "2026-02-01", "2026-03-01");
        let plan = w.plan(&c, false).await.expect("nothing newer is lost");
        assert_eq!(plan.checked, Checked::AlreadyKept);
    }

    #[tokio::test]
    async fn an_object_hubspot_no_longer_holds_is_refused() {
        let w = world();
        let c = conflict(&CrmId("404".into()), "2026-02-01", "2026-03-01");
        let err = w.plan(&c, false).await.expect_err("gone");
        let text = format!("{err:#}");
        assert!(
            text.contains("HubSpot contacts 404 is gone") && text.contains("--keep hubspot"),
            "{text}"
        );
    }
}
