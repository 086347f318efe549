//! The batch skeleton every handler shares: group a batch's events by what they are about, do
//! the work once per group, and give each message of the group the group's outcome.
//!
//! Grouping is what makes ten updates of one record cost one Attio fetch; a message whose event
//! names nothing this handler syncs is dead-lettered while grouping.

use std::collections::BTreeMap;

use relay_events::{Event, RecordPointer};

use crate::{BatchHandler, Disposition, InboundEvent, MessageOutcome};

/// A record by object (id or slug) and record id: what records are grouped by, and what a list
/// entry, note or task points at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordRef {
    pub object: String,
    pub record_id: String,
}

impl RecordRef {
    pub fn new(object: impl Into<String>, record_id: impl Into<String>) -> Self {
        Self {
            object: object.into(),
            record_id: record_id.into(),
        }
    }
}

impl From<&RecordPointer> for RecordRef {
    fn from(p: &RecordPointer) -> Self {
        Self::new(&p.object_id, &p.record_id)
    }
}

/// Everything one batch says about one key: the messages that named it, and what they said
/// folded into `work`.
#[derive(Debug)]
pub(crate) struct Group<K, W> {
    pub key: K,
    pub message_ids: Vec<String>,
    pub work: W,
}

/// The outcomes of a batch, built up as groups settle.
#[derive(Debug, Default)]
pub(crate) struct Outcomes(Vec<MessageOutcome>);

impl Outcomes {
    pub fn dead_letter(&mut self, message_id: &str, reason: String) {
        self.0.push(MessageOutcome {
            message_id: message_id.to_owned(),
            disposition: Disposition::DeadLetter { reason },
        });
    }

    /// Every message of `group` ends as `disposition`.
    pub fn settle<K, W>(&mut self, group: &Group<K, W>, disposition: &Disposition) {
        self.0
            .extend(group.message_ids.iter().map(|id| MessageOutcome {
                message_id: id.clone(),
                disposition: disposition.clone(),
            }));
    }

    pub fn into_vec(self) -> Vec<MessageOutcome> {
        self.0
    }
}

/// Groups a batch by the key `key_of` reads from each event, in first-seen order, folding each
/// event into its group's work with `fold`. Events without a key are dead-lettered at once,
/// with `handler`'s reason; the outcomes returned hold them, and the groups' outcomes go there.
pub(crate) fn coalesce<K: Ord + Clone, W: Default>(
    handler: &impl BatchHandler,
    events: &[InboundEvent],
    key_of: impl Fn(&Event) -> Option<K>,
    fold: impl Fn(&mut W, &Event),
) -> (Vec<Group<K, W>>, Outcomes) {
    let mut outcomes = Outcomes::default();
    let mut groups: Vec<Group<K, W>> = Vec::new();
    let mut index: BTreeMap<K, usize> = BTreeMap::new();
    for inbound in events {
        let Some(key) = key_of(&inbound.event) else {
            let reason = handler.unreadable(&inbound.event.event_type);
            outcomes.dead_letter(&inbound.message_id, reason);
            continue;
        };
        let at = *index.entry(key.clone()).or_insert_with(|| {
            groups.push(Group {
                key,
                message_ids: Vec::new(),
                work: W::default(),
            });
            groups.len() - 1
        });
        let group = &mut groups[at];
        group.message_ids.push(inbound.message_id.clone());
        fold(&mut group.work, &inbound.event);
    }
    (groups, outcomes)
}
