//! `bench dual`: the worker's hasher hashing a buffer over and over on a thread of its own while encode
//! sessions run, as a worker beside a miner runs them; each is also measured alone, and the loss of each
//! is reported.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dualrig_media::EncoderSelection;

use super::encode::{default_ladder, io_error, ladder_run, make_clip, progress};
use super::report::{DUAL_SCHEMA, DualBenchReport, HashRate, loss_percent};
use super::{BenchArgs, BenchError};
use crate::hash::share::SharedHasher;
use crate::hash::{BlobHasher, HashMode, select_hasher};

/// The buffer the hash thread hashes again and again.
const BUFFER_BYTES: usize = 64 << 20;

/// Hashes `data` until `stop` is set (and at least once); returns bytes hashed and the time taken.
fn hash_until(
    hasher: &dyn BlobHasher,
    data: &[u8],
    expected: &blake3::Hash,
    stop: &AtomicBool,
) -> Result<HashRate, BenchError> {
    let started = Instant::now();
    let mut bytes = 0u64;
    loop {
        let digest = hasher.hash_bytes(data, HashMode::Plain, false)?;
        if digest.hash != *expected {
            return Err(BenchError::Mismatch(format!(
                "{} hashed the buffer to {}, blake3 to {}",
                hasher.describe(),
                digest.hash,
                expected
            )));
        }
        bytes += data.len() as u64;
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    Ok(HashRate::new(bytes, started.elapsed().as_secs_f64()))
}

/// Measures hashing and encoding alone and together.
pub fn measure(args: &BenchArgs) -> Result<DualBenchReport, BenchError> {
    dualrig_media::init();
    let hasher: Arc<dyn BlobHasher> =
        SharedHasher::wrap(select_hasher(args.gpu)?, args.gpu_hash_share)
            .map_err(|e| BenchError::Mismatch(e.to_string()))?;
    let encoder = dualrig_media::select_encoder(&dualrig_media::EncoderChoice::Auto)
        .unwrap_or_else(|_| EncoderSelection::software());
    let sessions = args.dual_sessions.unwrap_or(1);
    let dir = tempfile::tempdir().map_err(io_error("cannot make a scratch directory"))?;
    let (clip, info) = make_clip(dir.path(), args.clip_secs)?;
    let ladder = default_ladder();
    let data = vec![0x5au8; BUFFER_BYTES];
    let expected = blake3::hash(&data);

    progress(&format!(
        "dual: {} alone, {sessions} ladder session(s)",
        encoder.name
    ));
    let encode_alone = ladder_run(&clip, &info, &ladder, &encoder, sessions, dir.path())?;

    progress(&format!("dual: {} alone", hasher.describe()));
    let stop = AtomicBool::new(false);
    let hash_alone = std::thread::scope(|scope| {
        let worker = scope.spawn(|| hash_until(hasher.as_ref(), &data, &expected, &stop));
        std::thread::sleep(Duration::from_secs_f64(encode_alone.seconds.max(1.0)));
        stop.store(true, Ordering::Relaxed);
        worker
            .join()
            .unwrap_or_else(|_| Err(BenchError::Mismatch("the hash thread panicked".into())))
    })?;

    progress("dual: both at once");
    let stop = AtomicBool::new(false);
    let (hash_together, encode_together) = std::thread::scope(|scope| {
        let worker = scope.spawn(|| hash_until(hasher.as_ref(), &data, &expected, &stop));
        let encoded = ladder_run(&clip, &info, &ladder, &encoder, sessions, dir.path());
        stop.store(true, Ordering::Relaxed);
        let hashed = worker
            .join()
            .unwrap_or_else(|_| Err(BenchError::Mismatch("the hash thread panicked".into())));
        (hashed, encoded)
    });
    let (hash_together, encode_together) = (hash_together?, encode_together?);

    Ok(DualBenchReport {
        schema: DUAL_SCHEMA,
        hasher: hasher.describe(),
        gpu_hash_share: args.gpu_hash_share,
        buffer_bytes: BUFFER_BYTES as u64,
        encoder: encoder.name.clone(),
        sessions,
        clip: info,
        hash_loss_percent: loss_percent(hash_alone.gb_per_s, hash_together.gb_per_s),
        encode_loss_percent: loss_percent(encode_alone.fps, encode_together.fps),
        hash_alone,
        hash_together,
        encode_alone,
        encode_together,
    })
}

/// The human table.
pub fn render_table(report: &DualBenchReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "dual: {} ({} session{}) with {}, share {}",
        report.encoder,
        report.sessions,
        if report.sessions == 1 { "" } else { "s" },
        report.hasher,
        report.gpu_hash_share
    );
    let _ = writeln!(
        out,
        "  {:<10} {:>12} {:>12} {:>8}",
        "", "alone", "together", "loss"
    );
    let _ = writeln!(
        out,
        "  {:<10} {:>8.2} GB/s {:>7.2} GB/s {:>7.1}%",
        "hash", report.hash_alone.gb_per_s, report.hash_together.gb_per_s, report.hash_loss_percent
    );
    let _ = writeln!(
        out,
        "  {:<10} {:>8.1} fps {:>8.1} fps {:>7.1}%",
        "encode", report.encode_alone.fps, report.encode_together.fps, report.encode_loss_percent
    );
    out
}
