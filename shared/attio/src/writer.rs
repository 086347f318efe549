//! [`AttioWriter`] over HTTP: the two writes of the way back (HubSpot → Attio), for
//! [`AttioClient`] and [`CachedAttio`].
//!
//! * **Assert** — `PUT /v2/objects/{object}/records?matching_attribute={slug}` with
//!   `{"data": {"values": {…}}}`: the record whose unique `matching_attribute` holds the given
//!   value is updated, or created when none does
//!   (<https://docs.attio.com/rest-api/endpoint-reference/records/assert-a-record>).
//! * **Update** — `PUT /v2/objects/{object}/records/{record_id}` with the same body: the given
//!   attributes are overwritten, multiselect values included (`PATCH` would prepend to them,
//!   <https://docs.attio.com/rest-api/endpoint-reference/records/update-a-record-overwrite-multiselect-values>).
//!
//! **Why a failed write is simply sent again.** Both are `PUT`s that *set* values: sending one
//! twice leaves the record as sending it once does (Attio keeps no new historic value for a
//! value that did not change), so a 5xx, a timeout or a dropped connection after Attio applied
//! the write is retried like a read — unlike a webhook create, which is sent once.
//!
//! **Rate.** Writes draw from the client's write pacer, or from the deployment-wide
//! `attio-writes` budget when one is configured ([`crate::AttioConfig::write_budget`]): Attio
//! allows 25 writes per second per workspace, separately from the 100 reads
//! (<https://docs.attio.com/rest-api/guides/rate-limiting>). A 429 is waited out (its
//! `Retry-After` is an HTTP date) when the wait fits the call's budget, and halves the shared
//! write rate for every container.
//!
//! **Errors** classify as the reads' do ([`AttioError::is_permanent`]), from Attio's error body
//! `{status_code, type, code, message}` as the endpoint references show it: 404 `not_found`
//! ("Record with ID … not found", or the object) is permanent; 400 (`validation_type`,
//! `value_not_found` — e.g. "No attribute was found for matching_attribute slug/ID …",
//! `missing_value`) is permanent, with Attio's message kept in the error so an operator sees
//! which value was refused; 409 `concurrent_write_conflict` ("The record was modified by
//! another request while this write was being validated. Please try again."), 408, 429 and
//! 5xx are transient and retried within the budget. A 401 re-reads the token once.

use reqwest::Method;

use crate::client::{Call, Kind};
use crate::writes::{AttioValues, AttioWriter};
use crate::{AttioApi, AttioClient, AttioError, CachedAttio, Record};

/// The body of both writes: `{"data": {"values": {…}}}`.
fn write_body(values: &AttioValues) -> serde_json::Value {
    serde_json::json!({ "data": { "values": values } })
}

fn to_bytes(body: &serde_json::Value) -> Result<Vec<u8>, AttioError> {
    serde_json::to_vec(body).map_err(|e| AttioError::Config {
        reason: format!("request body does not serialise: {e}"),
    })
}

impl AttioClient {
    /// `PUT /objects/{object}/records/{record_id}`: overwrites the given attributes of one
    /// record. Idempotent (a `PUT` of values), so transient failures are retried like a read's.
    pub async fn update_record(
        &self,
        object: &str,
        record_id: &str,
        values: &AttioValues,
    ) -> Result<Record, AttioError> {
        let body = to_bytes(&write_body(values))?;
        self.call(Call {
            method: Method::PUT,
            segments: &["objects", object, "records", record_id],
            query: &[],
            body: Some(body),
            circuit: object,
            kind: Kind::Write,
            retry_transient: true,
        })
        .await
    }
}

impl AttioWriter for AttioClient {
    async fn assert_record(
        &self,
        object: &str,
        matching_attribute: &str,
        values: &AttioValues,
    ) -> Result<Record, AttioError> {
        let values = serde_json::Value::Object(values.clone());
        AttioClient::assert_record(self, object, matching_attribute, values).await
    }

    async fn update_record(
        &self,
        object: &str,
        record_id: &str,
        values: &AttioValues,
    ) -> Result<Record, AttioError> {
        AttioClient::update_record(self, object, record_id, values).await
    }
}

/// Object ids are turned into slugs through the schema cache first, as the sync does for
/// reads: paths, circuits and logs then name the object the way the field mapping does.
impl AttioWriter for CachedAttio {
    async fn assert_record(
        &self,
        object: &str,
        matching_attribute: &str,
        values: &AttioValues,
    ) -> Result<Record, AttioError> {
        let slug = self.object_slug(object).await?;
        AttioWriter::assert_record(self.client(), &slug, matching_attribute, values).await
    }

    async fn update_record(
        &self,
        object: &str,
        record_id: &str,
        values: &AttioValues,
    ) -> Result<Record, AttioError> {
        let slug = self.object_slug(object).await?;
        AttioClient::update_record(self.client(), &slug, record_id, values).await
    }
}
