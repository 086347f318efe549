//! Consumer Lambda for task.* events: Attio tasks → HubSpot tasks, completion included.
//! The SQS wiring, secrets and clients are shared ([`relay_consumer::lambda::run`]).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    relay_consumer::lambda::run(relay_sync::TasksHandler::new).await
}
