//! Structural facts about a video file, found by decoding every frame, and the check of a rendition
//! against its source that the coordinator runs on every job (PROTOCOL §5).

use std::path::Path;

use dualrig_proto::profile::Profile;

use crate::content::{ContentSample, Reservoir, SourceFrames};
use crate::decode::{DecodeSummary, VideoSource};
use crate::error::{MediaError, VerifyError};

/// What decoding a file found.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    /// FFmpeg's name for the container, e.g. "mpegts" or "mov,mp4,m4a,3gp,3g2,mj2".
    pub container: String,
    /// FFmpeg's name for the video codec, e.g. "h264".
    pub video_codec: String,
    pub width: u32,
    pub height: u32,
    /// Frames that decode.
    pub frames: u64,
    /// Presentation time of the earliest frame, in seconds, as the file stamps it.
    pub first_pts_secs: f64,
    /// Last frame's pts − first frame's pts + one frame.
    pub duration_secs: f64,
    /// The stated frame rate, else one derived from the timestamps.
    pub frame_rate: f64,
    pub has_audio: bool,
    pub audio_codec: Option<String>,
    /// Whether the first frame in presentation order is a keyframe, as a rendition's must be.
    pub starts_with_keyframe: bool,
}

impl StreamInfo {
    /// Frames per second as a rendition that keeps the source's rate gets them: the stated rate, or the
    /// rate the timestamps show where that is higher (a file cannot starve its renditions of bits by
    /// stating a low rate).
    pub fn output_rate(&self) -> f64 {
        let shown = if self.duration_secs > 0.0 {
            self.frames as f64 / self.duration_secs
        } else {
            0.0
        };
        self.frame_rate.max(shown)
    }

    /// One frame's duration in seconds.
    pub fn frame_duration_secs(&self) -> f64 {
        if self.frame_rate > 0.0 {
            1.0 / self.frame_rate
        } else {
            0.0
        }
    }
}

/// What decoding one file may cost: past either bound the file is refused, so a few bytes that
/// declare an hour of 4K cost a bounded share of a core, not the hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeBudget {
    pub max_frames: u64,
    /// Decoded pixels, summed over frames.
    pub max_pixels: u64,
}

impl DecodeBudget {
    /// A source segment: 600 frames (10 s at 60 fps), and as many pixels as 240 frames at the largest
    /// profile size (4 s of 4096x2304 at 60 fps; 30 s of 1080p).
    pub const SEGMENT: Self = Self {
        max_frames: 600,
        max_pixels: 240
            * dualrig_proto::profile::MAX_WIDTH as u64
            * dualrig_proto::profile::MAX_HEIGHT as u64,
    };
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Opens `path` (any container FFmpeg reads), requires a video stream and decodes all of it.
pub fn inspect(path: &Path) -> Result<StreamInfo, MediaError> {
    inspect_source(VideoSource::open(path, threads())?, None)
}

/// [`inspect`] within `budget`: what the container declares (frame count, duration × rate, size) is
/// checked before any frame is decoded, and what decodes is counted as it does.
pub fn inspect_within(path: &Path, budget: DecodeBudget) -> Result<StreamInfo, MediaError> {
    let source = VideoSource::open(path, threads())?;
    check_declared(&source, budget)?;
    inspect_source(source, Some(budget))
}

/// [`inspect_within`] that also keeps the source frames a content check of `samples` frames from
/// `seed` will compare an honest rendition with ([`SourceFrames`]), so that check need not decode
/// the source again.
pub fn inspect_keeping(
    path: &Path,
    budget: DecodeBudget,
    samples: usize,
    seed: u64,
) -> Result<(StreamInfo, SourceFrames), MediaError> {
    let source = VideoSource::open(path, threads())?;
    check_declared(&source, budget)?;
    let mut collector = SourceFrames::collector(
        samples,
        seed,
        f64::from(source.video_time_base),
        source.decoder.width(),
        source.decoder.height(),
    );
    let info = inspect_source_with(source, Some(budget), |frame| collector.offer(frame))?;
    Ok((info, collector.finish()))
}

/// Refuses a file whose container declares more than `budget` allows, before anything is decoded.
fn check_declared(source: &VideoSource, budget: DecodeBudget) -> Result<(), MediaError> {
    let (width, height) = (source.decoder.width(), source.decoder.height());
    let pixels = u64::from(width) * u64::from(height);
    let declared_frames = source
        .input
        .stream(source.video_index)
        .map(|s| s.frames().max(0) as u64)
        .unwrap_or(0);
    let duration_secs = source.input.duration().max(0) as f64 / 1e6;
    let declared = declared_frames.max((duration_secs * source.frame_rate).ceil() as u64);
    if declared > budget.max_frames {
        return Err(MediaError::OverBudget {
            detail: format!(
                "it declares {declared} frames; a segment may have at most {}",
                budget.max_frames
            ),
        });
    }
    if declared.saturating_mul(pixels) > budget.max_pixels {
        return Err(MediaError::OverBudget {
            detail: format!(
                "it declares {declared} frames of {width}x{height}, over the {} pixels a segment may decode to",
                budget.max_pixels
            ),
        });
    }
    Ok(())
}

fn inspect_source(
    source: VideoSource,
    budget: Option<DecodeBudget>,
) -> Result<StreamInfo, MediaError> {
    inspect_source_with(source, budget, |_| {})
}

/// [`inspect_source`], handing every decoded frame to `on_frame` once it has been counted.
fn inspect_source_with(
    mut source: VideoSource,
    budget: Option<DecodeBudget>,
    mut on_frame: impl FnMut(ffmpeg_next::frame::Video),
) -> Result<StreamInfo, MediaError> {
    let (mut frames, mut pixels) = (0u64, 0u64);
    let count = |frame: ffmpeg_next::frame::Video| {
        let Some(budget) = budget else {
            on_frame(frame);
            return Ok(());
        };
        frames += 1;
        pixels += u64::from(frame.width()) * u64::from(frame.height());
        if frames > budget.max_frames {
            return Err(MediaError::TooManyFrames {
                frames,
                limit: budget.max_frames,
            });
        }
        if pixels > budget.max_pixels {
            return Err(MediaError::OverBudget {
                detail: format!("it decodes to more than {} pixels", budget.max_pixels),
            });
        }
        on_frame(frame);
        Ok(())
    };
    let summary = source.decode(count, |_| Ok(()))?;
    Ok(stream_info(&source, &summary))
}

/// What a run over the stream found, in seconds and with the frame rate settled.
fn stream_info(source: &VideoSource, summary: &DecodeSummary) -> StreamInfo {
    let stated_rate = source.frame_rate;
    let tb = f64::from(source.video_time_base);
    let first = summary.first_pts.unwrap_or(0);
    let last = summary.last_pts.unwrap_or(first);
    let span_secs = (last - first) as f64 * tb;
    // A file without a stated rate gets one from its timestamps.
    let frame_rate = if source
        .input
        .stream(source.video_index)
        .and_then(|s| crate::decode::stated_frame_rate(&s))
        .is_some()
        || summary.frames < 2
        || span_secs <= 0.0
    {
        stated_rate
    } else {
        (summary.frames - 1) as f64 / span_secs
    };
    StreamInfo {
        container: source.container.clone(),
        video_codec: source.video_codec.clone(),
        width: summary.width,
        height: summary.height,
        frames: summary.frames,
        first_pts_secs: first as f64 * tb,
        duration_secs: span_secs + 1.0 / frame_rate,
        frame_rate,
        has_audio: source.audio_index.is_some(),
        audio_codec: source.audio_codec.clone(),
        starts_with_keyframe: summary.first_is_key,
    }
}

/// Checks one rendition against its source's [`StreamInfo`]: it decodes without errors, has the asked
/// codec and exact size, the source's frame count (±1; with a set fps, source duration × fps ± 1), starts
/// within one source frame of the source's first timestamp, and starts with a keyframe.
pub fn verify_rendition(
    source: &StreamInfo,
    rendition: &Path,
    profile: &Profile,
) -> Result<StreamInfo, VerifyError> {
    // Bounded by what the rendition must be: a few frames more than asked, at the asked size. A
    // rendition past that is refused as soon as it decodes past it, not decoded in full. Only what
    // decodes counts: a container's declared duration may run past the video (its audio), and an
    // honest rendition must never fail on an estimate.
    let expected = expected_frames(source, profile);
    let budget = rendition_budget(expected, profile);
    let decoded = VideoSource::open(rendition, threads())
        .and_then(|source| inspect_source(source, Some(budget)));
    check_rendition(source, decoded, profile, expected)
}

/// [`verify_rendition`] that also draws the rendition's content-check sample (`samples` frames from
/// `seed`, as [`crate::content_check`] draws them) in the same decode, for [`crate::score_samples`].
pub fn verify_rendition_sampled(
    source: &StreamInfo,
    rendition: &Path,
    profile: &Profile,
    samples: usize,
    seed: u64,
) -> Result<(StreamInfo, ContentSample), VerifyError> {
    let expected = expected_frames(source, profile);
    let budget = rendition_budget(expected, profile);
    let mut reservoir = None;
    let decoded = VideoSource::open(rendition, threads()).and_then(|video| {
        let drawn = reservoir.insert(Reservoir::new(
            samples,
            seed,
            f64::from(video.video_time_base),
        ));
        inspect_source_with(video, Some(budget), |frame| drawn.offer(frame))
    });
    let info = check_rendition(source, decoded, profile, expected)?;
    let sample =
        reservoir
            .map(|r| r.finish(&profile.name))
            .ok_or_else(|| VerifyError::Undecodable {
                rendition: profile.name.clone(),
                detail: "it was not decoded".to_owned(),
            })?;
    Ok((info, sample))
}

/// [`verify_rendition`] from the bitstream: frames counted as packets, timestamps and the leading
/// keyframe read from them, the size from the one frame decoded, the first. An honest rendition passes
/// both the same way; a pass here does not show that every frame decodes (the content check, which
/// decodes, does), so a failure here is only a reason to run [`verify_rendition`], whose verdict counts.
pub fn verify_rendition_quick(
    source: &StreamInfo,
    rendition: &Path,
    profile: &Profile,
) -> Result<StreamInfo, VerifyError> {
    let expected = expected_frames(source, profile);
    let scanned = VideoSource::open(rendition, 1).and_then(|mut video| {
        let summary = video.scan(expected + 2)?;
        Ok(stream_info(&video, &summary))
    });
    check_rendition(source, scanned, profile, expected)
}

/// Frames in `path` as its bitstream counts them (video packets), decoding only the first: never fewer
/// than a full decode counts, so a client working out what a job costs pays at least what the
/// coordinator's [`inspect_within`] will ask.
pub fn count_frames(path: &Path) -> Result<u64, MediaError> {
    let mut video = VideoSource::open(path, 1)?;
    Ok(video.scan(u64::MAX)?.frames)
}

/// The HLS `CODECS` attribute of a rendition (RFC 8216 §4.3.4.2, codec strings of RFC 6381): the
/// video's `avc1.PPCCLL` from its first SPS, then the audio's (`mp4a.40.2` for AAC, `mp4a.40.34` for
/// MP3, `ac-3`, `ec-3`). `None` where either cannot be named: a wrong attribute makes players refuse a
/// variant, a missing one only costs them a probe.
pub fn hls_codecs(path: &Path) -> Result<Option<String>, MediaError> {
    let mut video = VideoSource::open(path, 1)?;
    if video.video_codec != "h264" {
        return Ok(None);
    }
    let audio = match video.audio_codec.as_deref() {
        None => None,
        Some("aac") => Some("mp4a.40.2"),
        Some("mp3") => Some("mp4a.40.34"),
        Some("ac3") => Some("ac-3"),
        Some("eac3") => Some("ec-3"),
        Some(_) => return Ok(None),
    };
    let Some(avc1) = video.first_sps_codec_string()? else {
        return Ok(None);
    };
    Ok(Some(match audio {
        Some(audio) => format!("{avc1},{audio}"),
        None => avc1,
    }))
}

/// What decoding a rendition that must have `expected` frames at `profile` may cost: a few frames
/// more, at the asked size.
fn rendition_budget(expected: u64, profile: &Profile) -> DecodeBudget {
    DecodeBudget {
        max_frames: expected + 2,
        max_pixels: (expected + 2) * u64::from(profile.width) * u64::from(profile.height),
    }
}

/// Frames a rendition of `source` at `profile` must have.
fn expected_frames(source: &StreamInfo, profile: &Profile) -> u64 {
    match profile.fps {
        0 => source.frames,
        fps => (source.duration_secs * f64::from(fps)).round() as u64,
    }
}

/// The checks [`verify_rendition`] makes on what reading the rendition found.
fn check_rendition(
    source: &StreamInfo,
    read: Result<StreamInfo, MediaError>,
    profile: &Profile,
    expected: u64,
) -> Result<StreamInfo, VerifyError> {
    let name = || profile.name.clone();
    let info = match read {
        Ok(info) => info,
        // Counting stopped past the bound: the rendition has at least that many frames.
        Err(MediaError::TooManyFrames { frames, .. }) if profile.fps == 0 => {
            return Err(VerifyError::FrameCount {
                rendition: name(),
                frames,
                source_frames: source.frames,
            });
        }
        Err(MediaError::TooManyFrames { frames, .. }) => {
            return Err(VerifyError::ConvertedFrameCount {
                rendition: name(),
                frames,
                expected,
                duration_secs: source.duration_secs,
                fps: profile.fps,
            });
        }
        Err(e) => {
            return Err(VerifyError::Undecodable {
                rendition: name(),
                detail: e.to_string(),
            });
        }
    };
    let asked_codec = profile.codec.ffmpeg_name();
    if info.video_codec != asked_codec {
        return Err(VerifyError::Codec {
            rendition: name(),
            found: info.video_codec,
            asked: asked_codec.to_owned(),
        });
    }
    if info.width != profile.width || info.height != profile.height {
        return Err(VerifyError::Size {
            rendition: name(),
            width: info.width,
            height: info.height,
            asked_width: profile.width,
            asked_height: profile.height,
        });
    }
    if profile.fps == 0 {
        if info.frames.abs_diff(source.frames) > 1 {
            return Err(VerifyError::FrameCount {
                rendition: name(),
                frames: info.frames,
                source_frames: source.frames,
            });
        }
    } else {
        let expected = (source.duration_secs * f64::from(profile.fps)).round() as u64;
        if info.frames.abs_diff(expected) > 1 {
            return Err(VerifyError::ConvertedFrameCount {
                rendition: name(),
                frames: info.frames,
                expected,
                duration_secs: source.duration_secs,
                fps: profile.fps,
            });
        }
    }
    // A millisecond of slack absorbs 90 kHz rounding.
    let tolerance = source.frame_duration_secs() + 1e-3;
    if (info.first_pts_secs - source.first_pts_secs).abs() > tolerance {
        return Err(VerifyError::Start {
            rendition: name(),
            start_secs: info.first_pts_secs,
            source_start_secs: source.first_pts_secs,
        });
    }
    if !info.starts_with_keyframe {
        return Err(VerifyError::NoLeadingKeyframe { rendition: name() });
    }
    Ok(info)
}
