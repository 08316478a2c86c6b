//! `bench hash`: BLAKE3 throughput of every backend next to `b3sum` on the same file, same run.
//!
//! Each size gets one pseudo-random input, kept in memory and written to a temporary file (so it is
//! in the page cache for every file-based row). Every row must produce the hash `b3sum` printed, or
//! the benchmark fails: a fast wrong answer is not a result.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::Serialize;

use super::stats::median;
use super::{BenchArgs, BenchError, format_size};
use crate::hash::{AdapterPolicy, BlobHasher, CpuHasher, GpuHasher, GpuMode, GpuOptions, HashMode};
use crate::store::BlobStore;

/// Value of [`HashBenchReport::schema`] for this layout.
pub const SCHEMA: &str = "dualrig.bench.hash/1";

/// In-process measurements of small inputs repeat until this many bytes are hashed, so one timed run
/// is long enough to time.
const MIN_BYTES_PER_RUN: u64 = 64 << 20;

/// The JSON document `bench hash --json` prints.
#[derive(Debug, Serialize)]
pub struct HashBenchReport {
    /// Layout of this document: `dualrig.bench.hash/1`.
    pub schema: &'static str,
    /// The machine the figures come from.
    pub machine: Machine,
    /// The CPU backend, as `BlobHasher::describe` says it.
    pub cpu_backend: String,
    /// The GPU measured, or null when none was (see `gpu_skipped`).
    pub gpu: Option<GpuInfo>,
    /// Why no GPU row was measured, or null.
    pub gpu_skipped: Option<String>,
    /// `b3sum --version`, or null when b3sum is missing (see `b3sum_missing`).
    pub b3sum: Option<String>,
    /// Why no b3sum row was measured, or null.
    pub b3sum_missing: Option<String>,
    /// Timed runs behind each median.
    pub runs: u32,
    /// One entry per input size, in the order asked for.
    pub sizes: Vec<SizeResult>,
}

/// Where the benchmark ran.
#[derive(Debug, Serialize)]
pub struct Machine {
    /// Threads the CPU rows use (rayon's pool; b3sum gets the same number).
    pub cpu_threads: usize,
    /// `model name` from /proc/cpuinfo, when there is one.
    pub cpu_model: Option<String>,
    /// `std::env::consts::OS` / `ARCH`.
    pub os: String,
}

/// The adapter behind the GPU rows.
#[derive(Debug, Serialize)]
pub struct GpuInfo {
    /// Adapter name, e.g. `NVIDIA H100` or `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub adapter: String,
    /// wgpu backend, e.g. `Vulkan`.
    pub backend: String,
    /// wgpu device type: `DiscreteGpu`, `IntegratedGpu`, `Cpu` (a software adapter), ...
    pub device_type: String,
    /// Bytes per streaming window.
    pub window_bytes: u64,
}

/// All measurements of one input size.
#[derive(Debug, Serialize)]
pub struct SizeResult {
    /// Input length in bytes.
    pub bytes: u64,
    /// The BLAKE3 hash of the input (hex), which every row reproduced.
    pub hash: String,
    /// One entry per row, in table order.
    pub rows: Vec<Row>,
}

/// One measured way of hashing the input.
#[derive(Debug, Serialize)]
pub struct Row {
    /// `cpu_1_thread` (blake3, in memory), `cpu_all_threads` (blake3 `update_rayon`, in memory),
    /// `cpu_file` (the worker's CPU backend reading the file), `gpu_kernel` (kernels only, input
    /// already on the device), `gpu_end_to_end` (from memory: copies, transfers, kernels, readback),
    /// `gpu_file` (the worker's GPU backend reading the file), `b3sum_1_thread`,
    /// `b3sum_all_threads` (the b3sum process on the file, start-up included).
    pub name: &'static str,
    /// Threads used, where the row controls it.
    pub threads: Option<usize>,
    /// Median wall time of one hash of the whole input, in seconds.
    pub seconds: f64,
    /// Input bytes per second over 10^9.
    pub gb_per_s: f64,
    /// This row's throughput over b3sum's with the same threads (`all_threads` for GPU rows); null
    /// without b3sum.
    pub vs_b3sum: Option<f64>,
}

struct Gpu {
    hasher: GpuHasher,
}

fn progress(text: &str) {
    let mut err = std::io::stderr().lock();
    // Progress is best effort.
    let _ = writeln!(err, "bench hash: {text}");
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split(':').nth(1))
        .map(|model| model.trim().to_owned())
}

/// Deterministic incompressible bytes, generated in parallel.
fn input(len: u64) -> Vec<u8> {
    let mut data = vec![0u8; len as usize];
    data.par_chunks_mut(1 << 20)
        .enumerate()
        .for_each(|(i, block)| {
            let mut hasher = blake3::Hasher::new();
            hasher.update(b"dualrig bench input");
            hasher.update(&(i as u64).to_le_bytes());
            hasher.finalize_xof().fill(block);
        });
    data
}

/// One row timed over the input file.
struct FileRow<'a> {
    name: &'static str,
    threads: Option<usize>,
    /// Hashes per timing (1 for a process: its start-up is part of what it costs).
    repeat: u64,
    hash: Box<dyn FnMut() -> Result<blake3::Hash, BenchError> + 'a>,
}

/// Times every row `runs` times, the rows taking turns within each run; returns each row's median
/// per hash, in the rows' order.
fn time_in_turn(
    runs: u32,
    rows: &mut [FileRow<'_>],
    expected: &blake3::Hash,
) -> Result<Vec<Duration>, BenchError> {
    let mut times = vec![Vec::with_capacity(runs as usize); rows.len()];
    for _ in 0..runs {
        for (row, row_times) in rows.iter_mut().zip(&mut times) {
            let start = Instant::now();
            for _ in 0..row.repeat {
                let got = (row.hash)()?;
                if &got != expected {
                    return Err(BenchError::Mismatch(format!(
                        "{} hashed to {got}, b3sum and blake3 to {expected}",
                        row.name
                    )));
                }
            }
            row_times.push(start.elapsed() / row.repeat as u32);
        }
    }
    Ok(times.iter().map(|row| median(row)).collect())
}

/// Times `runs` runs of `hash`, each repeating it `repeat` times; returns the median per hash.
fn time_runs(
    runs: u32,
    repeat: u64,
    mut hash: impl FnMut() -> Result<blake3::Hash, BenchError>,
    expected: &blake3::Hash,
    name: &str,
) -> Result<Duration, BenchError> {
    let mut times = Vec::with_capacity(runs as usize);
    for _ in 0..runs {
        let start = Instant::now();
        for _ in 0..repeat {
            let got = hash()?;
            if &got != expected {
                return Err(BenchError::Mismatch(format!(
                    "{name} hashed to {got}, b3sum and blake3 to {expected}"
                )));
            }
        }
        times.push(start.elapsed() / repeat as u32);
    }
    Ok(median(&times))
}

fn b3sum_version() -> Result<String, String> {
    match Command::new("b3sum").arg("--version").output() {
        Ok(out) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        }
        Ok(out) => Err(format!("`b3sum --version` failed: {}", out.status)),
        Err(e) => Err(format!(
            "b3sum is not installed ({e}); install it (Debian: apt-get install b3sum) to compare"
        )),
    }
}

fn b3sum_once(file: &Path, threads: usize) -> Result<blake3::Hash, BenchError> {
    hash_process(
        Command::new("b3sum")
            .arg("--num-threads")
            .arg(threads.to_string())
            .arg(file),
        "b3sum",
    )
}

/// Runs a program that prints a hash as `b3sum` does and returns the hash.
fn hash_process(command: &mut Command, what: &str) -> Result<blake3::Hash, BenchError> {
    let out = command.output().map_err(|source| BenchError::Io {
        what: format!("running {what}"),
        source,
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .get(..64)
        .filter(|_| out.status.success())
        .ok_or_else(|| {
            BenchError::Mismatch(format!(
                "{what} printed no hash: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        })?;
    blake3::Hash::from_hex(hex)
        .map_err(|e| BenchError::Mismatch(format!("{what} printed {hex:?}: {e}")))
}

fn open_gpu(mode: GpuMode) -> Result<Result<Gpu, String>, BenchError> {
    let policy = match mode {
        GpuMode::Off => return Ok(Err("--gpu off".to_owned())),
        GpuMode::Auto => AdapterPolicy::HardwareOnly,
        GpuMode::Require => AdapterPolicy::Any,
    };
    match GpuHasher::new(GpuOptions {
        policy,
        ..GpuOptions::default()
    }) {
        Ok(hasher) => Ok(Ok(Gpu { hasher })),
        Err(e) if mode == GpuMode::Auto => Ok(Err(format!(
            "{} (--gpu require measures software adapters too)",
            crate::hash::cli::error_chain(&e)
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Runs `bench hash` and prints the table or, with `--json`, the report.
pub fn print(args: &BenchArgs, report: &HashBenchReport) -> Result<(), BenchError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let written = if args.json {
        serde_json::to_writer_pretty(&mut out, report)?;
        writeln!(out)
    } else {
        out.write_all(render_table(report).as_bytes())
    };
    written.map_err(|source| BenchError::Io {
        what: "writing the report".to_owned(),
        source,
    })
}

/// Takes every measurement `args` asks for.
pub fn measure(args: &BenchArgs) -> Result<HashBenchReport, BenchError> {
    let threads = rayon::current_num_threads();
    let cpu = CpuHasher::new();
    progress("opening the GPU");
    let gpu = open_gpu(args.gpu)?;
    let (b3sum, b3sum_missing) = match b3sum_version() {
        Ok(version) => (Some(version), None),
        Err(why) => {
            progress(&why);
            (None, Some(why))
        }
    };
    let mut sizes = Vec::new();
    for &bytes in &args.sizes {
        sizes.push(measure_size(
            args,
            bytes,
            threads,
            &cpu,
            gpu.as_ref().ok(),
            b3sum.is_some(),
        )?);
    }
    Ok(HashBenchReport {
        schema: SCHEMA,
        machine: Machine {
            cpu_threads: threads,
            cpu_model: cpu_model(),
            os: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        },
        cpu_backend: cpu.describe(),
        gpu: gpu.as_ref().ok().map(|g| {
            let info = g.hasher.adapter_info();
            GpuInfo {
                adapter: info.name.clone(),
                backend: format!("{:?}", info.backend),
                device_type: format!("{:?}", info.device_type),
                window_bytes: g.hasher.window_bytes(),
            }
        }),
        gpu_skipped: gpu.err(),
        b3sum,
        b3sum_missing,
        runs: args.runs,
        sizes,
    })
}

fn measure_size(
    args: &BenchArgs,
    bytes: u64,
    threads: usize,
    cpu: &CpuHasher,
    gpu: Option<&Gpu>,
    with_b3sum: bool,
) -> Result<SizeResult, BenchError> {
    let label = format_size(bytes);
    progress(&format!("{label}: generating input"));
    let data = input(bytes);
    let expected = blake3::Hasher::new().update_rayon(&data).finalize();
    let mut file = tempfile::NamedTempFile::new().map_err(|source| BenchError::Io {
        what: "creating the temporary input file".to_owned(),
        source,
    })?;
    // Synced, so no writeback of the input runs while the file rows are timed.
    file.write_all(&data)
        .and_then(|()| file.flush())
        .and_then(|()| file.as_file().sync_all())
        .map_err(|source| BenchError::Io {
            what: format!("writing {label} to {}", file.path().display()),
            source,
        })?;
    // Closed (the path stays until dropped): a file somebody holds open for writing is read, not
    // mapped, and the worker's own files are not open for writing when it hashes them.
    let file = file.into_temp_path();
    let path: &Path = &file;
    let runs = args.runs;
    let repeat = (MIN_BYTES_PER_RUN / bytes).max(1);
    let mut rows: Vec<(&'static str, Option<usize>, Duration)> = Vec::new();
    let step = |name: &'static str| progress(&format!("{label}: {name}"));

    step("cpu_1_thread");
    let t = time_runs(
        runs,
        repeat,
        || Ok(blake3::hash(&data)),
        &expected,
        "cpu_1_thread",
    )?;
    rows.push(("cpu_1_thread", Some(1), t));

    step("cpu_all_threads");
    let t = time_runs(
        runs,
        repeat,
        || Ok(blake3::Hasher::new().update_rayon(&data).finalize()),
        &expected,
        "cpu_all_threads",
    )?;
    rows.push(("cpu_all_threads", Some(threads), t));

    if let Some(gpu) = gpu {
        step("gpu_kernel");
        let t = time_gpu_kernel(&gpu.hasher, &data, runs, repeat, &expected)?;
        rows.push(("gpu_kernel", None, t));

        step("gpu_end_to_end");
        let t = time_runs(
            runs,
            repeat,
            || Ok(gpu.hasher.hash_bytes(&data, HashMode::Plain, false)?.hash),
            &expected,
            "gpu_end_to_end",
        )?;
        rows.push(("gpu_end_to_end", None, t));
    }

    // A store holding a copy of the input: a scrub rehashes it and checks its outboard.
    let store_dir = tempfile::tempdir().map_err(|source| BenchError::Io {
        what: "creating a temporary store".to_owned(),
        source,
    })?;
    let store = BlobStore::open(
        store_dir.path(),
        bytes * 2 + (64 << 20),
        Arc::new(CpuHasher::new()),
    )
    .and_then(|store| store.put_file(path).map(|_| store))
    .map_err(|e| BenchError::Mismatch(format!("storing the input for store_scrub: {e}")))?;
    // A store the input is put into again and again (a put of a blob already there still hashes,
    // copies and syncs it before it finds the blob present).
    let put_dir = tempfile::tempdir().map_err(|source| BenchError::Io {
        what: "creating a temporary store".to_owned(),
        source,
    })?;
    let put_store = BlobStore::open(
        put_dir.path(),
        bytes * 3 + (64 << 20),
        Arc::new(CpuHasher::new()),
    )
    .map_err(|e| BenchError::Mismatch(format!("opening a store for store_put: {e}")))?;
    // Rows that read the file take turns run by run, so page cache, load and frequency changes fall
    // on each alike.
    let worker = std::env::current_exe().map_err(|source| BenchError::Io {
        what: "finding this program to time `dualrig-worker hash`".to_owned(),
        source,
    })?;
    let mut file_rows: Vec<FileRow<'_>> = vec![
        FileRow {
            name: "cpu_file",
            threads: Some(threads),
            repeat,
            hash: Box::new(|| Ok(cpu.hash_file(path, HashMode::Plain, false)?.hash)),
        },
        FileRow {
            name: "cpu_file_outboard",
            threads: Some(threads),
            repeat,
            hash: Box::new(|| Ok(cpu.hash_file(path, HashMode::Plain, true)?.hash)),
        },
        FileRow {
            name: "worker_hash_cli",
            threads: Some(threads),
            repeat: 1,
            hash: Box::new(|| {
                hash_process(
                    Command::new(&worker)
                        .args(["hash", "--gpu", "off"])
                        .arg(path),
                    "dualrig-worker hash",
                )
            }),
        },
    ];
    file_rows.push(FileRow {
        name: "store_scrub",
        threads: Some(threads),
        repeat,
        hash: Box::new(|| {
            let report = store
                .scrub()
                .map_err(|e| BenchError::Mismatch(format!("store_scrub: {e}")))?;
            if report.checked != 1 || !report.corrupt.is_empty() || !report.missing.is_empty() {
                return Err(BenchError::Mismatch(format!(
                    "store_scrub found the stored input unsound: {report:?}"
                )));
            }
            Ok(expected)
        }),
    });
    file_rows.push(FileRow {
        name: "store_put",
        threads: Some(threads),
        repeat,
        hash: Box::new(|| {
            put_store
                .put_file(path)
                .map(|info| info.root)
                .map_err(|e| BenchError::Mismatch(format!("store_put: {e}")))
        }),
    });
    if let Some(gpu) = gpu {
        file_rows.push(FileRow {
            name: "gpu_file",
            threads: None,
            repeat,
            hash: Box::new(|| Ok(gpu.hasher.hash_file(path, HashMode::Plain, false)?.hash)),
        });
    }
    if with_b3sum {
        for (name, n) in [("b3sum_1_thread", 1), ("b3sum_all_threads", threads)] {
            file_rows.push(FileRow {
                name,
                threads: Some(n),
                repeat: 1,
                hash: Box::new(move || b3sum_once(path, n)),
            });
        }
    }
    step("file rows in turn");
    let times = time_in_turn(runs, &mut file_rows, &expected)?;
    let mut b3sum_rates = (None, None);
    for (row, t) in file_rows.iter().zip(times) {
        rows.push((row.name, row.threads, t));
        let rate = bytes as f64 / t.as_secs_f64();
        match row.name {
            "b3sum_1_thread" => b3sum_rates.0 = Some(rate),
            "b3sum_all_threads" => b3sum_rates.1 = Some(rate),
            _ => {}
        }
    }
    if threads == 1 {
        b3sum_rates.1 = b3sum_rates.0;
    }

    let rows = rows
        .into_iter()
        .map(|(name, threads, t)| {
            let rate = bytes as f64 / t.as_secs_f64();
            let reference = if threads == Some(1) {
                b3sum_rates.0
            } else {
                b3sum_rates.1
            };
            Row {
                name,
                threads,
                seconds: t.as_secs_f64(),
                gb_per_s: rate / 1e9,
                vs_b3sum: reference.map(|r| rate / r),
            }
        })
        .collect();
    Ok(SizeResult {
        bytes,
        hash: expected.to_hex().to_string(),
        rows,
    })
}

/// Kernels alone: the input (or, past one window, its first window) is uploaded once, then hashed
/// window after window with no transfer but the 32-byte result.
fn time_gpu_kernel(
    gpu: &GpuHasher,
    data: &[u8],
    runs: u32,
    repeat: u64,
    expected: &blake3::Hash,
) -> Result<Duration, BenchError> {
    let window = gpu.max_resident_len() as usize;
    if data.len() <= window {
        let resident = gpu.upload(data)?;
        return time_runs(
            runs,
            repeat,
            || Ok(gpu.hash_resident(&resident, HashMode::Plain)?),
            expected,
            "gpu_kernel",
        );
    }
    let resident = gpu.upload(&data[..window])?;
    let window_hash = blake3::Hasher::new()
        .update_rayon(&data[..window])
        .finalize();
    let windows = data.len().div_ceil(window) as u32;
    let per_window = time_runs(
        runs,
        u64::from(windows),
        || Ok(gpu.hash_resident(&resident, HashMode::Plain)?),
        &window_hash,
        "gpu_kernel",
    )?;
    // Scale one window's time to the whole input's length.
    Ok(per_window.mul_f64(data.len() as f64 / window as f64))
}

/// The human-readable table.
pub fn render_table(report: &HashBenchReport) -> String {
    let mut text = String::new();
    let gpu = match (&report.gpu, &report.gpu_skipped) {
        (Some(g), _) => format!(
            "{} ({}, {}), window {}",
            g.adapter,
            g.backend,
            g.device_type,
            format_size(g.window_bytes)
        ),
        (None, Some(why)) => format!("not measured: {why}"),
        (None, None) => "not measured".to_owned(),
    };
    let b3sum = match (&report.b3sum, &report.b3sum_missing) {
        (Some(v), _) => v.clone(),
        (None, Some(why)) => format!("not measured: {why}"),
        (None, None) => "not measured".to_owned(),
    };
    text.push_str(&format!(
        "BLAKE3 throughput, median of {} runs\n  {} ({}, {})\n  gpu: {gpu}\n  b3sum: {b3sum}\n\n",
        report.runs,
        report.cpu_backend,
        report.machine.cpu_model.as_deref().unwrap_or("unknown CPU"),
        report.machine.os,
    ));

    text.push_str(&format!(
        "{:<9} {:<18} {:>7} {:>12} {:>9} {:>9}\n",
        "size", "row", "threads", "time", "GB/s", "vs b3sum"
    ));
    for size in &report.sizes {
        for row in &size.rows {
            text.push_str(&format!(
                "{:<9} {:<18} {:>7} {:>12} {:>9.3} {:>9}\n",
                format_size(size.bytes),
                row.name,
                row.threads.map_or("-".to_owned(), |t| t.to_string()),
                format_duration(row.seconds),
                row.gb_per_s,
                row.vs_b3sum.map_or("-".to_owned(), |r| format!("{r:.2}x")),
            ));
        }
    }
    text
}

fn format_duration(seconds: f64) -> String {
    if seconds >= 1.0 {
        format!("{seconds:.3} s")
    } else if seconds >= 1e-3 {
        format!("{:.3} ms", seconds * 1e3)
    } else {
        format!("{:.1} us", seconds * 1e6)
    }
}
