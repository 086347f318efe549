//! API tokens that follow their store.
//!
//! A consumer container lives for hours. A token read once at cold start never sees a rotation:
//! after the Attio or HubSpot token is replaced in Secrets Manager (and the old one revoked —
//! HubSpot's "Rotate and expire this token now",
//! <https://developers.hubspot.com/docs/apps/legacy-apps/private-apps/overview>), warm
//! containers would keep sending the old one until they are recycled. A [`Credential`] is the
//! token the API clients send: read from its [`TokenStore`] (the port; the Secrets Manager
//! adapter is in `relay-consumer`, [`MemoryTokenStore`] is for tests), kept for a TTL, and
//! re-read at once when an API answers 401 ([`Credential::after_rejection`]) — once per call,
//! the client then retries that call with the new token, never in a loop.
//!
//! The token never appears in `Debug` output or logs; the store is named by what it is (the
//! secret's ARN), never by its value.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

mod memory;
pub use memory::MemoryTokenStore;

/// How long a token is kept before it is read from its store again, unless set otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// When a re-read fails, the old token is kept and the store asked again after this long (or
/// the TTL, if shorter): a store that is down is not asked on every call.
const RETRY_FAILED_READ: Duration = Duration::from_secs(30);

/// After a refused token was re-read and found unchanged, further refusals of it within this
/// window do not read the store again: a batch of calls refused at once costs one read.
const RECHECK_REFUSED: Duration = Duration::from_secs(5);

/// A secret token. `Debug` never shows it; [`Token::expose`] is for the `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Arc<str>);

impl Token {
    /// A token from its text, trimmed; refused when empty or not sendable in a header (only
    /// visible ASCII: a pasted line break would otherwise fail every request).
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(StoreError::Empty);
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(StoreError::Invalid);
        }
        Ok(Self(text.into()))
    }

    /// The token itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Why a token could not be read. Never carries the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the stored token is empty: store the token in it")]
    Empty,
    #[error("the stored token has characters not allowed in an HTTP header")]
    Invalid,
    /// The store did not answer (throttled, unreachable, no permission): `transient` says
    /// whether asking again may help.
    #[error("reading the token failed: {message}")]
    Unavailable { message: String, transient: bool },
}

impl StoreError {
    /// True when a later read may succeed without anyone fixing anything.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable {
                transient: true,
                ..
            }
        )
    }
}

/// What [`TokenStore::read`] returns.
pub type ReadFuture<'a> = Pin<Box<dyn Future<Output = Result<Token, StoreError>> + Send + 'a>>;

/// Where a token is kept (the port): read it, again, whenever asked.
pub trait TokenStore: Send + Sync + 'static {
    fn read(&self) -> ReadFuture<'_>;

    /// What the store is, for logs (a secret's ARN) — never the token.
    fn describe(&self) -> String;
}

/// The token an API client sends. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct Credential {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None`: a fixed token (given inline for local runs), never re-read.
    store: Option<Box<dyn TokenStore>>,
    ttl: Duration,
    state: Mutex<State>,
    /// Held while the store is read, so concurrent callers wait for one read.
    reading: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct State {
    token: Token,
    /// When the cached token is read again.
    next_read: Instant,
    /// A token an API refused that the store still held when re-read, and when.
    refused: Option<(Token, Instant)>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.inner.store {
            Some(store) => store.describe(),
            None => "fixed".to_owned(),
        };
        f.debug_struct("Credential")
            .field("token", &"<redacted>")
            .field("source", &source)
            .field("ttl", &self.inner.ttl)
            .finish()
    }
}

impl Credential {
    /// A token that never changes (inline configuration, tests). Refusals are final.
    pub fn fixed(token: Token) -> Self {
        Self::build(None, token, Duration::MAX)
    }

    /// Reads the token from `store` now (a cold start without a token fails, as before), then
    /// again every `ttl` and whenever an API refuses it.
    pub async fn stored(store: impl TokenStore, ttl: Duration) -> Result<Self, StoreError> {
        let token = store.read().await?;
        Ok(Self::build(Some(Box::new(store)), token, ttl))
    }

    fn build(store: Option<Box<dyn TokenStore>>, token: Token, ttl: Duration) -> Self {
        let next_read = Instant::now().checked_add(ttl).unwrap_or_else(far_future);
        Self {
            inner: Arc::new(Inner {
                store,
                ttl,
                state: Mutex::new(State {
                    token,
                    next_read,
                    refused: None,
                }),
                reading: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The token as last read, without reading the store (to check it is usable at start-up).
    pub fn peek(&self) -> Token {
        self.state().token
    }

    /// The token to send now: the cached one, re-read first when older than the TTL. A failed
    /// re-read keeps the old token (a store outage must not stop the sync) and is logged.
    pub async fn current(&self) -> Token {
        let state = self.state();
        let Some(store) = &self.inner.store else {
            return state.token;
        };
        if Instant::now() < state.next_read {
            return state.token;
        }
        let _reading = self.inner.reading.lock().await;
        let state = self.state();
        if Instant::now() < state.next_read {
            return state.token; // another caller re-read it while this one waited
        }
        match store.read().await {
            Ok(token) => {
                if token != state.token {
                    tracing::info!(source = %store.describe(), "token changed in its store; using the new one");
                }
                self.update(|s| {
                    s.token = token.clone();
                    s.next_read = self.after(self.inner.ttl);
                });
                token
            }
            Err(err) => {
                tracing::warn!(source = %store.describe(), error = %err, "could not re-read the token; keeping the one read before");
                self.update(|s| s.next_read = self.after(RETRY_FAILED_READ.min(self.inner.ttl)));
                state.token
            }
        }
    }

    /// An API answered 401 to `rejected`: re-reads the store at once and returns the token to
    /// retry the call with, or `None` when there is none (the store holds the same token, or
    /// cannot be read) and the 401 stands. Callers retry at most once per call.
    pub async fn after_rejection(&self, rejected: &Token) -> Option<Token> {
        let store = self.inner.store.as_ref()?;
        let _reading = self.inner.reading.lock().await;
        let state = self.state();
        if state.token != *rejected {
            return Some(state.token); // already re-read by a call refused before this one
        }
        if let Some((token, at)) = &state.refused
            && token == rejected
            && at.elapsed() < RECHECK_REFUSED
        {
            return None;
        }
        match store.read().await {
            Ok(token) if token == *rejected => {
                tracing::warn!(source = %store.describe(), "the API refused the token and its store still holds the same one");
                self.update(|s| {
                    s.refused = Some((token, Instant::now()));
                    s.next_read = self.after(self.inner.ttl);
                });
                None
            }
            Ok(token) => {
                tracing::info!(source = %store.describe(), "the API refused the token; its store holds a new one, retrying with it");
                self.update(|s| {
                    s.token = token.clone();
                    s.refused = None;
                    s.next_read = self.after(self.inner.ttl);
                });
                Some(token)
            }
            Err(err) => {
                tracing::warn!(source = %store.describe(), error = %err, "the API refused the token and re-reading it failed");
                None
            }
        }
    }

    fn state(&self) -> State {
        let state = self.inner.state.lock();
        state.unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        let state = self.inner.state.lock();
        change(&mut state.unwrap_or_else(PoisonError::into_inner));
    }

    fn after(&self, wait: Duration) -> Instant {
        Instant::now().checked_add(wait).unwrap_or_else(far_future)
    }
}

/// About thirty years from now: "never" for a fixed token (`Instant` has no maximum).
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(30 * 365 * 86_400)
}

impl From<Token> for Credential {
    fn from(token: Token) -> Self {
        Self::fixed(token)
    }
}

/// A fixed token from text, kept as given (a client refuses an empty or unsendable one when
/// it is built, with its own error).
impl From<&str> for Credential {
    fn from(token: &str) -> Self {
        Self::fixed(Token(token.into()))
    }
}

impl From<String> for Credential {
    fn from(token: String) -> Self {
        Self::from(token.as_str())
    }
}

#[cfg(test)]
mod tests;
