//! How many encoder sessions this machine can hold at once (PROTOCOL §5): a worker advertises free sessions,
//! and a hardware encoder's limit (NVENC's per-GPU cap on consumer cards, a VAAPI driver's) is only known
//! by trying.

use dualrig_proto::profile::{Codec, Profile};
use ffmpeg_next::Rational;

use crate::encoder::{EncoderSelection, OpenedEncoder, open_video_encoder};
use crate::ladder::{SourceTiming, rendition_settings};

/// Sessions are probed at the largest size a segment is encoded at.
const PROBE_WIDTH: u32 = 1920;
const PROBE_HEIGHT: u32 = 1080;

/// Opens 1080p sessions of `encoder` one after another, all held open, until one fails or `cap` are
/// open, and returns how many opened (0 when not even one does; `cap` of 0 gives 0).
///
/// For libx264 nothing limits sessions but the CPU, which opening says nothing about: it returns `cap`
/// without opening anything, and callers keep libx264 at the one job that already uses every core.
pub fn probe_sessions(encoder: &EncoderSelection, cap: u32) -> u32 {
    crate::init();
    if !encoder.hardware {
        return cap;
    }
    let profile = Profile {
        name: "probe".to_owned(),
        width: PROBE_WIDTH,
        height: PROBE_HEIGHT,
        fps: 0,
        bitrate: 4_000_000,
        codec: Codec::H264,
    };
    let timing = SourceTiming {
        frame_rate: 30.0,
        start_secs: 10.0,
    };
    let settings = rendition_settings(&encoder.name, &profile, &timing);
    let mut open: Vec<OpenedEncoder> = Vec::new();
    while (open.len() as u32) < cap {
        match open_video_encoder(
            &encoder.name,
            PROBE_WIDTH,
            PROBE_HEIGHT,
            Rational::new(1, 90_000),
            &settings,
        ) {
            Ok(session) => open.push(session),
            Err(reason) => {
                tracing::info!(
                    encoder = %encoder.name,
                    opened = open.len(),
                    %reason,
                    "no more encoder sessions"
                );
                break;
            }
        }
    }
    open.len() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_encoding_reports_the_cap() {
        assert_eq!(probe_sessions(&EncoderSelection::software(), 8), 8);
        assert_eq!(probe_sessions(&EncoderSelection::software(), 0), 0);
    }

    #[test]
    fn sessions_are_opened_up_to_the_cap_or_the_first_failure() {
        // libx264 marked as hardware takes the probing path and opens every session asked for.
        let opens = EncoderSelection {
            hardware: true,
            ..EncoderSelection::software()
        };
        assert_eq!(probe_sessions(&opens, 3), 3);
        let missing = EncoderSelection {
            name: "h264_not_an_encoder".to_owned(),
            hardware: true,
            ..EncoderSelection::software()
        };
        assert_eq!(probe_sessions(&missing, 3), 0);
    }
}
