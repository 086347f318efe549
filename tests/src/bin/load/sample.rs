//! The deliveries a run sends: the sample, varied so each is a distinct event, and signed
//! before the clock starts so signing is not measured as latency.

use std::path::Path;

use anyhow::Context;
use axum::body::Bytes;
use relay_events::{Delivery, IdempotencyKey};
use relay_signature::{WebhookSecret, sign_body};

/// The delivery varied when no `--sample` is given: the most frequent event Attio sends.
const DEFAULT_SAMPLE: &str = include_str!("../../../../events/deliveries/record-updated.json");
const DEFAULT_SAMPLE_NAME: &str = "events/deliveries/record-updated.json (built in)";

/// The id keys naming what an event is about, most specific first: the one that is replaced
/// with a fresh id so every delivery is a distinct event (as a different record would be).
const SUBJECT_IDS: [&str; 9] = [
    "record_id",
    "entry_id",
    "note_id",
    "task_id",
    "comment_id",
    "call_recording_id",
    "workspace_member_id",
    "attribute_id",
    "list_id",
];

/// The sample, parsed once: its JSON, its name for the report and how many events it holds.
pub struct Sample {
    pub name: String,
    json: serde_json::Value,
    pub delivery: Delivery,
}

/// One delivery, ready to send.
pub struct Prepared {
    /// The Idempotency-Key header value.
    pub header_key: String,
    /// The key ingest stores for it (what queued messages carry).
    pub stored_key: String,
    pub body: Bytes,
    pub signature: String,
}

impl Sample {
    /// The `--sample` file, or the built-in record.updated delivery.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let (name, text) = match path {
            Some(path) => (
                path.display().to_string(),
                std::fs::read_to_string(path).with_context(|| {
                    format!(
                        "cannot read --sample {}: give a delivery file such as events/deliveries/record-updated.json",
                        path.display()
                    )
                })?,
            ),
            None => (DEFAULT_SAMPLE_NAME.to_owned(), DEFAULT_SAMPLE.to_owned()),
        };
        let delivery = Delivery::parse(text.as_bytes()).map_err(|e| {
            anyhow::anyhow!(
                "{name} is not an Attio delivery ({e}): pick one from events/deliveries/"
            )
        })?;
        let json = serde_json::from_str(&text).with_context(|| format!("{name} is not JSON"))?;
        Ok(Self {
            name,
            json,
            delivery,
        })
    }

    /// `count` distinct deliveries, keyed `load-{run_id}-{index}` and signed with `secret`.
    pub fn prepare(
        &self,
        secret: &WebhookSecret,
        count: usize,
        run_id: &str,
    ) -> anyhow::Result<Vec<Prepared>> {
        (0..count)
            .map(|index| {
                let body = serde_json::to_vec(&vary(&self.json))
                    .context("cannot serialise a varied sample delivery")?;
                let header_key = format!("load-{run_id}-{index:07}");
                let stored_key =
                    IdempotencyKey::for_delivery(Some(&header_key), &self.delivery, None)
                        .to_string();
                Ok(Prepared {
                    signature: sign_body(secret, &body),
                    header_key,
                    stored_key,
                    body: Bytes::from(body),
                })
            })
            .collect()
    }
}

/// The sample with a fresh subject id in every event (a bare event or an envelope's events).
fn vary(sample: &serde_json::Value) -> serde_json::Value {
    let mut json = sample.clone();
    let events: Vec<&mut serde_json::Value> = match json.get_mut("events") {
        Some(serde_json::Value::Array(events)) => events.iter_mut().collect(),
        _ => vec![&mut json],
    };
    for event in events {
        if let Some(ids) = event.get_mut("id").and_then(|id| id.as_object_mut())
            && let Some(name) = SUBJECT_IDS.iter().find(|name| ids.contains_key(**name))
        {
            ids.insert(
                (*name).to_owned(),
                serde_json::Value::String(uuid::Uuid::new_v4().to_string()),
            );
        }
    }
    json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variation_is_a_distinct_event_of_the_same_shape() {
        let sample = Sample::load(None).unwrap();
        let a = vary(&sample.json);
        let b = vary(&sample.json);
        let id = |v: &serde_json::Value| v["events"][0]["id"]["record_id"].clone();
        assert_ne!(id(&a), id(&b));
        assert_eq!(
            a["events"][0]["id"]["workspace_id"],
            sample.json["events"][0]["id"]["workspace_id"]
        );
        let bare = serde_json::json!({"event_type": "task.created", "id": {"workspace_id": "w", "task_id": "t"}});
        assert_ne!(vary(&bare)["id"]["task_id"], "t");
    }

    #[test]
    fn prepared_deliveries_are_signed_and_keyed_as_ingest_stores_them() {
        let sample = Sample::load(None).unwrap();
        let secret = WebhookSecret::new("s").unwrap();
        let prepared = sample.prepare(&secret, 2, "run").unwrap();
        assert_eq!(prepared[1].header_key, "load-run-0000001");
        assert_eq!(prepared[1].stored_key, "h:load-run-0000001");
        assert_eq!(prepared[0].signature, sign_body(&secret, &prepared[0].body));
        assert_ne!(prepared[0].body, prepared[1].body);
    }
}
