//! Consumer Lambda for list-entry.* events: re-syncs each entry's parent record (pipeline stages) to HubSpot.
//! The SQS wiring, secrets and clients are shared ([`relay_consumer::lambda::run_two_way`]: like records, it runs two-way sync — the ledger, per-record locks and conflicts — when the field mapping sends a property back, so a stage change never sends a `both` field blindly).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    relay_consumer::lambda::run_two_way(relay_sync::ListEntriesHandler::new).await
}
