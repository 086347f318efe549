//! `load`: a bounded load test of the ingest path over loopback HTTP. A tool of the tests
//! crate, not of the operator CLI:
//!
//! ```text
//! cargo run --release -p integration-tests --bin load -- --deliveries 20000 --concurrency 32
//! ```
//!
//! By default it needs nothing installed: it serves the shared ingest adapter
//! ([`relay_ingest::http::router`], as `attio-relay dev` does) over the embedded SQLite adapters
//! in this process on `127.0.0.1:0`, with a temporary data folder, and drives it over real HTTP
//! with a keep-alive client at a fixed concurrency. Each delivery is the sample with a fresh
//! record id and its own `Idempotency-Key`, signed with the body-only scheme as Attio signs it.
//! A share of extra requests re-send an already acknowledged delivery byte for byte with the
//! same key, as Attio's retries do.
//!
//! It reports throughput and exact latency percentiles (from every request's sorted round-trip
//! time), then checks the promise that matters more than speed: reading what was queued back
//! from SQLite, every acknowledged delivery is on its queue (`lost = 0`) and none is there
//! twice (`duplicates_queued = 0`). It exits non-zero when either is above 0, or when any
//! answer is neither 2xx nor a documented retry-later answer (409, 503).
//!
//! It is bounded on purpose — in deliveries, in concurrency and in wall time — and it only
//! ever talks to loopback addresses, so neither a test nor a typo can load someone's server.
//!
//! The shape: [`args`] (flags and the loopback check), [`sample`] (the deliveries, prepared
//! before the clock starts), [`target`] (the in-process server or a running relay), [`plan`]
//! (which request goes next), [`worker`] (sending and counting), [`verify`] (reading the queues
//! back), [`report`] (the summary, as JSON or text) and [`run`] (the steps in order).

mod args;
mod plan;
mod report;
mod run;
mod sample;
mod target;
mod verify;
mod worker;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    run::run(args::LoadArgs::parse()).await
}
