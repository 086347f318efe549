//! The stand-ins' way back, driven through the relay's own HTTP adapters (`AttioClient` as
//! `AttioWriter`, `HubSpotSink` as `CrmSink` and `CrmSource`), so the fakes and the adapters are
//! checked against each other and against the documented shapes.

use std::sync::Arc;
use std::time::Duration;

use relay_attio::{AttioClient, AttioConfig, AttioValues, AttioWriter, current_values};
use relay_crm::{CrmId, CrmObject, CrmSink, CrmSource, HubSpotConfig, HubSpotSink, RecordUpsert};
use serde_json::{Value, json};

use super::*;
use crate::fixtures::ids;

const ATTIO_TOKEN: &str = "attio-two-way-token";
const HUBSPOT_TOKEN: &str = "hubspot-two-way-token";
/// 2026-03-01T10:00:00Z.
const START_MS: i64 = 1_772_359_200_000;

fn no_faults() -> FaultDice {
    FaultDice::new(0.0, 1)
}

async fn attio(clock: &FakeClock) -> (Arc<FakeAttio>, wiremock::MockServer, AttioClient) {
    let fake = Arc::new(
        FakeAttio::from_fixtures(ATTIO_TOKEN, ids::PEOPLE, no_faults()).with_clock(clock.clone()),
    );
    let server = serve(&fake).await;
    let mut config = AttioConfig::new(ATTIO_TOKEN);
    config.base_url = format!("{}/v2", server.uri());
    config.backoff_base = Duration::from_millis(1);
    config.backoff_cap = Duration::from_millis(5);
    let client = AttioClient::new(config).expect("client");
    (fake, server, client)
}

fn values(json: Value) -> AttioValues {
    json.as_object().cloned().expect("values")
}

fn job_titles(record: &relay_attio::Record) -> Vec<String> {
    current_values(&record.values, "job_title")
        .filter_map(|v| match v {
            relay_attio::Value::Text(text) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn attio_asserts_match_on_the_unique_attribute_and_keep_value_history() {
    let clock = FakeClock::manual(START_MS);
    let (fake, _server, client) = attio(&clock).await;

    let made = client
        .assert_record(
            "people",
            "email_addresses",
            json!({
                "email_addresses": ["grace@navy.example"], "job_title": "Rear Admiral"
            }),
        )
        .await
        .expect("created");
    clock.advance_ms(1_500);
    let again = AttioWriter::assert_record(
        &client,
        "people",
        "email_addresses",
        &values(json!({"email_addresses": ["Grace@Navy.example"], "job_title": "Rear Admiral"})),
    )
    .await
    .expect("matched");
    clock.advance_ms(1_500);
    let changed = AttioWriter::update_record(
        &client,
        "people",
        made.record_id(),
        &values(json!({"job_title": "Commodore"})),
    )
    .await
    .expect("updated");

    assert_eq!(again.record_id(), made.record_id(), "the email matched");
    assert_eq!(job_titles(&changed), ["Commodore"]);
    let writes = fake.attio_writes();
    assert_eq!(writes.len(), 3);
    assert_eq!(writes[0].kind, AttioWriteKind::Assert { created: true });
    assert_eq!(writes[1].kind, AttioWriteKind::Assert { created: false });
    assert!(
        writes[1].changed.is_empty(),
        "the same values again change nothing"
    );
    assert_eq!(writes[2].changed, ["job_title"]);
    assert!(
        writes
            .iter()
            .all(|w| w.actor == json!({"type": "api-token", "id": RELAY_TOKEN_ID}))
    );
    assert_eq!(fake.relay_changes().len(), 2);

    // The old title ended when the new one started, by the clock; the new one is the relay's.
    let read = client
        .get_record("people", made.record_id())
        .await
        .expect("read");
    assert_eq!(job_titles(&read), ["Commodore"]);
    let raw = fake.stored_record(made.record_id()).expect("held")["values"]["job_title"].clone();
    let at = attio_time(START_MS + 3_000);
    assert_eq!(raw[0]["value"], "Commodore");
    assert_eq!(raw[0]["active_from"], at.as_str());
    assert_eq!(raw[0]["created_by_actor"]["type"], "api-token");
    assert_eq!(raw[1]["value"], "Rear Admiral");
    assert_eq!(raw[1]["active_until"], at.as_str());
}

#[tokio::test]
async fn attio_user_edits_are_by_a_member_and_updates_of_deleted_records_are_not_found() {
    let clock = FakeClock::manual(START_MS);
    let (fake, _server, client) = attio(&clock).await;
    let person = "11111111-2222-4333-8444-555555555555";

    let changed = fake.edit_as_user("people", person, "member-1", json!({"job_title": "Poet"}));
    assert_eq!(changed, Some(vec!["job_title".to_owned()]));
    let read = client.get_record("people", person).await.expect("read");
    assert_eq!(job_titles(&read), ["Poet"]);
    // The template person's email matches an assert.
    let matched = AttioWriter::assert_record(
        &client,
        "people",
        "email_addresses",
        &values(json!({"email_addresses": [FakeAttio::email(person)], "job_title": "Poet"})),
    )
    .await
    .expect("matched");
    assert_eq!(matched.record_id(), person);
    assert!(
        fake.relay_changes().is_empty(),
        "an echo of the user's value"
    );

    fake.delete(person);
    let err = AttioWriter::update_record(
        &client,
        "people",
        person,
        &values(json!({"job_title": "x"})),
    )
    .await
    .expect_err("gone");
    assert!(err.is_record_gone(), "{err:?}");
    let err = AttioWriter::assert_record(
        &client,
        "people",
        "job_title",
        &values(json!({"job_title": "x"})),
    )
    .await
    .expect_err("not unique");
    assert!(
        err.is_permanent() && err.to_string().contains("not unique"),
        "{err}"
    );
}

#[tokio::test]
async fn attio_refuses_the_26th_write_of_a_clock_second() {
    let clock = FakeClock::manual(START_MS + 400);
    let (fake, server, _client) = attio(&clock).await;
    let http = reqwest::Client::new();
    let put = |n: usize| {
        http.put(format!(
            "{}/v2/objects/people/records?matching_attribute=email_addresses",
            server.uri()
        ))
        .bearer_auth(ATTIO_TOKEN)
        .json(&json!({"data": {"values": {"email_addresses": [format!("p{n}@x.example")]}}}))
        .send()
    };
    for n in 0..ATTIO_WRITES_PER_SECOND {
        assert_eq!(put(n).await.expect("sent").status(), 200, "write {n}");
    }
    let limited = put(99).await.expect("sent");
    assert_eq!(limited.status(), 429);
    let retry = limited.headers()["retry-after"]
        .to_str()
        .expect("text")
        .to_owned();
    let at = httpdate::parse_http_date(&retry).expect("an HTTP date");
    assert_eq!(at, clock.system_time() + Duration::from_millis(600));
    assert_eq!(fake.attio_writes().len(), ATTIO_WRITES_PER_SECOND);

    clock.advance_ms(600);
    assert_eq!(put(100).await.expect("sent").status(), 200, "a new second");
}

async fn hubspot(clock: &FakeClock) -> (Arc<FakeHubSpot>, wiremock::MockServer, HubSpotSink) {
    let fake = Arc::new(FakeHubSpot::new(HUBSPOT_TOKEN, no_faults()).with_clock(clock.clone()));
    let server = serve(&fake).await;
    let mut config = HubSpotConfig::new(HUBSPOT_TOKEN);
    config.base_url = server.uri();
    config.backoff = Duration::from_millis(5);
    (fake, server, HubSpotSink::new(config).expect("sink"))
}

fn upsert(attio_id: &str, email: &str, title: &str) -> RecordUpsert {
    RecordUpsert {
        attio_record_id: attio_id.into(),
        properties: [
            ("email".to_owned(), email.to_owned()),
            ("jobtitle".to_owned(), title.to_owned()),
        ]
        .into(),
    }
}

#[tokio::test]
async fn hubspot_keeps_history_by_source_and_none_for_an_unchanged_value() {
    let clock = FakeClock::manual(START_MS);
    let (fake, _server, sink) = hubspot(&clock).await;
    let report = sink
        .upsert_records(
            CrmObject::Contacts,
            &[upsert("rec-1", "ada@a.example", "Countess")],
        )
        .await
        .expect("upsert");
    let id = report.ids["rec-1"].clone();
    clock.advance_ms(2_000);
    let edited = fake.edit_contact(&id.0, 45_678, json!({"jobtitle": "Analyst"}));
    assert_eq!(edited, Some(vec!["jobtitle".to_owned()]));
    clock.advance_ms(2_000);
    let before = fake.contact_changes().len();
    sink.upsert_records(
        CrmObject::Contacts,
        &[upsert("rec-1", "ada@a.example", "Analyst")],
    )
    .await
    .expect("same values again");
    assert_eq!(
        fake.contact_changes().len(),
        before,
        "no entry for an unchanged value"
    );

    let states = sink
        .read_batch(
            CrmObject::Contacts,
            &[id.clone(), CrmId("404404".into())],
            &["email", "jobtitle", "phone"],
        )
        .await
        .expect("read");
    assert_eq!(states.len(), 1, "the unknown id is absent");
    let state = &states[0];
    assert_eq!(state.properties["jobtitle"].as_deref(), Some("Analyst"));
    assert_eq!(state.properties["phone"], None);
    let title = &state.changes["jobtitle"];
    assert_eq!(
        (title.at_ms, title.source_type.as_deref()),
        (START_MS + 2_000, Some("CRM_UI"))
    );
    assert_eq!(title.source_id.as_deref(), Some("userId:45678"));
    let email = &state.changes["email"];
    assert_eq!(
        (email.at_ms, email.source_type.as_deref()),
        (START_MS, Some("INTEGRATION"))
    );
    assert_eq!(email.source_id.as_deref(), Some(DEFAULT_APP_ID));
}

#[tokio::test]
async fn hubspot_lists_pages_and_gives_the_webhook_events_of_each_change() {
    let clock = FakeClock::manual(START_MS);
    let (fake, _server, sink) = hubspot(&clock).await;
    let seeded = fake.seed_contact("seeded@a.example");
    let (_, cursor) = fake.webhook_events(0, &["jobtitle"]);
    let inputs: Vec<RecordUpsert> = (0..150)
        .map(|n| upsert(&format!("rec-{n}"), &format!("p{n}@a.example"), "Engineer"))
        .collect();
    let report = sink
        .upsert_records(CrmObject::Contacts, &inputs)
        .await
        .expect("upsert");
    clock.advance_ms(1_000);
    fake.edit_contact(&report.ids["rec-7"].0, 9, json!({"jobtitle": "Lead"}));

    let (events, next) = fake.webhook_events(cursor, &["jobtitle"]);
    assert_eq!(next, fake.contact_changes().len());
    let creations = events
        .iter()
        .filter(|e| e["subscriptionType"] == "contact.creation")
        .count();
    assert_eq!(creations, 150);
    let changes: Vec<&Value> = events
        .iter()
        .filter(|e| e["subscriptionType"] == "contact.propertyChange")
        .collect();
    assert_eq!(
        changes.len(),
        151,
        "one per title set, none for email (not subscribed)"
    );
    let user = changes.last().expect("the user's edit");
    assert_eq!(user["changeSource"], "CRM_UI");
    assert_eq!(user["sourceId"], "userId:9");
    assert_eq!(user["propertyValue"], "Lead");
    assert_eq!(user["occurredAt"], START_MS + 1_000);
    assert_eq!(user["objectId"].to_string(), report.ids["rec-7"].0);
    assert!(
        changes[..150]
            .iter()
            .all(|e| e["changeSource"] == "INTEGRATION" && e["sourceId"] == DEFAULT_APP_ID)
    );
    let mut event_ids: Vec<String> = events.iter().map(|e| e["eventId"].to_string()).collect();
    event_ids.sort();
    event_ids.dedup();
    assert_eq!(event_ids.len(), events.len(), "event ids are unique");
    assert!(fake.webhook_events(next, &["jobtitle"]).0.is_empty());

    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let page = sink
            .list_page(CrmObject::Contacts, &["email"], after.as_deref())
            .await
            .expect("page");
        assert!(page.records.len() <= 100);
        listed.extend(page.records.into_iter().map(|r| r.id.0));
        match page.after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(listed.len(), 151);
    assert!(listed.contains(&seeded));
    let unique: std::collections::BTreeSet<_> = listed.iter().collect();
    assert_eq!(unique.len(), 151, "no contact on two pages");
    assert!(fake.state.lock().expect("state").unexpected.is_empty());
}
