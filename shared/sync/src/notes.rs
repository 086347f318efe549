//! note.* and note-content.updated events → HubSpot notes associated with the parent record.

use relay_attio::{AttioApi, AttioError, CachedAttio, Note, WORKSPACE_MEMBER};
use relay_crm::{CrmObject, Properties};
use relay_events::{Event, EventType, Subject};

use crate::batch::RecordRef;
use crate::engagements::{Engagement, EngagementHandler, timestamp};
use crate::formats;

/// Notes, for [`EngagementHandler`].
#[derive(Debug)]
pub struct Notes;

/// The notes consumer.
pub type NotesHandler<S, M, A = CachedAttio> = EngagementHandler<Notes, S, M, A>;

impl Engagement for Notes {
    const OBJECT: CrmObject = CrmObject::Notes;
    type Source = Note;

    fn id_of(event: &Event) -> Option<&str> {
        match &event.subject {
            Subject::Note { note_id, .. } => Some(note_id),
            _ => None,
        }
    }

    fn is_delete(event_type: &EventType) -> bool {
        *event_type == EventType::NoteDeleted
    }

    async fn fetch<A: AttioApi>(attio: &A, id: &str) -> Result<Note, AttioError> {
        attio.get_note(id).await
    }

    /// The body as HTML (HubSpot renders `hs_note_body` as HTML): the title in bold, then the
    /// plaintext with its line breaks; cut to HubSpot's limit with a marker. The time as epoch
    /// milliseconds: Attio's nine fractional digits are not HubSpot's ISO format.
    fn properties(note: &Note) -> Properties {
        let body = formats::html_body(
            &note.title,
            &note.content_plaintext,
            formats::HUBSPOT_BODY_LIMIT,
            "full note in Attio",
        );
        [
            ("hs_note_body".to_owned(), body),
            ("hs_timestamp".to_owned(), timestamp(&note.created_at)),
        ]
        .into()
    }

    fn linked_records(note: &Note) -> Vec<RecordRef> {
        vec![RecordRef::new(&note.parent_object, &note.parent_record_id)]
    }

    /// The author, when a workspace member wrote it (`created_by_actor`): notes have no owner
    /// in Attio, and HubSpot shows a note's owner as who wrote it.
    fn owner_member(note: &Note) -> Option<&str> {
        note.created_by_actor
            .as_ref()
            .filter(|a| a.kind.as_deref() == Some(WORKSPACE_MEMBER))
            .and_then(|a| a.id.as_deref())
    }
}
