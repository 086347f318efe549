//! A [`TokenStore`] in memory whose value a test changes, as an operator rotating the secret
//! would; it counts its reads and can be made to fail.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::{ReadFuture, StoreError, Token, TokenStore};

/// Clones share the value and the count, so a test keeps one after giving the other away.
#[derive(Debug, Clone)]
pub struct MemoryTokenStore {
    value: Arc<Mutex<Result<String, StoreError>>>,
    reads: Arc<AtomicUsize>,
}

impl MemoryTokenStore {
    pub fn new(token: &str) -> Self {
        Self {
            value: Arc::new(Mutex::new(Ok(token.to_owned()))),
            reads: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Replaces the stored token (a rotation).
    pub fn set(&self, token: &str) {
        *self.lock() = Ok(token.to_owned());
    }

    /// Makes every read fail with `error` until [`Self::set`].
    pub fn fail_with(&self, error: StoreError) {
        *self.lock() = Err(error);
    }

    /// How many times the store was read.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Result<String, StoreError>> {
        self.value.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TokenStore for MemoryTokenStore {
    fn read(&self) -> ReadFuture<'_> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let value = self.lock().clone();
        Box::pin(async move { Token::parse(&value?) })
    }

    fn describe(&self) -> String {
        "memory".to_owned()
    }
}
