//! Consumer Lambda for record.* events from the records queue: Attio records → HubSpot contacts, companies and deals.
//! The SQS wiring, secrets and clients are shared ([`relay_consumer::lambda::run`]).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    relay_consumer::lambda::run(relay_sync::RecordsHandler::new).await
}
