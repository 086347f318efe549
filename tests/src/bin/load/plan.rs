//! Which request a worker sends next.

/// What a worker does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Send {
        index: usize,
        duplicate: bool,
    },
    /// A duplicate is due but nothing is acknowledged yet: wait for an answer.
    Wait,
    Done,
}

/// Hands out requests: every delivery once, and duplicates of acknowledged deliveries spread
/// at random among them. Duplicates only ever repeat a delivery that was already answered 2xx
/// — as Attio's retries come after an attempt — so they test deduplication, not the 409 for
/// a delivery still in progress.
pub struct Plan {
    deliveries: usize,
    next_delivery: usize,
    duplicates_left: usize,
    in_flight: usize,
    /// Indexes of the deliveries answered 2xx on their first send.
    pub acknowledged: Vec<usize>,
    /// Where duplicates fall needs no cryptographic randomness.
    rng: fastrand::Rng,
}

impl Plan {
    pub fn new(deliveries: usize, duplicates: usize, rng: fastrand::Rng) -> Self {
        Self {
            deliveries,
            next_delivery: 0,
            duplicates_left: duplicates,
            in_flight: 0,
            acknowledged: Vec::with_capacity(deliveries),
            rng,
        }
    }

    pub fn next(&mut self) -> Next {
        let fresh_left = self.deliveries - self.next_delivery;
        let duplicate_now = self.duplicates_left > 0
            && !self.acknowledged.is_empty()
            && (fresh_left == 0
                || self.rng.usize(..fresh_left + self.duplicates_left) < self.duplicates_left);
        if duplicate_now {
            self.duplicates_left -= 1;
            let index = self.acknowledged[self.rng.usize(..self.acknowledged.len())];
            return Next::Send {
                index,
                duplicate: true,
            };
        }
        if fresh_left > 0 {
            let index = self.next_delivery;
            self.next_delivery += 1;
            self.in_flight += 1;
            return Next::Send {
                index,
                duplicate: false,
            };
        }
        if self.duplicates_left > 0 && self.in_flight > 0 {
            return Next::Wait;
        }
        Next::Done
    }

    /// The first send of delivery `index` was answered (2xx when `acknowledged`) or given up.
    pub fn answered(&mut self, index: usize, acknowledged: bool) {
        self.in_flight -= 1;
        if acknowledged {
            self.acknowledged.push(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(index: usize, duplicate: bool) -> Next {
        Next::Send { index, duplicate }
    }

    #[test]
    fn duplicates_only_repeat_acknowledged_deliveries() {
        let mut plan = Plan::new(1, 2, fastrand::Rng::with_seed(7));
        assert_eq!(plan.next(), send(0, false));
        assert_eq!(plan.next(), Next::Wait);
        plan.answered(0, true);
        for _ in 0..2 {
            assert_eq!(plan.next(), send(0, true));
        }
        assert_eq!(plan.next(), Next::Done);
    }

    #[test]
    fn every_delivery_goes_once_and_every_duplicate_is_sent() {
        for seed in 0..20 {
            let mut plan = Plan::new(50, 30, fastrand::Rng::with_seed(seed));
            let (mut fresh, mut duplicates) = (Vec::new(), 0);
            loop {
                match plan.next() {
                    Next::Send {
                        index,
                        duplicate: false,
                    } => {
                        fresh.push(index);
                        plan.answered(index, index % 2 == 0);
                    }
                    Next::Send {
                        index,
                        duplicate: true,
                    } => {
                        assert_eq!(index % 2, 0, "only acknowledged ones are repeated");
                        duplicates += 1;
                    }
                    Next::Wait => panic!("nothing is in flight"),
                    Next::Done => break,
                }
            }
            assert_eq!(fresh, (0..50).collect::<Vec<_>>(), "seed {seed}");
            assert_eq!(duplicates, 30, "seed {seed}");
        }
    }

    #[test]
    fn nothing_acknowledged_means_no_duplicates() {
        let mut plan = Plan::new(2, 5, fastrand::Rng::with_seed(1));
        assert_eq!(plan.next(), send(0, false));
        plan.answered(0, false);
        assert_eq!(plan.next(), send(1, false));
        plan.answered(1, false);
        assert_eq!(plan.next(), Next::Done);
    }
}
