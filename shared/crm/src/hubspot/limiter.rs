//! The per-container limiter, used when no shared budget is configured (`RATE_BUDGET=off`):
//! it keeps this container under `requests_per_10s` and cannot see the others.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::WINDOW;

/// Requests sent in the last window, shared by clones.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    sent: Mutex<VecDeque<Instant>>,
}

impl Limiter {
    /// Waits until one more request fits in the window, then records it.
    pub(crate) async fn acquire(&self, per_window: usize) {
        loop {
            let wait = {
                let mut sent = self.sent.lock().await;
                let now = Instant::now();
                while sent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= WINDOW)
                {
                    sent.pop_front();
                }
                if sent.len() < per_window.max(1) {
                    sent.push_back(now);
                    return;
                }
                sent.front()
                    .map_or(Duration::ZERO, |t| WINDOW - now.duration_since(*t))
            };
            tracing::debug!(
                wait_ms = wait.as_millis() as u64,
                "HubSpot limiter full; waiting"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_limiter_holds_the_request_past_the_window() {
        let limiter = Limiter::default();
        let start = Instant::now();
        limiter.acquire(2).await;
        limiter.acquire(2).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        limiter.acquire(2).await;
        assert!(
            start.elapsed() >= WINDOW,
            "third request waited for the window"
        );
    }
}
