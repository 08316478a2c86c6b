//! `dualrig-worker hash`: prints `HASH  NAME` lines exactly like `b3sum`, optionally writing the
//! outboard of a single input.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{BlobHasher, GpuMode, HashError, HashMode, select_hasher};

/// Arguments of `dualrig-worker hash`.
#[derive(clap::Args, Debug)]
pub struct HashArgs {
    /// Where to hash: a hardware GPU when there is one, else the CPU (auto); any GPU adapter, software
    /// ones such as lavapipe included, failing when there is none (require); the CPU (off).
    #[arg(long, value_enum, default_value_t = GpuMode::Auto)]
    pub gpu: GpuMode,
    /// Write the outboard of the single input to PATH: its length as u64 LE, then every parent node
    /// of its BLAKE3 tree (left CV || right CV) in pre-order, as the `bao` tools expect.
    #[arg(long, value_name = "PATH")]
    pub outboard: Option<PathBuf>,
    /// Files to hash; `-`, or no FILE at all, reads standard input.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Hashes every input and prints a line for each, like `b3sum`.
pub fn run(args: &HashArgs) -> Result<(), HashError> {
    let hasher = select_hasher(args.gpu)?;
    tracing::debug!(backend = %hasher.describe(), "hashing");
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    run_with(
        args,
        hasher.as_ref(),
        &mut stdout.lock(),
        &mut stderr.lock(),
    )
}

/// [`run`] with the backend and the output streams chosen by the caller. With several inputs, each
/// failure is reported on `err` and the others are still hashed; a single input's failure is
/// returned as it is.
pub fn run_with(
    args: &HashArgs,
    hasher: &dyn BlobHasher,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), HashError> {
    let stdin = PathBuf::from("-");
    let inputs: Vec<&Path> = if args.files.is_empty() {
        vec![stdin.as_path()]
    } else {
        args.files.iter().map(PathBuf::as_path).collect()
    };
    if args.outboard.is_some() && inputs.len() != 1 {
        return Err(HashError::Usage(format!(
            "--outboard writes the outboard of one input, but {} were given",
            inputs.len()
        )));
    }
    let mut failed = 0;
    for input in &inputs {
        match hash_one(hasher, input, args.outboard.as_deref()) {
            Ok(hash) => {
                writeln!(out, "{}", hash_line(&hash, input)).map_err(|source| HashError::Io {
                    name: "standard output".to_owned(),
                    source,
                })?;
            }
            Err(e) if inputs.len() == 1 => return Err(e),
            Err(e) => {
                failed += 1;
                // Nothing sensible is left to do when stderr itself fails.
                let _ = writeln!(err, "dualrig-worker hash: {}", error_chain(&e));
            }
        }
    }
    if failed > 0 {
        return Err(HashError::SomeFailed {
            failed,
            total: inputs.len(),
        });
    }
    Ok(())
}

fn hash_one(
    hasher: &dyn BlobHasher,
    input: &Path,
    outboard_path: Option<&Path>,
) -> Result<blake3::Hash, HashError> {
    let with_outboard = outboard_path.is_some();
    let digest = if input == Path::new("-") {
        let stdin = std::io::stdin();
        hasher
            .hash_reader(&mut stdin.lock(), None, HashMode::Plain, with_outboard)
            .map_err(|e| e.for_input(Path::new("standard input")))?
    } else {
        hasher.hash_file(input, HashMode::Plain, with_outboard)?
    };
    if let (Some(path), Some(outboard)) = (outboard_path, &digest.outboard) {
        std::fs::write(path, outboard.encode()).map_err(|source| HashError::Io {
            name: path.display().to_string(),
            source,
        })?;
    }
    Ok(digest.hash)
}

/// One output line as `b3sum` prints it: a name holding a backslash or a line break is escaped and
/// the line starts with a backslash.
pub fn hash_line(hash: &blake3::Hash, name: &Path) -> String {
    let name = name.to_string_lossy();
    if name.contains(['\\', '\n', '\r']) {
        let escaped = name
            .replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('\r', "\\r");
        format!("\\{}  {}", hash.to_hex(), escaped)
    } else {
        format!("{}  {}", hash.to_hex(), name)
    }
}

/// An error and its causes on one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
