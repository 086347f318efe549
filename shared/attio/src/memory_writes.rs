//! [`MemoryAttio`] as an [`AttioWriter`]: values written become current with `active_from` =
//! the writer's clock and `created_by_actor` = the relay's API token, the values they replace
//! get `active_until`, as Attio keeps an attribute's history
//! (<https://docs.attio.com/docs/attribute-types>). Writing the value an attribute already holds
//! changes nothing (its `active_from` stays). Each write that changes a record queues the
//! webhook event Attio would send (`record.created`, one `record.updated` per changed
//! attribute), with the token as actor, so tests can feed the relay its own echo.

use std::fmt;
use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::{AttioCall, MemoryAttio, State, not_found};
use crate::{AttioError, AttioValues, AttioWriter, AttributeValue, Record};

/// Milliseconds since the epoch, read from whatever clock a test passes in.
pub type MsClock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The API token the writer acts as until [`MemoryAttio::with_token_id`] says otherwise.
const DEFAULT_TOKEN_ID: &str = "relay-token";

#[derive(Default)]
pub(super) struct WriteState {
    clock: Option<MsClock>,
    token_id: Option<String>,
    created: u64,
    events: Vec<Json>,
}

impl fmt::Debug for WriteState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteState")
            .field("created", &self.created)
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl WriteState {
    fn now_ms(&self) -> i64 {
        self.clock
            .as_ref()
            .map_or_else(relay_events::clock::unix_now_millis, |clock| clock())
    }

    fn token_id(&self) -> &str {
        self.token_id.as_deref().unwrap_or(DEFAULT_TOKEN_ID)
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of epoch milliseconds, as Attio stamps `active_from`.
pub(super) fn iso_millis(ms: i64) -> String {
    relay_events::clock::rfc3339_millis(ms)
}

/// The attribute type a written value takes: the attribute's own (from any value it held),
/// else the standard attributes' types, else the JSON's kind.
fn attribute_type(record: Option<&Record>, slug: &str, item: &Json) -> String {
    if let Some(known) = record
        .and_then(|r| r.values.get(slug))
        .and_then(|values| values.first())
        .map(|v| v.attribute_type.clone())
    {
        return known;
    }
    match (slug, item) {
        ("email_addresses", _) => "email-address",
        ("domains", _) => "domain",
        ("phone_numbers", _) => "phone-number",
        ("name", Json::Object(o)) if o.contains_key("first_name") => "personal-name",
        (_, Json::Number(_)) => "number",
        (_, Json::Bool(_)) => "checkbox",
        _ => "text",
    }
    .to_owned()
}

/// One written item as the value Attio would then return.
fn stored(kind: &str, item: &Json, active_from: &str, token: &str) -> Option<AttributeValue> {
    let text = match item {
        Json::String(s) => s.clone(),
        Json::Object(o) => [
            "email_address",
            "domain",
            "original_phone_number",
            "value",
            "status",
        ]
        .iter()
        .find_map(|k| o.get(*k).and_then(Json::as_str))
        .unwrap_or_default()
        .to_owned(),
        other => other.to_string(),
    };
    let mut value = match kind {
        "email-address" => {
            let (local, domain) = text.split_once('@').unwrap_or((&text, ""));
            json!({"email_address": text.to_lowercase(), "original_email_address": text,
                   "email_domain": domain, "email_root_domain": domain,
                   "email_local_specifier": local})
        }
        "domain" => json!({"domain": text, "root_domain": text}),
        "phone-number" => {
            json!({"original_phone_number": text, "phone_number": text, "country_code": null})
        }
        "personal-name" => {
            let part = |k: &str| item.get(k).and_then(Json::as_str).unwrap_or("").to_owned();
            json!({"first_name": part("first_name"), "last_name": part("last_name"),
                   "full_name": part("full_name")})
        }
        "number" | "rating" => json!({"value": text.parse::<f64>().ok()?}),
        "checkbox" => json!({"value": item.as_bool().unwrap_or(text == "true")}),
        "status" => json!({"status": {"id": {"status_id": text}, "title": text}}),
        "select" => json!({"option": {"id": {"option_id": text}, "title": text}}),
        _ => json!({"value": text}),
    };
    let fields = value.as_object_mut()?;
    fields.insert("active_from".into(), active_from.into());
    fields.insert("active_until".into(), Json::Null);
    fields.insert(
        "created_by_actor".into(),
        json!({"type": "api-token", "id": token}),
    );
    fields.insert("attribute_type".into(), kind.into());
    serde_json::from_value(Json::Object(fields.clone())).ok()
}

impl State {
    /// Writes `values` onto `record` at `now`; returns the slugs whose current values changed.
    fn write_values(&mut self, record: &mut Record, values: &AttioValues) -> Vec<String> {
        let now = iso_millis(self.writes.now_ms());
        let token = self.writes.token_id().to_owned();
        let mut changed = Vec::new();
        for (slug, written) in values {
            let items: Vec<&Json> = match written {
                Json::Array(items) => items.iter().collect(),
                Json::Null => Vec::new(),
                single => vec![single],
            };
            let new: Vec<AttributeValue> = items
                .iter()
                .filter_map(|item| {
                    let kind = attribute_type(Some(record), slug, item);
                    stored(&kind, item, &now, &token)
                })
                .collect();
            let history = record.values.entry(slug.clone()).or_default();
            // Emails and domains are the same value in any case (Attio normalises them).
            let same = |a: &crate::Value, b: &crate::Value| match (a, b) {
                (crate::Value::Email(_), _) | (crate::Value::Domain(_), _) => {
                    a.as_display_string().map(|t| t.to_lowercase())
                        == b.as_display_string().map(|t| t.to_lowercase())
                }
                _ => a == b,
            };
            let current: Vec<&crate::Value> = history
                .iter()
                .filter(|v| v.is_current())
                .map(|v| &v.value)
                .collect();
            if current.len() == new.len()
                && current.iter().zip(&new).all(|(a, b)| same(a, &b.value))
            {
                continue;
            }
            for old in history.iter_mut().filter(|v| v.is_current()) {
                old.active_until = Some(now.clone());
            }
            history.extend(new);
            changed.push(slug.clone());
        }
        changed
    }

    fn event(&mut self, kind: &str, record: &Record, attribute: Option<&str>) {
        let mut id = json!({"workspace_id": record.id.workspace_id,
                            "object_id": record.id.object_id, "record_id": record.id.record_id});
        if let Some(attribute) = attribute {
            id["attribute_id"] = attribute.into();
        }
        let token = self.writes.token_id().to_owned();
        self.writes.events.push(json!({"event_type": kind, "id": id,
                                       "actor": {"type": "api-token", "id": token}}));
    }
}

impl MemoryAttio {
    /// Values written are stamped by `clock` (milliseconds) instead of the system clock.
    #[must_use]
    pub fn with_clock(self, clock: MsClock) -> Self {
        self.state().writes.clock = Some(clock);
        self
    }

    /// The API token id the writer acts as (default `relay-token`): the actor of its values
    /// and of the events they cause.
    #[must_use]
    pub fn with_token_id(self, token_id: &str) -> Self {
        self.state().writes.token_id = Some(token_id.to_owned());
        self
    }

    /// The webhook events Attio would have sent for the writes since the last call.
    pub fn take_webhook_events(&self) -> Vec<Json> {
        std::mem::take(&mut self.state().writes.events)
    }

    /// The writes made through [`AttioWriter`] so far (asserts, updates and deletes).
    pub fn writes(&self) -> Vec<AttioCall> {
        self.calls()
            .into_iter()
            .filter(|c| {
                matches!(
                    c,
                    AttioCall::Assert { .. } | AttioCall::Update { .. } | AttioCall::Delete { .. }
                )
            })
            .collect()
    }

    /// Stores the written record and queues its events.
    fn commit(&self, slug: &str, record: Record, created: bool, changed: &[String]) -> Record {
        let mut state = self.state();
        if created {
            state.event("record.created", &record, None);
        }
        for attribute in changed {
            state.event("record.updated", &record, Some(attribute));
        }
        let key = (slug.to_owned(), record.record_id().to_owned());
        state.records.insert(key, record.clone());
        record
    }
}

impl AttioWriter for MemoryAttio {
    /// Matches `matching_attribute`'s first written value against the current values of that
    /// attribute (emails and domains without case); creates the record when none holds it.
    async fn assert_record(
        &self,
        object: &str,
        matching_attribute: &str,
        values: &AttioValues,
    ) -> Result<Record, AttioError> {
        let call = AttioCall::Assert {
            object: object.to_owned(),
            matching_attribute: matching_attribute.to_owned(),
        };
        self.begin(&call)?;
        let wanted = values
            .get(matching_attribute)
            .map(|v| match v {
                Json::Array(items) => items.first().cloned().unwrap_or(Json::Null),
                other => other.clone(),
            })
            .and_then(|v| match v {
                Json::String(s) => Some(s),
                other => other
                    .get("email_address")
                    .or(other.get("domain"))?
                    .as_str()
                    .map(str::to_owned),
            })
            .ok_or_else(|| AttioError::Api {
                status: 400,
                code: Some("validation_type".into()),
                message: format!("no value for the matching attribute {matching_attribute}"),
                path: call.path(),
            })?;
        let mut state = self.state();
        let slug = state.slug(object).to_owned();
        let found = state
            .records
            .iter()
            .find(|((s, _), r)| {
                *s == slug
                    && r.current(matching_attribute).any(|v| {
                        v.as_display_string()
                            .is_some_and(|held| held.eq_ignore_ascii_case(&wanted))
                    })
            })
            .map(|(_, r)| r.clone());
        let created = found.is_none();
        let mut record = match found {
            Some(record) => record,
            None => {
                state.writes.created += 1;
                let n = state.writes.created;
                let object_id = state
                    .slugs
                    .iter()
                    .find(|(_, s)| **s == slug)
                    .map_or_else(|| slug.clone(), |(id, _)| id.clone());
                let created_at = iso_millis(state.writes.now_ms());
                serde_json::from_value(json!({
                    "id": {"workspace_id": "ws", "object_id": object_id,
                           "record_id": format!("{n:08x}-0000-4000-8000-{n:012x}")},
                    "created_at": created_at,
                    "values": {}
                }))
                .map_err(|e| AttioError::Api {
                    status: 500,
                    code: None,
                    message: e.to_string(),
                    path: call.path(),
                })?
            }
        };
        let changed = state.write_values(&mut record, values);
        drop(state);
        Ok(self.commit(&slug, record, created, &changed))
    }

    async fn update_record(
        &self,
        object: &str,
        record_id: &str,
        values: &AttioValues,
    ) -> Result<Record, AttioError> {
        let call = AttioCall::Update {
            object: object.to_owned(),
            record_id: record_id.to_owned(),
        };
        self.begin(&call)?;
        let mut state = self.state();
        let slug = state.slug(object).to_owned();
        let mut record = state
            .records
            .get(&(slug.clone(), record_id.to_owned()))
            .cloned()
            .ok_or_else(|| not_found(&call))?;
        let changed = state.write_values(&mut record, values);
        drop(state);
        Ok(self.commit(&slug, record, false, &changed))
    }

    /// Removes the record (Attio answers `not_found` for one it does not hold) and queues the
    /// `record.deleted` event Attio would send, with the token as actor.
    async fn delete_record(&self, object: &str, record_id: &str) -> Result<(), AttioError> {
        let call = AttioCall::Delete {
            object: object.to_owned(),
            record_id: record_id.to_owned(),
        };
        self.begin(&call)?;
        let mut state = self.state();
        let slug = state.slug(object).to_owned();
        let record = state
            .records
            .remove(&(slug, record_id.to_owned()))
            .ok_or_else(|| not_found(&call))?;
        state.event("record.deleted", &record, None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;

    #[test]
    fn iso_millis_formats_utc() {
        assert_eq!(iso_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_millis(1_767_225_600_123), "2026-01-01T00:00:00.123Z");
        assert_eq!(iso_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(iso_millis(253_402_300_800_000), "253402300800000");
    }

    #[tokio::test]
    async fn writes_become_current_at_the_clock_and_replace_the_old_value() {
        let now = Arc::new(AtomicI64::new(1_767_225_600_000));
        let clock = Arc::clone(&now);
        let attio = MemoryAttio::new()
            .with_token_id("tok")
            .with_clock(Arc::new(move || clock.load(Ordering::SeqCst)));
        attio.add_object("people-id", "people");
        let mut values = AttioValues::new();
        values.insert("email_addresses".into(), json!(["Ada@Example.com"]));
        values.insert("job_title".into(), json!("CTO"));
        let made = attio
            .assert_record("people", "email_addresses", &values)
            .await
            .unwrap();
        assert_eq!(made.object_id(), "people-id");
        let events = attio.take_webhook_events();
        assert_eq!(events.len(), 3, "created + two attributes: {events:?}");
        assert!(events.iter().all(|e| e["actor"]["id"] == "tok"));

        now.fetch_add(1_000, Ordering::SeqCst);
        values.insert("email_addresses".into(), json!(["ada@example.com"]));
        values.insert("job_title".into(), json!("CEO"));
        let again = attio
            .assert_record("people", "email_addresses", &values)
            .await
            .unwrap();
        assert_eq!(
            again.record_id(),
            made.record_id(),
            "matched by email, any case"
        );
        let titles = &again.values["job_title"];
        assert_eq!(titles.len(), 2);
        assert_eq!(
            titles[0].active_until.as_deref(),
            Some("2026-01-01T00:00:01.000Z")
        );
        assert_eq!(titles[1].active_from, "2026-01-01T00:00:01.000Z");
        assert_eq!(again.first_text("job_title").as_deref(), Some("CEO"));
        assert_eq!(
            attio.take_webhook_events().len(),
            1,
            "only the title changed"
        );

        let mut name = AttioValues::new();
        name.insert(
            "name".into(),
            json!([{"first_name": "Ada", "last_name": "L", "full_name": "Ada L"}]),
        );
        let named = attio
            .update_record("people-id", made.record_id(), &name)
            .await
            .unwrap();
        assert_eq!(
            named.personal_name().map(|n| n.full_name.as_str()),
            Some("Ada L")
        );
        let gone = attio.update_record("people", "nope", &name).await;
        assert!(matches!(gone, Err(AttioError::NotFound { .. })));
        assert_eq!(attio.writes().len(), 4);
    }

    #[tokio::test]
    async fn a_delete_removes_the_record_once_and_queues_record_deleted() {
        let attio = MemoryAttio::new().with_token_id("tok");
        attio.add_object("people-id", "people");
        let mut values = AttioValues::new();
        values.insert("email_addresses".into(), json!(["ada@example.com"]));
        let made = attio
            .assert_record("people", "email_addresses", &values)
            .await
            .unwrap();
        attio.take_webhook_events();
        attio
            .delete_record("people-id", made.record_id())
            .await
            .unwrap();
        let events = attio.take_webhook_events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["event_type"], "record.deleted");
        assert_eq!(events[0]["actor"]["id"], "tok");
        let again = attio.delete_record("people", made.record_id()).await;
        assert!(
            matches!(again, Err(AttioError::NotFound { .. })),
            "{again:?}"
        );
        let gone = attio
            .update_record("people", made.record_id(), &values)
            .await;
        assert!(matches!(gone, Err(AttioError::NotFound { .. })));
    }
}
