//! The schema generation: one counter every consumer container can read, so a change of Attio's
//! schema seen by one container reaches the others.
//!
//! Each container caches object definitions (`relay_attio::SchemaCache`, 10 min TTL). An
//! `object-attribute.*` or `list-attribute.*` event reaches one container only (SQS gives a
//! message to one consumer), which can drop its own cache but not the others'. So it also bumps
//! this counter — an atomic add in the mappings table, the store every consumer already
//! reaches — and every container reads it once per batch and drops its cache when it moved
//! (`relay_sync::SchemaAware`). The TTL stays as the fallback when the store cannot be read.
//!
//! Adapters: the three mapping stores, each keeping the counter beside its mappings (see
//! [`SCHEMA_GENERATION_KEY`]).

use std::future::Future;

use crate::MappingError;

/// The item (DynamoDB) that holds the counter, in the mappings table. Mapping keys are
/// `"{crm object}#{attio id}"`; this key has no `#`, so it never names a mapping.
pub const SCHEMA_GENERATION_KEY: &str = "schema-generation";

/// The counter's attribute on that item (a number).
pub const GENERATION_ATTRIBUTE: &str = "generation";

/// A counter that only goes up; 0 until the first bump.
pub trait SchemaGenerations: Send + Sync {
    /// The current generation.
    fn schema_generation(&self) -> impl Future<Output = Result<u64, MappingError>> + Send;

    /// Adds one, atomically (concurrent bumps are never lost), and returns the new value.
    fn bump_schema_generation(&self) -> impl Future<Output = Result<u64, MappingError>> + Send;
}
