//! Owners: Attio record owners, task assignees and note authors (workspace members) become
//! HubSpot's `hubspot_owner_id`, matched by email — the one thing an Attio workspace member and
//! a HubSpot owner (a portal user) share. See
//! <https://docs.attio.com/api-reference/workspace-members/get-a-workspace-member> (the
//! member's `email_address`) and
//! <https://developers.hubspot.com/docs/api-reference/crm-crm-owners-v3/guide> (the owner `id`
//! to assign).
//!
//! Both lookups are cached in the container ([`OwnerResolver`]) for a TTL, negative answers
//! included: a busy sync would otherwise spend two extra requests per record on answers that
//! change about as often as someone joins the team. A member with no HubSpot owner leaves the
//! property out and is logged once per TTL; a failed lookup (Attio or HubSpot unavailable, a
//! token without the `user_management:read` or `crm.objects.owners.read` scope) is logged and
//! leaves the property out too, uncached, so the next sync tries again. An owner is never
//! worth failing the sync of the record, task or note it belongs to.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use relay_attio::{AttioApi, AttioError, ValueMap};
use relay_crm::{CrmObject, CrmSink, Properties};

use crate::context::SyncContext;
use crate::field_mapping::{FieldMappingError, OwnerIds};
use crate::record_source::RecordValues;

/// The CRM property owners are written to.
pub const OWNER_PROPERTY: &str = "hubspot_owner_id";

/// How long a member's email and an email's owner are trusted: someone added to HubSpot (or
/// given a new email) is matched within this long, per container.
pub const DEFAULT_OWNER_TTL: Duration = Duration::from_secs(15 * 60);

/// An answer and when it was fetched.
#[derive(Debug, Clone)]
struct Cached<T> {
    at: Instant,
    value: T,
}

/// A map of answers that expire after a TTL measured on a clock the caller passes in.
#[derive(Debug)]
struct TtlMap<T> {
    entries: Mutex<HashMap<String, Cached<T>>>,
}

impl<T: Clone> TtlMap<T> {
    fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Cached<T>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The answer for `key` when it is younger than `ttl` at `now`.
    fn get(&self, key: &str, now: Instant, ttl: Duration) -> Option<T> {
        self.lock()
            .get(key)
            .filter(|c| now.saturating_duration_since(c.at) < ttl)
            .map(|c| c.value.clone())
    }

    fn put(&self, key: &str, value: T, now: Instant) {
        self.lock()
            .insert(key.to_owned(), Cached { at: now, value });
    }
}

/// Workspace member id → CRM owner id, through the member's email, cached per container.
#[derive(Debug)]
pub struct OwnerResolver {
    ttl: Duration,
    /// Member id → its email (`None`: Attio does not know the member, or it has no email).
    emails: TtlMap<Option<String>>,
    /// Lower-case email → owner id (`None`: the CRM has no owner with that email).
    owners: TtlMap<Option<String>>,
}

impl Default for OwnerResolver {
    fn default() -> Self {
        Self::new(DEFAULT_OWNER_TTL)
    }
}

impl OwnerResolver {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            emails: TtlMap::new(),
            owners: TtlMap::new(),
        }
    }

    /// The CRM owner id of workspace member `member` at `now`; `None` when there is none or a
    /// lookup failed (see the module docs). Never an error.
    pub async fn resolve<A: AttioApi, S: CrmSink>(
        &self,
        attio: &A,
        crm: &S,
        member: &str,
        now: Instant,
    ) -> Option<String> {
        let email = match self.emails.get(member, now, self.ttl) {
            Some(email) => email,
            None => match attio.workspace_member(member).await {
                Ok(found) => {
                    let email = Some(found.email_address.trim().to_ascii_lowercase())
                        .filter(|e| !e.is_empty());
                    if email.is_none() {
                        tracing::info!(member, "workspace member has no email; no owner");
                    }
                    self.emails.put(member, email.clone(), now);
                    email
                }
                Err(AttioError::NotFound { .. }) => {
                    tracing::info!(
                        member,
                        "Attio does not know this workspace member; no owner"
                    );
                    self.emails.put(member, None, now);
                    None
                }
                Err(err) => {
                    tracing::warn!(member, error = %err, "workspace member lookup failed; owner left out");
                    return None;
                }
            },
        }?;
        if let Some(owner) = self.owners.get(&email, now, self.ttl) {
            return owner;
        }
        match crm.owner_by_email(&email).await {
            Ok(owner) => {
                let owner = owner.map(|id| id.0);
                if owner.is_none() {
                    // Logged once per TTL: the member id, never the email (personal data).
                    tracing::info!(
                        member,
                        "no HubSpot owner has this workspace member's email; {OWNER_PROPERTY} left out"
                    );
                }
                self.owners.put(&email, owner.clone(), now);
                owner
            }
            Err(err) => {
                tracing::warn!(member, error = %err, "HubSpot owner lookup failed; owner left out");
                None
            }
        }
    }
}

impl<S: CrmSink, M, A: AttioApi> SyncContext<S, M, A> {
    /// The CRM owner id of a workspace member, through the context's cache.
    pub(crate) async fn owner_id(&self, member: &str) -> Option<String> {
        self.owners
            .resolve(&self.attio, &self.crm, member, Instant::now())
            .await
    }

    /// Maps one record with the owners its mapping names resolved first: the async step
    /// before the synchronous field mapping.
    pub(crate) async fn map_record(
        &self,
        slug: &str,
        record_id: &str,
        values: &ValueMap,
    ) -> Result<Option<(CrmObject, Properties)>, FieldMappingError> {
        let source = RecordValues(values);
        let mut owners = OwnerIds::new();
        for member in self.fields.owner_actors(slug, &source) {
            if let Some(owner) = self.owner_id(&member).await {
                owners.insert(member, owner);
            }
        }
        self.fields
            .map_record_with(slug, record_id, &source, &owners)
    }
}

#[cfg(test)]
mod tests {
    use relay_attio::{AttioCall, MemoryAttio, WorkspaceMember};
    use relay_crm::{CrmError, CrmOp, MemoryCrm};

    use super::*;

    const SUSAN: &str = "50cf242c-7fa3-4cad-87d0-75b1af71c57b";
    const BILL: &str = "6a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";

    fn member(id: &str, email: &str) -> WorkspaceMember {
        serde_json::from_value(serde_json::json!({
            "id": {"workspace_id": "ws", "workspace_member_id": id},
            "first_name": "S", "last_name": "K", "avatar_url": null,
            "email_address": email, "created_at": "2022-11-21T13:22:49.061281000Z",
            "access_level": "member"
        }))
        .expect("member")
    }

    fn member_calls(attio: &MemoryAttio) -> usize {
        let calls = attio.calls().into_iter();
        calls.filter(|c| matches!(c, AttioCall::Member(_))).count()
    }

    #[tokio::test]
    async fn a_member_resolves_by_email_once_per_ttl() {
        let (attio, crm) = (MemoryAttio::new(), MemoryCrm::new());
        attio.put_member(member(SUSAN, "Susan.Kare@Example.com"));
        crm.add_owner("susan.kare@example.com", "41629779");
        let owners = OwnerResolver::new(Duration::from_secs(60));
        let t0 = Instant::now();

        let first = owners.resolve(&attio, &crm, SUSAN, t0).await;
        assert_eq!(first.as_deref(), Some("41629779"));
        // Cached: neither Attio nor HubSpot is asked again within the TTL.
        let again = owners
            .resolve(&attio, &crm, SUSAN, t0 + Duration::from_secs(59))
            .await;
        assert_eq!(again.as_deref(), Some("41629779"));
        assert_eq!((member_calls(&attio), crm.owner_lookups().len()), (1, 1));
        // Expired: both are read again.
        owners
            .resolve(&attio, &crm, SUSAN, t0 + Duration::from_secs(61))
            .await;
        assert_eq!((member_calls(&attio), crm.owner_lookups().len()), (2, 2));
        assert_eq!(crm.owner_lookups()[0], "susan.kare@example.com");
    }

    #[tokio::test]
    async fn no_owner_and_unknown_members_are_cached_as_none() {
        let (attio, crm) = (MemoryAttio::new(), MemoryCrm::new());
        attio.put_member(member(BILL, "bill@example.com"));
        let owners = OwnerResolver::new(Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(owners.resolve(&attio, &crm, BILL, t0).await, None);
            assert_eq!(owners.resolve(&attio, &crm, SUSAN, t0).await, None);
        }
        // One member read each (Susan is unknown: 404), one owner lookup for Bill's email.
        assert_eq!((member_calls(&attio), crm.owner_lookups().len()), (2, 1));
        // An owner added in HubSpot is found once the negative answer expires.
        crm.add_owner("bill@example.com", "7");
        let later = t0 + Duration::from_secs(61);
        assert_eq!(
            owners.resolve(&attio, &crm, BILL, later).await.as_deref(),
            Some("7")
        );
    }

    #[tokio::test]
    async fn failed_lookups_leave_the_owner_out_and_are_not_cached() {
        let (attio, crm) = (MemoryAttio::new(), MemoryCrm::new());
        attio.put_member(member(SUSAN, "susan@example.com"));
        crm.add_owner("susan@example.com", "41");
        let owners = OwnerResolver::new(Duration::from_secs(60));
        let t0 = Instant::now();
        attio.fail_next(
            AttioCall::Member(SUSAN.into()),
            AttioError::Api {
                status: 503,
                code: None,
                message: "down".into(),
                path: "/workspace_members".into(),
            },
        );
        assert_eq!(owners.resolve(&attio, &crm, SUSAN, t0).await, None);
        crm.fail_next(
            CrmOp::Owner,
            CrmError::Rejected {
                operation: "read owners".into(),
                status: 403,
                category: Some("MISSING_SCOPES".into()),
                message: "missing crm.objects.owners.read".into(),
            },
        );
        assert_eq!(owners.resolve(&attio, &crm, SUSAN, t0).await, None);
        // Neither failure was remembered: the next sync finds the owner.
        assert_eq!(
            owners.resolve(&attio, &crm, SUSAN, t0).await.as_deref(),
            Some("41")
        );
        // The email was cached after the second read; HubSpot was asked twice.
        assert_eq!((member_calls(&attio), crm.owner_lookups().len()), (2, 2));
    }
}
