//! What every stand-in shares: the seeded fault dice, and serving a fake on a loopback
//! wiremock server while the test keeps a handle on its state.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use wiremock::{Request, Respond, ResponseTemplate};

/// Decides, from a fixed seed, which calls fail and how; counts what it injected.
#[derive(Debug)]
pub struct FaultDice {
    rng: Mutex<fastrand::Rng>,
    share: f64,
    injected: AtomicUsize,
}

impl FaultDice {
    pub fn new(share: f64, seed: u64) -> Self {
        Self {
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            share,
            injected: AtomicUsize::new(0),
        }
    }

    /// `Some(n)` with n in `0..kinds` for a call that should fail, `None` for one that passes.
    pub(super) fn roll(&self, kinds: usize) -> Option<usize> {
        let mut rng = self.rng.lock().expect("dice lock");
        if rng.f64() >= self.share {
            return None;
        }
        self.injected.fetch_add(1, Ordering::SeqCst);
        Some(rng.usize(0..kinds))
    }

    pub fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }
}

/// Lets the caller keep a handle on a fake (its state, its counts) after wiremock takes the
/// responder.
#[derive(Debug)]
pub struct SharedResponder<R>(pub Arc<R>);

impl<R: Respond> Respond for SharedResponder<R> {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.respond(request)
    }
}

/// Serves `fake` for every request on a new loopback wiremock server; the caller keeps the `Arc`
/// to read the fake's state afterwards.
pub async fn serve<R: Respond + Send + Sync + 'static>(fake: &Arc<R>) -> wiremock::MockServer {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(SharedResponder(Arc::clone(fake)))
        .mount(&server)
        .await;
    server
}
