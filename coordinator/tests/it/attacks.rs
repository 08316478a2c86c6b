//! Attacks by a peer with nothing but the .proto and a throwaway key, mounted for real against the
//! `dualrig-coordinator` binary on 127.0.0.1: each test asserts the honest side's outcome (stake and
//! slashes unchanged, blobs held and fetchable, other clients served) and the resources the attack
//! could take.

use std::path::Path;
use std::time::Duration;

use dualrig_client::DualrigClient;
use dualrig_proto::v1::GetRequest;
use dualrig_proto::v1::coordinator_client::CoordinatorClient;

use crate::support::{
    CoordinatorProcess, RunningWorker, free_port, http_get, list_slashes, put_bytes,
    wait_for_workers,
};

/// The value of the counter `name{labels}` on a Prometheus page, 0 when absent.
fn counter(page: &str, name: &str, labels: &str) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            (series.starts_with(name) && series.contains(labels)).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

/// Slow downloaders: a client opens Get streams for a blob an honest worker holds and never reads
/// them (its HTTP/2 windows stay shut). The worker's challenge answers still arrive in time, so it is
/// neither slashed nor struck, and another client fetches the blob meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_that_never_read_get_no_holder_slashed() {
    const STALLED: usize = 6;
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = format!("127.0.0.1:{}", free_port());
    let coordinator = CoordinatorProcess::start(
        dir.path(),
        &[
            "--metrics-addr",
            &metrics,
            "--challenge-interval-secs",
            "0.5",
            "--challenge-deadline-secs",
            "3",
        ],
    );
    let client = DualrigClient::connect(&coordinator.url)
        .await
        .expect("connect");
    let holder = RunningWorker::start(&coordinator.url).await;
    wait_for_workers(&client, 1).await;
    let bytes: Vec<u8> = (0..6u32 << 20).map(|i| (i ^ (i >> 11)) as u8).collect();
    let stored = put_bytes(&client, dir.path(), &bytes, 1).await;

    // The attack: several Gets, each on its own connection, none ever read past its headers.
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        let mut api = CoordinatorClient::connect(coordinator.url.clone())
            .await
            .expect("connect");
        let stream = api
            .get(GetRequest {
                root: stored.root.as_bytes().to_vec(),
                ..GetRequest::default()
            })
            .await
            .expect("the Get starts")
            .into_inner();
        stalled.push((api, stream));
    }

    // Meanwhile another client reads the whole blob.
    let out = dir.path().join("fetched");
    client
        .get_to_file(*stored.root.as_bytes(), 0, None, &out)
        .await
        .expect("an honest reader is served while others stall");
    assert_eq!(std::fs::read(&out).expect("fetched"), bytes);

    // Challenge rounds go on while the stalled streams stay open: wait for twelve of them to pass.
    let mut passed = 0.0;
    for _ in 0..600 {
        let page = http_get(&metrics, "/metrics").unwrap_or_default();
        passed = counter(
            &page,
            "dualrig_storage_challenges_total",
            "outcome=\"passed\"",
        );
        let failed = counter(
            &page,
            "dualrig_storage_challenges_total",
            "outcome=\"failed\"",
        ) + counter(
            &page,
            "dualrig_storage_challenges_total",
            "outcome=\"late\"",
        );
        assert_eq!(
            failed, 0.0,
            "a challenge failed while readers stalled:\n{page}"
        );
        if passed >= 12.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        passed >= 12.0,
        "challenge rounds did not run ({passed} passed)"
    );
    assert!(list_slashes(&coordinator.url, None).await.is_empty());
    let listed = client.list_blobs().await.expect("ls");
    let blob = listed
        .iter()
        .find(|b| b.root == stored.root.as_bytes().to_vec())
        .expect("the blob is still indexed");
    assert_eq!(blob.holders, vec![holder.id.as_bytes().to_vec()]);
    drop(stalled);
    holder.kill().await;
}

/// Registers a fresh key as a worker the way any peer can (Hello, then Register with the nonce
/// signed), claiming capabilities whose `encoder_reason` is `reason_len` bytes long. Returns the client
/// it used and the coordinator's answer.
async fn register_fresh_key(
    url: &str,
    reason_len: usize,
) -> (
    CoordinatorClient<tonic::transport::Channel>,
    Result<dualrig_proto::v1::RegisterResponse, tonic::Status>,
) {
    register_key(
        url,
        &dualrig_proto::identity::Identity::generate(),
        reason_len,
    )
    .await
}

/// [`register_fresh_key`] with a given key.
async fn register_key(
    url: &str,
    key: &dualrig_proto::identity::Identity,
    reason_len: usize,
) -> (
    CoordinatorClient<tonic::transport::Channel>,
    Result<dualrig_proto::v1::RegisterResponse, tonic::Status>,
) {
    use dualrig_proto::identity::registration_message;
    use dualrig_proto::v1::{Capabilities, HelloRequest, RegisterRequest};

    let mut api = CoordinatorClient::connect(url.to_owned())
        .await
        .expect("connect")
        .max_encoding_message_size(usize::MAX);
    let hello = api
        .hello(HelloRequest {
            for_get: false,
            worker_id: key.id().as_bytes().to_vec(),
        })
        .await
        .expect("hello")
        .into_inner();
    let registered = api
        .register(RegisterRequest {
            worker_id: key.id().as_bytes().to_vec(),
            signature: key
                .sign(&registration_message(&hello.nonce, &key.id()))
                .to_vec(),
            nonce: hello.nonce,
            capabilities: Some(Capabilities {
                encoder_reason: "x".repeat(reason_len),
                sessions: 1,
                max_width: 1920,
                max_height: 1080,
                ..Capabilities::default()
            }),
            version: "attack".into(),
        })
        .await
        .map(tonic::Response::into_inner);
    (api, registered)
}

/// Oversized messages: Register calls carrying 40 MiB of capabilities are refused from their frame
/// header, so the coordinator neither holds them nor logs them, and ListWorkers and an honest worker
/// are unaffected; a field over its bound inside a small message is refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_registrations_cost_no_memory_and_break_nothing() {
    const HUGE: usize = 40 << 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator = CoordinatorProcess::start(dir.path(), &[]);
    let client = DualrigClient::connect(&coordinator.url)
        .await
        .expect("connect");
    let honest = RunningWorker::start(&coordinator.url).await;
    wait_for_workers(&client, 1).await;
    let rss_before = coordinator.rss_bytes();

    let register = |reason_len: usize| {
        let url = coordinator.url.clone();
        async move { register_fresh_key(&url, reason_len).await.1.map(|_| ()) }
    };
    for _ in 0..8 {
        let err = register(HUGE).await.expect_err("40 MiB of capabilities");
        assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
        assert!(err.message().contains("Register"), "{err}");
    }
    let err = register(10_000).await.expect_err("a 10 kB reason");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    assert!(err.message().contains("encoder_reason"), "{err}");
    register(200)
        .await
        .expect("an ordinary registration goes through");

    let grown = coordinator.rss_bytes().saturating_sub(rss_before);
    eprintln!("RSS grew {grown} bytes over 8 × 40 MiB registrations");
    assert!(grown < 16 << 20, "RSS grew {grown} bytes");
    let log = std::fs::metadata(dir.path().join("coordinator.log"))
        .expect("log")
        .len();
    assert!(log < 256 << 10, "the log holds {log} bytes");
    let workers = client
        .list_workers()
        .await
        .expect("ListWorkers still works");
    assert!(workers.iter().any(|w| w.worker_id == honest.id.as_bytes()));
    honest.kill().await;
}

/// Paid work with no funds: a key with no balance and no deposit signs tickets for a paid job. The
/// coordinator refuses it on the header, naming the deposit needed, so no worker does any work and
/// the ledger does not move; nor does a payment whose tickets come from two senders. The same job from
/// a funded sender goes through. A configuration whose
/// tickets would outlive a sender's unlock is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unfunded_sender_buys_no_work() {
    use dualrig_proto::identity::Identity;
    use dualrig_proto::ledger_request::Operation;

    const FACE: u64 = 1_000_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let funded = Identity::from_secret([42; 32]);
    let genesis = dir.path().join("genesis.toml");
    crate::support::write_genesis(&genesis, &[(funded.id(), 100 * FACE)]);
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");

    // Tickets valid as long as the unlock: refused before it serves.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_dualrig-coordinator"))
        .args(["--listen", "127.0.0.1:0", "--unlock-rounds", "10"])
        .args(["--ticket-validity-rounds", "10"])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("run coordinator");
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("ticket_validity_rounds"), "{said}");

    let genesis_arg = genesis.to_str().expect("utf-8").to_owned();
    let coordinator = CoordinatorProcess::start(&data, &["--genesis", &genesis_arg]);
    let client = DualrigClient::connect(&coordinator.url)
        .await
        .expect("connect");
    let worker = RunningWorker::start_with(&coordinator.url, |w| {
        w.price_per_unit = 1;
        w.ticket_face_value = FACE;
        w.ticket_win_prob_one_in = 1;
    })
    .await;
    wait_for_workers(&client, 1).await;
    let clip = crate::support::make_clip(dir.path(), "paid.ts", 1, "320x240");
    let segment = std::fs::read(&clip).expect("read clip");
    let profiles = dualrig_proto::profile::Profile::parse_list("240p").expect("profile");

    let throwaway = Identity::from_secret([41; 32]);
    let payment = dualrig_client::Payment::new(Identity::from_secret([41; 32]), None);
    let err = client
        .transcode_segment_paid(segment.clone(), &profiles, "unfunded", &payment)
        .await
        .expect_err("an unfunded sender is refused");
    assert_eq!(err.code(), Some(tonic::Code::FailedPrecondition), "{err}");
    assert!(
        err.to_string().contains("needs a deposit of at least"),
        "{err}"
    );
    // One payment, two senders (each could claim the other covers the job): refused on the header.
    let mut quoter = CoordinatorClient::connect(coordinator.url.clone())
        .await
        .expect("connect");
    let (quote_id, params) = crate::support::quote(&mut quoter, &profiles, segment.len()).await;
    let other = Identity::from_secret([43; 32]);
    let mut tickets = Vec::new();
    for sender in [&throwaway, &other] {
        tickets.extend(
            dualrig_proto::ticket::TicketPayer::new()
                .pay_for_units(sender, &params, 1_000_000)
                .expect("tickets"),
        );
    }
    let header = dualrig_proto::v1::TranscodeHeader {
        profiles: profiles.iter().map(|p| p.to_wire()).collect(),
        segment_size: segment.len() as u64,
        label: "mixed senders".into(),
        quote_id,
        payment: tickets.iter().map(Into::into).collect(),
    };
    let err = client
        .transcode_raw(header, segment.clone())
        .await
        .expect_err("mixed senders are refused");
    assert_eq!(err.code(), Some(tonic::Code::FailedPrecondition), "{err}");
    assert!(
        err.to_string().contains("one payment has one sender"),
        "{err}"
    );

    let listed = client.list_workers().await.expect("workers");
    assert_eq!((listed[0].jobs_done, listed[0].jobs_failed), (0, 0));
    for account in [throwaway.id(), other.id(), worker.id] {
        let info = client.account(account).await.expect("account");
        assert_eq!((info.balance, info.deposit, info.nonce), (0, 0, 0));
    }

    // The ordinary request: a funded sender's job is done and paid.
    client
        .execute(&funded, Operation::Deposit { amount: 50 * FACE })
        .await
        .expect("deposit");
    let payment = dualrig_client::Payment::new(Identity::from_secret([42; 32]), None);
    let done = client
        .transcode_segment_paid(segment, &profiles, "funded", &payment)
        .await
        .expect("a funded sender's job goes through");
    assert_eq!(done.worker_id, worker.id.as_bytes().to_vec());
    worker.kill().await;
}

/// An unauthenticated CPU bomb: a 48 KB MP4 that declares 1200 frames of 4096x2304 is refused from
/// its header, and an MPEG-TS whose timestamps say as much is refused the same way (one that hid it
/// would stop decoding at the segment's budget: media's unit tests); neither
/// costs the coordinator more CPU than a few ordinary jobs, and an ordinary job is served after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_segment_that_declares_hours_of_4k_costs_a_bounded_share_of_a_core() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator = CoordinatorProcess::start(dir.path(), &[]);
    let client = DualrigClient::connect(&coordinator.url)
        .await
        .expect("connect");
    let worker = RunningWorker::start(&coordinator.url).await;
    wait_for_workers(&client, 1).await;
    let clip = crate::support::make_clip(dir.path(), "ordinary.ts", 2, "320x240");
    let ordinary = std::fs::read(&clip).expect("clip");
    let profiles = dualrig_proto::profile::Profile::parse_list("240p").expect("profile");

    let before = coordinator.cpu_secs();
    client
        .transcode_segment(ordinary.clone(), &profiles, "ordinary")
        .await
        .expect("an ordinary job");
    let ordinary_cpu = coordinator.cpu_secs() - before;

    let mut bomb_cpu = Vec::new();
    for (name, said) in [
        (
            "declares-1200-frames-of-4096x2304.mp4",
            "declares 1200 frames",
        ),
        // MPEG-TS declares no frame count; its duration is estimated from its timestamps.
        ("300-frames-of-4096x2304.ts", "frames of 4096x2304"),
    ] {
        let bomb = std::fs::read(data.join(name)).expect("fixture");
        let before = coordinator.cpu_secs();
        let err = client
            .transcode_segment(bomb, &profiles, name)
            .await
            .expect_err("the bomb is refused");
        bomb_cpu.push(coordinator.cpu_secs() - before);
        assert_eq!(
            err.code(),
            Some(tonic::Code::InvalidArgument),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(said), "{name}: {err}");
    }
    eprintln!("coordinator CPU: ordinary job {ordinary_cpu:.2} s, bombs {bomb_cpu:.2?} s");
    // Unbounded, the MP4 alone costs over 7 s of CPU to decode.
    assert!(
        bomb_cpu[0] <= ordinary_cpu.max(0.05),
        "the declared bomb cost {:.2} s",
        bomb_cpu[0]
    );
    assert!(
        bomb_cpu[1] <= 10.0 * ordinary_cpu.max(0.1),
        "the undeclared bomb cost {:.2} s against {ordinary_cpu:.2} s",
        bomb_cpu[1]
    );
    client
        .transcode_segment(ordinary, &profiles, "after")
        .await
        .expect("served after the bombs");
    assert!(list_slashes(&coordinator.url, None).await.is_empty());
    worker.kill().await;
}

/// A header that declares `size` bytes and then nothing: the stream stays open, sending no chunk.
fn stalled_upload<T: Send + 'static>(
    header: T,
) -> (
    tokio::sync::mpsc::Sender<T>,
    tokio_stream::wrappers::ReceiverStream<T>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.try_send(header).expect("room for the header");
    (tx, tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Puts that can never be placed (16 copies of an empty blob, which reserves no staging bytes), sent
/// with the real wire protocol from one address while no worker is attached: that address holds at
/// most 16 waits, the next Put from it is answered at once, a client on another address has its own
/// and its Put is placed on the worker that comes, and every place is given back when the attacker
/// goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_puts_from_one_address_are_bounded_and_hold_no_other_client() {
    use dualrig_coordinator::storage::WAITING_PUTS_PER_HOST;
    use dualrig_proto::v1::{PutHeader, PutUpload, put_upload};

    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = format!("127.0.0.1:{}", free_port());
    let coordinator = CoordinatorProcess::start(
        dir.path(),
        &["--metrics-addr", &metrics, "--worker-wait-secs", "60"],
    );
    let waiting = || {
        let page = http_get(&metrics, "/metrics").unwrap_or_default();
        counter(&page, "dualrig_storage_puts_waiting", "") as usize
    };
    let wait_until_waiting = |n: usize| async move {
        for _ in 0..600 {
            if waiting() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} Puts wait, not {n}", waiting());
    };
    let attacker = tonic::transport::Endpoint::from_shared(coordinator.url.clone())
        .expect("url")
        .local_address(Some("127.0.0.2".parse().expect("ip")))
        .connect()
        .await
        .expect("connect from 127.0.0.2");
    let unplaceable = || PutUpload {
        part: Some(put_upload::Part::Header(PutHeader {
            collective: String::new(),
            root: blake3::hash(b"").as_bytes().to_vec(),
            size: 0,
            replicas: 16,
        })),
    };
    let held: Vec<_> = (0..WAITING_PUTS_PER_HOST)
        .map(|_| {
            let mut api = CoordinatorClient::new(attacker.clone());
            let (keep_open, upload) = stalled_upload(unplaceable());
            tokio::spawn(async move {
                let outcome = api.put(upload).await;
                drop(keep_open);
                outcome
            })
        })
        .collect();
    wait_until_waiting(WAITING_PUTS_PER_HOST).await;

    // One more from that address is not held.
    let mut api = CoordinatorClient::new(attacker.clone());
    let (keep_open, upload) = stalled_upload(unplaceable());
    let refused = tokio::time::timeout(Duration::from_secs(30), api.put(upload))
        .await
        .expect("answered without waiting for workers")
        .expect_err("16 copies, no worker");
    drop(keep_open);
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        refused
            .message()
            .contains("only 0 attached workers have room"),
        "{refused:?}"
    );

    // An honest client on 127.0.0.1 waits in a place of its own and is placed when a worker comes.
    let client = DualrigClient::connect(&coordinator.url)
        .await
        .expect("connect");
    let file = crate::support::random_file(dir.path(), "honest", 200_000, 3);
    let honest = {
        let client = client.clone();
        let file = file.clone();
        tokio::spawn(async move { client.put_file(&file, 1).await })
    };
    wait_until_waiting(WAITING_PUTS_PER_HOST + 1).await;
    let worker = RunningWorker::start(&coordinator.url).await;
    let put = tokio::time::timeout(Duration::from_secs(60), honest)
        .await
        .expect("the honest Put ends once the worker reports room")
        .expect("put task")
        .expect("placed");
    assert_eq!(put.holders, vec![worker.id]);
    let back = dir.path().join("back");
    client
        .get_to_file(*put.root.as_bytes(), 0, None, &back)
        .await
        .expect("get");
    assert_eq!(
        crate::support::file_hash(&back),
        crate::support::file_hash(&file)
    );

    // The attacker's Puts still wait (nothing can place 16 copies); when it goes, its places come
    // back.
    assert!(held.iter().all(|put| !put.is_finished()));
    for put in held {
        put.abort();
    }
    drop(attacker);
    wait_until_waiting(0).await;
    worker.kill().await;
}

/// Slowloris uploads: Transcode streams that send a header declaring 32 MiB and then nothing hold
/// no memory for it, are cut by the idle deadline, and past one address's share are refused at once;
/// a Put that would eat into the disk reserve is refused before a byte is staged, and a stalled Put
/// leaves nothing staged. Other traffic is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_and_oversized_uploads_hold_nothing_for_long() {
    use dualrig_proto::v1::{
        PutHeader, PutUpload, TranscodeHeader, TranscodeUpload, put_upload, transcode_upload,
    };

    const DECLARED: u64 = 32 << 20;
    const SHARE: u64 = 8 * DECLARED;
    let dir = tempfile::tempdir().expect("tempdir");
    let share = SHARE.to_string();
    let coordinator = CoordinatorProcess::start(
        dir.path(),
        &[
            "--upload-idle-secs",
            "2",
            "--max-staged-segment-bytes-per-client",
            &share,
        ],
    );
    let client = DualrigClient::connect(&coordinator.url)
        .await
        .expect("connect");
    let worker = RunningWorker::start(&coordinator.url).await;
    wait_for_workers(&client, 1).await;
    let rss_before = coordinator.rss_bytes();
    let header = || TranscodeUpload {
        part: Some(transcode_upload::Part::Header(TranscodeHeader {
            profiles: vec![
                dualrig_proto::profile::Profile::standard("240p")
                    .expect("profile")
                    .to_wire(),
            ],
            segment_size: DECLARED,
            ..TranscodeHeader::default()
        })),
    };
    let mut stalled = Vec::new();
    for i in 0..12 {
        let mut api = CoordinatorClient::connect(coordinator.url.clone())
            .await
            .expect("connect");
        let (keep_open, upload) = stalled_upload(header());
        stalled.push(tokio::spawn(async move {
            let outcome = api.transcode(upload).await;
            drop(keep_open);
            (i, outcome.map(|_| ()))
        }));
        // In order, so the first eight take this address's share.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Meanwhile a Put goes through (another budget) and the worker list is served.
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    put_bytes(&client, dir.path(), &bytes, 1).await;
    assert_eq!(client.list_workers().await.expect("workers").len(), 1);
    let grown = coordinator.rss_bytes().saturating_sub(rss_before);
    eprintln!("RSS grew {grown} bytes with 8 uploads of 32 MiB stalled");
    assert!(grown < 24 << 20, "RSS grew {grown} bytes");

    for task in stalled {
        let (i, outcome) = task.await.expect("upload task");
        let err = outcome.expect_err("a stalled upload is cut");
        let expected = if i < 8 {
            tonic::Code::DeadlineExceeded
        } else {
            tonic::Code::ResourceExhausted
        };
        assert_eq!(err.code(), expected, "upload {i}: {err}");
    }
    // The share is given back: an ordinary job from the same address is served.
    let clip = crate::support::make_clip(dir.path(), "ordinary.ts", 1, "320x240");
    let profiles = dualrig_proto::profile::Profile::parse_list("240p").expect("profile");
    client
        .transcode_segment(std::fs::read(&clip).expect("clip"), &profiles, "after")
        .await
        .expect("served after the stalls");

    // A stalled Put: cut by the idle deadline, nothing left staged.
    let mut api = CoordinatorClient::connect(coordinator.url.clone())
        .await
        .expect("connect");
    let (keep_open, upload) = stalled_upload(PutUpload {
        part: Some(put_upload::Part::Header(PutHeader {
            collective: String::new(),
            root: vec![7; 32],
            size: 1 << 30,
            replicas: 1,
        })),
    });
    let err = api.put(upload).await.expect_err("a stalled Put is cut");
    drop(keep_open);
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err}");
    let staged = std::fs::read_dir(dir.path().join("scratch"))
        .expect("scratch")
        .count();
    assert_eq!(staged, 0, "a stalled Put left files staged");
    worker.kill().await;
    drop(coordinator);

    // With a disk reserve larger than the disk, a Put is refused before a byte is staged.
    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator =
        CoordinatorProcess::start(dir.path(), &["--disk-reserve-bytes", "1000000000000000000"]);
    let client = DualrigClient::connect(&coordinator.url)
        .await
        .expect("connect");
    let worker = RunningWorker::start(&coordinator.url).await;
    wait_for_workers(&client, 1).await;
    let path = dir.path().join("blob");
    std::fs::write(&path, &bytes).expect("blob");
    let mut refused = None;
    for _ in 0..200 {
        match client.put_file(&path, 1).await {
            Err(e) if e.code() == Some(tonic::Code::FailedPrecondition) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => {
                refused = Some(other);
                break;
            }
        }
    }
    let err = refused.expect("an answer").expect_err("no room on disk");
    assert_eq!(err.code(), Some(tonic::Code::ResourceExhausted), "{err}");
    assert!(err.to_string().contains("reserve"), "{err}");
    assert!(client.list_blobs().await.expect("ls").is_empty());
    worker.kill().await;
}

/// A fake worker with a fresh key and no stake: registers, attaches, reports holding `claims` (blobs
/// nobody stored, as root and size), waits until the index lists the first, and leaves.
async fn claim_without_holding(url: &str, claims: &[([u8; 32], u64)]) {
    drop(claim_and_stay(url, claims).await);
}

/// A worker that attaches, claims `claims` in its first report, sends heartbeats and answers nothing
/// else (no challenge answer): it speaks the real protocol and holds nothing. It leaves when the
/// returned handle is dropped.
pub(crate) async fn claim_and_stay(url: &str, claims: &[([u8; 32], u64)]) -> ClaimingWorker {
    use dualrig_proto::v1::{BlobRef, Heartbeat, Holdings, WorkerEvent, worker_event};

    let key = dualrig_proto::identity::Identity::generate();
    let (mut api, registered) = register_key(url, &key, 0).await;
    let registered = registered.expect("register");
    let (events, outbound) = tokio::sync::mpsc::channel(4);
    events
        .send(WorkerEvent {
            event: Some(worker_event::Event::Holdings(Holdings {
                full: true,
                added: claims
                    .iter()
                    .map(|(root, size)| BlobRef {
                        root: root.to_vec(),
                        size: *size,
                    })
                    .collect(),
                free_bytes: 1 << 40,
                capacity_bytes: 1 << 40,
                ..Holdings::default()
            })),
        })
        .await
        .expect("report");
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(outbound));
    request.metadata_mut().insert(
        dualrig_proto::SESSION_METADATA_KEY,
        registered.session_token.parse().expect("token"),
    );
    let mut commands = api.attach(request).await.expect("attach").into_inner();
    let task = tokio::spawn(async move {
        let mut beat = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = beat.tick() => {
                    let heartbeat = WorkerEvent {
                        event: Some(worker_event::Event::Heartbeat(Heartbeat { sent_unix_ms: 0 })),
                    };
                    if events.send(heartbeat).await.is_err() {
                        return;
                    }
                }
                command = commands.message() => {
                    if !matches!(command, Ok(Some(_))) {
                        return;
                    }
                }
            }
        }
    });
    let client = DualrigClient::connect(url).await.expect("connect");
    for _ in 0..200 {
        let listed = client.list_blobs().await.expect("ls");
        if listed.iter().any(|b| b.root == claims[0].0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    ClaimingWorker { id: key.id(), task }
}

pub(crate) struct ClaimingWorker {
    pub id: dualrig_proto::identity::PublicId,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ClaimingWorker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Holdings believed without proof: Sybil workers claim a blob before anyone stores it (one with the
/// right size, two with a wrong one) and leave, and one claims 20,000 blobs (at most 4096 are kept). A later put with 3 replicas still uploads and stores it
/// on 3 real workers, the claims never count as copies, and the blob is fetched intact; a real holder
/// offline past the grace stops counting and the blob is copied to another worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn self_reported_copies_never_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator = CoordinatorProcess::start(
        dir.path(),
        &[
            "--holder-offline-grace-secs",
            "1",
            "--challenge-interval-secs",
            "0.5",
            "--challenge-deadline-secs",
            "3",
        ],
    );
    let url = coordinator.url.clone();
    let client = DualrigClient::connect(&url).await.expect("connect");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 13 + i / 7) as u8).collect();
    let root = *blake3::hash(&bytes).as_bytes();
    claim_without_holding(&url, &[(root, bytes.len() as u64)]).await;
    claim_without_holding(&url, &[(root, bytes.len() as u64 + 1)]).await;
    claim_without_holding(&url, &[(root, 7)]).await;
    // And one floods the index with 20,000 blobs it does not have: a bounded number are recorded.
    let flood: Vec<([u8; 32], u64)> = (0..20_000u32)
        .map(|i| (*blake3::hash(&i.to_le_bytes()).as_bytes(), 1024))
        .collect();
    claim_without_holding(&url, &flood).await;
    let listed = client.list_blobs().await.expect("ls works after the flood");
    assert!(
        listed.len() <= 1 + dualrig_coordinator::storage::index::MAX_CLAIMS_PER_WORKER,
        "{} blobs indexed",
        listed.len()
    );

    let mut honest = Vec::new();
    for _ in 0..3 {
        honest.push(RunningWorker::start(&url).await);
    }
    wait_for_workers(&client, 3).await;
    let stored = put_bytes(&client, dir.path(), &bytes, 3).await;
    let mut holders = stored.holders.clone();
    holders.sort();
    let mut real: Vec<_> = honest.iter().map(|w| w.id).collect();
    real.sort();
    assert_eq!(holders, real, "the copies are on the real workers");
    let listed = client.list_blobs().await.expect("ls");
    let blob = listed
        .iter()
        .find(|b| b.root == root)
        .expect("the blob is listed");
    assert_eq!(blob.size, bytes.len() as u64, "the Put's size, not a claim");
    assert_eq!(blob.holders.len(), 3, "claims are not copies");
    let out = dir.path().join("fetched");
    client.get_to_file(root, 0, None, &out).await.expect("get");
    assert_eq!(std::fs::read(&out).expect("fetched"), bytes);

    // A holder goes away for good; past the grace its copy stops counting and a new worker gets one.
    let gone = honest.remove(0);
    let gone_id = gone.id;
    gone.kill().await;
    let newcomer = RunningWorker::start(&url).await;
    let mut repaired = false;
    for _ in 0..400 {
        let listed = client.list_blobs().await.expect("ls");
        let blob = listed.iter().find(|b| b.root == root).expect("listed");
        if blob.holders.contains(&newcomer.id.as_bytes().to_vec()) {
            repaired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        repaired,
        "the blob was not copied to the new worker after {} left",
        gone_id.short()
    );
    assert!(
        list_slashes(&url, None)
            .await
            .iter()
            .all(|s| !honest.iter().any(|w| s.worker == w.id.as_bytes().to_vec())),
        "no real holder is slashed"
    );
    for w in honest {
        w.kill().await;
    }
    newcomer.kill().await;
}

/// A client's choice of bitrate: a 1280x720 rung at 16 kb/s (which no encoder can keep above the
/// content check's threshold on motion) is refused with `INVALID_ARGUMENT` naming the bitrate needed,
/// before any worker sees it. A ladder above the floor on a source hard enough that libx264 itself
/// fails the check (block-sized noise, new every frame) is content-checked, found inconclusive against
/// the coordinator's own reference encode, and delivered: nobody is slashed for what an honest encoder
/// produces.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_starved_ladder_gets_no_honest_worker_slashed() {
    use crate::support::{make_lavfi_clip, small_profile};

    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = format!("127.0.0.1:{}", free_port());
    // Every result content-checked.
    let config = dir.path().join("coordinator.toml");
    std::fs::write(&config, "content_check_share = 1.0\n").expect("config");
    let coordinator = CoordinatorProcess::start(
        dir.path(),
        &[
            "--metrics-addr",
            &metrics,
            "--config",
            config.to_str().expect("utf-8 path"),
        ],
    );
    let client = DualrigClient::connect(&coordinator.url)
        .await
        .expect("connect");
    let worker = RunningWorker::start(&coordinator.url).await;
    wait_for_workers(&client, 1).await;
    let pan = make_lavfi_clip(
        dir.path(),
        "pan.ts",
        "testsrc2=size=1280x720:rate=30,crop=640:360:x='mod(t*1500,640)':y='mod(t*500,360)'",
        1.0,
    );
    let starved = [small_profile("720p", 1280, 720, 16_000)];
    let err = client
        .transcode_segment(std::fs::read(&pan).expect("clip"), &starved, "starved")
        .await
        .expect_err("a starved ladder is refused");
    assert_eq!(err.code(), Some(tonic::Code::InvalidArgument), "{err}");
    assert!(
        err.to_string().contains("floor") && err.to_string().contains("at least 304128 b/s"),
        "{err}"
    );
    let listed = client.list_workers().await.expect("workers");
    assert_eq!(
        (listed[0].jobs_done, listed[0].jobs_failed),
        (0, 0),
        "no worker saw the starved job"
    );

    // Above the floor (90p needs 0.075 bits per pixel: 32,400 b/s at 30 fps), on a source no encoder
    // keeps at that rate. Three seconds, because rate control spends on the first frames: in a 1 s clip
    // about one draw in six of the check's sampled frames found only frames that still pass (25.6 dB),
    // and the check passed instead of finding the failure libx264 shares.
    let noise = make_lavfi_clip(
        dir.path(),
        "blocks.ts",
        "nullsrc=size=20x12:rate=30,format=gray,geq=lum='random(1)*255',scale=160:90:flags=neighbor,format=yuv420p",
        3.0,
    );
    let hard = [small_profile("90p", 160, 90, 33_000)];
    let response = client
        .transcode_segment(std::fs::read(&noise).expect("clip"), &hard, "hard")
        .await
        .expect("a hard source above the floor is delivered");
    assert_eq!(response.renditions.len(), 1);
    let page = http_get(&metrics, "/metrics").expect("metrics");
    assert!(
        counter(
            &page,
            "dualrig_verifications_total",
            "outcome=\"inconclusive\""
        ) >= 1.0,
        "the content check was not inconclusive: {}",
        page.lines()
            .filter(|l| l.contains("verifications") || l.contains("lowest_pass"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(list_slashes(&coordinator.url, None).await.is_empty());
    let listed = client.list_workers().await.expect("workers");
    assert_eq!((listed[0].jobs_done, listed[0].jobs_failed), (1, 0));
    worker.kill().await;
}

/// Total bytes of the files directly in `dir` (0 when it does not exist).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum()
    })
}

/// An evidence flood: throwaway keys, one after another, take a job each and return signed garbage.
/// Each is slashed with its evidence, but the evidence lives outside the ledger (the ledger keeps a
/// verdict of a few hundred bytes per slash) and the store keeps at most its configured bytes;
/// `ListSlashes` pages through every slash with its verdict, kept evidence still re-verifies, and an
/// honest worker is served after the flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_evidence_flood_is_kept_to_its_bytes_and_every_slash_still_lists() {
    evidence_flood(None).await;
}

/// The same flood on PostgreSQL, where the evidence lives in the shared database: the table holds at
/// most the configured bytes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_evidence_flood_on_postgresql_is_kept_to_its_bytes_in_the_database() {
    let Some(url) = crate::cluster::postgres_schema_or_rerun(
        "attacks::an_evidence_flood_on_postgresql_is_kept_to_its_bytes_in_the_database",
        "flood",
    ) else {
        return;
    };
    evidence_flood(Some(&url)).await;
}

/// The evidence flood against a coordinator on SQLite (`database` `None`) or on that PostgreSQL.
async fn evidence_flood(database: Option<&str>) {
    use dualrig_coordinator::evidence::reverify;
    use dualrig_coordinator::ledger::{Genesis, Ledger, LedgerConfig};
    use dualrig_worker::job::Fault;

    const CHEATS: usize = 5;
    const EVIDENCE_CAP: u64 = 1 << 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = EVIDENCE_CAP.to_string();
    let mut args = vec![
        "--evidence-max-bytes",
        &cap,
        "--worker-wait-secs",
        "0.3",
        "--max-attempts",
        "1",
    ];
    if let Some(url) = database {
        args.extend(["--database-url", url]);
    }
    let coordinator = CoordinatorProcess::start(dir.path(), &args);
    // The coordinator has made the tables; the test reads the shared ledger through one handle.
    let shared = database.map(|url| {
        Ledger::open_postgres(url, LedgerConfig::default(), &Genesis::empty())
            .expect("open the shared ledger")
    });
    // What the store holds: the files of the coordinator's data directory, or the database's rows.
    let kept_bytes = || match &shared {
        None => dir_bytes(&dir.path().join("evidence")),
        Some(ledger) => ledger.evidence_item_bytes().expect("evidence bytes"),
    };
    let client = DualrigClient::connect(&coordinator.url)
        .await
        .expect("connect");
    let media = tempfile::tempdir().expect("media");
    let noise = crate::support::make_lavfi_clip(
        media.path(),
        "noise.ts",
        "nullsrc=size=160x90:rate=30,format=gray,geq=lum='random(1)*255',format=yuv420p",
        1.0,
    );
    let segment = std::fs::read(&noise).expect("clip");
    let profiles = dualrig_proto::profile::Profile::parse_list("240p").expect("profile");

    for n in 0..CHEATS {
        let cheat =
            RunningWorker::start_with(&coordinator.url, |c| c.fault = Some(Fault::Garbage)).await;
        wait_for_workers(&client, 1).await;
        let err = client
            .transcode_segment(segment.clone(), &profiles, &format!("flood-{n}"))
            .await
            .expect_err("garbage is refused");
        assert!(err.to_string().contains("bad result"), "{err}");
        cheat.kill().await;
        for _ in 0..200 {
            if client.list_workers().await.expect("workers").is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let slashes = crate::support::list_slashes_paged(&coordinator.url, None, 2).await;
    assert_eq!(slashes.len(), CHEATS, "every slash lists, page by page");
    assert!(slashes.windows(2).all(|w| w[0].id < w[1].id));
    let mut generated = 0;
    let mut kept = Vec::new();
    for entry in &slashes {
        assert!(
            entry.fault.is_some() && !entry.reason.is_empty(),
            "{entry:?}"
        );
        generated += entry.evidence_size;
        if entry.evidence_dropped {
            assert!(entry.evidence.is_empty());
        } else {
            assert_eq!(
                blake3::hash(&entry.evidence).as_bytes().to_vec(),
                entry.evidence_hash
            );
            kept.push(entry.clone());
        }
    }
    let one = slashes[0].evidence_size;
    eprintln!(
        "{CHEATS} slashes, {generated} bytes of evidence made ({one} each), {} kept, store {} bytes",
        kept.len(),
        kept_bytes()
    );
    assert!(
        generated > EVIDENCE_CAP,
        "the flood exceeds the cap ({generated} bytes)"
    );
    assert!(!kept.is_empty(), "the latest evidence is kept");
    assert!(kept.len() < CHEATS, "older evidence was dropped for room");
    let held = kept_bytes();
    assert!(held <= EVIDENCE_CAP, "{held} bytes kept");
    assert!(held > 0, "the kept evidence is where the store says");
    if database.is_some() {
        assert_eq!(
            dir_bytes(&dir.path().join("evidence")),
            0,
            "no files beside the database"
        );
    }
    // The newest slash's evidence is kept, and re-verifies.
    let newest = slashes.last().expect("a slash");
    assert!(!newest.evidence_dropped);
    let scratch = tempfile::tempdir().expect("scratch");
    let verdict = reverify(newest, scratch.path()).expect("reverify runs");
    assert!(verdict.upheld && verdict.agrees(), "{verdict}");

    // The ledger keeps verdicts, not evidence: a few hundred bytes per slash.
    let in_ledger: i64 = match &shared {
        None => rusqlite::Connection::open_with_flags(
            dir.path().join("ledger.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("ledger")
        .query_row("SELECT sum(length(evidence)) FROM slashes", [], |r| {
            r.get(0)
        })
        .expect("sum"),
        Some(ledger) => ledger
            .all_slashes()
            .expect("slashes")
            .iter()
            .map(|r| r.evidence.len() as i64)
            .sum(),
    };
    eprintln!("ledger holds {in_ledger} bytes of verdicts for {CHEATS} slashes");
    assert!(
        (in_ledger as u64) < CHEATS as u64 * 1024,
        "{in_ledger} bytes in the ledger"
    );

    // An honest worker is served after the flood.
    let honest = RunningWorker::start(&coordinator.url).await;
    wait_for_workers(&client, 1).await;
    client
        .transcode_segment(segment, &profiles, "after the flood")
        .await
        .expect("served");
    honest.kill().await;
}

/// An `Execute` flood: throwaway keys send forged requests (signatures that do not verify) and
/// well-signed transfers of funds they do not have, all at once, while a funded account transfers.
/// Forgeries are refused before they can wait for a transaction, the unfunded transfers are refused
/// inside one without a trace, the honest transfer applies exactly once, and no flooder's account or
/// nonce moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_execute_flood_from_throwaway_keys_moves_nothing_and_delays_no_transfer() {
    use dualrig_proto::identity::Identity;
    use dualrig_proto::ledger_request::{Operation, SignedRequest};

    const FLOOD: usize = 100;
    let dir = tempfile::tempdir().expect("tempdir");
    let funded = Identity::from_secret([44; 32]);
    let payee = Identity::from_secret([45; 32]);
    let genesis = dir.path().join("genesis.toml");
    crate::support::write_genesis(&genesis, &[(funded.id(), 1_000_000)]);
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let genesis_arg = genesis.to_str().expect("utf-8").to_owned();
    let coordinator = CoordinatorProcess::start(&data, &["--genesis", &genesis_arg]);
    let client = DualrigClient::connect(&coordinator.url)
        .await
        .expect("connect");

    let flooders: Vec<Identity> = (0..FLOOD).map(|_| Identity::generate()).collect();
    let floods = flooders.iter().enumerate().map(|(i, key)| {
        let client = client.clone();
        let operation = Operation::Transfer {
            to: payee.id(),
            amount: 1,
        };
        let mut request = SignedRequest::sign(key, 1, &operation);
        if i % 2 == 0 {
            request.sig[0] ^= 1;
        }
        async move { (i % 2 == 0, client.execute_signed(&request).await) }
    });
    let honest = client.execute(
        &funded,
        Operation::Transfer {
            to: payee.id(),
            amount: 700,
        },
    );
    let (outcomes, honest) = tokio::join!(futures::future::join_all(floods), honest);
    honest.expect("the funded transfer applies");
    for (forged, outcome) in outcomes {
        let err = outcome.expect_err("every flood request is refused");
        let expected = if forged {
            tonic::Code::Unauthenticated
        } else {
            tonic::Code::FailedPrecondition
        };
        assert_eq!(err.code(), Some(expected), "{err}");
    }
    for key in &flooders {
        let info = client.account(key.id()).await.expect("account");
        assert_eq!(
            (info.balance, info.nonce),
            (0, 0),
            "a flooder's account moved"
        );
    }
    assert_eq!(
        client.account(payee.id()).await.expect("payee").balance,
        700
    );
    let funded_now = client.account(funded.id()).await.expect("funded");
    assert_eq!((funded_now.balance, funded_now.nonce), (1_000_000 - 700, 1));
}

/// A flood of small full-HD segments: each upload's bytes are little, but the source frames kept for
/// a content check are decoded pictures, megabytes each. A throwaway client sends 16 at once while no
/// worker can take them (so every job waits, holding what it was given): the memory budgeted for kept
/// frames never passes one client's share, every upload is still inspected and answered, and an
/// honest job afterwards is transcoded and verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_small_full_hd_segments_keeps_frames_within_its_budget() {
    use dualrig_coordinator::inspections::{KEPT_FRAMES_BYTES_PER_CLIENT, KEPT_PER_JOB};

    const FLOOD: usize = 16;
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = format!("127.0.0.1:{}", free_port());
    let coordinator = CoordinatorProcess::start(
        dir.path(),
        &["--metrics-addr", &metrics, "--worker-wait-secs", "6"],
    );
    let client = DualrigClient::connect(&coordinator.url)
        .await
        .expect("connect");
    let profiles = dualrig_proto::profile::Profile::parse_list("240p").expect("profile");
    let mut uploads = Vec::new();
    for i in 0..FLOOD {
        // Distinct segments (so no inspection is reused), each a second of about 1920x1080.
        let size = format!("1920x{}", 1080 - 8 * i);
        let clip = crate::support::make_clip(dir.path(), &format!("hd{i}.ts"), 1, &size);
        let segment = std::fs::read(&clip).expect("clip");
        let client = client.clone();
        let profiles = profiles.clone();
        uploads.push(tokio::spawn(async move {
            client.transcode_segment(segment, &profiles, "flood").await
        }));
    }
    let mut most = 0.0f64;
    while !uploads.iter().all(|u| u.is_finished()) {
        let page = http_get(&metrics, "/metrics").unwrap_or_default();
        most = most.max(counter(&page, "dualrig_kept_source_frame_bytes", ""));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for upload in uploads {
        let err = upload
            .await
            .expect("upload task")
            .expect_err("no worker can take it");
        assert_eq!(err.code(), Some(tonic::Code::Unavailable), "{err}");
    }
    eprintln!("kept-frame budget in use at most {most} bytes");
    assert!(most >= KEPT_PER_JOB as f64, "frames were kept: {most}");
    assert!(
        most <= KEPT_FRAMES_BYTES_PER_CLIENT as f64,
        "{most} bytes budgeted for one client's kept frames"
    );

    let worker = RunningWorker::start(&coordinator.url).await;
    wait_for_workers(&client, 1).await;
    let clip = crate::support::make_clip(dir.path(), "honest.ts", 1, "320x240");
    let done = client
        .transcode_segment(std::fs::read(&clip).expect("clip"), &profiles, "honest")
        .await
        .expect("an honest job is served after the flood");
    assert_eq!(done.renditions.len(), 1);
    let listed = client.list_workers().await.expect("workers");
    assert_eq!((listed[0].jobs_done, listed[0].jobs_failed), (1, 0));
    worker.kill().await;
}
