//! One transcode job: stage the segment, run the ladder with the selected encoder, hash and sign the
//! renditions. A build with the `fault-injection` feature can be told to cheat in one of several ways
//! ([`Fault`]), so tests can check that the coordinator catches each.

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
    /// The job's tickets were checked against fewer units than the segment holds: the result is
    /// withheld, as for any payment that does not cover the work.
    #[error(
        "the job was paid for {said} units, but its {frames} source frames make {counted} (PROTOCOL §5.2)"
    )]
    UnitsUnderstated {
        said: u64,
        counted: u64,
        frames: u64,
    },
    #[cfg(feature = "fault-injection")]
    #[error("stalled on purpose until the job's deadline")]
    Stalled,
}

/// A way to cheat or misbehave on every job, for tests of verification.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// Black renditions with the right size, frame count and timestamps.
    Blank,
    /// Renditions of another picture with the right size, frame count and timestamps.
    OtherVideo,
    /// Renditions 16 pixels narrower and shorter than asked.
    WrongSize,
    /// Every 10th frame left out.
    DropFrames,
    /// Random bytes in place of each rendition (hashed and signed correctly).
    Garbage,
    /// No answer until the job's deadline has passed.
    Stall,
    /// Honest renditions signed with a key that is not the worker's.
    WrongSignature,
}

/// The fault a job is told to inject; empty in a build without the `fault-injection` feature.
#[derive(Debug, Clone, Copy, Default)]
pub struct Injection(#[cfg(feature = "fault-injection")] Option<Fault>);

impl Injection {
    pub fn from_config(_config: &crate::WorkerConfig) -> Self {
        Injection(
            #[cfg(feature = "fault-injection")]
            _config.fault,
        )
    }
}

/// Transcodes `job` and returns the signed result. Blocking: run it off the async runtime.
pub fn run_transcode(
    job: &TranscodeJob,
    encoder: &EncoderSelection,
    identity: &Identity,
    scratch: &Path,
    _injection: Injection,
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

    #[cfg(feature = "fault-injection")]
    if let Some(fault) = _injection.0 {
        return faulty::run(
            job,
            fault,
            &input,
            &profiles,
            encoder,
            identity,
            work.path(),
        );
    }
    let outputs = dualrig_media::transcode_segment(&input, &profiles, encoder, work.path())?;
    check_units(job, &profiles, &outputs)?;
    let renditions = read_renditions(&outputs)?;
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

/// A paid job's units, which its tickets were checked against, must count the frames the transcode
/// decoded (one frame of slack for a decoder that counts an edge frame differently): a coordinator
/// cannot buy a long segment at a short one's price.
fn check_units(
    job: &TranscodeJob,
    profiles: &[dualrig_proto::profile::Profile],
    outputs: &[dualrig_media::RenditionOutput],
) -> Result<(), JobError> {
    if job.payment.is_empty() {
        return Ok(());
    }
    let frames = outputs.first().map_or(0, |o| o.source_frames);
    let counted = dualrig_proto::profile::job_units(profiles, frames);
    let with_slack = dualrig_proto::profile::job_units(profiles, frames.saturating_sub(1));
    if with_slack > job.units {
        return Err(JobError::UnitsUnderstated {
            said: job.units,
            counted,
            frames,
        });
    }
    Ok(())
}

fn read_renditions(
    outputs: &[dualrig_media::RenditionOutput],
) -> Result<Vec<dualrig_proto::v1::Rendition>, std::io::Error> {
    outputs
        .iter()
        .map(|out| Ok(rendition(&out.profile.name, std::fs::read(&out.path)?)))
        .collect()
}

/// The cheating half of [`run_transcode`].
#[cfg(feature = "fault-injection")]
mod faulty {
    use std::path::Path;
    use std::time::Duration;

    use dualrig_media::{EncoderSelection, Tamper, transcode_segment, transcode_tampered};
    use dualrig_proto::identity::Identity;
    use dualrig_proto::profile::Profile;
    use dualrig_proto::result::{rendition, sign_result};
    use dualrig_proto::v1::{JobResult, TranscodeJob};
    use rand::RngCore;

    use super::{Fault, JobError, read_renditions};

    pub(super) fn run(
        job: &TranscodeJob,
        fault: Fault,
        input: &Path,
        profiles: &[Profile],
        encoder: &EncoderSelection,
        identity: &Identity,
        out_dir: &Path,
    ) -> Result<JobResult, JobError> {
        tracing::warn!(?fault, job = %job.job_id, "injecting a fault");
        let tampered = |t| transcode_tampered(input, profiles, encoder, out_dir, t);
        let outputs = match fault {
            Fault::Stall => {
                // Bounded, so a test's runtime can still shut down; the coordinator has moved on long
                // before, and drops the late failure.
                let deadline = std::time::UNIX_EPOCH + Duration::from_millis(job.deadline_unix_ms);
                while std::time::SystemTime::now() < deadline + Duration::from_secs(1) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                return Err(JobError::Stalled);
            }
            Fault::Blank => tampered(Tamper::Blank)?,
            Fault::OtherVideo => tampered(Tamper::OtherPicture)?,
            Fault::DropFrames => tampered(Tamper::DropEveryNth(10))?,
            Fault::WrongSize => {
                let shrunk: Vec<Profile> = profiles
                    .iter()
                    .map(|p| Profile {
                        width: p.width.saturating_sub(16).max(16),
                        height: p.height.saturating_sub(16).max(16),
                        ..p.clone()
                    })
                    .collect();
                transcode_segment(input, &shrunk, encoder, out_dir)?
            }
            Fault::Garbage | Fault::WrongSignature => {
                transcode_segment(input, profiles, encoder, out_dir)?
            }
        };
        let mut renditions = read_renditions(&outputs)?;
        if fault == Fault::Garbage {
            for r in &mut renditions {
                let mut noise = vec![0u8; r.data.len()];
                rand::thread_rng().fill_bytes(&mut noise);
                *r = rendition(&r.profile, noise);
            }
        }
        let stranger;
        let signer = if fault == Fault::WrongSignature {
            stranger = Identity::generate();
            &stranger
        } else {
            identity
        };
        let signature = sign_result(signer, &job.job_id, &renditions);
        Ok(JobResult {
            job_id: job.job_id.clone(),
            renditions,
            signature: signature.to_vec(),
            encoder: encoder.name.clone(),
            transcode_ms: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualrig_proto::profile::{Profile, job_units};

    #[test]
    fn a_paid_job_whose_units_undercount_its_frames_is_withheld() {
        let profiles = Profile::parse_list("240p,360p").expect("ladder");
        let output = |source_frames| dualrig_media::RenditionOutput {
            profile: profiles[0].clone(),
            path: "240p.ts".into(),
            frames: source_frames,
            source_frames,
            decoder: "h264".into(),
        };
        let job = |units, paid: bool| TranscodeJob {
            units,
            payment: if paid {
                vec![dualrig_proto::v1::SignedTicket::default()]
            } else {
                Vec::new()
            },
            ..TranscodeJob::default()
        };
        let said = job_units(&profiles, 60);
        for frames in [60, 61, 59] {
            check_units(&job(said, true), &profiles, &[output(frames)]).expect("counted alike");
        }
        let err = check_units(&job(said, true), &profiles, &[output(600)])
            .expect_err("ten times the frames");
        assert!(
            matches!(err, JobError::UnitsUnderstated { said: s, frames: 600, .. } if s == said),
            "{err}"
        );
        // Free work counts nothing.
        check_units(&job(0, false), &profiles, &[output(600)]).expect("free");
    }
}
