//! `verify_rendition` against renditions made with the ffmpeg CLI, good and subtly wrong.

use std::path::{Path, PathBuf};

use dualrig_media::{StreamInfo, VerifyError, inspect, verify_rendition, verify_rendition_quick};
use dualrig_proto::profile::Profile;

use crate::support::{clip, ffmpeg, path_str};

/// Makes `name` from `source` at 240p with source timestamps, then `extra` output options.
fn rendition(dir: &Path, source: &Path, name: &str, vf: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut args = vec!["-copyts", "-i", path_str(source), "-vf", vf];
    args.extend_from_slice(extra);
    if !extra.contains(&"-c:v") {
        args.extend_from_slice(&["-c:v", "libx264", "-preset", "ultrafast"]);
    }
    args.extend_from_slice(&["-c:a", "copy", "-f", "mpegts", "-mpegts_copyts", "1"]);
    args.push(path_str(&out));
    ffmpeg(&args);
    out
}

struct Fixture {
    dir: tempfile::TempDir,
    source: PathBuf,
    info: StreamInfo,
    p240: Profile,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = clip(dir.path(), "source.ts", 4, "640x360");
    let info = inspect(&source).expect("source inspects");
    Fixture {
        dir,
        source,
        info,
        p240: Profile::standard("240p").expect("240p"),
    }
}

#[test]
fn a_faithful_rendition_passes() {
    let f = fixture();
    let good = rendition(f.dir.path(), &f.source, "good.ts", "scale=426:240", &[]);
    let info = verify_rendition(&f.info, &good, &f.p240).expect("verifies");
    assert_eq!(info.frames, 120);
}

#[test]
fn a_wrong_size_is_caught() {
    let f = fixture();
    let small = rendition(f.dir.path(), &f.source, "small.ts", "scale=426:236", &[]);
    let err = verify_rendition(&f.info, &small, &f.p240).expect_err("wrong size");
    assert_eq!(err.to_string(), "rendition 240p is 426x236, asked 426x240");
}

#[test]
fn missing_frames_are_caught() {
    let f = fixture();
    let short = rendition(
        f.dir.path(),
        &f.source,
        "short.ts",
        "scale=426:240",
        &["-frames:v", "100"],
    );
    let err = verify_rendition(&f.info, &short, &f.p240).expect_err("fewer frames");
    assert_eq!(
        err.to_string(),
        "rendition 240p has 100 frames, source has 120"
    );
}

#[test]
fn a_wrong_codec_is_caught() {
    let f = fixture();
    let mpeg2 = rendition(
        f.dir.path(),
        &f.source,
        "mpeg2.ts",
        "scale=426:240",
        &["-c:v", "mpeg2video"],
    );
    let err = verify_rendition(&f.info, &mpeg2, &f.p240).expect_err("mpeg2");
    assert_eq!(
        err.to_string(),
        "rendition 240p codec mpeg2video, asked h264"
    );
}

#[test]
fn shifted_timestamps_are_caught() {
    let f = fixture();
    let late = rendition(
        f.dir.path(),
        &f.source,
        "late.ts",
        "scale=426:240",
        &["-output_ts_offset", "0.5"],
    );
    let err = verify_rendition(&f.info, &late, &f.p240).expect_err("shifted");
    assert!(matches!(err, VerifyError::Start { .. }), "{err}");
    assert!(
        err.to_string().starts_with("rendition 240p starts at "),
        "{err}"
    );
}

#[test]
fn a_rendition_at_the_wrong_frame_rate_is_caught() {
    let f = fixture();
    let mut p15 = f.p240.clone();
    p15.fps = 15;
    let full_rate = rendition(f.dir.path(), &f.source, "30fps.ts", "scale=426:240", &[]);
    let err = verify_rendition(&f.info, &full_rate, &p15).expect_err("30 fps, asked 15");
    assert!(
        matches!(
            err,
            VerifyError::ConvertedFrameCount {
                frames: 63,
                expected: 60,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_rendition_that_does_not_decode_is_caught() {
    let f = fixture();
    let bogus = f.dir.path().join("bogus.ts");
    std::fs::write(&bogus, vec![0x47u8; 188 * 10]).expect("write");
    let err = verify_rendition(&f.info, &bogus, &f.p240).expect_err("bogus");
    assert!(matches!(err, VerifyError::Undecodable { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("rendition 240p does not decode: "),
        "{err}"
    );
}

/// A rendition is decoded only as far as it can be right: one with far more frames than its source
/// (here, twice the source's frame rate) stops decoding three frames past the source's count and is
/// refused for its frame count, not decoded in full.
#[test]
fn a_rendition_with_far_more_frames_stops_decoding_at_its_budget() {
    let f = fixture();
    let doubled = rendition(
        f.dir.path(),
        &f.source,
        "doubled.ts",
        "scale=426:240,fps=60",
        &[],
    );
    let err = verify_rendition(&f.info, &doubled, &f.p240).expect_err("too many frames");
    assert_eq!(
        err,
        VerifyError::FrameCount {
            rendition: "240p".into(),
            frames: 123,
            source_frames: 120,
        }
    );
}

/// A source whose container declares more than a segment may hold is refused before any frame is
/// decoded; an ordinary segment passes the same budget.
#[test]
fn a_segment_declaring_more_than_its_budget_is_refused_unread() {
    let f = fixture();
    let tight = dualrig_media::DecodeBudget {
        max_frames: 100,
        max_pixels: u64::MAX,
    };
    let err = dualrig_media::inspect_within(&f.source, tight).expect_err("120 frames declared");
    assert!(
        matches!(err, dualrig_media::MediaError::OverBudget { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("at most 100"), "{err}");
    let info = dualrig_media::inspect_within(&f.source, dualrig_media::DecodeBudget::SEGMENT)
        .expect("an ordinary segment is within the budget");
    assert_eq!(info, f.info);
}

/// `verify_rendition_quick` reads the bitstream where `verify_rendition` decodes every frame: on every
/// rendition above, good or wrong, the two agree, error for error; only damage inside the pictures,
/// which needs decoding to see, gets past the quick check (the coordinator decodes in full whenever the
/// quick check fails and on every content-checked job).
#[test]
fn the_bitstream_check_agrees_with_the_full_decode() {
    let f = fixture();
    let dir = f.dir.path();
    let mut p15 = f.p240.clone();
    p15.fps = 15;
    let bogus = dir.join("bogus.ts");
    std::fs::write(&bogus, vec![0x47u8; 188 * 10]).expect("write");
    let good = rendition(dir, &f.source, "good.ts", "scale=426:240", &[]);
    let cases = [
        (good.clone(), &f.p240),
        (
            rendition(dir, &f.source, "small.ts", "scale=426:236", &[]),
            &f.p240,
        ),
        (
            rendition(
                dir,
                &f.source,
                "short.ts",
                "scale=426:240",
                &["-frames:v", "100"],
            ),
            &f.p240,
        ),
        (
            rendition(
                dir,
                &f.source,
                "mpeg2.ts",
                "scale=426:240",
                &["-c:v", "mpeg2video"],
            ),
            &f.p240,
        ),
        (
            rendition(
                dir,
                &f.source,
                "late.ts",
                "scale=426:240",
                &["-output_ts_offset", "0.5"],
            ),
            &f.p240,
        ),
        (good.clone(), &p15),
        (bogus, &f.p240),
        (
            rendition(dir, &f.source, "doubled.ts", "scale=426:240,fps=60", &[]),
            &f.p240,
        ),
        (
            rendition(dir, &f.source, "bframes.ts", "scale=426:240", &["-bf", "2"]),
            &f.p240,
        ),
    ];
    for (path, profile) in &cases {
        let full = verify_rendition(&f.info, path, profile);
        let quick = verify_rendition_quick(&f.info, path, profile);
        match (&full, &quick) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{}", path.display()),
            (Err(VerifyError::Undecodable { .. }), Err(b)) => {
                assert!(matches!(b, VerifyError::Undecodable { .. }), "{b}")
            }
            (Err(a), Err(b)) => assert_eq!(a, b, "{}", path.display()),
            _ => panic!("{}: full {full:?}, quick {quick:?}", path.display()),
        }
    }

    // Damage in the middle of the pictures (payload bytes of transport packets past the first
    // keyframe, their headers kept): the full decode refuses it, the bitstream check does not see it.
    let mut damaged = std::fs::read(&good).expect("read");
    let packets = damaged.len() / 188;
    for p in (packets / 2..packets * 3 / 4).step_by(3) {
        for b in &mut damaged[p * 188 + 8..p * 188 + 188] {
            *b ^= 0x5a;
        }
    }
    let damaged_path = dir.join("damaged.ts");
    std::fs::write(&damaged_path, &damaged).expect("write");
    assert!(verify_rendition(&f.info, &damaged_path, &f.p240).is_err());
    eprintln!(
        "damaged pictures, quick check: {:?}",
        verify_rendition_quick(&f.info, &damaged_path, &f.p240).map(|i| i.frames)
    );
}
