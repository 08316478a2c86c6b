//! Cutting a whole video into MPEG-TS segments without re-encoding: each cut is made at the first video
//! keyframe at or after a multiple of the target length, so every segment starts with a keyframe and
//! decodes on its own.

use std::path::{Path, PathBuf};

use ffmpeg_next::{self as ffmpeg, Packet, Rational, codec, format, media};

use crate::decode::{describe_streams, stated_frame_rate};
use crate::error::MediaError;
use crate::ffmpeg_log;
use crate::h264::{ParameterSets, is_annex_b};
use crate::ladder::{FALLBACK_FRAME_RATE, REORDER_HEADROOM_SECS};
use crate::mux;

/// Where a source that starts too close to zero is moved to: the offset FFmpeg's own MPEG-TS muxer uses.
const MOVED_START_SECS: f64 = 1.4;

/// One segment file.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub index: usize,
    pub path: PathBuf,
    /// Presentation time of its first video frame, in seconds: the source's clock, unless the source
    /// started too close to zero and was moved (see [`split_segments`]).
    pub start_secs: f64,
    /// Until the next segment's start (for the last one: its last frame's end).
    pub duration_secs: f64,
    pub bytes: u64,
}

/// The name of segment `index`: `seg_00000.ts`, `seg_00001.ts`, ...
pub fn segment_file_name(index: usize) -> String {
    format!("seg_{index:05}.ts")
}

/// Remuxes `input` (video plus its main audio stream) into `out_dir/seg_NNNNN.ts`, cutting at the first
/// video keyframe at or after each multiple of `target_secs` from the first frame. Timestamps are the
/// source's, continuous across segments; a source whose timestamps start below half a second is moved as
/// a whole to start at 1.4 s, so renditions have room for an encoder's reordering delay (MPEG-TS cannot
/// carry negative timestamps). A source shorter than `target_secs`, or with no keyframe after the first,
/// gives one segment.
pub fn split_segments(
    input: &Path,
    out_dir: &Path,
    target_secs: f64,
) -> Result<Vec<Segment>, MediaError> {
    crate::init();
    if !(target_secs.is_finite() && target_secs > 0.0) {
        return Err(MediaError::SegmentLength(target_secs));
    }
    let len = std::fs::metadata(input)
        .map_err(|source| MediaError::Read {
            path: input.to_owned(),
            source,
        })?
        .len();
    if len == 0 {
        return Err(MediaError::Empty {
            path: input.to_owned(),
        });
    }
    let (opened, msgs) = ffmpeg_log::capture(|| format::input(input));
    let mut ictx = opened.map_err(|e| MediaError::Undecodable {
        detail: format!(
            "FFmpeg does not recognise it as a media file ({})",
            ffmpeg_log::explain(&msgs, e)
        ),
    })?;
    let Some(video) = ictx.streams().best(media::Type::Video) else {
        return Err(MediaError::NoVideo {
            found: describe_streams(&ictx),
        });
    };
    let mut plan = Plan {
        video: StreamPlan::new(&video, 0),
        audio: None,
        frame_duration: 0,
        is_h264: video.parameters().id() == codec::Id::H264,
    };
    let fps = stated_frame_rate(&video).unwrap_or(FALLBACK_FRAME_RATE);
    plan.frame_duration = ((1.0 / fps) / f64::from(plan.video.in_tb)).round().max(1.0) as i64;
    if let Some(audio) = ictx.streams().best(media::Type::Audio) {
        plan.audio = Some(StreamPlan::new(&audio, 1));
    }
    let start_secs = [Some(&plan.video), plan.audio.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|s| s.start_secs)
        .fold(f64::INFINITY, f64::min);
    let shift_secs = match start_secs.is_finite().then_some(start_secs) {
        Some(start) if start >= REORDER_HEADROOM_SECS => 0.0,
        Some(start) => MOVED_START_SECS - start,
        None => MOVED_START_SECS,
    };
    plan.video.set_shift(shift_secs);
    if let Some(a) = plan.audio.as_mut() {
        a.set_shift(shift_secs);
    }
    std::fs::create_dir_all(out_dir).map_err(|e| MediaError::Write {
        path: out_dir.to_owned(),
        detail: e.to_string(),
    })?;

    let mut cutter = Cutter {
        plan,
        out_dir: out_dir.to_owned(),
        target_secs,
        current: None,
        done: Vec::new(),
        first_video_pts: None,
        next_boundary: 1,
        video_end: None,
        parameter_sets: ParameterSets::default(),
    };
    loop {
        let mut packet = Packet::empty();
        match packet.read(&mut ictx) {
            Ok(()) => cutter.take(packet)?,
            Err(ffmpeg::Error::Eof) => break,
            Err(e) => {
                return Err(MediaError::Undecodable {
                    detail: format!("reading stops part way: {e}"),
                });
            }
        }
    }
    cutter.finish()
}

/// How one input stream maps to an output stream.
struct StreamPlan {
    in_index: usize,
    out_index: usize,
    in_tb: Rational,
    parameters: codec::Parameters,
    start_secs: Option<f64>,
    shift: i64,
}

impl StreamPlan {
    fn new(stream: &format::stream::Stream, out_index: usize) -> Self {
        let in_tb = stream.time_base();
        let start = stream.start_time();
        StreamPlan {
            in_index: stream.index(),
            out_index,
            in_tb,
            parameters: stream.parameters().clone(),
            start_secs: (start != ffmpeg::ffi::AV_NOPTS_VALUE)
                .then(|| start as f64 * f64::from(in_tb)),
            shift: 0,
        }
    }

    fn set_shift(&mut self, secs: f64) {
        self.shift = (secs / f64::from(self.in_tb)).round() as i64;
    }

    fn secs(&self, ts: i64) -> f64 {
        ts as f64 * f64::from(self.in_tb)
    }
}

struct Plan {
    video: StreamPlan,
    audio: Option<StreamPlan>,
    /// One video frame in the video stream's time base.
    frame_duration: i64,
    is_h264: bool,
}

struct OpenSegment {
    index: usize,
    path: PathBuf,
    out: format::context::Output,
    /// Output time bases of the video and audio streams.
    out_tb: [Rational; 2],
    /// Earliest video pts written to it (input time base, shifted).
    start_pts: Option<i64>,
}

struct Cutter {
    plan: Plan,
    out_dir: PathBuf,
    target_secs: f64,
    current: Option<OpenSegment>,
    /// Finished segments with their start pts; durations are filled in at the end.
    done: Vec<(usize, PathBuf, i64)>,
    first_video_pts: Option<i64>,
    /// The next cut waits for a keyframe at or after `next_boundary × target_secs`.
    next_boundary: u64,
    video_end: Option<i64>,
    parameter_sets: ParameterSets,
}

impl Cutter {
    fn take(&mut self, mut packet: Packet) -> Result<(), MediaError> {
        let stream = packet.stream();
        let is_video = stream == self.plan.video.in_index;
        let plan = if is_video {
            &self.plan.video
        } else {
            match &self.plan.audio {
                Some(a) if a.in_index == stream => a,
                _ => return Ok(()),
            }
        };
        let shift = plan.shift;
        let (in_tb, out_index) = (plan.in_tb, plan.out_index);
        packet.set_pts(packet.pts().map(|t| t + shift));
        packet.set_dts(packet.dts().map(|t| t + shift));

        if is_video {
            let pts = packet.pts().or(packet.dts()).unwrap_or(0);
            let first = *self.first_video_pts.get_or_insert(pts);
            let elapsed = self.plan.video.secs(pts - first);
            let has_video = self.current.as_ref().is_some_and(|s| s.start_pts.is_some());
            // Half a frame of slack: timestamps rounded to the time base land a hair before the boundary.
            let slack = self.plan.video.secs(self.plan.frame_duration) / 2.0;
            if packet.is_key()
                && has_video
                && elapsed + slack >= self.next_boundary as f64 * self.target_secs
            {
                self.close_current(Some(pts))?;
                self.next_boundary = ((elapsed + slack) / self.target_secs).floor() as u64 + 1;
            }
            // One frame at the stated rate, as `inspect` counts a stream's duration.
            let end = pts + self.plan.frame_duration;
            self.video_end = Some(self.video_end.map_or(end, |e| e.max(end)));
            if self.plan.is_h264 {
                packet = self.with_parameter_sets(packet);
            }
        }
        if self.current.is_none() {
            self.open_next()?;
        }
        let Some(segment) = self.current.as_mut() else {
            return Err(MediaError::Internal("no open segment".to_owned()));
        };
        if is_video {
            let pts = packet.pts().or(packet.dts()).unwrap_or(0);
            segment.start_pts = Some(segment.start_pts.map_or(pts, |s| s.min(pts)));
        }
        packet.rescale_ts(in_tb, segment.out_tb[out_index]);
        packet.set_position(-1);
        packet.set_stream(out_index);
        packet
            .write_interleaved(&mut segment.out)
            .map_err(|e| mux::write_error(&segment.path, &[], e))
    }

    /// Keeps the in-band SPS/PPS up to date and puts them in front of a keyframe that lacks them.
    fn with_parameter_sets(&mut self, packet: Packet) -> Packet {
        let Some(data) = packet.data() else {
            return packet;
        };
        if !is_annex_b(data) {
            // Length-prefixed (MP4): the MPEG-TS muxer converts it and inserts the parameter sets itself.
            return packet;
        }
        self.parameter_sets.observe(data);
        if !packet.is_key() {
            return packet;
        }
        let Some(completed) = self.parameter_sets.complete(data) else {
            return packet;
        };
        let mut out = Packet::copy(&completed);
        out.set_pts(packet.pts());
        out.set_dts(packet.dts());
        out.set_duration(packet.duration());
        out.set_flags(packet.flags());
        out.set_stream(packet.stream());
        out
    }

    fn open_next(&mut self) -> Result<(), MediaError> {
        let index = self.done.len();
        let path = self.out_dir.join(segment_file_name(index));
        let mut out = mux::create(&path)?;
        mux::add_copy_stream(&mut out, self.plan.video.parameters.clone(), &path)?;
        if let Some(audio) = &self.plan.audio {
            mux::add_copy_stream(&mut out, audio.parameters.clone(), &path)?;
        }
        mux::write_header(&mut out, &path)?;
        let tb = |i: usize| {
            out.stream(i)
                .map_or(Rational::new(1, 90_000), |s| s.time_base())
        };
        let out_tb = [tb(0), tb(1)];
        self.current = Some(OpenSegment {
            index,
            path,
            out,
            out_tb,
            start_pts: None,
        });
        Ok(())
    }

    /// Writes the open segment's trailer. `next_start` is where the next segment begins, if one does.
    fn close_current(&mut self, next_start: Option<i64>) -> Result<(), MediaError> {
        let Some(mut segment) = self.current.take() else {
            return Ok(());
        };
        segment
            .out
            .write_trailer()
            .map_err(|e| mux::write_error(&segment.path, &[], e))?;
        let start = segment
            .start_pts
            .or(next_start)
            .or(self.first_video_pts)
            .unwrap_or(0);
        self.done.push((segment.index, segment.path, start));
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<Segment>, MediaError> {
        self.close_current(None)?;
        if self.done.is_empty() {
            return Err(MediaError::Undecodable {
                detail: "the file holds no packets".to_owned(),
            });
        }
        let end = self
            .video_end
            .unwrap_or_else(|| self.done.last().map_or(0, |d| d.2));
        let mut segments = Vec::with_capacity(self.done.len());
        for (n, (index, path, start)) in self.done.iter().enumerate() {
            let until = self.done.get(n + 1).map_or(end, |next| next.2);
            let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            segments.push(Segment {
                index: *index,
                path: path.clone(),
                start_secs: self.plan.video.secs(*start),
                duration_secs: self.plan.video.secs(until - start),
                bytes,
            });
        }
        tracing::debug!(segments = segments.len(), "video cut into segments");
        Ok(segments)
    }
}
