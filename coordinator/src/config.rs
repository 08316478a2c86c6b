//! The coordinator's validated configuration: flags, `DUALRIG_*` environment variables and a TOML file
//! agree on names; flags win over the environment, which wins over the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::ledger::{
    GovernanceRules, HELD_BACK_STEPS, HostingRules, LedgerConfig, SipRules, SlashFraction,
};

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
    pub database_url: Option<String>,
    pub advertise_addr: Option<String>,
    pub metrics_addr: Option<SocketAddr>,
    pub max_segment_bytes: Option<u64>,
    pub max_attempts: Option<u32>,
    pub worker_wait_secs: Option<f64>,
    pub job_timeout_secs: Option<f64>,
    pub heartbeat_interval_secs: Option<f64>,
    pub genesis: Option<PathBuf>,
    pub round_secs: Option<f64>,
    pub min_stake: Option<u64>,
    pub draw_seed: Option<u64>,
    pub unbonding_rounds: Option<u64>,
    pub unlock_rounds: Option<u64>,
    pub ticket_validity_rounds: Option<u64>,
    pub suspend_rounds: Option<u64>,
    pub slash_fraction_ppm: Option<u32>,
    pub download_fee_share_ppm: Option<u32>,
    pub content_check_share: Option<f64>,
    pub content_check_first_jobs: Option<u64>,
    pub require_payment: Option<bool>,
    pub replicas: Option<u32>,
    pub max_blob_bytes: Option<u64>,
    pub challenge_interval_secs: Option<f64>,
    pub challenge_deadline_secs: Option<f64>,
    pub challenge_k: Option<u32>,
    pub challenge_blobs: Option<u32>,
    pub surge_window_secs: Option<f64>,
    pub surge_serve_bytes_per_sec: Option<u64>,
    pub surge_threshold_ppm: Option<u32>,
    pub surge_max_multiplier_ppm: Option<u32>,
    pub surge_extra_replicas: Option<u32>,
    pub upload_idle_secs: Option<f64>,
    pub upload_deadline_secs: Option<f64>,
    pub max_staged_segment_bytes: Option<u64>,
    pub max_staged_segment_bytes_per_client: Option<u64>,
    pub max_staged_blob_bytes: Option<u64>,
    pub max_staged_blob_bytes_per_client: Option<u64>,
    pub disk_reserve_bytes: Option<u64>,
    pub holder_offline_grace_secs: Option<f64>,
    pub evidence_max_bytes: Option<u64>,
    pub evidence_retention_secs: Option<f64>,
    pub hosting_mint_per_round: Option<u64>,
    pub hosting_inflation_ppm: Option<u32>,
    pub held_back_percent: Option<Vec<u32>>,
    pub held_back_step_rounds: Option<u64>,
    pub held_back_rounds: Option<u64>,
    pub diversity_boost_ppm: Option<u32>,
    pub sip_fee_share_ppm: Option<u32>,
    pub sip_mint_share_ppm: Option<u32>,
    pub sip_mint_ceiling: Option<u64>,
    pub sip_virtual_tokens: Option<u64>,
    pub sip_virtual_weight: Option<u64>,
    pub weight_bleed_ppm: Option<u32>,
    pub mining_weight_stake_ppm: Option<u32>,
    pub proposal_bond: Option<u64>,
    pub vote_delay_rounds: Option<u64>,
    pub vote_period_rounds: Option<u64>,
    pub quorum_ppm: Option<u32>,
    pub approval_ppm: Option<u32>,
    pub capacity_bonus_per_byte: Option<u64>,
    pub capacity_bonus_per_session: Option<u64>,
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
    /// The PostgreSQL database that holds the ledger and the blob index, which several coordinators
    /// may share (`--database-url`). Without it both are SQLite files in `data_dir`.
    pub database_url: Option<String>,
    /// The URL other coordinators, workers and clients reach this one on, as the coordinators registry
    /// lists it (`--advertise-addr`). Without it, `http://` and the address the listener is bound to.
    pub advertise_addr: Option<String>,
    pub metrics_addr: Option<SocketAddr>,
    /// Largest segment a client may upload.
    pub max_segment_bytes: u64,
    /// Workers a job is tried on before the client is told it failed.
    pub max_attempts: u32,
    /// How long a job waits for a worker when none connected could take it, before `Unavailable`. A job
    /// whose workers are only busy queues behind them for up to `job_timeout` instead.
    pub worker_wait: Duration,
    /// How long one worker may hold one job.
    pub job_timeout: Duration,
    /// How often workers send heartbeats; a worker silent for three intervals is dropped.
    pub heartbeat_interval: Duration,
    /// Genesis file applied when the ledger is created; ignored once the ledger exists.
    pub genesis: Option<PathBuf>,
    /// Length of a ledger round.
    pub round: Duration,
    /// Least stake that makes a worker eligible; 0 makes every attached worker eligible (one machine).
    pub min_stake: u64,
    /// Seeds the stake × score draw, so that one sequence of draws repeats (tests, reproducing a
    /// dispute); `None`, the default, draws from the system's entropy. A seeded draw can be foretold by
    /// anyone who knows the seed: never set it on a network that pays.
    pub draw_seed: Option<u64>,
    pub unbonding_rounds: u64,
    pub unlock_rounds: u64,
    /// Most rounds a ticket may stay valid; `None`: half of `unlock_rounds`. Always shorter than
    /// `unlock_rounds` ([`Config::ticket_validity`]).
    pub ticket_validity_rounds: Option<u64>,
    pub suspend_rounds: u64,
    /// Share of a worker's stake a fault moves to the pool (`slash_fraction_ppm` in the file and flags).
    pub slash_fraction: SlashFraction,
    /// Share, in parts per million, of what a download's ticket pays that goes to the `hosting_fees`
    /// pot at redemption (PROTOCOL §6.7).
    pub download_fee_share_ppm: u32,
    /// Share of jobs, in [0, 1], whose renditions also get the content check (PROTOCOL §5).
    pub content_check_share: f64,
    /// A worker's first this many verified jobs always get the content check.
    pub content_check_first_jobs: u64,
    /// Refuse jobs that come without a quote and tickets (operators set it; local runs default to
    /// free work).
    pub require_payment: bool,
    /// Distinct workers a blob is kept on unless its Put asks otherwise (PROTOCOL §6).
    pub replicas: u32,
    /// Largest blob a client may Put.
    pub max_blob_bytes: u64,
    /// Time between the starts of two challenge rounds.
    pub challenge_interval: Duration,
    /// How long a worker has to answer a challenge.
    pub challenge_deadline: Duration,
    /// Chunks proved per challenged blob.
    pub challenge_k: u32,
    /// Blobs challenged per worker per round (all of them when it hosts fewer).
    pub challenge_blobs: u32,
    /// Surge pricing of hot blobs (PROTOCOL §6.8): the demand window, one holder's serve rate, the
    /// saturation that makes a blob hot, the highest multiplier, the copies added while hot.
    pub surge: crate::storage::surge::SurgeRules,
    /// Longest an upload (Transcode, Put) may go without sending anything.
    pub upload_idle: Duration,
    /// Longest a Transcode upload may take; a Put gets this plus a second per MiB.
    pub upload_deadline: Duration,
    /// Segment bytes held in memory for uploads at once, in total and from one client address.
    pub max_staged_segment_bytes: u64,
    pub max_staged_segment_bytes_per_client: u64,
    /// Blob bytes staged on disk for Puts at once, in total and from one client address.
    pub max_staged_blob_bytes: u64,
    pub max_staged_blob_bytes_per_client: u64,
    /// Free disk space Put staging always leaves.
    pub disk_reserve_bytes: u64,
    /// How long a holder may be offline before its copies stop counting and are repaired elsewhere.
    pub holder_offline_grace: Duration,
    /// Slash evidence kept in `DATA_DIR/evidence` at most, in bytes; past it, the evidence of the slashes
    /// that moved the least goes first.
    pub evidence_max_bytes: u64,
    /// How long slash evidence is kept.
    pub evidence_retention: Duration,
    /// How hosting rewards are minted and held back (PROTOCOL §6.9).
    pub hosting: HostingRules,
    /// Extra hosting credit (ppm of a copy's bytes) for a copy on a network that holds no other copy of
    /// its blob.
    pub diversity_boost_ppm: u32,
    /// The service infrastructure pool's shares and its mining weight curve (PROTOCOL §6.11).
    pub sip: SipRules,
    /// How SIP proposals are bonded, voted on and decided (PROTOCOL §6.12).
    pub governance: GovernanceRules,
    /// Units the capacity fund pays per byte proven beyond a worker's previous maximum (§6.13).
    pub capacity_bonus_per_byte: u64,
    /// Units the capacity fund pays per encoder session proven, by overlapping verified jobs, beyond
    /// a worker's previous maximum (§6.13).
    pub capacity_bonus_per_session: u64,
}

/// Most copies of one blob a Put may ask for.
pub const MAX_REPLICAS: u32 = 16;

impl Config {
    /// Defaults that run on one machine, with the data in `data_dir`.
    pub fn local(data_dir: PathBuf) -> Self {
        let ledger = LedgerConfig::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7300)),
            data_dir,
            database_url: None,
            advertise_addr: None,
            metrics_addr: None,
            max_segment_bytes: dualrig_proto::DEFAULT_MAX_SEGMENT_BYTES,
            max_attempts: 3,
            worker_wait: Duration::from_secs(10),
            job_timeout: Duration::from_secs(120),
            heartbeat_interval: Duration::from_secs(2),
            genesis: None,
            round: Duration::from_secs(60),
            min_stake: ledger.min_stake,
            draw_seed: None,
            unbonding_rounds: ledger.unbonding_rounds,
            unlock_rounds: ledger.unlock_rounds,
            ticket_validity_rounds: None,
            suspend_rounds: ledger.suspend_rounds,
            slash_fraction: SlashFraction::DEFAULT,
            download_fee_share_ppm: ledger.download_fee_share_ppm,
            content_check_share: 0.1,
            content_check_first_jobs: 3,
            require_payment: false,
            replicas: 3,
            max_blob_bytes: 64 << 30,
            challenge_interval: Duration::from_secs(300),
            challenge_deadline: Duration::from_secs(30),
            challenge_k: 16,
            challenge_blobs: 32,
            surge: crate::storage::surge::SurgeRules {
                window: Duration::from_secs(300),
                serve_bytes_per_sec: 50 << 20,
                threshold_ppm: 1_000_000,
                max_multiplier_ppm: 4_000_000,
                extra_replicas: 2,
            },
            upload_idle: Duration::from_secs(30),
            upload_deadline: Duration::from_secs(300),
            max_staged_segment_bytes: 1 << 30,
            max_staged_segment_bytes_per_client: 256 << 20,
            max_staged_blob_bytes: 256 << 30,
            max_staged_blob_bytes_per_client: 64 << 30,
            disk_reserve_bytes: 1 << 30,
            holder_offline_grace: Duration::from_secs(6 * 3600),
            evidence_max_bytes: 4 << 30,
            evidence_retention: Duration::from_secs(90 * 24 * 3600),
            hosting: ledger.hosting,
            diversity_boost_ppm: 250_000,
            sip: ledger.sip,
            governance: ledger.governance,
            capacity_bonus_per_byte: ledger.capacity_bonus_per_byte,
            capacity_bonus_per_session: ledger.capacity_bonus_per_session,
        }
    }

    /// The ledger's rules from these settings.
    pub fn ledger_config(&self) -> LedgerConfig {
        LedgerConfig {
            unbonding_rounds: self.unbonding_rounds,
            unlock_rounds: self.unlock_rounds,
            min_stake: self.min_stake,
            suspend_rounds: self.suspend_rounds,
            hosting: self.hosting,
            download_fee_share_ppm: self.download_fee_share_ppm,
            sip: self.sip,
            governance: self.governance,
            capacity_bonus_per_byte: self.capacity_bonus_per_byte,
            capacity_bonus_per_session: self.capacity_bonus_per_session,
        }
    }

    /// Where the ledger database lives.
    pub fn ledger_path(&self) -> PathBuf {
        self.data_dir.join("ledger.db")
    }

    /// The ledger's place as messages name it: the SQLite file, or the database URL without its
    /// password.
    pub fn ledger_shown(&self) -> PathBuf {
        match &self.database_url {
            Some(url) => PathBuf::from(shown_url(url)),
            None => self.ledger_path(),
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
        if file.database_url.is_some() {
            self.database_url = file.database_url;
        }
        if file.advertise_addr.is_some() {
            self.advertise_addr = file.advertise_addr;
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
        if file.genesis.is_some() {
            self.genesis = file.genesis;
        }
        if let Some(v) = file.round_secs {
            self.round = secs("round_secs", v)?;
        }
        if let Some(v) = file.min_stake {
            self.min_stake = v;
        }
        if let Some(v) = file.draw_seed {
            self.draw_seed = Some(v);
        }
        if let Some(v) = file.unbonding_rounds {
            self.unbonding_rounds = v;
        }
        if let Some(v) = file.unlock_rounds {
            self.unlock_rounds = v;
        }
        if file.ticket_validity_rounds.is_some() {
            self.ticket_validity_rounds = file.ticket_validity_rounds;
        }
        if let Some(v) = file.suspend_rounds {
            self.suspend_rounds = v;
        }
        if let Some(v) = file.slash_fraction_ppm {
            self.slash_fraction = slash_fraction(v)?;
        }
        if let Some(v) = file.download_fee_share_ppm {
            self.download_fee_share_ppm = v;
        }
        if let Some(v) = file.content_check_share {
            self.content_check_share = v;
        }
        if let Some(v) = file.content_check_first_jobs {
            self.content_check_first_jobs = v;
        }
        if let Some(v) = file.require_payment {
            self.require_payment = v;
        }
        if let Some(v) = file.replicas {
            self.replicas = v;
        }
        if let Some(v) = file.max_blob_bytes {
            self.max_blob_bytes = v;
        }
        if let Some(v) = file.challenge_interval_secs {
            self.challenge_interval = secs("challenge_interval_secs", v)?;
        }
        if let Some(v) = file.challenge_deadline_secs {
            self.challenge_deadline = secs("challenge_deadline_secs", v)?;
        }
        if let Some(v) = file.holder_offline_grace_secs {
            self.holder_offline_grace = secs("holder_offline_grace_secs", v)?;
        }
        if let Some(v) = file.evidence_retention_secs {
            self.evidence_retention = secs("evidence_retention_secs", v)?;
        }
        if let Some(v) = file.upload_idle_secs {
            self.upload_idle = secs("upload_idle_secs", v)?;
        }
        if let Some(v) = file.upload_deadline_secs {
            self.upload_deadline = secs("upload_deadline_secs", v)?;
        }
        let bytes = [
            (
                file.max_staged_segment_bytes,
                &mut self.max_staged_segment_bytes,
            ),
            (
                file.max_staged_segment_bytes_per_client,
                &mut self.max_staged_segment_bytes_per_client,
            ),
            (file.max_staged_blob_bytes, &mut self.max_staged_blob_bytes),
            (
                file.max_staged_blob_bytes_per_client,
                &mut self.max_staged_blob_bytes_per_client,
            ),
            (file.disk_reserve_bytes, &mut self.disk_reserve_bytes),
            (file.evidence_max_bytes, &mut self.evidence_max_bytes),
        ];
        for (value, field) in bytes {
            if let Some(v) = value {
                *field = v;
            }
        }
        if let Some(v) = file.challenge_k {
            self.challenge_k = v;
        }
        if let Some(v) = file.challenge_blobs {
            self.challenge_blobs = v;
        }
        if let Some(v) = file.hosting_mint_per_round {
            self.hosting.mint_per_round = v;
        }
        if let Some(v) = file.hosting_inflation_ppm {
            self.hosting.inflation_ppm = v;
        }
        if let Some(v) = file.held_back_percent {
            self.hosting.held_back_ppm = held_back_percent(&v)?;
        }
        if let Some(v) = file.held_back_step_rounds {
            self.hosting.held_back_step_rounds = v;
        }
        if let Some(v) = file.held_back_rounds {
            self.hosting.held_back_rounds = v;
        }
        if let Some(v) = file.diversity_boost_ppm {
            self.diversity_boost_ppm = v;
        }
        if let Some(v) = file.sip_fee_share_ppm {
            self.sip.fee_share_ppm = v;
        }
        if let Some(v) = file.sip_mint_share_ppm {
            self.sip.mint_share_ppm = v;
        }
        if let Some(v) = file.sip_mint_ceiling {
            self.sip.mint_ceiling = v;
        }
        if let Some(v) = file.sip_virtual_tokens {
            self.sip.virtual_tokens = v;
        }
        if let Some(v) = file.sip_virtual_weight {
            self.sip.virtual_weight = v;
        }
        if let Some(v) = file.weight_bleed_ppm {
            self.sip.weight_bleed_ppm = v;
        }
        if let Some(v) = file.mining_weight_stake_ppm {
            self.sip.weight_stake_ppm = v;
        }
        self.governance.merge(
            file.proposal_bond,
            file.vote_delay_rounds,
            file.vote_period_rounds,
            file.quorum_ppm,
            file.approval_ppm,
        );
        if let Some(v) = file.capacity_bonus_per_byte {
            self.capacity_bonus_per_byte = v;
        }
        if let Some(v) = file.capacity_bonus_per_session {
            self.capacity_bonus_per_session = v;
        }
        if let Some(v) = file.surge_window_secs {
            self.surge.window = secs("surge_window_secs", v)?;
        }
        if let Some(v) = file.surge_serve_bytes_per_sec {
            self.surge.serve_bytes_per_sec = v;
        }
        if let Some(v) = file.surge_threshold_ppm {
            self.surge.threshold_ppm = v;
        }
        if let Some(v) = file.surge_max_multiplier_ppm {
            self.surge.max_multiplier_ppm = v;
        }
        if let Some(v) = file.surge_extra_replicas {
            self.surge.extra_replicas = v;
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid(format!(
                "--database-url {} is not a PostgreSQL URL such as postgres://user@host:5432/dualrig \
                 (without it the ledger and blob index are SQLite files in --data-dir)",
                shown_url(url)
            )));
        }
        self.validate_advertise_addr()?;
        self.validate_sip()?;
        if self.download_fee_share_ppm > 1_000_000 {
            return Err(ConfigError::Invalid(format!(
                "download_fee_share_ppm = {} is above 1000000 (all of what a ticket pays)",
                self.download_fee_share_ppm
            )));
        }
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
        if self.round < Duration::from_millis(10) {
            return Err(ConfigError::Invalid(format!(
                "round_secs = {} is too short; a round lasts at least 0.01 s",
                self.round.as_secs_f64()
            )));
        }
        if !(0.0..=1.0).contains(&self.content_check_share) {
            return Err(ConfigError::Invalid(format!(
                "content_check_share = {} must be between 0 and 1",
                self.content_check_share
            )));
        }
        if !(1..=MAX_REPLICAS).contains(&self.replicas) {
            return Err(ConfigError::Invalid(format!(
                "replicas = {} must be between 1 and {MAX_REPLICAS}",
                self.replicas
            )));
        }
        if self.governance.vote_period_rounds == 0 {
            return Err(ConfigError::Invalid(
                "vote_period_rounds must be at least 1".into(),
            ));
        }
        if self.governance.quorum_ppm > 1_000_000 || self.governance.approval_ppm > 1_000_000 {
            return Err(ConfigError::Invalid(format!(
                "quorum_ppm and approval_ppm are shares of at most 1000000; got {} and {}",
                self.governance.quorum_ppm, self.governance.approval_ppm
            )));
        }
        if self.hosting.held_back_step_rounds == 0 {
            return Err(ConfigError::Invalid(
                "held_back_step_rounds must be at least 1".into(),
            ));
        }
        if self.hosting.inflation_ppm > 1_000_000 {
            return Err(ConfigError::Invalid(format!(
                "hosting_inflation_ppm = {} would mint more than the supply each round; at most 1000000",
                self.hosting.inflation_ppm
            )));
        }
        if self.surge.threshold_ppm == 0 || self.surge.max_multiplier_ppm < 1_000_000 {
            return Err(ConfigError::Invalid(format!(
                "surge_threshold_ppm must be above 0 and surge_max_multiplier_ppm at least 1000000 (×1); got {} and {}",
                self.surge.threshold_ppm, self.surge.max_multiplier_ppm
            )));
        }
        if self.surge.extra_replicas > MAX_REPLICAS {
            return Err(ConfigError::Invalid(format!(
                "surge_extra_replicas {} is above {MAX_REPLICAS}",
                self.surge.extra_replicas
            )));
        }
        if self.challenge_k == 0 || self.challenge_blobs == 0 {
            return Err(ConfigError::Invalid(
                "challenge_k and challenge_blobs must be at least 1".into(),
            ));
        }
        if self.challenge_interval < Duration::from_millis(10) || self.challenge_deadline.is_zero()
        {
            return Err(ConfigError::Invalid(
                "challenge_interval_secs must be at least 0.01 and challenge_deadline_secs above zero"
                    .into(),
            ));
        }
        if self.ticket_validity() >= self.unlock_rounds {
            return Err(ConfigError::Invalid(format!(
                "ticket_validity_rounds = {} is not shorter than unlock_rounds = {}: a sender could \
                 withdraw its deposit while its tickets can still be redeemed",
                self.ticket_validity(),
                self.unlock_rounds
            )));
        }
        Ok(())
    }

    fn validate_advertise_addr(&self) -> Result<(), ConfigError> {
        match &self.advertise_addr {
            Some(addr) => check_advertise_addr(addr),
            // Other coordinators and workers cannot dial 0.0.0.0; one alone on SQLite is listed as
            // 127.0.0.1.
            None if self.database_url.is_some() && self.listen.ip().is_unspecified() => {
                Err(ConfigError::Invalid(format!(
                    "--listen {} is every interface, which is no address another machine can dial; \
                     with --database-url, set --advertise-addr to the URL this coordinator is reached on \
                     (such as http://10.0.0.5:{})",
                    self.listen,
                    self.listen.port()
                )))
            }
            None => Ok(()),
        }
    }

    /// Seconds after its last heartbeat a coordinator is no longer listed as live: three heartbeat
    /// intervals, at least 2 s (heartbeats are stamped in whole seconds).
    pub fn coordinator_silent_after_secs(&self) -> u64 {
        (self.heartbeat_interval * 3).as_secs_f64().ceil().max(2.0) as u64
    }

    /// The URL the registry lists for this coordinator once its listener is bound to `bound`.
    pub fn advertised(&self, bound: SocketAddr) -> String {
        if let Some(addr) = &self.advertise_addr {
            return addr.clone();
        }
        let mut bound = bound;
        if bound.ip().is_unspecified() {
            bound.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{bound}")
    }

    fn validate_sip(&self) -> Result<(), ConfigError> {
        let sip = &self.sip;
        for (name, ppm) in [
            ("sip_fee_share_ppm", sip.fee_share_ppm),
            ("sip_mint_share_ppm", sip.mint_share_ppm),
            ("weight_bleed_ppm", sip.weight_bleed_ppm),
        ] {
            if ppm > 1_000_000 {
                return Err(ConfigError::Invalid(format!(
                    "{name} = {ppm} is above 1000000 (all of it)"
                )));
            }
        }
        let fees = u64::from(sip.fee_share_ppm) + u64::from(self.download_fee_share_ppm);
        if fees > 1_000_000 {
            return Err(ConfigError::Invalid(format!(
                "sip_fee_share_ppm + download_fee_share_ppm = {fees} is above 1000000: a download's \
                 ticket cannot give away more than it pays"
            )));
        }
        for (name, v) in [
            ("sip_virtual_tokens", sip.virtual_tokens),
            ("sip_virtual_weight", sip.virtual_weight),
        ] {
            if v == 0 || v > i64::MAX as u64 {
                return Err(ConfigError::Invalid(format!(
                    "{name} = {v} must be between 1 and {} (the curve needs both reserves)",
                    i64::MAX
                )));
            }
        }
        Ok(())
    }

    /// How many rounds a ticket may stay valid from the round it is paid in.
    pub fn ticket_validity(&self) -> u64 {
        self.ticket_validity_rounds
            .unwrap_or((self.unlock_rounds / 2).max(1))
    }

    /// Where the blob index (root → holders) lives.
    pub fn blob_index_path(&self) -> PathBuf {
        self.data_dir.join("blobs.db")
    }

    /// Where slash evidence is kept, each item named by its hash.
    pub fn evidence_dir(&self) -> PathBuf {
        self.data_dir.join("evidence")
    }

    /// Where uploads and renditions are staged while they are checked.
    pub fn scratch_dir(&self) -> PathBuf {
        self.data_dir.join("scratch")
    }
}

/// Longest advertised address the registry keeps.
pub const MAX_ADVERTISE_ADDR: usize = 512;

/// An advertised address is an `http://` or `https://` URL with a host and port and nothing after.
pub fn check_advertise_addr(addr: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| {
        Err(ConfigError::Invalid(format!(
            "--advertise-addr {addr:?} {why}; give the URL this coordinator is reached on, such as \
             http://10.0.0.5:7300"
        )))
    };
    if addr.len() > MAX_ADVERTISE_ADDR {
        return bad(&format!("is longer than {MAX_ADVERTISE_ADDR} bytes"));
    }
    let Ok(uri) = addr.parse::<http::Uri>() else {
        return bad("is not a URL");
    };
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return bad("does not start with http:// or https://");
    }
    let Some(authority) = uri.authority() else {
        return bad("names no host");
    };
    if authority.host().is_empty() || authority.port_u16().is_none() {
        return bad("names no host and port");
    }
    if authority.as_str().contains('@') {
        return bad("carries user info");
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return bad("has a path or query after host:port");
    }
    if authority
        .host()
        .trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
    {
        return bad("is every interface, which no one can dial");
    }
    Ok(())
}

/// The share of stake a fault costs, from `slash_fraction_ppm`: the one place it is checked.
pub fn slash_fraction(ppm: u32) -> Result<SlashFraction, ConfigError> {
    SlashFraction::from_ppm(ppm).map_err(|_| {
        ConfigError::Invalid(format!(
            "slash_fraction_ppm = {ppm} is above 1000000 (the whole stake)"
        ))
    })
}

/// A duration in seconds from a config value.
pub fn secs(name: &str, value: f64) -> Result<Duration, ConfigError> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| ConfigError::Invalid(format!("{name} = {value} is not a duration in seconds")))
}

/// The held-back schedule from percentages, one per step of a worker's age (at most
/// [`HELD_BACK_STEPS`], each 0–100).
pub fn held_back_percent(steps: &[u32]) -> Result<[u32; HELD_BACK_STEPS], ConfigError> {
    if steps.len() > HELD_BACK_STEPS || steps.iter().any(|&p| p > 100) {
        return Err(ConfigError::Invalid(format!(
            "held_back_percent = {steps:?}: at most {HELD_BACK_STEPS} steps, each 0 to 100"
        )));
    }
    let mut ppm = [0; HELD_BACK_STEPS];
    for (slot, p) in ppm.iter_mut().zip(steps) {
        *slot = p * 10_000;
    }
    Ok(ppm)
}

/// A database URL fit for logs and errors: a password in it is replaced by `…`.
pub fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _password)) => format!("{scheme}://{name}:…@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
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

        std::fs::write(
            &path,
            "round_secs = 5\nmin_stake = 7\nunbonding_rounds = 2\nunlock_rounds = 3\nsuspend_rounds = 4\nslash_fraction_ppm = 250000\ngenesis = \"g.toml\"\n",
        )
        .expect("write");
        config
            .merge_file(FileConfig::load(&path).expect("parse"))
            .expect("merge");
        assert_eq!(config.round, Duration::from_secs(5));
        assert_eq!(
            config.ledger_config(),
            LedgerConfig {
                unbonding_rounds: 2,
                unlock_rounds: 3,
                min_stake: 7,
                suspend_rounds: 4,
                hosting: HostingRules::DEFAULT,
                download_fee_share_ppm: 100_000,
                sip: SipRules::DEFAULT,
                governance: GovernanceRules::DEFAULT,
                capacity_bonus_per_byte: 0,
                capacity_bonus_per_session: 0,
            }
        );
        assert_eq!(config.slash_fraction.ppm(), 250_000);
        assert_eq!(config.genesis, Some(PathBuf::from("g.toml")));

        std::fs::write(&path, "max_atempts = 5\n").expect("write");
        let err = FileConfig::load(&path).expect_err("typo refused");
        assert!(err.to_string().contains("max_atempts"), "{err}");
    }

    #[test]
    fn governance_settings_come_from_the_file_and_bad_shares_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "proposal_bond = 5
vote_delay_rounds = 2
vote_period_rounds = 20
quorum_ppm = 400000
approval_ppm = 600000
capacity_bonus_per_byte = 3
capacity_bonus_per_session = 5
",
        )
        .expect("write");
        let mut config = Config::local(dir.path().into());
        config
            .merge_file(FileConfig::load(&path).expect("parse"))
            .expect("merge");
        config.validate().expect("valid");
        let ledger = config.ledger_config();
        assert_eq!(
            ledger.governance,
            GovernanceRules {
                proposal_bond: 5,
                vote_delay_rounds: 2,
                vote_period_rounds: 20,
                quorum_ppm: 400_000,
                approval_ppm: 600_000,
            }
        );
        assert_eq!(ledger.capacity_bonus_per_byte, 3);
        assert_eq!(ledger.capacity_bonus_per_session, 5);

        config.governance.quorum_ppm = 1_000_001;
        let err = config.validate().expect_err("quorum above the whole");
        assert!(err.to_string().contains("quorum_ppm"), "{err}");
        config.governance.quorum_ppm = 330_000;
        config.governance.vote_period_rounds = 0;
        let err = config.validate().expect_err("no voting period");
        assert!(err.to_string().contains("vote_period_rounds"), "{err}");
    }

    #[test]
    fn the_content_check_share_comes_from_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "content_check_share = 0.25\ncontent_check_first_jobs = 5\n",
        )
        .expect("write");
        let mut config = Config::local(dir.path().into());
        assert_eq!(
            (config.content_check_share, config.content_check_first_jobs),
            (0.1, 3)
        );
        config
            .merge_file(FileConfig::load(&path).expect("parse"))
            .expect("merge");
        assert_eq!(
            (config.content_check_share, config.content_check_first_jobs),
            (0.25, 5)
        );
        config.validate().expect("valid");
    }

    #[test]
    fn nonsense_is_refused() {
        let mut config = Config::local("/tmp/x".into());
        config.max_attempts = 0;
        assert!(config.validate().is_err());
        assert!(slash_fraction(1_000_001).is_err());
        assert_eq!(slash_fraction(1_000_000).expect("whole").ppm(), 1_000_000);
        let mut config = Config::local("/tmp/x".into());
        config.content_check_share = 1.5;
        assert!(config.validate().is_err());
        assert!(secs("x", -1.0).is_err());
    }

    #[test]
    fn a_held_back_schedule_is_percent_steps_and_nothing_else() {
        assert_eq!(
            held_back_percent(&[75, 50, 25]).expect("steps"),
            [750_000, 500_000, 250_000, 0]
        );
        assert_eq!(held_back_percent(&[]).expect("none"), [0; HELD_BACK_STEPS]);
        for bad in [&[101][..], &[1, 2, 3, 4, 5]] {
            let err = held_back_percent(bad).expect_err("refused");
            assert!(err.to_string().contains("held_back_percent"), "{err}");
        }
        let mut config = Config::local(PathBuf::from("/tmp/x"));
        config.hosting.held_back_step_rounds = 0;
        assert!(config.validate().is_err());
        config.hosting.held_back_step_rounds = 1;
        config.hosting.inflation_ppm = 1_000_001;
        let err = config.validate().expect_err("refused");
        assert!(err.to_string().contains("hosting_inflation_ppm"), "{err}");
    }

    #[test]
    fn sip_settings_come_from_the_file_and_nonsense_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "sip_fee_share_ppm = 20000\nsip_mint_share_ppm = 0\nsip_mint_ceiling = 5\nsip_virtual_tokens = 7\nsip_virtual_weight = 9\nweight_bleed_ppm = 3\nmining_weight_stake_ppm = 2000000\n",
        )
        .expect("write");
        let mut config = Config::local(dir.path().into());
        config
            .merge_file(FileConfig::load(&path).expect("parse"))
            .expect("merge");
        assert_eq!(
            config.ledger_config().sip,
            SipRules {
                fee_share_ppm: 20_000,
                mint_share_ppm: 0,
                mint_ceiling: 5,
                virtual_tokens: 7,
                virtual_weight: 9,
                weight_bleed_ppm: 3,
                weight_stake_ppm: 2_000_000,
            }
        );
        config.validate().expect("valid");
        for (broken, name) in [
            (
                SipRules {
                    fee_share_ppm: 950_000,
                    ..SipRules::DEFAULT
                },
                "download_fee_share_ppm",
            ),
            (
                SipRules {
                    weight_bleed_ppm: 1_000_001,
                    ..SipRules::DEFAULT
                },
                "weight_bleed_ppm",
            ),
            (
                SipRules {
                    virtual_weight: 0,
                    ..SipRules::DEFAULT
                },
                "sip_virtual_weight",
            ),
        ] {
            config.sip = broken;
            let err = config.validate().expect_err("refused");
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn a_database_url_is_postgresql_and_its_password_never_shows() {
        assert_eq!(
            shown_url("postgres://dualrig:hunter2@db:5432/ledger"),
            "postgres://dualrig:…@db:5432/ledger"
        );
        assert_eq!(shown_url("postgres://db/ledger"), "postgres://db/ledger");
        let mut config = Config::local(PathBuf::from("d"));
        config.database_url = Some("mysql://root:secret@db/x".into());
        let refused = config.validate().expect_err("not PostgreSQL").to_string();
        assert!(refused.contains("PostgreSQL URL"), "{refused}");
        assert!(!refused.contains("secret"), "{refused}");
        config.database_url = Some("postgresql://dualrig@db/x".into());
        config.validate().expect("a PostgreSQL URL");
    }

    #[test]
    fn an_advertised_address_is_a_url_someone_can_dial() {
        let mut config = Config::local(PathBuf::from("d"));
        let bound: SocketAddr = "127.0.0.1:7301".parse().expect("addr");
        assert_eq!(config.advertised(bound), "http://127.0.0.1:7301");
        for bad in [
            "10.0.0.5:7300",
            "ftp://10.0.0.5:7300",
            "http://10.0.0.5",
            "http://10.0.0.5:7300/x",
            "http://0.0.0.0:7300",
            "http://[::]:7300",
            "http://u:p@host:7300",
            "not a url",
        ] {
            config.advertise_addr = Some(bad.into());
            let refused = config.validate().expect_err(bad).to_string();
            assert!(refused.contains(bad), "{refused}");
        }
        for good in [
            "http://10.0.0.5:7300",
            "https://coord.example:443/",
            "http://[::1]:7300",
        ] {
            config.advertise_addr = Some(good.into());
            config.validate().expect(good);
            assert_eq!(config.advertised(bound), good);
        }
        // Every interface is fine alone, and refused without an address beside a shared database.
        config.advertise_addr = None;
        config.listen = "0.0.0.0:7300".parse().expect("addr");
        config.validate().expect("alone");
        assert_eq!(
            config.advertised("0.0.0.0:7300".parse().expect("addr")),
            "http://127.0.0.1:7300"
        );
        config.database_url = Some("postgres://db/x".into());
        let refused = config.validate().expect_err("shared").to_string();
        assert!(refused.contains("--advertise-addr"), "{refused}");
        config.advertise_addr = Some("http://10.0.0.5:7300".into());
        config.validate().expect("advertised");
    }
}
