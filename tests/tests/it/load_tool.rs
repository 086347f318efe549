//! The `load` tool as a user runs it: a small bounded load on the in-process server, judged on
//! its JSON summary. No timing thresholds: speed is what the benchmarks measure; here it is
//! that nothing is lost, nothing is queued twice, and duplicates are recognised.

use integration_tests::cli::{Cli, workspace_binary};

const LOAD: &str = env!("CARGO_BIN_EXE_load");

fn load(args: &[&str]) -> (bool, String, String) {
    let out = Cli::new(LOAD).run(args);
    (out.ok, out.stdout, out.stderr)
}

#[test]
fn a_bounded_load_loses_nothing_and_queues_nothing_twice() {
    let (ok, stdout, stderr) = load(&[
        "--deliveries",
        "300",
        "--concurrency",
        "8",
        "--duplicates",
        "0.3",
        "--max-duration",
        "300",
        "--json",
    ]);
    assert!(ok, "load failed\nstdout: {stdout}\nstderr: {stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    let n = |path: &str| {
        summary
            .pointer(path)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or_else(|| panic!("{path} missing in {summary:#}"))
    };

    assert_eq!(n("/deliveries_planned"), 300, "{summary:#}");
    assert_eq!(n("/deliveries_sent"), 300, "{summary:#}");
    assert_eq!(n("/deliveries_acknowledged"), 300, "{summary:#}");
    assert_eq!(n("/originals/answers/200"), 300, "{summary:#}");
    assert_eq!(n("/originals/outcomes/queued"), 300, "{summary:#}");

    assert_eq!(n("/duplicates_planned"), 90, "{summary:#}");
    assert_eq!(n("/duplicates_sent"), 90, "{summary:#}");
    assert_eq!(n("/duplicates/answers/200"), 90, "{summary:#}");
    assert_eq!(n("/duplicates/outcomes/duplicate"), 90, "{summary:#}");
    assert_eq!(n("/requests_sent"), 390, "{summary:#}");
    assert_eq!(n("/requests_answered"), 390, "{summary:#}");
    assert_eq!(summary["stopped_by_max_duration"], false, "{summary:#}");

    assert_eq!(summary["verification"]["checked"], true, "{summary:#}");
    assert_eq!(n("/verification/lost"), 0, "{summary:#}");
    assert_eq!(n("/verification/duplicates_queued"), 0, "{summary:#}");
    assert_eq!(n("/verification/queued_deliveries"), 300, "{summary:#}");
    assert_eq!(n("/verification/queued_messages"), 300, "{summary:#}");
    assert_eq!(summary["ok"], true, "{summary:#}");
    assert_eq!(summary["problems"], serde_json::json!([]), "{summary:#}");

    let latency = &summary["latency_ms"];
    let ms = |name: &str| {
        latency[name]
            .as_f64()
            .unwrap_or_else(|| panic!("latency_ms.{name} missing in {summary:#}"))
    };
    assert_eq!(n("/latency_ms/samples"), 390, "{summary:#}");
    assert!(ms("p50") > 0.0, "{summary:#}");
    assert!(ms("p50") <= ms("p90"), "{summary:#}");
    assert!(ms("p90") <= ms("p99"), "{summary:#}");
    assert!(ms("p99") <= ms("max"), "{summary:#}");
    for rate in ["deliveries_per_sec", "requests_per_sec", "wall_secs"] {
        assert!(
            summary[rate].as_f64().is_some_and(|r| r > 0.0),
            "{rate}: {summary:#}"
        );
    }
}

#[test]
fn the_human_report_says_lost_is_zero() {
    let (ok, stdout, stderr) = load(&["--deliveries", "20", "--concurrency", "4"]);
    assert!(ok, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("lost = 0, duplicates_queued = 0"),
        "{stdout}"
    );
    assert!(stdout.contains("p50") && stdout.contains("p99"), "{stdout}");
}

#[test]
fn a_remote_url_is_refused_before_anything_is_sent() {
    for url in ["http://192.0.2.10:8787/", "https://example.com/"] {
        let (ok, stdout, stderr) = load(&["--url", url, "--secret", "s", "--deliveries", "1"]);
        assert!(!ok, "{url} must be refused: {stdout}{stderr}");
        assert!(
            stderr.contains("only targets loopback"),
            "the refusal says why: {stderr}"
        );
        assert!(stdout.is_empty(), "nothing was run: {stdout}");
    }
}

#[test]
fn a_url_without_a_running_relay_fails_and_says_so() {
    // Port 9 (discard) on loopback: nothing listens there in a test environment.
    let (ok, stdout, stderr) = load(&[
        "--url",
        "http://127.0.0.1:9/",
        "--secret",
        "s",
        "--deliveries",
        "3",
        "--concurrency",
        "1",
        "--json",
    ]);
    assert!(!ok, "{stdout}{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("JSON summary");
    assert_eq!(summary["verification"]["checked"], false, "{summary:#}");
    assert!(
        summary["verification"]["skipped"]
            .as_str()
            .is_some_and(|s| s.contains("--data-dir")),
        "{summary:#}"
    );
    assert_eq!(summary["originals"]["transport_errors"], 3, "{summary:#}");
    assert_eq!(summary["ok"], false, "{summary:#}");
}

/// The real `attio-relay dev` (not a stand-in): this keeps the data folder layout the tool
/// reads through --data-dir (the dev secret and SQLite file names) in step with the CLI.
#[test]
fn a_running_dev_server_is_loaded_and_verified_through_its_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf8 path");
    let server = Cli::new(workspace_binary("attio-relay", "attio-relay"))
        .without("ATTIO_API_TOKEN")
        .without("ATTIO_WEBHOOK_SECRETS")
        .without("SIGNATURE_POLICY")
        .start_dev(dir.path(), &[]);

    let (ok, stdout, stderr) = load(&[
        "--url",
        &server.url,
        "--data-dir",
        data,
        "--deliveries",
        "40",
        "--concurrency",
        "4",
        "--duplicates",
        "0.5",
        "--json",
    ]);
    assert!(ok, "stdout: {stdout}\nstderr: {stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("JSON summary");
    assert_eq!(summary["deliveries_acknowledged"], 40, "{summary:#}");
    assert_eq!(
        summary["duplicates"]["outcomes"]["duplicate"], 20,
        "{summary:#}"
    );
    assert_eq!(summary["verification"]["checked"], true, "{summary:#}");
    assert_eq!(summary["verification"]["lost"], 0, "{summary:#}");
    assert_eq!(
        summary["verification"]["duplicates_queued"], 0,
        "{summary:#}"
    );
    assert_eq!(
        summary["verification"]["queued_deliveries"], 40,
        "{summary:#}"
    );
}
