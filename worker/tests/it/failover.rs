//! The real `dualrig-worker` binary given two real `dualrig-coordinator` binaries started from one
//! genesis: it serves one, and when that one is killed (SIGKILL) it attaches to the other, finishes a
//! job there, and has the win it made under the dead one paid through the live one. A bad or repeated
//! URL in the list is refused at start, by name.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dualrig_client::{DualrigClient, Payment};
use dualrig_proto::identity::{Identity, PublicId};
use dualrig_proto::ledger_request::Operation;
use dualrig_proto::profile::Profile;
use dualrig_testkit::{Killed, free_port, http_get_ok, wait_for_file};

/// What the payer holds on each ledger, and deposits for tickets.
const DEPOSIT: u64 = 100_000_000;
/// Face value of the worker's tickets; every one wins.
const FACE: u64 = 1_000_000;
/// How long a win waits before its redemption: long enough that the first coordinator is dead by then.
const REDEEM_DELAY_SECS: &str = "30";

/// A `dualrig-coordinator` binary on 127.0.0.1:0; SIGKILLed when dropped.
struct CoordinatorBinary {
    process: Killed,
    url: String,
    dir: PathBuf,
}

impl CoordinatorBinary {
    fn start(dir: PathBuf, genesis: &Path) -> Self {
        std::fs::create_dir_all(&dir).expect("coordinator dir");
        let log = std::fs::File::create(dir.join("coordinator.log")).expect("log file");
        let process = Killed(
            Command::new(sibling_binary("dualrig-coordinator"))
                .args([
                    "--listen",
                    "127.0.0.1:0",
                    "--heartbeat-interval-secs",
                    "0.5",
                ])
                .args(["--min-stake", "0"])
                .arg("--genesis")
                .arg(genesis)
                .arg("--data-dir")
                .arg(&dir)
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .expect("spawn dualrig-coordinator"),
        );
        let addr = wait_for_file(&dir.join(dualrig_coordinator::server::ADDR_FILE));
        Self {
            process,
            url: format!("http://{addr}"),
            dir,
        }
    }

    async fn client(&self) -> DualrigClient {
        DualrigClient::connect(&self.url)
            .await
            .expect("client connects")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("coordinator.log")).unwrap_or_default()
    }
}

/// The `dualrig-worker` binary (libx264, one session, CPU hashing, a dashboard) serving every one
/// of `coordinators`, given as one comma-separated list; SIGKILLed when dropped.
struct WorkerBinary {
    _process: Killed,
    log: PathBuf,
    data: PathBuf,
    dashboard: String,
    id: PublicId,
}

impl WorkerBinary {
    fn start(dir: &Path, coordinators: &[CoordinatorBinary], args: &[&str]) -> Self {
        let data = dir.join("worker");
        std::fs::create_dir_all(&data).expect("data dir");
        let log = dir.join("worker.log");
        let file = std::fs::File::create(&log).expect("log file");
        let list: Vec<&str> = coordinators.iter().map(|c| c.url.as_str()).collect();
        let process = Killed(
            Command::new(env!("CARGO_BIN_EXE_dualrig-worker"))
                .args(["--coordinator", &list.join(",")])
                .args(["--gpu", "off", "--encoder", "libx264", "--sessions", "1"])
                .args(["--dashboard-addr", "127.0.0.1:0"])
                .args(args)
                .arg("--data-dir")
                .arg(&data)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(file)
                .spawn()
                .expect("spawn dualrig-worker"),
        );
        let dashboard = wait_for_file(&data.join(dualrig_worker::dashboard::ADDR_FILE));
        let id = status(&dashboard)["worker_id"]
            .as_str()
            .and_then(|id| hex::decode(id).ok())
            .and_then(|id| PublicId::from_slice("worker", &id).ok())
            .expect("the worker's id");
        Self {
            _process: process,
            log,
            data,
            dashboard,
            id,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The index of the one coordinator that lists the worker, once one does.
    async fn first_attached(&self, coordinators: &[CoordinatorBinary]) -> usize {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let mut attached = Vec::new();
            for (i, coordinator) in coordinators.iter().enumerate() {
                if listed(&coordinator.client().await, &self.id).await {
                    attached.push(i);
                }
            }
            match attached.as_slice() {
                [one] => return *one,
                [] => {}
                both => panic!("attached to {both:?} at once:\n{}", self.log()),
            }
            assert!(Instant::now() < deadline, "never attached:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits, with a generous deadline, until `client`'s coordinator lists the worker.
    async fn wait_listed(&self, client: &DualrigClient, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !listed(client, &self.id).await {
            assert!(Instant::now() < deadline, "never {what}:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits, with a generous deadline, until the log holds a line with `text`.
    async fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(600);
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "never logged {text:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A binary of the workspace built beside the worker's (`cargo build --bins`).
fn sibling_binary(name: &str) -> PathBuf {
    dualrig_testkit::binary_beside(env!("CARGO_BIN_EXE_dualrig-worker"), name)
}

/// The payer's deposit on the ledger behind `client`.
async fn deposit(client: &DualrigClient, payer: &Identity) {
    client
        .execute(payer, Operation::Deposit { amount: DEPOSIT })
        .await
        .expect("deposit");
}

/// Whether `client`'s coordinator lists the worker attached.
async fn listed(client: &DualrigClient, worker: &PublicId) -> bool {
    client
        .list_workers()
        .await
        .is_ok_and(|ws| ws.iter().any(|w| w.worker_id == worker.as_bytes()))
}

fn winners(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("winners"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().len() == 64)
                .count()
        })
        .unwrap_or(0)
}

fn status(dashboard: &str) -> serde_json::Value {
    let body = http_get_ok(dashboard, "/api/status")
        .expect("/api/status answers")
        .body;
    serde_json::from_str(&body).expect("status is JSON")
}

/// A paid 240p job on `client` done by `worker`, its rendition decoded: every frame of the 1 s source,
/// 240 lines high.
async fn paid_job(
    client: &DualrigClient,
    segment: &[u8],
    payment: &Payment,
    label: &str,
    out: &Path,
    worker: &PublicId,
) {
    let profiles = Profile::parse_list("240p").expect("profile");
    let done = tokio::time::timeout(
        Duration::from_secs(600),
        client.transcode_segment_paid(segment.to_vec(), &profiles, label, payment),
    )
    .await
    .expect("the job ends")
    .expect("the paid job is transcoded and verified");
    assert_eq!(done.worker_id, worker.as_bytes(), "done by this worker");
    let [rendition] = done.renditions.as_slice() else {
        panic!("one rendition, got {}", done.renditions.len());
    };
    assert_eq!(rendition.profile, "240p");
    let path = out.join(format!("{label}.ts"));
    std::fs::write(&path, &rendition.data).expect("write rendition");
    let (frames, width, height) = dualrig_testkit::probe_video(&path);
    assert_eq!(frames, 30, "{label}: every source frame decodes");
    assert_eq!(height, 240, "{label}: {width}x{height}");
}

/// Kill -9 of the coordinator a worker serves: the worker attaches to the other one of the same
/// ledger, finishes a paid job there, and the win it made under the dead one is paid through the live
/// one, with the dashboard and the metrics naming the switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_of_two_coordinators_moves_to_the_live_one_when_its_own_is_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let payer = Identity::from_secret([61; 32]);
    let genesis = dir.path().join("genesis.toml");
    std::fs::write(
        &genesis,
        format!(
            "[[accounts]]\nid = \"{}\"\nbalance = {}\n",
            payer.id(),
            DEPOSIT * 2
        ),
    )
    .expect("genesis");
    let mut coordinators = vec![
        CoordinatorBinary::start(dir.path().join("a"), &genesis),
        CoordinatorBinary::start(dir.path().join("b"), &genesis),
    ];
    for coordinator in &coordinators {
        deposit(&coordinator.client().await, &payer).await;
    }

    let metrics = format!("127.0.0.1:{}", free_port());
    let worker = WorkerBinary::start(
        dir.path(),
        &coordinators,
        &[
            "--price-per-unit",
            "1",
            "--ticket-face-value",
            &FACE.to_string(),
            "--ticket-win-prob-one-in",
            "1",
            "--redeem-delay-secs",
            REDEEM_DELAY_SECS,
            "--metrics-addr",
            &metrics,
        ],
    );
    let (data, dashboard, worker_id) = (&worker.data, &worker.dashboard, worker.id);
    let worker_log = || worker.log();
    let first = worker.first_attached(&coordinators).await;
    let expected = dualrig_worker::coordinators::Coordinators::rotation_start(&worker_id, 2);
    assert_eq!(first, expected, "it starts where its key says");
    let attached = status(dashboard);
    assert_eq!(attached["connection"]["state"], "attached");
    assert_eq!(
        attached["connection"]["coordinator"],
        coordinators[first].url.as_str()
    );
    assert_eq!(attached["connection"]["switches"], 0);

    // A paid job under the first coordinator: its winning ticket waits on disk to be redeemed.
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).expect("media dir");
    let clip = dualrig_testkit::lavfi_clip(
        media.join("source.ts"),
        "testsrc2=size=320x240:rate=30",
        None,
        1.0,
    );
    let segment = std::fs::read(&clip).expect("clip");
    let payment = Payment::new(Identity::from_secret([61; 32]), None);
    let nonces = std::sync::Arc::clone(&payment.payer);
    let first_nonce = nonces.lock().expect("payer").next_nonce();
    let client = coordinators[first].client().await;
    paid_job(&client, &segment, &payment, "before", &media, &worker_id).await;
    drop(client);
    let won_before = nonces.lock().expect("payer").next_nonce() - first_nonce;
    assert!(won_before >= 1, "every ticket wins");

    // kill -9 of the coordinator it serves, while the win waits.
    let killed = coordinators.remove(first);
    drop(killed.process);
    assert_eq!(
        winners(data) as u64,
        won_before,
        "the win was still waiting when its coordinator died"
    );
    let live = coordinators.pop().expect("the live coordinator");
    let live_client = live.client().await;
    worker
        .wait_listed(&live_client, "attached to the live coordinator")
        .await;

    // A job submitted there is done and decodes.
    let second_nonce = nonces.lock().expect("payer").next_nonce();
    paid_job(
        &live_client,
        &segment,
        &payment,
        "after",
        &media,
        &worker_id,
    )
    .await;
    let won_after = nonces.lock().expect("payer").next_nonce() - second_nonce;

    // Both wins, the one made under the dead coordinator too, are paid through the live one: its ledger
    // takes their face values from the payer's deposit, once each, and pays the worker.
    let owed = (won_before + won_after) * FACE;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let taken = DEPOSIT
            - live_client
                .account(payer.id())
                .await
                .expect("payer")
                .deposit;
        if taken >= owed && winners(data) == 0 {
            assert_eq!(taken, owed, "each win paid once");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "paid {taken} of {owed}:\n{}\n{}",
            worker_log(),
            live.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let earned = live_client
        .account(worker_id)
        .await
        .expect("worker")
        .balance;
    assert!(earned > 0, "the worker is paid");

    let now = status(dashboard);
    assert_eq!(now["connection"]["state"], "attached", "{now:#}");
    assert_eq!(now["connection"]["coordinator"], live.url.as_str());
    assert_eq!(now["connection"]["switches"], 1, "{now:#}");
    let page = http_get_ok(&metrics, "/metrics").expect("metrics").body;
    for line in [
        "dualrig_worker_coordinator_switches_total 1".to_owned(),
        format!(
            "dualrig_worker_coordinator_attached{{coordinator=\"{}\"}} 1",
            live.url
        ),
    ] {
        assert!(page.lines().any(|l| l == line), "no {line:?} in\n{page}");
    }
    let log = worker_log();
    assert!(
        log.lines()
            .any(|l| l.contains("switched coordinator") && l.contains(&format!("to={}", live.url))),
        "{log}"
    );
}

/// A job running when its coordinator is killed is finished, and its outcome, which has nowhere to
/// go, is dropped with a warning and a count; meanwhile the worker serves the other coordinator.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_whose_coordinator_dies_while_it_runs_is_finished_and_its_outcome_dropped_logged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let genesis = dir.path().join("genesis.toml");
    std::fs::write(&genesis, "").expect("genesis");
    let mut coordinators = vec![
        CoordinatorBinary::start(dir.path().join("a"), &genesis),
        CoordinatorBinary::start(dir.path().join("b"), &genesis),
    ];
    let worker = WorkerBinary::start(dir.path(), &coordinators, &[]);
    let first = worker.first_attached(&coordinators).await;

    // A segment whose 720p and 360p keep libx264 busy for a while.
    let clip = dualrig_testkit::lavfi_clip(
        dir.path().join("long.ts"),
        "testsrc2=size=1280x720:rate=30",
        None,
        8.0,
    );
    let segment = std::fs::read(&clip).expect("clip");
    let client = coordinators[first].client().await;
    let job = tokio::spawn(async move {
        let ladder = Profile::parse_list("720p,360p").expect("ladder");
        client.transcode_segment(segment, &ladder, "cut off").await
    });
    worker.wait_for_log(" transcoding ").await;
    let killed = coordinators.remove(first);
    drop(killed.process);
    assert!(
        !worker.log().contains(" transcoded "),
        "the job ended before its coordinator was killed:\n{}",
        worker.log()
    );
    assert!(job.await.expect("task").is_err(), "its coordinator is gone");

    let live = coordinators.pop().expect("the live coordinator");
    worker
        .wait_listed(&live.client().await, "attached to the live coordinator")
        .await;
    worker.wait_for_log("job outcome not delivered").await;
    let log = worker.log();
    let line = log
        .lines()
        .find(|l| l.contains("job outcome not delivered"))
        .expect("logged");
    assert!(line.contains("outcome=result"), "{line}");
    assert!(
        log.find(" transcoded ") < log.find("job outcome not delivered"),
        "the job ran to its end first:\n{log}"
    );
    let now = status(&worker.dashboard);
    assert_eq!(now["jobs"]["done"], 1, "{now:#}");
    assert_eq!(now["jobs"]["undelivered"], 1, "{now:#}");
}

/// Every URL of the list is checked before anything starts; a bad or repeated one is named, whether
/// it came from a comma list, a repeated flag or the environment.
#[test]
fn a_bad_or_repeated_url_in_the_list_is_refused_at_start_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str], env: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dualrig-worker"));
        command
            .args(args)
            .args(["--gpu", "off"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env_remove("DUALRIG_COORDINATOR");
        if let Some(list) = env {
            command.env("DUALRIG_COORDINATOR", list);
        }
        let out = command.output().expect("run worker");
        assert!(!out.status.success(), "{args:?} {env:?} accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    for (args, env, named) in [
        (
            &["--coordinator", "http://127.0.0.1:1,127.0.0.1:2"][..],
            None,
            "\"127.0.0.1:2\" must be a URL",
        ),
        (
            &[
                "--coordinator",
                "http://127.0.0.1:1,http://127.0.0.1:2",
                "--coordinator",
                "grpc://127.0.0.1:3",
            ][..],
            None,
            "\"grpc://127.0.0.1:3\" must be a URL",
        ),
        (
            &[
                "--coordinator",
                "http://127.0.0.1:1",
                "--coordinator",
                "http://127.0.0.1:1",
            ][..],
            None,
            "\"http://127.0.0.1:1\" is listed twice",
        ),
        (
            &[][..],
            Some("http://127.0.0.1:1,http//127.0.0.1:2"),
            "\"http//127.0.0.1:2\" must be a URL",
        ),
    ] {
        let stderr = run(args, env);
        assert!(stderr.contains(named), "{args:?} {env:?}: {stderr}");
    }
    assert!(
        !dir.path().join("data").join("worker.key").exists(),
        "nothing started"
    );
}
