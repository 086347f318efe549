//! Notes and tasks: HubSpot has no idempotent create for them, so the first event creates
//! (under a reservation) and records the HubSpot id; every later event updates that id.

use std::collections::BTreeMap;

use relay_crm::{Association, CrmError, CrmObject, CrmSink, Properties};
use relay_events::Event;
use relay_mappings::{IdMappings, Reservation};

use crate::context::{CREATE_LEASE, StepError, SyncContext, now};
use crate::{Disposition, InboundEvent, MessageOutcome};

/// Everything one batch says about one note or task.
#[derive(Debug, Default)]
pub(crate) struct EngagementWork {
    pub message_ids: Vec<String>,
    pub deleted: bool,
}

/// Groups a batch by the id `id_of` reads from each event, in first-seen order. Events it
/// cannot read are dead-lettered.
pub(crate) fn coalesce(
    events: &[InboundEvent],
    outcomes: &mut Vec<MessageOutcome>,
    id_of: impl Fn(&Event) -> Option<String>,
    is_delete: impl Fn(&Event) -> bool,
) -> Vec<(String, EngagementWork)> {
    let mut order = Vec::new();
    let mut work: BTreeMap<String, EngagementWork> = BTreeMap::new();
    for inbound in events {
        let event = inbound.event.parse_event().ok();
        let Some((event, id)) = event.and_then(|e| id_of(&e).map(|id| (e, id))) else {
            outcomes.push(MessageOutcome {
                message_id: inbound.message_id.clone(),
                disposition: Disposition::dead_letter(format!(
                    "{} does not carry the id this consumer needs",
                    inbound.event.event_type
                )),
            });
            continue;
        };
        if !work.contains_key(&id) {
            order.push(id.clone());
        }
        let entry = work.entry(id).or_default();
        entry.message_ids.push(inbound.message_id.clone());
        entry.deleted |= is_delete(&event);
    }
    order
        .into_iter()
        .filter_map(|id| work.remove(&id).map(|w| (id, w)))
        .collect()
}

pub(crate) fn settle(
    outcomes: &mut Vec<MessageOutcome>,
    work: &EngagementWork,
    disposition: Disposition,
) {
    outcomes.extend(work.message_ids.iter().map(|id| MessageOutcome {
        message_id: id.clone(),
        disposition: disposition.clone(),
    }));
}

impl<S: CrmSink, M: IdMappings> SyncContext<S, M> {
    /// Creates the CRM copy once (with associations from `associations`), or updates it.
    pub(crate) async fn write_engagement<F, Fut>(
        &self,
        object: CrmObject,
        attio_id: &str,
        properties: &Properties,
        associations: F,
    ) -> Result<(), StepError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<Association>, StepError>>,
    {
        match self
            .mappings
            .reserve(object, attio_id, now(), CREATE_LEASE)
            .await?
        {
            Reservation::Mapped(id) => match self.crm.update(object, &id, properties).await {
                Ok(()) => Ok(()),
                Err(CrmError::NotFound { .. }) => {
                    // Deleted in HubSpot: forget it, and the retry creates it again.
                    self.mappings.remove(object, attio_id).await?;
                    Err(StepError(Disposition::retry(format!(
                        "HubSpot {object} {id} was deleted; recreating"
                    ))))
                }
                Err(err) => Err(err.into()),
            },
            Reservation::Reserved => {
                let created = async {
                    let associations = associations().await?;
                    Ok::<_, StepError>(self.crm.create(object, properties, &associations).await?)
                }
                .await;
                match created {
                    Ok(id) => {
                        self.mappings.put(object, attio_id, &id).await?;
                        tracing::info!(%object, attio_id, crm_id = %id, "created in CRM");
                        Ok(())
                    }
                    Err(err) => {
                        // Release the reservation so the retry may create.
                        self.mappings.remove(object, attio_id).await?;
                        Err(err)
                    }
                }
            }
            Reservation::Busy => Err(StepError(Disposition::retry(format!(
                "{object} {attio_id} is being created by another invocation"
            )))),
        }
    }

    /// Archives the CRM copy of a deleted note or task, if there is one.
    pub(crate) async fn archive_engagement(
        &self,
        object: CrmObject,
        attio_id: &str,
    ) -> Result<(), StepError> {
        if let Some(id) = self.mappings.get(object, attio_id).await? {
            self.crm.archive(object, &id).await?;
            self.mappings.remove(object, attio_id).await?;
        }
        Ok(())
    }

    /// The CRM associations for records a note or task belongs to; unmapped objects are skipped.
    pub(crate) async fn associations_for(
        &self,
        records: &[(String, String)],
    ) -> Result<Vec<Association>, StepError> {
        let mut out = Vec::new();
        for (object, record_id) in records {
            if let Some((to, id)) = self.ensure_record(object, record_id).await? {
                out.push(Association { to, id });
            }
        }
        Ok(out)
    }
}
