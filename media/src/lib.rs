//! Video work shared by the worker, the coordinator and the client (PROTOCOL §5): choosing an H.264 encoder
//! and the decoders that feed it, transcoding one segment into a rendition ladder, checking a rendition
//! against its source, and cutting a whole video into segments.
//!
//! Everything here goes through FFmpeg's libraries (ffmpeg-next); nothing here touches the GPU's shader
//! cores, so the coordinator can link this crate without linking wgpu.
//!
//! Timestamps are kept everywhere: segments and renditions are MPEG-TS files written with
//! `mpegts_copyts=1`, so renditions of consecutive segments line up for adaptive streaming.

mod cli;
mod content;
mod decode;
mod decoder;
mod encoder;
mod error;
mod ffmpeg_log;
mod frame_rate;
mod h264;
mod inspect;
mod ladder;
mod mux;
mod segment;
mod sessions;
#[cfg(feature = "fault-injection")]
mod tamper;
mod transcode;
mod vaapi;

use std::sync::Once;

pub use cli::{ffmpeg_cli_ladder_args, ffmpeg_cli_ladder_args_for};
pub use content::{
    CONTENT_THRESHOLD_DB, ContentSample, ContentScore, FrameScore, MAX_KEPT_FRAME_BYTES,
    REFERENCE_MARGIN_DB, SourceFrames, content_check, score_samples,
};
pub use decoder::{
    DecoderProbe, DecoderSelection, HARDWARE_DECODER_FAMILIES, HardwareDecoder, probe_decoders,
    select_decoders,
};
pub use encoder::{
    EncoderChoice, EncoderChoiceError, EncoderProbe, EncoderSelection, HARDWARE_ENCODERS,
    SOFTWARE_ENCODER, probe_encoders, select_encoder,
};
pub use error::{MediaError, VerifyError};
pub use inspect::{
    DecodeBudget, StreamInfo, count_frames, hls_codecs, inspect, inspect_keeping, inspect_within,
    verify_rendition, verify_rendition_quick, verify_rendition_sampled,
};
pub use ladder::KEYFRAME_INTERVAL_SECS;
pub use segment::{Segment, segment_file_name, split_segments};
pub use sessions::probe_sessions;
#[cfg(feature = "fault-injection")]
pub use tamper::{Tamper, transcode_tampered};
pub use transcode::{RenditionOutput, rendition_file_name, transcode_segment};

/// Sets FFmpeg up once per process: registers what needs registering and routes FFmpeg's own log
/// into `tracing` (target `ffmpeg`, debug level) instead of stderr. Safe to call any number of times;
/// every other function here calls it.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if let Err(e) = ffmpeg_next::init() {
            tracing::warn!("FFmpeg initialisation reported: {e}");
        }
        ffmpeg_next::log::set_level(ffmpeg_next::log::Level::Error);
        ffmpeg_log::install();
    });
}
