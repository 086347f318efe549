//! Logging setup shared by the Lambda functions and the CLI.
//!
//! Lambda functions log one JSON object per line (CloudWatch Logs Insights parses the fields);
//! local runs log readable text. `RUST_LOG` filters both (default `info`).
//!
//! The filter is [`Targets`] (`info`, `relay_ingest=debug,info`, …), not `EnvFilter`: the latter
//! pulls in a regex engine for span-field filters nobody sets on a Lambda function, which cost
//! about 1 MB of every binary (BENCHMARKS.md, "Lambda readiness").

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The `RUST_LOG` filter, or `info` when it is unset. A filter that does not parse is reported
/// on stderr (it reaches CloudWatch) and replaced by `info` rather than silencing the function.
fn filter() -> Targets {
    match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => parse_filter(&spec).unwrap_or_else(|err| {
            eprintln!("RUST_LOG={spec:?} is not a valid filter ({err}); logging at info");
            Targets::new().with_default(LevelFilter::INFO)
        }),
        _ => Targets::new().with_default(LevelFilter::INFO),
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
        .try_init();
}

/// Readable text for a terminal.
pub fn init_text() {
    let layer = tracing_subscriber::fmt::layer().with_target(false);
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(filter())
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

    #[test]
    fn a_filter_that_does_not_parse_is_an_error() {
        assert!(parse_filter("relay_ingest=loud").is_err());
    }
}
