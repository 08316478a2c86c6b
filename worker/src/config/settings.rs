//! The settings a worker is started with, layer by layer: its defaults, then the TOML file
//! (`--config`, `DUALRIG_WORKER_CONFIG`), then flags and `DUALRIG_*` variables, which clap has already
//! merged (a flag wins over its variable). The layers are kept apart so a reload can read the file
//! again and lay the same flags over it.

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use bytesize::ByteSize;
use dualrig_media::EncoderChoice;
use serde::{Deserialize, Deserializer};

use super::{DEFAULT_COORDINATOR, DEFAULT_DATA_DIR, Sessions, WorkerConfig};
use crate::hash::GpuMode;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// On one line, so a reload's log line holds all of it: where, what was written, what is wrong.
    #[error("config file {path}{at}: {message}")]
    Parse {
        path: PathBuf,
        /// ` line N (`the line`)`, when the parser knows where.
        at: String,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// One layer of settings, every one optional: the file's keys, or what the flags and environment
/// set. Unknown keys in the file are refused.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// One URL, or several separated by commas (`--coordinator`, repeatable, and
    /// `DUALRIG_COORDINATOR` split there before this layer).
    pub coordinator: Option<String>,
    /// The file's list form: `coordinators = ["http://a:7300", "http://b:7300"]`.
    pub coordinators: Option<Vec<String>>,
    pub data_dir: Option<PathBuf>,
    #[serde(default, deserialize_with = "parsed")]
    pub encoder: Option<EncoderChoice>,
    pub sessions: Option<Sessions>,
    pub gpu: Option<GpuMode>,
    pub gpu_hash_share: Option<f64>,
    pub metrics_addr: Option<SocketAddr>,
    pub dashboard_addr: Option<SocketAddr>,
    pub source_addr: Option<std::net::IpAddr>,
    pub price_per_unit: Option<u64>,
    pub price_per_byte: Option<u64>,
    pub ticket_face_value: Option<u64>,
    pub ticket_win_prob_one_in: Option<u64>,
    /// Bytes, or a size with a unit (`"500GiB"`).
    pub storage_capacity: Option<ByteSize>,
    pub scrub_interval_secs: Option<f64>,
    pub redeem_delay_secs: Option<f64>,
    pub host_collectives: Option<Vec<String>>,
    pub host_roots: Option<Vec<String>>,
    /// A flag only (`--fault`): a cheat is never read from a file.
    #[cfg(feature = "fault-injection")]
    #[serde(skip)]
    pub fault: Option<crate::job::Fault>,
}

/// A value the file writes as text, parsed as its flag is.
fn parsed<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err: Display>,
{
    let text = String::deserialize(de)?;
    text.parse().map(Some).map_err(serde::de::Error::custom)
}

/// ` line N (`what it says`)` for the byte `offset` of `text`.
fn where_in(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    if !text.is_char_boundary(offset) {
        return String::new();
    }
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let number = text[..start].matches('\n').count() + 1;
    format!(" line {number} (`{}`)", text[start..end].trim())
}

/// Which layer a value came from, for messages that name it as the person wrote it.
#[derive(Debug, Clone, Copy)]
enum Origin<'a> {
    File(&'a Path),
    Flags,
}

impl Origin<'_> {
    fn describe(self, key: &str, value: impl Display) -> String {
        match self {
            Origin::File(path) => format!("{key} = {value} in {}", path.display()),
            Origin::Flags => format!("--{} {value}", key.replace('_', "-")),
        }
    }

    fn secs(self, key: &str, value: f64) -> Result<Duration, ConfigError> {
        Duration::try_from_secs_f64(value).map_err(|_| {
            ConfigError::Invalid(format!(
                "{} is not a duration in seconds",
                self.describe(key, value)
            ))
        })
    }
}

impl WorkerSettings {
    /// Reads and parses the TOML file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            at: e
                .span()
                .map(|span| where_in(&text, span.start))
                .unwrap_or_default(),
            message: e.message().trim().to_owned(),
        })
    }

    /// The keys this layer sets.
    pub fn keys(&self) -> Vec<&'static str> {
        let set = [
            ("coordinator", self.coordinator.is_some()),
            ("coordinators", self.coordinators.is_some()),
            ("data_dir", self.data_dir.is_some()),
            ("encoder", self.encoder.is_some()),
            ("sessions", self.sessions.is_some()),
            ("gpu", self.gpu.is_some()),
            ("gpu_hash_share", self.gpu_hash_share.is_some()),
            ("metrics_addr", self.metrics_addr.is_some()),
            ("dashboard_addr", self.dashboard_addr.is_some()),
            ("source_addr", self.source_addr.is_some()),
            ("price_per_unit", self.price_per_unit.is_some()),
            ("price_per_byte", self.price_per_byte.is_some()),
            ("ticket_face_value", self.ticket_face_value.is_some()),
            (
                "ticket_win_prob_one_in",
                self.ticket_win_prob_one_in.is_some(),
            ),
            ("storage_capacity", self.storage_capacity.is_some()),
            ("scrub_interval_secs", self.scrub_interval_secs.is_some()),
            ("redeem_delay_secs", self.redeem_delay_secs.is_some()),
            ("host_collectives", self.host_collectives.is_some()),
            ("host_roots", self.host_roots.is_some()),
        ];
        set.into_iter()
            .filter(|(_, set)| *set)
            .map(|(key, _)| key)
            .collect()
    }

    /// Lays this layer's settings over `config`.
    fn apply(&self, config: &mut WorkerConfig, origin: Origin<'_>) -> Result<(), ConfigError> {
        if let Some(urls) = self.coordinator_urls(origin)? {
            config.coordinators = urls;
        }
        if let Some(v) = &self.data_dir {
            config.data_dir.clone_from(v);
        }
        if let Some(v) = &self.encoder {
            config.encoder = v.clone();
        }
        if let Some(v) = self.sessions {
            config.sessions = v;
        }
        if let Some(v) = self.gpu {
            config.gpu = v;
        }
        if let Some(v) = self.gpu_hash_share {
            config.gpu_hash_share = v;
        }
        if self.metrics_addr.is_some() {
            config.metrics_addr = self.metrics_addr;
        }
        if self.dashboard_addr.is_some() {
            config.dashboard_addr = self.dashboard_addr;
        }
        if self.source_addr.is_some() {
            config.source_addr = self.source_addr;
        }
        if let Some(v) = self.price_per_unit {
            config.price_per_unit = v;
        }
        if let Some(v) = self.price_per_byte {
            config.price_per_byte = v;
        }
        if let Some(v) = self.ticket_face_value {
            config.ticket_face_value = v;
        }
        if let Some(v) = self.ticket_win_prob_one_in {
            config.ticket_win_prob_one_in = v;
        }
        if let Some(v) = self.storage_capacity {
            config.storage_capacity = v.as_u64();
        }
        if let Some(v) = self.scrub_interval_secs {
            config.scrub_interval = origin.secs("scrub_interval_secs", v)?;
        }
        if let Some(v) = self.redeem_delay_secs {
            config.redeem_delay = origin.secs("redeem_delay_secs", v)?;
        }
        if let Some(v) = &self.host_collectives {
            config.host_collectives.clone_from(v);
        }
        if let Some(v) = &self.host_roots {
            config.host_roots.clone_from(v);
        }
        #[cfg(feature = "fault-injection")]
        if self.fault.is_some() {
            config.fault = self.fault;
        }
        Ok(())
    }
}

impl WorkerSettings {
    /// The coordinators this layer names, from `coordinator` (split at commas) or `coordinators`,
    /// each trimmed; both at once is refused, as the two would say different things.
    fn coordinator_urls(&self, origin: Origin<'_>) -> Result<Option<Vec<String>>, ConfigError> {
        let split = |text: &str| text.split(',').map(|u| u.trim().to_owned()).collect();
        match (&self.coordinator, &self.coordinators) {
            (Some(_), Some(_)) => Err(ConfigError::Invalid(format!(
                "{} sets both coordinator and coordinators: keep one (coordinators = [\"http://a:7300\", \"http://b:7300\"] lists several)",
                match origin {
                    Origin::File(path) => path.display().to_string(),
                    Origin::Flags => "the command line".to_owned(),
                }
            ))),
            (Some(text), None) => Ok(Some(split(text))),
            (None, Some(urls)) => Ok(Some(urls.iter().map(|u| u.trim().to_owned()).collect())),
            (None, None) => Ok(None),
        }
    }
}

/// `coordinator` and `coordinators` are one setting: a flag for either shadows the file's either.
fn same_key(a: &str, b: &str) -> bool {
    let coordinator = |k: &str| k == "coordinator" || k == "coordinators";
    a == b || (coordinator(a) && coordinator(b))
}

/// Where a worker's settings come from: the file, read again on every [`ConfigSource::load`], under
/// the flags it was started with.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    pub file: Option<PathBuf>,
    pub flags: WorkerSettings,
}

/// A config read from its source.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: WorkerConfig,
    /// Keys the file sets that a flag or variable overrides, so the file's value is not used.
    pub shadowed: Vec<&'static str>,
}

impl ConfigSource {
    /// Defaults, then the file (read now), then the flags; validated.
    pub fn load(&self) -> Result<Loaded, ConfigError> {
        let mut config = WorkerConfig::new(DEFAULT_COORDINATOR, PathBuf::from(DEFAULT_DATA_DIR));
        let mut shadowed = Vec::new();
        if let Some(path) = &self.file {
            let file = WorkerSettings::load(path)?;
            file.apply(&mut config, Origin::File(path))?;
            let flagged = self.flags.keys();
            shadowed = file
                .keys()
                .into_iter()
                .filter(|key| flagged.iter().any(|flag| same_key(key, flag)))
                .collect();
        }
        self.flags.apply(&mut config, Origin::Flags)?;
        config.validate().map_err(ConfigError::Invalid)?;
        Ok(Loaded { config, shadowed })
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn fixed(n: u32) -> Sessions {
        Sessions::Fixed(NonZeroU32::new(n).expect("not zero"))
    }

    #[test]
    fn sessions_are_auto_or_a_count_of_at_least_one() {
        assert_eq!("auto".parse::<Sessions>(), Ok(Sessions::Auto));
        assert_eq!(" AUTO ".parse::<Sessions>(), Ok(Sessions::Auto));
        assert_eq!("3".parse::<Sessions>(), Ok(fixed(3)));
        for bad in ["0", "many", "-1", "257", "1.5", ""] {
            let err = bad.parse::<Sessions>().expect_err(bad);
            assert!(err.contains("auto"), "{bad}: {err}");
        }
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_the_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.toml");
        std::fs::write(
            &path,
            "sessions = 2\nstorage_capacity = \"2GiB\"\nencoder = \"libx264\"\ngpu = \"off\"\nprice_per_unit = 5\nprice_per_byte = 3\n",
        )
        .expect("write");
        let mut source = ConfigSource {
            file: Some(path.clone()),
            flags: WorkerSettings::default(),
        };
        let loaded = source.load().expect("loads");
        assert_eq!(loaded.config.sessions, fixed(2));
        assert_eq!(loaded.config.storage_capacity, 2 << 30);
        assert_eq!(
            loaded.config.encoder,
            EncoderChoice::Named("libx264".into())
        );
        assert_eq!(loaded.config.gpu, GpuMode::Off);
        assert_eq!(loaded.config.price_per_unit, 5);
        assert_eq!(loaded.config.price_per_byte, 3);
        assert_eq!(loaded.config.coordinators, [DEFAULT_COORDINATOR]);
        assert!(loaded.shadowed.is_empty());

        source.flags.sessions = Some(Sessions::Auto);
        source.flags.price_per_unit = Some(0);
        let loaded = source.load().expect("loads");
        assert_eq!(loaded.config.sessions, Sessions::Auto);
        assert_eq!(loaded.config.price_per_unit, 0);
        assert_eq!(loaded.config.storage_capacity, 2 << 30);
        assert_eq!(loaded.shadowed, ["sessions", "price_per_unit"]);

        std::fs::write(&path, "sessions = \"auto\"\nstorage_capacity = 4096\n").expect("write");
        source.flags = WorkerSettings::default();
        let loaded = source.load().expect("loads");
        assert_eq!(loaded.config.sessions, Sessions::Auto);
        assert_eq!(loaded.config.storage_capacity, 4096);
    }

    #[test]
    fn hosted_collectives_come_from_the_file_or_the_flags_and_bad_names_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.toml");
        std::fs::write(&path, "host_collectives = [\"films\", \"shows\"]\n").expect("write");
        let mut source = ConfigSource {
            file: Some(path.clone()),
            flags: WorkerSettings::default(),
        };
        let loaded = source.load().expect("loads");
        assert_eq!(loaded.config.host_collectives, ["films", "shows"]);
        source.flags.host_collectives = Some(vec!["news".into()]);
        let loaded = source.load().expect("loads");
        assert_eq!(loaded.config.host_collectives, ["news"]);
        assert_eq!(loaded.shadowed, ["host_collectives"]);
        source.flags.host_collectives = Some(vec!["Bad Name".into()]);
        let err = source.load().expect_err("bad name");
        assert!(err.to_string().contains("--host-collective"), "{err}");
        assert!(err.to_string().contains("may hold only"), "{err}");
    }

    #[test]
    fn hosted_roots_come_from_the_file_or_the_flags_and_bad_roots_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.toml");
        let (a, b) = ("ab".repeat(32), "CD".repeat(32));
        std::fs::write(&path, format!("host_roots = [\"{a}\"]\n")).expect("write");
        let mut source = ConfigSource {
            file: Some(path.clone()),
            flags: WorkerSettings::default(),
        };
        assert_eq!(source.load().expect("loads").config.host_roots, [a]);
        source.flags.host_roots = Some(vec![b.clone()]);
        let loaded = source.load().expect("loads");
        assert_eq!(loaded.config.host_roots, [b]);
        assert_eq!(loaded.shadowed, ["host_roots"]);
        for (bad, words) in [
            ("ab".repeat(31), "64 hex digits"),
            ("zz".repeat(32), "64 hex digits"),
        ] {
            source.flags.host_roots = Some(vec![bad.clone()]);
            let err = source.load().expect_err("bad root");
            assert!(err.to_string().contains(&format!("host {bad:?}")), "{err}");
            assert!(err.to_string().contains(words), "{err}");
        }
    }

    #[test]
    fn coordinators_come_from_one_url_a_comma_list_or_a_list_in_the_file_or_the_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.toml");
        let mut source = ConfigSource {
            file: Some(path.clone()),
            flags: WorkerSettings::default(),
        };
        for (text, urls) in [
            ("", &[DEFAULT_COORDINATOR][..]),
            ("coordinator = \"http://a:7300\"\n", &["http://a:7300"][..]),
            (
                "coordinator = \"http://a:7300, http://b:7300\"\n",
                &["http://a:7300", "http://b:7300"][..],
            ),
            (
                "coordinators = [\"http://b:7300\", \"http://a:7300\"]\n",
                &["http://b:7300", "http://a:7300"][..],
            ),
        ] {
            std::fs::write(&path, text).expect("write");
            let loaded = source.load().expect(text);
            assert_eq!(loaded.config.coordinators, urls, "{text:?}");
        }

        // Flags (repeated or comma-separated, split by clap) win over either form in the file.
        source.flags.coordinators = Some(vec!["http://c:7300".into(), "http://d:7300".into()]);
        let loaded = source.load().expect("loads");
        assert_eq!(
            loaded.config.coordinators,
            ["http://c:7300", "http://d:7300"]
        );
        assert_eq!(loaded.shadowed, ["coordinators"]);
        std::fs::write(&path, "coordinator = \"http://a:7300\"\n").expect("write");
        assert_eq!(source.load().expect("loads").shadowed, ["coordinator"]);

        source.flags = WorkerSettings::default();
        for (text, named) in [
            (
                "coordinator = \"http://a:7300\"\ncoordinators = [\"http://b:7300\"]\n",
                "both coordinator and coordinators",
            ),
            ("coordinators = []\n", "no coordinator URL"),
            (
                "coordinators = [\"http://a:7300\", \"a:7301\"]\n",
                "\"a:7301\" must be a URL",
            ),
            (
                "coordinator = \"http://a:7300,http://a:7300\"\n",
                "\"http://a:7300\" is listed twice",
            ),
            ("coordinators = \"http://a:7300\"\n", "coordinators"),
        ] {
            std::fs::write(&path, text).expect("write");
            let err = source.load().expect_err(text).to_string();
            assert!(err.contains(named), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_bad_file_is_refused_naming_what_is_wrong() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.toml");
        let source = ConfigSource {
            file: Some(path.clone()),
            flags: WorkerSettings::default(),
        };
        let err = source.load().expect_err("missing file").to_string();
        assert!(err.contains("cannot read config file"), "{err}");
        for (text, named) in [
            ("sesions = 2\n", "sesions"),
            ("sessions = 0\n", "sessions"),
            ("sessions = \"many\"\n", "many"),
            ("sessions = 2\nsessions = 3\n", "sessions"),
            ("sessions = [\n", "worker.toml"),
            ("encoder = \"lib x264\"\n", "lib x264"),
            (
                "scrub_interval_secs = -1.0\n",
                "scrub_interval_secs = -1 in",
            ),
            ("gpu_hash_share = 2.0\n", "gpu-hash-share"),
            ("fault = \"blank\"\n", "fault"),
        ] {
            std::fs::write(&path, text).expect("write");
            let err = source.load().expect_err(text).to_string();
            assert!(err.contains(named), "{text:?}: {err}");
        }
    }

    #[test]
    fn only_keys_that_changed_need_a_restart() {
        let running = WorkerConfig::new(DEFAULT_COORDINATOR, PathBuf::from("data"));
        let mut next = running.clone();
        next.sessions = fixed(4);
        assert!(running.restart_keys(&next).is_empty());
        next.storage_capacity += 1;
        next.scrub_interval = Duration::from_secs(1);
        assert_eq!(
            running.restart_keys(&next),
            ["storage_capacity", "scrub_interval_secs"]
        );
    }
}
