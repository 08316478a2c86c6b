//! `split_segments`: keyframe-aligned cuts, continuous timestamps, durations that add up.

use dualrig_media::{
    EncoderSelection, MediaError, inspect, split_segments, transcode_segment, verify_rendition,
};
use dualrig_proto::profile::Profile;

use crate::support::{audio_only, clip, ffprobe, parameter_sets_only_at_start, same_time};

#[test]
fn seven_seconds_are_cut_at_the_two_second_keyframes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = clip(dir.path(), "whole.ts", 7, "640x360");
    let source_info = inspect(&source).expect("source");
    let out = dir.path().join("segs");
    let segments = split_segments(&source, &out, 2.0).expect("split");
    let durations: Vec<f64> = segments.iter().map(|s| s.duration_secs).collect();
    assert_eq!(segments.len(), 4, "{durations:?}");
    for (want, got) in [2.0, 2.0, 2.0, 1.0].iter().zip(&durations) {
        assert!((want - got).abs() < 1e-3, "{durations:?}");
    }
    let total: f64 = durations.iter().sum();
    assert!(
        (total - source_info.duration_secs).abs() < 1e-3,
        "{total} vs {source_info:?}"
    );
    assert!(same_time(
        segments[0].start_secs,
        source_info.first_pts_secs
    ));

    let mut frames = 0;
    for (i, s) in segments.iter().enumerate() {
        assert_eq!(s.index, i);
        assert_eq!(s.path, out.join(format!("seg_{i:05}.ts")));
        assert_eq!(s.bytes, std::fs::metadata(&s.path).expect("segment").len());
        let info = inspect(&s.path).expect("segment decodes on its own");
        assert!(info.starts_with_keyframe, "segment {i}");
        assert!(info.has_audio, "segment {i} has audio");
        assert!(
            same_time(info.first_pts_secs, s.start_secs),
            "segment {i}: {info:?}"
        );
        assert!(
            (info.duration_secs - s.duration_secs).abs() < 1e-3,
            "segment {i}"
        );
        if let Some(next) = segments.get(i + 1) {
            assert!(same_time(s.start_secs + s.duration_secs, next.start_secs));
        }
        assert_eq!(ffprobe(&s.path).frames, info.frames);
        frames += info.frames;
    }
    assert_eq!(frames, source_info.frames);
}

#[test]
fn a_file_shorter_than_the_target_is_one_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = clip(dir.path(), "short.ts", 1, "320x240");
    let segments = split_segments(&source, &dir.path().join("segs"), 2.0).expect("split");
    assert_eq!(segments.len(), 1);
    assert!(
        (segments[0].duration_secs - 1.0).abs() < 1e-3,
        "{segments:?}"
    );
}

#[test]
fn an_mp4_starting_at_zero_is_moved_and_its_segments_transcode_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = clip(dir.path(), "whole.mp4", 3, "320x240");
    let segments = split_segments(&source, &dir.path().join("segs"), 2.0).expect("split");
    assert_eq!(segments.len(), 2);
    assert!(same_time(segments[0].start_secs, 1.4), "{segments:?}");
    let total: f64 = segments.iter().map(|s| s.duration_secs).sum();
    assert!((total - 3.0).abs() < 1e-3, "{segments:?}");
    let p240 = Profile::standard("240p").expect("240p");
    for s in &segments {
        let info = inspect(&s.path).expect("segment");
        let out = transcode_segment(
            &s.path,
            std::slice::from_ref(&p240),
            &EncoderSelection::software(),
            &dir.path().join(format!("out{}", s.index)),
        )
        .expect("transcodes");
        verify_rendition(&info, &out[0].path, &p240).expect("verifies");
    }
}

#[test]
fn a_target_that_is_not_a_positive_length_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for bad in [0.0, -2.0, f64::NAN] {
        let err = split_segments(&dir.path().join("x.ts"), dir.path(), bad).expect_err("bad");
        assert!(matches!(err, MediaError::SegmentLength(_)), "{err}");
    }
}

#[test]
fn audio_alone_cannot_be_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = split_segments(&audio_only(dir.path()), &dir.path().join("segs"), 2.0)
        .expect_err("no video");
    assert!(matches!(err, MediaError::NoVideo { .. }), "{err}");
}

#[test]
fn segments_of_a_stream_that_sends_its_parameter_sets_once_still_decode_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = parameter_sets_only_at_start(dir.path());
    let segments = split_segments(&source, &dir.path().join("segs"), 2.0).expect("split");
    assert_eq!(segments.len(), 3);
    for s in &segments {
        let info = inspect(&s.path).expect("segment decodes on its own");
        assert_eq!(info.frames, 60, "segment {}", s.index);
        assert!(!info.has_audio);
    }
    // A segment without audio transcodes too.
    let last = &segments[2];
    let p240 = Profile::standard("240p").expect("240p");
    let out = transcode_segment(
        &last.path,
        std::slice::from_ref(&p240),
        &EncoderSelection::software(),
        &dir.path().join("out"),
    )
    .expect("transcodes");
    let info = verify_rendition(&inspect(&last.path).expect("segment"), &out[0].path, &p240)
        .expect("verifies");
    assert!(!info.has_audio);
}
