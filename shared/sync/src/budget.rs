//! How long a batch may keep starting work: the invocation's deadline less a margin.
//!
//! A consumer Lambda that runs past its timeout is killed mid-group, and SQS then redelivers
//! the *whole* batch — groups already written are redone, and a note or task killed between its
//! HubSpot create and its mapping write is created twice. So handlers ask the budget before
//! each group ([`Budget::may_start`]) and, once the time left is inside the margin (one group's
//! worst case: an Attio call's 20 s budget plus a HubSpot call's 20 s of waits and 10 s
//! request), leave the remaining groups unstarted as [`crate::Disposition::Deferred`]. A group
//! that started always finishes; the cut only ever falls between groups.
//!
//! The clock is tokio's: tests pause it and let handlers "work" with `tokio::time::sleep`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The time a batch has to start work in. Shared by reference with the handler for one batch.
#[derive(Debug)]
pub struct Budget {
    /// `None`: no deadline (local runs, backfill, tests that do not care).
    deadline: Option<Instant>,
    margin: Duration,
    /// Whether a group has been started: the first one always is, so a margin longer than the
    /// whole invocation slows the queue down instead of stalling it (every message deferred on
    /// every receive would end in the DLQ without ever being tried).
    started: AtomicBool,
}

impl Budget {
    /// No deadline: every group is started.
    pub fn unlimited() -> Self {
        Self {
            deadline: None,
            margin: Duration::ZERO,
            started: AtomicBool::new(false),
        }
    }

    /// Groups may start while more than `margin` is left before `deadline`.
    pub fn until(deadline: Instant, margin: Duration) -> Self {
        Self {
            deadline: Some(deadline),
            margin,
            started: AtomicBool::new(false),
        }
    }

    /// True when the caller may start its next group: always for the first group of a batch,
    /// then while the time left exceeds the margin. A handler that hears `false` must not
    /// start the group (and should stop asking: the time only shrinks).
    pub fn may_start(&self) -> bool {
        let first = !self.started.swap(true, Ordering::Relaxed);
        match self.deadline {
            None => true,
            Some(_) if first => true,
            Some(deadline) => deadline.saturating_duration_since(Instant::now()) > self.margin,
        }
    }

    /// Time left before the deadline (`None` without one).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self::unlimited()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn groups_start_while_more_than_the_margin_is_left() {
        let budget = Budget::until(
            Instant::now() + Duration::from_secs(60),
            Duration::from_secs(30),
        );
        assert!(budget.may_start(), "first group");
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert!(budget.may_start(), "31 s left > 30 s margin");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!budget.may_start(), "30 s left is not more than the margin");
        assert_eq!(budget.remaining(), Some(Duration::from_secs(30)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_group_starts_even_when_the_margin_exceeds_the_invocation() {
        let budget = Budget::until(
            Instant::now() + Duration::from_secs(10),
            Duration::from_secs(50),
        );
        assert!(budget.may_start());
        assert!(!budget.may_start());
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_cuts() {
        let budget = Budget::unlimited();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!((0..5).all(|_| budget.may_start()));
        assert_eq!(budget.remaining(), None);
    }
}
