//! The product's core path: a whole video through `transcode_file`, two workers, an HLS ladder back.

use dualrig_client::{LadderOptions, transcode_file};
use dualrig_proto::profile::{DEFAULT_LADDER, Profile};

use crate::support::{RunningCoordinator, RunningWorker, make_clip, probe_video, wait_for_workers};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_video_becomes_a_verified_hls_ladder() {
    let media = tempfile::tempdir().expect("tempdir");
    let source = make_clip(media.path(), "clip.mp4", 5, "1280x720");
    let (source_frames, ..) = probe_video(&source);

    let coordinator = RunningCoordinator::start(|_| {}).await;
    let a = RunningWorker::start(&coordinator.url).await;
    let b = RunningWorker::start(&coordinator.url).await;
    let client = coordinator.client().await;
    wait_for_workers(&client, 2).await;

    let profiles = Profile::parse_list(&DEFAULT_LADDER.join(",")).expect("ladder");
    let out = media.path().join("hls");
    let progress = std::sync::Mutex::new(Vec::new());
    let summary = transcode_file(
        &client,
        &source,
        &out,
        &profiles,
        &LadderOptions::default(),
        |done, total| progress.lock().expect("progress").push((done, total)),
    )
    .await
    .expect("ladder comes back");

    assert!(
        summary.segments >= 2,
        "a 5 s clip cut at ~2 s gives several segments"
    );
    let seen = progress.into_inner().expect("progress");
    assert_eq!(seen.last(), Some(&(summary.segments, summary.segments)));
    let by_workers: usize = summary.per_worker.iter().map(|(_, n)| n).sum();
    assert_eq!(by_workers, summary.segments);
    for (worker, _) in &summary.per_worker {
        assert!(
            [a.id.to_hex(), b.id.to_hex()].contains(worker),
            "segment done by unknown worker {worker}"
        );
    }

    let master = std::fs::read_to_string(&summary.master_playlist).expect("master playlist");
    for p in &profiles {
        assert!(
            master.contains(&format!("{}/index.m3u8", p.name)),
            "{master}"
        );
        assert!(
            master.contains(&format!("RESOLUTION={}x{}", p.width, p.height)),
            "{master}"
        );
        let (frames, width, height) = probe_video(&out.join(&p.name).join("index.m3u8"));
        assert_eq!((width, height), (p.width, p.height), "rendition {}", p.name);
        assert_eq!(frames, source_frames, "rendition {} frame count", p.name);
    }
    // Every variant names its codecs (RFC 8216 SHOULD), read from its own rendition.
    for line in master
        .lines()
        .filter(|l| l.starts_with("#EXT-X-STREAM-INF:"))
    {
        assert!(line.contains(",CODECS=\"avc1."), "{line}");
    }
    // The master playlist itself is playable: ffprobe opens it and finds the top rendition.
    let (frames, ..) = probe_video(&summary.master_playlist);
    assert_eq!(frames, source_frames);
    plays_in_a_browser(&out, &profiles, &master).await;

    a.kill().await;
    b.kill().await;
    coordinator.stop().await;
}

/// The ladder in `dir` plays in headless Chromium with hls.js: every rendition listed with its
/// resolution and the codecs the master playlist names, playback advances, and a switch to another
/// rendition shows its pictures while playback goes on.
async fn plays_in_a_browser(dir: &std::path::Path, profiles: &[Profile], master: &str) {
    let dir = dir.to_str().expect("utf-8 path").to_owned();
    let shot = crate::browser::artifacts_dir().join("hls-after-switch.png");
    let report = tokio::task::spawn_blocking(move || {
        crate::browser::run_node("hls_play", &[&dir, shot.to_str().expect("utf-8 path")])
    })
    .await
    .expect("browser");
    let report: serde_json::Value = serde_json::from_str(report.trim()).expect("one JSON report");
    let levels = report["levels"].as_array().expect("levels");
    assert_eq!(levels.len(), profiles.len(), "{report}");
    for p in profiles {
        let level = levels
            .iter()
            .find(|l| l["height"] == p.height)
            .unwrap_or_else(|| panic!("hls.js lists no {}: {report}", p.name));
        assert_eq!(level["width"], p.width, "{report}");
        let codecs = level["codecs"].as_str().expect("codecs");
        assert!(
            master.contains(&format!(
                "RESOLUTION={}x{},CODECS=\"{codecs}\"",
                p.width, p.height
            )),
            "hls.js read codecs {codecs} for {}, not the master playlist's: {master}",
            p.name
        );
        assert!(
            level["videoCodec"]
                .as_str()
                .is_some_and(|c| c.starts_with("avc1.")),
            "{report}"
        );
    }
    let (before, after) = (report["before"].as_f64(), report["after"].as_f64());
    assert!(before.is_some_and(|t| t > 0.5), "{report}");
    assert!(after > before.map(|t| t + 1.0), "{report}");
    let to = report["to"].as_u64().expect("level switched to") as usize;
    assert_ne!(report["from"], report["to"]);
    assert_eq!(report["frame"][1], levels[to]["height"], "{report}");
}
