//! Consumer Lambda for the `hubspot` queue (`HubspotSyncFunction`): HubSpot contact and company
//! changes → Attio records, for the properties whose direction is `both` or `hubspot_to_attio`
//! (`relay_sync::two_way::HubspotHandler`: the relay's own changes dropped by `HUBSPOT_APP_ID`,
//! objects batch-read, compared with the sync ledger, written to Attio, conflicts kept).
//!
//! It runs in the same SQS partial-batch runner as the Attio consumers
//! ([`relay_consumer::lambda::run_queue`]): dead letters with reasons, holds on a refused token,
//! the invocation's deadline. The function exists only for two-way sync, so `CONFLICTS_TABLE`,
//! `HUBSPOT_APP_ID` and `ATTIO_TOKEN_ID` are required: a missing one stops it at startup with
//! an error naming it, and the queue's messages wait (then the DLQ) instead of being settled
//! half-configured (`HubspotHandler::new` refuses a context without two-way stores too).

use relay_consumer::TwoWayUse;
use relay_sync::two_way::HubspotHandler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    relay_consumer::lambda::run_queue(Some(TwoWayUse::Required), HubspotHandler::new).await
}
