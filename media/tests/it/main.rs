//! Tests of dualrig-media against real video made with the ffmpeg CLI, with ffprobe as a second opinion.
mod cli;
mod content;
mod decoders;
mod encoders;
mod inspect;
mod segments;
mod support;
mod transcode;
mod verify;
