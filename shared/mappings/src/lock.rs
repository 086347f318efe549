//! Record locks: a short per-record lease the two-way consumers hold across read → write →
//! ledger.
//!
//! Why: the [`SyncLedger`](crate::SyncLedger) is last-write-wins per field, and two consumers
//! working on one record at once can leave the sides apart for good — a forward sync whose
//! stale upsert lands after a newer one while the newer one's ledger write lands last, or the
//! reverse consumer writing HubSpot's value to Attio while the records consumer writes
//! Attio's newer value to HubSpot. Holding this lock from before either side is read until the
//! ledger is written serialises the relay's own syncs of one record.
//!
//! A lock is a conditional write of `"{crm object}#{attio id}#lock"` in the mappings store,
//! like the create reservation: taken when absent, lapsed (`until` < now) or already this
//! holder's; given back only by its holder. It lapses on its own after the lease, so a holder
//! that dies blocks the record for one lease at most (its messages are retried meanwhile).
//! Adapters: the three mapping stores (`DynamoDbMappings`, `SqliteMappings`, and
//! [`MemoryTwoWay`](crate::MemoryTwoWay) beside the in-memory ledger).

use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use relay_crm::CrmObject;

use crate::{DynamoDbMappings, EXPIRES_ATTRIBUTE, KEY_ATTRIBUTE, MappingError, UnixSeconds};

/// The storage key of a record's lock.
pub fn lock_key(object: CrmObject, attio_record_id: &str) -> String {
    format!("{object}#{attio_record_id}#lock")
}

/// The port.
pub trait RecordLocks: Send + Sync {
    /// Takes the lock of one record for `holder` until `now + lease`. `false`: another
    /// holder's lock is live (the caller retries its message later).
    fn lock(
        &self,
        object: CrmObject,
        attio_record_id: &str,
        holder: &str,
        now: UnixSeconds,
        lease: Duration,
    ) -> impl Future<Output = Result<bool, MappingError>> + Send;

    /// Gives the lock back, if `holder` still holds it (a lapsed lock taken over since is
    /// left to its new holder).
    fn unlock(
        &self,
        object: CrmObject,
        attio_record_id: &str,
        holder: &str,
    ) -> impl Future<Output = Result<(), MappingError>> + Send;
}

/// The lock item's attributes: who holds it and until when (seconds).
const HOLDER_ATTRIBUTE: &str = "lock_holder";
const UNTIL_ATTRIBUTE: &str = "lock_until";

/// A day past its lease, DynamoDB's TTL deletes a lock item: records synced once leave no
/// item behind for good.
const LOCK_ITEM_TTL: i64 = 86_400;

fn until(now: UnixSeconds, lease: Duration) -> i64 {
    now.saturating_add(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX))
}

/// Both calls are `UpdateItem`s (no `DeleteItem`: the hubspot consumer may not delete from the
/// mappings table); a lock given back is set lapsed (`lock_until` 0) and left to the TTL.
impl RecordLocks for DynamoDbMappings {
    async fn lock(
        &self,
        object: CrmObject,
        attio_record_id: &str,
        holder: &str,
        now: UnixSeconds,
        lease: Duration,
    ) -> Result<bool, MappingError> {
        let until = until(now, lease);
        let update = self
            .client()
            .update_item()
            .table_name(self.table())
            .key(
                KEY_ATTRIBUTE,
                AttributeValue::S(lock_key(object, attio_record_id)),
            )
            .update_expression("SET #until = :until, #holder = :holder, #expires = :expires")
            .condition_expression(
                "attribute_not_exists(#until) OR #until < :now OR #holder = :holder",
            )
            .expression_attribute_names("#until", UNTIL_ATTRIBUTE)
            .expression_attribute_names("#holder", HOLDER_ATTRIBUTE)
            .expression_attribute_names("#expires", EXPIRES_ATTRIBUTE)
            .expression_attribute_values(":until", AttributeValue::N(until.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":holder", AttributeValue::S(holder.to_owned()))
            .expression_attribute_values(
                ":expires",
                AttributeValue::N(until.saturating_add(LOCK_ITEM_TTL).to_string()),
            )
            .send()
            .await;
        match update {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(MappingError::unavailable(
                "UpdateItem (lock)",
                e.into_service_error(),
            )),
        }
    }

    async fn unlock(
        &self,
        object: CrmObject,
        attio_record_id: &str,
        holder: &str,
    ) -> Result<(), MappingError> {
        let update = self
            .client()
            .update_item()
            .table_name(self.table())
            .key(
                KEY_ATTRIBUTE,
                AttributeValue::S(lock_key(object, attio_record_id)),
            )
            .update_expression("SET #until = :zero")
            .condition_expression("#holder = :holder")
            .expression_attribute_names("#until", UNTIL_ATTRIBUTE)
            .expression_attribute_names("#holder", HOLDER_ATTRIBUTE)
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":holder", AttributeValue::S(holder.to_owned()))
            .send()
            .await;
        match update {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(e) => Err(MappingError::unavailable(
                "UpdateItem (unlock)",
                e.into_service_error(),
            )),
        }
    }
}
