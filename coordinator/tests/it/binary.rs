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

/// Server reflection answers both versions of the protocol: v1 (grpcurl) and v1alpha (Python's
/// stock grpcio-reflection client and older tools), each listing the coordinator's service; the stock
/// Python client itself lists them too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_answers_v1_and_v1alpha_clients() {
    use tonic_reflection::pb::{v1, v1alpha};

    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator = crate::support::CoordinatorProcess::start(dir.path(), &[]);

    let channel = tonic::transport::Channel::from_shared(coordinator.url.clone())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1 reflection")
        .into_inner();
    let answer = answers.message().await.expect("v1 answer").expect("one");
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("v1: not a service list: {answer:?}");
    };
    let v1_names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();

    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1alpha reflection")
        .into_inner();
    let answer = answers
        .message()
        .await
        .expect("v1alpha answer")
        .expect("one");
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("v1alpha: not a service list: {answer:?}");
    };
    let v1alpha_names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();

    // Python's stock client (grpcio-reflection), the one a user reaches for first.
    let target = coordinator.url.trim_start_matches("http://").to_owned();
    let python_names: Vec<String> = tokio::task::spawn_blocking(move || {
        crate::browser::run_python("reflection_list", &[&target])
    })
    .await
    .expect("python")
    .lines()
    .map(str::to_owned)
    .collect();

    for names in [&v1_names, &v1alpha_names, &python_names] {
        assert!(
            names.iter().any(|n| n == "dualrig.v1.Coordinator"),
            "{names:?}"
        );
        assert!(
            names.iter().any(|n| n == "grpc.health.v1.Health"),
            "{names:?}"
        );
    }
}
