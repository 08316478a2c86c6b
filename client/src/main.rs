//! `dualrig`: the client command.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dualrig_client::{DualrigClient, LadderOptions};
use dualrig_proto::profile::{DEFAULT_LADDER, Profile};
use indicatif::{ProgressBar, ProgressStyle};

/// Buy transcoding from the dualrig network.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The coordinator's gRPC URL.
    #[arg(
        long,
        global = true,
        env = "DUALRIG_COORDINATOR",
        default_value = "http://127.0.0.1:7300"
    )]
    coordinator: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Transcode a segment or a whole video into an HLS adaptive-bitrate ladder.
    Transcode {
        /// A video file FFmpeg can read (MP4, MPEG-TS, MKV, ...).
        input: PathBuf,
        /// Directory that receives master.m3u8, one playlist per rendition and the segments.
        #[arg(long)]
        out: PathBuf,
        /// Renditions to make, from 1080p, 720p, 480p, 360p, 240p.
        #[arg(long, default_value_t = DEFAULT_LADDER.join(","))]
        profiles: String,
        /// Segments in flight at once.
        #[arg(long, default_value_t = 4)]
        jobs: usize,
        /// Target segment length in seconds (cuts fall on keyframes).
        #[arg(long, default_value_t = 2.0)]
        segment_secs: f64,
    },
    /// List the workers connected to the coordinator.
    Workers,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Transcode {
            input,
            out,
            profiles,
            jobs,
            segment_secs,
        } => {
            let profiles = Profile::parse_list(&profiles)?;
            anyhow::ensure!(
                segment_secs > 0.0 && segment_secs.is_finite(),
                "--segment-secs must be a positive number of seconds"
            );
            let client = DualrigClient::connect(&cli.coordinator).await?;
            let bar = ProgressBar::new(0).with_style(
                ProgressStyle::with_template(
                    "{spinner} {msg} [{bar:40}] {pos}/{len} segments ({elapsed})",
                )
                .context("progress template")?
                .progress_chars("=> "),
            );
            bar.set_message(format!("transcoding {}", input.display()));
            let options = LadderOptions { jobs, segment_secs };
            let summary = dualrig_client::transcode_file(
                &client,
                &input,
                &out,
                &profiles,
                &options,
                |done, total| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                },
            )
            .await;
            bar.finish_and_clear();
            let summary = summary?;
            println!(
                "{} segments x {} renditions -> {}",
                summary.segments,
                summary.renditions.len(),
                summary.master_playlist.display()
            );
            for (worker, n) in &summary.per_worker {
                println!("  worker {}: {n} segments", &worker[..worker.len().min(16)]);
            }
            if summary.retried > 0 {
                println!("  {} segments needed another worker", summary.retried);
            }
        }
        Command::Workers => {
            let client = DualrigClient::connect(&cli.coordinator).await?;
            let workers = client.list_workers().await?;
            if workers.is_empty() {
                println!("no workers connected");
            }
            for w in workers {
                let caps = w.capabilities.unwrap_or_default();
                println!(
                    "{}  encoder={} sessions={} free={} done={} failed={} hasher={}",
                    hex::encode(&w.worker_id),
                    caps.selected_encoder,
                    caps.sessions,
                    w.free_sessions,
                    w.jobs_done,
                    w.jobs_failed,
                    caps.hasher
                );
            }
        }
    }
    Ok(())
}
