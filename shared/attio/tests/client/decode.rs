//! Each endpoint: the exact request, and its response decoded.

use super::*;

#[tokio::test]
async fn get_record_decodes_every_value_type_and_keeps_unknown_ones() {
    let server = MockServer::start().await;
    get_the_record()
        .respond_with(every_type_record())
        .expect(1)
        .mount(&server)
        .await;

    let record = read_the_record(&server).await.expect("record");

    assert_eq!(record.record_id(), RECORD_ID);
    assert_eq!(record.object_id(), PEOPLE_ID);
    assert_eq!(record.created_at, "2026-11-21T13:22:49.061281000Z");
    let text = |slug| record.first_text(slug);

    // Only current values count: the third, ended address is history.
    assert_eq!(
        record.emails("email_addresses").collect::<Vec<_>>(),
        vec!["ada@analytical.example", "ada@engines.example"]
    );
    assert_eq!(record.values["email_addresses"].len(), 3);
    let Some(Value::Email(email)) = record.first("email_addresses") else {
        panic!("email");
    };
    assert_eq!(email.original_email_address, "Ada@Analytical.example");
    assert_eq!(email.email_domain, "analytical.example");
    assert_eq!(email.email_root_domain, "analytical.example");
    assert_eq!(email.email_local_specifier, "ada");

    let name = record.personal_name().expect("personal name");
    assert_eq!(
        (name.first_name.as_str(), name.last_name.as_str()),
        ("Ada", "Lovelace")
    );
    assert_eq!(record.name().as_deref(), Some("Ada Lovelace"));

    let Some(Value::PhoneNumber(phone)) = record.first("phone_numbers") else {
        panic!("phone");
    };
    assert_eq!(phone.original_phone_number, "07700 900123");
    assert_eq!(phone.country_code.as_deref(), Some("GB"));
    assert_eq!(
        record.phone_numbers("phone_numbers").collect::<Vec<_>>(),
        vec!["+447700900123"]
    );

    let Some(Value::Domain(domain)) = record.first("domains") else {
        panic!("domain");
    };
    assert_eq!(domain.root_domain, "analytical.example");
    assert_eq!(
        record.domains("domains").collect::<Vec<_>>(),
        vec!["app.analytical.example"]
    );

    assert_eq!(
        record.first("stage"),
        Some(&Value::Status(Status {
            id: "11f07f01-c10f-4e05-a522-33e050bc52ee".into(),
            title: "In Progress".into(),
            is_archived: false,
        }))
    );
    let Some(Value::Select(option)) = record.first("priority") else {
        panic!("select");
    };
    assert_eq!(option.id, "08c2c59a-c18e-40c6-8dc4-95415313b2ea");
    assert_eq!(option.title, "Medium");

    let Some(Value::Currency(currency)) = record.first("value") else {
        panic!("currency");
    };
    assert_eq!(currency.currency_value, 12500.5);
    assert_eq!(currency.currency_code.as_deref(), Some("GBP"));

    let company = record.references("company").next().expect("reference");
    assert_eq!(company.target_object, "companies");
    assert_eq!(
        company.target_record_id,
        "891dcbfc-9141-415d-9b2a-2238a6cc012d"
    );

    // Every type as the string a CRM mapper would write.
    assert_eq!(
        text("email_addresses").as_deref(),
        Some("ada@analytical.example")
    );
    assert_eq!(text("name").as_deref(), Some("Ada Lovelace"));
    assert_eq!(text("phone_numbers").as_deref(), Some("+447700900123"));
    assert_eq!(text("domains").as_deref(), Some("app.analytical.example"));
    assert_eq!(text("stage").as_deref(), Some("In Progress"));
    assert_eq!(text("priority").as_deref(), Some("Medium"));
    assert_eq!(text("value").as_deref(), Some("12500.5"));
    assert_eq!(
        text("company").as_deref(),
        Some("891dcbfc-9141-415d-9b2a-2238a6cc012d")
    );
    assert_eq!(text("job_title").as_deref(), Some("Chief Engine Officer"));
    assert_eq!(text("employee_count").as_deref(), Some("42"));
    assert_eq!(text("rating").as_deref(), Some("4"));
    assert_eq!(text("birthday").as_deref(), Some("1815-12-10"));
    assert_eq!(text("newsletter").as_deref(), Some("true"));
    assert_eq!(
        text("created_at").as_deref(),
        Some("2026-11-21T13:22:49.061281000Z")
    );
    assert_eq!(
        text("created_by").as_deref(),
        Some("50cf242c-7fa3-4cad-87d0-75b1af71c57b")
    );
    assert_eq!(
        text("primary_location").as_deref(),
        Some("12 St James's Square, London, SW1Y 4LB, GB")
    );
    assert_eq!(
        text("last_email_interaction").as_deref(),
        Some("2026-11-23T09:00:00.000000000Z")
    );
    assert_eq!(text("description"), None, "no values");
    assert_eq!(text("no_such_attribute"), None);
    assert_eq!(record.texts("job_title"), vec!["Chief Engine Officer"]);

    assert_eq!(record.first("employee_count"), Some(&Value::Number(42.0)));
    assert_eq!(record.first("rating"), Some(&Value::Rating(4.0)));
    assert_eq!(record.first("newsletter"), Some(&Value::Checkbox(true)));
    assert_eq!(
        record.first("birthday"),
        Some(&Value::Date("1815-12-10".into()))
    );
    assert!(matches!(
        record.first("created_at"),
        Some(Value::Timestamp(_))
    ));
    assert!(matches!(
        record.first("created_by"),
        Some(Value::ActorReference(a)) if a.referenced_actor_type == "workspace-member"
    ));
    assert!(matches!(
        record.first("last_email_interaction"),
        Some(Value::Interaction(i)) if i.interaction_type == "email"
    ));

    // A type Attio may add later: kept, whole, never a decode failure.
    let unknown = &record.values["favourite_engine"][0];
    assert_eq!(unknown.attribute_type, "steam-engine");
    assert!(unknown.is_current());
    let Value::Other(raw) = &unknown.value else {
        panic!("unknown types are Other");
    };
    assert_eq!(raw["engine"], json!({"model": "analytical", "cards": 3}));
    assert_eq!(unknown.as_display_string(), None);
    assert_eq!(
        unknown
            .created_by_actor
            .as_ref()
            .and_then(|a| a.kind.as_deref()),
        Some("app")
    );

    // The envelope of a historic value.
    let old = &record.values["job_title"][1];
    assert!(!old.is_current());
    assert_eq!(
        old.active_until.as_deref(),
        Some("2026-11-22T10:00:00.000000000Z")
    );
    assert_eq!(old.active_from, "2026-11-21T13:22:49.061281000Z");
}

#[tokio::test]
async fn requests_carry_exactly_the_bearer_token_and_accept_json() {
    let server = MockServer::start().await;
    attio("GET", &format!("/v2/objects/{PEOPLE_ID}"))
        .respond_with(json_response(200, fixture("object-people.json")))
        .expect(1)
        .mount(&server)
        .await;

    client(&server).get_object(PEOPLE_ID).await.expect("object");

    let requests = server.received_requests().await.expect("recording");
    let [request] = requests.as_slice() else {
        panic!("one request, got {}", requests.len());
    };
    let values = |name| {
        request
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("?").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(values("authorization"), vec![format!("Bearer {TOKEN}")]);
    assert_eq!(values("accept"), vec!["application/json"]);
    assert_eq!(request.url.query(), None);
    assert!(request.body.is_empty(), "GET has no body");
}

#[tokio::test]
async fn query_pages_walk_the_offsets_until_a_short_page() {
    let server = MockServer::start().await;
    let filter = json!({"email_addresses": {"email_domain": {"$eq": "analytical.example"}}});
    attio("POST", "/v2/objects/people/records/query")
        .and(header("content-type", "application/json"))
        .and(body_json(
            json!({"filter": filter, "limit": 500, "offset": 0}),
        ))
        .respond_with(json_response(200, records(0..500)))
        .expect(1)
        .mount(&server)
        .await;
    attio("POST", "/v2/objects/people/records/query")
        .and(body_json(
            json!({"filter": filter, "limit": 500, "offset": 500}),
        ))
        .respond_with(json_response(200, records(500..503)))
        .expect(1)
        .mount(&server)
        .await;

    let mut pages = client(&server).query_all_records("people", Some(filter.clone()), 500);
    assert_eq!(pages.offset(), 0);
    let first = pages.next_page().await.expect("page 1").expect("records");
    assert_eq!(first.len(), 500);
    assert_eq!(first[0].record_id(), "record-0");
    assert_eq!(pages.offset(), 500, "saved after page 1, resumes at 500");
    assert!(!pages.is_done());

    let second = pages.next_page().await.expect("page 2").expect("records");
    assert_eq!(second.len(), 3);
    assert_eq!(second[2].record_id(), "record-502");
    assert_eq!(pages.offset(), 503);
    assert!(pages.is_done());

    assert!(pages.next_page().await.expect("end").is_none());
    assert_eq!(
        request_count(&server).await,
        2,
        "no request after a short page"
    );
}

#[tokio::test]
async fn a_walk_resumes_from_a_saved_offset_with_its_sort_and_stops_on_an_empty_page() {
    let server = MockServer::start().await;
    let sort = json!({"direction": "asc", "attribute": "created_at"});
    attio("POST", "/v2/objects/people/records/query")
        .and(body_json(
            json!({"sorts": [sort], "limit": 100, "offset": 1200}),
        ))
        .respond_with(json_response(200, json!({"data": []})))
        .expect(1)
        .mount(&server)
        .await;

    let query = RecordQuery::new()
        .sort(sort.clone())
        .limit(100)
        .offset(1200);
    let mut pages = client(&server).record_pages("people", query);
    assert!(pages.next_page().await.expect("page").is_none());
    assert!(pages.is_done());
    assert_eq!(pages.offset(), 1200);
}

#[tokio::test]
async fn query_records_clamps_the_limit_and_sends_no_filter_or_sorts_when_unset() {
    let server = MockServer::start().await;
    attio("POST", "/v2/objects/companies/records/query")
        .respond_with(json_response(200, records(0..2)))
        .expect(1)
        .mount(&server)
        .await;

    let query = RecordQuery::new().limit(2000);
    let found = client(&server)
        .query_records("companies", &query)
        .await
        .expect("records");
    assert_eq!(found.len(), 2);

    let requests = server.received_requests().await.expect("recording");
    let body: Json = requests[0].body_json().expect("JSON body");
    assert_eq!(body, json!({"limit": 500, "offset": 0}));
}

/// Attio's query as the filtering guide documents it: `record_id` `$in` the ids, at most 500
/// per call; duplicates asked once; a stray record in an answer is not the caller's.
#[tokio::test]
async fn get_records_queries_record_id_in_the_ids_500_per_call() {
    let server = MockServer::start().await;
    let ids: Vec<String> = (0..600)
        .map(|n| record(n)["id"]["record_id"].as_str().unwrap().to_owned())
        .collect();
    attio("POST", "/v2/objects/people/records/query")
        .and(body_json(json!({
            "filter": {"record_id": {"$in": ids[..500]}}, "limit": 500, "offset": 0
        })))
        .respond_with(json_response(200, records(0..500)))
        .expect(1)
        .mount(&server)
        .await;
    attio("POST", "/v2/objects/people/records/query")
        .and(body_json(json!({
            "filter": {"record_id": {"$in": ids[500..]}}, "limit": 100, "offset": 0
        })))
        // Record 600 was not asked for: left out.
        .respond_with(json_response(200, records(500..601)))
        .expect(1)
        .mount(&server)
        .await;
    let mut asked = ids.clone();
    asked.extend_from_slice(&ids[..3]);

    let found = client(&server)
        .get_records("people", &asked)
        .await
        .expect("records");

    assert_eq!(found.len(), 600);
    assert_eq!(found[599].record_id(), ids[599]);
}

#[tokio::test]
async fn assert_record_puts_the_values_with_the_matching_attribute() {
    let server = MockServer::start().await;
    let values = json!({
        "email_addresses": ["ada@analytical.example"],
        "name": [{"first_name": "Ada", "last_name": "Lovelace", "full_name": "Ada Lovelace"}]
    });
    attio("PUT", "/v2/objects/people/records")
        .and(query_param("matching_attribute", "email_addresses"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({"data": {"values": values}})))
        .respond_with(every_type_record())
        .expect(1)
        .mount(&server)
        .await;

    let record = client(&server)
        .assert_record("people", "email_addresses", values.clone())
        .await
        .expect("asserted");
    assert_eq!(record.record_id(), RECORD_ID);

    let requests = server.received_requests().await.expect("recording");
    assert_eq!(
        requests[0].url.query(),
        Some("matching_attribute=email_addresses")
    );
}

#[tokio::test]
async fn list_entries_decode_with_their_current_entry_values() {
    let server = MockServer::start().await;
    let list = "33ebdbe9-e529-47c9-b894-0ba25e9c15c0";
    let entry_id = "2e6e29ea-c4e0-4f44-842d-78a891f8c156";
    attio("GET", &format!("/v2/lists/{list}/entries/{entry_id}"))
        .respond_with(json_response(200, fixture("list-entry.json")))
        .expect(1)
        .mount(&server)
        .await;

    let entry = client(&server)
        .get_list_entry(list, entry_id)
        .await
        .expect("entry");
    assert_eq!(entry.id.list_id, list);
    assert_eq!(entry.id.entry_id, entry_id);
    assert_eq!(
        entry.id.workspace_id,
        "14beef7a-99f7-4534-a87e-70b564330a4c"
    );
    assert_eq!(entry.parent_object, "companies");
    assert_eq!(
        entry.parent_record_id,
        "891dcbfc-9141-415d-9b2a-2238a6cc012d"
    );
    assert_eq!(entry.created_at, "2026-11-21T13:22:49.061281000Z");
    assert_eq!(entry.entry_values["stage"].len(), 2);
    assert_eq!(entry.first_text("stage").as_deref(), Some("Qualified"));
    assert_eq!(entry.texts("stage"), vec!["Qualified"]);
    let Some(Value::Currency(size)) = entry.current("deal_size").next() else {
        panic!("currency");
    };
    assert_eq!(size.currency_value, 9000.0);
    assert_eq!(size.currency_code, None);
}

#[tokio::test]
async fn notes_decode() {
    let server = MockServer::start().await;
    let note_id = "ff3f3bd4-40f4-4f80-8187-cd02385af424";
    attio("GET", &format!("/v2/notes/{note_id}"))
        .respond_with(json_response(200, fixture("note.json")))
        .expect(1)
        .mount(&server)
        .await;

    let note = client(&server).get_note(note_id).await.expect("note");
    assert_eq!(note.id.note_id, note_id);
    assert_eq!(note.parent_object, "people");
    assert_eq!(note.parent_record_id, RECORD_ID);
    assert_eq!(note.title, "Intro call");
    assert_eq!(
        note.content_plaintext,
        "Wants the analytical engine in Q1.\nFollow up in January."
    );
    assert!(
        note.content_markdown
            .as_deref()
            .is_some_and(|md| md.contains("**analytical engine**"))
    );
    assert_eq!(note.meeting_id, None);
    assert_eq!(note.created_at, "2026-11-21T14:00:00.000000000Z");
    assert_eq!(
        note.tags[1],
        NoteTag::Record {
            object: "companies".into(),
            record_id: "891dcbfc-9141-415d-9b2a-2238a6cc012d".into()
        }
    );
    assert_eq!(
        note.created_by_actor.and_then(|a| a.kind).as_deref(),
        Some("workspace-member")
    );
}

#[tokio::test]
async fn completed_tasks_decode() {
    let server = MockServer::start().await;
    let task_id = "649e34f4-c39a-4f4d-99ef-48a36bef8f04";
    attio("GET", &format!("/v2/tasks/{task_id}"))
        .respond_with(json_response(200, fixture("task.json")))
        .expect(1)
        .mount(&server)
        .await;

    let task = client(&server).get_task(task_id).await.expect("task");
    assert_eq!(task.id.task_id, task_id);
    assert!(task.is_completed);
    assert_eq!(task.content_plaintext, "Send the engine spec");
    assert_eq!(
        task.deadline_at.as_deref(),
        Some("2026-11-30T17:00:00.000000000Z")
    );
    assert_eq!(task.linked_records.len(), 1);
    assert_eq!(task.linked_records[0].target_object_id, PEOPLE_ID);
    assert_eq!(task.linked_records[0].target_record_id, RECORD_ID);
    assert_eq!(task.assignees[0].referenced_actor_type, "workspace-member");
    assert_eq!(
        task.assignees[0].referenced_actor_id,
        "50cf242c-7fa3-4cad-87d0-75b1af71c57b"
    );
    assert_eq!(task.created_at, "2026-11-21T08:00:00.000000000Z");
}

#[tokio::test]
async fn objects_and_attributes_decode() {
    let server = MockServer::start().await;
    attio("GET", "/v2/objects/people")
        .respond_with(json_response(200, fixture("object-people.json")))
        .expect(1)
        .mount(&server)
        .await;
    attio("GET", "/v2/objects/people/attributes")
        .respond_with(json_response(200, fixture("attributes-people.json")))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);

    let object = client.get_object("people").await.expect("object");
    assert_eq!(object.id.object_id, PEOPLE_ID);
    assert_eq!(object.api_slug.as_deref(), Some("people"));
    assert_eq!(object.slug(), "people");
    assert_eq!(object.singular_noun.as_deref(), Some("Person"));
    assert_eq!(object.plural_noun.as_deref(), Some("People"));

    let attributes = client.list_attributes("people").await.expect("attributes");
    assert_eq!(attributes.len(), 2);
    let email = &attributes[0];
    assert_eq!(
        email.id.attribute_id,
        "41252299-f8c7-4b5e-99c9-4ff8321d2f96"
    );
    assert_eq!(email.id.object_id, PEOPLE_ID);
    assert_eq!(email.api_slug, "email_addresses");
    assert_eq!(email.title, "Email addresses");
    assert_eq!(email.attribute_type, "email-address");
    assert!(email.is_multiselect && email.is_unique && email.is_system_attribute);
    assert_eq!(email.description, None);
    let company = &attributes[1];
    assert_eq!(company.attribute_type, "record-reference");
    assert!(!company.is_multiselect);
    assert_eq!(
        company.description.as_deref(),
        Some("The person's employer")
    );
}
