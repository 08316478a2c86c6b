//! `dualrig-worker`: serve a coordinator, hash files like b3sum, or benchmark this rig.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use dualrig_media::EncoderChoice;
use dualrig_worker::Worker;
use dualrig_worker::config::{ConfigSource, Sessions, WorkerSettings};
use dualrig_worker::hash::GpuMode;

/// The dualrig worker. With no subcommand it serves the coordinator given by --coordinator.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the coordinator (the default).
    Run(Box<RunArgs>),
    /// Print BLAKE3 hashes of files, exactly like b3sum.
    Hash(dualrig_worker::hash::cli::HashArgs),
    /// Measure this rig's hash and encode rates next to b3sum and the ffmpeg CLI.
    Bench(dualrig_worker::bench::BenchArgs),
    /// Print the ffmpeg CLI arguments that make the same ladder with the same encoder settings, one per
    /// line, for side-by-side comparisons.
    #[command(name = "ladder-command")]
    FfmpegLadder {
        /// Renditions, from 1080p, 720p, 480p, 360p, 240p.
        #[arg(long, default_value_t = dualrig_proto::profile::DEFAULT_LADDER.join(","))]
        profiles: String,
        /// `auto` or an FFmpeg encoder name, chosen as the worker would.
        #[arg(long, default_value = "auto")]
        encoder: EncoderChoice,
        input: PathBuf,
        out_dir: PathBuf,
    },
    /// Serve the coordinator, pulling and hosting these blobs of the worker's own choosing besides what
    /// the coordinator places (`run --host ROOT` for each).
    Host {
        /// Roots of the blobs to host, 64 hex digits each.
        #[arg(required = true, value_name = "ROOT")]
        roots: Vec<String>,
        #[command(flatten)]
        run: Box<RunArgs>,
    },
    /// Print what this worker has earned: its ledger balance (redeemed tickets and hosting rewards land
    /// there), stake, held-back rewards, and its hosting statements round by round.
    Earnings {
        #[command(flatten)]
        coordinator: CoordinatorArg,
        #[command(flatten)]
        data_dir: DataDirArg,
        /// Statements of the last this many ledger rounds (0: all).
        #[arg(long, default_value_t = 100)]
        rounds: u64,
        /// Print JSON (base units and bytes) instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Print this worker's id (creating its key on first use).
    Id {
        #[command(flatten)]
        data_dir: DataDirArg,
    },
}

/// The coordinators this worker serves.
#[derive(Debug, Args)]
struct CoordinatorArg {
    /// The coordinator's gRPC URL; several (repeated, or separated by commas) are asked in turn until
    /// one answers.
    #[arg(
        long,
        env = "DUALRIG_COORDINATOR",
        value_delimiter = ',',
        default_value = dualrig_worker::config::DEFAULT_COORDINATOR
    )]
    coordinator: Vec<String>,
}

/// Where the worker keeps its key and scratch files.
#[derive(Debug, Args)]
struct DataDirArg {
    /// Directory for the worker's key and scratch files.
    #[arg(long, env = "DUALRIG_DATA_DIR", default_value = dualrig_worker::config::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

impl DataDirArg {
    fn key_path(&self) -> PathBuf {
        self.data_dir.join(dualrig_worker::config::KEY_FILE)
    }
}

/// Settings of the serving worker. Each may also come from the TOML file given by `--config`, under
/// the same name with underscores (`storage_capacity = "500GiB"`); flags and variables win over it.
#[derive(Debug, Args)]
struct RunArgs {
    /// TOML file with any of the settings below, read again on SIGHUP (`sessions` changes live).
    #[arg(long, env = "DUALRIG_WORKER_CONFIG")]
    config: Option<PathBuf>,
    /// The coordinator's gRPC URL (default http://127.0.0.1:7300). Several coordinators of one ledger
    /// are given by repeating the flag or separating the URLs with commas; the worker serves one at a
    /// time and moves to the next when it loses that one.
    #[arg(
        long,
        env = "DUALRIG_COORDINATOR",
        value_delimiter = ',',
        value_name = "URL"
    )]
    coordinator: Vec<String>,
    /// Directory for the worker's key and scratch files (default dualrig-worker-data).
    #[arg(long, env = "DUALRIG_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// `auto` (a hardware encoder that opens, else libx264; the default) or an FFmpeg encoder name.
    #[arg(long, env = "DUALRIG_ENCODER")]
    encoder: Option<EncoderChoice>,
    /// Jobs to run at once: `auto` (the default: 1 for libx264; for a hardware encoder, the encoder
    /// sessions it opens at 1080p divided by the default ladder's renditions, at least 1) or a number.
    #[arg(long, env = "DUALRIG_SESSIONS", value_name = "auto|N")]
    sessions: Option<Sessions>,
    /// Where hashing runs: a hardware GPU if present (auto, the default), any adapter (require), or the
    /// CPU (off).
    #[arg(long, env = "DUALRIG_GPU", value_enum)]
    gpu: Option<GpuMode>,
    /// Most share of the time hashing may keep the GPU busy, above 0 and at most 1 (default 1), so a
    /// miner beside the worker keeps the rest.
    #[arg(
        long,
        env = "DUALRIG_GPU_HASH_SHARE",
        value_parser = dualrig_worker::hash::share::parse_share
    )]
    gpu_hash_share: Option<f64>,
    /// Address to serve Prometheus metrics on (off when absent).
    #[arg(long, env = "DUALRIG_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Address to serve the dashboard on, e.g. 127.0.0.1:7400 (off when absent; port 0 picks one and
    /// writes it to DATA_DIR/dashboard.addr). It shows everything the worker does to whoever can reach
    /// it: keep it on loopback.
    #[arg(long, env = "DUALRIG_DASHBOARD_ADDR")]
    dashboard_addr: Option<SocketAddr>,
    /// Local address to connect to the coordinator from, on a rig with several (the system's choice
    /// when absent).
    #[arg(long, env = "DUALRIG_SOURCE_ADDR")]
    source_addr: Option<std::net::IpAddr>,
    /// Price per output pixel clients pay in tickets; 0 (the default) works for free.
    #[arg(long, env = "DUALRIG_PRICE_PER_UNIT")]
    price_per_unit: Option<u64>,
    /// Price per byte a paid download pays this worker for what it serves; 0 (the default) serves
    /// downloads for free.
    #[arg(long, env = "DUALRIG_PRICE_PER_BYTE")]
    price_per_byte: Option<u64>,
    /// Face value of this worker's tickets (default 1000000).
    #[arg(long, env = "DUALRIG_TICKET_FACE_VALUE")]
    ticket_face_value: Option<u64>,
    /// One ticket in this many wins (default 100).
    #[arg(long, env = "DUALRIG_TICKET_WIN_PROB_ONE_IN")]
    ticket_win_prob_one_in: Option<u64>,
    /// Most space the blob store may take, outboards included (e.g. `500GiB`, `2TB`, or bytes; default
    /// 10GiB).
    #[arg(long, env = "DUALRIG_STORAGE_CAPACITY", value_parser = parse_size)]
    storage_capacity: Option<bytesize::ByteSize>,
    /// Seconds between rehashes of the whole blob store (default 21600, six hours).
    #[arg(long, env = "DUALRIG_SCRUB_INTERVAL_SECS")]
    scrub_interval_secs: Option<f64>,
    /// Seconds a winning ticket waits before it is redeemed (0, the default: at once; winners wait on
    /// disk).
    #[arg(long, env = "DUALRIG_REDEEM_DELAY_SECS")]
    redeem_delay_secs: Option<f64>,
    /// Pull and host the blobs of this collective (repeat for several); the worker's account must be
    /// a member (`dualrig --key DATA_DIR/worker.key collective join NAME`). The coordinator
    /// challenges them like any copy, and a passed challenge makes the worker a verified holder.
    #[arg(long = "host-collective", value_name = "NAME")]
    host_collective: Vec<String>,
    /// Pull and host this blob (64 hex digits; repeat for several), public or of a collective the
    /// worker's account is a member of. It earns like a placed copy once it passes a challenge, within
    /// the blob's paid copies (PROTOCOL §6.9).
    #[arg(long = "host", value_name = "ROOT")]
    host: Vec<String>,
    /// Cheat on every job this way, to test that the coordinator catches it (fault-injection builds).
    #[cfg(feature = "fault-injection")]
    #[arg(long, value_enum)]
    fault: Option<dualrig_worker::job::Fault>,
}

/// A size with an optional unit (`10GiB`, `500 MB`, `4096`).
fn parse_size(text: &str) -> Result<bytesize::ByteSize, String> {
    text.parse::<bytesize::ByteSize>()
        .map_err(|e| format!("{text:?} is not a size such as 500GiB or 2TB: {e}"))
}

impl RunArgs {
    /// The file to read and the flags to lay over it, kept apart so a reload reads the file again.
    fn into_source(self) -> ConfigSource {
        ConfigSource {
            file: self.config,
            flags: WorkerSettings {
                coordinator: None,
                coordinators: (!self.coordinator.is_empty()).then_some(self.coordinator),
                data_dir: self.data_dir,
                encoder: self.encoder,
                sessions: self.sessions,
                gpu: self.gpu,
                gpu_hash_share: self.gpu_hash_share,
                metrics_addr: self.metrics_addr,
                dashboard_addr: self.dashboard_addr,
                source_addr: self.source_addr,
                price_per_unit: self.price_per_unit,
                price_per_byte: self.price_per_byte,
                ticket_face_value: self.ticket_face_value,
                ticket_win_prob_one_in: self.ticket_win_prob_one_in,
                storage_capacity: self.storage_capacity,
                scrub_interval_secs: self.scrub_interval_secs,
                redeem_delay_secs: self.redeem_delay_secs,
                host_collectives: (!self.host_collective.is_empty())
                    .then_some(self.host_collective),
                host_roots: (!self.host.is_empty()).then_some(self.host),
                #[cfg(feature = "fault-injection")]
                fault: self.fault,
            },
        }
    }
}

/// Mesa's implicit Vulkan layer `VK_LAYER_MESA_device_select` connects to a Wayland display to find the
/// desktop's GPU, and libwayland prints "XDG_RUNTIME_DIR is invalid or not set" on stderr when there is
/// no session, as on a headless rig or in a container. With no session there is no desktop GPU to
/// prefer and the worker picks its adapter itself, so the layer is switched off for this process then.
fn quiet_headless_vulkan() {
    let session =
        std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|dir| std::path::Path::new(&dir).is_dir());
    if !session && std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: called first thing in `main`, before any thread exists that could read the
        // environment concurrently.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("NODEVICE_SELECT", "1");
        }
    }
}

fn main() -> anyhow::Result<()> {
    quiet_headless_vulkan();
    let cli = Cli::parse();
    // wgpu reports every Vulkan extension a software adapter lacks as a warning; only its errors
    // matter to a miner unless RUST_LOG asks for more. `hash` prints what b3sum prints and nothing
    // else (its GPU fallback is logged at info, shown with RUST_LOG=info).
    let default_filter = match cli.command {
        Some(Command::Hash(_)) => "warn,wgpu_hal=error,wgpu_core=error",
        _ => "info,wgpu_hal=error,wgpu_core=error",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        None => serve(cli.run),
        Some(Command::Run(args)) => serve(*args),
        Some(Command::Host { roots, mut run }) => {
            run.host.extend(roots);
            serve(*run)
        }
        Some(Command::Hash(args)) => Ok(dualrig_worker::hash::cli::run(&args)?),
        Some(Command::Bench(args)) => Ok(dualrig_worker::bench::run(&args)?),
        Some(Command::FfmpegLadder {
            profiles,
            encoder,
            input,
            out_dir,
        }) => {
            let profiles = dualrig_proto::profile::Profile::parse_list(&profiles)?;
            dualrig_media::init();
            let encoder = dualrig_media::select_encoder(&encoder)?;
            for arg in
                dualrig_media::ffmpeg_cli_ladder_args(&input, &profiles, &encoder.name, &out_dir)
            {
                println!("{arg}");
            }
            Ok(())
        }
        Some(Command::Earnings {
            coordinator,
            data_dir,
            rounds,
            json,
        }) => earnings(coordinator.coordinator, &data_dir.key_path(), rounds, json),
        Some(Command::Id { data_dir }) => {
            let identity = dualrig_proto::identity::Identity::load_or_create(&data_dir.key_path())?;
            println!("{}", identity.id());
            Ok(())
        }
    }
}

fn earnings(
    coordinators: Vec<String>,
    key: &std::path::Path,
    rounds: u64,
    json: bool,
) -> anyhow::Result<()> {
    let identity = dualrig_proto::identity::Identity::load_or_create(key)
        .with_context(|| format!("worker key {}", key.display()))?;
    let runtime = tokio::runtime::Runtime::new()?;
    let coordinators: Vec<String> = coordinators.iter().map(|u| u.trim().to_owned()).collect();
    let earnings = runtime.block_on(dualrig_worker::earnings::fetch(
        &coordinators,
        identity.id(),
        rounds,
    ))?;
    if json {
        println!("{}", earnings.to_json());
    } else {
        print!("{}", earnings.to_table());
    }
    Ok(())
}

fn serve(args: RunArgs) -> anyhow::Result<()> {
    let source = args.into_source();
    let loaded = source.load()?;
    for key in &loaded.shadowed {
        tracing::info!(
            key,
            "config file value not used: a flag or environment variable sets it"
        );
    }
    let config = loaded.config;
    let runtime = tokio::runtime::Runtime::new()?;
    // The endpoint is up before the store opens, so the store's figures are on it from the start.
    if let Some(addr) = config.metrics_addr {
        let _context = runtime.enter();
        dualrig_worker::metrics::install_exporter(addr, &config.coordinators)
            .map_err(anyhow::Error::msg)?;
    }
    let dashboard_addr = config.dashboard_addr;
    let data_dir = config.data_dir.clone();
    // Taken before the encoder probe, so a SIGHUP while the worker starts is a reload, not its end.
    let mut hangups = {
        let _context = runtime.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot listen for SIGHUP")?
    };
    let worker = Worker::prepare(config).context("worker cannot start")?;
    println!("worker {}", worker.id());
    let reloader = worker.reloader(source);
    runtime.block_on(async move {
        if let Some(addr) = dashboard_addr {
            let dashboard = dualrig_worker::dashboard::Dashboard::bind(
                addr,
                &data_dir,
                worker.coordinators(),
                worker.id(),
            )
            .await?;
            println!("dashboard http://{}/", dashboard.addr());
            tokio::spawn(dashboard.serve());
        }
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the config");
                // A refused reload is logged by the reloader and changes nothing.
                let _ = reloader.reload().await;
            }
        });
        worker
            .run(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await;
        anyhow::Ok(())
    })
}
