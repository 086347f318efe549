//! Stateful stand-ins for Attio and HubSpot, served by wiremock, that fail at random.
//!
//! The plain wiremock mocks in the other tests check one exact request each; a chaos run sends
//! hundreds, so these fakes check every request's shape as it comes (token, path, body) and keep
//! the state a real service would: Attio serves the current record, note or task for any id the
//! test registered; HubSpot upserts contacts by `attio_record_id`, keeps contact emails unique
//! as HubSpot does (a second contact for an email is refused with `CONFLICT` "Contact already
//! exists. Existing ID: N", per input, by `objectWriteTraceId`), serves and patches contacts by
//! id (adoption), creates, updates and archives notes and tasks, and remembers every write.
//! Attio answers the batched records query (`record_id` `$in`, up to 500, the absent left
//! out) and `GET /v2/workspace_members/{id}` ([`FakeAttio::member_email`]); HubSpot answers
//! `GET /crm/v3/owners/?email=` from the owners a test seeds ([`FakeHubSpot::seed_owner`]).
//! Anything they do not recognise is recorded in `unexpected` and answered 400, so the run
//! fails loudly instead of passing by accident.
//!
//! The way back (two-way sync): Attio takes asserts and `PUT` updates, keeps each value's
//! history and counts writes per clock second (`attio_writes.rs`); HubSpot keeps each contact
//! property's history by source, serves `batch/read` with `propertiesWithHistory` and the list
//! endpoint, and gives the webhook events of its changes (`hubspot_history.rs`). Both take a
//! [`FakeClock`], and a test edits records as a user would on either side.
//!
//! Faults come from a seeded [`FaultDice`]: rate limits, 5xx answers, answers slower than the
//! client's timeout, and writes that happened but whose answer was lost — for note and task
//! creates also from a dice of their own ([`FakeHubSpot::create_dice`]), since those are the
//! writes a lost answer can duplicate. Every note and task must be created with its marker
//! (`attio_note_id`, `attio_task_id`), and is found by it with the search API (`search.rs`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};
use wiremock::{Request, Respond, ResponseTemplate};

mod attio_writes;
mod clock;
mod hubspot_history;
mod merges;
mod query;
mod search;
mod serving;
pub use attio_writes::{ATTIO_WRITES_PER_SECOND, AttioWrite, AttioWriteKind, RELAY_TOKEN_ID};
pub use clock::{FakeClock, attio_time, iso_ms};
pub use hubspot_history::{ChangeSource, ContactChange, DEFAULT_APP_ID, DEFAULT_PORTAL_ID};
pub use merges::{AttioMerge, ContactMerges, MergeModel};
pub use search::SEARCHES_PER_SECOND;
pub use serving::{FaultDice, SharedResponder, serve};

/// `Retry-After` as Attio sends it: an HTTP date, here about a second away.
fn retry_after_date() -> String {
    httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(1))
}

fn attio_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "status_code": status, "type": "api_error", "code": code, "message": message
    }))
}

/// Attio's API for one object (people), notes and tasks. Every id the test registers exists.
#[derive(Debug)]
pub struct FakeAttio {
    token: String,
    people_object_id: String,
    people_object: Value,
    person: Value,
    note: Value,
    task: Value,
    /// note or task id → the person it belongs to.
    parents: HashMap<String, String>,
    completed_tasks: HashSet<String>,
    /// How long a "timed out" answer takes: longer than the client's request timeout.
    pub hang: Duration,
    pub dice: FaultDice,
    pub unexpected: Mutex<Vec<String>>,
    pub served: AtomicUsize,
    /// Batched record reads answered (`POST /v2/objects/people/records/query`).
    pub queries: AtomicUsize,
    /// Records merged away or made by a merge ([`FakeAttio::merge`], `merges.rs`).
    merges: Mutex<merges::AttioMerges>,
    /// Records, notes and tasks deleted ([`FakeAttio::delete`]): they read 404 `not_found`.
    deleted: Mutex<HashSet<String>>,
    /// The relay's API token id: the actor of its writes (`attio_writes.rs`).
    token_id: String,
    /// "Now" for value histories and the per-second write limit.
    pub clock: FakeClock,
    /// Records written to and every write (`attio_writes.rs`).
    writes: Mutex<attio_writes::AttioWrites>,
}

impl FakeAttio {
    /// `person`, `note`, `task` and `people_object` are API answers (the fixtures) used as templates.
    pub fn new(
        token: &str,
        people_object_id: &str,
        templates: [Value; 4],
        dice: FaultDice,
    ) -> Self {
        let [people_object, person, note, task] = templates;
        Self {
            token: format!("Bearer {token}"),
            people_object_id: people_object_id.to_owned(),
            people_object,
            person,
            note,
            task,
            parents: HashMap::new(),
            completed_tasks: HashSet::new(),
            hang: Duration::from_secs(2),
            dice,
            unexpected: Mutex::new(Vec::new()),
            served: AtomicUsize::new(0),
            queries: AtomicUsize::new(0),
            merges: Mutex::default(),
            deleted: Mutex::default(),
            token_id: RELAY_TOKEN_ID.to_owned(),
            clock: FakeClock::default(),
            writes: Mutex::default(),
        }
    }

    /// The fake with the checked-in Attio answers (`tests/fixtures/attio`) as templates.
    pub fn from_fixtures(token: &str, people_object_id: &str, dice: FaultDice) -> Self {
        let fixture = crate::fixtures::attio;
        Self::new(
            token,
            people_object_id,
            [
                fixture("people-object.json"),
                fixture("person.json"),
                fixture("note.json"),
                fixture("task.json"),
            ],
            dice,
        )
    }

    pub fn with_note(mut self, note_id: &str, person_id: &str) -> Self {
        self.parents
            .insert(note_id.to_owned(), person_id.to_owned());
        self
    }

    pub fn with_task(mut self, task_id: &str, person_id: &str, completed: bool) -> Self {
        self.parents
            .insert(task_id.to_owned(), person_id.to_owned());
        if completed {
            self.completed_tasks.insert(task_id.to_owned());
        }
        self
    }

    /// Deletes a record, note or task: from now on it reads 404 `not_found`, Attio's answer
    /// for an id it no longer has, as for a merged-away original (`merges.rs`).
    pub fn delete(&self, id: &str) {
        self.deleted.lock().expect("lock").insert(id.to_owned());
    }

    /// The job title the fake gives a person: lets the test check the synced values.
    pub fn job_title(person_id: &str) -> String {
        format!("title-{person_id}")
    }

    /// The email the fake gives a person: one per person, as HubSpot needs (emails are unique
    /// there), so a test can seed a portal that already holds some of them.
    pub fn email(person_id: &str) -> String {
        format!("{person_id}@analytical.example")
    }

    /// The email the fake gives a workspace member (task assignees, note authors).
    pub fn member_email(member_id: &str) -> String {
        format!("member-{member_id}@analytical.example")
    }

    /// `GET /v2/workspace_members/{id}` as documented
    /// (<https://docs.attio.com/api-reference/workspace-members/get-a-workspace-member>).
    fn member(&self, id: &str) -> Value {
        let workspace = self.person["data"]["id"]["workspace_id"].clone();
        json!({"data": {
            "id": {"workspace_id": workspace, "workspace_member_id": id},
            "first_name": "Member", "last_name": id, "avatar_url": null,
            "email_address": Self::member_email(id),
            "created_at": "2026-01-01T00:00:00.000000000Z", "access_level": "member"
        }})
    }

    /// A person as read: as last written (`attio_writes.rs`), else from the template.
    fn person(&self, id: &str) -> Value {
        match self.stored_record(id) {
            Some(data) => json!({ "data": data }),
            None => self.template_person(id),
        }
    }

    /// The person the fake serves for any id nobody wrote to.
    fn template_person(&self, id: &str) -> Value {
        let mut person = self.person.clone();
        person["data"]["id"]["record_id"] = json!(id);
        if let Some(email) = person["data"]["values"]["email_addresses"][0].as_object_mut() {
            email.insert("email_address".into(), json!(Self::email(id)));
            email.insert("original_email_address".into(), json!(Self::email(id)));
            email.insert("email_local_specifier".into(), json!(id));
        }
        if let Some(title) = person["data"]["values"]["job_title"][0].as_object_mut() {
            title.insert("value".into(), json!(Self::job_title(id)));
        }
        person
    }

    fn note(&self, id: &str, parent: &str) -> Value {
        let mut note = self.note.clone();
        note["data"]["id"]["note_id"] = json!(id);
        note["data"]["parent_record_id"] = json!(parent);
        note["data"]["title"] = json!(format!("Note {id}"));
        note
    }

    fn task(&self, id: &str, parent: &str) -> Value {
        let mut task = self.task.clone();
        task["data"]["id"]["task_id"] = json!(id);
        task["data"]["content_plaintext"] = json!(format!("Task {id}\nFollow up."));
        task["data"]["is_completed"] = json!(self.completed_tasks.contains(id));
        task["data"]["linked_records"][0]["target_record_id"] = json!(parent);
        task
    }

    pub(super) fn unexpected(&self, request: &Request) -> ResponseTemplate {
        let seen = format!("{} {}", request.method, request.url.path());
        self.unexpected.lock().expect("lock").push(seen.clone());
        attio_error(400, "unexpected_request", &seen)
    }
}

impl Respond for FakeAttio {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let authorised = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            == Some(self.token.as_str());
        let query = request.method == http::Method::POST
            && request.url.path() == "/v2/objects/people/records/query";
        if authorised && request.method == http::Method::PUT {
            return self.write(request);
        }
        if !authorised || !(request.method == http::Method::GET || query) {
            return self.unexpected(request);
        }
        match self.dice.roll(3) {
            Some(0) => {
                return attio_error(429, "rate_limit_exceeded", "slow down")
                    .insert_header("retry-after", retry_after_date().as_str());
            }
            Some(1) => return attio_error(503, "service_unavailable", "try again"),
            Some(_) => {
                return ResponseTemplate::new(200)
                    .set_body_json(json!({}))
                    .set_delay(self.hang);
            }
            None => {}
        }
        if query {
            return self.query_people(request);
        }
        let segments: Vec<&str> = request.url.path().trim_matches('/').split('/').collect();
        if let ["v2", "objects", "people", "records", id] | ["v2", "notes" | "tasks", id] =
            segments.as_slice()
            && self.deleted.lock().expect("lock").contains(*id)
        {
            self.served.fetch_add(1, Ordering::SeqCst);
            return attio_error(404, "not_found", &format!("{id} was not found"));
        }
        if let ["v2", "objects", "people", "records", id] = segments.as_slice()
            && let Some(answer) = self.merged_person(id)
        {
            return answer;
        }
        let body = match segments.as_slice() {
            ["v2", "objects", id] if *id == self.people_object_id => self.people_object.clone(),
            ["v2", "objects", "people", "records", id] => self.person(id),
            ["v2", "workspace_members", id] => self.member(id),
            ["v2", "objects", _, "records", id] => match self.stored_record(id) {
                Some(data) => json!({ "data": data }),
                None => return self.unexpected(request),
            },
            ["v2", "notes", id] => match self.parents.get(*id) {
                Some(parent) => self.note(id, parent),
                None => return self.unexpected(request),
            },
            ["v2", "tasks", id] => match self.parents.get(*id) {
                Some(parent) => self.task(id, parent),
                None => return self.unexpected(request),
            },
            _ => return self.unexpected(request),
        };
        self.served.fetch_add(1, Ordering::SeqCst);
        ResponseTemplate::new(200).set_body_json(body)
    }
}

/// One object as the fake HubSpot stores it.
#[derive(Debug, Clone, Default)]
pub struct StoredObject {
    pub object: String,
    pub id: String,
    pub properties: Map<String, Value>,
    /// (association type id, id of the associated object)
    pub associations: Vec<(u64, String)>,
    pub archived: bool,
    pub writes: usize,
}

/// What the fake HubSpot holds.
#[derive(Debug, Default)]
pub struct HubSpotState {
    /// Contacts by `attio_record_id`.
    pub contacts: BTreeMap<String, StoredObject>,
    /// Contacts without an `attio_record_id` (there before the relay), by HubSpot id, until
    /// the relay adopts them.
    pub unowned_contacts: BTreeMap<String, StoredObject>,
    /// Notes and tasks by HubSpot id.
    pub engagements: BTreeMap<String, StoredObject>,
    /// Creates that happened but whose answer the client never saw: each may leave a duplicate.
    pub lost_create_answers: usize,
    /// The portal's owners (users): lower-case email → owner id.
    pub owners: BTreeMap<String, String>,
    /// Default associations made between records (from type, from id, to type, to id), each
    /// once: HubSpot's v4 default association PUT is idempotent.
    pub links: std::collections::BTreeSet<(String, String, String, String)>,
    /// Contacts merged (`POST /crm/v3/objects/contacts/merge`, `merges.rs`).
    pub merges: ContactMerges,
    /// Contacts archived (`DELETE /crm/v3/objects/contacts/{id}`), by HubSpot id.
    pub archived_contacts: BTreeMap<String, StoredObject>,
    /// Marker searches answered (`search.rs`).
    pub marker_searches: usize,
    /// Searches answered in the last second, for the search rate limit.
    searches: Vec<std::time::Instant>,
    pub unexpected: Vec<String>,
    next_id: u64,
    /// Contact property history and the change log (`hubspot_history.rs`).
    pub history: hubspot_history::History,
    /// The relay's app id: `sourceId` of its writes.
    pub app_id: String,
    pub portal_id: u64,
    /// "Now" for history entries.
    pub clock: FakeClock,
}

impl HubSpotState {
    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("{}", 7_000 + self.next_id)
    }

    /// The contact (owned or not) holding `email`, other than the one with HubSpot id `except`.
    fn email_holder(&self, email: &str, except: Option<&str>) -> Option<String> {
        self.contacts
            .values()
            .chain(self.unowned_contacts.values())
            .filter(|c| Some(c.id.as_str()) != except)
            .find(|c| {
                c.properties
                    .get("email")
                    .and_then(Value::as_str)
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
            })
            .map(|c| c.id.clone())
    }

    /// A contact by HubSpot id, or by an id merged into it: (its `attio_record_id` key when
    /// owned, the object).
    fn contact_by_id(&mut self, id: &str) -> Option<(Option<String>, &mut StoredObject)> {
        let id = &self.merges.resolve(id);
        if self.unowned_contacts.contains_key(id) {
            return self.unowned_contacts.get_mut(id).map(|c| (None, c));
        }
        self.contacts
            .iter_mut()
            .find(|(_, c)| c.id == *id)
            .map(|(attio, c)| (Some(attio.clone()), c))
    }

    /// The live notes or tasks whose text mentions `attio_id`.
    pub fn engagements_for(&self, object: &str, attio_id: &str) -> Vec<&StoredObject> {
        self.engagements
            .values()
            .filter(|o| o.object == object && !o.archived)
            .filter(|o| {
                o.properties
                    .values()
                    .any(|v| v.as_str().is_some_and(|s| s.contains(attio_id)))
            })
            .collect()
    }
}

/// HubSpot's CRM v3 object API for contacts (batch upsert), notes and tasks.
#[derive(Debug)]
pub struct FakeHubSpot {
    token: String,
    pub state: Arc<Mutex<HubSpotState>>,
    pub hang: Duration,
    pub dice: FaultDice,
    /// Note and task creates that pass `dice` are applied and then lose their answer at this
    /// dice's rate (a 504 or a hang).
    pub create_dice: Option<FaultDice>,
}

/// What a write did, so a fault can be applied before or after it.
enum Outcome {
    Answer(ResponseTemplate),
    Reject(String),
}

impl FakeHubSpot {
    pub fn new(token: &str, dice: FaultDice) -> Self {
        let state = HubSpotState {
            app_id: DEFAULT_APP_ID.to_owned(),
            portal_id: DEFAULT_PORTAL_ID,
            ..HubSpotState::default()
        };
        Self {
            token: format!("Bearer {token}"),
            state: Arc::new(Mutex::new(state)),
            hang: Duration::from_secs(2),
            dice,
            create_dice: None,
        }
    }

    /// Puts a contact in the portal as if created by hand before the relay ran; returns its id.
    pub fn seed_contact(&self, email: &str) -> String {
        let mut state = self.state.lock().expect("hubspot state");
        let id = state.new_id();
        let properties = json!({"email": email, "lifecyclestage": "lead"});
        let properties = properties.as_object().cloned().unwrap_or_default();
        state.unowned_contacts.insert(
            id.clone(),
            StoredObject {
                object: "contacts".into(),
                id: id.clone(),
                properties: properties.clone(),
                ..StoredObject::default()
            },
        );
        state.note_write(&id, &Map::new(), &properties, true, ChangeSource::User(1));
        id
    }

    /// Adds a HubSpot owner (a portal user) with this email; returns its owner id.
    pub fn seed_owner(&self, email: &str) -> String {
        let mut state = self.state.lock().expect("hubspot state");
        let id = state.new_id();
        state.owners.insert(email.to_ascii_lowercase(), id.clone());
        id
    }

    fn apply(&self, state: &mut HubSpotState, request: &Request) -> Outcome {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let segments: Vec<&str> = request.url.path().trim_matches('/').split('/').collect();
        match (request.method.as_str(), segments.as_slice()) {
            ("POST", ["crm", "v3", "objects", "contacts", "batch", "upsert"]) => {
                let (mut results, mut errors) = (Vec::new(), Vec::new());
                for input in body["inputs"].as_array().into_iter().flatten() {
                    let (Some(attio_id), Some(properties), Some(trace)) = (
                        input["id"].as_str(),
                        input["properties"].as_object(),
                        input["objectWriteTraceId"].as_str(),
                    ) else {
                        return Outcome::Reject(
                            "upsert input without id, properties or objectWriteTraceId".into(),
                        );
                    };
                    if input["idProperty"] != "attio_record_id"
                        || properties.get("attio_record_id") != Some(&json!(attio_id))
                    {
                        return Outcome::Reject(format!(
                            "upsert not keyed on attio_record_id: {input}"
                        ));
                    }
                    let current = state.contacts.get(attio_id).map(|c| c.id.clone());
                    let email = properties.get("email").and_then(Value::as_str);
                    let holder = email.and_then(|e| state.email_holder(e, current.as_deref()));
                    if let Some(existing) = holder {
                        errors.push(json!({"status": "error", "category": "CONFLICT",
                            "message": format!("Contact already exists. Existing ID: {existing}"),
                            "context": {"objectWriteTraceId": [trace], "existingId": [existing]}}));
                        continue;
                    }
                    let created = current.is_none();
                    let id = current.unwrap_or_else(|| state.new_id());
                    let contact = state.contacts.entry(attio_id.to_owned()).or_default();
                    let before = contact.properties.clone();
                    contact.object = "contacts".into();
                    contact.id = id.clone();
                    contact.properties.extend(properties.clone());
                    contact.writes += 1;
                    let source = state.integration();
                    state.note_write(&id, &before, properties, created, source);
                    results.push(json!({"id": id, "objectWriteTraceId": trace}));
                }
                let status = if errors.is_empty() { 200 } else { 207 };
                Outcome::Answer(ResponseTemplate::new(status).set_body_json(json!({
                    "status": "COMPLETE", "results": results,
                    "numErrors": errors.len(), "errors": errors})))
            }
            ("POST", ["crm", "v3", "objects", "contacts", "batch", "read"]) => {
                state.batch_read(&body)
            }
            ("GET", ["crm", "v3", "objects", "contacts"]) => state.list_contacts(request),
            ("GET", ["crm", "v3", "objects", "contacts", id]) => {
                let wanted: Vec<String> = request
                    .url
                    .query_pairs()
                    .filter(|(k, _)| k == "properties")
                    .flat_map(|(_, v)| v.split(',').map(str::to_owned).collect::<Vec<_>>())
                    .collect();
                match state.contact_by_id(id) {
                    Some((_, contact)) => {
                        let properties: Map<String, Value> = contact
                            .properties
                            .iter()
                            .filter(|(k, _)| wanted.contains(k))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        Outcome::Answer(ResponseTemplate::new(200).set_body_json(
                            json!({"id": contact.id, "properties": properties}),
                        ))
                    }
                    None => Outcome::Answer(ResponseTemplate::new(404).set_body_json(
                        json!({"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Object not found"}),
                    )),
                }
            }
            ("PATCH", ["crm", "v3", "objects", "contacts", id]) => {
                let resolved = state.merges.resolve(id);
                let id = resolved.as_str();
                let Some(properties) = body["properties"].as_object().cloned() else {
                    return Outcome::Reject("update without properties".into());
                };
                let email = properties.get("email").and_then(Value::as_str);
                if let Some(existing) = email.and_then(|e| state.email_holder(e, Some(id))) {
                    return Outcome::Answer(ResponseTemplate::new(409).set_body_json(json!({
                        "status": "error", "category": "CONFLICT",
                        "message": format!("Contact already exists. Existing ID: {existing}")})));
                }
                let claim = properties.get("attio_record_id").and_then(Value::as_str);
                let Some((owner, contact)) = state.contact_by_id(id) else {
                    return Outcome::Answer(ResponseTemplate::new(404).set_body_json(
                        json!({"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Object not found"}),
                    ));
                };
                let before = contact.properties.clone();
                contact.properties.extend(properties.clone());
                contact.writes += 1;
                let source = state.integration();
                state.note_write(id, &before, &properties, false, source);
                // attio_record_id is unique: claiming it files the contact under it.
                if let Some(claim) = claim.filter(|c| owner.as_deref() != Some(*c)) {
                    if state.contacts.contains_key(claim) {
                        return Outcome::Reject(format!("attio_record_id {claim} claimed twice"));
                    }
                    let moved = match owner {
                        Some(old) => state.contacts.remove(&old),
                        None => state.unowned_contacts.remove(id),
                    };
                    if let Some(moved) = moved {
                        state.contacts.insert(claim.to_owned(), moved);
                    }
                }
                Outcome::Answer(ResponseTemplate::new(200).set_body_json(json!({"id": id})))
            }
            ("POST", ["crm", "v3", "objects", "contacts", "merge"]) => state.merge_contacts(&body),
            ("DELETE", ["crm", "v3", "objects", "contacts", id]) => state.archive_contact(id),
            (
                "POST",
                [
                    "crm",
                    "v3",
                    "objects",
                    object @ ("notes" | "tasks"),
                    "search",
                ],
            ) => state.search_engagements(object, &body),
            ("POST", ["crm", "v3", "objects", object @ ("notes" | "tasks")]) => {
                let marker = search::marker(object).unwrap_or_default();
                if body["properties"][marker]
                    .as_str()
                    .is_none_or(str::is_empty)
                {
                    return Outcome::Reject(format!("{object} created without {marker}"));
                }
                let expected_type = if *object == "notes" { 202 } else { 204 };
                let mut associations = Vec::new();
                for a in body["associations"].as_array().into_iter().flatten() {
                    let to = state
                        .merges
                        .resolve(a["to"]["id"].as_str().unwrap_or_default());
                    let type_id = a["types"][0]["associationTypeId"].as_u64().unwrap_or(0);
                    let known = state.contacts.values().any(|c| c.id == to);
                    if type_id != expected_type || !known {
                        return Outcome::Reject(format!("bad association {a} for {object}"));
                    }
                    associations.push((type_id, to));
                }
                let Some(properties) = body["properties"].as_object().cloned() else {
                    return Outcome::Reject(format!("{object} create without properties"));
                };
                let id = state.new_id();
                state.engagements.insert(
                    id.clone(),
                    StoredObject {
                        object: (*object).to_owned(),
                        id: id.clone(),
                        properties,
                        associations,
                        archived: false,
                        writes: 1,
                    },
                );
                Outcome::Answer(ResponseTemplate::new(201).set_body_json(json!({"id": id})))
            }
            ("PATCH", ["crm", "v3", "objects", "notes" | "tasks", id]) => {
                let Some(properties) = body["properties"].as_object().cloned() else {
                    return Outcome::Reject("update without properties".into());
                };
                match state.engagements.get_mut(*id) {
                    Some(stored) if !stored.archived => {
                        stored.properties.extend(properties);
                        stored.writes += 1;
                        Outcome::Answer(ResponseTemplate::new(200).set_body_json(json!({"id": id})))
                    }
                    _ => Outcome::Answer(
                        ResponseTemplate::new(404)
                            .set_body_json(json!({"status": "error", "message": "not found"})),
                    ),
                }
            }
            ("DELETE", ["crm", "v3", "objects", "notes" | "tasks", id]) => {
                if let Some(stored) = state.engagements.get_mut(*id) {
                    stored.archived = true;
                }
                Outcome::Answer(ResponseTemplate::new(204))
            }
            // https://developers.hubspot.com/docs/api-reference/latest/crm/owners/get-owners.md:
            // `email` filters; one page answers it.
            ("GET", ["crm", "v3", "owners"]) => {
                let email = request
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "email")
                    .map(|(_, v)| v.to_ascii_lowercase());
                let results: Vec<Value> = state
                    .owners
                    .iter()
                    .filter(|(e, _)| email.as_ref().is_none_or(|want| want == *e))
                    .map(|(e, id)| {
                        json!({"id": id, "email": e, "type": "PERSON", "userId": 1,
                               "createdAt": "2026-01-01T00:00:00Z",
                               "updatedAt": "2026-01-01T00:00:00Z", "archived": false})
                    })
                    .collect();
                Outcome::Answer(
                    ResponseTemplate::new(200).set_body_json(json!({"results": results})),
                )
            }
            // https://developers.hubspot.com/docs/api-reference/crm-associations-v4/basic/put-crm-v4-objects-fromObjectType-fromObjectId-associations-default-toObjectType-toObjectId
            (
                "PUT",
                [
                    "crm",
                    "v4",
                    "objects",
                    from,
                    from_id,
                    "associations",
                    "default",
                    to,
                    to_id,
                ],
            ) => {
                let link = (
                    (*from).to_owned(),
                    (*from_id).to_owned(),
                    (*to).to_owned(),
                    (*to_id).to_owned(),
                );
                state.links.insert(link);
                Outcome::Answer(ResponseTemplate::new(200).set_body_json(json!({
                    "status": "COMPLETE",
                    "results": [{"associationSpec": {"associationCategory": "HUBSPOT_DEFINED",
                        "associationTypeId": 279}, "from": {"id": from_id}, "to": {"id": to_id}}],
                    "startedAt": "2026-11-07T05:31:56Z", "completedAt": "2026-11-07T05:31:56Z"})))
            }
            // Every association of the pair goes; 204 without a body, also when there was none
            // (https://developers.hubspot.com/docs/api-reference/2026-03/crm/associations/associate-records/delete-association.md).
            (
                "DELETE",
                [
                    "crm",
                    "v4",
                    "objects",
                    from,
                    from_id,
                    "associations",
                    to,
                    to_id,
                ],
            ) => {
                let link = (*from, *from_id, *to, *to_id);
                state
                    .links
                    .retain(|(f, fi, t, ti)| (&**f, &**fi, &**t, &**ti) != link);
                Outcome::Answer(ResponseTemplate::new(204))
            }
            _ => Outcome::Reject(format!("{} {}", request.method, request.url.path())),
        }
    }
}

impl Respond for FakeHubSpot {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.state.lock().expect("hubspot state");
        let authorised = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            == Some(self.token.as_str());
        if !authorised {
            state
                .unexpected
                .push("request without the HubSpot token".into());
            return ResponseTemplate::new(401);
        }
        let fault = self.dice.roll(5);
        match fault {
            // Refused before doing anything: rate limited, unavailable, or lost on the way in.
            Some(0) => {
                return ResponseTemplate::new(429).set_body_json(json!({
                    "status": "error", "message": "You have reached your secondly limit.",
                    "errorType": "RATE_LIMIT", "policyName": "SECONDLY"
                }));
            }
            Some(1) => {
                return ResponseTemplate::new(502)
                    .set_body_json(json!({"status": "error", "message": "bad gateway"}));
            }
            Some(2) => return ResponseTemplate::new(200).set_delay(self.hang),
            _ => {}
        }
        let is_create = request.method == http::Method::POST
            && matches!(
                request.url.path(),
                "/crm/v3/objects/notes" | "/crm/v3/objects/tasks"
            );
        let is_search =
            request.method == http::Method::POST && request.url.path().ends_with("/search");
        if is_search && state.search_limited() {
            return ResponseTemplate::new(429).set_body_json(json!({
                "status": "error", "message": "You have reached your secondly limit.",
                "errorType": "RATE_LIMIT", "policyName": "SECONDLY"
            }));
        }
        let fault = match (fault, &self.create_dice) {
            (None, Some(dice)) if is_create => dice.roll(2).map(|kind| kind + 3),
            _ => fault,
        };
        match self.apply(&mut state, request) {
            Outcome::Reject(what) => {
                state.unexpected.push(what.clone());
                ResponseTemplate::new(400).set_body_json(
                    json!({"status": "error", "category": "VALIDATION_ERROR", "message": what}),
                )
            }
            // Done, but the answer is lost: a 504 from a proxy, or the client gave up waiting.
            Outcome::Answer(_) if fault.is_some() => {
                if is_create {
                    state.lost_create_answers += 1;
                }
                if fault == Some(3) {
                    ResponseTemplate::new(504)
                        .set_body_json(json!({"status": "error", "message": "gateway timeout"}))
                } else {
                    ResponseTemplate::new(200).set_delay(self.hang)
                }
            }
            Outcome::Answer(answer) => answer,
        }
    }
}

#[cfg(test)]
mod two_way_tests;
