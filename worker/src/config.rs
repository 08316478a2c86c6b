//! The worker's validated configuration, and where it comes from: flags, `DUALRIG_*` environment
//! variables and a TOML file agree on names; flags win over the environment, which wins over the file
//! ([`settings`]).

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use dualrig_media::EncoderChoice;

use crate::hash::GpuMode;

pub mod settings;

pub use settings::{ConfigError, ConfigSource, Loaded, WorkerSettings};

/// The worker's key file inside its data dir.
pub const KEY_FILE: &str = "worker.key";

/// The coordinator a worker serves when nothing says otherwise.
pub const DEFAULT_COORDINATOR: &str = "http://127.0.0.1:7300";

/// The data dir when nothing says otherwise.
pub const DEFAULT_DATA_DIR: &str = "dualrig-worker-data";

/// Most jobs a worker may be told to run at once: far above what one encoder holds, low enough that a
/// typo (`10000`) is refused rather than letting the coordinator hand out that many segments.
pub const MAX_SESSIONS: u32 = 256;

/// How many jobs the worker runs at once (`--sessions`, `sessions` in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sessions {
    /// From the encoder: 1 for libx264 (it already uses every core); for a hardware encoder, the 1080p
    /// sessions it opens divided by the default ladder's renditions, at least 1.
    #[default]
    Auto,
    Fixed(NonZeroU32),
}

impl FromStr for Sessions {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("auto") {
            return Ok(Sessions::Auto);
        }
        let n: u64 = text
            .parse()
            .map_err(|_| format!("{text:?} is neither auto nor a number of jobs (1, 2, …)"))?;
        Sessions::from_count(n)
    }
}

impl Sessions {
    fn from_count(n: u64) -> Result<Self, String> {
        u32::try_from(n)
            .ok()
            .filter(|n| *n <= MAX_SESSIONS)
            .and_then(NonZeroU32::new)
            .map(Sessions::Fixed)
            .ok_or_else(|| {
                format!("{n} jobs at once: must be auto or a number from 1 to {MAX_SESSIONS}")
            })
    }
}

impl fmt::Display for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sessions::Auto => f.write_str("auto"),
            Sessions::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// `sessions = 2` or `sessions = "auto"` (or `"2"`) in the file.
impl<'de> serde::Deserialize<'de> for Sessions {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Sessions;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"auto\" or a number of jobs from 1 to 256")
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Sessions, E> {
                Sessions::from_count(n).map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Sessions, E> {
                let n = u64::try_from(n).map_err(|_| {
                    E::custom(format!(
                        "{n} jobs at once: must be auto or a number from 1 to {MAX_SESSIONS}"
                    ))
                })?;
                Sessions::from_count(n).map_err(E::custom)
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Sessions, E> {
                text.parse().map_err(E::custom)
            }
        }
        de.deserialize_any(Visitor)
    }
}

/// Blob store capacity when `--storage-capacity` is absent: 10 GiB.
pub const DEFAULT_STORAGE_CAPACITY: u64 = 10 << 30;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The coordinators' gRPC URLs, e.g. `http://127.0.0.1:7300`: one, or several that share one
    /// ledger, of which the worker serves one at a time ([`crate::coordinators`]).
    pub coordinators: Vec<String>,
    /// Holds the worker's key and its scratch space.
    pub data_dir: PathBuf,
    pub encoder: EncoderChoice,
    /// Jobs run at once; [`Sessions::Auto`] picks from the encoder. The one setting a reload changes
    /// live ([`crate::reload`]).
    pub sessions: Sessions,
    pub gpu: GpuMode,
    /// Most share of the time hashing may keep the GPU busy, in (0, 1] (`--gpu-hash-share`).
    pub gpu_hash_share: f64,
    pub metrics_addr: Option<SocketAddr>,
    /// Where to serve the dashboard (`--dashboard-addr`; off when absent).
    pub dashboard_addr: Option<SocketAddr>,
    /// The local address connections to the coordinator leave from (`--source-addr`; the system's
    /// choice when absent): the coordinator places copies and boosts hosting rewards by the network it
    /// sees a worker on.
    pub source_addr: Option<std::net::IpAddr>,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
    /// What clients pay this worker per output pixel; 0 works for free and takes no tickets.
    pub price_per_unit: u64,
    /// What a paid download pays this worker per byte it serves; 0 serves downloads for free.
    pub price_per_byte: u64,
    /// Face value of the worker's tickets, and one in how many wins.
    pub ticket_face_value: u64,
    pub ticket_win_prob_one_in: u64,
    /// Most bytes the blob store may occupy, outboards included (`--storage-capacity`).
    pub storage_capacity: u64,
    /// Time between scrubs of the blob store.
    pub scrub_interval: Duration,
    /// How long a winning ticket waits before its redemption (`--redeem-delay-secs`; 0: at once).
    pub redeem_delay: Duration,
    /// Collectives whose blobs the worker pulls and hosts of its own accord (`--host-collective`);
    /// its account must be a member of each.
    pub host_collectives: Vec<String>,
    /// Blobs, by hex root, the worker pulls and hosts of its own accord (`dualrig-worker host ROOT…`,
    /// `--host ROOT`).
    pub host_roots: Vec<String>,
    /// Cheat on every job this way (`--fault`), for tests of verification.
    #[cfg(feature = "fault-injection")]
    pub fault: Option<crate::job::Fault>,
}

impl WorkerConfig {
    /// Defaults for a worker of the coordinator at `coordinator`, keeping its files in `data_dir`.
    pub fn new(coordinator: impl Into<String>, data_dir: PathBuf) -> Self {
        Self {
            coordinators: vec![coordinator.into()],
            data_dir,
            encoder: EncoderChoice::Auto,
            sessions: Sessions::Auto,
            gpu: GpuMode::Auto,
            gpu_hash_share: 1.0,
            metrics_addr: None,
            dashboard_addr: None,
            source_addr: None,
            max_backoff: Duration::from_secs(10),
            price_per_unit: 0,
            price_per_byte: 0,
            ticket_face_value: 1_000_000,
            ticket_win_prob_one_in: 100,
            storage_capacity: DEFAULT_STORAGE_CAPACITY,
            scrub_interval: Duration::from_secs(6 * 3600),
            redeem_delay: Duration::ZERO,
            host_collectives: Vec::new(),
            host_roots: Vec::new(),
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

    /// The file keys whose values differ between this running config and `next`, `sessions` aside
    /// (the one a reload applies live): each takes effect only at the next start.
    pub fn restart_keys(&self, next: &WorkerConfig) -> Vec<&'static str> {
        let differs = [
            ("coordinator", self.coordinators != next.coordinators),
            ("data_dir", self.data_dir != next.data_dir),
            ("encoder", self.encoder != next.encoder),
            ("gpu", self.gpu != next.gpu),
            ("gpu_hash_share", self.gpu_hash_share != next.gpu_hash_share),
            ("metrics_addr", self.metrics_addr != next.metrics_addr),
            ("dashboard_addr", self.dashboard_addr != next.dashboard_addr),
            ("source_addr", self.source_addr != next.source_addr),
            (
                "host_collectives",
                self.host_collectives != next.host_collectives,
            ),
            ("host_roots", self.host_roots != next.host_roots),
            ("price_per_unit", self.price_per_unit != next.price_per_unit),
            ("price_per_byte", self.price_per_byte != next.price_per_byte),
            (
                "ticket_face_value",
                self.ticket_face_value != next.ticket_face_value,
            ),
            (
                "ticket_win_prob_one_in",
                self.ticket_win_prob_one_in != next.ticket_win_prob_one_in,
            ),
            (
                "storage_capacity",
                self.storage_capacity != next.storage_capacity,
            ),
            (
                "scrub_interval_secs",
                self.scrub_interval != next.scrub_interval,
            ),
            ("redeem_delay_secs", self.redeem_delay != next.redeem_delay),
        ];
        differs
            .into_iter()
            .filter(|(_, differs)| *differs)
            .map(|(key, _)| key)
            .collect()
    }

    pub fn validate(&self) -> Result<(), String> {
        for name in &self.host_collectives {
            dualrig_proto::access::check_name(name)
                .map_err(|e| format!("--host-collective: {e}"))?;
        }
        for root in &self.host_roots {
            dualrig_proto::proof::parse_root(root).map_err(|e| format!("host {root:?}: {e}"))?;
        }
        check_coordinators(&self.coordinators)?;
        if !(self.gpu_hash_share > 0.0 && self.gpu_hash_share <= 1.0) {
            return Err(format!(
                "--gpu-hash-share must be above 0 and at most 1 (got {})",
                self.gpu_hash_share
            ));
        }
        if (self.price_per_unit > 0 || self.price_per_byte > 0)
            && (self.ticket_face_value == 0 || self.ticket_win_prob_one_in == 0)
        {
            return Err(
                "--ticket-face-value and --ticket-win-prob-one-in must be above 0 when --price-per-unit or --price-per-byte is".into(),
            );
        }
        if self.scrub_interval < Duration::from_millis(10) {
            return Err("--scrub-interval-secs must be at least 0.01".into());
        }
        Ok(())
    }
}

/// Each URL is one such as `http://127.0.0.1:7300`, none is listed twice, and there is one at least.
fn check_coordinators(urls: &[String]) -> Result<(), String> {
    if urls.is_empty() {
        return Err(format!(
            "--coordinator: no coordinator URL given (one such as {DEFAULT_COORDINATOR}, or several separated by commas)"
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for url in urls {
        let is_url = (url.starts_with("http://") || url.starts_with("https://"))
            && url
                .parse::<tonic::transport::Uri>()
                .is_ok_and(|uri| uri.host().is_some());
        if !is_url {
            return Err(format!(
                "--coordinator {url:?} must be a URL such as http://127.0.0.1:7300"
            ));
        }
        if !seen.insert(url.trim_end_matches('/')) {
            return Err(format!(
                "--coordinator {url:?} is listed twice: give each coordinator once"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_coordinators(urls: &[&str]) -> Result<(), String> {
        let mut config = WorkerConfig::new("http://127.0.0.1:7300", PathBuf::from("data"));
        config.coordinators = urls.iter().map(|u| (*u).to_owned()).collect();
        config.validate()
    }

    #[test]
    fn each_coordinator_url_is_checked_and_the_bad_one_named() {
        assert_eq!(
            with_coordinators(&["http://a:7300", "https://b:7300"]),
            Ok(())
        );
        for (urls, named) in [
            (&["http://a:7300", "b:7300"][..], "\"b:7300\""),
            (&["http://a:7300", ""][..], "\"\""),
            (&["http://a:7300", "http://"][..], "\"http://\""),
            (&["ftp://c:21"][..], "\"ftp://c:21\""),
        ] {
            let err = with_coordinators(urls).expect_err("refused");
            assert!(
                err.contains(named) && err.contains("must be a URL"),
                "{urls:?}: {err}"
            );
        }
        let err = with_coordinators(&["http://a:7300", "http://b:7300", "http://a:7300/"])
            .expect_err("duplicate");
        assert!(err.contains("\"http://a:7300/\" is listed twice"), "{err}");
        let err = with_coordinators(&[]).expect_err("empty");
        assert!(err.contains("no coordinator URL"), "{err}");
    }

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
