use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::EventFamily;

/// Every event type Attio documents, plus [`EventType::Unknown`] for ones it adds later.
///
/// There is deliberately no `TaskCompleted`: Attio signals completion as a `task.updated` whose
/// task now has `is_completed: true`, which the tasks consumer reads from the API.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    RecordCreated,
    RecordUpdated,
    RecordDeleted,
    RecordMerged,
    ListEntryCreated,
    ListEntryUpdated,
    ListEntryDeleted,
    NoteCreated,
    NoteUpdated,
    NoteDeleted,
    NoteContentUpdated,
    TaskCreated,
    TaskUpdated,
    TaskDeleted,
    CommentCreated,
    CommentResolved,
    CommentUnresolved,
    CommentDeleted,
    ListCreated,
    ListUpdated,
    ListDeleted,
    ObjectAttributeCreated,
    ObjectAttributeUpdated,
    ListAttributeCreated,
    ListAttributeUpdated,
    WorkspaceMemberCreated,
    CallRecordingCreated,
    /// A type this build does not know; kept verbatim and parked on the "other" queue.
    Unknown(String),
}

/// The wire names, in one table so parsing and printing cannot drift apart.
const KNOWN: &[(&str, EventType)] = &[
    ("record.created", EventType::RecordCreated),
    ("record.updated", EventType::RecordUpdated),
    ("record.deleted", EventType::RecordDeleted),
    ("record.merged", EventType::RecordMerged),
    ("list-entry.created", EventType::ListEntryCreated),
    ("list-entry.updated", EventType::ListEntryUpdated),
    ("list-entry.deleted", EventType::ListEntryDeleted),
    ("note.created", EventType::NoteCreated),
    ("note.updated", EventType::NoteUpdated),
    ("note.deleted", EventType::NoteDeleted),
    ("note-content.updated", EventType::NoteContentUpdated),
    ("task.created", EventType::TaskCreated),
    ("task.updated", EventType::TaskUpdated),
    ("task.deleted", EventType::TaskDeleted),
    ("comment.created", EventType::CommentCreated),
    ("comment.resolved", EventType::CommentResolved),
    ("comment.unresolved", EventType::CommentUnresolved),
    ("comment.deleted", EventType::CommentDeleted),
    ("list.created", EventType::ListCreated),
    ("list.updated", EventType::ListUpdated),
    ("list.deleted", EventType::ListDeleted),
    (
        "object-attribute.created",
        EventType::ObjectAttributeCreated,
    ),
    (
        "object-attribute.updated",
        EventType::ObjectAttributeUpdated,
    ),
    ("list-attribute.created", EventType::ListAttributeCreated),
    ("list-attribute.updated", EventType::ListAttributeUpdated),
    (
        "workspace-member.created",
        EventType::WorkspaceMemberCreated,
    ),
    ("call-recording.created", EventType::CallRecordingCreated),
];

impl EventType {
    /// Parses a wire name; never fails, unknown names become [`EventType::Unknown`].
    pub fn parse(name: &str) -> Self {
        KNOWN
            .iter()
            .find(|(wire, _)| *wire == name)
            .map(|(_, kind)| kind.clone())
            .unwrap_or_else(|| Self::Unknown(name.to_owned()))
    }

    /// The name Attio uses on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Unknown(name) => name,
            known => KNOWN
                .iter()
                .find(|(_, kind)| kind == known)
                .map(|(wire, _)| *wire)
                .unwrap_or("unknown"),
        }
    }

    /// Every type this build knows, for documentation and tests.
    pub fn known() -> impl Iterator<Item = EventType> {
        KNOWN.iter().map(|(_, kind)| kind.clone())
    }

    pub fn is_known(&self) -> bool {
        !matches!(self, Self::Unknown(_))
    }

    /// The queue this type belongs to by name: `record.*` → records, `list-entry.*` → list
    /// entries, `note.*` and `note-content.*` → notes, `task.*` → tasks, everything else → other.
    ///
    /// Attribute events go where their schema is used: `object-attribute.*` with the records
    /// (object definitions) and `list-attribute.*` with the list entries, so a consumer that
    /// caches those definitions sees the change and drops them (`relay_sync::SchemaAware`).
    /// Only `created` and `updated` exist (Attio documents no attribute deletion event).
    pub fn family(&self) -> EventFamily {
        let name = self.as_str();
        let prefix = name.split_once('.').map_or(name, |(prefix, _)| prefix);
        match prefix {
            "record" | "object-attribute" => EventFamily::Records,
            "list-entry" | "list-attribute" => EventFamily::ListEntries,
            "note" | "note-content" => EventFamily::Notes,
            "task" => EventFamily::Tasks,
            _ => EventFamily::Other,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Self::parse(&name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_name_round_trips() {
        for kind in EventType::known() {
            assert_eq!(EventType::parse(kind.as_str()), kind);
        }
        assert_eq!(EventType::known().count(), KNOWN.len());
    }

    #[test]
    fn unknown_names_are_kept_verbatim() {
        let kind = EventType::parse("deal-room.opened");
        assert_eq!(kind, EventType::Unknown("deal-room.opened".into()));
        assert_eq!(kind.as_str(), "deal-room.opened");
        assert_eq!(kind.family(), EventFamily::Other);
    }

    #[test]
    fn there_is_no_task_completed_event() {
        assert!(!EventType::parse("task.completed").is_known());
    }

    #[test]
    fn families_follow_the_prefix() {
        use EventFamily::*;
        let cases = [
            ("record.merged", Records),
            ("list-entry.updated", ListEntries),
            ("note-content.updated", Notes),
            ("note.deleted", Notes),
            ("task.updated", Tasks),
            ("comment.created", Other),
            ("list.created", Other),
            ("object-attribute.updated", Records),
            ("object-attribute.created", Records),
            ("list-attribute.created", ListEntries),
            ("list-attribute.updated", ListEntries),
            ("workspace-member.created", Other),
            ("record", Records),
            ("", Other),
        ];
        for (name, family) in cases {
            assert_eq!(EventType::parse(name).family(), family, "{name}");
        }
    }
}
