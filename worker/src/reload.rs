//! A reload of the worker's config (on SIGHUP): the file is read again under the flags the worker
//! started with; `sessions` changes live, every other key that changed is logged as waiting for a
//! restart, and a file that does not load changes nothing.

use std::sync::Arc;

use dualrig_media::EncoderSelection;
use tracing::{error, info, warn};

use crate::config::{ConfigError, ConfigSource, WorkerConfig};
use crate::metrics;
use crate::slots::{self, JobSlots};

/// Applies the config source again to a running worker ([`crate::Worker::reloader`]).
#[derive(Debug)]
pub struct Reloader {
    source: ConfigSource,
    /// The config in effect; one reload at a time.
    running: tokio::sync::Mutex<WorkerConfig>,
    slots: Arc<JobSlots>,
    encoder: Arc<EncoderSelection>,
}

/// What a reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    pub sessions_before: u32,
    pub sessions: u32,
    /// Keys whose new values wait for a restart.
    pub restart: Vec<&'static str>,
}

impl Reloader {
    pub(crate) fn new(
        source: ConfigSource,
        running: WorkerConfig,
        slots: Arc<JobSlots>,
        encoder: Arc<EncoderSelection>,
    ) -> Self {
        Self {
            source,
            running: tokio::sync::Mutex::new(running),
            slots,
            encoder,
        }
    }

    /// Reads the config again and applies what can change live. On an error the running config
    /// stays as it was; either way the outcome is logged.
    pub async fn reload(&self) -> Result<Reloaded, ConfigError> {
        let mut running = self.running.lock().await;
        let loaded = match self.source.load() {
            Ok(loaded) => loaded,
            Err(e) => {
                metrics::reload("refused");
                error!(error = %e, "config reload refused; the running config stays");
                return Err(e);
            }
        };
        for key in &loaded.shadowed {
            info!(
                key,
                "config file value not used: a flag or environment variable sets it"
            );
        }
        let restart = running.restart_keys(&loaded.config);
        for key in &restart {
            warn!(
                key,
                "config key changed; it takes effect at the next restart"
            );
        }
        let setting = loaded.config.sessions;
        let sessions = slots::current_sessions(setting, &self.encoder, &self.slots).await;
        let sessions_before = self.slots.resize(sessions);
        running.sessions = setting;
        metrics::reload("applied");
        info!(
            sessions_before,
            sessions,
            %setting,
            "config reloaded"
        );
        Ok(Reloaded {
            sessions_before,
            sessions,
            restart,
        })
    }
}
