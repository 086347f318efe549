//! `attio-relay backfill --direction both`: initial matching before two-way sync starts.
//!
//! Both sides usually hold the same people and companies already. Syncing them blindly would
//! make duplicates in whichever side is written second, so every record is paired first, by
//! the key both sides agree identifies it — HubSpot contacts by `email` with Attio people by
//! `email_addresses`, HubSpot companies by `domain` with Attio companies by `domains` — and
//! every read happens before any write. Attio keeps both unique per object ("Unique,
//! multiselect": <https://docs.attio.com/docs/standard-objects/standard-objects-companies>, and
//! the person's `email_addresses`,
//! <https://docs.attio.com/docs/attribute-types/attribute-types-email-address>, compared in
//! their normalised, lower-case form); HubSpot keeps contact emails unique
//! (<https://developers.hubspot.com/docs/api/crm/contacts>) but not company domains
//! (<https://developers.hubspot.com/docs/api/crm/companies>), so duplicates are expected there:
//!
//! 1. HubSpot's objects are listed (`CrmSource::list_page`, 100 a page) and Attio's records
//!    read in pages (the backfill's own `records/query` walk).
//! 2. The plan ([`plan`]) links records that share a key into groups. A group of one Attio
//!    record and one HubSpot object is a **pair**; one record alone is **one-sided**; anything
//!    else (an Attio person whose two addresses are two HubSpot contacts, a domain on two
//!    HubSpot companies, a key already on an object linked to another record) **could not be
//!    matched** and is listed with its ids, with nothing written for it: guessing would merge
//!    two people. A record with no key cannot be matched either.
//! 3. Unless `--dry-run`: each pair gets its id mapping and `attio_record_id` on its HubSpot
//!    object (in that order), and the ledger records the `both` fields on which the two sides
//!    already agree (the next change to them is then a change, not a conflict); Attio-only
//!    records go to HubSpot through the forward sync (`SyncContext::sync_page`, the
//!    consumers' upsert, with the two-way stores: it sends the `both` fields and records
//!    them); HubSpot-only objects are looked up in Attio by their key once more (a record
//!    created since the read is paired, never overwritten), then asserted by the key with the
//!    properties that flow back (`AttioWriter::assert_record`), the other mapped properties
//!    set where the new record holds nothing, and linked the same way; the ledger keeps each
//!    `both` field in Attio's form too, as the answer gives it.
//!
//! Objects already carrying `attio_record_id` were paired before (by the relay's upserts) and
//! are counted, not touched — unless their Attio record has no id mapping (a run stopped
//! between the two writes of an older version), which is stored then. Memory: one entry per
//! record of each side (its key and mapped values); pairing is a one-off, run from an
//! operator's machine.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use relay_attio::{
    AttioApi, AttioClient, AttioError, AttioValues, AttioWriter, Record, RecordQuery,
    current_values,
};
use relay_crm::{CrmId, CrmObject, CrmRecordState, CrmSink, CrmSource, ID_PROPERTY, Properties};
use relay_events::clock::Clock;
use relay_mappings::{IdMappings, Ledger, SyncDirection, SyncLedger, Synced};
use relay_reconcile::RecordPageSource;
use relay_sync::two_way::{ledger_fingerprint, write_value};
use relay_sync::{OwnerIds, PropertySpec, RecordValues, SyncContext};

mod plan;

pub use plan::{Plan, Side, Unmatched, key, matching_key, plan};

/// Records per forward-sync call (HubSpot's batch upsert takes 100).
const CREATE_BATCH: usize = 100;

/// Attio records by their matching key, read right before a HubSpot-only object is asserted:
/// the plan's Attio side was read earlier, and a record created since (or missed by paging)
/// must be paired, not overwritten by the assert.
pub trait KeyLookup: Send + Sync {
    fn find(
        &self,
        slug: &str,
        attribute: &str,
        key: &str,
    ) -> impl Future<Output = Result<Vec<Record>, AttioError>> + Send;
}

impl KeyLookup for AttioClient {
    /// `POST /objects/{slug}/records/query` filtered on the attribute's normalised property
    /// (`email_addresses.email_address`, `domains.domain`; verbose `$eq` filters,
    /// <https://docs.attio.com/rest-api/guides/filtering-and-sorting>). Two at most: Attio
    /// keeps both attributes unique, a second answer is reported, never guessed between.
    async fn find(
        &self,
        slug: &str,
        attribute: &str,
        key: &str,
    ) -> Result<Vec<Record>, AttioError> {
        let field = if attribute == "domains" {
            "domain"
        } else {
            "email_address"
        };
        let filter = serde_json::json!({ attribute: { field: { "$eq": key } } });
        let query = RecordQuery::new().filter(filter).limit(2);
        self.query_records(slug, &query).await
    }
}

/// What the writes did.
#[derive(Debug, Default)]
pub struct Done {
    pub paired: usize,
    /// Linked objects whose id mapping was stored now.
    pub repaired: usize,
    pub created_in_hubspot: usize,
    pub created_in_attio: usize,
    /// (side and id, why): records whose write failed; the rest went on.
    pub failed: Vec<(String, String)>,
}

/// The run's settings.
pub struct Pairing<'a> {
    pub slug: &'a str,
    pub object: CrmObject,
    pub page_size: u32,
    pub dry_run: bool,
    pub clock: &'a dyn Clock,
}

/// Reads both sides, plans, writes (unless a dry run), prints the report. Errors when a
/// record failed, after the others were written.
pub async fn run<S, M, A, R>(
    ctx: &SyncContext<S, M, A>,
    source: &R,
    settings: &Pairing<'_>,
) -> anyhow::Result<()>
where
    S: CrmSink + CrmSource,
    M: IdMappings + SyncLedger,
    A: AttioApi + AttioWriter,
    R: RecordPageSource + KeyLookup,
{
    let (slug, object) = (settings.slug, settings.object);
    anyhow::ensure!(
        !ctx.needs_two_way(),
        "the field mapping sends properties back, and this run has no ledger or conflicts store to compare them with"
    );
    let (property, attribute) = matching_key(object).with_context(|| {
        format!("--direction both pairs people (by email) and companies (by domain), not {object}")
    })?;
    let mapping = ctx
        .fields
        .objects
        .get(slug)
        .with_context(|| format!("the field mapping has no [objects.{slug}]"))?;
    let reversible: Vec<(&str, &PropertySpec)> = mapping
        .properties
        .iter()
        .filter(|(p, s)| s.reverse_problem().is_none() && p.as_str() != ID_PROPERTY)
        .map(|(p, s)| (p.as_str(), s))
        .collect();
    let mut asked: BTreeSet<&str> = reversible.iter().map(|(p, _)| *p).collect();
    asked.extend([property, ID_PROPERTY]);
    let asked: Vec<&str> = asked.into_iter().collect();

    let progress = spinner(&format!("reading HubSpot {object}"));
    let mut crm_states: Vec<CrmRecordState> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = ctx.crm.list_page(object, &asked, after.as_deref()).await?;
        crm_states.extend(page.records);
        progress.set_position(crm_states.len() as u64);
        match page.after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    progress.set_message(format!("reading Attio {slug}"));
    progress.set_position(0);
    let mut records: Vec<Record> = Vec::new();
    loop {
        let offset = u32::try_from(records.len()).unwrap_or(u32::MAX);
        let page = source.page(slug, offset, settings.page_size).await?;
        let short = page.len() < settings.page_size as usize;
        records.extend(page);
        progress.set_position(records.len() as u64);
        if short {
            break;
        }
    }
    progress.finish_and_clear();

    let text = |state: &CrmRecordState, p: &str| state.properties.get(p).cloned().flatten();
    let (mut hubspot, mut linked_keys, mut linked_ids) =
        (Vec::new(), BTreeSet::new(), BTreeSet::new());
    for state in &crm_states {
        let keys: Vec<String> = text(state, property)
            .as_deref()
            .and_then(|k| key(object, k))
            .into_iter()
            .collect();
        match text(state, ID_PROPERTY) {
            Some(owner) => {
                linked_keys.extend(keys);
                linked_ids.insert(owner);
            }
            None => hubspot.push(Side {
                id: state.id.0.clone(),
                keys,
            }),
        }
    }
    let attio: Vec<Side> = records
        .iter()
        .map(|r| Side {
            id: r.record_id().to_owned(),
            keys: current_values(&r.values, attribute)
                .filter_map(relay_attio::Value::as_display_string)
                .filter_map(|k| key(object, &k))
                .collect(),
        })
        .collect();
    let mut plan = plan(&attio, &hubspot, &linked_keys, &linked_ids);
    plan.already_linked = crm_states.len() - hubspot.len();
    plan.repairs = unmapped_links(ctx, object, &crm_states, &records).await?;

    let mut done = Done::default();
    if !settings.dry_run {
        let work =
            plan.repairs.len() + plan.pairs.len() + plan.attio_only.len() + plan.hubspot_only.len();
        let bar = ProgressBar::new(work as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {pos}/{len} ({per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(format!("pairing {slug} with {object}"));
        let writer = Writer {
            ctx,
            lookup: source,
            slug,
            object,
            attribute,
            reversible: &reversible,
            now_ms: settings.clock.now() * 1000,
        };
        let record = |id: &str| records.iter().find(|r| r.record_id() == id);
        let state = |id: &str| crm_states.iter().find(|s| s.id.0 == id);
        for (attio_id, crm_id) in &plan.repairs {
            let (Some(record), Some(state)) = (record(attio_id), state(crm_id)) else {
                continue;
            };
            match writer.repair(record, state).await {
                Ok(()) => done.repaired += 1,
                Err(e) => done.failed.push((
                    format!("repair attio {attio_id} / hubspot {crm_id}"),
                    format!("{e:#}"),
                )),
            }
            bar.inc(1);
        }
        for (attio_id, crm_id) in &plan.pairs {
            let (Some(record), Some(state)) = (record(attio_id), state(crm_id)) else {
                continue;
            };
            match writer.pair(record, state).await {
                Ok(()) => done.paired += 1,
                Err(e) => done.failed.push((
                    format!("pair attio {attio_id} / hubspot {crm_id}"),
                    format!("{e:#}"),
                )),
            }
            bar.inc(1);
        }
        for crm_id in &plan.hubspot_only {
            let Some(state) = state(crm_id) else { continue };
            match writer.create_in_attio(state).await {
                Ok(Created::Asserted) => done.created_in_attio += 1,
                Ok(Created::Paired) => done.paired += 1,
                Err(e) => done
                    .failed
                    .push((format!("hubspot {crm_id}"), format!("{e:#}"))),
            }
            bar.inc(1);
        }
        let only: Vec<Record> = plan
            .attio_only
            .iter()
            .filter_map(|id| record(id).cloned())
            .collect();
        for chunk in only.chunks(CREATE_BATCH) {
            match writer.create_in_hubspot(chunk).await {
                Ok((created, failed)) => {
                    done.created_in_hubspot += created;
                    done.failed.extend(failed);
                }
                Err(e) => done.failed.extend(
                    chunk
                        .iter()
                        .map(|r| (format!("attio {}", r.record_id()), format!("{e:#}"))),
                ),
            }
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
    }
    print_report(settings, &plan, &done, property);
    anyhow::ensure!(
        done.failed.is_empty(),
        "{} record(s) failed (listed above); run again to retry them: pairs already written are linked and counted as such",
        done.failed.len()
    );
    Ok(())
}

fn spinner(message: &str) -> ProgressBar {
    let progress = ProgressBar::new_spinner();
    progress.set_style(
        ProgressStyle::with_template("{spinner} {msg} {pos} records ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    progress.set_message(message.to_owned());
    progress
}

/// Linked HubSpot objects (they carry `attio_record_id`) whose Attio record was read and has
/// no id mapping: an earlier run stopped after linking and before the mapping, or the mapping
/// was lost. Without it the forward sync takes the record as never synced and sends every
/// `both` field blindly over HubSpot's values. An id named by two objects is left alone
/// (which copy is the record's is a guess). One mapping read per linked object.
async fn unmapped_links<S, M: IdMappings, A>(
    ctx: &SyncContext<S, M, A>,
    object: CrmObject,
    crm_states: &[CrmRecordState],
    records: &[Record],
) -> anyhow::Result<Vec<(String, String)>> {
    let read: BTreeSet<&str> = records.iter().map(Record::record_id).collect();
    let mut owners: BTreeMap<String, Vec<&CrmRecordState>> = BTreeMap::new();
    for state in crm_states {
        if let Some(owner) = state.properties.get(ID_PROPERTY).cloned().flatten() {
            owners.entry(owner).or_default().push(state);
        }
    }
    let mut repairs = Vec::new();
    for (owner, states) in owners {
        let [state] = states.as_slice() else { continue };
        if read.contains(owner.as_str()) && ctx.mappings.get(object, &owner).await?.is_none() {
            repairs.push((owner, state.id.0.clone()));
        }
    }
    Ok(repairs)
}

/// What [`Writer::create_in_attio`] came to.
enum Created {
    /// The record was asserted in Attio (new) and linked.
    Asserted,
    /// Attio had the record by then: paired with it instead.
    Paired,
}

/// The writes of one run.
struct Writer<'a, S, M, A, L> {
    ctx: &'a SyncContext<S, M, A>,
    lookup: &'a L,
    slug: &'a str,
    object: CrmObject,
    attribute: &'a str,
    reversible: &'a [(&'a str, &'a PropertySpec)],
    now_ms: i64,
}

impl<S, M, A, L> Writer<'_, S, M, A, L>
where
    S: CrmSink + CrmSource,
    M: IdMappings + SyncLedger,
    A: AttioApi + AttioWriter,
    L: KeyLookup,
{
    /// The id mapping, then `attio_record_id` on the HubSpot object — in that order, as the
    /// `hubspot` consumer links: a run stopped in between leaves a mapping with an unlinked
    /// object, which the next run pairs again (both writes are idempotent). The other order
    /// would leave a linked object the next run skips, with no mapping, and the forward sync
    /// would then send every `both` field blindly (`unmapped_links` repairs such objects).
    async fn link(&self, record_id: &str, crm_id: &CrmId) -> anyhow::Result<()> {
        self.ctx
            .mappings
            .put(self.object, record_id, crm_id)
            .await?;
        let link: Properties = [(ID_PROPERTY.to_owned(), record_id.to_owned())].into();
        self.ctx.crm.update(self.object, crm_id, &link).await?;
        Ok(())
    }

    /// `entries` into the ledger, when there are any.
    async fn record(&self, record_id: &str, entries: Ledger) -> anyhow::Result<()> {
        if !entries.is_empty() {
            self.ctx
                .mappings
                .record(self.object, record_id, &entries)
                .await?;
        }
        Ok(())
    }

    async fn pair(&self, record: &Record, state: &CrmRecordState) -> anyhow::Result<()> {
        self.link(record.record_id(), &state.id).await?;
        self.agree(record, state).await
    }

    /// A linked object whose mapping is missing: the mapping, and the ledger as for a pair.
    async fn repair(&self, record: &Record, state: &CrmRecordState) -> anyhow::Result<()> {
        self.ctx
            .mappings
            .put(self.object, record.record_id(), &state.id)
            .await?;
        self.agree(record, state).await
    }

    /// Records the `both` fields on which the pair already agrees. Different ones are left to
    /// the first sync (later change wins).
    async fn agree(&self, record: &Record, state: &CrmRecordState) -> anyhow::Result<()> {
        let source = RecordValues(&record.values);
        let mut entries = Ledger::new();
        for (property, spec) in self.ctx.fields.both_ways(self.slug) {
            let attio = spec.value(&source, &OwnerIds::new()).ok().flatten();
            let hubspot = state.properties.get(property).cloned().flatten();
            let fingerprint = ledger_fingerprint(spec, attio.as_deref());
            if fingerprint == ledger_fingerprint(spec, hubspot.as_deref()) {
                entries.insert(
                    property.to_owned(),
                    synced(
                        fingerprint.clone(),
                        fingerprint,
                        self.now_ms,
                        SyncDirection::AttioToHubspot,
                    ),
                );
            }
        }
        self.record(record.record_id(), entries).await
    }

    /// A HubSpot-only object into Attio. Attio is asked for its key first, and a record found
    /// is paired, not overwritten. Otherwise the assert carries the key and the properties
    /// that flow back; the mapped properties that only flow to HubSpot are then set only
    /// where the asserted record holds nothing (an empty attribute would empty HubSpot's
    /// property on Attio's next change; a value Attio holds is never overwritten — a PUT
    /// replaces multiselect values). The ledger records each `both` field in both forms:
    /// HubSpot's, and Attio's as the returned record holds it (Attio reformats phones and
    /// domains; compared with HubSpot's form that would read as an Attio change).
    async fn create_in_attio(&self, state: &CrmRecordState) -> anyhow::Result<Created> {
        let (property, _) = matching_key(self.object).unwrap_or_default();
        let key = state
            .properties
            .get(property)
            .cloned()
            .flatten()
            .and_then(|k| key(self.object, &k))
            .context("no key to assert by")?;
        let found = self.lookup.find(self.slug, self.attribute, &key).await?;
        match found.as_slice() {
            [] => {}
            [record] => {
                let record_id = record.record_id();
                if let Some(other) = self.ctx.mappings.get(self.object, record_id).await?
                    && other != state.id
                {
                    anyhow::bail!(
                        "Attio record {record_id} holds {key} and is synced to HubSpot {other} already: not linked"
                    );
                }
                self.pair(record, state).await?;
                return Ok(Created::Paired);
            }
            several => anyhow::bail!("{} Attio records hold {key}: not linked", several.len()),
        }
        let (back, rest): (Vec<_>, Vec<_>) = self
            .reversible
            .iter()
            .partition(|(_, spec)| spec.direction.to_attio());
        let value = |p: &str| state.properties.get(p).cloned().flatten();
        let mut values = AttioValues::new();
        for (property, spec) in &back {
            if let Some(v) = value(property) {
                write_value(spec, Some(&v), None, &mut values);
            }
        }
        // The key as matched (a domain without scheme or path), whether mapped or not.
        values.insert(self.attribute.to_owned(), serde_json::json!([key]));
        let mut record = self
            .ctx
            .attio
            .assert_record(self.slug, self.attribute, &values)
            .await?;
        let held = RecordValues(&record.values);
        let mut fill = AttioValues::new();
        for (property, spec) in &rest {
            let empty = spec.value(&held, &OwnerIds::new()).ok().flatten().is_none();
            if let (true, Some(v)) = (empty, value(property)) {
                write_value(spec, Some(&v), Some(&record.values), &mut fill);
            }
        }
        fill.remove(self.attribute);
        if !fill.is_empty() {
            record = self
                .ctx
                .attio
                .update_record(self.slug, record.record_id(), &fill)
                .await?;
        }
        let record_id = record.record_id().to_owned();
        self.link(&record_id, &state.id).await?;
        let entries = created_entries(
            &self.ctx.fields.both_ways(self.slug),
            state,
            &record,
            self.now_ms,
        );
        self.record(&record_id, entries).await?;
        Ok(Created::Asserted)
    }

    /// Attio-only records through the forward sync, which records the ledger of the `both`
    /// fields it sent (`SyncContext::sync_page` with the two-way stores); returns how many
    /// were created and the failures.
    async fn create_in_hubspot(
        &self,
        records: &[Record],
    ) -> anyhow::Result<(usize, Vec<(String, String)>)> {
        let report = self
            .ctx
            .sync_page(self.slug, records)
            .await
            .map_err(|e| anyhow::anyhow!("{:?}", e.0))?;
        let failures = report
            .failed
            .into_iter()
            .map(|(id, why)| (format!("attio {id}"), why))
            .collect();
        Ok((report.synced, failures))
    }
}

/// A ledger entry agreed at `now_ms` (Attio's form kept only when it reads differently).
fn synced(hubspot: String, attio: String, now_ms: i64, direction: SyncDirection) -> Synced {
    Synced {
        attio_fingerprint: (attio != hubspot).then_some(attio),
        fingerprint: hubspot,
        at_ms: now_ms,
        direction,
    }
}

/// The ledger of a record just created in Attio from `state`: each reversible `both` field
/// in HubSpot's form and in the form Attio gave it back (`record`, the write's answer).
fn created_entries(
    both: &[(&str, &PropertySpec)],
    state: &CrmRecordState,
    record: &Record,
    now_ms: i64,
) -> Ledger {
    let held = RecordValues(&record.values);
    both.iter()
        .filter(|(_, spec)| spec.reverse_problem().is_none())
        .map(|(property, spec)| {
            let hubspot = state.properties.get(*property).cloned().flatten();
            let attio = spec.value(&held, &OwnerIds::new()).ok().flatten();
            let entry = synced(
                ledger_fingerprint(spec, hubspot.as_deref()),
                ledger_fingerprint(spec, attio.as_deref()),
                now_ms,
                SyncDirection::HubspotToAttio,
            );
            ((*property).to_owned(), entry)
        })
        .collect()
}

fn print_report(settings: &Pairing<'_>, plan: &Plan, done: &Done, key: &str) {
    let (slug, object) = (settings.slug, settings.object);
    if settings.dry_run {
        println!("dry run: nothing written. {slug} <-> HubSpot {object} would be:");
        println!("  paired:             {}", plan.pairs.len());
        println!("  created in HubSpot: {}", plan.attio_only.len());
        println!("  created in Attio:   {}", plan.hubspot_only.len());
    } else {
        println!("{slug} <-> HubSpot {object}:");
        println!("  paired:             {}", done.paired);
        println!("  created in HubSpot: {}", done.created_in_hubspot);
        println!("  created in Attio:   {}", done.created_in_attio);
    }
    println!("  already linked:     {}", plan.already_linked);
    if settings.dry_run {
        println!("  links to repair:    {}", plan.repairs.len());
        for (attio, crm) in &plan.repairs {
            println!("    repair: attio {attio} <-> hubspot {crm} (linked, no id mapping)");
        }
    } else {
        println!("  links repaired:     {}", done.repaired);
    }
    println!("  could not match:    {}", plan.unmatched.len());
    if settings.dry_run {
        for (attio, crm) in &plan.pairs {
            println!("    pair: attio {attio} <-> hubspot {crm}");
        }
        for id in &plan.attio_only {
            println!("    to HubSpot: attio {id}");
        }
        for id in &plan.hubspot_only {
            println!("    to Attio: hubspot {id}");
        }
    }
    if !plan.unmatched.is_empty() {
        println!("could not match (nothing written for them):");
    }
    let list = |ids: &[String]| {
        if ids.is_empty() {
            "-".to_owned()
        } else {
            ids.join(", ")
        }
    };
    for unmatched in &plan.unmatched {
        match unmatched {
            Unmatched::NoKey { attio, hubspot } => {
                let who = match (attio, hubspot) {
                    (Some(a), _) => format!("attio {a}"),
                    (None, Some(h)) => format!("hubspot {h}"),
                    (None, None) => "?".to_owned(),
                };
                println!("  no {key}: {who}");
            }
            Unmatched::Several {
                keys,
                attio,
                hubspot,
            } => println!(
                "  several matches on {key} {}: attio [{}] hubspot [{}]",
                keys.join(", "),
                list(attio),
                list(hubspot)
            ),
            Unmatched::Taken {
                keys,
                attio,
                hubspot,
            } => println!(
                "  {key} {} is on a HubSpot object already linked to another record: attio [{}] hubspot [{}]",
                keys.join(", "),
                list(attio),
                list(hubspot)
            ),
        }
    }
    for (what, why) in &done.failed {
        println!("  failed: {what}: {why}");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_created_record_is_recorded_in_the_form_attio_gave_it_back() {
        let spec = PropertySpec::path("domains");
        let both = [("domain", &spec)];
        let state = CrmRecordState {
            id: CrmId("17".into()),
            properties: [(
                "domain".to_owned(),
                Some("https://www.Acme.com/".to_owned()),
            )]
            .into(),
            changes: BTreeMap::new(),
        };
        // Attio stores domains, not URLs: the asserted record answers the host alone.
        let record: Record = serde_json::from_value(json!({
            "id": {"workspace_id": "w", "object_id": "o", "record_id": "r1"},
            "created_at": "2024-01-01T00:00:00.000000000Z",
            "values": {"domains": [{
                "active_from": "2024-01-01T00:00:00.000000000Z", "active_until": null,
                "created_by_actor": {"type": "api-token", "id": "t"},
                "attribute_type": "domain", "domain": "acme.com", "root_domain": "acme.com"
            }]}
        }))
        .expect("record");
        let entries = created_entries(&both, &state, &record, 5);
        let entry = &entries["domain"];
        assert_eq!(
            entry.fingerprint,
            ledger_fingerprint(&spec, Some("https://www.Acme.com/"))
        );
        assert_eq!(
            entry.attio_side(),
            ledger_fingerprint(&spec, Some("acme.com")),
            "Attio's value compares with Attio's form: no spurious change"
        );
        assert_eq!(entry.direction, SyncDirection::HubspotToAttio);
    }
}
