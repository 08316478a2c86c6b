//! The coordinator's validated configuration: flags, `DUALRIG_*` environment variables and a TOML file
//! agree on names; flags win over the environment, which wins over the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Settings that may come from the TOML file. Every field is optional there; [`Config`] holds the result.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub metrics_addr: Option<SocketAddr>,
    pub max_segment_bytes: Option<u64>,
    pub max_attempts: Option<u32>,
    pub worker_wait_secs: Option<f64>,
    pub job_timeout_secs: Option<f64>,
    pub heartbeat_interval_secs: Option<f64>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }
}

/// Everything the coordinator needs, validated before anything starts.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub metrics_addr: Option<SocketAddr>,
    /// Largest segment a client may upload.
    pub max_segment_bytes: u64,
    /// Workers a job is tried on before the client is told it failed.
    pub max_attempts: u32,
    /// How long a job waits for an eligible worker before `Unavailable`.
    pub worker_wait: Duration,
    /// How long one worker may hold one job.
    pub job_timeout: Duration,
    /// How often workers send heartbeats; a worker silent for three intervals is dropped.
    pub heartbeat_interval: Duration,
}

impl Config {
    /// Defaults that run on one machine, with the data in `data_dir`.
    pub fn local(data_dir: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7300)),
            data_dir,
            metrics_addr: None,
            max_segment_bytes: dualrig_proto::DEFAULT_MAX_SEGMENT_BYTES,
            max_attempts: 3,
            worker_wait: Duration::from_secs(10),
            job_timeout: Duration::from_secs(120),
            heartbeat_interval: Duration::from_secs(2),
        }
    }

    /// Applies the file's settings over these.
    pub fn merge_file(&mut self, file: FileConfig) -> Result<(), ConfigError> {
        if let Some(v) = file.listen {
            self.listen = v;
        }
        if let Some(v) = file.data_dir {
            self.data_dir = v;
        }
        if file.metrics_addr.is_some() {
            self.metrics_addr = file.metrics_addr;
        }
        if let Some(v) = file.max_segment_bytes {
            self.max_segment_bytes = v;
        }
        if let Some(v) = file.max_attempts {
            self.max_attempts = v;
        }
        if let Some(v) = file.worker_wait_secs {
            self.worker_wait = secs("worker_wait_secs", v)?;
        }
        if let Some(v) = file.job_timeout_secs {
            self.job_timeout = secs("job_timeout_secs", v)?;
        }
        if let Some(v) = file.heartbeat_interval_secs {
            self.heartbeat_interval = secs("heartbeat_interval_secs", v)?;
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_segment_bytes == 0 {
            return Err(ConfigError::Invalid(
                "max_segment_bytes must be above zero".into(),
            ));
        }
        if self.max_segment_bytes as usize > dualrig_proto::MAX_MESSAGE_BYTES / 2 {
            return Err(ConfigError::Invalid(format!(
                "max_segment_bytes {} is above the {} bytes a job message can carry",
                self.max_segment_bytes,
                dualrig_proto::MAX_MESSAGE_BYTES / 2
            )));
        }
        if self.max_attempts == 0 {
            return Err(ConfigError::Invalid(
                "max_attempts must be at least 1".into(),
            ));
        }
        if self.heartbeat_interval.is_zero() {
            return Err(ConfigError::Invalid(
                "heartbeat_interval_secs must be above zero".into(),
            ));
        }
        Ok(())
    }

    /// Where uploads and renditions are staged while they are checked.
    pub fn scratch_dir(&self) -> PathBuf {
        self.data_dir.join("scratch")
    }
}

/// A duration in seconds from a config value.
pub fn secs(name: &str, value: f64) -> Result<Duration, ConfigError> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| ConfigError::Invalid(format!("{name} = {value} is not a duration in seconds")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_settings_apply_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "max_attempts = 5\nworker_wait_secs = 0.5\n").expect("write");
        let mut config = Config::local(dir.path().into());
        config
            .merge_file(FileConfig::load(&path).expect("parse"))
            .expect("merge");
        assert_eq!(config.max_attempts, 5);
        assert_eq!(config.worker_wait, Duration::from_millis(500));

        std::fs::write(&path, "max_atempts = 5\n").expect("write");
        let err = FileConfig::load(&path).expect_err("typo refused");
        assert!(err.to_string().contains("max_atempts"), "{err}");
    }

    #[test]
    fn nonsense_is_refused() {
        let mut config = Config::local("/tmp/x".into());
        config.max_attempts = 0;
        assert!(config.validate().is_err());
        assert!(secs("x", -1.0).is_err());
    }
}
