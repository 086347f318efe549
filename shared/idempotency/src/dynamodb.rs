//! The DynamoDB adapter: one item per key, one conditional write per claim.
//!
//! Item: `idempotency_key` (S, partition key), `status` (S), `owner` (S),
//! `lease_expires_at` (N), `expires_at` (N, the table's TTL attribute), `created_at` (N).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use crate::{
    Claim, ClaimToken, IdempotencyKey, IdempotencyStore, Status, StoreError, UnixSeconds, after,
};

pub const KEY_ATTRIBUTE: &str = "idempotency_key";
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// [`IdempotencyStore`] on a DynamoDB table keyed by `idempotency_key`.
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
}

impl DynamoDbStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Reads the item that beat our conditional put, to say why we lost.
    async fn current(&self, key: &IdempotencyKey) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(key.as_str().to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::unavailable("GetItem", e.into_service_error()))?;
        out.item.map(|item| Item::read(key, &item)).transpose()
    }
}

/// The fields of a stored item that decide a claim.
struct Item {
    status: Status,
    lease_expires_at: UnixSeconds,
    expires_at: UnixSeconds,
}

impl Item {
    fn read(
        key: &IdempotencyKey,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<Self, StoreError> {
        let corrupt = |reason: &str| StoreError::Corrupt {
            key: key.as_str().to_owned(),
            reason: reason.to_owned(),
        };
        let number = |name: &str| -> Result<i64, StoreError> {
            match item.get(name) {
                None => Ok(0),
                Some(AttributeValue::N(n)) => n.parse().map_err(|_| corrupt(name)),
                Some(_) => Err(corrupt(name)),
            }
        };
        let status = match item.get("status") {
            Some(AttributeValue::S(s)) => Status::parse(s).ok_or_else(|| corrupt("status"))?,
            _ => return Err(corrupt("status")),
        };
        Ok(Self {
            status,
            lease_expires_at: number("lease_expires_at")?,
            expires_at: number(TTL_ATTRIBUTE)?,
        })
    }

    /// What a lost claim means, given the item that won.
    fn outcome(&self, now: UnixSeconds) -> Option<Claim> {
        if self.expires_at < now {
            return None;
        }
        match self.status {
            Status::Completed => Some(Claim::AlreadyCompleted),
            Status::InProgress if self.lease_expires_at < now => None,
            Status::InProgress => Some(Claim::InProgress {
                lease_expires_at: self.lease_expires_at,
            }),
        }
    }
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The answer to a write conditioned on still owning `key`: a failed condition means another
/// invocation took the key over ([`StoreError::NotOwner`]); anything else is the table failing.
fn owner_only<E>(
    result: Result<(), E>,
    key: &IdempotencyKey,
    operation: &'static str,
) -> Result<(), StoreError>
where
    E: ConditionalCheck + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(()) => Ok(()),
        Err(err) if err.is_conditional_check_failed() => Err(StoreError::NotOwner {
            key: key.as_str().to_owned(),
        }),
        Err(other) => Err(StoreError::unavailable(operation, other)),
    }
}

/// The two conditional writes' errors, as [`owner_only`] reads them.
trait ConditionalCheck {
    fn is_conditional_check_failed(&self) -> bool;
}

impl ConditionalCheck for aws_sdk_dynamodb::operation::update_item::UpdateItemError {
    fn is_conditional_check_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ConditionalCheck for aws_sdk_dynamodb::operation::delete_item::DeleteItemError {
    fn is_conditional_check_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl IdempotencyStore for DynamoDbStore {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        now: UnixSeconds,
        lease: Duration,
        retain: Duration,
    ) -> Result<Claim, StoreError> {
        let token = ClaimToken::generate();
        // Two attempts: if the item that beat us turns out to be claimable (it expired between
        // the put and the read), try once more; a second loss is reported as in progress.
        for _ in 0..2 {
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .item(KEY_ATTRIBUTE, AttributeValue::S(key.as_str().to_owned()))
                .item(
                    "status",
                    AttributeValue::S(Status::InProgress.as_str().into()),
                )
                .item("owner", AttributeValue::S(token.as_str().to_owned()))
                .item("lease_expires_at", n(after(now, lease)))
                .item(TTL_ATTRIBUTE, n(after(now, retain)))
                .item("created_at", n(now))
                .condition_expression(
                    "attribute_not_exists(#key) OR #expires < :now \
                     OR (#status = :in_progress AND #lease < :now)",
                )
                .expression_attribute_names("#key", KEY_ATTRIBUTE)
                .expression_attribute_names("#expires", TTL_ATTRIBUTE)
                .expression_attribute_names("#status", "status")
                .expression_attribute_names("#lease", "lease_expires_at")
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(
                    ":in_progress",
                    AttributeValue::S(Status::InProgress.as_str().into()),
                )
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let err = match put {
                Ok(_) => return Ok(Claim::Acquired(token)),
                Err(err) => err,
            };
            let winner = match err {
                SdkError::ServiceError(ref service)
                    if service.err().is_conditional_check_failed_exception() =>
                {
                    let returned = match service.err() {
                        PutItemError::ConditionalCheckFailedException(e) => e.item(),
                        _ => None,
                    };
                    match returned {
                        Some(item) => Some(Item::read(key, item)?),
                        None => self.current(key).await?,
                    }
                }
                other => {
                    return Err(StoreError::unavailable(
                        "PutItem",
                        other.into_service_error(),
                    ));
                }
            };
            if let Some(outcome) = winner.as_ref().and_then(|item| item.outcome(now)) {
                return Ok(outcome);
            }
        }
        Ok(Claim::InProgress {
            lease_expires_at: after(now, lease),
        })
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: &ClaimToken,
        now: UnixSeconds,
        retain: Duration,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(key.as_str().to_owned()))
            .update_expression("SET #status = :completed, #expires = :expires, completed_at = :now")
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#expires", TTL_ATTRIBUTE)
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(
                ":completed",
                AttributeValue::S(Status::Completed.as_str().into()),
            )
            .expression_attribute_values(":expires", n(after(now, retain)))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":owner", AttributeValue::S(token.as_str().to_owned()))
            .send()
            .await;
        owner_only(
            result.map(drop).map_err(SdkError::into_service_error),
            key,
            "UpdateItem",
        )
    }

    async fn release(&self, key: &IdempotencyKey, token: &ClaimToken) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(key.as_str().to_owned()))
            .condition_expression("#owner = :owner AND #status = :in_progress")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":owner", AttributeValue::S(token.as_str().to_owned()))
            .expression_attribute_values(
                ":in_progress",
                AttributeValue::S(Status::InProgress.as_str().into()),
            )
            .send()
            .await;
        owner_only(
            result.map(drop).map_err(SdkError::into_service_error),
            key,
            "DeleteItem",
        )
    }
}
