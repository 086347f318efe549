//! note.* and note-content.updated events → HubSpot notes associated with the parent record.

use relay_attio::{AttioApi, AttioError, CachedAttio, Note};
use relay_crm::{CrmObject, Properties};
use relay_events::{Event, EventType, Subject};

use crate::batch::RecordRef;
use crate::engagements::{Engagement, EngagementHandler};

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

    /// The title, when there is one, heads the body.
    fn properties(note: &Note) -> Properties {
        let body = match note.title.trim() {
            "" => note.content_plaintext.clone(),
            title => format!("{title}\n\n{}", note.content_plaintext),
        };
        [
            ("hs_note_body".to_owned(), body),
            ("hs_timestamp".to_owned(), note.created_at.clone()),
        ]
        .into()
    }

    fn linked_records(note: &Note) -> Vec<RecordRef> {
        vec![RecordRef::new(&note.parent_object, &note.parent_record_id)]
    }
}
