//! A whole video through the network: cut it into ~2 s segments on keyframes, send several at a time,
//! write each verified rendition beside its siblings, and finish with the HLS playlists.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dualrig_proto::profile::Profile;
use futures::StreamExt;

use crate::hls::{self, PlaylistEntry, Variant};
use crate::{ClientError, DualrigClient};

#[derive(Debug, Clone)]
pub struct LadderOptions {
    /// Segments in flight at once.
    pub jobs: usize,
    /// Segment length the cutter aims for; cuts fall on the next keyframe.
    pub segment_secs: f64,
    /// Pay each segment's worker with tickets; `None` asks for free work.
    pub payment: Option<crate::Payment>,
}

impl Default for LadderOptions {
    fn default() -> Self {
        Self {
            jobs: 4,
            segment_secs: 2.0,
            payment: None,
        }
    }
}

/// What a finished ladder looks like, for the caller to report.
#[derive(Debug, Clone)]
pub struct LadderSummary {
    pub master_playlist: PathBuf,
    pub segments: usize,
    pub renditions: Vec<String>,
    /// Segments each worker transcoded, by worker id (hex).
    pub per_worker: Vec<(String, usize)>,
    /// Segments that needed more than one attempt.
    pub retried: usize,
}

/// Transcodes `input` (one segment or a whole file) into an HLS ladder under `out_dir`.
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
    let total = segments.len();
    let profiles: Arc<[Profile]> = profiles.into();
    let label = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let progress = &progress;
    let mut done = 0usize;
    let mut outcomes = futures::stream::iter(segments.iter().cloned().map(|segment| {
        let client = client.clone();
        let profiles = Arc::clone(&profiles);
        let label = format!("{label}#{}", segment.index);
        let out_dir = out_dir.to_owned();
        let payment = options.payment.clone();
        async move {
            let data = tokio::fs::read(&segment.path)
                .await
                .map_err(ClientError::io(format!(
                    "cannot read {}",
                    segment.path.display()
                )))?;
            let response = match &payment {
                Some(payment) => {
                    client
                        .transcode_segment_paid(data, &profiles, &label, payment)
                        .await?
                }
                None => client.transcode_segment(data, &profiles, &label).await?,
            };
            let name = segment_name(segment.index);
            let mut sizes = Vec::with_capacity(response.renditions.len());
            for r in &response.renditions {
                let path = out_dir.join(&r.profile).join(&name);
                tokio::fs::write(&path, &r.data)
                    .await
                    .map_err(ClientError::io(format!("cannot write {}", path.display())))?;
                sizes.push((r.profile.clone(), r.data.len() as u64));
            }
            Ok::<_, ClientError>((
                segment,
                hex::encode(&response.worker_id),
                response.attempts,
                sizes,
            ))
        }
    }))
    .buffer_unordered(options.jobs.max(1));

    let mut finished = Vec::with_capacity(total);
    while let Some(outcome) = outcomes.next().await {
        finished.push(outcome?);
        done += 1;
        progress(done, total);
    }
    finished.sort_by_key(|(segment, ..)| segment.index);

    let entries: Vec<PlaylistEntry> = finished
        .iter()
        .map(|(segment, ..)| PlaylistEntry {
            uri: segment_name(segment.index),
            duration_secs: segment.duration_secs,
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
            .filter_map(|(segment, _, _, sizes)| {
                let bytes = sizes.iter().find(|(name, _)| *name == p.name)?.1;
                Some((bytes as f64 * 8.0 / segment.duration_secs.max(0.001)) as u64)
            })
            .max()
            .unwrap_or(0);
        // Named from the first segment's rendition: every segment of a rendition is made alike.
        let codecs = match finished.first() {
            Some((segment, ..)) => {
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
    for (_, worker, ..) in &finished {
        match per_worker.iter_mut().find(|(w, _)| w == worker) {
            Some((_, n)) => *n += 1,
            None => per_worker.push((worker.clone(), 1)),
        }
    }
    Ok(LadderSummary {
        master_playlist: master,
        segments: total,
        renditions: profiles.iter().map(|p| p.name.clone()).collect(),
        per_worker,
        retried: finished.iter().filter(|(_, _, a, _)| *a > 1).count(),
    })
}

fn segment_name(index: usize) -> String {
    format!("seg_{index:05}.ts")
}
