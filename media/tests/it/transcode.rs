//! `transcode_segment` end to end: real segments in, renditions out, checked by `verify_rendition` and
//! by ffprobe.

use std::fs;

use dualrig_media::{
    EncoderChoice, EncoderSelection, MediaError, inspect, select_encoder, split_segments,
    transcode_segment, verify_rendition,
};
use dualrig_proto::profile::Profile;

use crate::support::{clip, ffprobe, same_time};

fn ladder(list: &str) -> Vec<Profile> {
    Profile::parse_list(list).expect("ladder")
}

#[test]
fn the_default_ladder_verifies_and_ffprobe_agrees() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = clip(dir.path(), "segment.ts", 4, "1280x720");
    let source_info = inspect(&source).expect("source");
    let profiles = ladder("720p,480p,360p,240p");
    let out = dir.path().join("out");
    let renditions = transcode_segment(&source, &profiles, &EncoderSelection::software(), &out)
        .expect("transcodes");
    assert_eq!(renditions.len(), 4);
    for (r, profile) in renditions.iter().zip(&profiles) {
        assert_eq!(r.profile, *profile);
        assert_eq!(r.path, out.join(format!("{}.ts", profile.name)));
        assert_eq!(r.frames, 120, "{}", profile.name);
        assert_eq!(r.decoder, "h264", "software decoding was asked for");
        let info = verify_rendition(&source_info, &r.path, profile).expect("verifies");
        assert!(same_time(info.first_pts_secs, source_info.first_pts_secs));
        let probe = ffprobe(&r.path);
        assert_eq!(probe.codec, "h264");
        assert_eq!(probe.frames, source_info.frames, "{}", profile.name);
        assert_eq!((probe.width, probe.height), (profile.width, profile.height));
        assert!(
            same_time(probe.start_secs, source_info.first_pts_secs),
            "{probe:?}"
        );
        assert_eq!(probe.audio_codec.as_deref(), Some("aac"), "audio is copied");
    }
}

#[test]
fn a_later_segment_keeps_its_timestamps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whole = clip(dir.path(), "whole.ts", 6, "640x360");
    let whole_info = inspect(&whole).expect("whole");
    let segments = split_segments(&whole, &dir.path().join("segs"), 4.0).expect("split");
    assert_eq!(segments.len(), 2);
    let second = &segments[1];
    assert!(
        (second.start_secs - (whole_info.first_pts_secs + 4.0)).abs() < 1e-3,
        "{second:?}"
    );
    let segment_info = inspect(&second.path).expect("segment");
    let profiles = ladder("360p,240p");
    let renditions = transcode_segment(
        &second.path,
        &profiles,
        &EncoderSelection::software(),
        &dir.path().join("out"),
    )
    .expect("transcodes");
    for (r, profile) in renditions.iter().zip(&profiles) {
        let info = verify_rendition(&segment_info, &r.path, profile).expect("verifies");
        assert!(
            same_time(info.first_pts_secs, second.start_secs),
            "{} starts at {}, segment at {}",
            profile.name,
            info.first_pts_secs,
            second.start_secs
        );
        assert_eq!(info.frames, 60);
    }
}

#[test]
fn a_profile_with_its_own_frame_rate_is_converted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = clip(dir.path(), "segment.ts", 2, "640x360");
    let source_info = inspect(&source).expect("source");
    let mut p15 = Profile::standard("240p").expect("240p");
    p15.fps = 15;
    let renditions = transcode_segment(
        &source,
        std::slice::from_ref(&p15),
        &EncoderSelection::software(),
        &dir.path().join("out"),
    )
    .expect("transcodes");
    assert_eq!(renditions[0].frames, 30);
    let info = verify_rendition(&source_info, &renditions[0].path, &p15).expect("verifies");
    assert!((info.frame_rate - 15.0).abs() < 0.01, "{info:?}");
}

#[test]
fn an_mp4_segment_that_starts_at_zero_keeps_its_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = clip(dir.path(), "segment.mp4", 2, "640x360");
    let source_info = inspect(&source).expect("source");
    let p240 = Profile::standard("240p").expect("240p");
    let renditions = transcode_segment(
        &source,
        std::slice::from_ref(&p240),
        &EncoderSelection::software(),
        &dir.path().join("out"),
    )
    .expect("transcodes");
    let info = verify_rendition(&source_info, &renditions[0].path, &p240).expect("verifies");
    assert!(
        same_time(info.first_pts_secs, source_info.first_pts_secs),
        "rendition starts at {}, source at {}",
        info.first_pts_secs,
        source_info.first_pts_secs
    );
    assert_eq!(
        ffprobe(&renditions[0].path).audio_codec.as_deref(),
        Some("aac")
    );
}

#[test]
fn a_truncated_segment_fails_and_leaves_no_renditions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whole = fs::read(clip(dir.path(), "whole.ts", 2, "640x360")).expect("read");
    let cut = dir.path().join("cut.ts");
    fs::write(&cut, &whole[..whole.len() * 2 / 3]).expect("write");
    let out = dir.path().join("out");
    let err = transcode_segment(
        &cut,
        &ladder("360p,240p"),
        &EncoderSelection::software(),
        &out,
    )
    .expect_err("truncated");
    assert!(matches!(err, MediaError::Truncated { .. }), "{err}");
    let left: Vec<_> = fs::read_dir(&out)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn profile_names_that_are_not_file_names_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut evil = Profile::standard("240p").expect("240p");
    evil.name = "../../etc/x".to_owned();
    let err = transcode_segment(
        &dir.path().join("unused.ts"),
        &[evil],
        &EncoderSelection::software(),
        dir.path(),
    )
    .expect_err("refused");
    assert!(matches!(err, MediaError::ProfileName { .. }), "{err}");
}

#[test]
fn a_hardware_encoder_transcodes_when_this_machine_has_one() {
    let selection = select_encoder(&EncoderChoice::Auto).expect("selection");
    if !selection.hardware {
        eprintln!(
            "no hardware encoder here, not exercised: {}",
            selection.reason
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let source = clip(dir.path(), "segment.ts", 2, "640x360");
    let source_info = inspect(&source).expect("source");
    let profiles = ladder("360p,240p");
    let renditions = transcode_segment(&source, &profiles, &selection, &dir.path().join("out"))
        .expect("hardware transcode");
    for (r, profile) in renditions.iter().zip(&profiles) {
        verify_rendition(&source_info, &r.path, profile).expect("verifies");
    }
}
