//! The README's local run, as a newcomer does it: start `attio-relay dev`, `send` a sample
//! delivery, and see it on the local queue with `status --local --show`.

use std::process::Stdio;

use integration_tests::cli::DevServer;
use integration_tests::fixtures::{self, ids};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::{relay, repo_file};

/// The CLI's output as (exit 0, everything it printed).
fn run(args: &[&str]) -> (bool, String) {
    let out = relay().run(args);
    (out.ok, out.text())
}

/// `send`s the sample record update to `url`, with the data folder `data` (where the dev
/// server keeps its signing secret), then `extra`.
fn send_sample(url: &str, data: &str, extra: &[&str]) -> (bool, String) {
    let sample = repo_file("events/deliveries/record-updated.json");
    let args = ["send", &sample, "--url", url, "--data-dir", data];
    run(&[&args[..], extra].concat())
}

#[test]
fn a_sent_sample_lands_on_the_local_queue_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf8 path");
    let server = relay().start_dev(dir.path(), &[]);
    let url = &server.url;

    let (ok, out) = send_sample(url, data, &["--times", "3"]);
    assert!(ok, "{out}");
    assert_eq!(out.matches("\"status\":\"queued\"").count(), 1, "{out}");
    assert_eq!(out.matches("\"status\":\"duplicate\"").count(), 2, "{out}");

    let (ok, out) = send_sample(url, data, &["--secret", "wrong"]);
    assert!(!ok, "a refused delivery fails the command: {out}");
    assert!(
        out.contains("401") && out.contains("signature_mismatch"),
        "{out}"
    );

    let (ok, out) = run(&["status", "--local", "--show", "--data-dir", data]);
    assert!(ok, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("records ") && l.ends_with(" 1 message(s)")),
        "{out}"
    );
    assert!(out.contains("record.updated"), "{out}");
    assert!(out.contains("\"record_id\""), "the body is shown: {out}");

    let (ok, out) = run(&["status", "--local", "--show", "--json", "--data-dir", data]);
    assert!(ok, "{out}");
    let status: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(
        status["messages"]["records"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        status["recent_deliveries"][0]["status"], "COMPLETED",
        "{status}"
    );

    // Without the header, copies are indistinguishable from genuine repeats: all queued.
    let (ok, out) = send_sample(url, data, &["--times", "2", "--no-idempotency-key"]);
    assert!(ok, "{out}");
    assert_eq!(out.matches("\"status\":\"queued\"").count(), 2, "{out}");
}

#[test]
fn send_without_a_running_server_says_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf8");
    let (ok, out) = send_sample("http://127.0.0.1:9/", data, &["--secret", "s"]);
    assert!(!ok);
    assert!(out.contains("attio-relay dev"), "{out}");
}

/// The whole pipeline on one machine: ingest, the in-process records consumer against a
/// stand-in Attio, and the local outbox as the CRM.
#[tokio::test]
async fn a_sent_record_update_is_synced_to_the_local_outbox() {
    let attio = MockServer::start().await;
    people_object(&attio, "attio-dev-token").await;
    ada()
        .respond_with(ada_found())
        .expect(1)
        .mount(&attio)
        .await;
    let (server, dir) = dev_with_the_sample_sent(&attio, "attio-dev-token");
    let data = dir.path().to_str().expect("utf8 path");

    // The consumer polls the local queue; wait for its upsert to reach the outbox.
    let mut outbox = String::new();
    for _ in 0..100 {
        let (_, text) = run(&["outbox", "--json", "--data-dir", data]);
        if text.contains("\"op\":\"upsert\"") {
            outbox = text;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        outbox.contains("\"object\":\"contacts\""),
        "no upsert reached the outbox: {outbox}"
    );
    assert!(
        outbox.contains("ada@analytical.example")
            && outbox.contains("443d9969-4842-451e-96bc-ffb9ad6744df"),
        "{outbox}"
    );
    let (ok, status) = run(&["status", "--local", "--json", "--data-dir", data]);
    assert!(ok, "{status}");
    let status: serde_json::Value = serde_json::from_str(status.trim()).expect("json");
    let records = status["queues"]
        .as_array()
        .and_then(|queues| queues.iter().find(|q| q["queue"] == "records"))
        .expect("the records queue is listed");
    assert_eq!(records["visible"], 0, "the message was consumed: {status}");
    drop(server);
}

/// Answers Attio's `people` object (the consumer reads it to map a person), for `token` only.
async fn people_object(attio: &MockServer, token: &str) {
    Mock::given(method("GET"))
        .and(path(format!("/v2/objects/{}", ids::PEOPLE)))
        .and(header("authorization", format!("Bearer {token}")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixtures::attio("people-object.json")),
        )
        .mount(attio)
        .await;
}

/// A read of the sample's person record (Ada), to be answered by the test: the records
/// consumer reads a batch's records with one query per object (`record_id` `$in`).
fn ada() -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/v2/objects/people/records/query"))
        .and(wiremock::matchers::body_string_contains(ids::ADA))
}

/// The query's answer holding Ada: `{"data": [record]}`, the record as its GET answers it.
fn ada_found() -> ResponseTemplate {
    let person = fixtures::attio("person.json");
    ResponseTemplate::new(200).set_body_json(serde_json::json!({"data": [person["data"]]}))
}

/// Starts `attio-relay dev` with its consumers on against the stand-in Attio (and no HubSpot:
/// the local outbox is the CRM) in a new data folder, and sends it the sample record update.
fn dev_with_the_sample_sent(attio: &MockServer, token: &str) -> (DevServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = relay().without("HUBSPOT_TOKEN").start_dev(
        dir.path(),
        &[
            "--attio-token",
            token,
            "--attio-api-url",
            &format!("{}/v2", attio.uri()),
        ],
    );
    let data = dir.path().to_str().expect("utf8 path");
    let (ok, out) = send_sample(&server.url, data, &[]);
    assert!(ok, "{out}");
    (server, dir)
}

/// A dev server whose consumer finds the sample record refused once (a dead letter) and then
/// readable; returns the server, its data folder and the stand-in Attio.
async fn dev_with_one_dead_letter() -> (DevServer, tempfile::TempDir, MockServer) {
    let attio = MockServer::start().await;
    people_object(&attio, "t").await;
    // First a permanent refusal (a dead letter), then the record.
    ada()
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "status_code": 400, "type": "invalid_request_error", "code": "validation_type",
            "message": "record is being migrated"})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&attio)
        .await;
    ada()
        .respond_with(ada_found())
        .with_priority(2)
        .mount(&attio)
        .await;
    let (server, dir) = dev_with_the_sample_sent(&attio, "t");
    (server, dir, attio)
}

/// Fetches `url` until its body contains `needle` (the consumers run in the background).
async fn wait_for(client: &reqwest::Client, url: &str, needle: &str) -> String {
    let mut page = String::new();
    for _ in 0..100 {
        page = client
            .get(url)
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("text");
        if page.contains(needle) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    page
}

/// The dashboard shows a dead letter with its reason; its Replay button sends it back, and the
/// consumer then syncs it.
#[tokio::test]
async fn the_dashboard_shows_and_replays_a_dead_letter() {
    let (server, dir, _attio) = dev_with_one_dead_letter().await;
    let url = &server.url;
    let data = dir.path().to_str().expect("utf8");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let dashboard = format!("{url}_relay");
    let page = wait_for(&client, &dashboard, "data-message-id").await;
    assert!(
        page.contains("record is being migrated"),
        "the reason is shown: {page}"
    );
    assert!(page.contains("in DLQ"), "{page}");
    let (ok, listed) = run(&["dlq", "list", "--local", "--json", "--data-dir", data]);
    assert!(
        ok && listed.contains("record is being migrated"),
        "dlq list --local: {listed}"
    );
    let id = page
        .split("data-message-id=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("message id")
        .to_owned();

    let replayed = client
        .post(format!("{url}_relay/replay"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("queue=records-dlq&message_id={id}"))
        .send()
        .await
        .expect("replay");
    assert_eq!(replayed.status(), 303, "redirects back to the dashboard");

    let page = wait_for(&client, &dashboard, ">synced<").await;
    assert!(
        page.contains(">synced<") && page.contains("no dead letters"),
        "{page}"
    );
    let (_, outbox) = run(&["outbox", "--json", "--data-dir", data]);
    assert!(outbox.contains("\"op\":\"upsert\""), "{outbox}");
    drop(server);
}

/// A W3C WebDriver session on chromedriver (Debian's chromium-driver), spoken over plain HTTP.
struct Browser {
    http: reqwest::Client,
    base: String,
    _driver: tokio::process::Child,
}

impl Browser {
    async fn start(profile: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver is installed (scripts/test installs Debian's chromium-driver)");
        let http = reqwest::Client::new();
        let root = format!("http://127.0.0.1:{port}");
        let capabilities = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let mut session = None;
        for _ in 0..100 {
            if let Ok(response) = http
                .post(format!("{root}/session"))
                .json(&capabilities)
                .send()
                .await
            {
                let body: serde_json::Value = response.json().await.expect("session json");
                session = Some(
                    body["value"]["sessionId"]
                        .as_str()
                        .unwrap_or_else(|| panic!("no session: {body}"))
                        .to_owned(),
                );
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let session = session.expect("chromedriver answered");
        Self {
            http,
            base: format!("{root}/session/{session}"),
            _driver: driver,
        }
    }

    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if method != reqwest::Method::GET {
            request = request.json(&body);
        }
        let response = request.send().await.expect("webdriver");
        let json: serde_json::Value = response.json().await.expect("webdriver json");
        json["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.command(
            reqwest::Method::POST,
            "/url",
            serde_json::json!({"url": url}),
        )
        .await;
    }

    async fn source(&self) -> String {
        self.command(reqwest::Method::GET, "/source", serde_json::Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn click(&self, css: &str) {
        let element = self
            .command(
                reqwest::Method::POST,
                "/element",
                serde_json::json!({"using": "css selector", "value": css}),
            )
            .await;
        let id = element
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("no element {css}: {element}"))
            .to_owned();
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            serde_json::json!({}),
        )
        .await;
    }
}

/// The same, as a person would do it: in headless Chromium, the Replay button is clicked.
#[tokio::test]
async fn in_a_real_browser_the_replay_button_sends_a_dead_letter_back() {
    let (server, dir, _attio) = dev_with_one_dead_letter().await;
    let url = &server.url;
    let client = reqwest::Client::new();
    let dashboard = format!("{url}_relay");
    wait_for(&client, &dashboard, "data-message-id").await;

    let browser = Browser::start(&dir.path().join("chromium-profile")).await;
    browser.open(&dashboard).await;
    let page = browser.source().await;
    assert!(
        page.contains("record is being migrated") && page.contains("Replay"),
        "{page}"
    );
    browser.click("#dead-letters button").await;

    // Wait over plain HTTP (navigating the browser now could cancel the form's POST), then
    // look at the result in the browser.
    wait_for(&client, &dashboard, ">synced<").await;
    browser.open(&dashboard).await;
    let page = browser.source().await;
    assert!(
        page.contains(">synced<") && page.contains("no dead letters"),
        "{page}"
    );
    let shot = browser
        .command(reqwest::Method::GET, "/screenshot", serde_json::Value::Null)
        .await;
    if let (Some(png), Ok(path)) = (shot.as_str(), std::env::var("ATTIO_RELAY_SCREENSHOT")) {
        let _ = std::fs::write(path, base64_decode(png));
    }
    drop(browser);
    drop(server);
}

/// Standard base64, for the optional screenshot.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let digits: Vec<u8> = text.bytes().filter_map(value).collect();
    digits
        .chunks(4)
        .flat_map(|chunk| {
            let n = chunk.iter().fold(0u32, |acc, d| (acc << 6) | u32::from(*d))
                << (6 * (4 - chunk.len()));
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            bytes.into_iter().take(chunk.len().saturating_sub(1))
        })
        .collect()
}
