//! The Attio REST API as the consumers need it: typed records, list entries, notes, tasks and
//! schema, fetched within a time budget that fits inside a Lambda invocation.
//!
//! Events carry ids only, so every consumer fetches current state from Attio. That fetch runs
//! inside a Lambda with a hard timeout and against Attio's limits (about 100 reads/s and
//! 25 writes/s per workspace, shared by every container). The policy follows from that:
//!
//! * **A budget per logical call.** [`AttioConfig::call_budget`] (20 s by default) bounds one
//!   method call *including* its retries and waits, so a call never outlives the invocation that
//!   made it. Each attempt is also bounded by [`AttioConfig::request_timeout`].
//! * **429 is waited out only when it fits.** Attio's `Retry-After` is an HTTP date (integer
//!   seconds are accepted too). If the wait fits in what is left of the budget the call sleeps
//!   and retries; otherwise it returns [`AttioError::RateLimited`] at once, with the wait, so
//!   the consumer can hand the message back to SQS instead of burning Lambda time asleep.
//! * **5xx, 408, timeouts and connection errors are retried** with exponential backoff and full
//!   jitter (200 ms base, 5 s cap by default), at most [`AttioConfig::max_attempts`] attempts,
//!   never past the budget: then [`AttioError::BudgetExhausted`] wraps the last failure.
//!   Other 4xx are never retried: the same request would fail the same way. The exception is
//!   Attio's 409 `concurrent_write_conflict`, which Attio documents as "please try again".
//! * **A circuit breaker per object** (or `notes`, `tasks`, list): after 5 consecutive calls
//!   that failed on transient errors (each call after its own retries), calls for it fail fast
//!   with [`AttioError::CircuitOpen`] for 30 s, then one trial call is let through. A batch of
//!   messages for a broken object then costs a few budgets, not one each, and Attio gets room
//!   to recover; one broken record alone cannot open its object's circuit.
//! * **A local pacer** spaces this container's reads and writes under Attio's published rates,
//!   so a backfill loop does not provoke the 429s it would then have to wait out.
//! * **A shared budget** ([`AttioConfig::read_budget`], [`AttioConfig::write_budget`];
//!   `relay_ratelimit`) replaces the pacer where several containers call at once: every
//!   container draws from one bucket per workspace limit, and a 429 halves that shared rate
//!   for all of them, which then climbs back. No token within the call's budget is
//!   [`AttioError::RateLimited`] with the wait, like a 429 that does not fit.
//!
//! [`AttioError::is_permanent`] is how consumers choose between retrying a message and
//! dead-lettering it. The breaker and the pacer live behind an `Arc`, shared by every clone of
//! an [`AttioClient`]; [`SchemaCache`] turns the object ids in events into slugs with one request
//! per object per TTL.
//!
//! * **Batched record reads.** [`AttioApi::get_records`] reads up to 500 records of one object
//!   in one query (`record_id` `$in` the ids), so a batch of events costs one read per object,
//!   not one per record; notes and tasks have no such filter and stay one `GET` each
//!   (`batch_reads.rs` has the documented facts and what an absent record means).
//!
//! The consumers reach Attio through the [`AttioApi`] port (the reads they make): the
//! production adapter is [`CachedAttio`] (client plus schema cache); [`MemoryAttio`] holds
//! everything in maps and can be told to fail a call, for handler tests without a server.

mod batch_reads;
mod breaker;
mod client;
mod config;
mod error;
mod members;
mod memory;
mod model;
mod pacer;
mod pages;
mod port;
mod schema;
mod webhooks;
mod writer;
mod writes;

pub use batch_reads::{MAX_IDS_PER_QUERY, record_id_filter};
pub use client::AttioClient;
pub use config::{AttioConfig, DEFAULT_BASE_URL, RateLimit};
pub use error::{AttioError, MERGE_IN_PROGRESS_CODE, NOT_FOUND_CODE};
pub use members::{WORKSPACE_MEMBER, WorkspaceMember, WorkspaceMemberId};
pub use memory::{AttioCall, MemoryAttio, MsClock};
pub use model::{
    Actor, ActorReference, Assignee, Attribute, AttributeId, AttributeValue, Currency, Domain,
    EmailAddress, EntryId, Interaction, LinkedRecord, ListEntry, Location, Note, NoteId, NoteTag,
    ObjectId, ObjectSchema, PersonalName, PhoneNumber, Record, RecordId, RecordReference,
    SelectOption, Status, Task, TaskId, Value, ValueMap, current_values,
};
pub use pages::{
    MAX_PAGE_SIZE, RecordPages, RecordQuery, WEBHOOK_PAGE_MAX, WEBHOOK_PAGE_MIN, WebhookPages,
};
pub use port::{AttioApi, CachedAttio};
pub use relay_credentials::{Credential, MemoryTokenStore, Token};
pub use schema::{DEFAULT_SCHEMA_TTL, SchemaCache};
pub use webhooks::{Subscription, Webhook, WebhookId, WebhookStatus};
pub use writes::{AttioValues, AttioWriter};
