//! The coordinator binary's metrics right after start, before any worker or job: every series the
//! README lists is there (counters at zero, gauges set, histograms with buckets), nothing else is,
//! and the Grafana dashboard reads only what is exported.

use std::process::{Command, Stdio};

use crate::exposition::{
    COORDINATOR_TABLE, WORKER_TABLE, check_dashboard, check_page_at_start, readme_table, scrape,
};
use crate::support::{Killed, free_port};

#[test]
fn every_documented_series_is_present_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = format!("127.0.0.1:{}", free_port());
    let _coordinator = Killed(
        Command::new(env!("CARGO_BIN_EXE_dualrig-coordinator"))
            .args(["--listen", "127.0.0.1:0", "--metrics-addr", &metrics])
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn coordinator"),
    );
    let answer = scrape(&metrics);
    let exported = check_page_at_start(
        "dualrig-coordinator",
        &answer,
        &readme_table(COORDINATOR_TABLE),
    );
    let page = &answer.1;
    for line in [
        "dualrig_jobs_total{outcome=\"verified\"} 0",
        "dualrig_slashes_total{fault=\"storage_proof\"} 0",
        "dualrig_workers_connected 0",
        "dualrig_content_check_lowest_pass_db NaN",
        "dualrig_job_duration_seconds_bucket{outcome=\"no_worker\",le=\"+Inf\"} 0",
    ] {
        assert!(page.lines().any(|l| l == line), "no {line:?} in\n{page}");
    }
    check_dashboard(
        "dualrig-coordinator",
        &exported,
        &readme_table(WORKER_TABLE),
    );
}

#[test]
fn a_taken_metrics_address_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_dualrig-coordinator"))
        .args(["--listen", "127.0.0.1:0", "--metrics-addr", &addr])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("run coordinator");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot start the metrics endpoint on {addr}")),
        "{stderr}"
    );
}
