//! The README's "Running it by hand" commands, run in order as a new user would on fresh data dirs:
//! the real coordinator, worker and client binaries, and a real clip transcoded to a playable ladder.
//! The commands are read from the README itself, so the documented path cannot rot unnoticed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::browser::repo_root;
use crate::support::{Killed, free_port, http_get, make_clip, probe_video, workspace_binary};

/// The shell lines of the README's "Running it by hand" block, comments dropped.
fn by_hand_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let section = readme
        .split_once("## Running it by hand")
        .expect("README has a by-hand section")
        .1;
    let block = section
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("the by-hand section opens with a sh block")
        .0;
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_readme_by_hand_commands_transcode_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let grpc = format!("127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let dashboard = format!("127.0.0.1:{}", free_port());
    let movie = make_clip(dir.path(), "movie.mp4", 5, "1280x720");
    let (source_frames, ..) = probe_video(&movie);
    let hls = dir.path().join("hls");
    let coordinator_dir = dir.path().join("coordinator");

    // What a reader's machine has that this test's does not: its paths, its ports, its home.
    let localize = |word: &str| -> String {
        let word = word
            .replace("127.0.0.1:7300", &grpc)
            .replace("127.0.0.1:9464", &metrics)
            .replace("127.0.0.1:7400", &dashboard)
            .replace("/var/lib/dualrig", coordinator_dir.to_str().expect("utf-8"))
            .replace("~/", &format!("{}/", home.display()));
        match word.as_str() {
            "movie.mp4" => movie.display().to_string(),
            w if w.starts_with("hls/") => format!("{}/{}", hls.display(), &w["hls/".len()..]),
            w if w.starts_with("target/release/") => {
                workspace_binary(&w["target/release/".len()..])
                    .display()
                    .to_string()
            }
            _ => word,
        }
    };

    let mut servers = Vec::new();
    let mut transcoded = false;
    let mut played = false;
    let mut dashboard_seen = false;
    for line in by_hand_commands() {
        let words: Vec<String> = line.split_whitespace().map(localize).collect();
        let program = line.split_whitespace().next().expect("a command");
        let mut command = Command::new(&words[0]);
        command.args(&words[1..]).env("HOME", &home);
        match program {
            // The test harness built every binary already.
            "cargo" => assert_eq!(line, "cargo build --release --bins"),
            "target/release/dualrig-coordinator" => {
                let log = std::fs::File::create(dir.path().join("coordinator.log")).expect("log");
                servers.push(Killed(
                    command
                        .stdout(log.try_clone().expect("log"))
                        .stderr(log)
                        .spawn()
                        .expect("coordinator starts"),
                ));
                wait_for(&format!("the coordinator's metrics on {metrics}"), || {
                    http_get(&metrics, "/metrics").is_some()
                });
            }
            "target/release/dualrig-worker" => {
                let log = std::fs::File::create(dir.path().join("worker.log")).expect("log");
                servers.push(Killed(
                    command
                        .stdout(log.try_clone().expect("log"))
                        .stderr(log)
                        .spawn()
                        .expect("worker starts"),
                ));
                wait_for("the worker to attach", || {
                    http_get(&metrics, "/metrics").is_some_and(|page| {
                        page.lines().any(|l| l == "dualrig_workers_connected 1")
                    })
                });
                if line.contains("--dashboard-addr") {
                    wait_for("the worker's dashboard to say it is attached", || {
                        dualrig_testkit::http_get_ok(&dashboard, "/api/status")
                            .is_some_and(|reply| reply.body.contains(r#""state":"attached""#))
                    });
                    dashboard_seen = true;
                }
            }
            "target/release/dualrig" => {
                let out = command.stdin(Stdio::null()).output().expect("client runs");
                assert!(
                    out.status.success(),
                    "`{line}` failed:\n{}\n{}\ncoordinator log:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    std::fs::read_to_string(dir.path().join("coordinator.log")).unwrap_or_default()
                );
                transcoded = line.contains(" transcode ");
            }
            // A player is for people; ffprobe reads what it would play.
            "ffplay" => {
                assert!(transcoded, "ffplay comes after the transcode");
                let (frames, width, height) = probe_video(Path::new(&words[1]));
                assert_eq!(frames, source_frames);
                assert_eq!(
                    (width, height),
                    (1280, 720),
                    "the top rendition plays first"
                );
                played = true;
            }
            other => {
                panic!("the README's by-hand block runs `{other}`, which this test does not know")
            }
        }
    }
    assert!(played, "the by-hand block ends by playing the ladder");
    assert!(dashboard_seen, "the by-hand worker serves its dashboard");
    for profile in ["720p", "480p", "360p"] {
        let (frames, ..) = probe_video(&hls.join(profile).join("index.m3u8"));
        assert_eq!(frames, source_frames, "{profile}");
    }
    drop(servers);
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
