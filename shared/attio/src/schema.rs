//! Object and attribute definitions, cached: events name objects and attributes by id, while
//! API paths and field mappings use slugs.
//!
//! One Attio request per object per TTL: concurrent lookups of the same object wait for the
//! one request in flight instead of each making their own (lookups of other objects are not
//! held up).
//!
//! The TTL is only the fallback. Attio announces attribute changes (`object-attribute.*`,
//! `list-attribute.*` webhooks): the consumer that receives one calls
//! [`SchemaCache::invalidate`] for that object, and bumps a generation counter that every other
//! container reads once per batch, dropping its whole cache with
//! [`SchemaCache::invalidate_all`] when it moved (`relay_sync::SchemaAware`). A container that
//! cannot read the counter keeps what it has until the TTL ends.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::{AttioClient, AttioError, Attribute, ObjectSchema};

/// How long a definition is trusted without an invalidation.
pub const DEFAULT_SCHEMA_TTL: Duration = Duration::from_secs(10 * 60);

/// Cached object schemas and attribute lists. Cheap to clone; clones share the cache.
#[derive(Debug, Clone)]
pub struct SchemaCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: AttioClient,
    ttl: Duration,
    /// By the object id or slug the caller asked with.
    objects: Slots<ObjectSchema>,
    attributes: Slots<Vec<Attribute>>,
}

type Slots<T> = Mutex<HashMap<String, Arc<OnceCell<Fetched<T>>>>>;

#[derive(Debug)]
struct Fetched<T> {
    at: Instant,
    value: Arc<T>,
}

impl SchemaCache {
    pub fn new(client: AttioClient) -> Self {
        Self::with_ttl(client, DEFAULT_SCHEMA_TTL)
    }

    pub fn with_ttl(client: AttioClient, ttl: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                ttl,
                objects: Mutex::default(),
                attributes: Mutex::default(),
            }),
        }
    }

    /// The slug to use for `object` in API paths. A slug (anything that is not a UUID) is
    /// returned as is, without a request; an id is looked up.
    pub async fn slug_for(&self, object: &str) -> Result<String, AttioError> {
        if !looks_like_uuid(object) {
            return Ok(object.to_owned());
        }
        Ok(self.object(object).await?.slug().to_owned())
    }

    /// The object's definition, by id or slug.
    pub async fn object(&self, object: &str) -> Result<Arc<ObjectSchema>, AttioError> {
        let client = &self.inner.client;
        lookup(&self.inner.objects, object, self.inner.ttl, || {
            client.get_object(object)
        })
        .await
    }

    /// The object's attributes, by object id or slug, in Attio's UI order.
    pub async fn attributes(&self, object: &str) -> Result<Arc<Vec<Attribute>>, AttioError> {
        let client = &self.inner.client;
        lookup(&self.inner.attributes, object, self.inner.ttl, || {
            client.list_attributes(object)
        })
        .await
    }

    /// One attribute of the object, by attribute id or slug (`record.updated` events carry the
    /// id). `None` when the object has no such attribute.
    pub async fn attribute(
        &self,
        object: &str,
        attribute: &str,
    ) -> Result<Option<Attribute>, AttioError> {
        Ok(self
            .attributes(object)
            .await?
            .iter()
            .find(|a| a.id.attribute_id == attribute || a.api_slug == attribute)
            .cloned())
    }

    /// Forgets what is cached for `object` (id or slug): its definition and its attributes,
    /// whichever of its id or slug they were looked up by.
    pub fn invalidate(&self, object: &str) {
        let mut names = vec![object.to_owned()];
        {
            let mut objects = lock(&self.inner.objects);
            if let Some(schema) = objects.remove(object).as_deref().and_then(OnceCell::get) {
                names.push(schema.value.id.object_id.clone());
                names.extend(schema.value.api_slug.clone());
            }
            // The same object may also be cached under its other name.
            objects.retain(|_, slot| {
                slot.get().is_none_or(|f| {
                    let id = &f.value.id.object_id;
                    !names.contains(id)
                        && f.value.api_slug.as_ref().is_none_or(|s| !names.contains(s))
                })
            });
        }
        lock(&self.inner.attributes).retain(|key, slot| {
            !names.contains(key)
                && slot.get().is_none_or(|f| {
                    f.value
                        .first()
                        .is_none_or(|a| !names.contains(&a.id.object_id))
                })
        });
        tracing::debug!(object, "schema cache invalidated");
    }
}

impl SchemaCache {
    /// Forgets everything cached: another container saw Attio's schema change, and this one
    /// cannot tell which of its entries that touched. The next lookup of each object asks
    /// Attio again; lookups in flight finish but their answers are not kept.
    pub fn invalidate_all(&self) {
        lock(&self.inner.objects).clear();
        lock(&self.inner.attributes).clear();
        tracing::debug!("schema cache cleared");
    }
}

fn lock<T>(slots: &Slots<T>) -> MutexGuard<'_, HashMap<String, Arc<OnceCell<Fetched<T>>>>> {
    // The map holds plain values; a panic elsewhere cannot leave it half-updated.
    slots.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The cached value for `key`, fetching it when missing or older than `ttl`. Concurrent
/// lookups of one key share one fetch; a failed fetch is not cached.
async fn lookup<T, F, Fut>(
    slots: &Slots<T>,
    key: &str,
    ttl: Duration,
    fetch: F,
) -> Result<Arc<T>, AttioError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, AttioError>>,
{
    let slot = {
        let mut slots = lock(slots);
        match slots.get(key) {
            Some(slot) if slot.get().is_none_or(|f| f.at.elapsed() < ttl) => Arc::clone(slot),
            _ => {
                let slot = Arc::new(OnceCell::new());
                slots.insert(key.to_owned(), Arc::clone(&slot));
                slot
            }
        }
    };
    let fetched = slot
        .get_or_try_init(|| async {
            fetch().await.map(|value| Fetched {
                at: Instant::now(),
                value: Arc::new(value),
            })
        })
        .await?;
    Ok(Arc::clone(&fetched.value))
}

/// True for the 8-4-4-4-12 hex form Attio uses for ids.
pub(crate) fn looks_like_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_told_from_slugs() {
        assert!(looks_like_uuid("f436cad2-7090-4b86-8ae2-27260febbefe"));
        assert!(looks_like_uuid("F436CAD2-7090-4B86-8AE2-27260FEBBEFE"));
        assert!(!looks_like_uuid("people"));
        assert!(!looks_like_uuid("deal-pipeline-stage-x-y"));
        assert!(!looks_like_uuid("f436cad2-7090-4b86-8ae2-27260febbefeX"));
    }
}
