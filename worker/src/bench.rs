//! `dualrig-worker bench`: measures this rig's rates next to the reference tools run on the same
//! input in the same process (`b3sum` for hashing), so the figures can be compared on any machine.

pub mod hash;

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

/// Runs the benchmarks `args` asks for.
pub fn run(args: &BenchArgs) -> Result<(), BenchError> {
    let kinds: &[BenchKind] = match args.what.unwrap_or(BenchKind::All) {
        BenchKind::All => &[BenchKind::Hash, BenchKind::Encode, BenchKind::Dual],
        BenchKind::Hash => &[BenchKind::Hash],
        BenchKind::Encode => &[BenchKind::Encode],
        BenchKind::Dual => &[BenchKind::Dual],
    };
    for kind in kinds {
        match kind {
            BenchKind::Hash => hash::run(args)?,
            other => return Err(BenchError::NotImplemented(*other)),
        }
    }
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
