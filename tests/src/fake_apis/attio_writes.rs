//! Writes in the Attio stand-in: what the way back (HubSpot → Attio) sends, answered as
//! Attio's references describe, and a user's edits made by the test.
//!
//! * **Assert** — `PUT /v2/objects/{object}/records?matching_attribute={slug}`
//!   (<https://docs.attio.com/rest-api/endpoint-reference/records/assert-a-record>): "The
//!   attribute must be unique" (`email_addresses` for people, `domains` for companies); the
//!   record holding the given value is updated, or a new one is made. An unknown matching
//!   attribute is 400 `value_not_found` "No attribute was found for matching_attribute slug/ID
//!   …"; a non-unique one, or values without it, 400 `validation_type`.
//! * **Update** — `PUT /v2/objects/{object}/records/{record_id}`
//!   (<https://docs.attio.com/rest-api/endpoint-reference/records/update-a-record-overwrite-multiselect-values>):
//!   the given attributes are overwritten; a record the fake does not hold is 404 `not_found`.
//! * **Values keep their history**, as Attio's value objects show: a changed value gets a new
//!   entry with `active_from` = now and `created_by_actor` = the writer, and the value it
//!   replaces gets `active_until` = now; a value written again unchanged is left as it was.
//!   Writes with the relay's token are by `{"type": "api-token", "id": <token id>}`, a test's
//!   [`FakeAttio::edit_as_user`] by a `workspace-member`.
//! * **Limit**: 25 writes per clock second (<https://docs.attio.com/rest-api/guides/rate-limiting>);
//!   the 26th is 429 `rate_limit_exceeded` with `Retry-After` as an HTTP date (the next
//!   second). The fault dice applies as to reads — and a write may be applied and its answer
//!   lost, which an idempotent `PUT` must survive.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde_json::{Map, Value, json};
use wiremock::{Request, ResponseTemplate};

use super::clock::attio_time;
use super::{FakeAttio, attio_error};

/// Attio's write limit per workspace per second.
pub const ATTIO_WRITES_PER_SECOND: usize = 25;
/// The relay's API token id unless the test sets one ([`FakeAttio::with_token_id`]).
pub const RELAY_TOKEN_ID: &str = "7e1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b";

/// Which write it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttioWriteKind {
    /// An assert; `created` when no record held the matching value.
    Assert {
        created: bool,
    },
    Update,
    /// A user's edit, made by the test.
    UserEdit,
}

/// One write the fake applied.
#[derive(Debug, Clone)]
pub struct AttioWrite {
    pub kind: AttioWriteKind,
    pub object: String,
    pub record_id: String,
    /// The values as sent.
    pub values: Map<String, Value>,
    /// The attributes whose active values changed (empty for an echo).
    pub changed: Vec<String>,
    /// `created_by_actor` of the values it made.
    pub actor: Value,
    pub at_ms: i64,
}

/// Records written to (by id: their object and `data`), every write, and the write count of
/// the current second.
#[derive(Debug, Default)]
pub(super) struct AttioWrites {
    records: BTreeMap<String, (String, Value)>,
    log: Vec<AttioWrite>,
    second: (i64, usize),
    next: u64,
}

/// The attribute each object's assert may match on (unique in Attio's standard objects).
fn unique_attribute(object: &str) -> Option<&'static str> {
    match object {
        "people" => Some("email_addresses"),
        "companies" => Some("domains"),
        _ => None,
    }
}

/// Whether a slug could name an attribute (anything else is `value_not_found`).
fn known_attribute(slug: &str) -> bool {
    !slug.is_empty() && slug.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

impl FakeAttio {
    /// "Now" for the writes' value histories and the write limit.
    pub fn with_clock(mut self, clock: super::FakeClock) -> Self {
        self.clock = clock;
        self
    }

    /// Writes by the relay are by this API token id.
    pub fn with_token_id(mut self, token_id: &str) -> Self {
        self.token_id = token_id.to_owned();
        self
    }

    /// The relay token's actor, as Attio puts it in `created_by_actor` and webhook events.
    pub fn relay_actor(&self) -> Value {
        json!({"type": "api-token", "id": self.token_id})
    }

    /// Every write applied (the relay's and the test's edits), in order.
    pub fn attio_writes(&self) -> Vec<AttioWrite> {
        self.writes.lock().expect("writes").log.clone()
    }

    /// The relay's writes that changed something: an echo changes nothing.
    pub fn relay_changes(&self) -> Vec<AttioWrite> {
        let actor = self.relay_actor();
        self.attio_writes()
            .into_iter()
            .filter(|w| w.actor == actor && !w.changed.is_empty())
            .collect()
    }

    /// Edits a record as a workspace member would in the app: the values (in the write format)
    /// are applied with that member as actor, unmetered. Returns the changed attributes; `None`
    /// for a record the fake does not hold.
    pub fn edit_as_user(
        &self,
        object: &str,
        record_id: &str,
        member_id: &str,
        values: Value,
    ) -> Option<Vec<String>> {
        let values = values.as_object().cloned().unwrap_or_default();
        let actor = json!({"type": "workspace-member", "id": member_id});
        let mut writes = self.writes.lock().expect("writes");
        self.load(&mut writes, object, record_id)?;
        Some(self.apply(
            &mut writes,
            AttioWriteKind::UserEdit,
            object,
            record_id,
            &values,
            actor,
        ))
    }

    /// A person's `data` as the fake serves it now: as last written, else its template.
    pub fn person_record(&self, record_id: &str) -> Value {
        self.stored_record(record_id)
            .unwrap_or_else(|| self.template_person(record_id)["data"].clone())
    }

    /// The `data` of a record the fake wrote to, if any.
    pub(super) fn stored_record(&self, record_id: &str) -> Option<Value> {
        let writes = self.writes.lock().expect("writes");
        writes.records.get(record_id).map(|(_, data)| data.clone())
    }

    /// `PUT` on a record path: assert or update.
    pub(super) fn write(&self, request: &Request) -> ResponseTemplate {
        let segments: Vec<&str> = request.url.path().trim_matches('/').split('/').collect();
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return attio_error(400, "validation_type", "Body is not JSON.");
        };
        let Some(values) = body["data"]["values"].as_object().cloned() else {
            return attio_error(
                400,
                "validation_type",
                "Body must be {\"data\": {\"values\": {...}}}.",
            );
        };
        let now = self.clock.now_ms();
        {
            let mut writes = self.writes.lock().expect("writes");
            let second = now.div_euclid(1000);
            if writes.second.0 != second {
                writes.second = (second, 0);
            }
            if writes.second.1 >= ATTIO_WRITES_PER_SECOND {
                let next = self.clock.system_time()
                    + std::time::Duration::from_millis(
                        u64::try_from(1000 - now.rem_euclid(1000)).unwrap_or(1000),
                    );
                return attio_error(
                    429,
                    "rate_limit_exceeded",
                    "Rate limit exceeded, please try again later",
                )
                .insert_header("retry-after", httpdate::fmt_http_date(next).as_str());
            }
            writes.second.1 += 1;
        }
        let lost = match self.dice.roll(3) {
            Some(0) => {
                return attio_error(429, "rate_limit_exceeded", "slow down")
                    .insert_header("retry-after", super::retry_after_date().as_str());
            }
            Some(1) => return attio_error(503, "service_unavailable", "try again"),
            Some(_) => true,
            None => false,
        };
        let answer = match segments.as_slice() {
            ["v2", "objects", object, "records"] => {
                let matching = request
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "matching_attribute")
                    .map(|(_, v)| v.into_owned());
                self.assert(object, matching.as_deref(), &values)
            }
            ["v2", "objects", object, "records", id] => self.update(object, id, &values),
            _ => return self.unexpected(request),
        };
        if lost {
            // Applied, but the answer never arrives: the client times out and sends it again.
            return ResponseTemplate::new(200)
                .set_body_json(json!({}))
                .set_delay(self.hang);
        }
        answer
    }

    fn assert(
        &self,
        object: &str,
        matching: Option<&str>,
        values: &Map<String, Value>,
    ) -> ResponseTemplate {
        let Some(matching) = matching.filter(|m| known_attribute(m)) else {
            let shown = matching.unwrap_or_default();
            return attio_error(
                400,
                "value_not_found",
                &format!("No attribute was found for matching_attribute slug/ID \"{shown}\"."),
            );
        };
        if unique_attribute(object) != Some(matching) {
            return attio_error(
                400,
                "validation_type",
                &format!("Attribute \"{matching}\" is not unique."),
            );
        }
        let wanted = values.get(matching).map(items).unwrap_or_default();
        let Some(key) = wanted.iter().find_map(|item| match_key(matching, item)) else {
            return attio_error(
                400,
                "validation_type",
                &format!("Values must include \"{matching}\" to match on."),
            );
        };
        let mut writes = self.writes.lock().expect("writes");
        let found = writes
            .records
            .iter()
            .find(|(_, (o, data))| o == object && active_keys(data, matching).contains(&key))
            .map(|(id, _)| id.clone())
            .or_else(|| self.template_match(object, &key));
        let (record_id, created) = match found {
            Some(id) => {
                self.load(&mut writes, object, &id);
                (id, false)
            }
            None => (self.create(&mut writes, object), true),
        };
        let actor = self.relay_actor();
        self.apply(
            &mut writes,
            AttioWriteKind::Assert { created },
            object,
            &record_id,
            values,
            actor,
        );
        self.served.fetch_add(1, Ordering::SeqCst);
        let data = writes.records[&record_id].1.clone();
        ResponseTemplate::new(200).set_body_json(json!({ "data": data }))
    }

    fn update(
        &self,
        object: &str,
        record_id: &str,
        values: &Map<String, Value>,
    ) -> ResponseTemplate {
        let mut writes = self.writes.lock().expect("writes");
        if self.load(&mut writes, object, record_id).is_none() {
            return attio_error(
                404,
                "not_found",
                &format!("Record with ID \"{record_id}\" not found."),
            );
        }
        let actor = self.relay_actor();
        self.apply(
            &mut writes,
            AttioWriteKind::Update,
            object,
            record_id,
            values,
            actor,
        );
        self.served.fetch_add(1, Ordering::SeqCst);
        let data = writes.records[record_id].1.clone();
        ResponseTemplate::new(200).set_body_json(json!({ "data": data }))
    }

    /// A person the fake serves from its template whose email is `key`.
    fn template_match(&self, object: &str, key: &str) -> Option<String> {
        let id = key.strip_suffix("@analytical.example")?;
        let gone = self.deleted.lock().expect("lock").contains(id);
        (object == "people" && !gone).then(|| id.to_owned())
    }

    /// Makes sure the record is held for writing: written before, or a template person the
    /// fake serves (copied). `None` when the fake does not hold it.
    fn load(&self, writes: &mut AttioWrites, object: &str, record_id: &str) -> Option<()> {
        if self.deleted.lock().expect("lock").contains(record_id) {
            return None;
        }
        if let Some((held, _)) = writes.records.get(record_id) {
            return (held == object).then_some(());
        }
        if object != "people" {
            return None;
        }
        let data = self.template_person(record_id)["data"].clone();
        writes
            .records
            .insert(record_id.to_owned(), (object.to_owned(), data));
        Some(())
    }

    fn create(&self, writes: &mut AttioWrites, object: &str) -> String {
        writes.next += 1;
        let id = format!("a5e27000-0000-4000-8000-{:012x}", writes.next);
        let object_id = if object == "people" {
            self.people_object_id.clone()
        } else {
            format!("{object}-object")
        };
        let workspace = self.person["data"]["id"]["workspace_id"].clone();
        let data = json!({
            "id": {"workspace_id": workspace, "object_id": object_id, "record_id": id},
            "created_at": attio_time(self.clock.now_ms()),
            "web_url": format!("https://app.attio.com/acme/{object}/{id}"),
            "values": {}
        });
        writes.records.insert(id.clone(), (object.to_owned(), data));
        id
    }

    /// Applies `values` to a held record with `actor`, logs the write, returns what changed.
    fn apply(
        &self,
        writes: &mut AttioWrites,
        kind: AttioWriteKind,
        object: &str,
        record_id: &str,
        values: &Map<String, Value>,
        actor: Value,
    ) -> Vec<String> {
        let at_ms = self.clock.now_ms();
        let now = attio_time(at_ms);
        let mut changed = Vec::new();
        if let Some((_, data)) = writes.records.get_mut(record_id) {
            for (slug, given) in values {
                let new: Vec<Value> = items(given).iter().map(|i| stored(slug, i)).collect();
                let slot = &mut data["values"][slug.as_str()];
                if !slot.is_array() {
                    *slot = json!([]);
                }
                if let Some(entries) = slot.as_array_mut()
                    && set_values(entries, &new, &now, &actor)
                {
                    changed.push(slug.clone());
                }
            }
        }
        writes.log.push(AttioWrite {
            kind,
            object: object.to_owned(),
            record_id: record_id.to_owned(),
            values: values.clone(),
            changed: changed.clone(),
            actor,
            at_ms,
        });
        changed
    }
}

/// A written value as a list of items (`null` clears).
fn items(given: &Value) -> Vec<Value> {
    match given {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// The value a matching attribute is matched by: an email address or a domain, lower-case.
fn match_key(attribute: &str, item: &Value) -> Option<String> {
    let stored = stored(attribute, item);
    let field = if attribute == "domains" {
        "domain"
    } else {
        "email_address"
    };
    stored[field].as_str().map(str::to_ascii_lowercase)
}

/// The active keys of `attribute` in a record's `data`.
fn active_keys(data: &Value, attribute: &str) -> Vec<String> {
    data["values"][attribute]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["active_until"].is_null())
        .filter_map(|v| match_key(attribute, v))
        .collect()
}

/// A written item in the shape Attio reads it back (without its metadata).
fn stored(slug: &str, item: &Value) -> Value {
    let text = |field: &str| {
        item.as_str()
            .or_else(|| item[field].as_str())
            .map(str::to_owned)
    };
    match slug {
        "email_addresses" => {
            let email = text("email_address").unwrap_or_default();
            let lower = email.to_ascii_lowercase();
            let (local, domain) = lower.split_once('@').unwrap_or((&lower, ""));
            json!({"original_email_address": email, "email_address": lower,
                   "email_domain": domain, "email_root_domain": domain,
                   "email_local_specifier": local, "attribute_type": "email-address"})
        }
        "domains" => {
            let domain = text("domain").unwrap_or_default().to_ascii_lowercase();
            json!({"domain": domain, "root_domain": domain, "attribute_type": "domain"})
        }
        "name" => {
            let first = item["first_name"].as_str().unwrap_or_default();
            let last = item["last_name"].as_str().unwrap_or_default();
            let full =
                text("full_name").unwrap_or_else(|| format!("{first} {last}").trim().to_owned());
            json!({"first_name": first, "last_name": last, "full_name": full,
                   "attribute_type": "personal-name"})
        }
        _ => match item {
            Value::Object(fields) => {
                let mut value = fields.clone();
                value.entry("attribute_type").or_insert(json!("text"));
                Value::Object(value)
            }
            Value::Number(_) => json!({"value": item, "attribute_type": "number"}),
            Value::Bool(_) => json!({"value": item, "attribute_type": "checkbox"}),
            _ => json!({"value": item, "attribute_type": "text"}),
        },
    }
}

/// An item without its metadata, for comparing (an email address as written is kept in
/// `original_email_address`, but the address itself compares without case).
fn content(value: &Value) -> Value {
    let mut value = value.clone();
    if let Some(fields) = value.as_object_mut() {
        for key in [
            "active_from",
            "active_until",
            "created_by_actor",
            "original_email_address",
        ] {
            fields.remove(key);
        }
    }
    value
}

/// Overwrites an attribute's active values with `new`: values no longer given end now, new
/// ones start now (first, as Attio lists the current value first); unchanged ones stay.
fn set_values(entries: &mut Vec<Value>, new: &[Value], now: &str, actor: &Value) -> bool {
    let mut changed = false;
    let active: Vec<Value> = entries
        .iter()
        .filter(|e| e["active_until"].is_null())
        .map(content)
        .collect();
    let wanted: Vec<Value> = new.iter().map(content).collect();
    for entry in entries.iter_mut() {
        if entry["active_until"].is_null() && !wanted.contains(&content(entry)) {
            entry["active_until"] = json!(now);
            changed = true;
        }
    }
    let mut added: Vec<&Value> = Vec::new();
    for value in new {
        let key = content(value);
        if !active.contains(&key) && !added.iter().any(|a| content(a) == key) {
            added.push(value);
        }
    }
    for value in added.into_iter().rev() {
        let mut entry = value.clone();
        entry["active_from"] = json!(now);
        entry["active_until"] = Value::Null;
        entry["created_by_actor"] = actor.clone();
        entries.insert(0, entry);
        changed = true;
    }
    changed
}
