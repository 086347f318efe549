//! Consumer Lambda for record.* events from the records queue: Attio records → HubSpot contacts, companies and deals.
//! The SQS wiring, secrets and clients are shared ([`relay_consumer::lambda::run_two_way`]):
//! two-way sync is on when the field mapping sends a property back, off otherwise.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    relay_consumer::lambda::run_two_way(relay_sync::RecordsHandler::new).await
}
