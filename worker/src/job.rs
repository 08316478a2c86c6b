//! One transcode job: stage the segment, run the ladder with the selected encoder, hash and sign the
//! renditions.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use dualrig_media::EncoderSelection;
use dualrig_proto::identity::Identity;
use dualrig_proto::profile::ladder_from_wire;
use dualrig_proto::result::{rendition, sign_result};
use dualrig_proto::v1::{JobResult, TranscodeJob};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("bad ladder: {0}")]
    Profile(#[from] dualrig_proto::profile::ProfileError),
    #[error("transcode failed: {0}")]
    Media(#[from] dualrig_media::MediaError),
    #[error("scratch space: {0}")]
    Io(#[from] std::io::Error),
}

/// Transcodes `job` and returns the signed result. Blocking: run it off the async runtime.
pub fn run_transcode(
    job: &TranscodeJob,
    encoder: &EncoderSelection,
    identity: &Identity,
    scratch: &Path,
) -> Result<JobResult, JobError> {
    let started = Instant::now();
    let profiles = ladder_from_wire(&job.profiles)?;
    let work = tempfile::Builder::new()
        .prefix("job-")
        .tempdir_in(scratch)?;
    let input = work.path().join("source");
    let mut file = std::fs::File::create(&input)?;
    file.write_all(&job.segment)?;
    file.sync_data()?;
    drop(file);

    let outputs = dualrig_media::transcode_segment(&input, &profiles, encoder, work.path())?;
    let renditions = outputs
        .iter()
        .map(|out| Ok(rendition(&out.profile.name, std::fs::read(&out.path)?)))
        .collect::<Result<Vec<_>, std::io::Error>>()?;
    let signature = sign_result(identity, &job.job_id, &renditions);
    let elapsed = started.elapsed();
    let bytes_out = renditions.iter().map(|r| r.data.len()).sum();
    crate::metrics::transcoded(elapsed, job.segment.len(), bytes_out);
    Ok(JobResult {
        job_id: job.job_id.clone(),
        renditions,
        signature: signature.to_vec(),
        encoder: encoder.name.clone(),
        transcode_ms: elapsed.as_millis() as u64,
    })
}
