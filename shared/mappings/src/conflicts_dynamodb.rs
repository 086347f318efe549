//! [`ConflictStore`] in DynamoDB: its own table (`ConflictsTable` in the SAM stack, env
//! `CONFLICTS_TABLE`), partition key [`CONFLICT_KEY_ATTRIBUTE`] (`id`, S), one item per
//! conflict:
//!
//! | attribute | type | |
//! |---|---|---|
//! | `object`, `attio_record_id`, `crm_id`, `property`, `attribute` | S | where |
//! | `attio_value`, `hubspot_value` | S | absent when that side emptied the field |
//! | `attio_changed_at`, `hubspot_changed_at`, `detected_at` | N | epoch ms |
//! | `winner` | S | `attio` / `hubspot` |
//! | `status` | S | `open` / `resolved` |
//! | `kept`, `resolved_at` | S, N | once resolved |
//!
//! Its own table and not the mappings table: the mappings table's items are read by key only,
//! and a listing here scans, which on the mappings table would read every mapping, tombstone
//! and ledger. Here a scan reads conflicts only, and conflicts are few (a field changed on
//! both sides between two syncs, seconds apart) and listed at an operator's pace, so a scan
//! costs less than keeping an index for a time-ordered query would.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use relay_crm::CrmObject;

use crate::MappingError;
use crate::conflicts::{
    Conflict, ConflictFilter, ConflictPage, ConflictStore, ConflictValue, Resolution, Side,
};

/// The conflicts table's partition key.
pub const CONFLICT_KEY_ATTRIBUTE: &str = "id";

const OPEN: &str = "open";
const RESOLVED: &str = "resolved";

#[derive(Debug, Clone)]
pub struct DynamoDbConflicts {
    client: Client,
    table: String,
}

impl DynamoDbConflicts {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

impl ConflictStore for DynamoDbConflicts {
    /// A put on condition that the id is new: a redelivered message that detects the same
    /// conflict again (same id, [`Conflict::derive_id`]) must not reopen one an operator
    /// resolved meanwhile, so "already there" is success, not an overwrite.
    async fn record(&self, conflict: &Conflict) -> Result<(), MappingError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(conflict)))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", CONFLICT_KEY_ATTRIBUTE)
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(e) => Err(MappingError::unavailable("PutItem", e.into_service_error())),
        }
    }

    /// A `Scan`, filtered on `status`, in pages of at most `limit` conflicts. The ordering
    /// guarantee is per page: each page is sorted newest detected first, but pages follow the
    /// table's hash order, so a later page may hold a newer conflict than an earlier one. A
    /// listing that fits in one page (the usual case: conflicts are few) is therefore wholly
    /// newest first; to sort more, read every page.
    ///
    /// A page is filled from as many `Scan` calls as it takes, each evaluating no more items
    /// than the page still lacks, so the next page starts exactly where this one ended (the
    /// `next` token is the last evaluated id: the key is only `id`). The last page may be
    /// empty: DynamoDB cannot tell that nothing matching is left before scanning it. (`Limit`
    /// counts items evaluated, before the filter:
    /// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Scan.html#Scan.Limit>.)
    async fn list(
        &self,
        filter: ConflictFilter,
        limit: usize,
        after: Option<&str>,
    ) -> Result<ConflictPage, MappingError> {
        let limit = limit.max(1);
        let mut conflicts = Vec::new();
        let mut start = after.map(|id| {
            HashMap::from([(
                CONFLICT_KEY_ATTRIBUTE.to_owned(),
                AttributeValue::S(id.to_owned()),
            )])
        });
        loop {
            let wanted = i32::try_from(limit - conflicts.len()).unwrap_or(i32::MAX);
            let mut scan = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .limit(wanted)
                .set_exclusive_start_key(start.take());
            if let Some(status) = match filter {
                ConflictFilter::Open => Some(OPEN),
                ConflictFilter::Resolved => Some(RESOLVED),
                ConflictFilter::All => None,
            } {
                scan = scan
                    .filter_expression("#status = :status")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":status", AttributeValue::S(status.into()));
            }
            let out = scan
                .send()
                .await
                .map_err(|e| MappingError::unavailable("Scan", e.into_service_error()))?;
            for item in out.items.unwrap_or_default() {
                conflicts.push(from_item(&item)?);
            }
            start = out.last_evaluated_key.filter(|key| !key.is_empty());
            if start.is_none() || conflicts.len() >= limit {
                break;
            }
        }
        conflicts.sort_by(|a, b| (b.detected_at_ms, &b.id).cmp(&(a.detected_at_ms, &a.id)));
        let next = start
            .and_then(|key| key.get(CONFLICT_KEY_ATTRIBUTE).cloned())
            .and_then(|id| id.as_s().ok().cloned());
        Ok(ConflictPage { conflicts, next })
    }

    async fn get(&self, id: &str) -> Result<Option<Conflict>, MappingError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(CONFLICT_KEY_ATTRIBUTE, AttributeValue::S(id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| MappingError::unavailable("GetItem", e.into_service_error()))?;
        out.item.as_ref().map(from_item).transpose()
    }

    /// An `UpdateItem` on condition that the conflict exists (an unknown id must not leave a
    /// half item behind): [`MappingError::UnknownConflict`] otherwise.
    async fn resolve(&self, id: &str, resolution: &Resolution) -> Result<(), MappingError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(CONFLICT_KEY_ATTRIBUTE, AttributeValue::S(id.to_owned()))
            .update_expression("SET #status = :resolved, kept = :kept, resolved_at = :at")
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#id", CONFLICT_KEY_ATTRIBUTE)
            .expression_attribute_values(":resolved", AttributeValue::S(RESOLVED.into()))
            .expression_attribute_values(
                ":kept",
                AttributeValue::S(resolution.kept.as_str().into()),
            )
            .expression_attribute_values(":at", AttributeValue::N(resolution.at_ms.to_string()))
            .send()
            .await;
        match update {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Err(MappingError::UnknownConflict { id: id.to_owned() })
            }
            Err(e) => Err(MappingError::unavailable(
                "UpdateItem",
                e.into_service_error(),
            )),
        }
    }
}

fn to_item(c: &Conflict) -> HashMap<String, AttributeValue> {
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let n = |v: i64| AttributeValue::N(v.to_string());
    let mut item = HashMap::from([
        (CONFLICT_KEY_ATTRIBUTE.to_owned(), s(&c.id)),
        ("object".to_owned(), s(c.object.as_str())),
        ("attio_record_id".to_owned(), s(&c.attio_record_id)),
        ("crm_id".to_owned(), s(&c.crm_id)),
        ("property".to_owned(), s(&c.property)),
        ("attribute".to_owned(), s(&c.attribute)),
        ("attio_changed_at".to_owned(), n(c.attio.changed_at_ms)),
        ("hubspot_changed_at".to_owned(), n(c.hubspot.changed_at_ms)),
        ("winner".to_owned(), s(c.winner.as_str())),
        ("detected_at".to_owned(), n(c.detected_at_ms)),
        (
            "status".to_owned(),
            s(if c.resolution.is_some() {
                RESOLVED
            } else {
                OPEN
            }),
        ),
    ]);
    for (name, value) in [
        ("attio_value", &c.attio.value),
        ("hubspot_value", &c.hubspot.value),
    ] {
        if let Some(value) = value {
            item.insert(name.to_owned(), s(value));
        }
    }
    if let Some(resolution) = &c.resolution {
        item.insert("kept".to_owned(), s(resolution.kept.as_str()));
        item.insert("resolved_at".to_owned(), n(resolution.at_ms));
    }
    item
}

/// A conflict from its item; an item that does not read is an error naming its id (the table
/// holds only what [`to_item`] wrote, so it means an edit by hand).
fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Conflict, MappingError> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
    };
    let id = text(CONFLICT_KEY_ATTRIBUTE).unwrap_or_default();
    let read = || -> Option<Conflict> {
        let resolution = match text("status").as_deref()? {
            RESOLVED => Some(Resolution {
                kept: Side::parse(&text("kept")?)?,
                at_ms: number("resolved_at")?,
            }),
            _ => None,
        };
        Some(Conflict {
            id: id.clone(),
            object: CrmObject::parse(&text("object")?)?,
            attio_record_id: text("attio_record_id")?,
            crm_id: text("crm_id")?,
            property: text("property")?,
            attribute: text("attribute")?,
            attio: ConflictValue {
                value: text("attio_value"),
                changed_at_ms: number("attio_changed_at")?,
            },
            hubspot: ConflictValue {
                value: text("hubspot_value"),
                changed_at_ms: number("hubspot_changed_at")?,
            },
            winner: Side::parse(&text("winner")?)?,
            detected_at_ms: number("detected_at")?,
            resolution,
        })
    };
    read().ok_or_else(|| {
        MappingError::unavailable("Scan", format!("conflict item {id} does not read"))
    })
}
