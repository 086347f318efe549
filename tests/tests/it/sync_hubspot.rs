//! The consumers end to end against wiremock servers standing in for Attio and HubSpot, which
//! check the exact requests: each event type produces the right CRM calls, ten updates of one
//! record cost one Attio fetch, a retried note does not create a second HubSpot note.

use std::sync::Arc;
use std::time::Duration;

use relay_attio::{AttioClient, AttioConfig};
use relay_crm::{CrmId, CrmObject, HubSpotConfig, HubSpotSink};
use relay_embedded::LocalDb;
use relay_events::QueuedEvent;
use relay_mappings::IdMappings;
use relay_mappings::SqliteMappings;
use relay_sync::{
    BatchHandler, Disposition, FieldMapping, InboundEvent, NotesHandler, RecordsHandler,
    SyncContext, TasksHandler,
};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use integration_tests::fixtures::ids::{ADA, PEOPLE, WORKSPACE as WS};
const NOTE: &str = "ff3f3bd4-40f4-4f80-8187-cd02385af424";
const TASK: &str = "649e34f4-c39a-4f4d-99ef-48a36bef8f04";

fn fixture(name: &str) -> serde_json::Value {
    integration_tests::fixtures::attio(name)
}

struct Apis {
    attio: MockServer,
    hubspot: MockServer,
    mappings: SqliteMappings,
}

type Ctx = SyncContext<HubSpotSink, SqliteMappings>;

impl Apis {
    async fn start() -> Self {
        let apis = Self {
            attio: MockServer::start().await,
            hubspot: MockServer::start().await,
            mappings: SqliteMappings::new(LocalDb::in_memory().expect("sqlite")),
        };
        // The people object's schema, for id -> slug.
        Mock::given(method("GET"))
            .and(path(format!("/v2/objects/{PEOPLE}")))
            .and(header("authorization", "Bearer attio-test-token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(fixture("people-object.json")))
            .mount(&apis.attio)
            .await;
        apis
    }

    fn ctx(&self) -> Arc<Ctx> {
        let mut attio = AttioConfig::new("attio-test-token");
        attio.base_url = format!("{}/v2", self.attio.uri());
        let mut hubspot = HubSpotConfig::new("hubspot-test-token");
        hubspot.base_url = self.hubspot.uri();
        hubspot.backoff = Duration::from_millis(10);
        Arc::new(SyncContext::new(
            AttioClient::new(attio).expect("attio client"),
            HubSpotSink::new(hubspot).expect("hubspot client"),
            self.mappings.clone(),
            FieldMapping::default(),
        ))
    }

    async fn mount_person(&self, times: u64) {
        self.mount_attio_fixture(
            &format!("/v2/objects/people/records/{ADA}"),
            "person.json",
            times,
        )
        .await;
    }

    /// Attio answers the batched read of Ada (`POST .../records/query`, `record_id` `$in`
    /// [Ada], as the records and list-entries consumers read a batch's records) with the
    /// person fixture, `times` times.
    async fn mount_person_query(&self, times: u64) {
        integration_tests::fixtures::mount_ada_query(&self.attio, times).await;
    }

    /// Attio answers GET `path` with `tests/fixtures/attio/<fixture>`, `times` times.
    async fn mount_attio_fixture(&self, path_: &str, fixture_name: &str, times: u64) {
        Mock::given(method("GET"))
            .and(path(path_))
            .respond_with(ResponseTemplate::new(200).set_body_json(fixture(fixture_name)))
            .expect(times)
            .mount(&self.attio)
            .await;
    }

    /// HubSpot archives the object at `path` (a DELETE), exactly once.
    async fn mount_archive(&self, path_: &str) {
        Mock::given(method("DELETE"))
            .and(path(path_))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&self.hubspot)
            .await;
    }

    /// A mapping from the Attio id to the HubSpot id, as an earlier sync left it.
    async fn seed(&self, object: CrmObject, attio_id: &str, crm_id: &str) {
        self.mappings
            .put(object, attio_id, &CrmId(crm_id.into()))
            .await
            .expect("seed");
    }

    /// The HubSpot id the mappings hold for the Attio id.
    async fn mapped(&self, object: CrmObject, attio_id: &str) -> Option<CrmId> {
        self.mappings.get(object, attio_id).await.expect("get")
    }

    async fn mount_contact_upsert(&self, times: u64) {
        Mock::given(method("POST"))
            .and(path("/crm/v3/objects/contacts/batch/upsert"))
            .and(header("authorization", "Bearer hubspot-test-token"))
            .and(body_json(json!({"inputs": [{
                "id": ADA,
                "idProperty": "attio_record_id",
                "objectWriteTraceId": "0",
                "properties": {
                    "attio_record_id": ADA,
                    "email": "ada@analytical.example",
                    "firstname": "Ada",
                    "lastname": "Lovelace",
                    "jobtitle": "Chief Engine Officer"
                }
            }]})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "status": "COMPLETE",
                "results": [{"id": "901", "properties": {"attio_record_id": ADA}}]
            })))
            .expect(times)
            .mount(&self.hubspot)
            .await;
    }
}

/// A queued message as ingest writes it, for one Attio event.
fn inbound(message_id: &str, event: Value) -> InboundEvent {
    let raw = serde_json::to_vec(&event).expect("json");
    let queued = QueuedEvent::first_of(&raw, message_id, 1_763_000_000).expect("event");
    InboundEvent::from_queued(message_id.to_owned(), queued).expect("event parses")
}

fn record_event(kind: &str, attribute: Option<&str>) -> Value {
    let mut id = json!({"workspace_id": WS, "object_id": PEOPLE, "record_id": ADA});
    if let Some(attribute) = attribute {
        id["attribute_id"] = json!(attribute);
    }
    json!({"event_type": kind, "id": id, "actor": {"type": "workspace-member", "id": "m"}})
}

fn all_done(outcomes: &[relay_sync::MessageOutcome], expected: usize) {
    assert_eq!(outcomes.len(), expected, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|o| o.disposition == Disposition::Done),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn ten_updates_of_one_record_cost_one_query_and_one_upsert() {
    let apis = Apis::start().await;
    apis.mount_person_query(1).await;
    apis.mount_contact_upsert(1).await;
    let handler = RecordsHandler::new(apis.ctx());
    let batch: Vec<_> = (0..10)
        .map(|i| {
            inbound(
                &format!("m{i}"),
                record_event("record.updated", Some(&format!("attr-{i}"))),
            )
        })
        .collect();
    all_done(&handler.handle(&batch).await, 10);
    assert_eq!(
        apis.mapped(CrmObject::Contacts, ADA).await,
        Some(CrmId("901".into()))
    );
}

#[tokio::test]
async fn a_deleted_record_archives_its_hubspot_copy() {
    let apis = Apis::start().await;
    apis.seed(CrmObject::Contacts, ADA, "901").await;
    apis.mount_archive("/crm/v3/objects/contacts/901").await;
    let handler = RecordsHandler::new(apis.ctx());
    all_done(
        &handler
            .handle(&[inbound("m1", record_event("record.deleted", None))])
            .await,
        1,
    );
    assert_eq!(apis.mapped(CrmObject::Contacts, ADA).await, None);
}

/// Attio merged two people into Ada (a new record); both originals were synced. HubSpot's
/// merge answers a NEW id (no Primary ID Preservation): the merged record and both originals
/// end mapped to it, and Ada's values are written there.
#[tokio::test]
async fn a_merged_record_ends_as_one_hubspot_object_at_the_id_the_merge_answered() {
    let apis = Apis::start().await;
    apis.mount_person(1).await;
    apis.seed(CrmObject::Contacts, "old-a", "777").await;
    apis.seed(CrmObject::Contacts, "old-b", "778").await;
    let patch = |id: &str, properties: Value| {
        Mock::given(method("PATCH"))
            .and(path(format!("/crm/v3/objects/contacts/{id}")))
            .and(body_json(json!({"properties": properties})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": id})))
            .expect(1)
    };
    // The primary is claimed for the merged record before the merge (see merges.rs).
    patch("777", json!({"attio_record_id": ADA}))
        .mount(&apis.hubspot)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/merge"))
        .and(body_json(
            json!({"primaryObjectId": "777", "objectIdToMerge": "778"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "990"})))
        .expect(1)
        .mount(&apis.hubspot)
        .await;
    patch(
        "990",
        json!({
            "attio_record_id": ADA,
            "email": "ada@analytical.example",
            "firstname": "Ada",
            "lastname": "Lovelace",
            "jobtitle": "Chief Engine Officer"
        }),
    )
    .mount(&apis.hubspot)
    .await;
    let merged = |duplicate: &str| {
        let mut event = record_event("record.merged", None);
        event["duplicate_object_id"] = json!(PEOPLE);
        event["duplicate_record_id"] = json!(duplicate);
        event
    };
    let handler = RecordsHandler::new(apis.ctx());
    let batch = [
        inbound("m1", merged("old-a")),
        inbound("m2", merged("old-b")),
    ];
    all_done(&handler.handle(&batch).await, 2);
    for id in [ADA, "old-a", "old-b"] {
        let mapped = apis.mapped(CrmObject::Contacts, id).await;
        assert_eq!(mapped, Some(CrmId("990".into())), "{id}");
    }
}

#[tokio::test]
async fn a_note_is_created_once_with_its_parent_and_updated_on_retry() {
    let apis = Apis::start().await;
    // The parent, never synced, is synced on demand the way the records consumer syncs a
    // batch of one (its query, its rules), then the note is made.
    apis.mount_person_query(1).await;
    apis.mount_contact_upsert(1).await;
    apis.mount_attio_fixture(&format!("/v2/notes/{NOTE}"), "note.json", 2)
        .await;
    let properties = json!({
        "hs_note_body": "<p><strong>Intro call</strong></p><p>Wants the analytical engine in Q1.</p>",
        "hs_timestamp": "1795168800000"
    });
    // Every create carries the note's marker, so an attempt whose answer is lost can be found.
    let mut created = properties.clone();
    created["attio_note_id"] = json!(NOTE);
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/notes"))
        .and(body_json(json!({
            "properties": created,
            "associations": [{"to": {"id": "901"},
                              "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]}]
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "n-55"})))
        .expect(1)
        .mount(&apis.hubspot)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/crm/v3/objects/notes/n-55"))
        .and(body_json(json!({"properties": properties})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "n-55"})))
        .expect(1)
        .mount(&apis.hubspot)
        .await;
    // The create made the parent's association and the parent has not changed: the update
    // makes no association call (links.rs, confirmed sets).
    Mock::given(method("PUT"))
        .and(path(
            "/crm/v4/objects/notes/n-55/associations/default/contacts/901",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "COMPLETE"})))
        .expect(0)
        .mount(&apis.hubspot)
        .await;

    let handler = NotesHandler::new(apis.ctx());
    let event = json!({"event_type": "note.created", "id": {"workspace_id": WS, "note_id": NOTE},
                       "parent_object_id": PEOPLE, "parent_record_id": ADA,
                       "actor": {"type": "workspace-member", "id": "m"}});
    all_done(&handler.handle(&[inbound("m1", event.clone())]).await, 1);
    // SQS redelivers the same event (at-least-once): it updates, it does not create again.
    all_done(&handler.handle(&[inbound("m1", event)]).await, 1);
    assert_eq!(
        apis.mapped(CrmObject::Notes, NOTE).await,
        Some(CrmId("n-55".into()))
    );
}

#[tokio::test]
async fn a_completed_task_becomes_a_completed_hubspot_task() {
    let apis = Apis::start().await;
    apis.seed(CrmObject::Contacts, ADA, "901").await;
    apis.mount_attio_fixture(&format!("/v2/tasks/{TASK}"), "task.json", 1)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/tasks"))
        .and(body_json(json!({
            "properties": {
                "hs_task_subject": "Send the engine spec",
                "hs_task_body": "<p>Send the engine spec<br>Include the difference engine appendix.</p>",
                "hs_task_status": "COMPLETED",
                "hs_timestamp": "1796058000000",
                "attio_task_id": TASK
            },
            "associations": [{"to": {"id": "901"},
                              "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}]}]
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "t-9"})))
        .expect(1)
        .mount(&apis.hubspot)
        .await;
    let handler = TasksHandler::new(apis.ctx());
    let event = json!({"event_type": "task.updated", "id": {"workspace_id": WS, "task_id": TASK},
                       "actor": {"type": "workspace-member", "id": "m"}});
    all_done(&handler.handle(&[inbound("m1", event)]).await, 1);
}

/// Absent from the query and 404 `not_found` on the GET that confirms it is no deletion (a merged-away original reads the same): the
/// contact stays until the record's own `record.deleted`, which archives it.
#[tokio::test]
async fn a_record_that_reads_404_is_archived_by_its_delete_event_not_by_the_404() {
    let apis = Apis::start().await;
    apis.seed(CrmObject::Contacts, ADA, "901").await;
    // The batched read leaves Ada out; one GET confirms what that means.
    Mock::given(method("POST"))
        .and(path("/v2/objects/people/records/query"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": []})))
        .expect(1)
        .mount(&apis.attio)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/objects/people/records/{ADA}")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "status_code": 404, "type": "invalid_request_error", "code": "not_found",
            "message": "Record not found"})))
        .expect(1)
        .mount(&apis.attio)
        .await;
    let handler = RecordsHandler::new(apis.ctx());
    {
        let _no_archive = Mock::given(method("DELETE"))
            .respond_with(ResponseTemplate::new(204))
            .expect(0)
            .mount_as_scoped(&apis.hubspot)
            .await;
        all_done(
            &handler
                .handle(&[inbound("m1", record_event("record.updated", Some("a")))])
                .await,
            1,
        );
    }
    apis.mount_archive("/crm/v3/objects/contacts/901").await;
    all_done(
        &handler
            .handle(&[inbound("m2", record_event("record.deleted", None))])
            .await,
        1,
    );
}

#[tokio::test]
async fn a_hubspot_validation_error_dead_letters_only_its_message() {
    let apis = Apis::start().await;
    apis.mount_person_query(1).await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/batch/upsert"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "status": "error", "category": "VALIDATION_ERROR",
            "message": "Property \"jobtitle\" does not exist"})))
        .mount(&apis.hubspot)
        .await;
    let handler = RecordsHandler::new(apis.ctx());
    let outcomes = handler
        .handle(&[inbound("poison", record_event("record.updated", Some("a")))])
        .await;
    assert!(
        matches!(&outcomes[0].disposition, Disposition::DeadLetter { reason } if reason.contains("jobtitle")),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn list_entry_events_resync_their_parent_record_once_per_batch() {
    let apis = Apis::start().await;
    apis.mount_person_query(1).await;
    apis.mount_contact_upsert(1).await;
    let entry = |kind: &str, entry_id: &str| {
        json!({"event_type": kind,
               "id": {"workspace_id": WS, "list_id": "list-1", "entry_id": entry_id, "attribute_id": "stage-attr"},
               "parent_object_id": PEOPLE, "parent_record_id": ADA,
               "actor": {"type": "workspace-member", "id": "m"}})
    };
    let orphan = json!({"event_type": "list-entry.created",
                        "id": {"workspace_id": WS, "list_id": "list-1", "entry_id": "e9"}});
    let handler = relay_sync::ListEntriesHandler::new(apis.ctx());
    let outcomes = handler
        .handle(&[
            inbound("m1", entry("list-entry.created", "e1")),
            inbound("m2", entry("list-entry.updated", "e1")),
            inbound("m3", orphan),
        ])
        .await;
    let by_id = |id: &str| {
        outcomes
            .iter()
            .find(|o| o.message_id == id)
            .map(|o| o.disposition.clone())
    };
    assert_eq!(by_id("m1"), Some(Disposition::Done));
    assert_eq!(by_id("m2"), Some(Disposition::Done));
    assert!(
        matches!(by_id("m3"), Some(Disposition::DeadLetter { .. })),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn deleted_notes_and_tasks_archive_their_hubspot_copies() {
    let apis = Apis::start().await;
    apis.seed(CrmObject::Notes, NOTE, "n-55").await;
    apis.seed(CrmObject::Tasks, TASK, "t-9").await;
    apis.mount_archive("/crm/v3/objects/notes/n-55").await;
    apis.mount_archive("/crm/v3/objects/tasks/t-9").await;
    let note = json!({"event_type": "note.deleted", "id": {"workspace_id": WS, "note_id": NOTE},
                      "parent_object_id": PEOPLE, "parent_record_id": ADA,
                      "actor": {"type": "workspace-member", "id": "m"}});
    let task = json!({"event_type": "task.deleted", "id": {"workspace_id": WS, "task_id": TASK},
                      "actor": {"type": "workspace-member", "id": "m"}});
    all_done(
        &NotesHandler::new(apis.ctx())
            .handle(&[inbound("m1", note)])
            .await,
        1,
    );
    all_done(
        &TasksHandler::new(apis.ctx())
            .handle(&[inbound("m2", task)])
            .await,
        1,
    );
    assert_eq!(apis.mapped(CrmObject::Notes, NOTE).await, None);
    assert_eq!(apis.mapped(CrmObject::Tasks, TASK).await, None);
}

/// A person moves to another company in Attio: the fake HubSpot (which answers the v4 default
/// association PUT and the pair DELETE as documented) ends with the new association only, and
/// an association a HubSpot user made by hand is left alone.
#[tokio::test]
async fn a_person_who_changes_company_ends_with_only_the_new_association() {
    use integration_tests::fake_apis::{FakeHubSpot, FaultDice, serve};
    const ACME: &str = "c0ffee00-1111-4222-8333-444455556666";
    const INITECH: &str = "1a1a1a1a-2b2b-4c3c-8d4d-5e5e5e5e5e5e";

    let apis = Apis::start().await;
    let fake = Arc::new(FakeHubSpot::new(
        "hubspot-test-token",
        FaultDice::new(0.0, 1),
    ));
    let hubspot = serve(&fake).await;
    // Both companies were synced before: their HubSpot ids are mapped.
    apis.seed(CrmObject::Companies, ACME, "5001").await;
    apis.seed(CrmObject::Companies, INITECH, "5002").await;
    // Attio answers Ada at Acme once, then at Initech.
    let at = |company: &str| {
        let mut person = fixture("person.json");
        person["data"]["values"]["company"] = json!([{
            "active_from": "2026-11-02T09:12:44Z", "active_until": null,
            "created_by_actor": {"type": "workspace-member", "id": "m"},
            "attribute_type": "record-reference",
            "target_object": "companies", "target_record_id": company
        }]);
        ResponseTemplate::new(200).set_body_json(json!({"data": [person["data"]]}))
    };
    let query_path = "/v2/objects/people/records/query";
    Mock::given(method("POST"))
        .and(path(query_path))
        .respond_with(at(ACME))
        .up_to_n_times(1)
        .mount(&apis.attio)
        .await;
    Mock::given(method("POST"))
        .and(path(query_path))
        .respond_with(at(INITECH))
        .mount(&apis.attio)
        .await;

    let mut attio = AttioConfig::new("attio-test-token");
    attio.base_url = format!("{}/v2", apis.attio.uri());
    let mut config = HubSpotConfig::new("hubspot-test-token");
    config.base_url = hubspot.uri();
    let ctx = Arc::new(SyncContext::new(
        AttioClient::new(attio).expect("attio client"),
        HubSpotSink::new(config).expect("hubspot client"),
        apis.mappings.clone(),
        FieldMapping::default(),
    ));
    let handler = RecordsHandler::new(ctx);
    let event = record_event("record.updated", Some("company"));

    all_done(&handler.handle(&[inbound("m1", event.clone())]).await, 1);
    let contact = apis
        .mapped(CrmObject::Contacts, ADA)
        .await
        .expect("mapped")
        .0;
    let link = |company: &str| {
        let (from, to) = ("contacts".to_owned(), "companies".to_owned());
        (from, contact.clone(), to, company.to_owned())
    };
    let links = || fake.state.lock().expect("state").links.clone();
    assert_eq!(links(), [link("5001")].into());
    // A HubSpot user associates Ada with a third company.
    fake.state.lock().expect("state").links.insert(link("5003"));

    all_done(&handler.handle(&[inbound("m2", event.clone())]).await, 1);
    // Redelivered: nothing changes.
    all_done(&handler.handle(&[inbound("m2", event)]).await, 1);

    assert_eq!(links(), [link("5002"), link("5003")].into());
    let state = fake.state.lock().expect("state");
    assert!(state.unexpected.is_empty(), "{:?}", state.unexpected);
}
