//! The way back: what the HubSpot → Attio sync writes (issue 14). A port of its own, beside the
//! read port [`AttioApi`](crate::AttioApi), so the one-way consumers keep needing reads only.
//!
//! Values are given in Attio's write format, keyed by attribute slug (`{"job_title": "CTO"}`,
//! `{"name": [{"first_name": …, "last_name": …, "full_name": …}]}`,
//! <https://docs.attio.com/docs/attribute-types>). Writes go through the `attio-writes` rate
//! budget (25/s per workspace, <https://docs.attio.com/rest-api/guides/rate-limiting>).

use std::future::Future;

use crate::{AttioError, Record};

/// Attribute slug → value(s) in Attio's write format.
pub type AttioValues = serde_json::Map<String, serde_json::Value>;

/// What the HubSpot → Attio sync writes.
pub trait AttioWriter: Send + Sync {
    /// Finds the record of `object` whose unique `matching_attribute` (`email_addresses` for
    /// people, `domains` for companies) holds the value given in `values`, and overwrites the
    /// given values; creates it when there is none ("Assert a record",
    /// `PUT /v2/objects/{object}/records?matching_attribute=…`,
    /// <https://docs.attio.com/rest-api/endpoint-reference/records/assert-a-record>).
    fn assert_record(
        &self,
        object: &str,
        matching_attribute: &str,
        values: &AttioValues,
    ) -> impl Future<Output = Result<Record, AttioError>> + Send;

    /// Overwrites the given attributes of one record, multiselect values included
    /// (`PUT /v2/objects/{object}/records/{record_id}`; `PATCH` would prepend to them,
    /// <https://docs.attio.com/rest-api/endpoint-reference/records/update-a-record-overwrite-multiselect-values>).
    /// [`AttioError::NotFound`] when the record is gone.
    fn update_record(
        &self,
        object: &str,
        record_id: &str,
        values: &AttioValues,
    ) -> impl Future<Output = Result<Record, AttioError>> + Send;

    /// Deletes one record (`DELETE /v2/objects/{object}/records/{record_id}`, answered `200 {}`,
    /// <https://docs.attio.com/rest-api/endpoint-reference/records/delete-a-record>). Attio has
    /// no archive for records — the reference offers only this delete, which removes the
    /// record — so "archive as configured" (`HUBSPOT_DELETIONS=delete`) is a delete.
    /// A record that is gone already ([`AttioError::NotFound`] with `not_found`) is returned
    /// as such: the caller decides that "deleted twice" is done.
    fn delete_record(
        &self,
        object: &str,
        record_id: &str,
    ) -> impl Future<Output = Result<(), AttioError>> + Send;
}
