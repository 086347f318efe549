//! [`SyncLedger`] in the mappings table: one item per record, keyed
//! [`ledger_key`](crate::ledger_key) (`"{object}#{attio id}#synced"`), whose map attribute
//! [`LEDGER_ATTRIBUTE`] holds HubSpot property → `{fp: S, at: N, dir: S, afp: S}` (`afp`, Attio's
//! form of the value, only where it differs from `fp`).
//!
//! One map per record, not one item per field, so a batch's ledgers are one `BatchGetItem` per
//! 100 records. The forward consumer and the reverse one may record different fields of the
//! same record at the same moment, so [`SyncLedger::record`] never rewrites the map: it `SET`s
//! only the named entries (`SET #l.#p0 = :v0, …`), and DynamoDB applies each update to the item
//! atomically, keeping the other writer's entries. Property names go through
//! `ExpressionAttributeNames`: HubSpot's internal names may contain characters (`-`, `.`) an
//! expression cannot spell, and a `.` would otherwise read as a nested path
//! (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ExpressionAttributeNames.html>).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use relay_crm::CrmObject;

use crate::ledger::{Ledger, SyncDirection, SyncLedger, Synced, ledger_key};
use crate::{DynamoDbMappings, KEY_ATTRIBUTE, MappingError};

/// The ledger item's map attribute: HubSpot property name → its last synced value.
pub const LEDGER_ATTRIBUTE: &str = "synced";

/// `BatchGetItem` takes at most 100 keys
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html>).
const BATCH_GET_KEYS: usize = 100;
/// Rounds of `UnprocessedKeys` retried (with doubling waits from 50 ms: 3.1 s in all) before the
/// read is reported unavailable and the caller's message retried.
const UNPROCESSED_ROUNDS: u32 = 6;

impl SyncLedger for DynamoDbMappings {
    /// `BatchGetItem`, strongly consistent (a ledger just recorded by the other direction must
    /// be seen, or its write would read as a change), 100 keys per call; the keys DynamoDB
    /// leaves unprocessed (throttling, the 16 MB answer limit) are asked again with
    /// exponential backoff, as the API reference says to.
    async fn ledgers(
        &self,
        object: CrmObject,
        attio_record_ids: &[String],
    ) -> Result<BTreeMap<String, Ledger>, MappingError> {
        // The same key twice in one BatchGetItem is a ValidationException.
        let mut ids: Vec<&String> = attio_record_ids.iter().collect();
        ids.sort_unstable();
        ids.dedup();
        let by_key: HashMap<String, &String> =
            ids.iter().map(|id| (ledger_key(object, id), *id)).collect();
        let mut ledgers = BTreeMap::new();
        for chunk in ids.chunks(BATCH_GET_KEYS) {
            let keys = chunk
                .iter()
                .map(|id| {
                    HashMap::from([(
                        KEY_ATTRIBUTE.to_owned(),
                        AttributeValue::S(ledger_key(object, id)),
                    )])
                })
                .collect();
            for item in self.batch_get(keys).await? {
                let Some(id) = item
                    .get(KEY_ATTRIBUTE)
                    .and_then(|k| k.as_s().ok())
                    .and_then(|k| by_key.get(k))
                else {
                    continue;
                };
                let ledger = item
                    .get(LEDGER_ATTRIBUTE)
                    .and_then(|m| m.as_m().ok())
                    .map(read_ledger)
                    .unwrap_or_default();
                ledgers.insert((*id).clone(), ledger);
            }
        }
        Ok(ledgers)
    }

    /// `SET #l.#p = :v` for each named field, on condition that the map exists; the first
    /// record of an item creates the map with exactly these entries (condition: it does not
    /// exist). Whichever of two first writers loses the creation race sets its fields into
    /// the winner's map. A nested `SET` into a missing map is refused outright, and setting
    /// the map and a path inside it in one expression overlaps — hence the two steps.
    async fn record(
        &self,
        object: CrmObject,
        attio_record_id: &str,
        entries: &Ledger,
    ) -> Result<(), MappingError> {
        if entries.is_empty() {
            return Ok(());
        }
        let key = AttributeValue::S(ledger_key(object, attio_record_id));
        // Creation lost to a concurrent first writer at most once per round; three rounds
        // only fail if the item is deleted and recreated in between, which nothing does.
        for _ in 0..3 {
            let mut update = self
                .client()
                .update_item()
                .table_name(self.table())
                .key(KEY_ATTRIBUTE, key.clone())
                .expression_attribute_names("#l", LEDGER_ATTRIBUTE)
                .condition_expression("attribute_exists(#l)");
            let mut sets = Vec::with_capacity(entries.len());
            for (i, (property, synced)) in entries.iter().enumerate() {
                sets.push(format!("#l.#p{i} = :v{i}"));
                update = update
                    .expression_attribute_names(format!("#p{i}"), property)
                    .expression_attribute_values(format!(":v{i}"), entry_value(synced));
            }
            let fields = update
                .update_expression(format!("SET {}", sets.join(", ")))
                .send()
                .await;
            match fields {
                Ok(_) => return Ok(()),
                Err(SdkError::ServiceError(e))
                    if e.err().is_conditional_check_failed_exception() => {}
                Err(e) => {
                    return Err(MappingError::unavailable(
                        "UpdateItem",
                        e.into_service_error(),
                    ));
                }
            }
            let map = entries
                .iter()
                .map(|(property, synced)| (property.clone(), entry_value(synced)))
                .collect();
            let created = self
                .client()
                .update_item()
                .table_name(self.table())
                .key(KEY_ATTRIBUTE, key.clone())
                .update_expression("SET #l = :map")
                .condition_expression("attribute_not_exists(#l)")
                .expression_attribute_names("#l", LEDGER_ATTRIBUTE)
                .expression_attribute_values(":map", AttributeValue::M(map))
                .send()
                .await;
            match created {
                Ok(_) => return Ok(()),
                Err(SdkError::ServiceError(e))
                    if e.err().is_conditional_check_failed_exception() => {}
                Err(e) => {
                    return Err(MappingError::unavailable(
                        "UpdateItem",
                        e.into_service_error(),
                    ));
                }
            }
        }
        Err(MappingError::unavailable(
            "UpdateItem",
            format!("the ledger of {attio_record_id} kept changing shape under the write"),
        ))
    }
}

impl DynamoDbMappings {
    /// Every item of `keys` that exists, retrying what DynamoDB leaves unprocessed.
    async fn batch_get(
        &self,
        keys: Vec<HashMap<String, AttributeValue>>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, MappingError> {
        let mut items = Vec::new();
        let mut pending = keys;
        let mut wait = Duration::from_millis(50);
        for round in 0..=UNPROCESSED_ROUNDS {
            if round > 0 {
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(|e| MappingError::unavailable("BatchGetItem", e))?;
            let out = self
                .client()
                .batch_get_item()
                .request_items(self.table(), request)
                .send()
                .await
                .map_err(|e| MappingError::unavailable("BatchGetItem", e.into_service_error()))?;
            if let Some(mut responses) = out.responses {
                items.extend(responses.remove(self.table()).unwrap_or_default());
            }
            pending = out
                .unprocessed_keys
                .and_then(|mut left| left.remove(self.table()))
                .map(|left| left.keys)
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(items);
            }
        }
        Err(MappingError::unavailable(
            "BatchGetItem",
            format!(
                "{} keys still unprocessed after {UNPROCESSED_ROUNDS} retries",
                pending.len()
            ),
        ))
    }
}

fn entry_value(synced: &Synced) -> AttributeValue {
    let mut entry = HashMap::from([
        (
            "fp".to_owned(),
            AttributeValue::S(synced.fingerprint.clone()),
        ),
        ("at".to_owned(), AttributeValue::N(synced.at_ms.to_string())),
        (
            "dir".to_owned(),
            AttributeValue::S(synced.direction.as_str().to_owned()),
        ),
    ]);
    // Attio's form, only when it differs (`afp`; absent in entries written before it).
    if let Some(attio) = &synced.attio_fingerprint {
        entry.insert("afp".to_owned(), AttributeValue::S(attio.clone()));
    }
    AttributeValue::M(entry)
}

/// The entries that read. One that does not (edited by hand, or written by a later version
/// with another direction) is left out, as if that field had never synced: the next sync of
/// the field records it again, whereas failing the read would hold every message of the
/// record until an operator repaired the item.
fn read_ledger(map: &HashMap<String, AttributeValue>) -> Ledger {
    map.iter()
        .filter_map(|(property, value)| {
            let entry = value.as_m().ok()?;
            let text = |name: &str| entry.get(name).and_then(|v| v.as_s().ok());
            Some((
                property.clone(),
                Synced {
                    fingerprint: text("fp")?.clone(),
                    at_ms: entry.get("at")?.as_n().ok()?.parse().ok()?,
                    direction: SyncDirection::parse(text("dir")?)?,
                    attio_fingerprint: text("afp").cloned(),
                },
            ))
        })
        .collect()
}
