//! The buckets in DynamoDB: one item per API in the mappings table (every consumer and the
//! reconcile function already reach it, so no new table and no new IAM beyond `UpdateItem`),
//! keyed `rate-budget:{api}` on the table's partition key `mapping_key` — no `#`, so it never
//! names a mapping. Attributes: `tokens`, `updated_ms`, `cut_rate`, `cut_ms`, `version` (N),
//! and `grants` (S, `encode_grants`: a rolling window's grants, a few dozen bytes; absent on
//! items written before the window rule, which then read as an empty window).
//!
//! A take is one conditional `UpdateItem` (`version = :expected`, or `attribute_not_exists`
//! for the first) that sets the whole state: DynamoDB applies it only if nobody wrote since the
//! state was read, so two containers never spend the same tokens. A lost write returns the
//! winner's item (`ReturnValuesOnConditionCheckFailure: ALL_OLD`,
//! <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html>), so
//! the retry needs no extra read: one write per block uncontended, two when another container
//! wrote in between, plus one `GetItem` when a container starts.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use crate::{
    BucketState, BudgetError, RateBudget, Saved, StoreFuture, Versioned, decode_grants,
    encode_grants,
};

/// Prefix of the bucket items' keys.
pub const BUDGET_KEY_PREFIX: &str = "rate-budget:";
/// The mappings table's partition key.
const KEY_ATTRIBUTE: &str = "mapping_key";

#[derive(Debug, Clone)]
pub struct DynamoDbBudget {
    client: Client,
    table: String,
}

impl DynamoDbBudget {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn key(api: &str) -> AttributeValue {
        AttributeValue::S(format!("{BUDGET_KEY_PREFIX}{api}"))
    }
}

fn number(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn decode(item: &HashMap<String, AttributeValue>) -> Option<Versioned> {
    let get = |name: &str| item.get(name)?.as_n().ok()?.parse::<f64>().ok();
    Some(Versioned {
        state: BucketState {
            tokens: get("tokens")?,
            updated_ms: get("updated_ms")? as i64,
            cut_rate: get("cut_rate")?,
            cut_ms: get("cut_ms")? as i64,
            grants: match item.get("grants") {
                None => Vec::new(),
                Some(text) => decode_grants(text.as_s().ok()?)?,
            },
        },
        version: get("version")? as u64,
    })
}

impl RateBudget for DynamoDbBudget {
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Versioned>> {
        Box::pin(async move {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .key(KEY_ATTRIBUTE, Self::key(key))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| BudgetError::new("GetItem", e.into_service_error()))?;
            Ok(out.item.as_ref().and_then(decode))
        })
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        state: BucketState,
        expected: Option<u64>,
    ) -> StoreFuture<'a, Saved> {
        Box::pin(async move {
            let version = expected.map_or(1, |v| v + 1);
            let mut update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(KEY_ATTRIBUTE, Self::key(key))
                .update_expression(
                    "SET tokens = :t, updated_ms = :u, cut_rate = :r, cut_ms = :c, grants = :g, version = :nv",
                )
                .expression_attribute_values(":t", number(state.tokens))
                .expression_attribute_values(":u", number(state.updated_ms))
                .expression_attribute_values(":r", number(state.cut_rate))
                .expression_attribute_values(":c", number(state.cut_ms))
                .expression_attribute_values(":g", AttributeValue::S(encode_grants(&state.grants)))
                .expression_attribute_values(":nv", number(version))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            update = match expected {
                None => update.condition_expression("attribute_not_exists(#k)"),
                Some(v) => update
                    .condition_expression("version = :v")
                    .expression_attribute_values(":v", number(v)),
            };
            if expected.is_none() {
                update = update.expression_attribute_names("#k", KEY_ATTRIBUTE);
            }
            match update.send().await {
                Ok(_) => Ok(Saved::Written(version)),
                Err(SdkError::ServiceError(e))
                    if e.err().is_conditional_check_failed_exception() =>
                {
                    let stored = match e.into_err() {
                        UpdateItemError::ConditionalCheckFailedException(failed) => {
                            failed.item().and_then(decode)
                        }
                        _ => None,
                    };
                    Ok(Saved::Conflict(stored))
                }
                Err(e) => Err(BudgetError::new("UpdateItem", e.into_service_error())),
            }
        })
    }
}
