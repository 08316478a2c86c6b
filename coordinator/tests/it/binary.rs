//! The real `dualrig-coordinator` binary: flags, the address file, metrics and reflection.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{Killed, free_port, http_get};

#[test]
fn binary_serves_grpc_and_metrics_and_writes_its_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = format!("127.0.0.1:{}", free_port());
    let config = dir.path().join("coordinator.toml");
    std::fs::write(&config, "max_attempts = 2\nworker_wait_secs = 1.0\n").expect("config");
    let _child = Killed(
        Command::new(env!("CARGO_BIN_EXE_dualrig-coordinator"))
            .args(["--listen", "127.0.0.1:0", "--metrics-addr", &metrics])
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn coordinator"),
    );
    let addr_file = dir.path().join(dualrig_coordinator::server::ADDR_FILE);
    let mut addr = String::new();
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(&addr_file) {
            addr = text.trim().to_owned();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !addr.is_empty(),
        "coordinator never wrote {}",
        addr_file.display()
    );

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let workers = runtime.block_on(async {
        let client = dualrig_client::DualrigClient::connect(&format!("http://{addr}"))
            .await
            .expect("connect");
        client.list_workers().await.expect("list workers")
    });
    assert!(workers.is_empty());

    let mut page = String::new();
    for _ in 0..100 {
        if let Some(body) = http_get(&metrics, "/metrics")
            && body.contains("dualrig_workers_connected")
        {
            page = body;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        page.contains("dualrig_workers_connected"),
        "metrics page: {page}"
    );
}

#[test]
fn binary_refuses_a_config_it_does_not_understand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "max_atempts = 2\n").expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_dualrig-coordinator"))
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("run coordinator");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("max_atempts"), "{stderr}");
}
