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

use crate::staging::Reservation;

/// Inspections kept.
const CAPACITY: usize = 4;
/// How long one is kept.
const TTL: Duration = Duration::from_secs(60);

/// What inspecting a segment at upload gave.
#[derive(Debug)]
pub struct Inspected {
    pub source: StreamInfo,
    /// `None` where the kept-frames budget was spent: the content check decodes the source instead.
    pub kept: Option<Arc<KeptFrames>>,
}

/// Source frames kept for a job's first content check, with the budget they hold until the last job
/// and cache entry holding them are gone: decoded pictures are far larger than the segment bytes a
/// client's upload budget counts, so a flood of small high-resolution segments must not keep them
/// without bound.
#[derive(Debug)]
pub struct KeptFrames {
    pub frames: SourceFrames,
    pub held: Reservation,
}

/// The most memory kept source frames may take, in all and for one client address: 20 and 5 jobs'
/// worth of the largest kept frames.
pub const KEPT_FRAMES_BYTES: u64 = 20 * KEPT_PER_JOB;
pub const KEPT_FRAMES_BYTES_PER_CLIENT: u64 = 5 * KEPT_PER_JOB;
/// What one job's kept frames may take.
pub const KEPT_PER_JOB: u64 =
    crate::verify::CONTENT_SAMPLES as u64 * dualrig_media::MAX_KEPT_FRAME_BYTES;

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
