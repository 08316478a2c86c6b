//! `dualrig-coordinator`: serves the dualrig network on one address (the default), lists a running
//! coordinator's slashes and checks their evidence again (`slashes`), or plays honest and cheating
//! strategies against the ledger's rules and prints what each earns (`simulate`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dualrig_coordinator::config::{Config, FileConfig, secs, slash_fraction};

/// The dualrig coordinator: takes jobs from clients, hands them to workers, verifies the results.
///
/// With no subcommand it serves, exactly as `serve` does.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: Args,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the network (the default).
    Serve(Box<Args>),
    /// List a coordinator's slashes, and with --verify check each one's evidence again.
    Slashes(SlashesArgs),
    /// Play honest and cheating strategies against the ledger under these rules, and print each
    /// strategy's profit per round against honest play; the exit status is 1 when a cheat pays.
    Simulate(SimulateArgs),
}

/// Settings of the serving coordinator.
#[derive(Debug, Parser)]
#[command(name = "dualrig-coordinator")]
struct Args {
    /// Address to serve gRPC on.
    #[arg(long, env = "DUALRIG_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory for the coordinator's key, its ledger (`ledger.db`) and staged files.
    #[arg(long, env = "DUALRIG_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL database for the ledger and the blob index, shared by several coordinators
    /// (postgres://user@host:5432/db). Without it both are SQLite files in the data dir.
    #[arg(long, env = "DUALRIG_DATABASE_URL")]
    database_url: Option<String>,
    /// URL other coordinators, workers and clients reach this one on, as `dualrig coordinators` lists
    /// it (default: http:// and the listen address; required with --database-url when listening on
    /// 0.0.0.0).
    #[arg(long, env = "DUALRIG_ADVERTISE_ADDR")]
    advertise_addr: Option<String>,
    /// Address to serve Prometheus metrics on (off when absent).
    #[arg(long, env = "DUALRIG_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// TOML file with any of the settings below (flags and environment win over it).
    #[arg(long, env = "DUALRIG_CONFIG")]
    config: Option<PathBuf>,
    /// Largest segment a client may upload, in bytes.
    #[arg(long, env = "DUALRIG_MAX_SEGMENT_BYTES")]
    max_segment_bytes: Option<u64>,
    /// Workers a job is tried on before it is reported failed.
    #[arg(long, env = "DUALRIG_MAX_ATTEMPTS")]
    max_attempts: Option<u32>,
    /// Seconds a job waits for a free worker before `Unavailable`.
    #[arg(long, env = "DUALRIG_WORKER_WAIT_SECS")]
    worker_wait_secs: Option<f64>,
    /// Seconds one worker may hold one job.
    #[arg(long, env = "DUALRIG_JOB_TIMEOUT_SECS")]
    job_timeout_secs: Option<f64>,
    /// Seconds between worker heartbeats.
    #[arg(long, env = "DUALRIG_HEARTBEAT_INTERVAL_SECS")]
    heartbeat_interval_secs: Option<f64>,
    /// Genesis TOML (`[[accounts]] id, balance`) applied when the ledger is first created.
    #[arg(long, env = "DUALRIG_GENESIS")]
    genesis: Option<PathBuf>,
    /// Seconds in a ledger round.
    #[arg(long, env = "DUALRIG_ROUND_SECS")]
    round_secs: Option<f64>,
    /// Least stake, in base units, that makes a worker eligible (0: every attached worker is).
    #[arg(long, env = "DUALRIG_MIN_STAKE")]
    min_stake: Option<u64>,
    /// Rounds an unbond waits before its stake can be withdrawn.
    #[arg(long, env = "DUALRIG_UNBONDING_ROUNDS")]
    unbonding_rounds: Option<u64>,
    /// Rounds a sender's unlock waits before deposit and reserve can be withdrawn.
    #[arg(long, env = "DUALRIG_UNLOCK_ROUNDS")]
    unlock_rounds: Option<u64>,
    /// Most rounds a ticket may stay valid; must be shorter than the unlock period (default: half).
    #[arg(long, env = "DUALRIG_TICKET_VALIDITY_ROUNDS")]
    ticket_validity_rounds: Option<u64>,
    /// Rounds a slashed worker is suspended.
    #[arg(long, env = "DUALRIG_SUSPEND_ROUNDS")]
    suspend_rounds: Option<u64>,
    /// Share of stake a failed verification slashes, in parts per million.
    #[arg(long, env = "DUALRIG_SLASH_FRACTION_PPM")]
    slash_fraction_ppm: Option<u32>,
    /// Share of what a download's ticket pays, in parts per million, that goes to the hosting-fee pot
    /// instead of the holder (default 100000: 10 %).
    #[arg(long, env = "DUALRIG_DOWNLOAD_FEE_SHARE_PPM")]
    download_fee_share_ppm: Option<u32>,
    /// Share of jobs, from 0 to 1, whose renditions also get the content check (default 0.1).
    #[arg(long, env = "DUALRIG_CONTENT_CHECK_SHARE")]
    content_check_share: Option<f64>,
    /// A worker's first this many jobs always get the content check (default 3).
    #[arg(long, env = "DUALRIG_CONTENT_CHECK_FIRST_JOBS")]
    content_check_first_jobs: Option<u64>,
    /// Distinct workers a blob is kept on when its Put does not say (default 3).
    #[arg(long, env = "DUALRIG_REPLICAS")]
    replicas: Option<u32>,
    /// Largest blob a client may store, in bytes.
    #[arg(long, env = "DUALRIG_MAX_BLOB_BYTES")]
    max_blob_bytes: Option<u64>,
    /// Seconds between storage challenge rounds (default 300).
    #[arg(long, env = "DUALRIG_CHALLENGE_INTERVAL_SECS")]
    challenge_interval_secs: Option<f64>,
    /// Seconds a worker has to answer a challenge (default 30).
    #[arg(long, env = "DUALRIG_CHALLENGE_DEADLINE_SECS")]
    challenge_deadline_secs: Option<f64>,
    /// Chunks proved per challenged blob (default 16).
    #[arg(long, env = "DUALRIG_CHALLENGE_K")]
    challenge_k: Option<u32>,
    /// Blobs challenged per worker per round (default 32).
    #[arg(long, env = "DUALRIG_CHALLENGE_BLOBS")]
    challenge_blobs: Option<u32>,
    /// Seconds of download demand that set a blob's surge multiplier (default 300).
    #[arg(long, env = "DUALRIG_SURGE_WINDOW_SECS")]
    surge_window_secs: Option<f64>,
    /// Bytes per second one holder is taken to serve, for a blob's saturation (default 52428800).
    #[arg(long, env = "DUALRIG_SURGE_SERVE_BYTES_PER_SEC")]
    surge_serve_bytes_per_sec: Option<u64>,
    /// Saturation, in ppm of what the holders serve, above which a blob is hot (default 1000000).
    #[arg(long, env = "DUALRIG_SURGE_THRESHOLD_PPM")]
    surge_threshold_ppm: Option<u32>,
    /// Highest price multiplier of a hot blob, in ppm (default 4000000: ×4).
    #[arg(long, env = "DUALRIG_SURGE_MAX_MULTIPLIER_PPM")]
    surge_max_multiplier_ppm: Option<u32>,
    /// Copies kept of a hot blob on top of its replicas (default 2).
    #[arg(long, env = "DUALRIG_SURGE_EXTRA_REPLICAS")]
    surge_extra_replicas: Option<u32>,
    /// Longest an upload may go without sending anything, in seconds.
    #[arg(long, env = "DUALRIG_UPLOAD_IDLE_SECS")]
    upload_idle_secs: Option<f64>,
    /// Seconds a holder may be offline before its copies stop counting (default six hours).
    #[arg(long, env = "DUALRIG_HOLDER_OFFLINE_GRACE_SECS")]
    holder_offline_grace_secs: Option<f64>,
    /// Free disk space Put staging always leaves, in bytes.
    #[arg(long, env = "DUALRIG_DISK_RESERVE_BYTES")]
    disk_reserve_bytes: Option<u64>,
    /// Slash evidence kept at most, in bytes (default 4 GiB).
    #[arg(long, env = "DUALRIG_EVIDENCE_MAX_BYTES")]
    evidence_max_bytes: Option<u64>,
    /// Segment bytes held for uploads from one client address at once.
    #[arg(long, env = "DUALRIG_MAX_STAGED_SEGMENT_BYTES_PER_CLIENT")]
    max_staged_segment_bytes_per_client: Option<u64>,
    /// Base units minted for hosting rewards per ledger round (default 1000000, one token).
    #[arg(long, env = "DUALRIG_HOSTING_MINT_PER_ROUND")]
    hosting_mint_per_round: Option<u64>,
    /// Parts per million of the supply minted for hosting rewards per ledger round, on top (default 0).
    #[arg(long, env = "DUALRIG_HOSTING_INFLATION_PPM")]
    hosting_inflation_ppm: Option<u32>,
    /// Percent of a new worker's hosting rewards held back in each step of its age (default 75,50,25).
    #[arg(long, env = "DUALRIG_HELD_BACK_PERCENT", value_delimiter = ',')]
    held_back_percent: Option<Vec<u32>>,
    /// Ledger rounds in one step of the held-back schedule (default 129600).
    #[arg(long, env = "DUALRIG_HELD_BACK_STEP_ROUNDS")]
    held_back_step_rounds: Option<u64>,
    /// Ledger rounds a held-back amount waits before it is paid (default 129600).
    #[arg(long, env = "DUALRIG_HELD_BACK_ROUNDS")]
    held_back_rounds: Option<u64>,
    /// Extra hosting credit, in ppm, for a copy on a network with no other copy (default 250000).
    #[arg(long, env = "DUALRIG_DIVERSITY_BOOST_PPM")]
    diversity_boost_ppm: Option<u32>,
    /// Share, in ppm, of every redeemed ticket's paid face value that goes to the SIP (default 50000).
    #[arg(long, env = "DUALRIG_SIP_FEE_SHARE_PPM")]
    sip_fee_share_ppm: Option<u32>,
    /// Share, in ppm, of each hosting payout's mint that goes to the SIP (default 100000).
    #[arg(long, env = "DUALRIG_SIP_MINT_SHARE_PPM")]
    sip_mint_share_ppm: Option<u32>,
    /// The SIP takes no mint share while it holds this many base units (default 1000000000).
    #[arg(long, env = "DUALRIG_SIP_MINT_CEILING")]
    sip_mint_ceiling: Option<u64>,
    /// The mining weight curve's virtual token reserve T0, base units (default 10^12).
    #[arg(long, env = "DUALRIG_SIP_VIRTUAL_TOKENS")]
    sip_virtual_tokens: Option<u64>,
    /// The mining weight curve's virtual weight reserve W0, the most weight ever out (default 10^12).
    #[arg(long, env = "DUALRIG_SIP_VIRTUAL_WEIGHT")]
    sip_virtual_weight: Option<u64>,
    /// Share, in ppm, of each worker's mining weight that bleeds back every round (default 1000).
    #[arg(long, env = "DUALRIG_WEIGHT_BLEED_PPM")]
    weight_bleed_ppm: Option<u32>,
    /// Stake units one unit of mining weight counts for in the draw, in ppm (default 1000000).
    #[arg(long, env = "DUALRIG_MINING_WEIGHT_STAKE_PPM")]
    mining_weight_stake_ppm: Option<u32>,
    /// Base units a SIP proposal locks from its proposer, returned at quorum (default 10000000).
    #[arg(long, env = "DUALRIG_PROPOSAL_BOND")]
    proposal_bond: Option<u64>,
    /// Rounds between a proposal and the opening of its vote (default 1).
    #[arg(long, env = "DUALRIG_VOTE_DELAY_ROUNDS")]
    vote_delay_rounds: Option<u64>,
    /// Rounds a proposal's vote stays open (default 10).
    #[arg(long, env = "DUALRIG_VOTE_PERIOD_ROUNDS")]
    vote_period_rounds: Option<u64>,
    /// Least turnout, in ppm of the stake bonded at the snapshot (default 330000).
    #[arg(long, env = "DUALRIG_QUORUM_PPM")]
    quorum_ppm: Option<u32>,
    /// Yes must be more than this share (ppm) of yes and no (default 500000).
    #[arg(long, env = "DUALRIG_APPROVAL_PPM")]
    approval_ppm: Option<u32>,
    /// Base units the capacity fund pays per byte proven beyond a worker's previous maximum
    /// (default 0: no bonus).
    #[arg(long, env = "DUALRIG_CAPACITY_BONUS_PER_BYTE")]
    capacity_bonus_per_byte: Option<u64>,
    /// Base units the capacity fund pays per encoder session a worker proves (transcode jobs whose
    /// verified results overlapped in time) beyond its previous maximum (default 0: no bonus).
    #[arg(long, env = "DUALRIG_CAPACITY_BONUS_PER_SESSION")]
    capacity_bonus_per_session: Option<u64>,
}

impl Args {
    fn into_config(self) -> anyhow::Result<Config> {
        let mut config = Config::local(PathBuf::from("dualrig-coordinator-data"));
        if let Some(path) = &self.config {
            config.merge_file(FileConfig::load(path)?)?;
        }
        if let Some(v) = self.listen {
            config.listen = v;
        }
        if let Some(v) = self.data_dir {
            config.data_dir = v;
        }
        if self.database_url.is_some() {
            config.database_url = self.database_url;
        }
        if self.advertise_addr.is_some() {
            config.advertise_addr = self.advertise_addr;
        }
        if self.metrics_addr.is_some() {
            config.metrics_addr = self.metrics_addr;
        }
        if let Some(v) = self.max_segment_bytes {
            config.max_segment_bytes = v;
        }
        if let Some(v) = self.max_attempts {
            config.max_attempts = v;
        }
        if let Some(v) = self.worker_wait_secs {
            config.worker_wait = secs("--worker-wait-secs", v)?;
        }
        if let Some(v) = self.job_timeout_secs {
            config.job_timeout = secs("--job-timeout-secs", v)?;
        }
        if let Some(v) = self.heartbeat_interval_secs {
            config.heartbeat_interval = secs("--heartbeat-interval-secs", v)?;
        }
        if self.genesis.is_some() {
            config.genesis = self.genesis;
        }
        if let Some(v) = self.round_secs {
            config.round = secs("--round-secs", v)?;
        }
        if let Some(v) = self.min_stake {
            config.min_stake = v;
        }
        if let Some(v) = self.unbonding_rounds {
            config.unbonding_rounds = v;
        }
        if let Some(v) = self.unlock_rounds {
            config.unlock_rounds = v;
        }
        if self.ticket_validity_rounds.is_some() {
            config.ticket_validity_rounds = self.ticket_validity_rounds;
        }
        if let Some(v) = self.suspend_rounds {
            config.suspend_rounds = v;
        }
        if let Some(v) = self.slash_fraction_ppm {
            config.slash_fraction = slash_fraction(v)?;
        }
        if let Some(v) = self.download_fee_share_ppm {
            config.download_fee_share_ppm = v;
        }
        if let Some(v) = self.content_check_share {
            config.content_check_share = v;
        }
        if let Some(v) = self.content_check_first_jobs {
            config.content_check_first_jobs = v;
        }
        if let Some(v) = self.replicas {
            config.replicas = v;
        }
        if let Some(v) = self.max_blob_bytes {
            config.max_blob_bytes = v;
        }
        if let Some(v) = self.challenge_interval_secs {
            config.challenge_interval = secs("--challenge-interval-secs", v)?;
        }
        if let Some(v) = self.challenge_deadline_secs {
            config.challenge_deadline = secs("--challenge-deadline-secs", v)?;
        }
        if let Some(v) = self.challenge_k {
            config.challenge_k = v;
        }
        if let Some(v) = self.challenge_blobs {
            config.challenge_blobs = v;
        }
        if let Some(v) = self.surge_window_secs {
            config.surge.window = secs("--surge-window-secs", v)?;
        }
        if let Some(v) = self.surge_serve_bytes_per_sec {
            config.surge.serve_bytes_per_sec = v;
        }
        if let Some(v) = self.surge_threshold_ppm {
            config.surge.threshold_ppm = v;
        }
        if let Some(v) = self.surge_max_multiplier_ppm {
            config.surge.max_multiplier_ppm = v;
        }
        if let Some(v) = self.surge_extra_replicas {
            config.surge.extra_replicas = v;
        }
        if let Some(v) = self.upload_idle_secs {
            config.upload_idle = secs("--upload-idle-secs", v)?;
        }
        if let Some(v) = self.holder_offline_grace_secs {
            config.holder_offline_grace = secs("--holder-offline-grace-secs", v)?;
        }
        if let Some(v) = self.disk_reserve_bytes {
            config.disk_reserve_bytes = v;
        }
        if let Some(v) = self.evidence_max_bytes {
            config.evidence_max_bytes = v;
        }
        if let Some(v) = self.max_staged_segment_bytes_per_client {
            config.max_staged_segment_bytes_per_client = v;
        }
        if let Some(v) = self.hosting_mint_per_round {
            config.hosting.mint_per_round = v;
        }
        if let Some(v) = self.hosting_inflation_ppm {
            config.hosting.inflation_ppm = v;
        }
        if let Some(v) = &self.held_back_percent {
            config.hosting.held_back_ppm = dualrig_coordinator::config::held_back_percent(v)?;
        }
        if let Some(v) = self.held_back_step_rounds {
            config.hosting.held_back_step_rounds = v;
        }
        if let Some(v) = self.held_back_rounds {
            config.hosting.held_back_rounds = v;
        }
        if let Some(v) = self.diversity_boost_ppm {
            config.diversity_boost_ppm = v;
        }
        if let Some(v) = self.sip_fee_share_ppm {
            config.sip.fee_share_ppm = v;
        }
        if let Some(v) = self.sip_mint_share_ppm {
            config.sip.mint_share_ppm = v;
        }
        if let Some(v) = self.sip_mint_ceiling {
            config.sip.mint_ceiling = v;
        }
        if let Some(v) = self.sip_virtual_tokens {
            config.sip.virtual_tokens = v;
        }
        if let Some(v) = self.sip_virtual_weight {
            config.sip.virtual_weight = v;
        }
        if let Some(v) = self.weight_bleed_ppm {
            config.sip.weight_bleed_ppm = v;
        }
        if let Some(v) = self.mining_weight_stake_ppm {
            config.sip.weight_stake_ppm = v;
        }
        config.governance.merge(
            self.proposal_bond,
            self.vote_delay_rounds,
            self.vote_period_rounds,
            self.quorum_ppm,
            self.approval_ppm,
        );
        if let Some(v) = self.capacity_bonus_per_byte {
            config.capacity_bonus_per_byte = v;
        }
        if let Some(v) = self.capacity_bonus_per_session {
            config.capacity_bonus_per_session = v;
        }
        config.validate()?;
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Slashes(args)) => return list_slashes(args).await,
        Some(Command::Simulate(args)) => return simulate(args).await,
        Some(Command::Serve(args)) => *args,
        None => cli.serve,
    };
    let config = args.into_config()?;
    if let Some(addr) = config.metrics_addr {
        dualrig_coordinator::metrics::install_exporter(addr).map_err(anyhow::Error::msg)?;
        tracing::info!(%addr, "metrics at /metrics");
    }
    dualrig_coordinator::serve(config, shutdown_signal())
        .await
        .context("coordinator stopped")?;
    Ok(())
}

/// `dualrig-coordinator simulate`.
#[derive(Debug, clap::Args)]
struct SimulateArgs {
    /// Ledger rounds to simulate (default 14400: ten days of 60 s rounds).
    #[arg(long, default_value_t = 14_400)]
    rounds: u64,
    /// Seed of every random choice: the same seed gives the same table.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Actors playing each strategy.
    #[arg(long, default_value_t = 4)]
    actors: usize,
    /// Coordinator TOML whose rules to simulate instead of the defaults (the serving settings'
    /// file).
    #[arg(long)]
    config: Option<PathBuf>,
    /// What transcoding one job costs an honest worker, in base units (default 10000).
    #[arg(long)]
    job_cost: Option<f64>,
    /// Share of each blob's chunks a data deleter keeps, from 0 to 1 (default 0.9).
    #[arg(long)]
    deleter_keeps: Option<f64>,
    /// Chance that an outsourcer's fetch misses a challenge's deadline, from 0 to 1 (default 0.02).
    #[arg(long)]
    outsourcer_miss: Option<f64>,
    /// Share, in ppm, of their rewards honest hosts send to the capacity fund (default 0), which pays
    /// `capacity_bonus_per_byte` for capacity added.
    #[arg(long)]
    honest_redirect_ppm: Option<u32>,
}

async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    use dualrig_coordinator::simulate::{Actors, Simulation, run};

    let mut config = Config::local(PathBuf::from("dualrig-coordinator-data"));
    if let Some(path) = &args.config {
        config.merge_file(FileConfig::load(path)?)?;
    }
    config.validate()?;
    let defaults = Actors::default();
    let sim = Simulation {
        seed: args.seed,
        rounds: args.rounds,
        actors: Actors {
            per_strategy: args.actors,
            job_cost: args.job_cost.unwrap_or(defaults.job_cost),
            deleter_keeps: args.deleter_keeps.unwrap_or(defaults.deleter_keeps),
            outsourcer_miss: args.outsourcer_miss.unwrap_or(defaults.outsourcer_miss),
            honest_redirect_ppm: args
                .honest_redirect_ppm
                .unwrap_or(defaults.honest_redirect_ppm),
            ..defaults
        },
    };
    let report = run(&config, &sim).await?;
    print!("{}", report.to_markdown());
    let paying = report.paying();
    if !paying.is_empty() {
        let names: Vec<&str> = paying.iter().map(|r| r.strategy.name()).collect();
        anyhow::bail!("cheating pays under these rules: {}", names.join(", "));
    }
    Ok(())
}

/// `dualrig-coordinator slashes`.
#[derive(Debug, clap::Args)]
struct SlashesArgs {
    /// The coordinator to ask, e.g. http://127.0.0.1:7600.
    #[arg(long, env = "DUALRIG_COORDINATOR")]
    coordinator: String,
    /// Only this worker's slashes (its id, 64 hex digits).
    #[arg(long)]
    worker: Option<String>,
    /// Check each slash's evidence again here (signature, then the coordinator's own verification);
    /// the exit status is 1 when any slash is not upheld.
    #[arg(long)]
    verify: bool,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

async fn list_slashes(args: SlashesArgs) -> anyhow::Result<()> {
    use dualrig_coordinator::evidence::reverify;
    use dualrig_proto::v1::ListSlashesRequest;
    use dualrig_proto::v1::coordinator_client::CoordinatorClient;

    let worker = match &args.worker {
        Some(hex_id) => {
            let bytes = hex::decode(hex_id.trim())
                .with_context(|| format!("--worker {hex_id:?} is not hex"))?;
            dualrig_proto::identity::PublicId::from_slice("--worker", &bytes)?
                .as_bytes()
                .to_vec()
        }
        None => Vec::new(),
    };
    let mut api = CoordinatorClient::connect(args.coordinator.clone())
        .await
        .with_context(|| format!("cannot reach the coordinator at {}", args.coordinator))?
        .max_decoding_message_size(dualrig_proto::MAX_MESSAGE_BYTES);
    let scratch = tempfile::tempdir().context("cannot create a scratch directory")?;
    let (mut listed, mut not_upheld) = (0usize, 0usize);
    let mut page_token = Vec::new();
    // Page by page, so evidence is held one page at a time.
    loop {
        let page = api
            .list_slashes(ListSlashesRequest {
                worker: worker.clone(),
                page_token: page_token.clone(),
                page_size: 0,
                with_evidence: args.verify,
            })
            .await
            .map_err(|s| anyhow::anyhow!("{}: {}", s.code(), s.message()))
            .context("listing slashes")?
            .into_inner();
        for entry in &page.slashes {
            listed += 1;
            let verdict = if args.verify {
                let (entry, dir) = (entry.clone(), scratch.path().to_owned());
                let verdict = tokio::task::spawn_blocking(move || reverify(&entry, &dir))
                    .await
                    .context("re-verification task")??;
                not_upheld += usize::from(!verdict.upheld);
                Some(verdict)
            } else {
                None
            };
            print_slash(entry, verdict.as_ref(), args.json);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        anyhow::ensure!(
            page.next_page_token > page_token,
            "the coordinator's pages of slashes do not advance"
        );
        page_token = page.next_page_token;
    }
    if !args.json {
        let upheld = if args.verify {
            format!(", {} upheld", listed - not_upheld)
        } else {
            String::new()
        };
        println!("{listed} slashes{upheld}");
    }
    if not_upheld > 0 {
        anyhow::bail!("{not_upheld} of {listed} slashes are not upheld by their evidence");
    }
    Ok(())
}

fn print_slash(
    entry: &dualrig_proto::v1::SlashEntry,
    verdict: Option<&dualrig_coordinator::evidence::Verdict>,
    json: bool,
) {
    let worker = hex::encode(&entry.worker);
    let evidence = if entry.evidence_hash.is_empty() {
        "inline".to_owned()
    } else {
        hex::encode(&entry.evidence_hash)
    };
    if json {
        let mut line = format!(
            "{{\"id\":{},\"worker\":{},\"round\":{},\"amount\":{},\"fraction_ppm\":{},\"reason\":{},\"evidence\":{},\"evidence_size\":{},\"evidence_dropped\":{}",
            entry.id,
            json_string(&worker),
            entry.round,
            entry.amount,
            entry.fraction_ppm,
            json_string(&entry.reason),
            json_string(&evidence),
            entry.evidence_size,
            entry.evidence_dropped
        );
        if let Some(v) = verdict {
            line += &format!(
                ",\"upheld\":{},\"agrees\":{},\"verdict\":{}",
                v.upheld,
                v.agrees(),
                json_string(&v.to_string())
            );
        }
        println!("{line}}}");
    } else {
        let dropped = if entry.evidence_dropped {
            ", dropped"
        } else {
            ""
        };
        println!(
            "worker {worker}  round {}  amount {}  ({} ppm)  reason: {}  evidence {evidence} ({} bytes{dropped})",
            entry.round, entry.amount, entry.fraction_ppm, entry.reason, entry.evidence_size
        );
        if let Some(v) = verdict {
            println!("  {v}");
        }
    }
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn flags_are_consistent_and_reach_the_config() {
        Args::command().debug_assert();
        let config = Args::try_parse_from([
            "dualrig-coordinator",
            "--round-secs",
            "2.5",
            "--min-stake",
            "0",
            "--slash-fraction-ppm",
            "50000",
            "--suspend-rounds",
            "3",
        ])
        .expect("parses")
        .into_config()
        .expect("valid");
        assert_eq!(config.round, std::time::Duration::from_millis(2500));
        assert_eq!((config.min_stake, config.suspend_rounds), (0, 3));
        assert_eq!(config.slash_fraction.ppm(), 50_000);
    }

    #[test]
    fn the_advertised_address_comes_from_the_flag_or_the_file_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("coordinator.toml");
        std::fs::write(&file, "advertise_addr = \"http://10.0.0.5:7300\"\n").expect("toml");
        let from_file = Args::try_parse_from([
            "dualrig-coordinator",
            "--config",
            file.to_str().expect("utf-8"),
        ])
        .expect("parses")
        .into_config()
        .expect("valid");
        assert_eq!(
            from_file.advertise_addr.as_deref(),
            Some("http://10.0.0.5:7300")
        );
        let from_flag = Args::try_parse_from([
            "dualrig-coordinator",
            "--config",
            file.to_str().expect("utf-8"),
            "--advertise-addr",
            "https://coord.example:7443",
        ])
        .expect("parses")
        .into_config()
        .expect("valid");
        assert_eq!(
            from_flag.advertise_addr.as_deref(),
            Some("https://coord.example:7443")
        );
        let refused = Args::try_parse_from([
            "dualrig-coordinator",
            "--advertise-addr",
            "coord.example:7443",
        ])
        .expect("parses")
        .into_config()
        .expect_err("no scheme");
        assert!(
            refused.to_string().contains("coord.example:7443"),
            "{refused}"
        );
    }

    #[test]
    fn serving_is_the_default_and_slashes_is_a_subcommand() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "dualrig-coordinator",
            "--listen",
            "127.0.0.1:7600",
            "--max-attempts",
            "4",
        ])
        .expect("plain serve flags parse");
        assert!(cli.command.is_none());
        let config = cli.serve.into_config().expect("valid");
        assert_eq!(config.listen, "127.0.0.1:7600".parse().expect("addr"));
        assert_eq!(config.max_attempts, 4);

        let cli = Cli::try_parse_from(["dualrig-coordinator", "serve", "--max-attempts", "5"])
            .expect("explicit serve parses");
        let Some(Command::Serve(args)) = cli.command else {
            panic!("serve subcommand");
        };
        assert_eq!(args.into_config().expect("valid").max_attempts, 5);

        let cli = Cli::try_parse_from([
            "dualrig-coordinator",
            "slashes",
            "--coordinator",
            "http://127.0.0.1:7600",
            "--verify",
            "--json",
        ])
        .expect("slashes parses");
        let Some(Command::Slashes(args)) = cli.command else {
            panic!("slashes subcommand");
        };
        assert!(args.verify && args.json && args.worker.is_none());
        assert_eq!(args.coordinator, "http://127.0.0.1:7600");

        let cli = Cli::try_parse_from([
            "dualrig-coordinator",
            "simulate",
            "--rounds",
            "300",
            "--seed",
            "9",
            "--outsourcer-miss",
            "0.1",
        ])
        .expect("simulate parses");
        let Some(Command::Simulate(args)) = cli.command else {
            panic!("simulate subcommand");
        };
        assert_eq!((args.rounds, args.seed, args.actors), (300, 9, 4));
        assert_eq!(args.outsourcer_miss, Some(0.1));
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(
            json_string("a \"b\" \\ c\nd\u{1}é"),
            "\"a \\\"b\\\" \\\\ c\\nd\\u0001é\""
        );
    }
}
