//! The content check (PROTOCOL §5): a few frames of a rendition, picked at random, against the source frames
//! with the same timestamps scaled to the rendition's size. It catches what the structural check cannot: a
//! rendition of the right size, length and timestamps whose pictures are blank, another video's, or out of
//! order.
//!
//! The measure is luma PSNR over 8×8 block means ("block PSNR"). An encoder at ladder bitrates throws away
//! fine detail (noise, grain, sharp texture) on purpose, so a per-pixel comparison scores an honest
//! rendition of detailed content as low as a blank one; the mean brightness of each 8×8 block is what every
//! honest encoder keeps and what a substituted picture cannot match. Per-pixel PSNR is reported beside it
//! for diagnosis. Measurements behind [`CONTENT_THRESHOLD_DB`] are in the benches' results file.

use std::path::Path;
use std::sync::Arc;

use dualrig_proto::profile::Profile;
use ffmpeg_next::{format::Pixel, frame, software::scaling};

use crate::decode::VideoSource;
use crate::error::{MediaError, VerifyError};

/// Lowest block PSNR, in dB, an honest rendition's sampled frame may score.
///
/// Measured on 2 s 1280×720 clips through the default ladder (720p 2.8 Mb/s … 240p 400 kb/s, libx264
/// `veryfast`), every frame compared: testsrc2, full-frame random noise, a fast pan, a dark scene and a
/// mostly static picture with a small moving overlay. The lowest honest frame scored 27.9 dB (random noise
/// at 720p; every other content scored above 50 dB). The highest cheating frame scored 15.7 dB (black
/// frames on the dark scene); another video, noise in place of the picture and, on fast motion, frames
/// moved by half a second all scored under 13.5 dB. 22 dB leaves about 6 dB on either side.
///
/// Frames moved in time on a mostly static scene score like honest ones (25–35 dB): the check cannot see a
/// reordering of near-identical pictures, which also costs the viewer little.
pub const CONTENT_THRESHOLD_DB: f64 = 22.0;

/// How far above [`CONTENT_THRESHOLD_DB`] libx264's own rendition of the same profile must score on the
/// same frames before a rendition under the threshold is held to be a cheat. An honest encoder falls
/// under the threshold only where the source is hard for any encoder at the asked bitrate, and a
/// hardware encoder may do a few dB worse than libx264 at the same bitrate; cheats score far lower
/// (benches/RESULTS.md "Content check threshold" and "Bitrate floor").
pub const REFERENCE_MARGIN_DB: f64 = 5.0;

/// Side of the square blocks whose means are compared.
const BLOCK: usize = 8;

/// Score given to identical pictures, whose PSNR is infinite.
const IDENTICAL_DB: f64 = 100.0;

/// One compared frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameScore {
    /// The frame's position in the rendition, in presentation order, from 0.
    pub index: u64,
    /// Its presentation time in seconds.
    pub pts_secs: f64,
    /// Luma PSNR of 8×8 block means, the figure the threshold applies to.
    pub block_psnr_db: f64,
    /// Per-pixel luma PSNR, for diagnosis.
    pub psnr_db: f64,
}

/// What comparing a rendition's sampled frames with its source found.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentScore {
    /// The sampled frames in presentation order.
    pub frames: Vec<FrameScore>,
    /// The lowest block PSNR among them.
    pub min_block_psnr_db: f64,
}

impl ContentScore {
    /// The frame with the lowest block PSNR.
    pub fn worst(&self) -> Option<&FrameScore> {
        self.frames
            .iter()
            .min_by(|a, b| a.block_psnr_db.total_cmp(&b.block_psnr_db))
    }

    /// Refuses the rendition named `rendition` when a sampled frame scores under `threshold_db`.
    pub fn check(&self, rendition: &str, threshold_db: f64) -> Result<(), VerifyError> {
        match self.worst() {
            Some(w) if w.block_psnr_db < threshold_db => Err(VerifyError::Content {
                rendition: rendition.to_owned(),
                index: w.index,
                pts_secs: w.pts_secs,
                psnr_db: w.block_psnr_db,
                threshold_db,
            }),
            _ => Ok(()),
        }
    }
}

/// A decoded frame and its presentation time in seconds.
struct Timed<F> {
    index: u64,
    pts_secs: f64,
    frame: F,
}

/// Compares `samples` frames of `rendition`, drawn uniformly at random (from `seed`) by presentation
/// index, with the source frames shown at the same time, scaled to the rendition's size the way the
/// transcoder scales (bicubic). With a profile that changes the frame rate the nearest source frame is
/// used. Decodes the rendition once and the source once; holds at most `samples` frames of each.
pub fn content_check(
    source: &Path,
    rendition: &Path,
    profile: &Profile,
    samples: usize,
    seed: u64,
) -> Result<ContentScore, VerifyError> {
    let picked =
        sample_frames(rendition, samples.max(1), seed).map_err(|e| VerifyError::Undecodable {
            rendition: profile.name.clone(),
            detail: format!("decoding it for the content check: {e}"),
        })?;
    let sample = ContentSample {
        rendition: profile.name.clone(),
        frames: picked,
    };
    let mut scores = score_samples(source, &[&sample], None)?;
    Ok(scores.remove(0))
}

/// Frames of one rendition drawn for the content check (by [`crate::verify_rendition_sampled`] while
/// it decodes the rendition), waiting to be compared with the source by [`score_samples`].
pub struct ContentSample {
    rendition: String,
    frames: Vec<Timed<frame::Video>>,
}

impl std::fmt::Debug for ContentSample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentSample")
            .field("rendition", &self.rendition)
            .field("frames", &self.frames.len())
            .finish()
    }
}

/// Scores every rendition's sample against `source`, decoded once for all of them: what
/// [`content_check`] finds for each, in the order given.
///
/// With `kept` (frames kept when the source was inspected), the source is decoded only when a
/// rendition's frame lines up with a source frame that was not kept; the scores are the same either
/// way.
pub fn score_samples(
    source: &Path,
    samples: &[&ContentSample],
    kept: Option<&SourceFrames>,
) -> Result<Vec<ContentScore>, VerifyError> {
    let Some(first) = samples.first() else {
        return Ok(Vec::new());
    };
    let wanted: Vec<&Timed<frame::Video>> = samples.iter().flat_map(|s| &s.frames).collect();
    let matched = match kept.and_then(|k| k.matching(&wanted)) {
        Some(matched) => matched,
        None => matching_frames(source, &wanted).map_err(|e| VerifyError::Undecodable {
            rendition: first.rendition.clone(),
            detail: format!("decoding its source: {e}"),
        })?,
    };
    let mut matched = matched.into_iter();
    let mut scores = Vec::with_capacity(samples.len());
    let mut scaler: Option<scaling::Context> = None;
    let mut converter: Option<scaling::Context> = None;
    for sample in samples {
        let undecodable = |what: &str, e: MediaError| VerifyError::Undecodable {
            rendition: sample.rendition.clone(),
            detail: format!("{what}: {e}"),
        };
        let mut frames = Vec::with_capacity(sample.frames.len());
        for picked in &sample.frames {
            let Some(source_frame) = matched.next().flatten() else {
                continue;
            };
            let seen = &picked.frame;
            let (width, height) = (seen.width(), seen.height());
            let scaled = scale(&mut scaler, &source_frame, width, height)
                .map_err(|e| undecodable("scaling its source", e))?;
            let converted = if seen.format() == Pixel::YUV420P {
                None
            } else {
                Some(
                    scale(&mut converter, seen, width, height)
                        .map_err(|e| undecodable("converting it", e))?,
                )
            };
            let seen = converted.as_ref().unwrap_or(seen);
            let (psnr_db, block_psnr_db) = luma_psnr(&scaled, seen);
            frames.push(FrameScore {
                index: picked.index,
                pts_secs: picked.pts_secs,
                block_psnr_db,
                psnr_db,
            });
        }
        if frames.is_empty() {
            return Err(VerifyError::Undecodable {
                rendition: sample.rendition.clone(),
                detail: "no source frame lines up with its frames".to_owned(),
            });
        }
        let min_block_psnr_db = frames
            .iter()
            .map(|f| f.block_psnr_db)
            .fold(f64::INFINITY, f64::min);
        scores.push(ContentScore {
            frames,
            min_block_psnr_db,
        });
    }
    Ok(scores)
}

/// Keeps `k` frames of a stream seen once, each equally likely, without knowing its length
/// (reservoir sampling, seeded so the same seed keeps the same frames).
pub(crate) struct Reservoir {
    rng: SplitMix64,
    k: usize,
    kept: Vec<Timed<frame::Video>>,
    index: u64,
    /// Seconds per pts tick.
    tb: f64,
}

impl Reservoir {
    pub fn new(k: usize, seed: u64, tb: f64) -> Self {
        Reservoir {
            rng: SplitMix64(seed),
            k: k.max(1),
            kept: Vec::with_capacity(k.max(1)),
            index: 0,
            tb,
        }
    }

    /// Offers the next frame in presentation order.
    pub fn offer(&mut self, frame: frame::Video) {
        let index = self.index;
        self.index += 1;
        let tb = self.tb;
        reservoir_place(&mut self.kept, self.k, &mut self.rng, index, || Timed {
            index,
            pts_secs: frame.pts().unwrap_or(0) as f64 * tb,
            frame,
        });
    }

    /// The kept frames, in presentation order, as the sample of `rendition`.
    pub fn finish(mut self, rendition: &str) -> ContentSample {
        self.kept.sort_by_key(|t| t.index);
        ContentSample {
            rendition: rendition.to_owned(),
            frames: self.kept,
        }
    }
}

/// The largest picture [`SourceFrames`] keeps frames of: past it a content check decodes the source
/// again instead (a job's kept frames live as long as the job).
const MAX_KEPT_PIXELS: u64 = 1920 * 1088;

/// The most memory one kept frame takes (a YUV 4:2:0 picture of the largest kept size): what a caller
/// budgets for before it asks [`crate::inspect_keeping`] to keep frames.
pub const MAX_KEPT_FRAME_BYTES: u64 = MAX_KEPT_PIXELS * 3 / 2;

/// Source frames kept from the inspection at upload for the content check the job will most likely
/// get: a [`Reservoir`] from the same seed run over the source, which keeps exactly the frames it
/// keeps from an honest rendition with the source's frame count, so the check need not decode the
/// source again. Every source frame's timestamp is kept too, so a rendition's frame is matched with
/// exactly the source frame a decode would match it with; where that frame was not kept (another
/// seed, a rendition a frame longer or shorter), the source is decoded after all.
pub struct SourceFrames {
    /// The seed the kept frames are for.
    seed: u64,
    /// Whether [`Self::take_seed`] has handed the seed out.
    seed_taken: std::sync::atomic::AtomicBool,
    /// Seconds per pts tick.
    tb: f64,
    /// Every frame's pts, in presentation order.
    pts: Vec<i64>,
    kept: Vec<(u64, Arc<frame::Video>)>,
}

impl std::fmt::Debug for SourceFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceFrames")
            .field("seed", &self.seed)
            .field("frames", &self.pts.len())
            .field("kept", &self.kept.len())
            .finish_non_exhaustive()
    }
}

impl SourceFrames {
    /// A collector for a decode of a `width`×`height` source, keeping `samples` frames from `seed`.
    pub(crate) fn collector(
        samples: usize,
        seed: u64,
        tb: f64,
        width: u32,
        height: u32,
    ) -> SourceFrameCollector {
        SourceFrameCollector {
            rng: SplitMix64(seed),
            k: samples.max(1),
            keep: u64::from(width) * u64::from(height) <= MAX_KEPT_PIXELS,
            frames: SourceFrames {
                seed,
                seed_taken: std::sync::atomic::AtomicBool::new(false),
                tb,
                pts: Vec::new(),
                kept: Vec::new(),
            },
        }
    }

    /// The seed the frames were kept for, the first time it is asked for and never again: once a
    /// content check has used it, a fault may publish it, so no later check may use it.
    pub fn take_seed(&self) -> Option<u64> {
        (!self
            .seed_taken
            .swap(true, std::sync::atomic::Ordering::SeqCst))
        .then_some(self.seed)
    }

    /// Whether these samples can be scored from the kept frames alone, without decoding the source.
    pub fn serves(&self, samples: &[&ContentSample]) -> bool {
        let wanted: Vec<&Timed<frame::Video>> = samples.iter().flat_map(|s| &s.frames).collect();
        self.matching(&wanted).is_some()
    }

    /// For each wanted frame, the source frame [`matching_frames`] would find, or `None` when any of
    /// them was not kept.
    fn matching(&self, wanted: &[&Timed<frame::Video>]) -> Option<Vec<Option<Arc<frame::Video>>>> {
        wanted
            .iter()
            .map(|want| {
                let mut best: Option<(f64, usize)> = None;
                for (i, &pts) in self.pts.iter().enumerate() {
                    let gap = (want.pts_secs - pts as f64 * self.tb).abs();
                    if best.is_none_or(|(g, _)| gap < g) {
                        best = Some((gap, i));
                    }
                }
                let (_, index) = best?;
                self.kept
                    .iter()
                    .find(|(i, _)| *i == index as u64)
                    .map(|(_, f)| Some(Arc::clone(f)))
            })
            .collect()
    }
}

/// Builds [`SourceFrames`] frame by frame during a decode: the same draws as [`Reservoir::offer`].
pub(crate) struct SourceFrameCollector {
    rng: SplitMix64,
    k: usize,
    keep: bool,
    frames: SourceFrames,
}

impl SourceFrameCollector {
    pub fn offer(&mut self, frame: frame::Video) {
        let index = self.frames.pts.len() as u64;
        self.frames.pts.push(frame.pts().unwrap_or(0));
        if !self.keep {
            return;
        }
        reservoir_place(&mut self.frames.kept, self.k, &mut self.rng, index, || {
            (index, Arc::new(frame))
        });
    }

    pub fn finish(self) -> SourceFrames {
        self.frames
    }
}

/// Puts the item at presentation `index` into a reservoir of at most `k` (`kept`), by the one draw
/// rule every reservoir here follows, so the same seed keeps the same frames of a rendition and of its
/// source: the first `k` go in, each later one replaces slot `below(index + 1)` when that is a slot.
fn reservoir_place<T>(
    kept: &mut Vec<T>,
    k: usize,
    rng: &mut SplitMix64,
    index: u64,
    item: impl FnOnce() -> T,
) {
    if kept.len() < k {
        kept.push(item());
    } else if let Ok(j) = usize::try_from(rng.below(index + 1))
        && j < kept.len()
    {
        kept[j] = item();
    }
}

/// Reservoir-samples `k` frames of `path` in one pass; returns them in presentation order.
fn sample_frames(path: &Path, k: usize, seed: u64) -> Result<Vec<Timed<frame::Video>>, MediaError> {
    let mut source = VideoSource::open(path, 1)?;
    let mut reservoir = Reservoir::new(k, seed, f64::from(source.video_time_base));
    source.decode(
        |frame| {
            reservoir.offer(frame);
            Ok(())
        },
        |_| Ok(()),
    )?;
    Ok(reservoir.finish("").frames)
}

/// For each wanted frame, the source frame whose presentation time is nearest to it (the earlier on a
/// tie, as a player would still be showing it).
fn matching_frames(
    path: &Path,
    wanted: &[&Timed<frame::Video>],
) -> Result<Vec<Option<Arc<frame::Video>>>, MediaError> {
    let mut source = VideoSource::open(path, 1)?;
    let tb = f64::from(source.video_time_base);
    let mut best: Vec<Option<(f64, Arc<frame::Video>)>> = vec![None; wanted.len()];
    source.decode(
        |frame| {
            let at = frame.pts().unwrap_or(0) as f64 * tb;
            let mut shared: Option<Arc<frame::Video>> = None;
            for (want, slot) in wanted.iter().zip(best.iter_mut()) {
                let gap = (want.pts_secs - at).abs();
                if slot.as_ref().is_none_or(|(g, _)| gap < *g) {
                    let f = shared.get_or_insert_with(|| Arc::new(frame.clone()));
                    *slot = Some((gap, Arc::clone(f)));
                }
            }
            Ok(())
        },
        |_| Ok(()),
    )?;
    Ok(best.into_iter().map(|b| b.map(|(_, f)| f)).collect())
}

/// `frame` in YUV420P at `width`×`height`, with the transcoder's scaler flags.
fn scale(
    cached: &mut Option<scaling::Context>,
    frame: &frame::Video,
    width: u32,
    height: u32,
) -> Result<frame::Video, MediaError> {
    let stale = cached.as_ref().is_none_or(|s| {
        let (input, output) = (s.input(), s.output());
        input.format != frame.format()
            || input.width != frame.width()
            || input.height != frame.height()
            || output.width != width
            || output.height != height
    });
    if stale {
        let context = scaling::Context::get(
            frame.format(),
            frame.width(),
            frame.height(),
            Pixel::YUV420P,
            width,
            height,
            scaling::Flags::BICUBIC,
        )
        .map_err(|e| MediaError::Internal(format!("cannot set up scaling: {e}")))?;
        *cached = Some(context);
    }
    let mut out = frame::Video::new(Pixel::YUV420P, width, height);
    if let Some(context) = cached.as_mut() {
        context
            .run(frame, &mut out)
            .map_err(|e| MediaError::Internal(format!("scaling failed: {e}")))?;
    }
    Ok(out)
}

/// Per-pixel and 8×8-block-mean luma PSNR of two frames of the same size (YUV420P).
fn luma_psnr(a: &frame::Video, b: &frame::Video) -> (f64, f64) {
    let width = a.width().min(b.width()) as usize;
    let height = a.height().min(b.height()) as usize;
    let plane_a = Plane::of(a, width, height);
    let plane_b = Plane::of(b, width, height);
    let mut pixel_sq = 0.0f64;
    for y in 0..height {
        for x in 0..width {
            let d = f64::from(plane_a.at(x, y)) - f64::from(plane_b.at(x, y));
            pixel_sq += d * d;
        }
    }
    let mut block_sq = 0.0f64;
    let mut blocks = 0u64;
    for by in (0..height).step_by(BLOCK) {
        for bx in (0..width).step_by(BLOCK) {
            let (mean_a, mean_b) = (plane_a.mean(bx, by), plane_b.mean(bx, by));
            let d = mean_a - mean_b;
            block_sq += d * d;
            blocks += 1;
        }
    }
    let pixels = (width * height).max(1) as f64;
    (
        psnr(pixel_sq / pixels),
        psnr(block_sq / blocks.max(1) as f64),
    )
}

fn psnr(mse: f64) -> f64 {
    if mse <= 0.0 {
        IDENTICAL_DB
    } else {
        (10.0 * (255.0 * 255.0 / mse).log10()).min(IDENTICAL_DB)
    }
}

/// The luma plane of a frame, clipped to a size.
struct Plane<'a> {
    data: &'a [u8],
    stride: usize,
    width: usize,
    height: usize,
}

impl<'a> Plane<'a> {
    fn of(frame: &'a frame::Video, width: usize, height: usize) -> Self {
        Plane {
            data: frame.data(0),
            stride: frame.stride(0),
            width,
            height,
        }
    }

    fn at(&self, x: usize, y: usize) -> u8 {
        self.data.get(y * self.stride + x).copied().unwrap_or(0)
    }

    /// Mean of the block whose top-left corner is (x, y), cut short at the edges.
    fn mean(&self, x: usize, y: usize) -> f64 {
        let (x_end, y_end) = ((x + BLOCK).min(self.width), (y + BLOCK).min(self.height));
        let mut sum = 0u64;
        for row in y..y_end {
            for col in x..x_end {
                sum += u64::from(self.at(col, row));
            }
        }
        sum as f64 / ((x_end - x) * (y_end - y)).max(1) as f64
    }
}

/// A small seeded generator (SplitMix64): the same seed picks the same frames, so a rejection can be
/// replayed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n ≥ 1), without modulo bias worth speaking of for frame counts.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n.max(1))) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_numbers_and_stays_in_range() {
        let draw = |seed| {
            let mut r = SplitMix64(seed);
            (0..50).map(|i| r.below(i + 1)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        assert!(draw(3).iter().enumerate().all(|(i, &v)| v <= i as u64));
    }

    #[test]
    fn psnr_of_identical_pictures_is_capped() {
        assert_eq!(psnr(0.0), IDENTICAL_DB);
        assert!((psnr(255.0 * 255.0) - 0.0).abs() < 1e-9);
    }
}
