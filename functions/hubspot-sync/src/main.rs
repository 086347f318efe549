//! Consumer Lambda for the hubspot queue: HubSpot changes → Attio records (two-way sync).
//! Until the handler is wired, every message is returned to the queue (see the crate docs).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    relay_logging::init_json();
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(hubspot_sync::placeholder_retry_every_message(
            &event.payload,
        ))
    }))
    .await
}
