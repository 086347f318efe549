//! Every test of the `attio-relay` binary, in one test binary (one link, one process; the tests
//! run in parallel threads, each with its own data folder, queue prefix or stand-in server).
//!
//! The runner is the shared one of the integration-tests crate
//! ([`integration_tests::cli`]): a command line, an environment, the output captured, and
//! `attio-relay dev` as a running server. A module here holds only what its command needs.
//!
//! Run one command's tests with a filter, e.g. `./scripts/test -p attio-relay -- dlq_replay`.

use integration_tests::cli::Cli;
use integration_tests::moto;

mod backfill;
mod backfill_both;
mod conflicts;
mod dev_hubspot;
mod dev_server;
mod dev_two_way;
mod dlq_replay;
mod hubspot_setup;
mod reconcile;
mod status;
mod webhooks;

/// The binary under test: cargo builds it for this package's tests.
const BIN: &str = env!("CARGO_BIN_EXE_attio-relay");

/// `attio-relay` as a user runs it locally, with the test process's environment.
fn relay() -> Cli {
    Cli::new(BIN)
}

/// `attio-relay` pointed at `endpoint` (moto, or a fault proxy before it) with test
/// credentials: `AWS_ENDPOINT_URL` is the `--endpoint-url` of every AWS command.
fn relay_on(endpoint: &str) -> Cli {
    Cli::on_aws(BIN, endpoint)
}

/// `attio-relay` pointed at moto.
fn relay_on_moto() -> Cli {
    relay_on(&moto::endpoint())
}

/// A file of the repository, by its path from the root.
fn repo_file(path: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
        .display()
        .to_string()
}
