//! Shared pieces of the end-to-end tests.
//!
//! * [`moto`]: AWS SDK clients pointed at the `moto_server` that `scripts/test` starts, and
//!   fresh, uniquely named tables and queues per test so tests run in parallel.
//! * [`cli`]: the workspace's binaries run as a user runs them, `attio-relay dev` as a server.
//! * [`event_source`]: Lambda's SQS event source mapping, by hand: received messages → `SqsEvent`,
//!   failures made visible again, the rest deleted.
//! * [`faults`]: adapters that wrap the real ones and fail, hang or lose ownership on command.
//! * [`fault_proxy`]: a loopback proxy before moto that fails one AWS operation, for tests of
//!   the `attio-relay` binary.
//! * [`fixtures`]: the sample deliveries in `events/` and Attio-style signing.
//! * [`fake_apis`]: stateful Attio and HubSpot stand-ins on wiremock that fail at random, and
//!   merge records as each documents.
//! * [`pipeline`]: the whole pipeline in one process: Attio's retried deliveries, Lambda's SQS
//!   event source mapping, the consumers' context over the stand-ins.

pub mod cli;
pub mod event_source;
pub mod fake_apis;
pub mod fault_proxy;
pub mod faults;
pub mod fixtures;
pub mod moto;
pub mod pipeline;
