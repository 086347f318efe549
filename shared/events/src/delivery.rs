//! Parsing a raw webhook body into typed events.
//!
//! The body is parsed once; each event keeps its exact JSON text ([`Event::raw`]) so what is
//! queued is what Attio sent, never a re-serialisation.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::{EventFamily, EventType};

/// One webhook request: the envelope and its events, in order.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The webhook subscription that sent this (absent in the older bare-event format).
    pub webhook_id: Option<String>,
    pub events: Vec<Event>,
}

/// Who caused an event (`workspace-member`, `api-token`, `system` with no id, ...).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Actor {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
}

/// A record that another thing (list entry, note) belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordPointer {
    pub object_id: String,
    pub record_id: String,
}

/// What an event is about, typed per family. Events carry ids only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// `record.created|updated|deleted`; `attribute_id` only on `record.updated`.
    Record {
        object_id: String,
        record_id: String,
        attribute_id: Option<String>,
    },
    /// `record.merged`: `duplicate` was merged into `object_id`/`record_id`.
    MergedRecord {
        object_id: String,
        record_id: String,
        duplicate: RecordPointer,
    },
    /// `list-entry.*`; `attribute_id` only on `list-entry.updated`.
    ListEntry {
        list_id: String,
        entry_id: String,
        attribute_id: Option<String>,
        parent: Option<RecordPointer>,
    },
    /// `note.*` and `note-content.updated`.
    Note {
        note_id: String,
        parent: Option<RecordPointer>,
    },
    /// `task.*`.
    Task { task_id: String },
    /// An event of an authentic delivery that does not read as an event at all (no
    /// `workspace_id`, `id` not an object, not even an object): parked on the "other" queue with
    /// the reason, so one odd event never costs the delivery's good ones.
    Unreadable { reason: String },
    /// `object-attribute.created|updated`: an attribute of an object was added or changed
    /// (renamed, retyped). Queued with the records, whose consumer drops its cached definition
    /// of the object: <https://docs.attio.com/rest-api/webhook-reference/object-attribute-events/object-attributeupdated>.
    ObjectAttribute {
        object_id: String,
        attribute_id: String,
    },
    /// `list-attribute.created|updated`: likewise for a list's attribute, queued with the list
    /// entries: <https://docs.attio.com/rest-api/webhook-reference/list-attribute-events/list-attributecreated>.
    ListAttribute {
        list_id: String,
        attribute_id: String,
    },
    /// Types no consumer models (comments, lists, members, recordings, unknown
    /// types) and known types whose ids were not the documented shape: kept as the id map and
    /// parked on the "other" queue.
    Ids(BTreeMap<String, String>),
}

/// One Attio event, typed, with its original JSON.
#[derive(Debug, Clone)]
pub struct Event {
    pub event_type: EventType,
    pub workspace_id: String,
    pub subject: Subject,
    pub actor: Actor,
    raw: Box<RawValue>,
}

impl Event {
    /// Parses one event on its own, as the consumers read a queued event back. Unlike
    /// [`Delivery::parse`] it never looks for an envelope: an event's own `events` or
    /// `webhook_id` keys are data ingest ignored, so they must not turn it into another event
    /// here (found by `fuzz/`'s `parse_delivery` target).
    pub fn from_raw(raw: &RawValue) -> Result<Self, ParseError> {
        Self::parse(raw).map_err(|reason| ParseError::InvalidEvent { index: 0, reason })
    }

    /// The queue this event goes to. Known types whose ids were malformed are parked too.
    pub fn family(&self) -> EventFamily {
        match self.subject {
            Subject::Ids(_) | Subject::Unreadable { .. } => EventFamily::Other,
            _ => self.event_type.family(),
        }
    }

    /// The event exactly as Attio sent it.
    pub fn raw(&self) -> &RawValue {
        &self.raw
    }

    /// The ids that identify what this event is about, for idempotency keys and logs.
    pub fn identity(&self) -> Vec<(&'static str, &str)> {
        let mut ids = vec![("workspace_id", self.workspace_id.as_str())];
        match &self.subject {
            Subject::Record {
                object_id,
                record_id,
                attribute_id,
            } => {
                ids.push(("object_id", object_id));
                ids.push(("record_id", record_id));
                if let Some(attribute_id) = attribute_id {
                    ids.push(("attribute_id", attribute_id));
                }
            }
            Subject::MergedRecord {
                object_id,
                record_id,
                duplicate,
            } => {
                ids.push(("object_id", object_id));
                ids.push(("record_id", record_id));
                ids.push(("duplicate_object_id", &duplicate.object_id));
                ids.push(("duplicate_record_id", &duplicate.record_id));
            }
            Subject::ListEntry {
                list_id,
                entry_id,
                attribute_id,
                ..
            } => {
                ids.push(("list_id", list_id));
                ids.push(("entry_id", entry_id));
                if let Some(attribute_id) = attribute_id {
                    ids.push(("attribute_id", attribute_id));
                }
            }
            Subject::Note { note_id, .. } => ids.push(("note_id", note_id)),
            Subject::Task { task_id } => ids.push(("task_id", task_id)),
            Subject::Unreadable { .. } => {}
            Subject::ObjectAttribute {
                object_id,
                attribute_id,
            } => {
                ids.push(("object_id", object_id));
                ids.push(("attribute_id", attribute_id));
            }
            Subject::ListAttribute {
                list_id,
                attribute_id,
            } => {
                ids.push(("list_id", list_id));
                ids.push(("attribute_id", attribute_id));
            }
            Subject::Ids(map) => {
                // Names of arbitrary keys cannot be 'static; the map is sorted, so the values in
                // order identify the event as well as the pairs would.
                ids.extend(
                    map.iter()
                        .filter(|(k, _)| k.as_str() != "workspace_id")
                        .map(|(_, v)| ("id", v.as_str())),
                );
            }
        }
        ids
    }
}

/// Why a body is not a delivery. Each maps to a 400 with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body is neither a delivery envelope (webhook_id, events) nor an event")]
    NotADelivery,
    #[error("delivery has no events")]
    NoEvents,
    /// Only from [`Event::from_raw`]: a delivery keeps an unreadable event as
    /// [`Subject::Unreadable`] instead.
    #[error("event {index} is not valid: {reason}")]
    InvalidEvent { index: usize, reason: String },
}

impl ParseError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "malformed_json",
            Self::NotADelivery => "not_a_delivery",
            Self::NoEvents => "no_events",
            Self::InvalidEvent { .. } => "invalid_event",
        }
    }
}

/// The outer shape; a bare event has `event_type` and no `events`.
#[derive(Deserialize)]
struct WireEnvelope<'a> {
    #[serde(default)]
    webhook_id: Option<String>,
    #[serde(default, borrow)]
    events: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    event_type: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct WireEvent {
    event_type: String,
    id: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    actor: Option<Actor>,
    #[serde(default)]
    duplicate_object_id: Option<String>,
    #[serde(default)]
    duplicate_record_id: Option<String>,
    #[serde(default)]
    parent_object_id: Option<String>,
    #[serde(default)]
    parent_record_id: Option<String>,
}

impl Delivery {
    /// Parses a raw body. Accepts the envelope and the older bare-event format; every event in
    /// the envelope is kept (Attio documents that batching may come). Only the body as a whole
    /// can be refused: an event that does not read is kept as [`Subject::Unreadable`], because
    /// once the signature has passed the delivery is authentic and its other events are real
    /// changes.
    pub fn parse(body: &[u8]) -> Result<Self, ParseError> {
        let envelope: WireEnvelope<'_> =
            serde_json::from_slice(body).map_err(|e| match e.classify() {
                serde_json::error::Category::Data => ParseError::NotADelivery,
                _ => ParseError::NotJson(e.to_string()),
            })?;

        let (webhook_id, raws): (Option<String>, Vec<&RawValue>) =
            match (envelope.events, envelope.event_type) {
                (Some(events), _) => (envelope.webhook_id, events),
                (None, Some(_)) => {
                    let whole: &RawValue = serde_json::from_slice(body)
                        .map_err(|e| ParseError::NotJson(e.to_string()))?;
                    (envelope.webhook_id, vec![whole])
                }
                (None, None) => return Err(ParseError::NotADelivery),
            };
        if raws.is_empty() {
            return Err(ParseError::NoEvents);
        }

        let events = raws
            .into_iter()
            .map(|raw| Event::parse(raw).unwrap_or_else(|reason| Event::unreadable(raw, reason)))
            .collect();
        Ok(Self { webhook_id, events })
    }
}

impl Event {
    /// An event that did not parse, with whatever type and workspace it names.
    fn unreadable(raw: &RawValue, reason: String) -> Self {
        let value: serde_json::Value = serde_json::from_str(raw.get()).unwrap_or_default();
        let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
        Self {
            event_type: EventType::parse(&text(value.get("event_type")).unwrap_or_default()),
            workspace_id: text(value.get("id").and_then(|id| id.get("workspace_id")))
                .unwrap_or_default(),
            subject: Subject::Unreadable { reason },
            actor: Actor::default(),
            raw: raw.to_owned(),
        }
    }

    fn parse(raw: &RawValue) -> Result<Self, String> {
        let wire: WireEvent = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
        let ids: BTreeMap<String, String> = wire
            .id
            .into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k, s)),
                serde_json::Value::Null => None,
                other => Some((k, other.to_string())),
            })
            .collect();
        let workspace_id = ids
            .get("workspace_id")
            .filter(|id| !id.is_empty())
            .cloned()
            .ok_or_else(|| "id.workspace_id is missing".to_owned())?;
        let event_type = EventType::parse(&wire.event_type);
        let parent = match (wire.parent_object_id, wire.parent_record_id) {
            (Some(object_id), Some(record_id)) => Some(RecordPointer {
                object_id,
                record_id,
            }),
            _ => None,
        };
        let duplicate = match (wire.duplicate_object_id, wire.duplicate_record_id) {
            (Some(object_id), Some(record_id)) => Some(RecordPointer {
                object_id,
                record_id,
            }),
            _ => None,
        };
        let subject =
            subject_for(&event_type, &ids, parent, duplicate).unwrap_or(Subject::Ids(ids));
        Ok(Self {
            event_type,
            workspace_id,
            subject,
            actor: wire.actor.unwrap_or_default(),
            raw: raw.to_owned(),
        })
    }
}

/// The typed subject for a known type, or `None` when the ids are not the documented shape.
fn subject_for(
    event_type: &EventType,
    ids: &BTreeMap<String, String>,
    parent: Option<RecordPointer>,
    duplicate: Option<RecordPointer>,
) -> Option<Subject> {
    let id = |name: &str| ids.get(name).cloned();
    use EventType::*;
    Some(match event_type {
        RecordCreated | RecordDeleted => Subject::Record {
            object_id: id("object_id")?,
            record_id: id("record_id")?,
            attribute_id: None,
        },
        RecordUpdated => Subject::Record {
            object_id: id("object_id")?,
            record_id: id("record_id")?,
            attribute_id: Some(id("attribute_id")?),
        },
        RecordMerged => Subject::MergedRecord {
            object_id: id("object_id")?,
            record_id: id("record_id")?,
            duplicate: duplicate?,
        },
        ListEntryCreated | ListEntryDeleted => Subject::ListEntry {
            list_id: id("list_id")?,
            entry_id: id("entry_id")?,
            attribute_id: None,
            parent,
        },
        ListEntryUpdated => Subject::ListEntry {
            list_id: id("list_id")?,
            entry_id: id("entry_id")?,
            attribute_id: Some(id("attribute_id")?),
            parent,
        },
        NoteCreated | NoteUpdated | NoteDeleted | NoteContentUpdated => Subject::Note {
            note_id: id("note_id")?,
            parent,
        },
        TaskCreated | TaskUpdated | TaskDeleted => Subject::Task {
            task_id: id("task_id")?,
        },
        ObjectAttributeCreated | ObjectAttributeUpdated => Subject::ObjectAttribute {
            object_id: id("object_id")?,
            attribute_id: id("attribute_id")?,
        },
        ListAttributeCreated | ListAttributeUpdated => Subject::ListAttribute {
            list_id: id("list_id")?,
            attribute_id: id("attribute_id")?,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: &str = "14beef7a-99f7-4534-a87e-70b564330a4c";

    fn record_updated() -> String {
        format!(
            r#"{{"event_type":"record.updated","id":{{"workspace_id":"{WS}","object_id":"o1","record_id":"r1","attribute_id":"a1"}},"actor":{{"type":"workspace-member","id":"m1"}}}}"#
        )
    }

    #[test]
    fn envelope_with_several_events_keeps_them_all_in_order() {
        let body = format!(
            r#"{{"webhook_id":"w1","events":[{},{{"event_type":"task.updated","id":{{"workspace_id":"{WS}","task_id":"t1"}},"actor":{{"type":"system","id":null}}}}]}}"#,
            record_updated()
        );
        let delivery = Delivery::parse(body.as_bytes()).unwrap();
        assert_eq!(delivery.webhook_id.as_deref(), Some("w1"));
        assert_eq!(delivery.events.len(), 2);
        assert_eq!(
            delivery.events[0].subject,
            Subject::Record {
                object_id: "o1".into(),
                record_id: "r1".into(),
                attribute_id: Some("a1".into())
            }
        );
        assert_eq!(delivery.events[0].family(), EventFamily::Records);
        assert_eq!(delivery.events[1].family(), EventFamily::Tasks);
        assert_eq!(delivery.events[1].actor.kind.as_deref(), Some("system"));
        assert_eq!(delivery.events[1].actor.id, None);
        assert_eq!(delivery.events[0].raw().get(), record_updated());
    }

    #[test]
    fn a_bare_event_is_a_delivery_of_one() {
        let body = record_updated();
        let delivery = Delivery::parse(body.as_bytes()).unwrap();
        assert_eq!(delivery.webhook_id, None);
        assert_eq!(delivery.events.len(), 1);
        assert_eq!(delivery.events[0].raw().get(), body);
    }

    #[test]
    fn unknown_types_and_malformed_ids_are_parked_not_rejected() {
        let body = format!(
            r#"{{"webhook_id":"w","events":[{{"event_type":"deal-room.opened","id":{{"workspace_id":"{WS}","room_id":"x"}}}},{{"event_type":"record.updated","id":{{"workspace_id":"{WS}","record_id":"r"}}}}]}}"#
        );
        let delivery = Delivery::parse(body.as_bytes()).unwrap();
        assert!(
            delivery
                .events
                .iter()
                .all(|e| e.family() == EventFamily::Other)
        );
        assert_eq!(delivery.events[1].event_type, EventType::RecordUpdated);
    }

    #[test]
    fn merged_and_parented_events_read_top_level_ids() {
        let body = format!(
            r#"{{"event_type":"record.merged","id":{{"workspace_id":"{WS}","object_id":"o","record_id":"r"}},"duplicate_object_id":"o","duplicate_record_id":"d"}}"#
        );
        let event = &Delivery::parse(body.as_bytes()).unwrap().events[0];
        assert!(
            matches!(&event.subject, Subject::MergedRecord { duplicate, .. } if duplicate.record_id == "d")
        );

        let body = format!(
            r#"{{"event_type":"note.created","id":{{"workspace_id":"{WS}","note_id":"n"}},"parent_object_id":"o","parent_record_id":"r"}}"#
        );
        let event = &Delivery::parse(body.as_bytes()).unwrap().events[0];
        assert_eq!(
            event.subject,
            Subject::Note {
                note_id: "n".into(),
                parent: Some(RecordPointer {
                    object_id: "o".into(),
                    record_id: "r".into()
                })
            }
        );
    }

    #[test]
    fn attribute_events_are_typed_and_routed_where_their_schema_is_used() {
        // The payloads of Attio's webhook reference: object-attribute.* carry object_id,
        // list-attribute.* list_id, both with attribute_id.
        let body = format!(
            r#"{{"webhook_id":"w","events":[{{"event_type":"object-attribute.updated","id":{{"workspace_id":"{WS}","object_id":"o","attribute_id":"a"}}}},{{"event_type":"list-attribute.created","id":{{"workspace_id":"{WS}","list_id":"l","attribute_id":"a"}}}},{{"event_type":"object-attribute.created","id":{{"workspace_id":"{WS}","list_id":"l","attribute_id":"a"}}}}]}}"#
        );
        let events = Delivery::parse(body.as_bytes()).unwrap().events;
        assert_eq!(
            events[0].subject,
            Subject::ObjectAttribute {
                object_id: "o".into(),
                attribute_id: "a".into()
            }
        );
        assert_eq!(events[0].family(), EventFamily::Records);
        assert_eq!(
            events[0].identity(),
            [
                ("workspace_id", WS),
                ("object_id", "o"),
                ("attribute_id", "a")
            ]
        );
        assert_eq!(
            events[1].subject,
            Subject::ListAttribute {
                list_id: "l".into(),
                attribute_id: "a".into()
            }
        );
        assert_eq!(events[1].family(), EventFamily::ListEntries);
        // Not the documented ids: parked, as any malformed known type.
        assert!(matches!(events[2].subject, Subject::Ids(_)));
        assert_eq!(events[2].family(), EventFamily::Other);
    }

    #[test]
    fn bad_bodies_are_named() {
        let cases: [(&[u8], &str); 6] = [
            (b"", "malformed_json"),
            (b"{not json", "malformed_json"),
            (b"[1,2]", "not_a_delivery"),
            (b"42", "not_a_delivery"),
            (b"{\"hello\":1}", "not_a_delivery"),
            (b"{\"webhook_id\":\"w\",\"events\":[]}", "no_events"),
        ];
        for (body, code) in cases {
            let err = Delivery::parse(body).unwrap_err();
            assert_eq!(
                err.code(),
                code,
                "{:?}: {err}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn an_odd_event_is_kept_unreadable_beside_the_good_ones() {
        let body = format!(
            r#"{{"webhook_id":"w","events":[{{"event_type":"task.created"}},{},{{"event_type":"task.created","id":{{"task_id":"t"}}}},7]}}"#,
            record_updated()
        );
        let delivery = Delivery::parse(body.as_bytes()).unwrap();
        assert_eq!(delivery.events.len(), 4);
        assert_eq!(delivery.events[1].family(), EventFamily::Records);
        for index in [0, 2, 3] {
            let event = &delivery.events[index];
            assert_eq!(event.family(), EventFamily::Other, "event {index}");
            assert!(
                matches!(&event.subject, Subject::Unreadable { reason } if !reason.is_empty()),
                "event {index}: {:?}",
                event.subject
            );
        }
        assert_eq!(delivery.events[0].event_type, EventType::TaskCreated);
        assert_eq!(delivery.events[2].workspace_id, "");
        assert_eq!(delivery.events[3].raw().get(), "7");
        // A consumer reading one back still refuses it.
        assert_eq!(
            Event::from_raw(delivery.events[2].raw())
                .unwrap_err()
                .code(),
            "invalid_event"
        );
    }
}
