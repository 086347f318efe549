//! Mappings in DynamoDB: partition key `mapping_key` (S); `crm_id` (S) once created;
//! `reserved_until` (N) while a create is in flight; `create_attempted_at` (N) once a create
//! was sent and until its id is stored. One more item, keyed
//! [`SCHEMA_GENERATION_KEY`](crate::SCHEMA_GENERATION_KEY), holds the schema generation (N).
//! A tombstone is an item keyed [`tombstone_key`](crate::tombstone_key) with `deleted_at` (N)
//! and `expires_at` (N), the table's TTL attribute. A record's sync ledger is an item keyed
//! [`ledger_key`](crate::ledger_key) with one map attribute (`ledger_dynamodb.rs`).

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use relay_crm::{CrmId, CrmObject};

use crate::tombstone::expiry;
use crate::{
    EXPIRES_ATTRIBUTE, GENERATION_ATTRIBUTE, IdMappings, MappingError, Reservation,
    SCHEMA_GENERATION_KEY, SchemaGenerations, Tombstones, UnixSeconds, mapping_key, tombstone_key,
};

pub const KEY_ATTRIBUTE: &str = "mapping_key";
/// When a create was last sent under the item's reservation (unix seconds).
const ATTEMPT_ATTRIBUTE: &str = "create_attempted_at";

#[derive(Debug, Clone)]
pub struct DynamoDbMappings {
    client: Client,
    table: String,
}

impl DynamoDbMappings {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn table(&self) -> &str {
        &self.table
    }

    fn key(object: CrmObject, attio_id: &str) -> AttributeValue {
        AttributeValue::S(mapping_key(object, attio_id))
    }
}

impl IdMappings for DynamoDbMappings {
    async fn get(&self, object: CrmObject, attio_id: &str) -> Result<Option<CrmId>, MappingError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, Self::key(object, attio_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| MappingError::unavailable("GetItem", e.into_service_error()))?;
        Ok(out
            .item
            .and_then(|item| item.get("crm_id").and_then(|v| v.as_s().ok()).cloned())
            .map(CrmId))
    }

    async fn reserve(
        &self,
        object: CrmObject,
        attio_id: &str,
        now: UnixSeconds,
        lease: Duration,
    ) -> Result<Reservation, MappingError> {
        let until = now.saturating_add(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX));
        // An update, not a put: it keeps `create_attempted_at` of an earlier creator that died
        // or lost its answer, and hands it back (ALL_OLD) so that attempt is looked up first.
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, Self::key(object, attio_id))
            .update_expression("SET reserved_until = :until")
            .condition_expression(
                "attribute_not_exists(#key) OR (attribute_not_exists(crm_id) AND reserved_until < :now)",
            )
            .expression_attribute_names("#key", KEY_ATTRIBUTE)
            .expression_attribute_values(":until", AttributeValue::N(until.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match update {
            Ok(out) => {
                let attempted = out
                    .attributes
                    .as_ref()
                    .and_then(|old| old.get(ATTEMPT_ATTRIBUTE))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse::<UnixSeconds>().ok());
                Ok(match attempted {
                    Some(attempted_at) => Reservation::Unresolved { attempted_at },
                    None => Reservation::Reserved,
                })
            }
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(match self.get(object, attio_id).await? {
                    Some(id) => Reservation::Mapped(id),
                    None => Reservation::Busy,
                })
            }
            Err(e) => Err(MappingError::unavailable(
                "UpdateItem",
                e.into_service_error(),
            )),
        }
    }

    async fn record_create_attempt(
        &self,
        object: CrmObject,
        attio_id: &str,
        at: UnixSeconds,
    ) -> Result<(), MappingError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, Self::key(object, attio_id))
            .update_expression("SET #attempted = :at")
            .condition_expression(
                "attribute_exists(#key) AND attribute_not_exists(crm_id) AND reserved_until >= :at",
            )
            .expression_attribute_names("#key", KEY_ATTRIBUTE)
            .expression_attribute_names("#attempted", ATTEMPT_ATTRIBUTE)
            .expression_attribute_values(":at", AttributeValue::N(at.to_string()))
            .send()
            .await;
        match update {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Err(MappingError::ReservationLost {
                    key: mapping_key(object, attio_id),
                })
            }
            Err(e) => Err(MappingError::unavailable(
                "UpdateItem",
                e.into_service_error(),
            )),
        }
    }

    async fn put(
        &self,
        object: CrmObject,
        attio_id: &str,
        crm_id: &CrmId,
    ) -> Result<(), MappingError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(KEY_ATTRIBUTE, Self::key(object, attio_id))
            .item("crm_id", AttributeValue::S(crm_id.0.clone()))
            .send()
            .await
            .map_err(|e| MappingError::unavailable("PutItem", e.into_service_error()))?;
        Ok(())
    }

    async fn remove(&self, object: CrmObject, attio_id: &str) -> Result<(), MappingError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, Self::key(object, attio_id))
            .send()
            .await
            .map_err(|e| MappingError::unavailable("DeleteItem", e.into_service_error()))?;
        Ok(())
    }
}

impl Tombstones for DynamoDbMappings {
    /// An unconditional put: burying again only moves the expiry.
    async fn bury(
        &self,
        object: CrmObject,
        attio_id: &str,
        now: UnixSeconds,
        retention: Duration,
    ) -> Result<(), MappingError> {
        let until = expiry(now, retention);
        self.client
            .put_item()
            .table_name(&self.table)
            .item(
                KEY_ATTRIBUTE,
                AttributeValue::S(tombstone_key(object, attio_id)),
            )
            .item("deleted_at", AttributeValue::N(now.to_string()))
            .item(EXPIRES_ATTRIBUTE, AttributeValue::N(until.to_string()))
            .send()
            .await
            .map_err(|e| MappingError::unavailable("PutItem", e.into_service_error()))?;
        Ok(())
    }

    /// Strongly consistent, and an item TTL has not deleted yet counts only until it expires.
    async fn is_buried(
        &self,
        object: CrmObject,
        attio_id: &str,
        now: UnixSeconds,
    ) -> Result<bool, MappingError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(
                KEY_ATTRIBUTE,
                AttributeValue::S(tombstone_key(object, attio_id)),
            )
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| MappingError::unavailable("GetItem", e.into_service_error()))?;
        let Some(item) = out.item else {
            return Ok(false);
        };
        let expires = item
            .get(EXPIRES_ATTRIBUTE)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<UnixSeconds>().ok());
        // A tombstone whose expiry does not read is kept: forgetting a delete resurrects.
        Ok(expires.is_none_or(|at| at >= now))
    }
}

/// The generation from an item's number attribute (absent: never bumped, 0).
fn generation(value: Option<&AttributeValue>) -> Result<u64, MappingError> {
    match value {
        None => Ok(0),
        Some(AttributeValue::N(n)) => n.parse().map_err(|_| {
            MappingError::unavailable(
                "GetItem",
                format!("{GENERATION_ATTRIBUTE} is not a count: {n}"),
            )
        }),
        Some(_) => Err(MappingError::unavailable(
            "GetItem",
            format!("{GENERATION_ATTRIBUTE} is not a number"),
        )),
    }
}

impl SchemaGenerations for DynamoDbMappings {
    /// A strongly consistent read, so a bump acknowledged before this batch started is seen.
    async fn schema_generation(&self) -> Result<u64, MappingError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(
                KEY_ATTRIBUTE,
                AttributeValue::S(SCHEMA_GENERATION_KEY.into()),
            )
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| MappingError::unavailable("GetItem", e.into_service_error()))?;
        generation(
            out.item
                .as_ref()
                .and_then(|item| item.get(GENERATION_ATTRIBUTE)),
        )
    }

    /// `ADD` creates the item and the attribute when missing and is atomic, so concurrent
    /// bumps from several containers each count:
    /// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.UpdateExpressions.html#Expressions.UpdateExpressions.ADD>.
    async fn bump_schema_generation(&self) -> Result<u64, MappingError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(
                KEY_ATTRIBUTE,
                AttributeValue::S(SCHEMA_GENERATION_KEY.into()),
            )
            .update_expression("ADD #generation :one")
            .expression_attribute_names("#generation", GENERATION_ATTRIBUTE)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| MappingError::unavailable("UpdateItem", e.into_service_error()))?;
        generation(
            out.attributes
                .as_ref()
                .and_then(|a| a.get(GENERATION_ATTRIBUTE)),
        )
    }
}
