//! `dualrig transcode` carries on where it stopped: killed and run again it keeps the segments it
//! recorded (checked by hash), redoes what changed on disk, refuses another input's directory, and
//! rides out a coordinator killed and started again while segments are in flight.

use crate::support::{
    CoordinatorProcess, RunningWorker, count_frames, finish, jobs_done, make_clip, start_transcode,
    tree_hashes, wait_for_idle_workers, wait_for_recorded,
};

/// The number before `what` in `text` (`"kept 9 of 12"` → 9 for `"kept "`).
fn number_after(text: &str, what: &str) -> Option<usize> {
    let rest = &text[text.find(what)? + what.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_transcode_resumes_keeping_what_it_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("coordinator");
    std::fs::create_dir_all(&data).expect("data dir");
    let coordinator = CoordinatorProcess::start(&data, 0);
    let worker = RunningWorker::start(&coordinator.url).await;
    wait_for_idle_workers(&coordinator.url, 1).await;

    let source = make_clip(dir.path(), "clip.mp4", "testsrc2", 12);
    let source_frames = count_frames(&source);
    let out = dir.path().join("hls");

    // One segment at a time, killed once two are recorded.
    let mut first = start_transcode(&coordinator.url, &source, &out, &["--jobs", "1"]);
    wait_for_recorded(&out, 2).await;
    first.start_kill().expect("SIGKILL dualrig");
    let status = first.wait().await.expect("reap dualrig");
    assert!(!status.success(), "dualrig was killed, not finished");
    let before = jobs_done(&coordinator.url).await;

    let (ok, stdout, stderr) = finish(start_transcode(&coordinator.url, &source, &out, &[])).await;
    assert!(ok, "the re-run completes: {stderr}");
    let total = number_after(&stdout, "").expect("segment count");
    let kept = number_after(&stdout, "kept ").expect("kept count in the output");
    assert!(total >= 10, "a 12 s clip cut at 1 s: {stdout}");
    assert!(kept >= 2 && kept < total, "{stdout}");
    let ran = jobs_done(&coordinator.url).await - before;
    assert_eq!(
        ran,
        (total - kept) as u64,
        "only the segments not kept are sent: {stdout}"
    );
    let playlist = out.join("240p").join("index.m3u8");
    assert_eq!(count_frames(&playlist), source_frames);
    assert_eq!(count_frames(&out.join("master.m3u8")), source_frames);

    // A kept rendition changed on disk is made again, and only it.
    let damaged = out.join("240p").join("seg_00001.ts");
    let mut bytes = std::fs::read(&damaged).expect("read rendition");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&damaged, &bytes).expect("damage rendition");
    let before = jobs_done(&coordinator.url).await;
    let (ok, stdout, stderr) = finish(start_transcode(&coordinator.url, &source, &out, &[])).await;
    assert!(ok, "{stderr}");
    assert_eq!(number_after(&stdout, "kept "), Some(total - 1), "{stdout}");
    assert!(
        stdout.contains("1 recorded segments were missing or changed"),
        "{stdout}"
    );
    assert_eq!(jobs_done(&coordinator.url).await - before, 1);
    assert_eq!(count_frames(&playlist), source_frames);

    // Another input in the same directory is refused before anything there changes.
    let other = make_clip(dir.path(), "other.mp4", "smptebars", 3);
    let untouched = tree_hashes(&out);
    let (ok, _, stderr) = finish(start_transcode(&coordinator.url, &other, &out, &[])).await;
    assert!(!ok, "another input must not mix into {}", out.display());
    assert!(stderr.contains("another input"), "{stderr}");
    assert!(stderr.contains("--fresh"), "{stderr}");
    assert_eq!(
        tree_hashes(&out),
        untouched,
        "nothing in the directory changed"
    );

    // So are other settings; --fresh starts over with them.
    let (ok, _, stderr) = finish(start_transcode(
        &coordinator.url,
        &source,
        &out,
        &["--segment-secs", "2"],
    ))
    .await;
    assert!(!ok);
    assert!(stderr.contains("other settings"), "{stderr}");
    assert_eq!(tree_hashes(&out), untouched);
    let (ok, stdout, stderr) = finish(start_transcode(
        &coordinator.url,
        &other,
        &out,
        &["--fresh"],
    ))
    .await;
    assert!(ok, "{stderr}");
    assert!(!stdout.contains("kept "), "{stdout}");
    assert_eq!(count_frames(&playlist), count_frames(&other));

    worker.stop().await;
    coordinator.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcode_rides_out_a_coordinator_killed_and_restarted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("coordinator");
    std::fs::create_dir_all(&data).expect("data dir");
    let coordinator = CoordinatorProcess::start(&data, 0);
    let (url, port) = (coordinator.url.clone(), coordinator.port);
    let worker = RunningWorker::start(&url).await;
    wait_for_idle_workers(&url, 1).await;

    let source = make_clip(dir.path(), "clip.mp4", "testsrc2", 12);
    let source_frames = count_frames(&source);
    let out = dir.path().join("hls");
    let transcode = start_transcode(&url, &source, &out, &["--jobs", "2", "--retry-secs", "240"]);
    wait_for_recorded(&out, 1).await;

    coordinator.kill();
    let restarted = CoordinatorProcess::start(&data, port);
    assert_eq!(restarted.url, url, "the same address as before");

    let (ok, stdout, stderr) = finish(transcode).await;
    assert!(ok, "the transcode completes across the restart: {stderr}");
    assert!(
        stdout.contains("segments were sent again after the coordinator was unreachable"),
        "segments in flight at the kill were sent again: {stdout}"
    );
    assert_eq!(
        count_frames(&out.join("240p").join("index.m3u8")),
        source_frames
    );
    assert_eq!(count_frames(&out.join("master.m3u8")), source_frames);

    worker.stop().await;
    restarted.kill();
}
