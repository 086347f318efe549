//! Batched record reads: many records of one object in one call.
//!
//! Events carry ids only, and a bulk edit or an import in Attio fires one event per changed
//! attribute. One `GET /objects/{object}/records/{id}` per record caps event-driven sync at
//! Attio's read limit (about 100 reads/s per workspace); one query for a whole batch's records
//! of an object costs one read for up to [`MAX_IDS_PER_QUERY`] records.
//!
//! **The call.** `POST /v2/objects/{object}/records/query` with
//! `{"filter": {"record_id": {"$in": [ids]}}, "limit": n}`: Attio's filtering guide documents
//! `$in` as "Records where record_id is one of many values"
//! (<https://docs.attio.com/rest-api/guides/filtering-and-sorting>), and the query answers at
//! most 500 records per call (`limit`, "List records":
//! <https://docs.attio.com/rest-api/endpoint-reference/records/list-records>). The answer is
//! `{"data": [record, ...]}`, each record in the same shape as `GET` answers it (`id`,
//! `created_at`, `web_url`, `values` keyed by attribute slug with the same value objects), so it
//! decodes into the same [`Record`]. More than 500 ids are split into several calls.
//!
//! **What an absent record means, and what it does not.** A record the query does not answer
//! is one Attio does not hold under that id *now*: deleted, or an original merged into another
//! record ("marked as merged and can no longer be read"). That is what `GET`'s 404
//! `not_found` means too. But the query cannot say *why* a record is absent, and a `GET` can:
//! the new record of a merge still being applied reads 404 `merge_in_progress` (it exists
//! soon; docs: <https://docs.attio.com/rest-api/endpoint-reference/records/merge-two-records>)
//! and is simply absent from a query. Attio documents no consistency bound between a write
//! and the query either. So callers that act on "gone" confirm an absent id with one
//! [`AttioApi::get_record`](crate::AttioApi::get_record) — rare (a stale update of a deleted
//! record) and exact.
//!
//! **Where single reads stay.** Notes and tasks: `GET /v2/notes` lists by parent record only
//! (`parent_object`, `parent_record_id`, `limit` ≤ 50:
//! <https://docs.attio.com/rest-api/endpoint-reference/notes/list-notes>) and `GET /v2/tasks`
//! by linked record, assignee and completion
//! (<https://docs.attio.com/rest-api/endpoint-reference/tasks/list-tasks>): neither documents a
//! filter by a list of note or task ids, so they are read one `GET` each. List entries have a
//! query (`POST /v2/lists/{list}/entries/query`), but the list-entries consumer never reads an
//! entry: it re-syncs the entry's parent record, whose read is batched like any record's.

use std::collections::HashSet;

use serde_json::json;

use crate::{AttioClient, AttioError, Record, RecordQuery};

/// Ids per query: Attio's largest page (`limit` up to 500).
pub const MAX_IDS_PER_QUERY: usize = crate::MAX_PAGE_SIZE as usize;

/// Attio's filter for "`record_id` is one of `ids`" (verbose form, operator `$in`).
pub fn record_id_filter<S: AsRef<str>>(ids: &[S]) -> serde_json::Value {
    let ids: Vec<&str> = ids.iter().map(AsRef::as_ref).collect();
    json!({ "record_id": { "$in": ids } })
}

/// `ids` once each, in first-seen order: a batch often names one record many times.
pub(crate) fn distinct(ids: &[String]) -> Vec<&str> {
    let mut seen = HashSet::new();
    ids.iter()
        .map(String::as_str)
        .filter(|id| seen.insert(*id))
        .collect()
}

impl AttioClient {
    /// The records of `object` (an id or a slug) among `record_ids`, by
    /// `POST /objects/{object}/records/query` filtered on `record_id` `$in` the ids, one call per
    /// [`MAX_IDS_PER_QUERY`] distinct ids. Records absent from the answer are absent from the
    /// result (see the module docs for what that means). Each call is budgeted, retried and
    /// paced like any read; the first call that fails fails the whole read.
    pub async fn get_records(
        &self,
        object: &str,
        record_ids: &[String],
    ) -> Result<Vec<Record>, AttioError> {
        let ids = distinct(record_ids);
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_IDS_PER_QUERY) {
            let limit = u32::try_from(chunk.len()).unwrap_or(crate::MAX_PAGE_SIZE);
            let query = RecordQuery::new()
                .filter(record_id_filter(chunk))
                .limit(limit);
            let page = self.query_records(object, &query).await?;
            // Only what was asked for: the filter should ensure it, a stray record is ignored.
            found.extend(
                page.into_iter()
                    .filter(|record| chunk.contains(&record.record_id())),
            );
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_is_record_id_in_the_ids_and_ids_are_asked_once() {
        let ids = ["a", "b", "a", "c", "b"].map(String::from);
        let distinct = distinct(&ids);
        assert_eq!(distinct, ["a", "b", "c"]);
        assert_eq!(
            record_id_filter(&distinct),
            json!({"record_id": {"$in": ["a", "b", "c"]}})
        );
    }
}
