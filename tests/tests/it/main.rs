//! Every end-to-end test of attio-relay, in one test binary (one link, one process; tests run
//! in parallel threads and name their AWS resources uniquely, so they never share state).
//!
//! Shared setup lives in the `integration_tests` library (`tests/src`): moto clients and fresh
//! resources, fault-injecting adapters, fixtures and signing, the Attio/HubSpot stand-ins, the
//! SQS → Lambda event conversion. A module here holds only what its scenario needs.
//!
//! Run one area with a filter, e.g. `./scripts/test -p integration-tests -- pipeline_chaos`.

// The receive path: ingest (Attio's and HubSpot's) against moto, under faults, over random input.
mod hubspot_ingest_on_moto;
mod idempotency_contract;
mod ingest_chaos;
mod ingest_on_moto;
mod ingest_properties;
mod secrets_on_moto;
mod sqs_protocol;

// The sync path: consumers, mappings and the CRM stand-ins.
mod consumer_batches;
mod consumer_redrive;
mod mappings_contract;
mod rate_budget;
mod reconcile_positions;
mod sync_hubspot;
mod two_way_contract;

// The whole pipeline, the built Lambda binaries, the load and burst tools, and the SAM template.
mod burst_tool;
mod first_sync;
mod lambda_watch;
mod load_tool;
mod pipeline_chaos;
mod template_consistency;
mod template_two_way;
mod two_way_chaos;
