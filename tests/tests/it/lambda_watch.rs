//! The built Lambda binaries, run by `cargo lambda watch`: the ingest function behind its
//! Function URL emulator with real HTTP requests, and the records consumer invoked with an SQS
//! event — moto, and wiremock stand-ins for Attio and HubSpot, behind them.

use std::process::Stdio;
use std::time::{Duration, Instant};

use integration_tests::fixtures::{self, SECRET, body_only_headers, with_key};
use integration_tests::moto;
use relay_events::EventFamily;
use tokio::process::{Child, Command};

/// Kills the whole process group (cargo-lambda, cargo, the function) when the test ends.
struct Watch {
    child: Child,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", "--", &format!("-{pid}")])
                .status();
        }
    }
}

/// `cargo lambda invoke <function> --data-file <file>` against the watch on `port`; its JSON answer.
async fn invoke(
    workspace: &std::path::Path,
    port: u16,
    function: &str,
    file: &str,
    timeout_secs: u64,
) -> serde_json::Value {
    let output = Command::new("cargo")
        .current_dir(workspace)
        .args([
            "lambda",
            "invoke",
            function,
            "--invoke-address",
            "127.0.0.1",
        ])
        .args(["--invoke-port", &port.to_string(), "--data-file", file])
        .output();
    let output = tokio::time::timeout(Duration::from_secs(timeout_secs), output)
        .await
        .unwrap_or_else(|_| panic!("{function} did not answer within {timeout_secs}s"))
        .expect("cargo lambda invoke");
    let answer = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{answer}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("invoke prints JSON ({e}): {answer}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[tokio::test]
async fn the_ingest_binary_answers_a_function_url_request_and_queues_on_moto() {
    let config = moto::sdk_config().await;
    let table = moto::fresh_table(&config).await;
    let queues = moto::fresh_queues(&config, 3).await;
    let port = free_port();
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let consumer = ConsumerApis::start(&config).await;

    let mut env = vec![
        format!("ATTIO_WEBHOOK_SECRETS={SECRET}"),
        format!("IDEMPOTENCY_TABLE={table}"),
        format!("AWS_ENDPOINT_URL={}", moto::endpoint()),
        "AWS_REGION=us-east-1".to_owned(),
        "AWS_ACCESS_KEY_ID=testing".to_owned(),
        "AWS_SECRET_ACCESS_KEY=testing".to_owned(),
    ];
    for (family, url) in queues.urls.iter() {
        env.push(format!("{}={url}", relay_queue::QueueUrls::env_var(family)));
    }
    env.extend(consumer.env());
    let mut command = Command::new("cargo");
    command
        .current_dir(&workspace)
        .args(["lambda", "watch", "--ignore-changes", "--quiet"])
        .args([
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
        ])
        .arg("--env-var")
        .arg(env.join(","))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0);
    let _watch = Watch {
        child: command
            .spawn()
            .expect("cargo lambda is on PATH (scripts/test installs it into .venv)"),
    };

    let url = format!("http://127.0.0.1:{port}/lambda-url/ingest/");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .expect("client");
    let body = fixtures::delivery("record-updated");
    let headers = with_key(body_only_headers(SECRET, &body), "attio-watch-1");

    // Wait for cargo lambda to build and start the function with a request that changes
    // nothing (a GET, answered 405 by the handler), so the delivery itself is sent exactly once:
    // resending it after a slow build would rightly be answered `duplicate`.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        match client.get(&url).send().await {
            Ok(response) if response.status() == 405 => break,
            Ok(_) | Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Ok(response) => panic!("the function never started: {}", response.status()),
            Err(err) => panic!("cargo lambda watch never answered: {err}"),
        }
    }
    let mut request = client.post(&url).body(body.clone());
    for (name, value) in &headers {
        request = request.header(name.as_str(), value.as_bytes());
    }
    let response = request.send().await.expect("the delivery is answered");
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"status\":\"queued\""), "{text}");

    // The same delivery again is a duplicate; a bad signature is refused: nothing more queued.
    let mut again = client.post(&url).body(body.clone());
    for (name, value) in &headers {
        again = again.header(name.as_str(), value.as_bytes());
    }
    let again = again.send().await.expect("second request");
    assert_eq!(again.status(), 200);
    assert!(again.text().await.expect("body").contains("duplicate"));

    let forged = client
        .post(&url)
        .header("attio-signature", "0".repeat(64))
        .body(body.clone())
        .send()
        .await
        .expect("forged request");
    assert_eq!(forged.status(), 401);

    // The README's `cargo lambda invoke` with the checked-in Function URL event. It carries an
    // Idempotency-Key header, so it is a new delivery of the same event: queued once more.
    let answer = invoke(
        &workspace,
        port,
        "ingest",
        "events/lambda/ingest-function-url.json",
        120,
    )
    .await;
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert!(
        answer["body"]
            .as_str()
            .is_some_and(|b| b.contains("queued")),
        "{answer}"
    );

    let queued = moto::drain_all(&config, &queues.urls).await;
    assert_eq!(queued[&EventFamily::Records].len(), 2);
    assert_eq!(queued.values().map(Vec::len).sum::<usize>(), 2);

    // The records consumer with the checked-in SQS event: two updates of one person, one
    // Attio fetch and one HubSpot upsert, no failed messages.
    // The first invoke of a function waits for cargo lambda to build it.
    let answer = invoke(
        &workspace,
        port,
        "records",
        "events/lambda/records-sqs-batch.json",
        600,
    )
    .await;
    assert_eq!(
        answer["batchItemFailures"],
        serde_json::json!([]),
        "{answer}"
    );
    consumer.verify().await;
    let mappings = aws_sdk_dynamodb::Client::new(&config)
        .get_item()
        .table_name(&consumer.table)
        .key(
            "mapping_key",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("contacts#{ADA}")),
        )
        .send()
        .await
        .expect("get mapping");
    assert_eq!(
        mappings
            .item()
            .and_then(|i| i.get("crm_id"))
            .and_then(|v| v.as_s().ok())
            .map(String::as_str),
        Some("901")
    );
}

use integration_tests::fixtures::ids::ADA;

/// Stand-in Attio and HubSpot servers, a mappings table and a DLQ for the consumers.
struct ConsumerApis {
    attio: wiremock::MockServer,
    hubspot: wiremock::MockServer,
    table: String,
    dlq: String,
}

impl ConsumerApis {
    async fn start(config: &aws_config::SdkConfig) -> Self {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let attio = MockServer::start().await;
        fixtures::mount_people_and_ada(&attio, 1).await;
        let hubspot = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/crm/v3/objects/contacts/batch/upsert"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "results": [{"id": "901", "properties": {"attio_record_id": ADA}}]})))
            .expect(1)
            .mount(&hubspot)
            .await;
        let table =
            moto::fresh_table_keyed(config, "mappings", relay_mappings::KEY_ATTRIBUTE).await;
        let dlq = moto::fresh_queues(config, 3).await.dlqs[&EventFamily::Records].clone();
        Self {
            attio,
            hubspot,
            table,
            dlq,
        }
    }

    fn env(&self) -> Vec<String> {
        vec![
            "ATTIO_API_TOKEN=attio-test-token".to_owned(),
            format!("ATTIO_API_URL={}/v2", self.attio.uri()),
            "HUBSPOT_TOKEN=hubspot-test-token".to_owned(),
            format!("HUBSPOT_API_URL={}", self.hubspot.uri()),
            format!("MAPPINGS_TABLE={}", self.table),
            format!("DEAD_LETTER_QUEUE_URL={}", self.dlq),
        ]
    }

    async fn verify(&self) {
        self.attio.verify().await;
        self.hubspot.verify().await;
    }
}
