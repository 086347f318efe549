//! The `burst` tool as a user runs it: a small import (200 updates over 50 people) through the
//! real `attio-relay dev` and through the reference consumer, at full speed, judged on its JSON
//! summary. No timing thresholds (speed is what BENCHMARKS.md records); here it is that both
//! designs drain with the final values in HubSpot, nothing dead-lettered, nothing called that
//! the stand-ins do not serve, and that the counts add up to what each design does.

use integration_tests::cli::{Cli, workspace_binary};

const BURST: &str = env!("CARGO_BIN_EXE_burst");

#[test]
fn a_small_import_drains_through_both_designs_with_final_values_and_no_dead_letters() {
    let relay = workspace_binary("attio-relay", "attio-relay");
    let relay = relay.to_str().expect("utf8 path");
    let out = Cli::new(BURST).run(&[
        "--events",
        "200",
        "--records",
        "50",
        "--rate",
        "full",
        "--max-duration",
        "120",
        "--relay-bin",
        relay,
        "--json",
    ]);
    assert!(out.ok, "burst failed\n{}", out.text());
    let summary: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.text()));
    assert_eq!(summary["ok"], true, "{summary:#}");
    assert_eq!(summary["problems"], serde_json::json!([]), "{summary:#}");
    let designs = summary["designs"].as_array().expect("designs");
    assert_eq!(designs.len(), 2, "{summary:#}");
    let n = |d: &serde_json::Value, path: &str| {
        d.pointer(path)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or_else(|| panic!("{path} missing in {d:#}"))
    };
    for design in designs {
        assert_eq!(design["drained"], true, "{design:#}");
        assert_eq!(n(design, "/records_not_final"), 0.0, "{design:#}");
        assert_eq!(n(design, "/dead_letters"), 0.0, "{design:#}");
        assert_eq!(n(design, "/deliveries_not_acknowledged"), 0.0, "{design:#}");
        assert_eq!(n(design, "/attio/unexpected"), 0.0, "{design:#}");
        assert_eq!(n(design, "/hubspot/unexpected"), 0.0, "{design:#}");
        assert!(n(design, "/drain_secs") > 0.0, "{design:#}");
        assert!(n(design, "/bound/ingest_secs") > 0.0, "{design:#}");
        assert!(
            n(design, "/freshness_p50_ms") <= n(design, "/freshness_p99_ms"),
            "{design:#}"
        );
    }
    let (relay, reference) = (&designs[0], &designs[1]);
    assert_eq!(relay["design"], "relay");
    assert_eq!(reference["design"], "reference");
    // The reference design: exactly one GET and one PATCH per event (429s are not served).
    assert_eq!(n(reference, "/attio/requests"), 200.0, "{reference:#}");
    assert_eq!(n(reference, "/hubspot/requests"), 200.0, "{reference:#}");
    // The relay coalesces within a batch and upserts in batches: never more reads than
    // events (plus the schema lookup), and fewer HubSpot requests than events.
    assert!(n(relay, "/attio/requests") <= 201.0, "{relay:#}");
    assert!(n(relay, "/hubspot/requests") < 200.0, "{relay:#}");
    assert!(n(relay, "/inputs_per_upsert") > 1.0, "{relay:#}");
}

#[test]
fn the_help_explains_the_flags() {
    let out = Cli::new(BURST).run(&["--help"]);
    assert!(out.ok, "{}", out.text());
    for flag in ["--events", "--records", "--rate", "--design", "reference"] {
        assert!(out.stdout.contains(flag), "{flag} in:\n{}", out.stdout);
    }
}
