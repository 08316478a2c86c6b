//! The worker's validated configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use dualrig_media::EncoderChoice;

use crate::hash::GpuMode;

/// The worker's key file inside its data dir.
pub const KEY_FILE: &str = "worker.key";

/// Blob store capacity when `--storage-capacity` is absent: 10 GiB.
pub const DEFAULT_STORAGE_CAPACITY: u64 = 10 << 30;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The coordinator's gRPC URL, e.g. `http://127.0.0.1:7300`.
    pub coordinator: String,
    /// Holds the worker's key and its scratch space.
    pub data_dir: PathBuf,
    pub encoder: EncoderChoice,
    /// Jobs run at once; `None` picks from the encoder (1 for libx264, which already uses every core).
    pub sessions: Option<u32>,
    pub gpu: GpuMode,
    /// Most share of the time hashing may keep the GPU busy, in (0, 1] (`--gpu-hash-share`).
    pub gpu_hash_share: f64,
    pub metrics_addr: Option<SocketAddr>,
    /// Where to serve the dashboard (`--dashboard-addr`; off when absent).
    pub dashboard_addr: Option<SocketAddr>,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
    /// What clients pay this worker per output pixel; 0 works for free and takes no tickets.
    pub price_per_unit: u64,
    /// Face value of the worker's tickets, and one in how many wins.
    pub ticket_face_value: u64,
    pub ticket_win_prob_one_in: u64,
    /// Most bytes the blob store may occupy, outboards included (`--storage-capacity`).
    pub storage_capacity: u64,
    /// Time between scrubs of the blob store.
    pub scrub_interval: Duration,
    /// How long a winning ticket waits before its redemption (`--redeem-delay-secs`; 0: at once).
    pub redeem_delay: Duration,
    /// Cheat on every job this way (`--fault`), for tests of verification.
    #[cfg(feature = "fault-injection")]
    pub fault: Option<crate::job::Fault>,
}

impl WorkerConfig {
    /// Defaults for a worker of the coordinator at `coordinator`, keeping its files in `data_dir`.
    pub fn new(coordinator: impl Into<String>, data_dir: PathBuf) -> Self {
        Self {
            coordinator: coordinator.into(),
            data_dir,
            encoder: EncoderChoice::Auto,
            sessions: None,
            gpu: GpuMode::Auto,
            gpu_hash_share: 1.0,
            metrics_addr: None,
            dashboard_addr: None,
            max_backoff: Duration::from_secs(10),
            price_per_unit: 0,
            ticket_face_value: 1_000_000,
            ticket_win_prob_one_in: 100,
            storage_capacity: DEFAULT_STORAGE_CAPACITY,
            scrub_interval: Duration::from_secs(6 * 3600),
            redeem_delay: Duration::ZERO,
            #[cfg(feature = "fault-injection")]
            fault: None,
        }
    }

    pub fn key_path(&self) -> PathBuf {
        self.data_dir.join(KEY_FILE)
    }

    /// Where winning tickets wait for redemption, one file each.
    pub fn winners_dir(&self) -> PathBuf {
        self.data_dir.join("winners")
    }

    /// The secret the worker's ticket params derive from; it outlives restarts so winning tickets
    /// of params issued before one still redeem.
    pub fn ticket_secret_path(&self) -> PathBuf {
        self.data_dir.join("ticket.secret")
    }

    pub fn scratch_dir(&self) -> PathBuf {
        self.data_dir.join("scratch")
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.coordinator.starts_with("http://") || self.coordinator.starts_with("https://")) {
            return Err(format!(
                "--coordinator {:?} must be a URL such as http://127.0.0.1:7300",
                self.coordinator
            ));
        }
        if !(self.gpu_hash_share > 0.0 && self.gpu_hash_share <= 1.0) {
            return Err(format!(
                "--gpu-hash-share must be above 0 and at most 1 (got {})",
                self.gpu_hash_share
            ));
        }
        if self.price_per_unit > 0
            && (self.ticket_face_value == 0 || self.ticket_win_prob_one_in == 0)
        {
            return Err(
                "--ticket-face-value and --ticket-win-prob-one-in must be above 0 when --price-per-unit is".into(),
            );
        }
        if self.scrub_interval < Duration::from_millis(10) {
            return Err("--scrub-interval-secs must be at least 0.01".into());
        }
        if self.sessions == Some(0) {
            return Err("--sessions must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_share_outside_the_unit_interval_is_refused() {
        let mut config = WorkerConfig::new("http://127.0.0.1:7300", PathBuf::from("data"));
        assert_eq!(config.validate(), Ok(()));
        for bad in [0.0, -0.5, 1.5, f64::NAN] {
            config.gpu_hash_share = bad;
            let err = config.validate().expect_err("refused");
            assert!(err.contains("--gpu-hash-share"), "{err}");
        }
        config.gpu_hash_share = 0.25;
        assert_eq!(config.validate(), Ok(()));
    }
}
