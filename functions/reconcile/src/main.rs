//! Scheduled Lambda (EventBridge, off by default): checks the relay webhooks' status in Attio,
//! logging the line the `webhook-not-active` alarm counts, and re-syncs every mapped record at
//! a share of the rate budgets, resuming where the previous invocation stopped. The logic and
//! its wiring live in [`relay_reconcile`].

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    relay_reconcile::lambda::run().await
}
