//! Logging setup shared by the Lambda functions and the CLI.
//!
//! Lambda functions log one JSON object per line (CloudWatch Logs Insights parses the fields);
//! local runs log readable text. `RUST_LOG` filters both (default `info`).
//!
//! The filter is [`Targets`] (`info`, `relay_ingest=debug,info`, …), not `EnvFilter`: the latter
//! pulls in a regex engine for span-field filters nobody sets on a Lambda function, which cost
//! about 1 MB of every binary (BENCHMARKS.md, "Lambda readiness").
//!
//! TRACE is the relay's own: other crates' TRACE lines are dropped whatever the filter says,
//! because they print what must never reach a log. The Lambda runtime logs every raw invocation
//! event at TRACE ("raw JSON event received from Lambda": the webhook body, its signature and
//! `Idempotency-Key` headers), and the AWS SDK and HTTP stacks log requests and answers (SigV4
//! signatures, the Secrets Manager answer holding the webhook secrets, bearer tokens).

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{FilterFn, LevelFilter, Targets, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Crate prefixes whose TRACE lines are kept: the relay's own code, which logs ids and
/// outcomes, never bodies, headers or secrets.
const OWN_TARGETS: &[&str] = &[
    "relay_",
    "attio_relay",
    "ingest",
    "records",
    "list_entries",
    "notes",
    "tasks",
    "reconcile",
    "integration_tests",
];

/// False for another crate's TRACE line (see the module docs).
fn allowed(metadata: &Metadata<'_>) -> bool {
    *metadata.level() != Level::TRACE || {
        let target = metadata.target();
        OWN_TARGETS.iter().any(|own| {
            target
                .strip_prefix(own)
                .is_some_and(|rest| own.ends_with('_') || rest.is_empty() || rest.starts_with("::"))
        })
    }
}

/// The filter every subscriber carries beside `RUST_LOG`'s.
fn no_foreign_trace() -> FilterFn<fn(&Metadata<'_>) -> bool> {
    filter_fn(allowed as fn(&Metadata<'_>) -> bool)
}

/// The `RUST_LOG` filter; else Lambda's `ApplicationLogLevel` (which Lambda passes as
/// `AWS_LAMBDA_LOG_LEVEL` when the JSON log format is on); else `info`. A filter that does not
/// parse is reported on stderr (it reaches CloudWatch) and replaced by `info` rather than
/// silencing the function.
fn filter() -> Targets {
    let spec = ["RUST_LOG", "AWS_LAMBDA_LOG_LEVEL"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().filter(|s| !s.trim().is_empty()));
    match spec {
        Some(spec) => parse_filter(&spec).unwrap_or_else(|err| {
            eprintln!("log filter {spec:?} is not valid ({err}); logging at info");
            Targets::new().with_default(LevelFilter::INFO)
        }),
        None => Targets::new().with_default(LevelFilter::INFO),
    }
}

fn parse_filter(spec: &str) -> Result<Targets, String> {
    spec.trim().parse::<Targets>().map_err(|e| e.to_string())
}

/// JSON lines without ANSI colours, with an RFC 3339 timestamp: Lambda's JSON log format reads
/// `level` only from lines that carry one (others count as INFO), so level filtering needs it.
pub fn init_json() {
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_ansi(false)
        .with_target(false);
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(filter())
        .with(no_foreign_trace())
        .try_init();
}

/// Readable text for a terminal.
pub fn init_text() {
    let layer = tracing_subscriber::fmt::layer().with_target(false);
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(filter())
        .with(no_foreign_trace())
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn rust_log_filters_by_level_and_by_crate() {
        let plain = parse_filter("warn").unwrap();
        assert!(plain.would_enable("relay_ingest", &Level::WARN));
        assert!(!plain.would_enable("relay_ingest", &Level::INFO));

        let per_crate = parse_filter(" relay_ingest=debug,info ").unwrap();
        assert!(per_crate.would_enable("relay_ingest::service", &Level::DEBUG));
        assert!(!per_crate.would_enable("aws_smithy_runtime", &Level::DEBUG));
        assert!(per_crate.would_enable("aws_smithy_runtime", &Level::INFO));
    }

    /// What a subscriber built like `init_json` writes at `RUST_LOG=trace` (or Lambda's
    /// `ApplicationLogLevel: TRACE`) for the lines `emit` logs.
    fn written_at_trace(emit: impl FnOnce()) -> String {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(move || writer.clone()),
            )
            .with(parse_filter("TRACE").unwrap())
            .with(no_foreign_trace());
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn at_trace_the_runtime_never_logs_the_raw_event_and_the_relay_still_traces() {
        let out = written_at_trace(|| {
            // What lambda_runtime 1.x logs for every invocation (layers/api_response.rs).
            tracing::trace!(
                target: "lambda_runtime::layers::api_response",
                body = "{\"headers\":{\"attio-signature\":\"sig-3f9a\"}}",
                "raw JSON event received from Lambda"
            );
            tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", response = "SecretString=whsec", "received response");
            tracing::trace!(target: "hyper_util::client", "authorization: Bearer tok");
            tracing::debug!(target: "aws_smithy_runtime::client::orchestrator", "retrying");
            tracing::trace!(target: "relay_sync::records", record = "r1", "coalesced");
            tracing::trace!(target: "ingest", "own binary");
            tracing::trace!(target: "ingestion_lib", "not ours");
        });
        for secret in ["sig-3f9a", "whsec", "Bearer", "not ours"] {
            assert!(!out.contains(secret), "{secret} logged: {out}");
        }
        for kept in ["retrying", "coalesced", "own binary"] {
            assert!(out.contains(kept), "{kept} missing: {out}");
        }
    }

    #[test]
    fn a_filter_that_does_not_parse_is_an_error() {
        assert!(parse_filter("relay_ingest=loud").is_err());
    }
}
