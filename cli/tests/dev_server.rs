//! The README's local run, as a newcomer does it: start `attio-relay dev`, `send` a sample
//! delivery, and see it on the local queue with `queues --show`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_attio-relay");

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo_file(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
        .display()
        .to_string()
}

/// Starts the dev server on a free port; returns it and its base URL from its first line.
fn start(data_dir: &Path) -> (Server, String) {
    let mut child = Command::new(BIN)
        .args(["dev", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start attio-relay dev");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut first = String::new();
    reader.read_line(&mut first).expect("first line");
    // Keep reading so the server never writes to a closed pipe.
    std::thread::spawn(move || reader.lines().for_each(drop));
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_owned();
    (Server(child), url)
}

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run attio-relay");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn a_sent_sample_lands_on_the_local_queue_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf8 path");
    let (_server, url) = start(dir.path());
    let sample = repo_file("events/deliveries/record-updated.json");

    let (ok, out) = run(&[
        "send",
        &sample,
        "--url",
        &url,
        "--data-dir",
        data,
        "--times",
        "3",
    ]);
    assert!(ok, "{out}");
    assert_eq!(out.matches("\"status\":\"queued\"").count(), 1, "{out}");
    assert_eq!(out.matches("\"status\":\"duplicate\"").count(), 2, "{out}");

    let (ok, out) = run(&[
        "send",
        &sample,
        "--url",
        &url,
        "--data-dir",
        data,
        "--secret",
        "wrong",
    ]);
    assert!(!ok, "a refused delivery fails the command: {out}");
    assert!(
        out.contains("401") && out.contains("signature_mismatch"),
        "{out}"
    );

    let (ok, out) = run(&["queues", "--show", "--data-dir", data]);
    assert!(ok, "{out}");
    assert!(
        out.contains("records") && out.contains("1 message(s)"),
        "{out}"
    );
    assert!(out.contains("record.updated"), "{out}");
}

#[test]
fn send_without_a_running_server_says_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = repo_file("events/deliveries/record-updated.json");
    let (ok, out) = run(&[
        "send",
        &sample,
        "--url",
        "http://127.0.0.1:9/",
        "--secret",
        "s",
        "--data-dir",
        dir.path().to_str().expect("utf8"),
    ]);
    assert!(!ok);
    assert!(out.contains("attio-relay dev"), "{out}");
}

/// The whole pipeline on one machine: ingest, the in-process records consumer against a
/// stand-in Attio, and the local outbox as the CRM.
#[tokio::test]
async fn a_sent_record_update_is_synced_to_the_local_outbox() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let fixture = |name: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(repo_file(&format!("tests/fixtures/attio/{name}")))
            .expect("fixture");
        serde_json::from_str(&text).expect("json")
    };
    let attio = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/objects/f436cad2-7090-4b86-8ae2-27260febbefe"))
        .and(header("authorization", "Bearer attio-dev-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("people-object.json")))
        .mount(&attio)
        .await;
    Mock::given(method("GET"))
        .and(path(
            "/v2/objects/people/records/443d9969-4842-451e-96bc-ffb9ad6744df",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("person.json")))
        .expect(1)
        .mount(&attio)
        .await;

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf8 path").to_owned();
    let mut child = tokio::process::Command::new(BIN)
        .args(["dev", "--addr", "127.0.0.1:0", "--data-dir", &data])
        .args([
            "--attio-token",
            "attio-dev-token",
            "--attio-api-url",
            &format!("{}/v2", attio.uri()),
        ])
        .env_remove("HUBSPOT_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start dev");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let first = lines.next_line().await.expect("read").expect("first line");
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("url")
        .to_owned();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let sample = repo_file("events/deliveries/record-updated.json");
    let (ok, out) = run(&["send", &sample, "--url", &url, "--data-dir", &data]);
    assert!(ok, "{out}");

    // The consumer polls the local queue; wait for its upsert to reach the outbox.
    let mut outbox = String::new();
    for _ in 0..100 {
        let (_, text) = run(&["outbox", "--json", "--data-dir", &data]);
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
    let (_, queues) = run(&["queues", "--data-dir", &data]);
    assert!(
        !queues.contains("records "),
        "the message was consumed: {queues}"
    );
    drop(child);
}

/// The dashboard shows a dead letter with its reason; its Replay button sends it back, and the
/// consumer then syncs it.
#[tokio::test]
async fn the_dashboard_shows_and_replays_a_dead_letter() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let fixture = |name: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(repo_file(&format!("tests/fixtures/attio/{name}")))
            .expect("fixture");
        serde_json::from_str(&text).expect("json")
    };
    let attio = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/objects/f436cad2-7090-4b86-8ae2-27260febbefe"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("people-object.json")))
        .mount(&attio)
        .await;
    // First a permanent refusal (a dead letter), then the record.
    Mock::given(method("GET"))
        .and(path(
            "/v2/objects/people/records/443d9969-4842-451e-96bc-ffb9ad6744df",
        ))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "status_code": 400, "type": "invalid_request_error", "code": "validation_type",
            "message": "record is being migrated"})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&attio)
        .await;
    Mock::given(method("GET"))
        .and(path(
            "/v2/objects/people/records/443d9969-4842-451e-96bc-ffb9ad6744df",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("person.json")))
        .with_priority(2)
        .mount(&attio)
        .await;

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf8 path").to_owned();
    let mut child = tokio::process::Command::new(BIN)
        .args(["dev", "--addr", "127.0.0.1:0", "--data-dir", &data])
        .args([
            "--attio-token",
            "t",
            "--attio-api-url",
            &format!("{}/v2", attio.uri()),
        ])
        .env_remove("HUBSPOT_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start dev");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let first = lines.next_line().await.expect("read").expect("first line");
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("url")
        .to_owned();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let sample = repo_file("events/deliveries/record-updated.json");
    let (ok, out) = run(&["send", &sample, "--url", &url, "--data-dir", &data]);
    assert!(ok, "{out}");

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let dashboard = format!("{url}_relay");
    let mut page = String::new();
    for _ in 0..100 {
        page = client
            .get(&dashboard)
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("text");
        if page.contains("data-message-id") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        page.contains("record is being migrated"),
        "the reason is shown: {page}"
    );
    assert!(page.contains("in DLQ"), "{page}");
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

    for _ in 0..100 {
        page = client
            .get(&dashboard)
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("text");
        if page.contains(">synced<") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        page.contains(">synced<") && page.contains("no dead letters"),
        "{page}"
    );
    let (_, outbox) = run(&["outbox", "--json", "--data-dir", &data]);
    assert!(outbox.contains("\"op\":\"upsert\""), "{outbox}");
    drop(child);
}
