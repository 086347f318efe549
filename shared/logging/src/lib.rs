//! Logging setup shared by the Lambda functions and the CLI.
//!
//! Lambda functions log one JSON object per line (CloudWatch Logs Insights parses the fields);
//! local runs log readable text. `RUST_LOG` filters both (default `info`).

use tracing_subscriber::EnvFilter;

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// JSON lines without ANSI colours, with an RFC 3339 timestamp: Lambda's JSON log format reads
/// `level` only from lines that carry one (others count as INFO), so level filtering needs it.
pub fn init_json() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter())
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

/// Readable text for a terminal.
pub fn init_text() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_target(false)
        .try_init();
}
