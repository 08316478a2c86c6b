//! The encoder settings of one rendition, decided in one place so that the in-process transcoder and the
//! ffmpeg CLI command built for side-by-side comparisons ask each encoder for exactly the same thing.

use dualrig_proto::profile::Profile;
use ffmpeg_next::format::Pixel;

/// A keyframe every this many seconds of output. Every rendition also starts with one (an encoder's
/// first frame is always an IDR), which is what switching between renditions needs.
pub const KEYFRAME_INTERVAL_SECS: f64 = 2.0;

/// A segment whose first timestamp is closer to zero than this is encoded without B-frames: their
/// reordering delay would push the first DTS below zero, which MPEG-TS cannot carry, and the muxer would
/// then shift the whole rendition away from the source's timestamps.
pub(crate) const REORDER_HEADROOM_SECS: f64 = 0.5;

/// Frame rate assumed when a file does not state one.
pub(crate) const FALLBACK_FRAME_RATE: f64 = 25.0;

/// What a rendition's settings depend on besides its profile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SourceTiming {
    pub frame_rate: f64,
    pub start_secs: f64,
}

/// How one rendition is encoded.
#[derive(Debug, Clone)]
pub(crate) struct RenditionSettings {
    /// Frame rate of the rendition: the profile's, or the source's when the profile keeps it.
    pub frame_rate: f64,
    /// Software pixel format the scaler produces (and, for VAAPI, the surfaces hold).
    pub pixel_format: Pixel,
    /// AVOptions for the encoder, by their FFmpeg names (also valid as `-name:v value` on the CLI).
    pub options: Vec<(&'static str, String)>,
}

pub(crate) fn rendition_settings(
    encoder: &str,
    profile: &Profile,
    source: &SourceTiming,
) -> RenditionSettings {
    let frame_rate = if profile.fps == 0 {
        source.frame_rate
    } else {
        f64::from(profile.fps)
    };
    let gop = (frame_rate * KEYFRAME_INTERVAL_SECS).round().max(1.0) as u64;
    let mut options = vec![
        ("b", profile.bitrate.to_string()),
        ("maxrate", (profile.bitrate / 2 * 3).to_string()),
        ("bufsize", (profile.bitrate * 2).to_string()),
        ("g", gop.to_string()),
    ];
    if source.start_secs < REORDER_HEADROOM_SECS {
        options.push(("bf", "0".to_owned()));
    }
    match encoder {
        "libx264" | "h264_qsv" => options.push(("preset", "veryfast".to_owned())),
        "h264_nvenc" => options.push(("preset", "p4".to_owned())),
        _ => {}
    }
    RenditionSettings {
        frame_rate,
        pixel_format: software_pixel_format(encoder),
        options,
    }
}

/// The pixel format an encoder is fed in system memory.
pub(crate) fn software_pixel_format(encoder: &str) -> Pixel {
    match encoder {
        "libx264" | "h264_nvenc" => Pixel::YUV420P,
        "h264_qsv" | "h264_vaapi" => Pixel::NV12,
        other => {
            let formats: Vec<Pixel> = ffmpeg_next::encoder::find_by_name(other)
                .and_then(|c| c.video().ok())
                .and_then(|v| v.formats().map(|f| f.collect()))
                .unwrap_or_default();
            if formats.is_empty() || formats.contains(&Pixel::YUV420P) {
                Pixel::YUV420P
            } else if formats.contains(&Pixel::NV12) {
                Pixel::NV12
            } else {
                formats[0]
            }
        }
    }
}

/// FFmpeg's name for a software pixel format the settings above can pick.
pub(crate) fn pixel_format_name(format: Pixel) -> &'static str {
    match format {
        Pixel::NV12 => "nv12",
        _ => "yuv420p",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p360() -> Profile {
        Profile::standard("360p").expect("360p")
    }

    #[test]
    fn x264_gets_veryfast_a_vbv_and_a_two_second_gop() {
        let s = rendition_settings(
            "libx264",
            &p360(),
            &SourceTiming {
                frame_rate: 30.0,
                start_secs: 1.4,
            },
        );
        let get = |k: &str| {
            s.options
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("preset").as_deref(), Some("veryfast"));
        assert_eq!(get("b").as_deref(), Some("800000"));
        assert_eq!(get("maxrate").as_deref(), Some("1200000"));
        assert_eq!(get("bufsize").as_deref(), Some("1600000"));
        assert_eq!(get("g").as_deref(), Some("60"));
        assert_eq!(get("bf"), None);
        assert_eq!(s.pixel_format, Pixel::YUV420P);
    }

    #[test]
    fn a_segment_starting_at_zero_gets_no_b_frames_and_a_set_fps_sets_the_gop() {
        let mut p = p360();
        p.fps = 24;
        let s = rendition_settings(
            "h264_nvenc",
            &p,
            &SourceTiming {
                frame_rate: 30.0,
                start_secs: 0.0,
            },
        );
        assert!(s.options.contains(&("bf", "0".to_owned())));
        assert!(s.options.contains(&("g", "48".to_owned())));
        assert!(s.options.contains(&("preset", "p4".to_owned())));
        assert_eq!(s.frame_rate, 24.0);
    }
}
