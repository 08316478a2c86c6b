//! Structural verification of a worker's result (PROTOCOL §5): the signature and hashes hold, exactly the
//! asked renditions came back, and each one decodes with the asked codec and size, the source's frame count
//! (±1) and the source's timestamps. On the jobs the dispatcher picks, a content check follows: a few
//! random frames of each rendition against the source's (`dualrig_media::content_check`), so a blank,
//! swapped or foreign video with the right shape is refused too.
//!
//! Without the content check, each rendition's structure is read from its bitstream
//! (`dualrig_media::verify_rendition_quick`: packets counted, timestamps read, the first frame decoded),
//! a small share of decoding it all; only a rendition that fails that is decoded in full
//! (`verify_rendition`), and only that verdict is a fault. With the content check every rendition is
//! decoded in full.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use dualrig_media::{REFERENCE_MARGIN_DB, StreamInfo};
use dualrig_proto::identity::PublicId;
use dualrig_proto::profile::Profile;
use dualrig_proto::result::{ResultError, verify_result};
use dualrig_proto::v1::JobResult;

use crate::fault::{Fault, RenditionSet};
use crate::metrics;

/// Frames of each rendition the content check compares with the source.
pub const CONTENT_SAMPLES: usize = 4;
/// The most frames [`ContentCheck::EveryFrame`] holds per rendition (a segment has far fewer).
const MAX_EVERY_FRAME: u64 = 1 << 12;

/// Which content check a verification runs after the structural one.
#[derive(Debug, Clone, Copy)]
pub enum ContentCheck<'a> {
    Off,
    /// [`CONTENT_SAMPLES`] frames of each rendition, drawn from `seed`, against `segment`, the job's
    /// source as staged in scratch: the same seed draws the same frames, so the verdict replays.
    /// `kept` are source frames kept when it was inspected (for some seed), which spare decoding the
    /// source where they are the frames needed; the verdict is the same with or without them.
    Sampled {
        segment: &'a Path,
        seed: u64,
        kept: Option<&'a dualrig_media::SourceFrames>,
    },
    /// Every frame of each rendition against `segment`: fails wherever any sampled check could.
    EveryFrame {
        segment: &'a Path,
        frames: u64,
    },
}

/// A verification that passed.
#[derive(Debug, Clone, PartialEq)]
pub enum Verified {
    /// Every check it was asked for passed.
    Passed,
    /// The structure holds and a rendition fails the content check, but so nearly does an honest
    /// encoder on the same frames: the result is taken as if its content had not been sampled, and
    /// nobody is slashed.
    ContentInconclusive {
        rendition: String,
        score_db: f64,
        reference_db: f64,
    },
}

/// Why a verification did not pass: the worker's [`Fault`], or the coordinator could not stage the
/// files to check or make its reference rendition (which says nothing about the worker).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Fault(#[from] Fault),
    #[error("cannot stage rendition for checking: {0}")]
    Staging(#[from] std::io::Error),
    #[error("cannot make the reference rendition of {rendition}: {error}")]
    Reference { rendition: String, error: String },
}

/// Checks `result` from `worker` against the job's source and ladder, then runs `content`. The one
/// function that judges a transcode result: the dispatcher calls it live and `evidence::reverify`
/// calls it again on a slash's evidence. Blocking: reads every rendition's bitstream, decodes in full
/// the renditions that fail that or that are content-checked (and, for the content check, the source
/// once per rendition; where a rendition fails it, also encodes that rendition with libx264 to see
/// whether an honest encoder could have done better).
pub fn check_result(
    worker: &PublicId,
    job_id: &str,
    source: &StreamInfo,
    profiles: &[Profile],
    result: &JobResult,
    scratch: &Path,
    content: ContentCheck<'_>,
) -> Result<Verified, CheckError> {
    let outcome = check(worker, job_id, source, profiles, result, scratch, content);
    let label = match &outcome {
        Ok(_) | Err(CheckError::Fault(Fault::Content { .. })) => "pass",
        Err(CheckError::Fault(Fault::Forged { .. })) => "bad_signature",
        Err(CheckError::Fault(Fault::Structure(_))) => "bad_structure",
        Err(CheckError::Staging(_) | CheckError::Reference { .. }) => "error",
        Err(CheckError::Fault(_)) => "wrong_renditions",
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
    content: ContentCheck<'_>,
) -> Result<Verified, CheckError> {
    verify_result(worker, job_id, &result.renditions, &result.signature).map_err(|e| {
        Fault::Forged {
            rendition: match e {
                ResultError::HashMismatch { profile } => Some(profile),
                ResultError::Signature(_) => None,
            },
        }
    })?;
    let set_fault = |rendition: &str, what| Fault::Renditions {
        rendition: rendition.to_owned(),
        what,
    };
    for (i, r) in result.renditions.iter().enumerate() {
        if !profiles.iter().any(|p| p.name == r.profile) {
            return Err(set_fault(&r.profile, RenditionSet::Unexpected).into());
        }
        if result.renditions[..i]
            .iter()
            .any(|q| q.profile == r.profile)
        {
            return Err(set_fault(&r.profile, RenditionSet::Duplicate).into());
        }
    }
    let (segment, samples, seed, kept) = match content {
        ContentCheck::Off => (None, 0, 0, None),
        ContentCheck::Sampled {
            segment,
            seed,
            kept,
        } => (Some(segment), CONTENT_SAMPLES, seed, kept),
        ContentCheck::EveryFrame { segment, frames } => (
            Some(segment),
            frames.clamp(1, MAX_EVERY_FRAME) as usize,
            0,
            None,
        ),
    };
    // Sampled frames of every rendition are scored together, the source decoded once; every frame of
    // each (a replay) is scored rendition by rendition, so only one rendition's frames are held.
    let one_by_one = samples > CONTENT_SAMPLES;
    let mut drawn = Vec::with_capacity(profiles.len());
    let mut scores = Vec::with_capacity(profiles.len());
    for profile in profiles {
        let rendition = result
            .renditions
            .iter()
            .find(|r| r.profile == profile.name)
            .ok_or_else(|| set_fault(&profile.name, RenditionSet::Missing))?;
        let mut staged = tempfile::Builder::new()
            .prefix("rendition-")
            .suffix(".ts")
            .tempfile_in(scratch)?;
        staged.write_all(&rendition.data)?;
        staged.flush()?;
        if let Some(segment) = segment {
            // Decoded in full, the content check's frames drawn on the way.
            let (_, sample) = dualrig_media::verify_rendition_sampled(
                source,
                staged.path(),
                profile,
                samples,
                seed,
            )
            .map_err(Fault::Structure)?;
            if one_by_one {
                scores.extend(
                    dualrig_media::score_samples(segment, &[&sample], None)
                        .map_err(Fault::Structure)?,
                );
            } else {
                drawn.push(sample);
            }
        } else if dualrig_media::verify_rendition_quick(source, staged.path(), profile).is_err() {
            dualrig_media::verify_rendition(source, staged.path(), profile)
                .map_err(Fault::Structure)?;
        }
    }
    let Some(segment) = segment else {
        return Ok(Verified::Passed);
    };
    if !one_by_one {
        let drawn: Vec<&dualrig_media::ContentSample> = drawn.iter().collect();
        scores = dualrig_media::score_samples(segment, &drawn, kept).map_err(Fault::Structure)?;
    }
    let outcome = check_content(segment, profiles, scores, scratch, samples, seed);
    let label = match &outcome {
        Ok(ContentOutcome::Passed { lowest_db }) => {
            record_passing_score(*lowest_db);
            "pass"
        }
        Ok(ContentOutcome::Inconclusive(_)) => "inconclusive",
        Err(CheckError::Fault(Fault::Content { .. })) => "mismatch",
        Err(_) => "error",
    };
    metrics::verification("content", label);
    outcome.map(|o| match o {
        ContentOutcome::Passed { .. } => Verified::Passed,
        ContentOutcome::Inconclusive(v) => v,
    })
}

enum ContentOutcome {
    Passed {
        lowest_db: f64,
    },
    /// A [`Verified::ContentInconclusive`].
    Inconclusive(Verified),
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

/// Judges every rendition's content score (its `samples` frames from `seed` against the source
/// segment's). A rendition under the threshold is a fault only where libx264's own rendition of the
/// same profile scores at least [`REFERENCE_MARGIN_DB`] above it on the same frames; otherwise it is
/// inconclusive and the other renditions are still checked.
fn check_content(
    segment: &Path,
    profiles: &[Profile],
    scores: Vec<dualrig_media::ContentScore>,
    scratch: &Path,
    samples: usize,
    seed: u64,
) -> Result<ContentOutcome, CheckError> {
    let threshold_db = dualrig_media::CONTENT_THRESHOLD_DB;
    let mut lowest = f64::INFINITY;
    let mut inconclusive = None;
    for (profile, score) in profiles.iter().zip(scores) {
        tracing::debug!(
            rendition = %profile.name,
            min_block_psnr_db = score.min_block_psnr_db,
            "content check"
        );
        let Err(failure) = score.check(&profile.name, threshold_db) else {
            lowest = lowest.min(score.min_block_psnr_db);
            continue;
        };
        let reference_db = reference_score(segment, profile, scratch, samples, seed)?;
        if reference_db >= threshold_db + REFERENCE_MARGIN_DB {
            return Err(Fault::from_content(failure, seed, reference_db).into());
        }
        tracing::warn!(
            rendition = %profile.name,
            score_db = score.min_block_psnr_db,
            reference_db,
            "content check inconclusive: libx264 scores too close to the threshold on these frames"
        );
        inconclusive.get_or_insert(Verified::ContentInconclusive {
            rendition: profile.name.clone(),
            score_db: score.min_block_psnr_db,
            reference_db,
        });
    }
    Ok(match inconclusive {
        Some(v) => ContentOutcome::Inconclusive(v),
        None => ContentOutcome::Passed { lowest_db: lowest },
    })
}

/// The lowest block PSNR of libx264's rendition of `profile` from `source` on the frames `seed` draws:
/// what an honest encoder achieves where the worker's rendition failed.
fn reference_score(
    source: &Path,
    profile: &Profile,
    scratch: &Path,
    samples: usize,
    seed: u64,
) -> Result<f64, CheckError> {
    let failed = |error: String| CheckError::Reference {
        rendition: profile.name.clone(),
        error,
    };
    let out = tempfile::Builder::new()
        .prefix("reference-")
        .tempdir_in(scratch)?;
    let encoder = dualrig_media::EncoderSelection::software();
    let outputs = dualrig_media::transcode_segment(
        source,
        std::slice::from_ref(profile),
        &encoder,
        out.path(),
    )
    .map_err(|e| failed(e.to_string()))?;
    let reference = outputs
        .first()
        .ok_or_else(|| failed("the transcoder wrote no rendition".into()))?;
    let score = dualrig_media::content_check(source, &reference.path, profile, samples, seed)
        .map_err(|e| failed(e.to_string()))?;
    Ok(score.min_block_psnr_db)
}
