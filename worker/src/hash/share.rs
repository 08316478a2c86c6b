//! `--gpu-hash-share`: a hasher that leaves the GPU idle part of the time (PROTOCOL §7), so a worker beside a
//! miner takes at most the given share of the shader cores.
//!
//! The cap is a duty cycle: after each call that took `busy` seconds, the wrapper sleeps
//! `busy × (1 − share) / share`, so that over any run of calls busy / (busy + idle) ≤ share. It is enforced
//! per call rather than per dispatch, which is coarse for one huge blob but needs nothing from the backend.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{BlobDigest, BlobHasher, HashError, HashMode};

/// Busy and idle time a [`SharedHasher`] has accounted for.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DutyCycle {
    /// Time spent inside the wrapped hasher.
    pub busy: Duration,
    /// Time spent sleeping afterwards to honour the share.
    pub idle: Duration,
}

impl DutyCycle {
    /// busy / (busy + idle), or 0 before any work.
    pub fn share(&self) -> f64 {
        let total = self.busy + self.idle;
        if total.is_zero() {
            0.0
        } else {
            self.busy.as_secs_f64() / total.as_secs_f64()
        }
    }
}

/// Why a share was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("--gpu-hash-share must be a fraction above 0 and at most 1 (got {0})")]
pub struct ShareError(pub String);

/// Parses a share for clap: a number in (0, 1].
pub fn parse_share(text: &str) -> Result<f64, ShareError> {
    match text.trim().parse::<f64>() {
        Ok(share) if share > 0.0 && share <= 1.0 => Ok(share),
        _ => Err(ShareError(text.to_owned())),
    }
}

/// Wraps a hasher so that it is busy at most `share` of the time.
pub struct SharedHasher {
    inner: Arc<dyn BlobHasher>,
    share: f64,
    account: Mutex<DutyCycle>,
}

impl SharedHasher {
    /// `share` must be in (0, 1]; 1 passes every call straight through.
    pub fn new(inner: Arc<dyn BlobHasher>, share: f64) -> Result<Self, ShareError> {
        if !(share > 0.0 && share <= 1.0) {
            return Err(ShareError(share.to_string()));
        }
        Ok(Self {
            inner,
            share,
            account: Mutex::new(DutyCycle::default()),
        })
    }

    /// `inner` itself when `share` is 1, else `inner` wrapped.
    pub fn wrap(inner: Arc<dyn BlobHasher>, share: f64) -> Result<Arc<dyn BlobHasher>, ShareError> {
        if share == 1.0 {
            Ok(inner)
        } else {
            Ok(Arc::new(Self::new(inner, share)?))
        }
    }

    /// The share asked for.
    pub fn share(&self) -> f64 {
        self.share
    }

    /// Busy and idle time so far.
    pub fn duty_cycle(&self) -> DutyCycle {
        *self.account.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The idle time that keeps busy / (busy + idle) at `share` after `busy` more work.
    fn idle_after(&self, busy: Duration) -> Duration {
        let idle = busy.mul_f64((1.0 - self.share) / self.share);
        // Rounded up, so rounding never lets the share creep above what was asked.
        if idle.is_zero() {
            idle
        } else {
            idle + Duration::from_nanos(1)
        }
    }

    fn metered<T>(&self, work: impl FnOnce(&dyn BlobHasher) -> T) -> T {
        let started = Instant::now();
        let result = work(self.inner.as_ref());
        let busy = started.elapsed();
        let idle = self.idle_after(busy);
        if !idle.is_zero() {
            // Sleep at least `idle`; only what was asked is accounted, so the recorded share can
            // only overstate how busy the GPU was.
            std::thread::sleep(idle);
        }
        let mut account = self.account.lock().unwrap_or_else(|e| e.into_inner());
        account.busy += busy;
        account.idle += idle;
        result
    }
}

impl BlobHasher for SharedHasher {
    fn describe(&self) -> String {
        format!(
            "{} at most {:.0}% of the time",
            self.inner.describe(),
            self.share * 100.0
        )
    }

    fn hash_bytes(
        &self,
        data: &[u8],
        mode: HashMode,
        with_outboard: bool,
    ) -> Result<BlobDigest, HashError> {
        self.metered(|h| h.hash_bytes(data, mode, with_outboard))
    }

    fn hash_reader(
        &self,
        reader: &mut dyn Read,
        expected_len: Option<u64>,
        mode: HashMode,
        with_outboard: bool,
    ) -> Result<BlobDigest, HashError> {
        self.metered(|h| h.hash_reader(reader, expected_len, mode, with_outboard))
    }

    fn hash_reader_to_file(
        &self,
        reader: &mut dyn Read,
        len: u64,
        mode: HashMode,
        outboard: &std::fs::File,
    ) -> Result<BlobDigest, HashError> {
        self.metered(|h| h.hash_reader_to_file(reader, len, mode, outboard))
    }

    fn hash_file(
        &self,
        path: &Path,
        mode: HashMode,
        with_outboard: bool,
    ) -> Result<BlobDigest, HashError> {
        self.metered(|h| h.hash_file(path, mode, with_outboard))
    }

    fn hash_batch(&self, blobs: &[&[u8]], mode: HashMode) -> Result<Vec<blake3::Hash>, HashError> {
        self.metered(|h| h.hash_batch(blobs, mode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::CpuHasher;

    #[test]
    fn shares_outside_the_unit_interval_are_refused() {
        assert_eq!(parse_share("0.25"), Ok(0.25));
        assert_eq!(parse_share("1"), Ok(1.0));
        assert!(parse_share("0").is_err());
        assert!(parse_share("1.5").is_err());
        assert!(parse_share("-0.1").is_err());
        assert!(parse_share("NaN").is_err());
        assert!(SharedHasher::new(Arc::new(CpuHasher::new()), 0.0).is_err());
    }

    #[test]
    fn the_duty_cycle_respects_the_share() {
        let data = vec![7u8; 1 << 20];
        for share in [0.25, 0.5, 0.9] {
            let hasher = SharedHasher::new(Arc::new(CpuHasher::new()), share).expect("share");
            for _ in 0..4 {
                let digest = hasher
                    .hash_bytes(&data, HashMode::Plain, false)
                    .expect("hash");
                assert_eq!(digest.hash, blake3::hash(&data));
            }
            let cycle = hasher.duty_cycle();
            assert!(!cycle.busy.is_zero());
            // Each of the four calls may round its idle time down by a nanosecond; allow that much,
            // and nothing more.
            let owed_idle = cycle.busy.as_nanos() as f64 * (1.0 - share) / share;
            assert!(
                cycle.idle.as_nanos() as f64 + 4.0 >= owed_idle,
                "share {share}: busy {:?}, idle {:?}",
                cycle.busy,
                cycle.idle
            );
        }
    }

    #[test]
    fn a_full_share_passes_through() {
        let inner: Arc<dyn BlobHasher> = Arc::new(CpuHasher::new());
        let wrapped = SharedHasher::wrap(inner.clone(), 1.0).expect("share");
        assert!(Arc::ptr_eq(&inner, &wrapped));
    }
}
