//! note.* and note-content.updated events → HubSpot notes associated with the parent record.

use std::sync::Arc;

use relay_attio::AttioError;
use relay_crm::{CrmObject, CrmSink, Properties};
use relay_events::{EventType, Subject};
use relay_mappings::IdMappings;

use crate::context::{StepError, SyncContext};
use crate::engagements::{coalesce, settle};
use crate::{BatchHandler, Disposition, InboundEvent, MessageOutcome};

/// The notes consumer.
#[derive(Debug)]
pub struct NotesHandler<S, M> {
    ctx: Arc<SyncContext<S, M>>,
}

impl<S, M> NotesHandler<S, M> {
    pub fn new(ctx: Arc<SyncContext<S, M>>) -> Self {
        Self { ctx }
    }
}

impl<S: CrmSink, M: IdMappings> NotesHandler<S, M> {
    async fn sync(&self, note_id: &str, deleted: bool) -> Result<(), StepError> {
        if deleted {
            return self.ctx.archive_engagement(CrmObject::Notes, note_id).await;
        }
        let note = match self.ctx.attio.get_note(note_id).await {
            Ok(note) => note,
            Err(AttioError::NotFound { .. }) => {
                return self.ctx.archive_engagement(CrmObject::Notes, note_id).await;
            }
            Err(err) => return Err(err.into()),
        };
        let body = match note.title.trim() {
            "" => note.content_plaintext.clone(),
            title => format!("{title}\n\n{}", note.content_plaintext),
        };
        let properties: Properties = [
            ("hs_note_body".to_owned(), body),
            ("hs_timestamp".to_owned(), note.created_at.clone()),
        ]
        .into();
        let parent = vec![(note.parent_object.clone(), note.parent_record_id.clone())];
        self.ctx
            .write_engagement(CrmObject::Notes, note_id, &properties, || {
                self.ctx.associations_for(&parent)
            })
            .await
    }
}

impl<S: CrmSink, M: IdMappings> BatchHandler for NotesHandler<S, M> {
    async fn handle(&self, events: &[InboundEvent]) -> Vec<MessageOutcome> {
        let mut outcomes = Vec::new();
        let groups = coalesce(
            events,
            &mut outcomes,
            |e| match &e.subject {
                Subject::Note { note_id, .. } => Some(note_id.clone()),
                _ => None,
            },
            |e| e.event_type == EventType::NoteDeleted,
        );
        for (note_id, work) in groups {
            let disposition = match self.sync(&note_id, work.deleted).await {
                Ok(()) => Disposition::Done,
                Err(StepError(d)) => d,
            };
            settle(&mut outcomes, &work, disposition);
        }
        outcomes
    }
}
