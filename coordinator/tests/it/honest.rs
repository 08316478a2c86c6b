//! Honest work is never slashed: 500 jobs over varied generated content (a test pattern, full-frame
//! noise, a fast pan, a dark scene, a static scene with a small moving part, cellular texture, a fractal
//! zoom), each one content-checked, end with no slash. The real coordinator binary serves them, so its
//! metrics report how many results passed the content check and the lowest score an honest rendition got.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dualrig_client::DualrigClient;
use dualrig_proto::profile::Profile;
use futures::StreamExt;

use crate::support::{
    Killed, RunningWorker, free_port, http_get, list_slashes, make_lavfi_clip, small_profile,
    wait_for_workers,
};

const JOBS: usize = 500;
/// Jobs in flight at once: enough to keep every worker busy while results are verified.
const IN_FLIGHT: usize = 6;

/// Generated content, each clip tiny and reused by many jobs: (name, lavfi graph, seconds).
const CLIPS: &[(&str, &str, f64)] = &[
    ("pattern", "testsrc2=size=160x90:rate=30", 1.0),
    (
        "noise",
        "nullsrc=size=128x72:rate=30,format=yuv420p,geq=lum='random(1)*255':cb=128:cr=128",
        0.6,
    ),
    (
        "fast-pan",
        "testsrc2=size=640x360:rate=30,crop=192:108:x='mod(t*900,448)':y='mod(t*500,252)'",
        0.8,
    ),
    (
        "dark",
        "testsrc2=size=160x90:rate=25,lutyuv=y='16+val*0.12':u=128:v=128",
        0.8,
    ),
    (
        "talking-head",
        "smptehdbars=size=192x108:rate=30[bg];testsrc2=size=48x48:rate=30[fg];\
         [bg][fg]overlay=x='72+12*sin(t*5)':y='30+6*sin(t*7)'",
        1.0,
    ),
    (
        "cells",
        "life=size=160x90:rate=25:mold=10:ratio=0.3:death_color=#202020:life_color=#e0e040,\
         format=yuv420p",
        0.5,
    ),
    ("zoom", "mandelbrot=size=128x72:rate=30,format=yuv420p", 0.4),
];

fn ladders() -> Vec<Vec<Profile>> {
    vec![
        vec![small_profile("90p", 160, 90, 250_000)],
        vec![
            small_profile("108p", 192, 108, 300_000),
            small_profile("54p", 96, 54, 120_000),
        ],
        vec![small_profile("72p", 128, 72, 180_000)],
    ]
}

/// The value of the sample whose line starts with `name` and holds every one of `labels`.
fn sample(page: &str, name: &str, labels: &[&str]) -> Option<f64> {
    page.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|want| l.contains(want)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_honest_jobs_all_content_checked_and_nobody_slashed() {
    let media = tempfile::tempdir().expect("tempdir");
    let segments: Vec<(&str, Vec<u8>)> = CLIPS
        .iter()
        .map(|(name, graph, secs)| {
            let path = make_lavfi_clip(media.path(), &format!("{name}.ts"), graph, *secs);
            (*name, std::fs::read(path).expect("clip"))
        })
        .collect();

    let data = tempfile::tempdir().expect("tempdir");
    let metrics = format!("127.0.0.1:{}", free_port());
    let _coordinator = Killed(
        Command::new(env!("CARGO_BIN_EXE_dualrig-coordinator"))
            .args(["--listen", "127.0.0.1:0", "--metrics-addr", &metrics])
            .args(["--content-check-share", "1.0", "--worker-wait-secs", "30"])
            .args(["--min-stake", "0"])
            .arg("--data-dir")
            .arg(data.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn coordinator"),
    );
    let addr_file = data.path().join(dualrig_coordinator::server::ADDR_FILE);
    let mut addr = String::new();
    for _ in 0..400 {
        if let Ok(text) = std::fs::read_to_string(&addr_file) {
            addr = text.trim().to_owned();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!addr.is_empty(), "the coordinator never wrote its address");
    let url = format!("http://{addr}");
    let client = DualrigClient::connect(&url).await.expect("client");
    let workers = [
        RunningWorker::start(&url).await,
        RunningWorker::start(&url).await,
        RunningWorker::start(&url).await,
    ];
    wait_for_workers(&client, workers.len()).await;

    let ladders = ladders();
    let started = Instant::now();
    let finished: Vec<(usize, usize)> = futures::stream::iter(0..JOBS)
        .map(|i| {
            let client = client.clone();
            let (name, segment) = &segments[i % segments.len()];
            // Each clip meets every ladder in turn.
            let profiles = ladders[(i / segments.len()) % ladders.len()].clone();
            let segment = segment.clone();
            async move {
                let response = tokio::time::timeout(
                    Duration::from_secs(120),
                    client.transcode_segment(segment, &profiles, "honest"),
                )
                .await
                .unwrap_or_else(|_| panic!("job {i} ({name}) hangs"))
                .unwrap_or_else(|e| panic!("job {i} ({name}) fails: {e}"));
                assert_eq!(response.attempts, 1, "job {i} ({name}) needed a retry");
                (response.renditions.len(), profiles.len())
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let elapsed = started.elapsed();
    assert_eq!(finished.len(), JOBS);
    for (got, asked) in &finished {
        assert_eq!(got, asked);
    }

    assert!(
        list_slashes(&url, None).await.is_empty(),
        "an honest worker was slashed"
    );
    let page =
        tokio::task::spawn_blocking(move || http_get(&metrics, "/metrics").expect("metrics page"))
            .await
            .expect("task");
    let content_passes = sample(
        &page,
        "dualrig_verifications_total",
        &["kind=\"content\"", "outcome=\"pass\""],
    );
    assert_eq!(
        content_passes,
        Some(JOBS as f64),
        "every job gets the content check, and passes it"
    );
    let slashes: f64 = page
        .lines()
        .filter(|l| l.starts_with("dualrig_slashes_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(slashes, 0.0, "no slash of any fault");
    let lowest = sample(&page, "dualrig_content_check_lowest_pass_db", &[])
        .expect("the lowest passing content score is published");
    assert!(lowest >= dualrig_media::CONTENT_THRESHOLD_DB);
    eprintln!(
        "{JOBS} honest jobs over {} clips in {:.1} s: lowest honest content score {lowest:.2} dB \
         (threshold {} dB)",
        segments.len(),
        elapsed.as_secs_f64(),
        dualrig_media::CONTENT_THRESHOLD_DB
    );
    for worker in workers {
        worker.kill().await;
    }
}
