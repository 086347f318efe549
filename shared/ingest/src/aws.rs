//! The AWS configuration both ingest functions load once per container.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::timeout::TimeoutConfig;

/// One AWS call may not take longer than this, so a slow dependency becomes a 503 that the
/// sender (Attio, HubSpot) retries well within the function timeout and the idempotency lease.
const AWS_CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// The environment's AWS configuration with ingest's per-call timeouts.
pub async fn load_aws_config() -> SdkConfig {
    aws_config::from_env()
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(AWS_CALL_TIMEOUT)
                .operation_timeout(AWS_CALL_TIMEOUT * 2)
                .build(),
        )
        .load()
        .await
}
