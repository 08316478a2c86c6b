//! The real `dualrig-worker` binary serving a real coordinator on loopback: `--sessions auto|N`, the
//! config file, and SIGHUP reloads that change the sessions while jobs run.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dualrig_client::DualrigClient;
use dualrig_coordinator::{Config, Coordinator};
use dualrig_proto::profile::Profile;
use dualrig_proto::v1::{TranscodeResponse, WorkerInfo};
use tokio::sync::oneshot;

/// A coordinator in this process on 127.0.0.1:0 that takes any worker (`min_stake = 0`) and lets jobs
/// queue behind a busy worker for as long as a slow machine needs.
struct TestCoordinator {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl TestCoordinator {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::local(dir.path().to_owned());
        config.listen = "127.0.0.1:0".parse().expect("addr");
        config.min_stake = 0;
        config.heartbeat_interval = Duration::from_millis(500);
        config.worker_wait = Duration::from_secs(30);
        config.job_timeout = Duration::from_secs(600);
        let coordinator = Coordinator::bind(config).await.expect("coordinator binds");
        let url = format!("http://{}", coordinator.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = coordinator
                .serve(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            url,
            stop: Some(stop),
            _dir: dir,
        }
    }

    async fn client(&self) -> DualrigClient {
        DualrigClient::connect(&self.url)
            .await
            .expect("client connects")
    }
}

impl Drop for TestCoordinator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The real worker binary, its stderr in a log file; killed when dropped.
struct WorkerProcess {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl WorkerProcess {
    /// A libx264 worker hashing on the CPU, with extra `args` and `env`.
    fn start(url: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("worker.log");
        let file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_dualrig-worker"));
        command
            .args(["--coordinator", url, "--gpu", "off"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("spawn worker");
        Self {
            child,
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn hang_up(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) only sends a signal; it touches no memory of this process.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::kill(pid, libc::SIGHUP) };
        assert_eq!(rc, 0, "SIGHUP to the worker");
    }

    /// Still running (not ended by the signal or an error).
    fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits until the log holds `count` lines containing `text`.
    async fn wait_for_log(&mut self, text: &str, count: usize) {
        for _ in 0..2400 {
            if self.log().lines().filter(|l| l.contains(text)).count() >= count {
                return;
            }
            assert!(
                self.is_running(),
                "worker ended while waiting for {text:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "worker never logged {text:?} {count} times:\n{}",
            self.log()
        );
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a config file in one step, so a reload never reads half of it.
fn write_config(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).expect("config");
    file.write_all(text.as_bytes()).expect("config");
    file.sync_all().expect("config");
    std::fs::rename(&tmp, path).expect("config");
}

/// A worker binary whose config file says `sessions = N` (libx264), once the coordinator lists it with
/// those sessions.
struct Configured {
    /// Holds the config file.
    dir: tempfile::TempDir,
    /// The config file: rewrite it, then `hang_up` the worker.
    path: PathBuf,
    worker: WorkerProcess,
    /// The coordinator's view of the worker.
    info: WorkerInfo,
}

async fn configured_worker(
    coordinator: &TestCoordinator,
    client: &DualrigClient,
    sessions_in_file: u32,
) -> Configured {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("worker.toml");
    write_config(
        &path,
        &format!("sessions = {sessions_in_file}\nencoder = \"libx264\"\n"),
    );
    let mut worker = WorkerProcess::start(
        &coordinator.url,
        &["--config", path.to_str().expect("utf-8")],
        &[],
    );
    let info = wait_for_worker(client, &mut worker, |w| sessions(w) == sessions_in_file).await;
    Configured {
        dir,
        path,
        worker,
        info,
    }
}

/// Waits until the coordinator lists one worker for which `ready` holds, and returns it.
async fn wait_for_worker(
    client: &DualrigClient,
    worker: &mut WorkerProcess,
    ready: impl Fn(&WorkerInfo) -> bool,
) -> WorkerInfo {
    for _ in 0..2400 {
        let workers = client.list_workers().await.expect("list workers");
        if let [info] = workers.as_slice()
            && ready(info)
        {
            return info.clone();
        }
        assert!(worker.is_running(), "worker ended:\n{}", worker.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the coordinator never listed the worker as expected:\n{}",
        worker.log()
    );
}

fn sessions(info: &WorkerInfo) -> u32 {
    info.capabilities.as_ref().map_or(0, |c| c.sessions)
}

/// A 1280×720 testsrc2 clip of `secs` at 30 fps as MPEG-TS, H.264 with a keyframe a second: a segment
/// whose ladder keeps libx264 busy for a while.
fn make_segment(dir: &Path, secs: u32) -> Vec<u8> {
    let path = dualrig_testkit::lavfi_clip(
        dir.join("segment.ts"),
        "testsrc2=size=1280x720:rate=30",
        None,
        f64::from(secs),
    );
    std::fs::read(path).expect("segment")
}

fn ladder() -> Vec<Profile> {
    Profile::parse_list("720p,360p").expect("ladder")
}

fn submit(
    client: &DualrigClient,
    segment: &[u8],
    label: &'static str,
) -> tokio::task::JoinHandle<Result<TranscodeResponse, dualrig_client::ClientError>> {
    let client = client.clone();
    let segment = segment.to_vec();
    tokio::spawn(async move { client.transcode_segment(segment, &ladder(), label).await })
}

/// A job's answer: verified by the coordinator and checked again by the client, done by `worker` on
/// its first attempt, every rendition there.
async fn assert_verified(
    job: tokio::task::JoinHandle<Result<TranscodeResponse, dualrig_client::ClientError>>,
    worker: &WorkerInfo,
) {
    let response = tokio::time::timeout(Duration::from_secs(600), job)
        .await
        .expect("the job ends")
        .expect("task")
        .expect("the job is verified and returned");
    assert_eq!(response.attempts, 1, "done by the first worker it went to");
    assert_eq!(response.worker_id, worker.worker_id);
    let mut names: Vec<&str> = response
        .renditions
        .iter()
        .map(|r| r.profile.as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["360p", "720p"]);
}

/// A job id from a worker log line inside its job span (`job{id=…}`).
fn job_of(line: &str) -> Option<&str> {
    let rest = &line[line.find("job{id=")? + "job{id=".len()..];
    Some(&rest[..rest.find('}')?])
}

/// The jobs transcoding when `mark` first appears in the log, and the most at once before and after.
struct Concurrency {
    at_mark: usize,
    most_before: usize,
    most_after: usize,
}

fn concurrency(log: &str, mark: &str) -> Concurrency {
    let mut running = std::collections::HashSet::new();
    let mut at_mark = None;
    let (mut most_before, mut most_after) = (0, 0);
    for line in log.lines() {
        if line.contains(mark) && at_mark.is_none() {
            at_mark = Some(running.len());
        }
        if let Some(job) = job_of(line) {
            if line.contains(" transcoding ") {
                running.insert(job.to_owned());
            } else if line.contains(" transcoded ") || line.contains("job failed") {
                running.remove(job);
            }
        }
        let most = if at_mark.is_none() {
            &mut most_before
        } else {
            &mut most_after
        };
        *most = (*most).max(running.len());
    }
    Concurrency {
        at_mark: at_mark.expect("the mark is in the log"),
        most_before,
        most_after,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sighup_grows_the_sessions_while_a_job_runs_and_the_job_is_still_verified() {
    let media = tempfile::tempdir().expect("tempdir");
    let segment = make_segment(media.path(), 8);
    let coordinator = TestCoordinator::start().await;
    let client = coordinator.client().await;

    let Configured {
        dir: _config,
        path: config_path,
        mut worker,
        info,
    } = configured_worker(&coordinator, &client, 1).await;

    // Two jobs: with one session the worker runs one and the other waits at the coordinator.
    let first = submit(&client, &segment, "first");
    let second = submit(&client, &segment, "second");
    worker.wait_for_log(" transcoding ", 1).await;

    write_config(
        &config_path,
        "sessions = 2\nencoder = \"libx264\"\nscrub_interval_secs = 60.0\n",
    );
    worker.hang_up();
    worker.wait_for_log("config reloaded", 1).await;
    let grown = wait_for_worker(&client, &mut worker, |w| sessions(w) == 2).await;
    assert_eq!(grown.worker_id, info.worker_id, "the same connection");

    assert_verified(first, &info).await;
    assert_verified(second, &info).await;
    let idle = wait_for_worker(&client, &mut worker, |w| w.free_sessions == 2).await;
    assert_eq!(sessions(&idle), 2);
    assert_eq!(idle.jobs_done, 2);
    assert!(worker.is_running());

    let log = worker.log();
    let reloaded = log
        .lines()
        .find(|l| l.contains("config reloaded"))
        .expect("reload logged");
    assert!(
        reloaded.contains("sessions_before=1") && reloaded.contains("sessions=2"),
        "{reloaded}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("scrub_interval_secs") && l.contains("next restart")),
        "a key that needs a restart is logged as such:\n{log}"
    );
    let seen = concurrency(&log, "SIGHUP");
    assert_eq!(seen.most_before, 1, "one job at a time before:\n{log}");
    assert_eq!(
        seen.at_mark, 1,
        "the reload came while the first job ran:\n{log}"
    );
    assert_eq!(
        seen.most_after, 2,
        "the waiting job started beside the running one:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sighup_shrinks_the_sessions_letting_running_jobs_finish_and_holding_new_ones() {
    let media = tempfile::tempdir().expect("tempdir");
    let segment = make_segment(media.path(), 4);
    let coordinator = TestCoordinator::start().await;
    let client = coordinator.client().await;

    let Configured {
        dir: _config,
        path: config_path,
        mut worker,
        info,
    } = configured_worker(&coordinator, &client, 2).await;

    let first = submit(&client, &segment, "first");
    let second = submit(&client, &segment, "second");
    worker.wait_for_log(" transcoding ", 2).await;
    write_config(&config_path, "sessions = 1\nencoder = \"libx264\"\n");
    worker.hang_up();
    wait_for_worker(&client, &mut worker, |w| sessions(w) == 1).await;
    // Sent once the coordinator knows of one session: it waits there until both running jobs end.
    let third = submit(&client, &segment, "third");

    assert_verified(first, &info).await;
    assert_verified(second, &info).await;
    assert_verified(third, &info).await;
    let idle = wait_for_worker(&client, &mut worker, |w| w.free_sessions == 1).await;
    assert_eq!((sessions(&idle), idle.jobs_done), (1, 3));

    let log = worker.log();
    assert!(
        log.lines().any(|l| l.contains("config reloaded")
            && l.contains("sessions_before=2")
            && l.contains("sessions=1")),
        "{log}"
    );
    let seen = concurrency(&log, "SIGHUP");
    assert_eq!(seen.at_mark, 2, "both jobs ran at the reload:\n{log}");
    let lines: Vec<&str> = log.lines().collect();
    let hangup = lines
        .iter()
        .position(|l| l.contains("SIGHUP"))
        .expect("SIGHUP logged");
    let third_started = hangup
        + lines[hangup..]
            .iter()
            .position(|l| l.contains(" transcoding "))
            .expect("the third job ran");
    let finished_before = lines[..third_started]
        .iter()
        .filter(|l| l.contains(" transcoded "))
        .count();
    assert_eq!(
        finished_before, 2,
        "the third job started only after both running jobs finished:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sighup_with_a_broken_file_keeps_the_sessions_and_the_worker_up() {
    let media = tempfile::tempdir().expect("tempdir");
    let segment = make_segment(media.path(), 1);
    let coordinator = TestCoordinator::start().await;
    let client = coordinator.client().await;

    let Configured {
        dir: _config,
        path: config_path,
        mut worker,
        info,
    } = configured_worker(&coordinator, &client, 2).await;

    let broken = [
        ("sesions = 3\n", "sesions"),
        ("sessions = 0\n", "sessions"),
        ("sessions = \"many\"\n", "many"),
        ("sessions = [\n", "worker.toml"),
    ];
    for (refusals, (text, named)) in broken.iter().enumerate() {
        write_config(&config_path, text);
        worker.hang_up();
        worker
            .wait_for_log("config reload refused", refusals + 1)
            .await;
        let line = worker
            .log()
            .lines()
            .filter(|l| l.contains("config reload refused"))
            .nth(refusals)
            .expect("refusal logged")
            .to_owned();
        assert!(line.contains(named), "{text:?} named in: {line}");
        assert!(worker.is_running(), "{text:?} ended the worker");
    }
    std::fs::remove_file(&config_path).expect("remove config");
    worker.hang_up();
    worker
        .wait_for_log("config reload refused", broken.len() + 1)
        .await;
    assert!(worker.log().contains("cannot read config file"));

    let kept = wait_for_worker(&client, &mut worker, |_| true).await;
    assert_eq!(sessions(&kept), 2, "the running sessions stay");
    let job = submit(&client, &segment, "after");
    assert_verified(job, &info).await;
    assert!(worker.is_running());
    assert!(!worker.log().contains("config reloaded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_auto_is_the_probed_value_and_flags_win_over_env_and_file() {
    let coordinator = TestCoordinator::start().await;
    let client = coordinator.client().await;

    let mut worker = WorkerProcess::start(&coordinator.url, &["--sessions", "auto"], &[]);
    let info = wait_for_worker(&client, &mut worker, |_| true).await;
    let probed = tokio::task::spawn_blocking(|| {
        dualrig_media::init();
        let encoder = dualrig_media::select_encoder(&dualrig_media::EncoderChoice::Auto)
            .expect("an encoder opens");
        dualrig_worker::slots::initial_sessions(dualrig_worker::config::Sessions::Auto, &encoder)
    })
    .await
    .expect("probe");
    assert_eq!(sessions(&info), probed, "{}", worker.log());
    assert!(worker.log().contains("setting=auto"), "{}", worker.log());
    drop(worker);
    wait_until_no_workers(&client).await;

    // The environment wins over the file, a flag over both.
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("worker.toml");
    write_config(&config_path, "sessions = 1\nencoder = \"libx264\"\n");
    let config = config_path.to_str().expect("utf-8");
    let mut worker = WorkerProcess::start(
        &coordinator.url,
        &["--config", config],
        &[("DUALRIG_SESSIONS", "3")],
    );
    wait_for_worker(&client, &mut worker, |w| sessions(w) == 3).await;
    drop(worker);
    wait_until_no_workers(&client).await;
    let mut worker = WorkerProcess::start(
        &coordinator.url,
        &["--sessions", "4"],
        &[("DUALRIG_SESSIONS", "3"), ("DUALRIG_WORKER_CONFIG", config)],
    );
    wait_for_worker(&client, &mut worker, |w| sessions(w) == 4).await;
}

#[test]
fn sessions_that_are_not_auto_or_a_count_are_refused_naming_the_flag() {
    for bad in ["0", "many", "-2"] {
        let out = Command::new(env!("CARGO_BIN_EXE_dualrig-worker"))
            .args(["--coordinator", "http://127.0.0.1:1"])
            .arg(format!("--sessions={bad}"))
            .output()
            .expect("run worker");
        assert!(!out.status.success(), "--sessions {bad} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--sessions"), "{bad}: {stderr}");
        assert!(stderr.contains("auto"), "{bad}: {stderr}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("worker.toml");
    for (text, named) in [("sessions = 0\n", "sessions"), ("sesions = 2\n", "sesions")] {
        std::fs::write(&config, text).expect("config");
        let out = Command::new(env!("CARGO_BIN_EXE_dualrig-worker"))
            .args(["--coordinator", "http://127.0.0.1:1", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .expect("run worker");
        assert!(!out.status.success(), "{text:?} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(named) && stderr.contains("worker.toml"),
            "{text:?}: {stderr}"
        );
    }
}

async fn wait_until_no_workers(client: &DualrigClient) {
    for _ in 0..2400 {
        if client
            .list_workers()
            .await
            .expect("list workers")
            .is_empty()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("a killed worker stayed listed");
}
