//! Deliberately wrong renditions of the right shape, for tests that a verifier catches a cheating worker
//! (built only with the `fault-injection` feature).

use std::path::Path;

use dualrig_proto::profile::Profile;
use ffmpeg_next::frame;

use crate::encoder::EncoderSelection;
use crate::error::MediaError;
use crate::transcode::{RenditionOutput, transcode_edited};

/// How the source's pictures are altered before the ladder is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// Every frame black; size, count and timestamps kept.
    Blank,
    /// Every frame a moving gradient, another video of the same size, count and timestamps.
    OtherPicture,
    /// Every `n`th frame (the `n`th, the `2n`th, …) left out.
    DropEveryNth(u64),
}

/// [`crate::transcode_segment`] of `input` with its pictures altered by `tamper`.
pub fn transcode_tampered(
    input: &Path,
    profiles: &[Profile],
    encoder: &EncoderSelection,
    out_dir: &Path,
    tamper: Tamper,
) -> Result<Vec<RenditionOutput>, MediaError> {
    transcode_edited(
        input,
        profiles,
        encoder,
        out_dir,
        &mut |index, source| match tamper {
            Tamper::Blank => Some(painted(&source, |_, _| 16)),
            Tamper::OtherPicture => Some(painted(&source, |x, y| {
                ((x + y + 8 * index as usize) % 256) as u8
            })),
            Tamper::DropEveryNth(n) => (n == 0 || (index + 1) % n != 0).then_some(source),
        },
    )
}

/// A new frame of `like`'s format, size and pts whose luma is `luma(x, y)` and whose chroma is neutral.
/// The decoder's own frame is never written to: the decoder may still reference it.
fn painted(like: &frame::Video, luma: impl Fn(usize, usize) -> u8) -> frame::Video {
    let mut out = frame::Video::new(like.format(), like.width(), like.height());
    out.set_pts(like.pts());
    let (width, height) = (like.width() as usize, like.height() as usize);
    for plane in 0..out.planes() {
        let stride = out.stride(plane);
        let data = out.data_mut(plane);
        if plane == 0 {
            for (y, row) in data.chunks_mut(stride).take(height).enumerate() {
                for (x, px) in row.iter_mut().take(width).enumerate() {
                    *px = luma(x, y);
                }
            }
        } else {
            data.fill(128);
        }
    }
    out
}
