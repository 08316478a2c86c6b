//! The dashboard of the real `dualrig-worker` binary (`--dashboard-addr`), attached to a real coordinator
//! on 127.0.0.1: `/api/status` carries exactly the documented fields, and headless Chromium shows a real
//! transcode job and a real put as they happen, with no console errors.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dualrig_testkit::{Killed, http_get_ok, wait_for_file};
use serde_json::Value;

const DOC: &str = include_str!("../../../docs/DASHBOARD.md");

/// The fields docs/DASHBOARD.md lists.
fn documented_fields() -> BTreeSet<String> {
    DOC.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(field, _)| field.to_owned())
        .collect()
}

fn status(addr: &str) -> Value {
    let body = http_get_ok(addr, "/api/status")
        .expect("/api/status answers")
        .body;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/api/status is not JSON ({e}): {body}"))
}

/// Waits, with a generous deadline, until the status at `addr` satisfies `done`.
fn wait_for_status(addr: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = status(addr);
        if done(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "never {what}: {now:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The worker binary serving `coordinator` from `data_dir`, its dashboard on a port it picks.
fn start_worker(coordinator: &str, data_dir: &Path, dashboard: &str) -> Killed {
    let log = std::fs::File::create(data_dir.with_extension("log")).expect("log file");
    Killed(
        Command::new(env!("CARGO_BIN_EXE_dualrig-worker"))
            .args(["--coordinator", coordinator, "--dashboard-addr", dashboard])
            .args(["--gpu", "off", "--encoder", "libx264"])
            .args(["--storage-capacity", "64MiB"])
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn dualrig-worker"),
    )
}

async fn start_coordinator(data_dir: PathBuf) -> String {
    let mut config = dualrig_coordinator::Config::local(data_dir);
    config.min_stake = 0;
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.heartbeat_interval = Duration::from_millis(500);
    config.challenge_interval = Duration::from_secs(1);
    config.replicas = 1;
    let coordinator = dualrig_coordinator::Coordinator::bind(config)
        .await
        .expect("coordinator binds");
    let url = format!("http://{}", coordinator.local_addr().expect("addr"));
    tokio::spawn(async move {
        coordinator
            .serve(std::future::pending())
            .await
            .expect("coordinator serves");
    });
    url
}

#[test]
fn the_dashboard_shows_a_job_and_a_put_as_they_happen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("worker");
    std::fs::create_dir_all(&data_dir).expect("data dir");

    // The bench's figures reach the dashboard through the data dir.
    let bench = Command::new(env!("CARGO_BIN_EXE_dualrig-worker"))
        .args([
            "bench", "hash", "--sizes", "64KiB", "--runs", "1", "--gpu", "off",
        ])
        .arg("--data-dir")
        .arg(&data_dir)
        .output()
        .expect("run bench");
    assert!(
        bench.status.success(),
        "bench: {}",
        String::from_utf8_lossy(&bench.stderr)
    );

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let url = runtime.block_on(start_coordinator(dir.path().join("coordinator")));
    let _worker = start_worker(&url, &data_dir, "127.0.0.1:0");
    let addr = wait_for_file(&data_dir.join(dualrig_worker::dashboard::ADDR_FILE));

    let first = wait_for_status(&addr, "attached", |s| {
        s["connection"]["state"] == "attached"
    });
    assert_eq!(first["schema"], "dualrig.worker.status/1");
    assert_eq!(first["connection"]["coordinator"], url.as_str());
    assert_eq!(first["encoder"]["name"], "libx264");
    assert_eq!(first["store"]["capacity_bytes"], 64u64 << 20);
    assert!(
        first["bench"]["hash_gb_per_s"]
            .as_f64()
            .is_some_and(|r| r > 0.0),
        "{first:#}"
    );
    assert!(
        first["worker_id"].as_str().is_some_and(|id| id.len() == 64),
        "{first:#}"
    );
    let documented = documented_fields();
    let live = dualrig_worker::dashboard::status::field_paths(&first);
    let undocumented: Vec<_> = live.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "undocumented fields: {undocumented:?}"
    );

    // The page from the binary; then the browser, which waits for the job and the put below.
    let page = http_get_ok(&addr, "/").expect("the page").body;
    assert!(page.contains("/dashboard.js"), "{page}");
    let artifacts = crate::browser::artifacts_dir();
    let screenshot = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let ready = dir.path().join("browser.ready");
    let browser = {
        let page_url = format!("http://{addr}/");
        let ready = ready.to_str().expect("utf-8 path").to_owned();
        let shot = screenshot.to_str().expect("utf-8 path").to_owned();
        std::thread::spawn(move || {
            crate::browser::run_node("dashboard", &[&page_url, &ready, &shot])
        })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready.exists() {
        assert!(
            !browser.is_finished(),
            "the browser script ended before the page was read"
        );
        assert!(Instant::now() < deadline, "the browser never read the page");
        std::thread::sleep(Duration::from_millis(100));
    }

    let clip = dualrig_testkit::lavfi_clip(
        dir.path().join("segment.ts"),
        "testsrc2=size=320x180:rate=30",
        Some("sine=frequency=440:sample_rate=48000"),
        2.0,
    );
    let blob = dir.path().join("blob.bin");
    std::fs::write(&blob, vec![7u8; 200_000]).expect("blob");
    runtime.block_on(async {
        let client = dualrig_client::DualrigClient::connect(&url)
            .await
            .expect("client connects");
        let profile = dualrig_proto::profile::Profile {
            name: "144p".to_owned(),
            width: 256,
            height: 144,
            fps: 0,
            bitrate: 200_000,
            codec: dualrig_proto::profile::Codec::H264,
        };
        let segment = std::fs::read(&clip).expect("segment");
        client
            .transcode_segment(segment, &[profile], "dashboard")
            .await
            .expect("transcode");
        client.put_file(&blob, 1).await.expect("put");
    });

    let out = browser.join().expect("the browser script ran");
    let seen: Value = out
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("the browser script printed no result: {out}"));
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen:#}");
    assert_eq!(seen["first"]["jobsDone"], 0, "{seen:#}");
    assert!(seen["last"]["jobsDone"].as_u64() >= Some(1), "{seen:#}");
    assert_eq!(seen["first"]["storeUsed"], 0, "{seen:#}");
    assert!(
        seen["last"]["storeUsed"].as_u64() > Some(200_000),
        "{seen:#}"
    );
    assert_eq!(seen["last"]["state"], "attached", "{seen:#}");
    assert!(seen["last"]["benchShown"] == true, "{seen:#}");
    assert!(
        std::fs::metadata(&screenshot).is_ok_and(|m| m.len() > 0),
        "no screenshot at {}",
        screenshot.display()
    );
    println!("dashboard screenshot: {}", screenshot.display());

    // The coordinator's side reaches the dashboard too: the verified result and a passed challenge.
    let last = wait_for_status(&addr, "verified and challenged", |s| {
        s["jobs"]["verified"].as_u64() >= Some(1) && s["challenges"]["pass_rate"] == 1.0
    });
    // One job, however many challenges passed: a passed challenge is no verified job.
    assert_eq!(last["jobs"]["verified"], 1, "{last:#}");
    assert!(
        last["challenges"]["answered"].as_u64() >= Some(1),
        "{last:#}"
    );
    assert!(last["store"]["blobs"] == 1, "{last:#}");
    assert!(last["account"]["round"].is_u64(), "{last:#}");
    assert!(
        last["series"].as_array().is_some_and(|s| !s.is_empty()),
        "{last:#}"
    );
    let live = dualrig_worker::dashboard::status::field_paths(&last);
    let undocumented: Vec<_> = live.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "undocumented fields: {undocumented:?}"
    );
}

#[test]
fn a_dashboard_address_in_use_is_a_startup_error_that_names_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_dualrig-worker"))
        .args([
            "--coordinator",
            "http://127.0.0.1:9",
            "--dashboard-addr",
            &addr,
        ])
        .args(["--gpu", "off", "--encoder", "libx264"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("run dualrig-worker");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot serve the dashboard on {addr}")),
        "{stderr}"
    );
}
