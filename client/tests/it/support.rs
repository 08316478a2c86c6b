//! A test network on 127.0.0.1: the coordinator in a process of its own (so a test can kill it with
//! SIGKILL and start it again on the same port and data dir), in-process workers, generated video, and
//! the real `dualrig` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use dualrig_client::DualrigClient;
use dualrig_client::resume::ResumeRecord;
pub use dualrig_testkit::Killed;
use dualrig_testkit::lavfi_clip;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Set in the coordinator's process: its data dir and the address to listen on.
const COORDINATOR_DIR: &str = "DUALRIG_IT_COORDINATOR_DIR";
const COORDINATOR_LISTEN: &str = "DUALRIG_IT_COORDINATOR_LISTEN";
/// Optional: a coordinator config file whose settings the process takes on top of the test's.
const COORDINATOR_FILE: &str = "DUALRIG_IT_COORDINATOR_FILE";

/// The coordinator's own process: this test binary run again with only this test and the two
/// variables above. It serves the real coordinator until it is killed.
#[test]
#[ignore = "the coordinator's process, started by the tests that need one"]
fn coordinator_process() {
    let Some(dir) = std::env::var_os(COORDINATOR_DIR) else {
        return;
    };
    let listen = std::env::var(COORDINATOR_LISTEN)
        .expect("listen address")
        .parse()
        .expect("a socket address");
    let mut config = dualrig_coordinator::Config::local(PathBuf::from(dir));
    config.min_stake = 0;
    config.listen = listen;
    config.worker_wait = Duration::from_secs(5);
    config.job_timeout = Duration::from_secs(120);
    config.heartbeat_interval = Duration::from_millis(500);
    if let Some(file) = std::env::var_os(COORDINATOR_FILE) {
        let file = dualrig_coordinator::config::FileConfig::load(Path::new(&file))
            .expect("coordinator config file");
        config.merge_file(file).expect("coordinator config merges");
    }
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(dualrig_coordinator::serve(config, std::future::pending()))
        .expect("coordinator serves");
}

/// The coordinator's process on `data_dir`; its URL comes from the address file it writes.
pub struct CoordinatorProcess {
    child: Killed,
    pub url: String,
    pub port: u16,
}

impl CoordinatorProcess {
    /// Listens on 127.0.0.1:`port` (0: any free port).
    pub fn start(data_dir: &Path, port: u16) -> Self {
        Self::start_with(data_dir, port, None)
    }

    /// Like `start`, with the settings of the coordinator config file `file` too.
    pub fn start_with(data_dir: &Path, port: u16, file: Option<&Path>) -> Self {
        let addr_file = data_dir.join(dualrig_coordinator::server::ADDR_FILE);
        let _ = std::fs::remove_file(&addr_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join("coordinator.log"))
            .expect("log file");
        let mut command = Command::new(std::env::current_exe().expect("test binary"));
        command
            .args([
                "support::coordinator_process",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env(COORDINATOR_DIR, data_dir)
            .env(COORDINATOR_LISTEN, format!("127.0.0.1:{port}"));
        if let Some(file) = file {
            command.env(COORDINATOR_FILE, file);
        }
        let child = Killed(
            command
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .expect("spawn the coordinator's process"),
        );
        for _ in 0..600 {
            if let Ok(text) = std::fs::read_to_string(&addr_file)
                && let Ok(addr) = text.trim().parse::<std::net::SocketAddr>()
            {
                return Self {
                    child,
                    url: format!("http://{addr}"),
                    port: addr.port(),
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "coordinator never wrote {}; its log: {}",
            addr_file.display(),
            std::fs::read_to_string(data_dir.join("coordinator.log")).unwrap_or_default()
        );
    }

    /// SIGKILL: no shutdown, no goodbye to anyone connected.
    pub fn kill(mut self) {
        self.child.0.kill().expect("kill the coordinator");
        self.child.0.wait().expect("reap the coordinator");
    }
}

/// A worker in this process that dials the coordinator and dials again (backoff up to half a
/// second) whenever the connection breaks.
pub struct RunningWorker {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl RunningWorker {
    pub async fn start(url: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = dualrig_worker::WorkerConfig::new(url, dir.path().to_owned());
        config.gpu = dualrig_worker::hash::GpuMode::Off;
        config.max_backoff = Duration::from_millis(500);
        let worker = tokio::task::spawn_blocking(move || dualrig_worker::Worker::prepare(config))
            .await
            .expect("prepare task")
            .expect("worker prepares");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(worker.run(async {
            let _ = stopped.await;
        }));
        Self {
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
        self.task.abort();
    }
}

/// Waits until the coordinator at `url` lists `n` workers, every one of them idle.
pub async fn wait_for_idle_workers(url: &str, n: usize) -> Vec<dualrig_proto::v1::WorkerInfo> {
    for _ in 0..1200 {
        if let Ok(client) = DualrigClient::connect(url).await
            && let Ok(workers) = client.list_workers().await
            && workers.len() == n
            && workers
                .iter()
                .all(|w| w.free_sessions == w.capabilities.as_ref().map_or(0, |c| c.sessions))
        {
            return workers;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the coordinator at {url} never listed {n} idle workers");
}

/// Jobs the coordinator's workers finished with a verified result, in all.
pub async fn jobs_done(url: &str) -> u64 {
    wait_for_idle_workers(url, 1)
        .await
        .iter()
        .map(|w| w.jobs_done)
        .sum()
}

/// `secs` of FFmpeg's `graph` test source (e.g. `testsrc2`) at 426x240 and 30 fps, H.264 with a
/// keyframe every second, no audio.
pub fn make_clip(dir: &Path, name: &str, graph: &str, secs: u32) -> PathBuf {
    let video = format!("{graph}=size=426x240:rate=30");
    lavfi_clip(dir.join(name), &video, None, f64::from(secs))
}

/// Frames in the first video stream, decoded by ffprobe (a playlist is followed segment by segment).
pub fn count_frames(path: &Path) -> u64 {
    dualrig_testkit::probe_video(path).0
}

/// `dualrig --coordinator URL transcode INPUT --out OUT --profiles 240p EXTRA…`, with
/// `--segment-secs 1` unless `extra` gives another, started and not waited for.
pub fn start_transcode(
    url: &str,
    input: &Path,
    out: &Path,
    extra: &[&str],
) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_dualrig"))
        .args(["--coordinator", url, "transcode"])
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(["--profiles", "240p"])
        .args(if extra.contains(&"--segment-secs") {
            &[][..]
        } else {
            &["--segment-secs", "1"][..]
        })
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn dualrig")
}

/// Waits for a started `dualrig` (five minutes at most) and returns (success, stdout, stderr).
pub async fn finish(child: tokio::process::Child) -> (bool, String, String) {
    let out = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .expect("dualrig finishes")
        .expect("dualrig runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until `out`'s resume record lists at least `n` finished segments; returns how many it lists.
pub async fn wait_for_recorded(out: &Path, n: usize) -> usize {
    for _ in 0..6000 {
        if let Ok(Some(record)) = ResumeRecord::load(out)
            && record.segments.len() >= n
        {
            return record.segments.len();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} never recorded {n} segments", out.display());
}

/// Every file under `dir` with its BLAKE3, sorted by path.
pub fn tree_hashes(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                found.push((path, blake3::hash(&bytes).to_hex().to_string()));
            }
        }
    }
    found.sort();
    found
}

/// Runs `dualrig --coordinator URL --key KEY ARGS…`; success, stdout and stderr.
pub fn dualrig(url: &str, key: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dualrig"))
        .args(["--coordinator", url, "--key"])
        .arg(key)
        .args(args)
        .env("HOME", key.parent().expect("key dir"))
        .output()
        .expect("run dualrig");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
