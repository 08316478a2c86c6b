//! A whole video through the network: cut it into ~2 s segments on keyframes, send several at a time,
//! write each verified rendition beside its siblings, and finish with the HLS playlists. Segments
//! recorded by an earlier run are kept; segments that meet a coordinator restart are sent again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use dualrig_proto::profile::Profile;
use dualrig_proto::v1::TranscodeResponse;
use futures::StreamExt;

use crate::hls::{self, PlaylistEntry, Variant};
use crate::resume::{
    FinishedSegment, InputId, RenditionFile, ResumeRecord, Settings, segment_name, write_durably,
};
use crate::{ClientError, DualrigClient};

/// The first wait before a segment is sent again; each later one doubles, with jitter.
const RETRY_FIRST_WAIT: Duration = Duration::from_millis(250);
/// The longest wait between two sends of a segment.
const RETRY_LONGEST_WAIT: Duration = Duration::from_secs(8);

#[derive(Debug, Clone)]
pub struct LadderOptions {
    /// Segments in flight at once.
    pub jobs: usize,
    /// Segment length the cutter aims for; cuts fall on the next keyframe.
    pub segment_secs: f64,
    /// Pay each segment's worker with tickets; `None` asks for free work.
    pub payment: Option<crate::Payment>,
    /// How long a segment keeps retrying, from its first retryable failure, with the coordinator
    /// dialed again each time; zero fails at the first.
    pub retry_for: Duration,
    /// Forget the output directory's resume record and start over.
    pub fresh: bool,
}

impl Default for LadderOptions {
    fn default() -> Self {
        Self {
            jobs: 4,
            segment_secs: 2.0,
            payment: None,
            retry_for: Duration::from_secs(120),
            fresh: false,
        }
    }
}

/// What a finished ladder looks like, for the caller to report.
#[derive(Debug, Clone)]
pub struct LadderSummary {
    pub master_playlist: PathBuf,
    pub segments: usize,
    pub renditions: Vec<String>,
    /// Segments each worker transcoded in this run, by worker id (hex).
    pub per_worker: Vec<(String, usize)>,
    /// Segments that needed more than one attempt.
    pub retried: usize,
    /// Segments kept from an earlier run, their files checked against the resume record.
    pub kept: usize,
    /// Recorded segments whose files were missing or changed, so they were made again.
    pub redone: usize,
    /// Segments sent again after the coordinator could not be reached or asked to try later.
    pub resent: usize,
}

/// A segment sent and written in this run.
struct Fresh {
    finished: FinishedSegment,
    worker: String,
    attempts: u32,
    resent: bool,
}

/// Transcodes `input` (one segment or a whole file) into an HLS ladder under `out_dir`, keeping the
/// segments an earlier run of the same input and settings finished there (see [`crate::resume`]).
/// `progress(done, total)` is called after each segment arrives.
pub async fn transcode_file(
    client: &DualrigClient,
    input: &Path,
    out_dir: &Path,
    profiles: &[Profile],
    options: &LadderOptions,
    progress: impl Fn(usize, usize) + Send + Sync,
) -> Result<LadderSummary, ClientError> {
    dualrig_proto::profile::validate_ladder(profiles)?;
    dualrig_media::init();
    let source = input.to_owned();
    let input_id = tokio::task::spawn_blocking(move || InputId::of(&source))
        .await
        .map_err(|source| ClientError::Task {
            what: "hashing the input",
            source,
        })??;
    let settings = Settings::new(profiles, options.segment_secs);
    // Checked before anything is cut or written: another ladder's directory is left as it is.
    let mut record = match ResumeRecord::load(out_dir) {
        Ok(Some(record)) if !options.fresh => {
            record.check_same(out_dir, &input_id, &settings)?;
            record
        }
        Err(e) if !options.fresh => return Err(e),
        _ => ResumeRecord::new(input_id, settings),
    };

    let cut_dir = tempfile::Builder::new()
        .prefix("dualrig-segments-")
        .tempdir()
        .map_err(ClientError::io("cannot make a temporary directory"))?;
    let (source, cuts) = (input.to_owned(), cut_dir.path().to_owned());
    let segment_secs = options.segment_secs;
    let segments = tokio::task::spawn_blocking(move || {
        dualrig_media::split_segments(&source, &cuts, segment_secs)
    })
    .await
    .map_err(|e| ClientError::Unverified(format!("segmenter crashed: {e}")))??;
    // The coordinator refuses a ladder under the bitrate floor at the source's rate; say so before
    // uploading anything.
    if let Some(first) = segments.first() {
        let path = first.path.clone();
        let rate = tokio::task::spawn_blocking(move || dualrig_media::inspect(&path))
            .await
            .map_err(|source| ClientError::Task {
                what: "inspecting a segment",
                source,
            })??
            .output_rate();
        dualrig_proto::profile::check_ladder_floor(profiles, rate)?;
    }

    for p in profiles {
        std::fs::create_dir_all(out_dir.join(&p.name)).map_err(ClientError::io(format!(
            "cannot create {}",
            out_dir.display()
        )))?;
    }
    let (dir, cut) = (out_dir.to_owned(), segments.clone());
    let (record, redone) = tokio::task::spawn_blocking(move || {
        let redone = record.keep_intact(&dir, &cut);
        (record, redone)
    })
    .await
    .map_err(|source| ClientError::Task {
        what: "checking kept segments",
        source,
    })?;
    let mut record = record;
    // Claims the directory for this input at once, and forgets segments that no longer check out.
    record.save(out_dir)?;
    let kept = record.segments.len();

    let total = segments.len();
    let profiles: Arc<[Profile]> = profiles.into();
    let label = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let progress = &progress;
    let mut done = kept;
    progress(done, total);
    let to_send: Vec<dualrig_media::Segment> = segments
        .iter()
        .filter(|s| !record.has(s.index))
        .cloned()
        .collect();
    let mut outcomes = futures::stream::iter(to_send.into_iter().map(|segment| {
        let client = client.clone();
        let profiles = Arc::clone(&profiles);
        let label = format!("{label}#{}", segment.index);
        let out_dir = out_dir.to_owned();
        let payment = options.payment.clone();
        let retry_for = options.retry_for;
        async move {
            let data = tokio::fs::read(&segment.path)
                .await
                .map_err(ClientError::io(format!(
                    "cannot read {}",
                    segment.path.display()
                )))?;
            let (response, resent) = send_with_retries(
                &client,
                data,
                &profiles,
                &label,
                payment.as_ref(),
                retry_for,
            )
            .await?;
            let name = segment_name(segment.index);
            let mut renditions = Vec::with_capacity(response.renditions.len());
            for r in response.renditions {
                let path = out_dir.join(&r.profile).join(&name);
                let blake3 = blake3::hash(&r.data).to_hex().to_string();
                let bytes = r.data.len() as u64;
                let target = path.clone();
                tokio::task::spawn_blocking(move || write_durably(&target, &r.data))
                    .await
                    .map_err(|source| ClientError::Task {
                        what: "writing a rendition",
                        source,
                    })?
                    .map_err(ClientError::io(format!("cannot write {}", path.display())))?;
                renditions.push(RenditionFile {
                    profile: r.profile,
                    bytes,
                    blake3,
                });
            }
            Ok::<_, ClientError>(Fresh {
                finished: FinishedSegment {
                    index: segment.index,
                    duration_secs: segment.duration_secs,
                    renditions,
                },
                worker: hex::encode(&response.worker_id),
                attempts: response.attempts,
                resent,
            })
        }
    }))
    .buffer_unordered(options.jobs.max(1));

    let mut fresh = Vec::with_capacity(total - kept);
    while let Some(outcome) = outcomes.next().await {
        let outcome = outcome?;
        // Recorded only once its files are written and synced, so a kill never records a segment
        // that is not on disk.
        record.segments.push(outcome.finished.clone());
        record.save(out_dir)?;
        fresh.push(outcome);
        done += 1;
        progress(done, total);
    }
    record.segments.sort_by_key(|s| s.index);
    let finished = &record.segments;

    let entries: Vec<PlaylistEntry> = finished
        .iter()
        .map(|s| PlaylistEntry {
            uri: segment_name(s.index),
            duration_secs: s.duration_secs,
        })
        .collect();
    let media = hls::media_playlist(&entries);
    let mut variants = Vec::with_capacity(profiles.len());
    for p in profiles.iter() {
        let path = out_dir.join(&p.name).join("index.m3u8");
        hls::write_atomic(&path, &media)
            .map_err(ClientError::io(format!("cannot write {}", path.display())))?;
        let peak = finished
            .iter()
            .filter_map(|s| {
                let bytes = s.renditions.iter().find(|r| r.profile == p.name)?.bytes;
                Some((bytes as f64 * 8.0 / s.duration_secs.max(0.001)) as u64)
            })
            .max()
            .unwrap_or(0);
        // Named from the first segment's rendition: every segment of a rendition is made alike.
        let codecs = match finished.first() {
            Some(segment) => {
                let path = out_dir.join(&p.name).join(segment_name(segment.index));
                tokio::task::spawn_blocking(move || dualrig_media::hls_codecs(&path))
                    .await
                    .map_err(|source| ClientError::Task {
                        what: "naming a rendition's codecs",
                        source,
                    })?
                    .unwrap_or_else(|e| {
                        tracing::warn!(rendition = %p.name, error = %e, "no CODECS attribute");
                        None
                    })
            }
            None => None,
        };
        variants.push(Variant {
            profile: p.clone(),
            bandwidth: peak.max(p.bitrate),
            uri: format!("{}/index.m3u8", p.name),
            codecs,
        });
    }
    let master = out_dir.join("master.m3u8");
    hls::write_atomic(&master, &hls::master_playlist(&variants)).map_err(ClientError::io(
        format!("cannot write {}", master.display()),
    ))?;

    let mut per_worker: Vec<(String, usize)> = Vec::new();
    for f in &fresh {
        match per_worker.iter_mut().find(|(w, _)| *w == f.worker) {
            Some((_, n)) => *n += 1,
            None => per_worker.push((f.worker.clone(), 1)),
        }
    }
    Ok(LadderSummary {
        master_playlist: master,
        segments: total,
        renditions: profiles.iter().map(|p| p.name.clone()).collect(),
        per_worker,
        retried: fresh.iter().filter(|f| f.attempts > 1).count(),
        kept,
        redone,
        resent: fresh.iter().filter(|f| f.resent).count(),
    })
}

/// Sends one segment, and while it fails in a way worth retrying ([`ClientError::is_retryable`])
/// sends it again on a new connection after an exponential, jittered wait, until `retry_for` has
/// passed since the first failure. Returns the response and whether it took more than one send.
async fn send_with_retries(
    client: &DualrigClient,
    data: Vec<u8>,
    profiles: &[Profile],
    label: &str,
    payment: Option<&crate::Payment>,
    retry_for: Duration,
) -> Result<(TranscodeResponse, bool), ClientError> {
    let mut waits = ExponentialBuilder::default()
        .with_min_delay(RETRY_FIRST_WAIT)
        .with_max_delay(RETRY_LONGEST_WAIT)
        .with_jitter()
        .without_max_times()
        .build();
    let mut failing_since: Option<Instant> = None;
    loop {
        let attempt = async {
            let client = match failing_since {
                None => client.clone(),
                Some(_) => client.redial().await?,
            };
            match payment {
                Some(payment) => {
                    client
                        .transcode_segment_paid(data.clone(), profiles, label, payment)
                        .await
                }
                None => {
                    client
                        .transcode_segment(data.clone(), profiles, label)
                        .await
                }
            }
        };
        let error = match attempt.await {
            Ok(response) => return Ok((response, failing_since.is_some())),
            Err(e) if e.is_retryable() => e,
            Err(e) => return Err(e),
        };
        let since = *failing_since.get_or_insert_with(Instant::now);
        let wait = waits.next().unwrap_or(RETRY_LONGEST_WAIT);
        if since.elapsed() + wait > retry_for {
            return Err(ClientError::RetriesSpent {
                label: label.to_owned(),
                secs: retry_for.as_secs(),
                last: Box::new(error),
            });
        }
        tracing::warn!(segment = label, error = %error, wait_ms = wait.as_millis() as u64, "retrying");
        tokio::time::sleep(wait).await;
    }
}
