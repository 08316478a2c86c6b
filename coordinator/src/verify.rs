//! Structural verification of a worker's result (DESIGN §5): the signature and hashes hold, exactly the
//! asked renditions came back, and each one decodes with the asked codec and size, the source's frame count
//! (±1) and the source's timestamps.

use std::io::Write;
use std::path::Path;

use dualrig_media::StreamInfo;
use dualrig_proto::identity::PublicId;
use dualrig_proto::profile::Profile;
use dualrig_proto::result::verify_result;
use dualrig_proto::v1::JobResult;

use crate::metrics;

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
    #[error("cannot stage rendition for checking: {0}")]
    Io(#[from] std::io::Error),
}

/// Checks `result` from `worker` against the job's source and ladder. Blocking: decodes every rendition.
pub fn check_result(
    worker: &PublicId,
    job_id: &str,
    source: &StreamInfo,
    profiles: &[Profile],
    result: &JobResult,
    scratch: &Path,
) -> Result<(), Rejection> {
    let outcome = check(worker, job_id, source, profiles, result, scratch);
    let label = match &outcome {
        Ok(()) => "pass",
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
    }
    Ok(())
}
