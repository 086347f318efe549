//! Consumer Lambda for list-entry.* events: re-syncs each entry's parent record (pipeline stages) to HubSpot.
//! The SQS wiring, secrets and clients are shared ([`relay_consumer::lambda::run`]).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    relay_consumer::lambda::run(relay_sync::ListEntriesHandler::new).await
}
