//! `dualrig-worker`: serve a coordinator, hash files like b3sum, or benchmark this rig.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use dualrig_media::EncoderChoice;
use dualrig_worker::hash::GpuMode;
use dualrig_worker::{Worker, WorkerConfig};

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
    Run(RunArgs),
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
    /// Print this worker's id (creating its key on first use).
    Id {
        #[arg(long, env = "DUALRIG_DATA_DIR", default_value = "dualrig-worker-data")]
        data_dir: PathBuf,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The coordinator's gRPC URL.
    #[arg(
        long,
        env = "DUALRIG_COORDINATOR",
        default_value = "http://127.0.0.1:7300"
    )]
    coordinator: String,
    /// Directory for the worker's key and scratch files.
    #[arg(long, env = "DUALRIG_DATA_DIR", default_value = "dualrig-worker-data")]
    data_dir: PathBuf,
    /// `auto` (a hardware encoder that opens, else libx264) or an FFmpeg encoder name.
    #[arg(long, env = "DUALRIG_ENCODER", default_value = "auto")]
    encoder: EncoderChoice,
    /// Jobs to run at once (default: 1 for libx264; for a hardware encoder, the encoder sessions it
    /// opens at 1080p divided by the default ladder's renditions, at least 1).
    #[arg(long, env = "DUALRIG_SESSIONS")]
    sessions: Option<u32>,
    /// Where hashing runs: a hardware GPU if present (auto), any adapter (require), or the CPU (off).
    #[arg(long, env = "DUALRIG_GPU", value_enum, default_value = "auto")]
    gpu: GpuMode,
    /// Most share of the time hashing may keep the GPU busy, above 0 and at most 1, so a miner beside
    /// the worker keeps the rest.
    #[arg(
        long,
        env = "DUALRIG_GPU_HASH_SHARE",
        default_value_t = 1.0,
        value_parser = dualrig_worker::hash::share::parse_share
    )]
    gpu_hash_share: f64,
    /// Address to serve Prometheus metrics on (off when absent).
    #[arg(long, env = "DUALRIG_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Cheat on every job this way, to test that the coordinator catches it (fault-injection builds).
    #[cfg(feature = "fault-injection")]
    #[arg(long, value_enum)]
    fault: Option<dualrig_worker::job::Fault>,
}

impl RunArgs {
    fn into_config(self) -> WorkerConfig {
        let mut config = WorkerConfig::new(self.coordinator, self.data_dir);
        config.encoder = self.encoder;
        config.sessions = self.sessions;
        config.gpu = self.gpu;
        config.gpu_hash_share = self.gpu_hash_share;
        config.metrics_addr = self.metrics_addr;
        #[cfg(feature = "fault-injection")]
        {
            config.fault = self.fault;
        }
        config
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        None => serve(cli.run),
        Some(Command::Run(args)) => serve(args),
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
        Some(Command::Id { data_dir }) => {
            let identity =
                dualrig_proto::identity::Identity::load_or_create(&data_dir.join("worker.key"))?;
            println!("{}", identity.id());
            Ok(())
        }
    }
}

fn serve(args: RunArgs) -> anyhow::Result<()> {
    let config = args.into_config();
    let metrics_addr = config.metrics_addr;
    let worker = Worker::prepare(config).context("worker cannot start")?;
    println!("worker {}", worker.id());
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        if let Some(addr) = metrics_addr {
            dualrig_worker::metrics::install_exporter(addr).map_err(anyhow::Error::msg)?;
        }
        worker
            .run(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await;
        Ok(())
    })
}
