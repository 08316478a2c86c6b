//! The worker binary's metrics right after start, before it ever reaches a coordinator: every series
//! the README lists is there (counters at zero, gauges set, histograms with buckets), nothing else
//! is, and the Grafana dashboard reads only what is exported.

use std::process::{Command, Stdio};

use dualrig_testkit::{Killed, free_port};

// The same reading rules as the coordinator's test of its own page.
#[path = "../../../coordinator/tests/it/exposition.rs"]
mod exposition;

use exposition::{
    COORDINATOR_TABLE, WORKER_TABLE, check_dashboard, check_page_at_start, readme_table, scrape,
};

#[test]
fn every_documented_series_is_present_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = format!("127.0.0.1:{}", free_port());
    // Nothing listens there: the worker keeps retrying, and serves its metrics meanwhile.
    let coordinator = format!("http://127.0.0.1:{}", free_port());
    let _worker = Killed(
        Command::new(env!("CARGO_BIN_EXE_dualrig-worker"))
            .args(["--coordinator", &coordinator, "--metrics-addr", &metrics])
            .args(["--gpu", "off", "--encoder", "libx264"])
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn worker"),
    );
    let answer = scrape(&metrics);
    let exported = check_page_at_start("dualrig-worker", &answer, &readme_table(WORKER_TABLE));
    let page = &answer.1;
    for line in [
        "dualrig_worker_jobs_total{outcome=\"done\"} 0",
        "dualrig_worker_tickets_total{outcome=\"won\"} 0",
        "dualrig_worker_store_blobs 0",
        "dualrig_worker_transcode_seconds_bucket{le=\"+Inf\"} 0",
    ] {
        assert!(page.lines().any(|l| l == line), "no {line:?} in\n{page}");
    }
    check_dashboard(
        "dualrig-worker",
        &exported,
        &readme_table(COORDINATOR_TABLE),
    );
}
