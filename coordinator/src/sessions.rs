//! Encoder sessions proven by verified work (PROTOCOL §6.13): for each worker, the most of its
//! transcode jobs whose verified results overlapped in time within a round. A job counts from the
//! moment the dispatcher handed it to the worker to the moment its result came back, and only once
//! that result passed verification; what a worker reports about its own sessions counts for nothing.
//! The ledger keeps the count ([`crate::ledger::Ledger::prove_sessions`]) and pays its bonus.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dualrig_proto::identity::PublicId;

/// Most verified jobs kept per worker; the pool never has more than a worker's sessions in flight,
/// so the ones within the horizon fit far below this.
const MAX_KEPT: usize = 4096;

/// A verified job's time with its worker: from assignment to the result's arrival.
#[derive(Debug, Clone, Copy)]
struct Span {
    assigned: Instant,
    returned: Instant,
}

#[derive(Debug)]
struct WorkerJobs {
    round: u64,
    /// The most overlapping jobs seen in `round`.
    peak: u32,
    spans: Vec<Span>,
}

/// The verified jobs of each worker in the current round, and the most that overlapped.
#[derive(Debug)]
pub struct SessionTracker {
    /// A span that ended longer ago than this cannot overlap a job still in flight: no job stays
    /// with a worker longer than the job timeout.
    horizon: Duration,
    workers: Mutex<HashMap<PublicId, WorkerJobs>>,
}

impl SessionTracker {
    pub fn new(horizon: Duration) -> Self {
        Self {
            horizon,
            workers: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a verified job of `worker`, dispatched in ledger round `round`, that was handed over at
    /// `assigned` and came back at `returned`. Returns the round's new most overlapping jobs when
    /// this one raised it, else `None`.
    pub fn verified(
        &self,
        worker: PublicId,
        round: u64,
        assigned: Instant,
        returned: Instant,
    ) -> Option<u32> {
        let span = Span {
            assigned,
            returned: returned.max(assigned),
        };
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        let jobs = workers.entry(worker).or_insert(WorkerJobs {
            round,
            peak: 0,
            spans: Vec::new(),
        });
        if round > jobs.round {
            // Within a round only: a new round starts from nothing.
            *jobs = WorkerJobs {
                round,
                peak: 0,
                spans: Vec::new(),
            };
        } else if round < jobs.round {
            // A job from a round already left behind proves nothing for the current one.
            return None;
        }
        if let Some(cutoff) = span.returned.checked_sub(self.horizon) {
            jobs.spans.retain(|s| s.returned >= cutoff);
        }
        if jobs.spans.len() >= MAX_KEPT {
            jobs.spans.remove(0);
        }
        jobs.spans.push(span);
        let overlap = most_overlapping(&jobs.spans, span);
        (overlap > jobs.peak).then(|| {
            jobs.peak = overlap;
            overlap
        })
    }
}

/// The most spans of `spans` (which holds `new`) in progress at one instant within `new`. Spans are
/// half-open, so a job handed over the instant another came back does not overlap it. The most is
/// reached at the start of `new` or at the start of some span that begins inside it.
fn most_overlapping(spans: &[Span], new: Span) -> u32 {
    let at = |t: Instant| -> u32 {
        let n = spans
            .iter()
            .filter(|s| s.assigned <= t && t < s.returned)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    };
    if new.assigned == new.returned {
        return 1;
    }
    spans
        .iter()
        .map(|s| s.assigned)
        .filter(|t| new.assigned <= *t && *t < new.returned)
        .map(at)
        .max()
        .unwrap_or(1)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(n: u8) -> PublicId {
        dualrig_proto::identity::Identity::from_secret([n; 32]).id()
    }

    #[test]
    fn jobs_one_after_another_prove_one_session_and_overlapping_ones_prove_more() {
        let tracker = SessionTracker::new(Duration::from_secs(60));
        let t = Instant::now();
        let s = |n: u64| t + Duration::from_secs(n);
        let w = worker(1);
        assert_eq!(tracker.verified(w, 0, s(0), s(10)), Some(1));
        // Handed over the instant the first came back: still one at a time.
        assert_eq!(tracker.verified(w, 0, s(10), s(20)), None);
        // Two more inside the second one's time: three at once at second 15.
        assert_eq!(tracker.verified(w, 0, s(12), s(25)), Some(2));
        assert_eq!(tracker.verified(w, 0, s(15), s(16)), Some(3));
        // Another worker's jobs are its own.
        assert_eq!(tracker.verified(worker(2), 0, s(12), s(25)), Some(1));
    }

    #[test]
    fn a_new_round_starts_from_nothing_and_an_old_round_proves_nothing() {
        let tracker = SessionTracker::new(Duration::from_secs(60));
        let t = Instant::now();
        let s = |n: u64| t + Duration::from_secs(n);
        let w = worker(1);
        assert_eq!(tracker.verified(w, 3, s(0), s(10)), Some(1));
        assert_eq!(tracker.verified(w, 3, s(1), s(10)), Some(2));
        assert_eq!(tracker.verified(w, 4, s(2), s(10)), Some(1));
        assert_eq!(tracker.verified(w, 3, s(3), s(10)), None);
        assert_eq!(tracker.verified(w, 4, s(3), s(10)), Some(2));
    }
}
