//! Test network on 127.0.0.1: a coordinator on port 0, in-process workers, generated video.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dualrig_client::{ClientError, DualrigClient};
use dualrig_coordinator::ledger::Ledger;
use dualrig_coordinator::{Config, Coordinator};
use dualrig_proto::profile::Profile;
use dualrig_proto::v1::TranscodeResponse;
use dualrig_testkit::lavfi_clip;
pub use dualrig_testkit::{Killed, ffmpeg, free_port, http_get, probe_video};
use dualrig_worker::{Worker, WorkerConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A test clip: `secs` of testsrc2 at `size` and 30 fps, a keyframe every second, AAC audio.
pub fn make_clip(dir: &Path, name: &str, secs: u32, size: &str) -> PathBuf {
    let video = format!("testsrc2=size={size}:rate=30");
    lavfi_clip(
        dir.join(name),
        &video,
        Some("sine=frequency=440:sample_rate=48000"),
        f64::from(secs),
    )
}

/// Settings for fast tests: short waits, quick heartbeats, every attached worker eligible whatever its
/// stake (`min_stake = 0`), and no SIP fee or mint share, so payments arrive whole (the SIP's tests
/// turn them on).
pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config::local(data_dir.to_owned());
    config.min_stake = 0;
    config.sip.fee_share_ppm = 0;
    config.sip.mint_share_ppm = 0;
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.worker_wait = Duration::from_secs(2);
    config.job_timeout = Duration::from_secs(120);
    config.heartbeat_interval = Duration::from_millis(500);
    config
}

pub struct RunningCoordinator {
    pub url: String,
    pub addr: std::net::SocketAddr,
    /// The coordinator's own ledger handle, for checks no client can make.
    pub ledger: Arc<Ledger>,
    /// Its storage side: the blob index, challenge rounds and repair.
    pub storage: Arc<dualrig_coordinator::storage::BlobService>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// Held so the data dir lives as long as the coordinator (when the coordinator made it).
    dir: Option<tempfile::TempDir>,
}

impl RunningCoordinator {
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut running = Self::start_at(dir.path(), tweak).await;
        running.dir = Some(dir);
        running
    }

    /// A coordinator on `data_dir`, which outlives it: a later one on the same dir is a restart.
    pub async fn start_at(data_dir: &Path, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config(data_dir);
        tweak(&mut config);
        let coordinator = Coordinator::bind(config).await.expect("coordinator binds");
        let ledger = coordinator.ledger();
        let storage = coordinator.storage();
        let addr = coordinator.local_addr().expect("addr");
        let url = format!("http://{addr}");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            coordinator
                .serve(async {
                    let _ = stopped.await;
                })
                .await
                .expect("coordinator serves");
        });
        Self {
            url,
            addr,
            ledger,
            storage,
            stop: Some(stop),
            task: Some(task),
            dir: None,
        }
    }

    pub async fn client(&self) -> DualrigClient {
        DualrigClient::connect(&self.url)
            .await
            .expect("client connects")
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("coordinator shuts down with workers attached")
                .expect("coordinator task");
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

pub struct RunningWorker {
    pub id: dualrig_proto::identity::PublicId,
    /// The worker's blob store, for tests that damage or inspect it.
    pub store: Arc<dualrig_worker::store::BlobStore>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    dir: tempfile::TempDir,
}

impl RunningWorker {
    pub async fn start(url: &str) -> Self {
        Self::start_with(url, |_| {}).await
    }

    /// A worker whose settings `tweak` changes first.
    pub async fn start_with(url: &str, tweak: impl FnOnce(&mut WorkerConfig)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = WorkerConfig::new(url, dir.path().to_owned());
        tweak(&mut config);
        let worker = tokio::task::spawn_blocking(move || Worker::prepare(config))
            .await
            .expect("prepare task")
            .expect("worker prepares");
        let selected = &worker.capabilities().selected_encoder;
        let reason = &worker.capabilities().encoder_reason;
        if !selected.contains("nvenc") && !selected.contains("vaapi") && !selected.contains("qsv") {
            eprintln!("hardware encode path not exercised: worker uses {selected} ({reason})");
        }
        let id = worker.id();
        let store = Arc::clone(worker.store());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(worker.run(async {
            let _ = stopped.await;
        }));
        Self {
            id,
            store,
            stop: Some(stop),
            task,
            dir,
        }
    }

    /// The worker's key file.
    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("worker.key")
    }

    /// The worker's data dir.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the worker keeps blob `root` on disk.
    pub fn blob_path(&self, root: &blake3::Hash) -> PathBuf {
        self.dir.path().join("blobs").join(root.to_hex().as_str())
    }

    /// Stops the worker at once, as a crash would: its connection closes and it answers nothing more.
    pub async fn kill(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
        self.task.abort();
    }
}

/// Waits until the coordinator lists `n` workers.
pub async fn wait_for_workers(client: &DualrigClient, n: usize) {
    for _ in 0..400 {
        if client.list_workers().await.expect("list workers").len() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("coordinator never listed {n} workers");
}

/// Writes a genesis file that gives each account its balance in base units.
pub fn write_genesis(path: &Path, accounts: &[(dualrig_proto::identity::PublicId, u64)]) {
    let text: String = accounts
        .iter()
        .map(|(id, balance)| format!("[[accounts]]\nid = \"{id}\"\nbalance = {balance}\n\n"))
        .collect();
    std::fs::write(path, text).expect("write genesis");
}

/// A job submitted in the background, as a client waiting for its ladder.
pub type SubmittedJob = JoinHandle<Result<TranscodeResponse, ClientError>>;

/// Submits `segment` for `profiles` without waiting, so the test can act on workers meanwhile.
pub fn submit(
    client: &DualrigClient,
    segment: &[u8],
    profiles: &[Profile],
    label: &'static str,
) -> SubmittedJob {
    let client = client.clone();
    let profiles = profiles.to_vec();
    let segment = segment.to_vec();
    tokio::spawn(async move { client.transcode_segment(segment, &profiles, label).await })
}

/// Waits for a submitted job: a hang or a task failure fails the test; the job's own outcome is returned.
pub async fn outcome(job: SubmittedJob) -> Result<TranscodeResponse, ClientError> {
    tokio::time::timeout(Duration::from_secs(120), job)
        .await
        .expect("nothing hangs")
        .expect("task")
}

/// A clip from any lavfi filtergraph (`graph` yields the video), `secs` long at its own rate, H.264 with
/// a keyframe every 30 frames and no audio, as MPEG-TS.
pub fn make_lavfi_clip(dir: &Path, name: &str, graph: &str, secs: f64) -> PathBuf {
    lavfi_clip(dir.join(name), graph, None, secs)
}

/// A small H.264 rung that keeps the source's frame rate.
pub fn small_profile(name: &str, width: u32, height: u32, bitrate: u64) -> Profile {
    Profile {
        name: name.to_owned(),
        width,
        height,
        fps: 0,
        bitrate,
        codec: dualrig_proto::profile::Codec::H264,
    }
}

/// Every slash the coordinator at `url` lists (one worker's with `worker`), with its evidence, following
/// `ListSlashes`'s pages.
pub async fn list_slashes(
    url: &str,
    worker: Option<dualrig_proto::identity::PublicId>,
) -> Vec<dualrig_proto::v1::SlashEntry> {
    list_slashes_paged(url, worker, 0).await
}

/// [`list_slashes`] in pages of `page_size` (0: the coordinator's default).
pub async fn list_slashes_paged(
    url: &str,
    worker: Option<dualrig_proto::identity::PublicId>,
    page_size: u32,
) -> Vec<dualrig_proto::v1::SlashEntry> {
    let mut api = dualrig_proto::v1::coordinator_client::CoordinatorClient::connect(url.to_owned())
        .await
        .expect("connect")
        .max_decoding_message_size(dualrig_proto::MAX_MESSAGE_BYTES);
    let mut all = Vec::new();
    let mut page_token = Vec::new();
    loop {
        let page = api
            .list_slashes(dualrig_proto::v1::ListSlashesRequest {
                worker: worker.map(|w| w.as_bytes().to_vec()).unwrap_or_default(),
                page_token,
                page_size,
                with_evidence: true,
            })
            .await
            .expect("ListSlashes")
            .into_inner();
        assert!(page_size == 0 || page.slashes.len() <= page_size as usize);
        all.extend(page.slashes);
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}

/// Waits until `worker` holds a job (no free session), so the test can act on it mid-job.
pub async fn wait_until_holding(
    client: &DualrigClient,
    worker: &dualrig_proto::identity::PublicId,
) {
    for _ in 0..3000 {
        let listed = client.list_workers().await.expect("list workers");
        if listed
            .iter()
            .any(|w| w.worker_id == worker.as_bytes() && w.free_sessions == 0)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("worker {} never took a job", worker.short());
}

/// The real `dualrig-coordinator` binary on 127.0.0.1:0 with `data_dir` and extra `args`, every
/// attached worker eligible (`--min-stake 0`) unless `args` says otherwise; its gRPC URL comes from
/// the address file it writes. Killed (SIGKILL) when dropped.
pub struct CoordinatorProcess {
    pub child: Killed,
    pub url: String,
}

impl CoordinatorProcess {
    pub fn start(data_dir: &Path, args: &[&str]) -> Self {
        let addr_file = data_dir.join(dualrig_coordinator::server::ADDR_FILE);
        let _ = std::fs::remove_file(&addr_file);
        let log = std::fs::File::create(data_dir.join("coordinator.log")).expect("log file");
        // Wrapped at once so every path kills and reaps it.
        let child = Killed(
            std::process::Command::new(env!("CARGO_BIN_EXE_dualrig-coordinator"))
                .args([
                    "--listen",
                    "127.0.0.1:0",
                    "--heartbeat-interval-secs",
                    "0.5",
                ])
                .args(["--min-stake", "0"])
                .arg("--data-dir")
                .arg(data_dir)
                .args(args)
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .expect("spawn coordinator"),
        );
        for _ in 0..400 {
            if let Ok(text) = std::fs::read_to_string(&addr_file)
                && !text.trim().is_empty()
            {
                return Self {
                    child,
                    url: format!("http://{}", text.trim()),
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("coordinator never wrote {}", addr_file.display());
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Resident memory now, in bytes (`VmRSS` of /proc).
    pub fn rss_bytes(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS")
            * 1024
    }

    /// CPU time used so far (user + system), in seconds.
    pub fn cpu_secs(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("stat");
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .expect("stat format")
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        ticks as f64 / 100.0
    }
}

/// A binary of the workspace, built next to this package's own by `cargo test --workspace`.
pub fn workspace_binary(name: &str) -> PathBuf {
    dualrig_testkit::binary_beside(env!("CARGO_BIN_EXE_dualrig-coordinator"), name)
}

/// Stores `bytes` as a file in `dir` and puts it with `replicas` copies, waiting for the workers to
/// report room first.
pub async fn put_bytes(
    client: &DualrigClient,
    dir: &Path,
    bytes: &[u8],
    replicas: u32,
) -> dualrig_client::blobs::PutSummary {
    let path = dir.join(format!("blob-{}", blake3::hash(bytes).to_hex()));
    std::fs::write(&path, bytes).expect("write blob");
    for _ in 0..200 {
        match client.put_file(&path, replicas).await {
            Ok(stored) => return stored,
            Err(e) if e.code() == Some(tonic::Code::FailedPrecondition) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("put: {e}"),
        }
    }
    panic!("the workers never reported room for the blob");
}

/// A quote for `profiles` over a segment of `segment_size` bytes: its id and the drawn worker's params.
pub async fn quote(
    api: &mut dualrig_proto::v1::coordinator_client::CoordinatorClient<tonic::transport::Channel>,
    profiles: &[dualrig_proto::profile::Profile],
    segment_size: usize,
) -> (String, dualrig_proto::ticket::TicketParams) {
    let quote = api
        .quote(dualrig_proto::v1::QuoteRequest {
            profiles: profiles.iter().map(|p| p.to_wire()).collect(),
            segment_size: segment_size as u64,
        })
        .await
        .expect("quote")
        .into_inner();
    let params = dualrig_proto::ticket::TicketParams::try_from(
        quote.params.as_ref().expect("quoted params"),
    )
    .expect("params");
    (quote.quote_id, params)
}

/// A half-second 160×90 segment, written in `dir`, and a ladder of one 128×72 rendition: a job that
/// is real video yet cheap to transcode and verify.
pub fn tiny_job(dir: &Path) -> (Vec<u8>, Vec<Profile>) {
    let clip = make_lavfi_clip(
        dir,
        "src.ts",
        "testsrc2=size=160x90:rate=30,format=yuv420p",
        0.5,
    );
    let segment = std::fs::read(&clip).expect("segment");
    (segment, vec![small_profile("72p", 128, 72, 180_000)])
}

/// A file of `len` seeded random bytes (cheap: one RNG pass).
pub fn random_file(dir: &Path, name: &str, len: u64, seed: u64) -> PathBuf {
    use rand::{Rng, SeedableRng};
    use std::io::Write;

    let path = dir.join(name);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    let mut left = len;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        out.write_all(&buf[..n]).expect("write");
        left -= n as u64;
    }
    out.flush().expect("flush");
    path
}

/// The BLAKE3 of the file at `path`.
pub fn file_hash(path: &Path) -> blake3::Hash {
    blake3::Hasher::new()
        .update_mmap(path)
        .expect("hash file")
        .finalize()
}
