//! `inspect`: what it reports for good files and how it names bad ones.

use std::fs;

use dualrig_media::{MediaError, inspect};

use crate::support::{audio_only, clip, ffprobe, same_time};

#[test]
fn a_transport_stream_is_decoded_and_described() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = clip(dir.path(), "clip.ts", 4, "640x360");
    let info = inspect(&path).expect("inspect");
    let probe = ffprobe(&path);
    assert_eq!(info.container, "mpegts");
    assert_eq!(info.video_codec, "h264");
    assert_eq!((info.width, info.height), (640, 360));
    assert_eq!(info.frames, 120);
    assert_eq!(info.frames, probe.frames);
    assert!(same_time(info.first_pts_secs, probe.start_secs), "{info:?}");
    assert!((info.duration_secs - 4.0).abs() < 1e-3, "{info:?}");
    assert!((info.frame_rate - 30.0).abs() < 1e-6);
    assert!(info.has_audio);
    assert_eq!(info.audio_codec.as_deref(), Some("aac"));
    assert!(info.starts_with_keyframe);
}

#[test]
fn an_mp4_is_read_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = clip(dir.path(), "clip.mp4", 2, "320x240");
    let info = inspect(&path).expect("inspect");
    assert!(info.container.contains("mp4"), "{}", info.container);
    assert_eq!(info.frames, 60);
    assert_eq!((info.width, info.height), (320, 240));
    assert!((info.duration_secs - 2.0).abs() < 1e-3, "{info:?}");
}

#[test]
fn an_empty_file_is_named_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("empty.ts");
    fs::write(&path, b"").expect("write");
    let err = inspect(&path).expect_err("empty");
    assert!(matches!(err, MediaError::Empty { .. }), "{err}");
    assert!(err.to_string().contains("0 bytes"), "{err}");
}

#[test]
fn a_missing_file_is_a_read_error() {
    let err = inspect(std::path::Path::new("/nonexistent/segment.ts")).expect_err("missing");
    assert!(matches!(err, MediaError::Read { .. }), "{err}");
}

#[test]
fn random_bytes_are_not_a_decodable_video() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("noise.ts");
    // A fixed xorshift stream: deterministic noise without a dependency.
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let bytes: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::write(&path, bytes).expect("write");
    let err = inspect(&path).expect_err("noise");
    assert!(matches!(err, MediaError::Undecodable { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("segment is not a decodable video: "),
        "{err}"
    );
}

#[test]
fn audio_only_is_named_with_what_was_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = inspect(&audio_only(dir.path())).expect_err("audio only");
    assert_eq!(
        err.to_string(),
        "segment has no video stream (found: audio aac)"
    );
}

#[test]
fn a_transport_stream_cut_mid_packet_is_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whole = fs::read(clip(dir.path(), "whole.ts", 4, "640x360")).expect("read");
    let cut = dir.path().join("cut.ts");
    fs::write(&cut, &whole[..whole.len() / 2 + 77]).expect("write");
    let err = inspect(&cut).expect_err("truncated");
    assert!(matches!(err, MediaError::Truncated { .. }), "{err}");
    assert!(
        err.to_string().starts_with("segment is truncated: "),
        "{err}"
    );
}

#[test]
fn a_transport_stream_cut_on_a_packet_boundary_is_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whole = fs::read(clip(dir.path(), "whole.ts", 4, "640x360")).expect("read");
    let cut = dir.path().join("cut.ts");
    let at = whole.len() / 2 / 188 * 188;
    fs::write(&cut, &whole[..at]).expect("write");
    let err = inspect(&cut).expect_err("truncated");
    assert!(matches!(err, MediaError::Truncated { .. }), "{err}");
}

#[test]
fn damage_in_the_middle_is_undecodable_not_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = fs::read(clip(dir.path(), "whole.ts", 4, "640x360")).expect("read");
    // Scribble over the payload of a run of transport packets a quarter of the way in, leaving their
    // 4-byte headers (and so the stream's structure) intact.
    let first = bytes.len() / 4 / 188;
    for packet in first..first + 40 {
        let start = packet * 188 + 4;
        for (i, b) in bytes[start..start + 184].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(31) ^ 0x5a;
        }
    }
    let damaged = dir.path().join("damaged.ts");
    fs::write(&damaged, bytes).expect("write");
    let err = inspect(&damaged).expect_err("damaged");
    assert!(matches!(err, MediaError::Undecodable { .. }), "{err}");
}

/// A client counts a segment's frames from its bitstream to price a job; on honest files, with and
/// without B-frames, that is the count the coordinator's full decode finds.
#[test]
fn counting_packets_finds_the_frames_a_decode_finds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = crate::support::clip(dir.path(), "plain.ts", 2, "320x240");
    let bframes = dir.path().join("bframes.ts");
    crate::support::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-t",
        "3",
        "-c:v",
        "libx264",
        "-bf",
        "3",
        "-g",
        "30",
        crate::support::path_str(&bframes),
    ]);
    for path in [&plain, &bframes] {
        assert_eq!(
            dualrig_media::count_frames(path).expect("counts"),
            dualrig_media::inspect(path).expect("inspects").frames,
            "{}",
            path.display()
        );
    }
}

/// The master playlist's `CODECS` attribute comes from the rendition itself: profile and level in the
/// `avc1` string are what ffprobe reads from the same file, AAC audio adds `mp4a.40.2`, and a codec
/// that cannot be named leaves the attribute out.
#[test]
fn a_rendition_names_its_codecs_as_ffprobe_sees_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let make = |name: &str, extra: &[&str]| {
        let path = dir.path().join(name);
        let mut args = vec![
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "1",
        ];
        args.extend_from_slice(extra);
        args.push(crate::support::path_str(&path));
        crate::support::ffmpeg(&args);
        path
    };
    let probe = |path: &std::path::Path| -> (String, u32) {
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0"])
            .args(["-show_entries", "stream=profile,level", "-of", "csv=p=0"])
            .arg(path)
            .output()
            .expect("ffprobe runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // The stream shows up in the program's section too: the first line is enough.
        let line = text.lines().find(|l| !l.trim().is_empty()).expect("a line");
        let (profile, level) = line.trim().split_once(',').expect("profile,level");
        (profile.to_owned(), level.parse().expect("level"))
    };
    let cases = [
        (
            make(
                "main-aac.ts",
                &[
                    "-c:v",
                    "libx264",
                    "-profile:v",
                    "main",
                    "-level",
                    "3.1",
                    "-c:a",
                    "aac",
                ],
            ),
            0x4d,
            Some("mp4a.40.2"),
        ),
        (
            make(
                "high-silent.ts",
                &["-c:v", "libx264", "-profile:v", "high", "-an"],
            ),
            0x64,
            None,
        ),
    ];
    for (path, profile_idc, audio) in &cases {
        let codecs = dualrig_media::hls_codecs(path)
            .expect("reads")
            .expect("named");
        let (avc1, rest) = codecs
            .split_once(',')
            .map_or((codecs.as_str(), None), |(v, a)| (v, Some(a)));
        let (_, level) = probe(path);
        assert_eq!(
            avc1.get(5..7),
            Some(format!("{profile_idc:02x}").as_str()),
            "{codecs}"
        );
        assert_eq!(
            u32::from_str_radix(avc1.get(9..11).expect("level"), 16).expect("hex"),
            level,
            "{codecs}"
        );
        assert_eq!(rest, *audio, "{codecs}");
    }
    let mpeg2 = make("mpeg2.ts", &["-c:v", "mpeg2video", "-c:a", "aac"]);
    assert_eq!(dualrig_media::hls_codecs(&mpeg2).expect("reads"), None);
}
