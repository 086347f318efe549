//! The HubSpot adapter against wiremock stand-ins that answer as HubSpot's docs say: one test
//! binary, a module per concern.
//!
//! * [`protocol`]: batch upserts and their per-input results, errors and their classes, 429s,
//!   reads, merges, associations.
//! * [`creates`]: a create is sent once; an unknown outcome is never replayed; the marker search.
//! * [`source`]: the way back's reads (`CrmSource`): batch read with history, listing pages.
//! * [`token_rotation`]: a 401 re-reads the token once.

mod creates;
mod protocol;
mod source;
mod token_rotation;
