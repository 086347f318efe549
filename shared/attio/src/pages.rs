//! Record queries, the webhook list, and offset pagination over them.
//!
//! [`RecordPages`] exposes its offset so a long walk (a backfill) can save it after each page
//! and resume from it in a later invocation. Offsets only name the same records across calls
//! when the order is stable: give the query a sort for walks that outlive one invocation.
//! [`WebhookPages`] walks `GET /webhooks` the same way: Attio answers at most 100 webhooks per
//! call, so reading one page (as this client once did) silently misses the rest.

use serde::Serialize;

use crate::{AttioClient, AttioError, Record, Webhook};

/// Attio's largest page for record queries.
pub const MAX_PAGE_SIZE: u32 = 500;

/// Page bounds of `GET /v2/webhooks`: `limit` is "between 10 and 100, defaults to 10"
/// (<https://docs.attio.com/rest-api/endpoint-reference/webhooks/list-webhooks>).
pub const WEBHOOK_PAGE_MIN: u32 = 10;
pub const WEBHOOK_PAGE_MAX: u32 = 100;

/// Moves an offset walk past a page of `count` items asked for with `limit`; returns true when
/// that page was the last. Attio's offset endpoints fill every page but the last, so a short
/// (or empty) page ends the walk.
fn advance(offset: &mut u32, count: usize, limit: u32) -> bool {
    let count = u32::try_from(count).unwrap_or(u32::MAX);
    *offset = offset.saturating_add(count);
    count < limit
}

/// The body of `POST /objects/{object}/records/query`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordQuery {
    /// Attio's filter object (shorthand or verbose); sent only when set.
    pub filter: Option<serde_json::Value>,
    /// Attio's sort objects (`{"attribute", "field", "direction"}`); sent only when non-empty.
    pub sorts: Vec<serde_json::Value>,
    /// Page size, clamped to 1..=500 when sent.
    pub limit: u32,
    pub offset: u32,
}

impl Default for RecordQuery {
    fn default() -> Self {
        Self {
            filter: None,
            sorts: Vec::new(),
            limit: MAX_PAGE_SIZE,
            offset: 0,
        }
    }
}

impl RecordQuery {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn filter(mut self, filter: serde_json::Value) -> Self {
        self.filter = Some(filter);
        self
    }

    pub fn sort(mut self, sort: serde_json::Value) -> Self {
        self.sorts.push(sort);
        self
    }

    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    pub fn offset(mut self, offset: u32) -> Self {
        self.offset = offset;
        self
    }

    /// The page size actually sent.
    pub fn effective_limit(&self) -> u32 {
        self.limit.clamp(1, MAX_PAGE_SIZE)
    }

    /// The JSON body Attio receives: `filter` and `sorts` are left out when unset (Attio
    /// documents both as optional; `filter` must be an object when present).
    pub(crate) fn body(&self) -> QueryBody<'_> {
        QueryBody {
            filter: self.filter.as_ref().filter(|f| !f.is_null()),
            sorts: &self.sorts,
            limit: self.effective_limit(),
            offset: self.offset,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct QueryBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    filter: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "<[serde_json::Value]>::is_empty")]
    sorts: &'a [serde_json::Value],
    limit: u32,
    offset: u32,
}

/// Walks a record query page by page, each page one budgeted call.
#[derive(Debug, Clone)]
pub struct RecordPages {
    client: AttioClient,
    object: String,
    query: RecordQuery,
    done: bool,
}

impl RecordPages {
    /// Pages of `query`, starting at its offset.
    pub fn new(client: AttioClient, object: impl Into<String>, query: RecordQuery) -> Self {
        Self {
            client,
            object: object.into(),
            query,
            done: false,
        }
    }

    /// The next page, or `None` once a short or empty page has been seen. On error the offset
    /// is unchanged: calling again retries the same page.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Record>>, AttioError> {
        if self.done {
            return Ok(None);
        }
        let records = self.client.query_records(&self.object, &self.query).await?;
        let limit = self.query.effective_limit();
        self.done = advance(&mut self.query.offset, records.len(), limit);
        Ok((!records.is_empty()).then_some(records))
    }

    /// Offset of the next page to fetch: save it to resume with [`RecordQuery::offset`].
    pub fn offset(&self) -> u32 {
        self.query.offset
    }

    /// True once the last page has been returned.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Every remaining record, in order.
    pub async fn collect_all(mut self) -> Result<Vec<Record>, AttioError> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }
}

/// Walks `GET /webhooks` page by page (`limit`, `offset`), each page one budgeted call.
#[derive(Debug, Clone)]
pub struct WebhookPages {
    client: AttioClient,
    limit: u32,
    offset: u32,
    done: bool,
}

impl WebhookPages {
    /// Pages of `limit` webhooks (clamped to Attio's 10..=100) from the first.
    pub fn new(client: AttioClient, limit: u32) -> Self {
        Self {
            client,
            limit: limit.clamp(WEBHOOK_PAGE_MIN, WEBHOOK_PAGE_MAX),
            offset: 0,
            done: false,
        }
    }

    /// The next page, or `None` after the last. On error the offset is unchanged.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Webhook>>, AttioError> {
        if self.done {
            return Ok(None);
        }
        let page = self
            .client
            .list_webhooks_page(self.limit, self.offset)
            .await?;
        self.done = advance(&mut self.offset, page.len(), self.limit);
        Ok((!page.is_empty()).then_some(page))
    }

    /// The page size sent.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Every remaining webhook, in Attio's order.
    pub async fn collect_all(mut self) -> Result<Vec<Webhook>, AttioError> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unset_filter_and_sorts_are_left_out_and_the_limit_is_clamped() {
        let body = serde_json::to_value(RecordQuery::new().limit(10_000).body()).unwrap();
        assert_eq!(body, json!({"limit": 500, "offset": 0}));

        let query = RecordQuery::new()
            .filter(json!({"name": "Ada"}))
            .sort(json!({"attribute": "created_at", "direction": "asc"}))
            .limit(0)
            .offset(7);
        assert_eq!(
            serde_json::to_value(query.body()).unwrap(),
            json!({
                "filter": {"name": "Ada"},
                "sorts": [{"attribute": "created_at", "direction": "asc"}],
                "limit": 1,
                "offset": 7
            })
        );
        let null_filter = RecordQuery::new().filter(serde_json::Value::Null);
        assert_eq!(
            serde_json::to_value(null_filter.body()).unwrap(),
            json!({"limit": 500, "offset": 0})
        );
    }

    #[test]
    fn a_walk_ends_on_a_short_or_empty_page_only() {
        let mut offset = 0;
        assert!(!advance(&mut offset, 100, 100), "a full page: keep going");
        assert_eq!(offset, 100);
        assert!(advance(&mut offset, 7, 100), "a short page is the last");
        assert_eq!(offset, 107);
        assert!(advance(&mut offset, 0, 100), "so is an empty one");
        assert_eq!(offset, 107);
    }

    #[test]
    fn webhook_pages_keep_to_attios_bounds() {
        let client = AttioClient::new(crate::AttioConfig::new("t")).expect("client");
        assert_eq!(WebhookPages::new(client.clone(), 1).limit(), 10);
        assert_eq!(WebhookPages::new(client.clone(), 50).limit(), 50);
        assert_eq!(WebhookPages::new(client, 1000).limit(), 100);
    }
}
