//! Hosted blobs end to end: put and get through real workers, challenge rounds against honest and
//! damaged stores, a stalled holder, repair back to the asked copies, and the errors people see.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use dualrig_client::DualrigClient;
use dualrig_coordinator::storage::check_blob_answer;
use dualrig_proto::identity::PublicId;
use dualrig_proto::proof::{CHUNK_LEN, catch_probability, challenge_indices, chunk_count};
use dualrig_proto::v1::{
    BlobProofs, BlobRef, BlobStored, GetRequest, Holdings, PutHeader, PutUpload, SlashEvidence,
    WorkerEvent, put_upload, slash_evidence, worker_command, worker_event,
};
use rand::{Rng, SeedableRng};

use crate::failover::HoldingWorker;
use crate::support::{RunningCoordinator, RunningWorker, file_hash, random_file, wait_for_workers};

/// What `b3sum` prints for `path`.
fn b3sum(path: &Path) -> String {
    let out = std::process::Command::new("b3sum")
        .arg("--no-names")
        .arg(path)
        .output()
        .expect("b3sum is installed (make test installs it)");
    assert!(out.status.success(), "b3sum failed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn start_workers(url: &str, n: usize) -> Vec<RunningWorker> {
    let mut workers = Vec::new();
    for _ in 0..n {
        workers.push(RunningWorker::start(url).await);
    }
    workers
}

/// Waits until the index lists `root` with exactly the holders `expect` says, or fails.
async fn wait_for_holders(
    coordinator: &RunningCoordinator,
    root: &blake3::Hash,
    mut expect: impl FnMut(&[PublicId]) -> bool,
) -> Vec<PublicId> {
    let index = coordinator.storage.index();
    for _ in 0..600 {
        let holders = index
            .blob(root.as_bytes())
            .expect("index")
            .map(|b| b.holders)
            .unwrap_or_default();
        if expect(&holders) {
            return holders;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("blob {root} never reached the expected holders");
}

/// Waits until every worker has reported its room (its first holdings report).
async fn wait_for_room(client: &DualrigClient, coordinator: &RunningCoordinator, n: usize) {
    wait_for_workers(client, n).await;
    // The full report follows the attach on the same stream; a Put needs it to count the room.
    for _ in 0..200 {
        let dir = tempfile::tempdir().expect("tempdir");
        let probe = random_file(dir.path(), "probe", 1, rand::random());
        match client.put_file(&probe, n as u32).await {
            Ok(_) => return,
            Err(e) if e.code() == Some(tonic::Code::FailedPrecondition) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("probe put failed: {e}"),
        }
    }
    let _ = coordinator;
    panic!("workers never reported room for blobs");
}

/// Checks that a Put was refused because only `room` workers have room for it.
fn refused_for_room(refused: &dualrig_client::ClientError, room: usize) {
    assert_eq!(
        refused.code(),
        Some(tonic::Code::FailedPrecondition),
        "{refused}"
    );
    let says = format!("only {room} attached workers have room");
    assert!(refused.to_string().contains(&says), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_put_waits_for_workers_with_room_and_is_refused_only_past_the_wait() {
    let coordinator = RunningCoordinator::start(|c| c.worker_wait = Duration::from_secs(60)).await;
    let client = coordinator.client().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Sent while no worker is attached: as many as one address may have waiting wait for the two
    // workers that come, rather than being refused.
    let waiting = dualrig_coordinator::storage::WAITING_PUTS_PER_HOST;
    let files: Vec<_> = (0..=waiting)
        .map(|n| {
            random_file(
                dir.path(),
                &format!("early-{n}"),
                (64 << 10) + n as u64,
                n as u64,
            )
        })
        .collect();
    let early: Vec<_> = files[..waiting]
        .iter()
        .map(|file| {
            let client = client.clone();
            let file = file.clone();
            tokio::spawn(async move { client.put_file(&file, 2).await })
        })
        .collect();
    for _ in 0..600 {
        if coordinator.storage.puts_waiting() == waiting {
            break;
        }
        assert!(
            early.iter().all(|put| !put.is_finished()),
            "the puts wait for workers"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(coordinator.storage.puts_waiting(), waiting);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        early.iter().all(|put| !put.is_finished()),
        "the puts still wait"
    );
    // One more from the same address is not held: it is judged on the room there is, at once. (On a
    // connection of its own: the waiting Puts' unread bytes fill their connection's window.)
    let another = coordinator.client().await;
    let refused = tokio::time::timeout(
        Duration::from_secs(30),
        another.put_file(&files[waiting], 2),
    )
    .await
    .expect("refused without waiting for workers")
    .expect_err("no worker has room");
    refused_for_room(&refused, 0);
    let workers = start_workers(&coordinator.url, 2).await;
    for put in early {
        let put = tokio::time::timeout(Duration::from_secs(60), put)
            .await
            .expect("the put ends once the workers report room")
            .expect("put task")
            .expect("placed on the workers that came");
        assert_eq!(put.holders.len(), 2);
        for worker in &workers {
            assert!(
                worker.store.get(&put.root).is_some(),
                "{} holds it",
                worker.id
            );
        }
    }
    coordinator.stop().await;

    // More copies than workers: still refused with the reason, once the wait is over.
    let coordinator =
        RunningCoordinator::start(|c| c.worker_wait = Duration::from_millis(300)).await;
    let client = coordinator.client().await;
    let _workers = start_workers(&coordinator.url, 2).await;
    wait_for_room(&client, &coordinator, 2).await;
    let refused = client
        .put_file(&files[0], 3)
        .await
        .expect_err("3 copies, 2 workers");
    refused_for_room(&refused, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_then_get_gives_back_identical_bytes_at_every_size() {
    let coordinator = RunningCoordinator::start(|_| {}).await;
    let client = coordinator.client().await;
    let workers = start_workers(&coordinator.url, 3).await;
    wait_for_room(&client, &coordinator, 3).await;
    let dir = tempfile::tempdir().expect("tempdir");

    for (len, replicas) in [
        (0u64, 3u32),
        (1, 3),
        (1024, 2),
        ((1 << 20) + 1, 3),
        (200 << 20, 2),
    ] {
        let file = random_file(dir.path(), &format!("in-{len}"), len, len);
        let put = client.put_file(&file, replicas).await.expect("put");
        assert_eq!(
            put.root.to_hex().as_str(),
            b3sum(&file),
            "root is what b3sum prints"
        );
        assert_eq!(put.holders.len(), replicas as usize);
        let mut distinct = put.holders.clone();
        distinct.sort_by_key(|h| *h.as_bytes());
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            put.holders.len(),
            "holders are distinct workers"
        );
        for holder in &put.holders {
            let worker = workers
                .iter()
                .find(|w| w.id == *holder)
                .expect("a test worker");
            assert_eq!(worker.store.get(&put.root).map(|b| b.len), Some(len));
        }

        let out = dir.path().join(format!("out-{len}"));
        let got = client
            .get_to_file(*put.root.as_bytes(), 0, None, &out)
            .await
            .expect("get");
        assert_eq!((got.start, got.end, got.size), (0, len, len));
        assert!(got.skipped.is_empty());
        assert_eq!(file_hash(&out), put.root, "{len} bytes come back identical");
        std::fs::remove_file(&out).expect("rm");

        if len > 2 {
            // A range that starts and ends inside chunks.
            let (start, end) = (len / 3, len - len / 5);
            let part = dir.path().join(format!("part-{len}"));
            client
                .get_to_file(*put.root.as_bytes(), start, Some(end), &part)
                .await
                .expect("ranged get");
            let mut want = vec![0u8; (end - start) as usize];
            let mut src = std::fs::File::open(&file).expect("open");
            src.seek(SeekFrom::Start(start)).expect("seek");
            src.read_exact(&mut want).expect("read");
            assert_eq!(std::fs::read(&part).expect("read part"), want);
        }
        std::fs::remove_file(&file).expect("rm");
    }

    let listed = client.list_blobs().await.expect("ls");
    assert!(
        listed
            .iter()
            .any(|b| b.size == 200 << 20 && b.holders.len() == 2)
    );
    for w in workers {
        w.kill().await;
    }
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_puts_and_gets_get_clear_errors_and_change_nothing() {
    let coordinator = RunningCoordinator::start(|_| {}).await;
    let client = coordinator.client().await;
    let workers = start_workers(&coordinator.url, 2).await;
    wait_for_room(&client, &coordinator, 2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = random_file(dir.path(), "blob", 5000, 7);
    let put = client.put_file(&file, 2).await.expect("put");
    let before = client.list_blobs().await.expect("ls");
    let mut api = client.api();

    // Get: nobody holds it, malformed root, range past the end, range backwards.
    let nobody = client
        .get_to_file([9; 32], 0, None, &dir.path().join("x"))
        .await
        .expect_err("unknown root");
    assert_eq!(nobody.code(), Some(tonic::Code::NotFound), "{nobody}");
    assert!(nobody.to_string().contains("no blob"), "{nobody}");
    let malformed = api
        .get(GetRequest {
            root: vec![1; 5],
            ..GetRequest::default()
        })
        .await
        .expect_err("malformed root");
    assert_eq!(malformed.code(), tonic::Code::InvalidArgument);
    assert!(
        malformed.message().contains("64 hex digits"),
        "{malformed:?}"
    );
    for (start, end) in [(0, 5001), (6000, 7000), (10, 5)] {
        let past = client
            .get_to_file(
                *put.root.as_bytes(),
                start,
                Some(end),
                &dir.path().join("x"),
            )
            .await
            .expect_err("bad range");
        assert_eq!(past.code(), Some(tonic::Code::OutOfRange), "{past}");
        assert!(past.to_string().contains("5000 bytes"), "{past}");
    }
    assert!(
        !dir.path().join("x").exists(),
        "a failed get leaves no file"
    );

    // Put: bytes that do not hash to the named root, a short upload, too many copies, no header.
    let put_raw = |header: PutHeader, chunks: Vec<Vec<u8>>| {
        let mut api = client.api();
        async move {
            let mut messages = vec![PutUpload {
                part: Some(put_upload::Part::Header(header)),
            }];
            messages.extend(chunks.into_iter().map(|c| PutUpload {
                part: Some(put_upload::Part::Chunk(c)),
            }));
            api.put(futures::stream::iter(messages)).await
        }
    };
    let lying = put_raw(
        PutHeader {
            collective: String::new(),
            root: blake3::hash(b"other").as_bytes().to_vec(),
            size: 3,
            replicas: 1,
        },
        vec![b"abc".to_vec()],
    )
    .await
    .expect_err("root mismatch");
    assert_eq!(lying.code(), tonic::Code::InvalidArgument);
    assert!(lying.message().contains("hash to"), "{lying:?}");
    let short = put_raw(
        PutHeader {
            collective: String::new(),
            root: blake3::hash(b"abcd").as_bytes().to_vec(),
            size: 4,
            replicas: 1,
        },
        vec![b"ab".to_vec()],
    )
    .await
    .expect_err("short upload");
    assert_eq!(short.code(), tonic::Code::InvalidArgument);
    assert!(short.message().contains("2 of the 4 bytes"), "{short:?}");
    let too_many = client
        .put_file(&file, 3)
        .await
        .expect_err("3 copies, 2 workers");
    assert_eq!(
        too_many.code(),
        Some(tonic::Code::FailedPrecondition),
        "{too_many}"
    );
    let absurd = client.put_file(&file, 1000).await.expect_err("1000 copies");
    assert_eq!(
        absurd.code(),
        Some(tonic::Code::InvalidArgument),
        "{absurd}"
    );
    let headless = api
        .put(futures::stream::iter(vec![PutUpload {
            part: Some(put_upload::Part::Chunk(vec![1, 2, 3])),
        }]))
        .await
        .expect_err("no header");
    assert_eq!(headless.code(), tonic::Code::InvalidArgument);

    // Nothing changed, and the coordinator still serves.
    assert_eq!(client.list_blobs().await.expect("ls"), before);
    let out = dir.path().join("ok");
    client
        .get_to_file(*put.root.as_bytes(), 0, None, &out)
        .await
        .expect("get still works");
    assert_eq!(file_hash(&out), put.root);
    for w in workers {
        w.kill().await;
    }
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn honest_workers_pass_a_hundred_rounds_and_the_index_survives_a_restart() {
    let data = tempfile::tempdir().expect("tempdir");
    let coordinator = RunningCoordinator::start_at(data.path(), |c| c.challenge_k = 8).await;
    let client = coordinator.client().await;
    let workers = start_workers(&coordinator.url, 3).await;
    wait_for_room(&client, &coordinator, 3).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut roots = Vec::new();
    for (i, len) in [0u64, 1, 1023, 1025, 70_000, 300_001]
        .into_iter()
        .enumerate()
    {
        let file = random_file(dir.path(), &format!("b{i}"), len, i as u64);
        roots.push(client.put_file(&file, 2).await.expect("put").root);
    }
    let before = client.list_blobs().await.expect("ls");
    for _ in 0..100 {
        coordinator.storage.challenge_round().await;
    }
    let faults = coordinator.storage.index().faults().expect("faults");
    assert!(faults.is_empty(), "false faults: {faults:?}");
    assert_eq!(client.list_blobs().await.expect("ls"), before);
    for w in &workers {
        assert_eq!(coordinator.ledger.slashes(&w.id).expect("slashes").len(), 0);
    }

    // A restart keeps the index: the same blobs and holders before any worker is back.
    for w in workers {
        w.kill().await;
    }
    coordinator.stop().await;
    let coordinator = RunningCoordinator::start_at(data.path(), |_| {}).await;
    let client = coordinator.client().await;
    assert_eq!(client.list_blobs().await.expect("ls"), before);
    coordinator.stop().await;
}

/// Overwrites `count` distinct chunks of the file at `path` (of `len` bytes); returns their indices.
fn corrupt_chunks(path: &Path, len: u64, count: usize, seed: u64) -> Vec<u64> {
    let chunks = chunk_count(len);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut picked = std::collections::BTreeSet::new();
    while picked.len() < count {
        picked.insert(rng.gen_range(0..chunks));
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open blob");
    for &i in &picked {
        file.seek(SeekFrom::Start(i * CHUNK_LEN as u64 + 7))
            .expect("seek");
        file.write_all(&[0xA5; 16]).expect("overwrite");
    }
    file.sync_all().expect("sync");
    picked.into_iter().collect()
}

/// Rounds after which a blob missing `missing` of `chunks` chunks escapes `k`-chunk challenges with
/// probability below 1e-9, from the formula's lower bound on the per-round catch.
fn rounds_bound(missing: u64, chunks: u64, k: u32) -> u64 {
    let p = catch_probability(missing as f64 / chunks as f64, u64::from(k));
    ((1e-9f64).ln() / (1.0 - p).ln()).ceil() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn damaged_and_deleted_blobs_are_caught_and_repaired_to_their_copies() {
    const K: u32 = 32;
    let coordinator = RunningCoordinator::start(|c| c.challenge_k = K).await;
    let client = coordinator.client().await;
    let mut workers = start_workers(&coordinator.url, 2).await;
    wait_for_room(&client, &coordinator, 2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let len = 1u64 << 20;
    let damaged = client
        .put_file(&random_file(dir.path(), "damaged", len, 1), 2)
        .await
        .expect("put");
    let deleted = client
        .put_file(&random_file(dir.path(), "deleted", 50_000, 2), 2)
        .await
        .expect("put");
    // A third worker, with room for the repairs.
    workers.push(RunningWorker::start(&coordinator.url).await);
    wait_for_workers(&client, 3).await;
    let (a, b, c) = (workers[0].id, workers[1].id, workers[2].id);

    // 1 % of the chunks of one blob overwritten on A's disk.
    let chunks = chunk_count(len);
    let missing = chunks.div_ceil(100);
    corrupt_chunks(
        &workers[0].blob_path(&damaged.root),
        len,
        missing as usize,
        3,
    );
    let bound = rounds_bound(missing, chunks, K);
    let first = coordinator.storage.rounds() + 1;
    let mut caught_in = None;
    for _ in 0..bound {
        let round = coordinator.storage.challenge_round().await;
        let faults = coordinator.storage.index().faults().expect("faults");
        if faults
            .iter()
            .any(|f| f.worker == a && f.root == *damaged.root.as_bytes())
        {
            caught_in = Some(round - first + 1);
            break;
        }
    }
    let caught_in = caught_in.unwrap_or_else(|| panic!("not caught within {bound} rounds"));
    eprintln!(
        "1% of {chunks} chunks damaged, k = {K}: caught in round {caught_in} (bound {bound}, \
         expected {:.1})",
        1.0 / catch_probability(missing as f64 / chunks as f64, u64::from(K))
    );
    let holders = wait_for_holders(&coordinator, &damaged.root, |h| {
        h.len() == 2 && !h.contains(&a) && h.contains(&c)
    })
    .await;
    assert!(holders.contains(&b));
    let repaired = workers[2]
        .store
        .get(&damaged.root)
        .expect("C holds the copy");
    assert_eq!(repaired.len, len);

    // The evidence names the challenge and does not verify again.
    let fault = coordinator
        .storage
        .index()
        .faults()
        .expect("faults")
        .into_iter()
        .find(|f| f.worker == a)
        .expect("fault recorded");
    // The index names the evidence the ledger's slash keeps.
    let slashes = crate::support::list_slashes(&coordinator.url, Some(a)).await;
    let slash = slashes
        .iter()
        .find(|s| s.evidence_hash == fault.evidence)
        .expect("the fault names the slash's evidence");
    let evidence: SlashEvidence = prost::Message::decode(&slash.evidence[..]).expect("evidence");
    let Some(slash_evidence::Kind::Storage(storage)) = evidence.kind else {
        panic!("storage evidence expected");
    };
    let seed: [u8; 32] = storage.seed.as_slice().try_into().expect("seed");
    assert!(
        check_blob_answer(
            &seed,
            &a,
            damaged.root.as_bytes(),
            len,
            K,
            storage.answer.as_ref()
        )
        .is_err()
    );
    assert_eq!(coordinator.ledger.slashes(&a).expect("slashes").len(), 1);

    // A deleted blob is caught in the first round after the deletion (every round samples every
    // blob a worker holds at the default challenge_blobs).
    let victim = workers
        .iter()
        .find(|w| w.store.get(&deleted.root).is_some() && w.id != c)
        .expect("a holder");
    let victim_id = victim.id;
    std::fs::remove_file(victim.blob_path(&deleted.root)).expect("delete");
    let round = coordinator.storage.challenge_round().await;
    let faults = coordinator.storage.index().faults().expect("faults");
    let hit = faults
        .iter()
        .find(|f| f.worker == victim_id && f.root == *deleted.root.as_bytes())
        .expect("the deletion is caught in the first round");
    assert_eq!(hit.round, round);
    wait_for_holders(&coordinator, &deleted.root, |h| {
        h.len() == 2 && !h.contains(&victim_id)
    })
    .await;
    for w in workers {
        w.kill().await;
    }
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_holder_that_stalls_past_the_deadline_is_faulted_and_replaced() {
    let coordinator =
        RunningCoordinator::start(|c| c.challenge_deadline = Duration::from_millis(500)).await;
    let client = coordinator.client().await;
    let honest = start_workers(&coordinator.url, 2).await;
    // A worker that stores what it is sent (says so) but never answers a challenge.
    let mut stalling = HoldingWorker::attach(&coordinator.url).await;
    let (stalling_id, events, _) = stalling.parts();
    let room = Holdings {
        full: true,
        free_bytes: 1 << 30,
        capacity_bytes: 1 << 30,
        ..Holdings::default()
    };
    send(&events, worker_event::Event::Holdings(room)).await;
    let (stop_script, mut script_stopped) = tokio::sync::oneshot::channel::<()>();
    let script = tokio::spawn(async move {
        let (_, events, commands) = stalling.parts();
        loop {
            let command = tokio::select! {
                _ = &mut script_stopped => break,
                command = commands.message() => command,
            };
            let Ok(Some(command)) = command else { break };
            if let Some(worker_command::Command::Store(piece)) = command.command
                && piece.last
            {
                let stored = BlobStored {
                    transfer_id: piece.transfer_id,
                    root: piece.root.clone(),
                    error: String::new(),
                };
                send(&events, worker_event::Event::Stored(stored)).await;
                let held = Holdings {
                    added: vec![BlobRef {
                        root: piece.root,
                        size: piece.size,
                    }],
                    free_bytes: 1 << 30,
                    capacity_bytes: 1 << 30,
                    ..Holdings::default()
                };
                send(&events, worker_event::Event::Holdings(held)).await;
            }
            // Challenges: silence.
        }
        stalling.die();
    });
    wait_for_room(&client, &coordinator, 3).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let put = client
        .put_file(&random_file(dir.path(), "blob", 10_000, 5), 3)
        .await
        .expect("put");
    assert!(put.holders.contains(&stalling_id));
    let spare = RunningWorker::start(&coordinator.url).await;
    wait_for_workers(&client, 4).await;

    let round = coordinator.storage.challenge_round().await;
    let faults = coordinator.storage.index().faults().expect("faults");
    let fault = faults
        .iter()
        .find(|f| f.worker == stalling_id)
        .expect("the stalling holder is faulted");
    assert_eq!((fault.kind.as_str(), fault.round), ("late", round));
    assert!(faults.iter().all(|f| f.worker == stalling_id), "{faults:?}");
    let holders = wait_for_holders(&coordinator, &put.root, |h| {
        h.len() == 3 && !h.contains(&stalling_id)
    })
    .await;
    assert!(holders.contains(&spare.id));
    let _ = stop_script.send(());
    script.await.expect("script");
    for w in honest {
        w.kill().await;
    }
    spare.kill().await;
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scrub_reports_bit_rot_and_the_blob_is_copied_again() {
    // Challenges are far apart (the default interval): only the scrub can find the damage.
    let coordinator = RunningCoordinator::start(|_| {}).await;
    let client = coordinator.client().await;
    let scrubbing = RunningWorker::start_with(&coordinator.url, |w| {
        w.scrub_interval = Duration::from_millis(200);
    })
    .await;
    let other = RunningWorker::start(&coordinator.url).await;
    wait_for_room(&client, &coordinator, 2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let put = client
        .put_file(&random_file(dir.path(), "blob", 40_000, 9), 2)
        .await
        .expect("put");
    let spare = RunningWorker::start(&coordinator.url).await;
    wait_for_workers(&client, 3).await;

    corrupt_chunks(&scrubbing.blob_path(&put.root), 40_000, 1, 1);
    let holders = wait_for_holders(&coordinator, &put.root, |h| {
        h.len() == 2 && !h.contains(&scrubbing.id)
    })
    .await;
    assert!(holders.contains(&other.id) && holders.contains(&spare.id));
    assert!(
        scrubbing.store.get(&put.root).is_none(),
        "the scrub dropped it"
    );
    let faults = coordinator.storage.index().faults().expect("faults");
    assert!(
        faults.is_empty(),
        "owning up to bit rot is not a fault: {faults:?}"
    );
    for w in [scrubbing, other, spare] {
        w.kill().await;
    }
    coordinator.stop().await;
}

async fn send(events: &tokio::sync::mpsc::Sender<WorkerEvent>, event: worker_event::Event) {
    events
        .send(WorkerEvent { event: Some(event) })
        .await
        .expect("stream open");
}

/// The chance-of-catch formula holds for the coordinator's own sampling and verification against a
/// real damaged store: over 4,000 seeded rounds with k = 4 and 1 % of chunks damaged, the number of
/// catches lies within 6 σ of the exact (hypergeometric) expectation, and above the formula's
/// `1 − (1 − f)^k` lower bound less 6 σ. The seeds are fixed, so the test cannot flake.
#[test]
fn the_catch_rate_matches_the_formula() {
    const K: u32 = 4;
    const ROUNDS: u64 = 4_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let len = 1024 * CHUNK_LEN as u64;
    let file = random_file(dir.path(), "blob", len, 11);
    let store = dualrig_worker::store::BlobStore::open(
        &dir.path().join("store"),
        1 << 30,
        std::sync::Arc::new(dualrig_worker::hash::CpuHasher::new()),
    )
    .expect("store");
    let info = store.put_file(&file).expect("put");
    let stored = dir
        .path()
        .join("store/blobs")
        .join(info.root.to_hex().as_str());
    let chunks = chunk_count(len);
    let damaged = corrupt_chunks(&stored, len, 10, 4);
    let worker = dualrig_proto::identity::Identity::from_secret([3; 32]).id();

    let mut catches = 0u64;
    for round in 0..ROUNDS {
        let seed = *blake3::hash(&round.to_le_bytes()).as_bytes();
        let mut answer = BlobProofs {
            root: info.root.as_bytes().to_vec(),
            ..BlobProofs::default()
        };
        for index in challenge_indices(&seed, &worker, info.root.as_bytes(), len, K as usize) {
            match store.prove(&info.root, index) {
                Ok(proof) => answer.proofs.push(proof.to_bytes().expect("encode")),
                // The honest worker reports damage it sees instead of sending a bad proof.
                Err(e) => answer.error = e.to_string(),
            }
        }
        let verdict =
            check_blob_answer(&seed, &worker, info.root.as_bytes(), len, K, Some(&answer));
        let touched = challenge_indices(&seed, &worker, info.root.as_bytes(), len, K as usize)
            .iter()
            .any(|i| damaged.contains(i));
        assert_eq!(
            verdict.is_err(),
            touched,
            "round {round}: caught iff a damaged chunk is asked"
        );
        catches += u64::from(touched);
    }
    let m = damaged.len() as f64;
    let n = chunks as f64;
    let exact = 1.0
        - (0..K)
            .map(|i| (n - m - f64::from(i)) / (n - f64::from(i)))
            .product::<f64>();
    let bound = catch_probability(m / n, u64::from(K));
    let rounds = ROUNDS as f64;
    let sigma = (rounds * exact * (1.0 - exact)).sqrt();
    let got = catches as f64;
    eprintln!(
        "catches {catches}/{ROUNDS}: exact expectation {:.1}, formula bound {:.1}, sigma {sigma:.1}",
        rounds * exact,
        rounds * bound
    );
    assert!((got - rounds * exact).abs() < 6.0 * sigma);
    assert!(got > rounds * bound - 6.0 * sigma);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_get_skips_a_holder_that_serves_bad_bytes_and_writes_only_verified_ones() {
    let coordinator = RunningCoordinator::start(|_| {}).await;
    let client = coordinator.client().await;
    let workers = start_workers(&coordinator.url, 2).await;
    wait_for_room(&client, &coordinator, 2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let len = 300_000;
    let file = random_file(dir.path(), "blob", len, 21);
    let put = client.put_file(&file, 2).await.expect("put");
    // The damage sits past the first chunks, so the bad holder has sent verified bytes before it.
    let bad = &workers[0];
    let mut blob = std::fs::OpenOptions::new()
        .write(true)
        .open(bad.blob_path(&put.root))
        .expect("open");
    blob.seek(SeekFrom::Start(200_000)).expect("seek");
    blob.write_all(&[0x5A; 64]).expect("damage");
    blob.sync_all().expect("sync");

    // Each Get draws a holder at random; within 60 Gets the damaged one is drawn first at least once
    // unless a 2^-60 chance says otherwise.
    let mut skipped_bad = false;
    for n in 0..60 {
        let out = dir.path().join(format!("out-{n}"));
        let got = client
            .get_to_file(*put.root.as_bytes(), 0, None, &out)
            .await
            .expect("get completes from the good holder");
        assert_eq!(file_hash(&out), put.root, "only verified bytes are written");
        if !got.skipped.is_empty() {
            assert_eq!(got.skipped, vec![bad.id]);
            skipped_bad = true;
            break;
        }
    }
    assert!(skipped_bad, "the damaged holder was never drawn");
    for w in workers {
        w.kill().await;
    }
    coordinator.stop().await;
}

/// Every list answers in pages, in key order: five blobs in pages of two come back as 2, 2 and 1 with
/// each token the last root served, the client's listing follows the pages to all five, and so do the
/// workers'. A token no list hands out is refused by name, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lists_page_in_key_order_and_a_foreign_token_is_refused() {
    use dualrig_proto::v1::{ListBlobsRequest, ListWorkersRequest};

    let coordinator = RunningCoordinator::start(|_| {}).await;
    let client = coordinator.client().await;
    let workers = [
        RunningWorker::start(&coordinator.url).await,
        RunningWorker::start(&coordinator.url).await,
        RunningWorker::start(&coordinator.url).await,
    ];
    wait_for_workers(&client, 3).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut roots = Vec::new();
    for n in 0..5u8 {
        let stored = crate::support::put_bytes(&client, dir.path(), &[n; 3000], 1).await;
        roots.push(stored.root.as_bytes().to_vec());
    }
    roots.sort();

    let mut api = client.api();
    let (mut token, mut pages) = (Vec::new(), Vec::new());
    loop {
        let page = api
            .list_blobs(ListBlobsRequest {
                page_token: token.clone(),
                page_size: 2,
            })
            .await
            .expect("a page")
            .into_inner();
        let listed: Vec<Vec<u8>> = page.blobs.iter().map(|b| b.root.clone()).collect();
        if !page.next_page_token.is_empty() {
            assert_eq!(
                Some(&page.next_page_token),
                listed.last(),
                "the token is the last root"
            );
        }
        pages.push(listed);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    assert_eq!(pages.concat(), roots, "in root order, each once");
    assert_eq!(client.list_blobs().await.expect("all").len(), 5);

    let page = api
        .list_workers(ListWorkersRequest {
            page_token: Vec::new(),
            page_size: 2,
        })
        .await
        .expect("workers")
        .into_inner();
    assert_eq!(page.workers.len(), 2);
    assert!(!page.next_page_token.is_empty());
    assert_eq!(client.list_workers().await.expect("all").len(), 3);

    for token in [vec![7u8; 5], vec![7u8; 33]] {
        let err = api
            .list_blobs(ListBlobsRequest {
                page_token: token.clone(),
                page_size: 0,
            })
            .await
            .expect_err("a foreign token");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("page token"), "{}", err.message());
    }
    assert_eq!(
        client.list_blobs().await.expect("all").len(),
        5,
        "nothing changed"
    );
    for w in workers {
        w.kill().await;
    }
    coordinator.stop().await;
}
