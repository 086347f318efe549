//! Consumer Lambda for note.* events: Attio notes → HubSpot notes, created once and updated after.
//! The SQS wiring, secrets and clients are shared ([`relay_consumer::lambda::run`]).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    relay_consumer::lambda::run(relay_sync::NotesHandler::new).await
}
