//! The two error types: [`MediaError`] for reading, transcoding and cutting video, [`VerifyError`] for a
//! rendition that does not match what was asked. Messages name the file or rendition and say what is wrong.

use std::path::PathBuf;

use dualrig_proto::profile::ProfileError;

/// Why a segment could not be read, transcoded or cut.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("segment is empty: {} has 0 bytes", path.display())]
    Empty { path: PathBuf },
    /// `found` lists the streams that are there, e.g. "audio aac", or "no streams".
    #[error("segment has no video stream (found: {found})")]
    NoVideo { found: String },
    #[error("segment is not a decodable video: {detail}")]
    Undecodable { detail: String },
    #[error("segment is truncated: {detail}")]
    Truncated { detail: String },
    #[error("invalid rendition ladder: {0}")]
    Ladder(#[from] ProfileError),
    #[error(
        "profile name '{name}' cannot be used as a file name (use letters, digits, '.', '_' or '-')"
    )]
    ProfileName { name: String },
    #[error("encoder {name} is not available: {reason}")]
    EncoderUnavailable { name: String, reason: String },
    #[error("no H.264 encoder opens on this machine: {reason}")]
    NoEncoder { reason: String },
    #[error("rendition {rendition}: {detail}")]
    Encode { rendition: String, detail: String },
    #[error("cannot write {}: {detail}", path.display())]
    Write { path: PathBuf, detail: String },
    #[error("segment length must be a positive number of seconds (got {0})")]
    SegmentLength(f64),
    /// A rendition thread's input ended before the segment did: the decoding side stopped, and its
    /// own error (or another rendition's) says why.
    #[error("the segment's decoding stopped before the end")]
    DecodingAbandoned,
    /// The decoding side found a rendition thread gone; that thread's own error says why.
    #[error("a rendition stopped early")]
    RenditionGone,
    /// More frames decode than the budget allows; counting stopped at `frames`.
    #[error("segment would cost too much to decode: it decodes to more than {limit} frames")]
    TooManyFrames { frames: u64, limit: u64 },
    /// Decoding the input would cost more than it may: refused before (or as soon as) it does.
    #[error("segment would cost too much to decode: {detail}")]
    OverBudget { detail: String },
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a rendition fails structural verification (PROTOCOL §5).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VerifyError {
    #[error("rendition {rendition} does not decode: {detail}")]
    Undecodable { rendition: String, detail: String },
    #[error("rendition {rendition} codec {found}, asked {asked}")]
    Codec {
        rendition: String,
        found: String,
        asked: String,
    },
    #[error("rendition {rendition} is {width}x{height}, asked {asked_width}x{asked_height}")]
    Size {
        rendition: String,
        width: u32,
        height: u32,
        asked_width: u32,
        asked_height: u32,
    },
    #[error("rendition {rendition} has {frames} frames, source has {source_frames}")]
    FrameCount {
        rendition: String,
        frames: u64,
        source_frames: u64,
    },
    #[error(
        "rendition {rendition} has {frames} frames, expected {expected} ({duration_secs:.3} s at {fps} fps)"
    )]
    ConvertedFrameCount {
        rendition: String,
        frames: u64,
        expected: u64,
        duration_secs: f64,
        fps: u32,
    },
    #[error(
        "rendition {rendition} starts at {start_secs:.3} s, source at {source_start_secs:.3} s"
    )]
    Start {
        rendition: String,
        start_secs: f64,
        source_start_secs: f64,
    },
    #[error(
        "rendition {rendition} does not start with a keyframe, so a player cannot switch to it at the segment boundary"
    )]
    NoLeadingKeyframe { rendition: String },
    #[error(
        "rendition {rendition} does not show its source: frame {index} (at {pts_secs:.3} s) scores {psnr_db:.1} dB against the source, under the {threshold_db:.1} dB threshold"
    )]
    Content {
        rendition: String,
        index: u64,
        pts_secs: f64,
        psnr_db: f64,
        threshold_db: f64,
    },
}

impl VerifyError {
    /// The profile name of the rendition that failed.
    pub fn rendition(&self) -> &str {
        match self {
            VerifyError::Undecodable { rendition, .. }
            | VerifyError::Codec { rendition, .. }
            | VerifyError::Size { rendition, .. }
            | VerifyError::FrameCount { rendition, .. }
            | VerifyError::ConvertedFrameCount { rendition, .. }
            | VerifyError::Start { rendition, .. }
            | VerifyError::Content { rendition, .. }
            | VerifyError::NoLeadingKeyframe { rendition } => rendition,
        }
    }
}
