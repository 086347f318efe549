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
//! 3. Unless `--dry-run`: each pair gets `attio_record_id` on its HubSpot object and its id
//!    mapping, and the ledger records the `both` fields on which the two sides already agree
//!    (the next change to them is then a change, not a conflict); Attio-only records go to
//!    HubSpot through the forward sync (`SyncContext::sync_page`, the consumers' upsert);
//!    HubSpot-only objects are asserted in Attio by their key (`AttioWriter::assert_record`)
//!    with every mapped property that can be reversed — whatever its direction: the record is
//!    new, and an attribute left empty would be sent back and empty HubSpot's property on
//!    Attio's next change — then linked the same way.
//!
//! Objects already carrying `attio_record_id` were paired before (by the relay's upserts) and
//! are counted, not touched. Memory: one entry per record of each side (its key and mapped
//! values); pairing is a one-off, run from an operator's machine.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use relay_attio::{AttioApi, AttioValues, AttioWriter, Record, current_values};
use relay_crm::{CrmId, CrmObject, CrmRecordState, CrmSink, CrmSource, ID_PROPERTY, Properties};
use relay_events::clock::Clock;
use relay_mappings::{IdMappings, Ledger, SyncDirection, SyncLedger, Synced};
use relay_reconcile::RecordPageSource;
use relay_sync::two_way::{ledger_fingerprint, write_value};
use relay_sync::{OwnerIds, PropertySpec, RecordValues, SyncContext};

/// Records per forward-sync call (HubSpot's batch upsert takes 100).
const CREATE_BATCH: usize = 100;

/// The HubSpot property and the Attio attribute a CRM object is paired by.
pub fn matching_key(object: CrmObject) -> Option<(&'static str, &'static str)> {
    match object {
        CrmObject::Contacts => Some(("email", "email_addresses")),
        CrmObject::Companies => Some(("domain", "domains")),
        _ => None,
    }
}

/// An email or domain as compared: both services compare them without case.
fn key(text: &str) -> Option<String> {
    let key = text.trim().to_ascii_lowercase();
    (!key.is_empty()).then_some(key)
}

/// One side's record as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    pub id: String,
    pub keys: Vec<String>,
}

/// Why a group could not be matched. Nothing is written for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmatched {
    /// A record without an email or domain.
    NoKey {
        attio: Option<String>,
        hubspot: Option<String>,
    },
    /// Several records on one side (or both) share keys: which pairs with which is a guess.
    Several {
        keys: Vec<String>,
        attio: Vec<String>,
        hubspot: Vec<String>,
    },
    /// The key is on a HubSpot object already linked to another Attio record.
    Taken {
        keys: Vec<String>,
        attio: Vec<String>,
        hubspot: Vec<String>,
    },
}

/// What initial matching will do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// (Attio record id, HubSpot id).
    pub pairs: Vec<(String, String)>,
    pub attio_only: Vec<String>,
    pub hubspot_only: Vec<String>,
    pub unmatched: Vec<Unmatched>,
    /// HubSpot objects that already carry an `attio_record_id`.
    pub already_linked: usize,
}

/// Pairs `attio` records with `hubspot` objects by shared keys. `linked`: the keys of HubSpot
/// objects that already carry an `attio_record_id` (left out of `hubspot`), and the Attio ids
/// they name (left out of the plan).
pub fn plan(
    attio: &[Side],
    hubspot: &[Side],
    linked_keys: &BTreeSet<String>,
    linked_ids: &BTreeSet<String>,
) -> Plan {
    let mut plan = Plan::default();
    // Union-find over the nodes: Attio records 0..a, HubSpot objects a..a+h.
    let a = attio.len();
    let nodes: Vec<&Side> = attio.iter().chain(hubspot).collect();
    let mut parent: Vec<usize> = (0..nodes.len()).collect();
    fn root(parent: &mut [usize], mut n: usize) -> usize {
        while parent[n] != n {
            parent[n] = parent[parent[n]];
            n = parent[n];
        }
        n
    }
    let mut holder: BTreeMap<&str, usize> = BTreeMap::new();
    for (n, side) in nodes.iter().enumerate() {
        if n < a && linked_ids.contains(&side.id) {
            continue;
        }
        for k in &side.keys {
            match holder.get(k.as_str()) {
                Some(&other) => {
                    let (x, y) = (root(&mut parent, n), root(&mut parent, other));
                    parent[x] = y;
                }
                None => {
                    holder.insert(k, n);
                }
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (n, side) in nodes.iter().enumerate() {
        if n < a && linked_ids.contains(&side.id) {
            continue;
        }
        let r = root(&mut parent, n);
        groups.entry(r).or_default().push(n);
    }
    for members in groups.values() {
        let (attio_ids, hubspot_ids): (Vec<usize>, Vec<usize>) =
            members.iter().partition(|n| **n < a);
        let ids =
            |ns: &[usize]| -> Vec<String> { ns.iter().map(|n| nodes[*n].id.clone()).collect() };
        let keys: Vec<String> = members
            .iter()
            .flat_map(|n| nodes[*n].keys.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if keys.is_empty() {
            let one = |ns: &[usize]| ns.first().map(|n| nodes[*n].id.clone());
            plan.unmatched.push(Unmatched::NoKey {
                attio: one(&attio_ids),
                hubspot: one(&hubspot_ids),
            });
            continue;
        }
        if keys.iter().any(|k| linked_keys.contains(k)) {
            plan.unmatched.push(Unmatched::Taken {
                keys,
                attio: ids(&attio_ids),
                hubspot: ids(&hubspot_ids),
            });
            continue;
        }
        match (attio_ids.as_slice(), hubspot_ids.as_slice()) {
            ([x], [y]) => plan
                .pairs
                .push((nodes[*x].id.clone(), nodes[*y].id.clone())),
            ([x], []) => plan.attio_only.push(nodes[*x].id.clone()),
            ([], [y]) => plan.hubspot_only.push(nodes[*y].id.clone()),
            _ => plan.unmatched.push(Unmatched::Several {
                keys,
                attio: ids(&attio_ids),
                hubspot: ids(&hubspot_ids),
            }),
        }
    }
    plan
}

/// What the writes did.
#[derive(Debug, Default)]
pub struct Done {
    pub paired: usize,
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
    R: RecordPageSource,
{
    let (slug, object) = (settings.slug, settings.object);
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
            .and_then(key)
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
                .filter_map(|k| key(&k))
                .collect(),
        })
        .collect();
    let mut plan = plan(&attio, &hubspot, &linked_keys, &linked_ids);
    plan.already_linked = crm_states.len() - hubspot.len();

    let mut done = Done::default();
    if !settings.dry_run {
        let work = plan.pairs.len() + plan.attio_only.len() + plan.hubspot_only.len();
        let bar = ProgressBar::new(work as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {pos}/{len} ({per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(format!("pairing {slug} with {object}"));
        let writer = Writer {
            ctx,
            slug,
            object,
            attribute,
            reversible: &reversible,
            now_ms: settings.clock.now() * 1000,
        };
        let record = |id: &str| records.iter().find(|r| r.record_id() == id);
        let state = |id: &str| crm_states.iter().find(|s| s.id.0 == id);
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
                Ok(()) => done.created_in_attio += 1,
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

/// The writes of one run.
struct Writer<'a, S, M, A> {
    ctx: &'a SyncContext<S, M, A>,
    slug: &'a str,
    object: CrmObject,
    attribute: &'a str,
    reversible: &'a [(&'a str, &'a PropertySpec)],
    now_ms: i64,
}

impl<S, M, A> Writer<'_, S, M, A>
where
    S: CrmSink + CrmSource,
    M: IdMappings + SyncLedger,
    A: AttioApi + AttioWriter,
{
    /// `attio_record_id` on the HubSpot object, then the id mapping (a failure in between
    /// leaves the object linked; the next run counts it as linked and the consumers find the
    /// mapping by upserting on `attio_record_id`).
    async fn link(&self, record_id: &str, crm_id: &CrmId) -> anyhow::Result<()> {
        let link: Properties = [(ID_PROPERTY.to_owned(), record_id.to_owned())].into();
        self.ctx.crm.update(self.object, crm_id, &link).await?;
        self.ctx
            .mappings
            .put(self.object, record_id, crm_id)
            .await?;
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

    fn synced(&self, spec: &PropertySpec, value: Option<&str>, direction: SyncDirection) -> Synced {
        Synced {
            fingerprint: ledger_fingerprint(spec, value),
            at_ms: self.now_ms,
            direction,
            attio_fingerprint: None,
        }
    }

    async fn pair(&self, record: &Record, state: &CrmRecordState) -> anyhow::Result<()> {
        let record_id = record.record_id();
        self.link(record_id, &state.id).await?;
        let source = RecordValues(&record.values);
        let mut entries = Ledger::new();
        for (property, spec) in self.ctx.fields.both_ways(self.slug) {
            let attio = spec.value(&source, &OwnerIds::new()).ok().flatten();
            let hubspot = state.properties.get(property).cloned().flatten();
            let fingerprint = ledger_fingerprint(spec, attio.as_deref());
            // Agreed already: record it. Different: the first sync decides (later change wins).
            if fingerprint == ledger_fingerprint(spec, hubspot.as_deref()) {
                entries.insert(
                    property.to_owned(),
                    self.synced(spec, attio.as_deref(), SyncDirection::AttioToHubspot),
                );
            }
        }
        self.record(record_id, entries).await
    }

    async fn create_in_attio(&self, state: &CrmRecordState) -> anyhow::Result<()> {
        let mut values = AttioValues::new();
        for (property, spec) in self.reversible {
            let value = state.properties.get(*property).cloned().flatten();
            if value.is_some() {
                write_value(spec, value.as_deref(), None, &mut values);
            }
        }
        if !values.contains_key(self.attribute) {
            // The key is not a mapped property: the assert still needs it to match on.
            let (property, _) = matching_key(self.object).unwrap_or_default();
            let key = state.properties.get(property).cloned().flatten();
            values.insert(self.attribute.to_owned(), serde_json::json!([key]));
        }
        let record = self
            .ctx
            .attio
            .assert_record(self.slug, self.attribute, &values)
            .await?;
        let record_id = record.record_id().to_owned();
        self.link(&record_id, &state.id).await?;
        let mut entries = Ledger::new();
        for (property, spec) in self.ctx.fields.both_ways(self.slug) {
            if spec.reverse_problem().is_none() {
                let value = state.properties.get(property).cloned().flatten();
                entries.insert(
                    property.to_owned(),
                    self.synced(spec, value.as_deref(), SyncDirection::HubspotToAttio),
                );
            }
        }
        self.record(&record_id, entries).await
    }

    /// Attio-only records through the forward sync; returns how many were created and the
    /// failures. The ledger records the `both` fields as sent.
    async fn create_in_hubspot(
        &self,
        records: &[Record],
    ) -> anyhow::Result<(usize, Vec<(String, String)>)> {
        let report = self
            .ctx
            .sync_page(self.slug, records)
            .await
            .map_err(|e| anyhow::anyhow!("{:?}", e.0))?;
        let failed: BTreeSet<&str> = report.failed.iter().map(|(id, _)| id.as_str()).collect();
        for record in records.iter().filter(|r| !failed.contains(r.record_id())) {
            let source = RecordValues(&record.values);
            let mut entries = Ledger::new();
            for (property, spec) in self.ctx.fields.both_ways(self.slug) {
                let value = spec.value(&source, &OwnerIds::new()).ok().flatten();
                entries.insert(
                    property.to_owned(),
                    self.synced(spec, value.as_deref(), SyncDirection::AttioToHubspot),
                );
            }
            self.record(record.record_id(), entries).await?;
        }
        let failures = report
            .failed
            .into_iter()
            .map(|(id, why)| (format!("attio {id}"), why))
            .collect();
        Ok((report.synced, failures))
    }
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
    use super::*;

    fn side(id: &str, keys: &[&str]) -> Side {
        Side {
            id: id.to_owned(),
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    #[test]
    fn shared_keys_pair_one_to_one_and_anything_else_is_left_alone() {
        let attio = [
            side("a1", &["ada@x"]),
            side("a2", &["bob@x"]),
            side("a3", &["cy@x", "cy@y"]),
            side("a4", &[]),
            side("a5", &["dee@x"]),
            side("a6", &["old@x"]),
            side("a7", &["linked@x"]),
        ];
        let hubspot = [
            side("h1", &["ada@x"]),
            side("h3", &["cy@x"]),
            side("h4", &["cy@y"]),
            side("h5", &["new@x"]),
            side("h6", &[]),
            side("h7", &["twice@x"]),
            side("h8", &["twice@x"]),
        ];
        let linked_keys: BTreeSet<String> = ["linked@x".to_owned()].into();
        let linked_ids: BTreeSet<String> = ["a6".to_owned()].into();
        let plan = plan(&attio, &hubspot, &linked_keys, &linked_ids);
        assert_eq!(plan.pairs, [("a1".to_owned(), "h1".to_owned())]);
        assert_eq!(plan.attio_only, ["a2", "a5"]);
        assert_eq!(plan.hubspot_only, ["h5"]);
        assert!(plan.unmatched.contains(&Unmatched::Several {
            keys: vec!["cy@x".into(), "cy@y".into()],
            attio: vec!["a3".into()],
            hubspot: vec!["h3".into(), "h4".into()],
        }));
        assert!(plan.unmatched.contains(&Unmatched::Several {
            keys: vec!["twice@x".into()],
            attio: vec![],
            hubspot: vec!["h7".into(), "h8".into()],
        }));
        assert!(plan.unmatched.contains(&Unmatched::NoKey {
            attio: Some("a4".into()),
            hubspot: None
        }));
        assert!(plan.unmatched.contains(&Unmatched::NoKey {
            attio: None,
            hubspot: Some("h6".into())
        }));
        assert!(plan.unmatched.contains(&Unmatched::Taken {
            keys: vec!["linked@x".into()],
            attio: vec!["a7".into()],
            hubspot: vec![],
        }));
        assert_eq!(plan.unmatched.len(), 5, "{:?}", plan.unmatched);
        let planned = plan.pairs.len() * 2 + plan.attio_only.len() + plan.hubspot_only.len();
        // a3+h3+h4, h7+h8, a4, h6, a7: every record but the linked a6 is in one place.
        assert_eq!(planned + 3 + 2 + 1 + 1 + 1, attio.len() + hubspot.len() - 1);
    }
}
