//! The worker's validated configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use dualrig_media::EncoderChoice;

use crate::hash::GpuMode;

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
    pub metrics_addr: Option<SocketAddr>,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
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
            metrics_addr: None,
            max_backoff: Duration::from_secs(10),
        }
    }

    pub fn key_path(&self) -> PathBuf {
        self.data_dir.join("worker.key")
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
        if self.sessions == Some(0) {
            return Err("--sessions must be at least 1".into());
        }
        Ok(())
    }
}
