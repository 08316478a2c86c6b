//! Structural verification of a worker's result (DESIGN §5): the signature and hashes hold, exactly the
//! asked renditions came back, and each one decodes with the asked codec and size, the source's frame count
//! (±1) and the source's timestamps. On the jobs the dispatcher picks, a content check follows: a few
//! random frames of each rendition against the source's (`dualrig_media::content_check`), so a blank,
//! swapped or foreign video with the right shape is refused too.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use dualrig_media::StreamInfo;
use dualrig_proto::identity::PublicId;
use dualrig_proto::profile::Profile;
use dualrig_proto::result::verify_result;
use dualrig_proto::v1::JobResult;

use crate::metrics;

/// Frames of each rendition the content check compares with the source.
pub const CONTENT_SAMPLES: usize = 4;

/// Why a result was refused; kept as the reason the job moved to another worker.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("result is not the worker's: {0}")]
    Attribution(#[from] dualrig_proto::result::ResultError),
    #[error("rendition '{0}' was not asked for")]
    Unexpected(String),
    #[error("rendition '{0}' is missing")]
    Missing(String),
    #[error("rendition '{0}' is listed twice")]
    Duplicate(String),
    #[error("{0}")]
    Structure(#[from] dualrig_media::VerifyError),
    /// The seed picks the compared frames again, so the verdict can be replayed.
    #[error("{error} (content check seed {seed})")]
    Content {
        error: dualrig_media::VerifyError,
        seed: u64,
    },
    #[error("cannot stage rendition for checking: {0}")]
    Io(#[from] std::io::Error),
}

/// Checks `result` from `worker` against the job's source and ladder. With `content`, the job's source
/// segment, every rendition also gets the content check once it passes the structural one, on frames
/// drawn with a fresh random seed. Blocking: decodes every rendition (and, for the content check, the
/// source once per rendition).
pub fn check_result(
    worker: &PublicId,
    job_id: &str,
    source: &StreamInfo,
    profiles: &[Profile],
    result: &JobResult,
    scratch: &Path,
    content: Option<&[u8]>,
) -> Result<(), Rejection> {
    // Unpredictable, so a worker cannot know which frames will be looked at.
    let content = content.map(|segment| (segment, rand::random::<u64>()));
    check_result_with_seed(worker, job_id, source, profiles, result, scratch, content)
}

/// [`check_result`] with the content check's frames drawn from a given seed: the seed a rejection
/// reports picks the same frames again, so a verdict can be replayed.
pub fn check_result_with_seed(
    worker: &PublicId,
    job_id: &str,
    source: &StreamInfo,
    profiles: &[Profile],
    result: &JobResult,
    scratch: &Path,
    content: Option<(&[u8], u64)>,
) -> Result<(), Rejection> {
    let outcome = check(worker, job_id, source, profiles, result, scratch, content);
    let label = match &outcome {
        Ok(()) | Err(Rejection::Content { .. }) => "pass",
        Err(Rejection::Attribution(_)) => "bad_signature",
        Err(Rejection::Structure(_)) => "bad_structure",
        Err(Rejection::Io(_)) => "error",
        Err(_) => "wrong_renditions",
    };
    metrics::verification("structural", label);
    outcome
}

fn check(
    worker: &PublicId,
    job_id: &str,
    source: &StreamInfo,
    profiles: &[Profile],
    result: &JobResult,
    scratch: &Path,
    content: Option<(&[u8], u64)>,
) -> Result<(), Rejection> {
    verify_result(worker, job_id, &result.renditions, &result.signature)?;
    for (i, r) in result.renditions.iter().enumerate() {
        if !profiles.iter().any(|p| p.name == r.profile) {
            return Err(Rejection::Unexpected(r.profile.clone()));
        }
        if result.renditions[..i]
            .iter()
            .any(|q| q.profile == r.profile)
        {
            return Err(Rejection::Duplicate(r.profile.clone()));
        }
    }
    let mut staged_renditions = Vec::with_capacity(profiles.len());
    for profile in profiles {
        let rendition = result
            .renditions
            .iter()
            .find(|r| r.profile == profile.name)
            .ok_or_else(|| Rejection::Missing(profile.name.clone()))?;
        let mut staged = tempfile::Builder::new()
            .prefix("rendition-")
            .suffix(".ts")
            .tempfile_in(scratch)?;
        staged.write_all(&rendition.data)?;
        staged.flush()?;
        dualrig_media::verify_rendition(source, staged.path(), profile)?;
        staged_renditions.push((profile, staged));
    }
    if let Some((segment, seed)) = content {
        let outcome = check_content(segment, &staged_renditions, scratch, seed);
        let label = match &outcome {
            Ok(lowest) => {
                record_passing_score(*lowest);
                "pass"
            }
            Err(Rejection::Content { .. }) => "mismatch",
            Err(_) => "error",
        };
        metrics::verification("content", label);
        outcome?;
    }
    Ok(())
}

/// Lowest block PSNR of any rendition that passed the content check in this process, as `f64` bits;
/// starts at +∞.
static LOWEST_PASSING_SCORE: AtomicU64 = AtomicU64::new(0x7ff0_0000_0000_0000);

/// Keeps the lowest passing score and publishes it (`dualrig_content_check_lowest_pass_db`), so an
/// operator sees how far honest work stays above the threshold.
fn record_passing_score(score_db: f64) {
    let mut seen = LOWEST_PASSING_SCORE.load(Ordering::Relaxed);
    while score_db < f64::from_bits(seen) {
        match LOWEST_PASSING_SCORE.compare_exchange_weak(
            seen,
            score_db.to_bits(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => {
                metrics::content_lowest_pass(score_db);
                return;
            }
            Err(now) => seen = now,
        }
    }
}

/// Compares [`CONTENT_SAMPLES`] frames of every rendition, drawn from `seed`, with the source
/// segment's; returns the lowest block PSNR among the renditions when all pass.
fn check_content(
    segment: &[u8],
    renditions: &[(&Profile, tempfile::NamedTempFile)],
    scratch: &Path,
    seed: u64,
) -> Result<f64, Rejection> {
    let mut staged = tempfile::Builder::new()
        .prefix("source-")
        .tempfile_in(scratch)?;
    staged.write_all(segment)?;
    staged.flush()?;
    let mut lowest = f64::INFINITY;
    for (profile, rendition) in renditions {
        let content_error = |error| Rejection::Content { error, seed };
        let score = dualrig_media::content_check(
            staged.path(),
            rendition.path(),
            profile,
            CONTENT_SAMPLES,
            seed,
        )
        .map_err(content_error)?;
        tracing::debug!(
            rendition = %profile.name,
            min_block_psnr_db = score.min_block_psnr_db,
            "content check"
        );
        score
            .check(&profile.name, dualrig_media::CONTENT_THRESHOLD_DB)
            .map_err(content_error)?;
        lowest = lowest.min(score.min_block_psnr_db);
    }
    Ok(lowest)
}
