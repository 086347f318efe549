//! The records query in the Attio stand-in: the batched read the consumers make
//! (`relay_attio::AttioApi::get_records`), answered as Attio's docs describe it.

use std::sync::atomic::Ordering;

use serde_json::{Map, Value, json};
use wiremock::{Request, ResponseTemplate};

use super::{FakeAttio, attio_error};

impl FakeAttio {
    /// `POST /v2/objects/people/records/query` with the filter the relay sends,
    /// `{"record_id": {"$in": [ids]}}` (<https://docs.attio.com/rest-api/guides/filtering-and-sorting>),
    /// and `limit` (1..=500, default 500; `offset`): `{"data": [records]}`, each as its GET
    /// answers it, in the order asked; deleted and merged-away records are left out, as is a
    /// merged record whose merge is still being applied. Any other filter is unexpected.
    pub(super) fn query_people(&self, request: &Request) -> ResponseTemplate {
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return self.unexpected(request);
        };
        let ids = body["filter"]["record_id"]["$in"].as_array();
        let ids: Option<Vec<&str>> = ids.and_then(|ids| ids.iter().map(Value::as_str).collect());
        let limit = body.get("limit").map_or(Some(500), Value::as_u64);
        let offset = body.get("offset").map_or(Some(0), Value::as_u64);
        let filter_keys = body["filter"].as_object().map_or(0, Map::len);
        let (Some(ids), Some(limit @ 1..=500), Some(offset), 1) = (ids, limit, offset, filter_keys)
        else {
            return attio_error(
                400,
                "validation_type",
                "the fake answers record_id $in queries only",
            );
        };
        let deleted = self.deleted.lock().expect("lock").clone();
        let records: Vec<Value> = ids
            .into_iter()
            .filter(|id| !deleted.contains(*id))
            .filter_map(|id| match self.queried_person(id) {
                None => Some(self.person(id)["data"].clone()),
                Some(merged) => merged.map(|person| person["data"].clone()),
            })
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect();
        self.served.fetch_add(1, Ordering::SeqCst);
        self.queries.fetch_add(1, Ordering::SeqCst);
        ResponseTemplate::new(200).set_body_json(json!({ "data": records }))
    }
}
