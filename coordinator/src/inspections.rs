//! Recent source inspections, by the segment's BLAKE3 hash. A client whose quote was lost (its
//! worker's params retired by another job's win, or the worker unable to finish) quotes again and
//! uploads the same segment again; the coordinator need not stage and decode it again.
//!
//! Bounded: [`CAPACITY`] entries, each at most [`TTL`] old, in memory only (each job stages its own
//! copy of the segment, deleted with the job). An entry holds the source frames kept for the first
//! content check (at most 4 frames of up to 1920×1088), whose seed is handed out once whichever job
//! of the entry asks first (`SourceFrames::take_seed`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use dualrig_media::{SourceFrames, StreamInfo};

/// Inspections kept.
const CAPACITY: usize = 4;
/// How long one is kept.
const TTL: Duration = Duration::from_secs(60);

/// What inspecting a segment at upload gave.
#[derive(Debug)]
pub struct Inspected {
    pub source: StreamInfo,
    pub kept: Arc<SourceFrames>,
}

#[derive(Debug, Default)]
pub struct Inspections {
    entries: Mutex<VecDeque<(blake3::Hash, Instant, Arc<Inspected>)>>,
}

impl Inspections {
    /// The inspection of the segment hashing to `hash`, if one is recent.
    pub fn get(&self, hash: &blake3::Hash) -> Option<Arc<Inspected>> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|(_, at, _)| at.elapsed() < TTL);
        entries
            .iter()
            .find(|(h, _, _)| h == hash)
            .map(|(_, _, inspected)| Arc::clone(inspected))
    }

    /// Keeps `inspected` for the segment hashing to `hash`, dropping the oldest past capacity.
    pub fn insert(&self, hash: blake3::Hash, inspected: Arc<Inspected>) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|(h, at, _)| *h != hash && at.elapsed() < TTL);
        if entries.len() >= CAPACITY {
            entries.pop_front();
        }
        entries.push_back((hash, Instant::now(), inspected));
    }
}
