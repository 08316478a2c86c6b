//! BLAKE3 hashing of blobs on the GPU's shader cores (wgpu + `shaders/blake3.wgsl`) or on the CPU (the
//! `blake3` crate), behind one [`BlobHasher`] trait whose results are bit-identical to `b3sum`.
//!
//! Both backends build BLAKE3's tree the same way: chunk chaining values, then parents merged level by
//! level with an odd last node carried up, ROOT only on the final compression. Large inputs are
//! streamed in windows of a power-of-two number of chunks, so each window is a complete subtree whose
//! chaining value the host merges with the same rule ([`tree`]). The parents of that tree can be kept
//! as an [`Outboard`], which is what a worker needs to answer storage proofs without rehashing.

pub mod cli;
mod cpu;
mod gpu;
mod mapped;
mod outboard;
pub mod share;
mod source;
mod tree;

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

pub use cpu::CpuHasher;
pub use gpu::{AdapterPolicy, GpuHasher, GpuOptions, ResidentInput};
pub use outboard::{Outboard, OutboardFormatError};

/// BLAKE3's chunk length: the unit of parallelism on both backends.
pub const CHUNK_LEN: usize = 1024;

/// How the worker uses the GPU for hashing (`--gpu`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuMode {
    /// A hardware adapter when there is one, otherwise the CPU.
    Auto,
    /// Any wgpu adapter, software ones (lavapipe) included; an error when there is none.
    Require,
    /// The CPU only.
    Off,
}

/// Which BLAKE3 function to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashMode {
    /// `blake3::hash`.
    Plain,
    /// `blake3::keyed_hash` with this 32-byte key.
    Keyed([u8; blake3::KEY_LEN]),
}

impl HashMode {
    pub(crate) fn hazmat(&self) -> blake3::hazmat::Mode<'_> {
        match self {
            HashMode::Plain => blake3::hazmat::Mode::Hash,
            HashMode::Keyed(key) => blake3::hazmat::Mode::KeyedHash(key),
        }
    }

    /// A fresh incremental hasher for this mode.
    pub fn hasher(&self) -> blake3::Hasher {
        match self {
            HashMode::Plain => blake3::Hasher::new(),
            HashMode::Keyed(key) => blake3::Hasher::new_keyed(key),
        }
    }
}

/// What hashing a blob yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobDigest {
    /// The root hash: the blob's id in plain mode.
    pub hash: blake3::Hash,
    /// The number of bytes hashed.
    pub len: u64,
    /// The tree's parent chaining values, when they were asked for.
    pub outboard: Option<Outboard>,
}

/// A BLAKE3 backend. Every method returns exactly what the `blake3` crate returns for the same bytes.
pub trait BlobHasher: Send + Sync {
    /// One line for logs and `bench`, e.g. `gpu: NVIDIA H100 (Vulkan)` or `cpu: blake3 rayon, 16 threads`.
    fn describe(&self) -> String;

    /// Hashes bytes already in memory.
    fn hash_bytes(
        &self,
        data: &[u8],
        mode: HashMode,
        with_outboard: bool,
    ) -> Result<BlobDigest, HashError>;

    /// Hashes everything `reader` yields, streamed in windows, so inputs of any length fit in bounded
    /// memory. With `expected_len`, the input must be exactly that long: a reader that ends early
    /// gives [`HashError::Truncated`] and one that goes on gives [`HashError::Grew`], never a hash of
    /// bytes nobody asked for.
    fn hash_reader(
        &self,
        reader: &mut dyn Read,
        expected_len: Option<u64>,
        mode: HashMode,
        with_outboard: bool,
    ) -> Result<BlobDigest, HashError>;

    /// [`Self::hash_reader`] for exactly `len` bytes with the outboard written into `outboard` as the
    /// windows are hashed (positioned writes from offset 0; on `Ok` the file is exactly the encoded
    /// outboard, not yet synced), so memory stays one window's tree however long the input. The
    /// digest carries no outboard. On an error the file's contents mean nothing.
    fn hash_reader_to_file(
        &self,
        reader: &mut dyn Read,
        len: u64,
        mode: HashMode,
        outboard: &std::fs::File,
    ) -> Result<BlobDigest, HashError>;

    /// Hashes a regular file, which must keep the length it had when it was opened.
    fn hash_file(
        &self,
        path: &Path,
        mode: HashMode,
        with_outboard: bool,
    ) -> Result<BlobDigest, HashError> {
        let (mut file, len) = open_regular_file(path)?;
        self.hash_reader(&mut file, Some(len), mode, with_outboard)
            .map_err(|e| e.for_input(path))
    }

    /// Hashes many small blobs at once (on the GPU: one dispatch per tree level for the whole batch).
    fn hash_batch(&self, blobs: &[&[u8]], mode: HashMode) -> Result<Vec<blake3::Hash>, HashError>;
}

/// Why hashing failed. No variant is ever paired with a hash: a failure never yields a wrong one.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error(
        "no GPU adapter found (backends {backends}); install a Vulkan driver (Mesa's lavapipe works \
         without a GPU) or hash with --gpu off"
    )]
    NoAdapter { backends: String },
    #[error("no hardware GPU adapter; found only software adapters: {found}")]
    NoHardwareAdapter { found: String },
    #[error("WGPU_ADAPTER_NAME={wanted:?} matches none of the adapters found: {found}")]
    AdapterNotFound { wanted: String, found: String },
    #[error("could not open a device on {adapter}")]
    RequestDevice {
        adapter: String,
        #[source]
        source: wgpu::RequestDeviceError,
    },
    #[error("the GPU ran out of memory while {during}; hash with --gpu off to use the CPU")]
    GpuOutOfMemory { during: &'static str },
    #[error("the GPU rejected the work while {during}: {message}")]
    GpuValidation {
        during: &'static str,
        message: String,
    },
    #[error("GPU driver error while {during}: {message}")]
    GpuInternal {
        during: &'static str,
        message: String,
    },
    #[error("the GPU device was lost: {reason}")]
    DeviceLost { reason: String },
    #[error("reading a result back from the GPU failed: {0}")]
    Readback(String),
    #[error("cannot read {name}")]
    Io {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} is not a regular file")]
    NotAFile { name: String },
    #[error("cannot write the outboard")]
    OutboardWrite(#[source] std::io::Error),
    #[error(
        "{name} ended after {got} of its {expected} bytes: it shrank while being hashed, so no hash \
         was produced"
    )]
    Truncated {
        name: String,
        expected: u64,
        got: u64,
    },
    #[error(
        "{name} grew past the {expected} bytes it had when hashing began, so no hash was produced"
    )]
    Grew { name: String, expected: u64 },
    #[error("{0}")]
    Usage(String),
    #[error("{failed} of {total} inputs could not be hashed")]
    SomeFailed { failed: usize, total: usize },
}

/// The name inputs get in errors until a caller knows better.
const UNNAMED_INPUT: &str = "input";

impl HashError {
    /// True when the GPU itself failed (as opposed to the input), so the CPU may retry the same work.
    pub fn is_gpu_failure(&self) -> bool {
        matches!(
            self,
            HashError::GpuOutOfMemory { .. }
                | HashError::GpuValidation { .. }
                | HashError::GpuInternal { .. }
                | HashError::DeviceLost { .. }
                | HashError::Readback(_)
        )
    }

    /// Names the input in an input error that still carries the placeholder name.
    pub fn for_input(self, path: &Path) -> Self {
        let rename = |name: String| {
            if name == UNNAMED_INPUT {
                path.display().to_string()
            } else {
                name
            }
        };
        match self {
            HashError::Io { name, source } => HashError::Io {
                name: rename(name),
                source,
            },
            HashError::Truncated {
                name,
                expected,
                got,
            } => HashError::Truncated {
                name: rename(name),
                expected,
                got,
            },
            HashError::Grew { name, expected } => HashError::Grew {
                name: rename(name),
                expected,
            },
            other => other,
        }
    }

    fn io(path: &Path, source: std::io::Error) -> Self {
        HashError::Io {
            name: path.display().to_string(),
            source,
        }
    }
}

/// Opens `path` for hashing and returns it with its length at open time.
pub(crate) fn open_regular_file(path: &Path) -> Result<(File, u64), HashError> {
    let file = File::open(path).map_err(|e| HashError::io(path, e))?;
    let meta = file.metadata().map_err(|e| HashError::io(path, e))?;
    if !meta.is_file() {
        return Err(HashError::NotAFile {
            name: path.display().to_string(),
        });
    }
    Ok((file, meta.len()))
}

/// Picks the backend for `mode`. In [`GpuMode::Auto`] a GPU that cannot be used is logged and the CPU
/// takes over; a GPU that fails later is replaced by the CPU for the work that can be retried.
pub fn select_hasher(mode: GpuMode) -> Result<Arc<dyn BlobHasher>, HashError> {
    match mode {
        GpuMode::Off => Ok(Arc::new(CpuHasher::new())),
        GpuMode::Require => Ok(Arc::new(GpuHasher::new(GpuOptions {
            policy: AdapterPolicy::Any,
            ..GpuOptions::default()
        })?)),
        GpuMode::Auto => match GpuHasher::new(GpuOptions::default()) {
            Ok(gpu) => {
                tracing::info!(backend = %gpu.describe(), "hashing on the GPU");
                Ok(Arc::new(FallbackHasher {
                    gpu,
                    cpu: CpuHasher::new(),
                }))
            }
            Err(reason) => {
                tracing::info!(%reason, "GPU hashing unavailable; hashing on the CPU");
                Ok(Arc::new(CpuHasher::new()))
            }
        },
    }
}

/// The GPU, with the CPU redoing any work the GPU fails at (`--gpu auto`). Streams from a reader
/// cannot be replayed, so their GPU failures are returned as they are.
struct FallbackHasher {
    gpu: GpuHasher,
    cpu: CpuHasher,
}

impl FallbackHasher {
    fn retry<T>(
        &self,
        first: Result<T, HashError>,
        again: impl FnOnce(&CpuHasher) -> Result<T, HashError>,
    ) -> Result<T, HashError> {
        match first {
            Err(e) if e.is_gpu_failure() => {
                tracing::warn!(error = %e, "GPU hashing failed; redoing the work on the CPU");
                again(&self.cpu)
            }
            other => other,
        }
    }
}

impl BlobHasher for FallbackHasher {
    fn describe(&self) -> String {
        format!(
            "{} (falls back to {})",
            self.gpu.describe(),
            self.cpu.describe()
        )
    }

    fn hash_bytes(
        &self,
        data: &[u8],
        mode: HashMode,
        outboard: bool,
    ) -> Result<BlobDigest, HashError> {
        self.retry(self.gpu.hash_bytes(data, mode, outboard), |cpu| {
            cpu.hash_bytes(data, mode, outboard)
        })
    }

    fn hash_reader(
        &self,
        reader: &mut dyn Read,
        expected_len: Option<u64>,
        mode: HashMode,
        outboard: bool,
    ) -> Result<BlobDigest, HashError> {
        self.gpu.hash_reader(reader, expected_len, mode, outboard)
    }

    fn hash_reader_to_file(
        &self,
        reader: &mut dyn Read,
        len: u64,
        mode: HashMode,
        outboard: &std::fs::File,
    ) -> Result<BlobDigest, HashError> {
        self.gpu.hash_reader_to_file(reader, len, mode, outboard)
    }

    fn hash_file(
        &self,
        path: &Path,
        mode: HashMode,
        outboard: bool,
    ) -> Result<BlobDigest, HashError> {
        self.retry(self.gpu.hash_file(path, mode, outboard), |cpu| {
            cpu.hash_file(path, mode, outboard)
        })
    }

    fn hash_batch(&self, blobs: &[&[u8]], mode: HashMode) -> Result<Vec<blake3::Hash>, HashError> {
        self.retry(self.gpu.hash_batch(blobs, mode), |cpu| {
            cpu.hash_batch(blobs, mode)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_mode_redoes_failed_gpu_work_on_the_cpu() {
        let hasher = FallbackHasher {
            gpu: gpu::tests::test_gpu(),
            cpu: CpuHasher::new(),
        };
        let data = vec![9u8; 50_000];
        hasher.gpu.lose_device();
        let digest = hasher
            .hash_bytes(&data, HashMode::Plain, true)
            .expect("the CPU takes over");
        assert_eq!(digest.hash, blake3::hash(&data));
        assert!(digest.outboard.is_some());
        let hashes = hasher
            .hash_batch(&[&data[..10], &data[..]], HashMode::Plain)
            .expect("the CPU takes over");
        assert_eq!(hashes, vec![blake3::hash(&data[..10]), blake3::hash(&data)]);
        let missing = hasher
            .hash_file(
                Path::new("/nonexistent/dualrig/blob"),
                HashMode::Plain,
                false,
            )
            .expect_err("input errors are not retried");
        assert!(matches!(missing, HashError::Io { .. }), "{missing}");
    }
}
