//! The ffmpeg command line that makes the same ladder as [`crate::transcode_segment`], with the same
//! encoder settings, for side-by-side benchmarks and for tests that hold the two against each other.

use std::path::Path;

use dualrig_proto::profile::Profile;
use ffmpeg_next::{format, media};

use crate::decode::video_timing;
use crate::encoder::EncoderSelection;
use crate::ladder::{FALLBACK_FRAME_RATE, SourceTiming, pixel_format_name, rendition_settings};
use crate::transcode::rendition_file_name;
use crate::vaapi;

/// Arguments for `ffmpeg` (without the program name) that transcode `input` into `out_dir/<profile>.ts`
/// for every profile: same encoder, same rate control, GOP, preset and B-frame settings, same bicubic
/// scaling, same timestamps (`-copyts`, `mpegts_copyts=1`), audio copied; in both, encoders choose their
/// own thread counts.
///
/// The input's header is read (not decoded) for the frame rate and first timestamp the settings depend
/// on. Frame-rate conversion uses ffmpeg's `fps` filter, which may differ from ours by a frame. A profile
/// whose name cannot be a file name is skipped, as `transcode_segment` would refuse it.
pub fn ffmpeg_cli_ladder_args(
    input: &Path,
    profiles: &[Profile],
    encoder: &str,
    out_dir: &Path,
) -> Vec<String> {
    ladder_args(input, profiles, encoder, None, out_dir)
}

/// [`ffmpeg_cli_ladder_args`] for the encoder `selection` names, reading the input with the decoder the
/// transcoder would use for its codec: `-c:v h264_cuvid` before `-i` where the selection has a hardware
/// decoder for it (the transcoder falls back to software on a segment that decoder fails on; the CLI
/// then fails instead).
pub fn ffmpeg_cli_ladder_args_for(
    input: &Path,
    profiles: &[Profile],
    selection: &EncoderSelection,
    out_dir: &Path,
) -> Vec<String> {
    crate::init();
    let codec = format::input(input).ok().and_then(|ictx| {
        ictx.streams()
            .best(media::Type::Video)
            .map(|s| s.parameters().id().name().to_owned())
    });
    let decoder = codec.and_then(|c| selection.decoders.for_codec(&c).map(str::to_owned));
    ladder_args(
        input,
        profiles,
        &selection.name,
        decoder.as_deref(),
        out_dir,
    )
}

fn ladder_args(
    input: &Path,
    profiles: &[Profile],
    encoder: &str,
    decoder: Option<&str>,
    out_dir: &Path,
) -> Vec<String> {
    crate::init();
    let timing = format::input(input)
        .ok()
        .and_then(|ictx| {
            ictx.streams()
                .best(media::Type::Video)
                .map(|s| video_timing(&s))
        })
        .unwrap_or(SourceTiming {
            frame_rate: FALLBACK_FRAME_RATE,
            start_secs: 1.4,
        });
    let mut args: Vec<String> = ["-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
        .map(String::from)
        .to_vec();
    if encoder == "h264_vaapi" {
        args.extend(["-vaapi_device".to_owned(), vaapi::RENDER_NODE.to_owned()]);
    }
    if let Some(decoder) = decoder {
        args.extend(["-c:v".to_owned(), decoder.to_owned()]);
    }
    args.extend([
        "-copyts".to_owned(),
        "-i".to_owned(),
        input.display().to_string(),
    ]);
    for profile in profiles {
        let Ok(file) = rendition_file_name(profile) else {
            continue;
        };
        let settings = rendition_settings(encoder, profile, &timing);
        let mut filters = Vec::new();
        if profile.fps != 0 && (f64::from(profile.fps) - timing.frame_rate).abs() > 0.01 {
            filters.push(format!("fps={}", profile.fps));
        }
        filters.push(format!(
            "scale={}:{}:flags=bicubic",
            profile.width, profile.height
        ));
        filters.push(format!(
            "format={}",
            pixel_format_name(settings.pixel_format)
        ));
        if encoder == "h264_vaapi" {
            filters.push("hwupload".to_owned());
        }
        args.extend(["-map", "0:v:0", "-map", "0:a:0?", "-vf"].map(String::from));
        args.push(filters.join(","));
        args.extend(["-c:v".to_owned(), encoder.to_owned()]);
        for (key, value) in &settings.options {
            args.push(format!("-{key}:v"));
            args.push(value.clone());
        }
        args.extend(
            [
                "-fps_mode:v",
                "passthrough",
                "-c:a",
                "copy",
                "-f",
                "mpegts",
                "-mpegts_copyts",
                "1",
            ]
            .map(String::from),
        );
        args.push(out_dir.join(file).display().to_string());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_profile_gets_its_own_output_with_the_shared_settings() {
        let ladder = Profile::parse_list("720p,360p").expect("ladder");
        let args = ffmpeg_cli_ladder_args(
            Path::new("/nonexistent/in.ts"),
            &ladder,
            "libx264",
            Path::new("out"),
        );
        let joined = args.join(" ");
        assert!(joined.contains("-copyts -i /nonexistent/in.ts"), "{joined}");
        assert!(joined.contains("scale=1280:720:flags=bicubic,format=yuv420p"));
        assert!(joined.contains("-b:v 800000"));
        assert!(joined.contains("-preset:v veryfast"));
        assert!(joined.contains("-mpegts_copyts 1 out/720p.ts"));
        assert!(joined.ends_with("out/360p.ts"));
        assert_eq!(args.iter().filter(|a| *a == "-c:v").count(), 2);
    }

    #[test]
    fn a_hardware_decoder_reads_the_input_only_for_its_own_codec() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in.ts");
        let made = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
            .args([
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=30",
                "-t",
                "0.2",
            ])
            .args(["-c:v", "libx264"])
            .arg(&input)
            .output()
            .expect("the ffmpeg CLI is installed");
        assert!(made.status.success());
        let ladder = Profile::parse_list("240p").expect("ladder");
        let mut selection = EncoderSelection::software();
        selection.decoders = crate::DecoderSelection::forced("h264", "h264_cuvid");
        let args = ffmpeg_cli_ladder_args_for(&input, &ladder, &selection, dir.path());
        let joined = args.join(" ");
        assert!(joined.contains("-c:v h264_cuvid -copyts -i"), "{joined}");

        selection.decoders = crate::DecoderSelection::forced("hevc", "hevc_cuvid");
        let args = ffmpeg_cli_ladder_args_for(&input, &ladder, &selection, dir.path());
        assert!(!args.join(" ").contains("cuvid"), "{args:?}");
    }
}
