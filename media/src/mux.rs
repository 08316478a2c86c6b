//! Writing MPEG-TS files that keep the source's timestamps, for segments and renditions alike.

use std::path::Path;

use ffmpeg_next::{self as ffmpeg, Dictionary, codec, encoder, format};

use crate::error::MediaError;
use crate::ffmpeg_log;

/// Creates an MPEG-TS file at `path`; add streams, then call [`write_header`].
pub(crate) fn create(path: &Path) -> Result<format::context::Output, MediaError> {
    let (out, msgs) = ffmpeg_log::capture(|| format::output_as(path, "mpegts"));
    out.map_err(|e| write_error(path, &msgs, e))
}

/// Adds a stream that carries `parameters` unchanged (stream copy); returns its index.
pub(crate) fn add_copy_stream(
    out: &mut format::context::Output,
    parameters: codec::Parameters,
    path: &Path,
) -> Result<usize, MediaError> {
    let mut stream = out
        .add_stream(encoder::find(codec::Id::None))
        .map_err(|e| write_error(path, &[], e))?;
    stream.set_parameters(parameters);
    Ok(stream.index())
}

/// Writes the header. `mpegts_copyts=1` keeps timestamps as given: without it the muxer shifts
/// everything by 1.4 s and renditions of consecutive segments no longer line up.
pub(crate) fn write_header(
    out: &mut format::context::Output,
    path: &Path,
) -> Result<(), MediaError> {
    let mut options = Dictionary::new();
    options.set("mpegts_copyts", "1");
    let (written, msgs) = ffmpeg_log::capture(|| out.write_header_with(options).map(|_| ()));
    written.map_err(|e| write_error(path, &msgs, e))
}

pub(crate) fn write_error(path: &Path, msgs: &[String], e: ffmpeg::Error) -> MediaError {
    MediaError::Write {
        path: path.to_owned(),
        detail: ffmpeg_log::explain(msgs, e),
    }
}
