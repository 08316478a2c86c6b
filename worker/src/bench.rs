//! `dualrig-worker bench`: measures this rig's rates next to the reference tools run on the same
//! input in the same process (`b3sum` for hashing, the ffmpeg CLI for transcoding), so the figures can be
//! compared on any machine.

pub mod dual;
pub mod encode;
pub mod hash;
pub mod plot;
pub mod report;
pub mod stats;

use std::io::Write as _;
use std::path::PathBuf;

use crate::hash::{GpuMode, HashError};

/// What `bench` measures.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchKind {
    /// BLAKE3 on the CPU and the GPU, next to b3sum.
    Hash,
    /// Transcoding on the encoder ASICs, next to the ffmpeg CLI.
    Encode,
    /// Hashing and transcoding at once, as a worker beside a miner runs them.
    Dual,
    /// Every benchmark above.
    All,
}

impl std::fmt::Display for BenchKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BenchKind::Hash => "hash",
            BenchKind::Encode => "encode",
            BenchKind::Dual => "dual",
            BenchKind::All => "all",
        })
    }
}

/// Arguments of `dualrig-worker bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// What to measure; everything when absent.
    #[arg(value_enum)]
    pub what: Option<BenchKind>,
    /// Print one JSON document on stdout instead of the table (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Which GPU to measure: a hardware adapter if there is one (auto), any adapter, software ones
    /// such as lavapipe included (require), or none (off).
    #[arg(long, value_enum, default_value_t = GpuMode::Auto)]
    pub gpu: GpuMode,
    /// Input sizes, comma-separated, in bytes or with a KiB, MiB or GiB suffix.
    #[arg(long, value_delimiter = ',', value_parser = parse_size, default_value = "1MiB,64MiB,1GiB")]
    pub sizes: Vec<u64>,
    /// Timed runs of each measurement; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Seconds of the generated 1080p30 test clip the encode and dual benchmarks transcode.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=600))]
    pub clip_secs: u32,
    /// Most concurrent ladder sessions the encode benchmark tries (it doubles from 1 and stops once a
    /// session falls below real time).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub sessions_max: u32,
    /// Ladder sessions the dual benchmark runs while hashing.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub dual_sessions: Option<u32>,
    /// Most share of the time the dual benchmark's hashing may keep its device busy, in (0, 1], as the
    /// worker's `--gpu-hash-share`.
    #[arg(long, default_value_t = 1.0, value_parser = crate::hash::share::parse_share)]
    pub gpu_hash_share: f64,
    /// Also write an SVG chart of encode rate against concurrent sessions to this file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Also save the JSON document as DATA_DIR/bench.json, where the worker's dashboard shows it.
    #[arg(long, env = "DUALRIG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("`bench {0}` is not built yet; `bench hash` is the one benchmark available")]
    NotImplemented(BenchKind),
    #[error("hashing failed during the benchmark")]
    Hash(#[from] HashError),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Mismatch(String),
    #[error("writing the JSON report failed")]
    Json(#[from] serde_json::Error),
}

/// Runs the benchmarks `args` asks for. `bench hash` prints `bench hash`'s own document; every other
/// choice prints one [`report::BenchReport`] (or the tables of its parts).
pub fn run(args: &BenchArgs) -> Result<(), BenchError> {
    let what = args.what.unwrap_or(BenchKind::All);
    let with_encode = matches!(what, BenchKind::Encode | BenchKind::All);
    if args.plot.is_some() && !with_encode {
        return Err(BenchError::Mismatch(format!(
            "--plot charts the encode benchmark; run `bench encode` or `bench all`, not `bench {what}`"
        )));
    }
    if what == BenchKind::Hash {
        let report = hash::measure(args)?;
        save(args, &report)?;
        return hash::print(args, &report);
    }
    let mut report = report::BenchReport {
        schema: report::SCHEMA,
        hash: None,
        encode: None,
        dual: None,
    };
    if what == BenchKind::All {
        report.hash = Some(hash::measure(args)?);
    }
    if with_encode {
        report.encode = Some(encode::measure(args)?);
    }
    if matches!(what, BenchKind::Dual | BenchKind::All) {
        report.dual = Some(dual::measure(args)?);
    }
    if let (Some(path), Some(encode)) = (&args.plot, &report.encode) {
        std::fs::write(path, plot::encode_svg(encode)).map_err(|source| BenchError::Io {
            what: format!("cannot write the chart to {}", path.display()),
            source,
        })?;
    }
    save(args, &report)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let written = if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)
    } else {
        let mut tables = Vec::new();
        if let Some(hash) = &report.hash {
            tables.push(hash::render_table(hash));
        }
        if let Some(encode) = &report.encode {
            tables.push(encode::render_table(encode));
        }
        if let Some(dual) = &report.dual {
            tables.push(dual::render_table(dual));
        }
        out.write_all(tables.join("\n").as_bytes())
    };
    written.map_err(|source| BenchError::Io {
        what: "writing the report".to_owned(),
        source,
    })
}

/// Saves `report` as `DATA_DIR/bench.json` when `--data-dir` is given, replacing the last one whole
/// (a reader never sees half a document).
fn save(args: &BenchArgs, report: &impl serde::Serialize) -> Result<(), BenchError> {
    let Some(dir) = &args.data_dir else {
        return Ok(());
    };
    let path = dir.join(crate::dashboard::BENCH_FILE);
    let io = |source| BenchError::Io {
        what: format!("cannot save the bench document to {}", path.display()),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    serde_json::to_writer_pretty(&mut file, report)?;
    file.persist(&path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Parses `4096`, `512KiB`, `64MiB`, `1GiB` (also `K`, `M`, `G`, `KB`, `MB`, `GB`, all binary).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 4096, 64MiB or 1GiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use KiB, MiB or GiB)"
            ));
        }
    };
    number
        .checked_mul(1 << shift)
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{text:?} is not a size between 1 byte and 16 EiB"))
}

/// `1 MiB`, `64 MiB`, `1 GiB`, or bytes when not a whole number of KiB.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(u32, &str); 3] = [(30, "GiB"), (20, "MiB"), (10, "KiB")];
    for (shift, unit) in UNITS {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1PiB").is_err());
        assert!(parse_size("MiB").is_err());
    }

    #[test]
    fn sizes_format_back() {
        assert_eq!(format_size(1 << 20), "1 MiB");
        assert_eq!(format_size(3 << 30), "3 GiB");
        assert_eq!(format_size(1000), "1000 B");
    }
}
