//! The ffmpeg CLI equivalent of a ladder produces the same renditions, structurally.

use std::process::Command;

use dualrig_media::{
    EncoderSelection, ffmpeg_cli_ladder_args, inspect, transcode_segment, verify_rendition,
};
use dualrig_proto::profile::Profile;

use crate::support::{clip, same_time};

#[test]
fn the_cli_ladder_matches_transcode_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = clip(dir.path(), "segment.ts", 2, "640x360");
    let source_info = inspect(&source).expect("source");
    let profiles = Profile::parse_list("360p,240p").expect("ladder");

    let ours = transcode_segment(
        &source,
        &profiles,
        &EncoderSelection::software(),
        &dir.path().join("ours"),
    )
    .expect("transcodes");

    let cli_dir = dir.path().join("cli");
    std::fs::create_dir_all(&cli_dir).expect("mkdir");
    let args = ffmpeg_cli_ladder_args(&source, &profiles, "libx264", &cli_dir);
    let out = Command::new("ffmpeg")
        .args(&args)
        .output()
        .expect("ffmpeg CLI");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    for (r, profile) in ours.iter().zip(&profiles) {
        let cli_path = cli_dir.join(format!("{}.ts", profile.name));
        let cli =
            verify_rendition(&source_info, &cli_path, profile).expect("CLI rendition verifies");
        let mine = inspect(&r.path).expect("ours");
        assert_eq!(cli.frames, mine.frames, "{}", profile.name);
        assert_eq!((cli.width, cli.height), (mine.width, mine.height));
        assert!(
            same_time(cli.first_pts_secs, mine.first_pts_secs),
            "{cli:?} vs {mine:?}"
        );
        assert_eq!(cli.audio_codec, mine.audio_codec);
    }
}
