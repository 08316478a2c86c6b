//! Jobs and blobs across coordinators (PROTOCOL §8.4): three real coordinator binaries on one
//! PostgreSQL database.
//!
//! - Jobs sent to any of them go to the six workers attached across them in proportion to stake.
//! - With workers attached to two of them and clients talking to the third, every job the third takes
//!   goes to a worker attached elsewhere over a link and comes back verified, and a blob put through one
//!   coordinator lands on workers attached to others and comes back byte-identical through another.
//! - A slash recorded through one coordinator is listed through another with its whole evidence,
//!   which re-verifies there: the evidence lives in the shared database, not in one data directory.
//! - A peer with a throwaway key cannot open a link, make a coordinator buffer a large message before
//!   its handshake, or tie up links by opening many and saying nothing.

use std::time::Duration;

use dualrig_client::DualrigClient;
use dualrig_proto::identity::{Identity, PublicId};
use dualrig_proto::ledger_request::Operation;
use dualrig_proto::v1::peer_client::PeerClient;
use dualrig_proto::v1::{LinkOpen, LinkUp, link_up};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::support::{
    CoordinatorProcess, RunningWorker, file_hash, make_lavfi_clip, random_file, small_profile,
};

fn start(dir: &std::path::Path, url: &str) -> CoordinatorProcess {
    CoordinatorProcess::start(dir, &["--database-url", url, "--round-secs", "1"])
}

/// Waits until `client`'s coordinator lists `n` workers, attached to it or reached over its links.
pub(crate) async fn wait_listed(client: &DualrigClient, n: usize) {
    for _ in 0..400 {
        if client.list_workers().await.expect("list workers").len() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the coordinator never listed {n} workers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_and_blobs_cross_coordinators_and_a_throwaway_key_cannot_link() {
    let Some(url) = crate::cluster::postgres_schema_or_rerun(
        "relay::jobs_and_blobs_cross_coordinators_and_a_throwaway_key_cannot_link",
        "relay",
    ) else {
        return;
    };
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    // One creates the tables; the others find them.
    let a = start(dirs[0].path(), &url);
    let b = start(dirs[1].path(), &url);
    let c = start(dirs[2].path(), &url);
    let on_b = RunningWorker::start(&b.url).await;
    let on_c = RunningWorker::start(&c.url).await;
    let client_a = DualrigClient::connect(&a.url).await.expect("connect A");
    let client_c = DualrigClient::connect(&c.url).await.expect("connect C");
    // A has no worker of its own: it lists B's and C's over its links to them, each named with the
    // coordinator it is attached to; C lists its own as attached there.
    wait_listed(&client_a, 2).await;
    wait_listed(&client_c, 2).await;
    let coordinators = client_a
        .list_coordinators()
        .await
        .expect("coordinators")
        .coordinators;
    let key_of = |url: &str| {
        coordinators
            .iter()
            .find(|c| c.advertise_addr == url)
            .map(|c| c.id.clone())
            .unwrap_or_else(|| panic!("{url} is registered"))
    };
    for w in client_a.list_workers().await.expect("workers") {
        let on = if w.worker_id == on_b.id.as_bytes() {
            &b.url
        } else {
            &c.url
        };
        assert_eq!(
            w.attached_to,
            key_of(on),
            "A names where each worker is attached"
        );
    }
    for w in client_c.list_workers().await.expect("workers") {
        assert_eq!(
            w.attached_to.is_empty(),
            w.worker_id == on_c.id.as_bytes(),
            "C's own worker is attached there, B's is reached over a link"
        );
    }

    let work = tempfile::tempdir().expect("tempdir");
    let (segment, profiles) = crate::support::tiny_job(work.path());
    let remote = [on_b.id, on_c.id];
    for n in 0..6 {
        let done = tokio::time::timeout(
            Duration::from_secs(120),
            client_a.transcode_segment(segment.clone(), &profiles, "relayed"),
        )
        .await
        .expect("nothing hangs")
        .unwrap_or_else(|e| panic!("job {n} through A: {e}"));
        let worker = PublicId::from_slice("worker", &done.worker_id).expect("worker id");
        assert!(
            remote.contains(&worker),
            "job {n} was done by {worker}, a worker attached to B or C"
        );
        assert_eq!(done.renditions.len(), 1);
        // Decodes: the rendition is real video of the asked size.
        let out = work.path().join(format!("out-{n}.ts"));
        std::fs::write(&out, &done.renditions[0].data).expect("write rendition");
        let info = dualrig_media::inspect(&out).expect("the rendition decodes");
        assert!(info.frames > 0, "frames decode");
        assert_eq!((info.width, info.height), (128, 72));
    }

    // A put through A lands on the workers attached to B and C, and comes back through C.
    let file = random_file(work.path(), "blob", (3 << 20) + 17, 7);
    let put = client_a.put_file(&file, 2).await.expect("put through A");
    let mut holders = put.holders.clone();
    holders.sort();
    let mut expected = remote.to_vec();
    expected.sort();
    assert_eq!(holders, expected, "both copies are on remote workers");
    for worker in [&on_b, &on_c] {
        assert!(
            worker.store.get(&put.root).is_some(),
            "{} holds it",
            worker.id
        );
    }
    let back = work.path().join("back");
    client_c
        .get_to_file(*put.root.as_bytes(), 0, None, &back)
        .await
        .expect("get through C");
    assert_eq!(file_hash(&back), file_hash(&file), "byte-identical");
    let again = work.path().join("again");
    client_a
        .get_to_file(*put.root.as_bytes(), 0, None, &again)
        .await
        .expect("get through A");
    assert_eq!(file_hash(&again), file_hash(&file));

    // A throwaway key speaking the real Peer protocol is refused before anything is listed.
    let throwaway = Identity::from_secret(rand::random());
    let mut peer = PeerClient::connect(b.url.clone()).await.expect("dial B");
    let open = LinkUp {
        message: Some(link_up::Message::Open(LinkOpen {
            coordinator_id: throwaway.id().as_bytes().to_vec(),
            nonce: vec![7; 32],
        })),
    };
    let refused = peer
        .link(futures::stream::iter([open]))
        .await
        .expect_err("an unregistered key is refused");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains("registry"),
        "says why: {}",
        refused.message()
    );
    // B still serves its own clients and links.
    wait_listed(&client_a, 2).await;

    // Nor can it make B buffer a job-sized message before proving a key: the open's frame header is
    // refused.
    let huge = LinkUp {
        message: Some(link_up::Message::Open(LinkOpen {
            coordinator_id: throwaway.id().as_bytes().to_vec(),
            nonce: vec![7; 1 << 20],
        })),
    };
    let refused = peer
        .link(futures::stream::iter([huge]))
        .await
        .expect_err("a 1 MiB open is refused");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("handshake"),
        "says why: {}",
        refused.message()
    );

    // Nor tie up links by opening many and saying nothing: past the cap for its address it is refused
    // at once, while the links already proven carry jobs as before.
    // Each silent link opens again if it lost its place to one of the probes below.
    let stalls: Vec<_> = (0..dualrig_coordinator::relay::OPENING_PER_HOST)
        .map(|_| {
            let mut peer = peer.clone();
            tokio::spawn(async move {
                loop {
                    let (_hold, silent) = tokio::sync::mpsc::channel::<LinkUp>(1);
                    let ended = peer
                        .link(tokio_stream::wrappers::ReceiverStream::new(silent))
                        .await;
                    match ended {
                        Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                            tokio::time::sleep(Duration::from_millis(20)).await
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    let busy = refused_when(&peer, &throwaway, tonic::Code::ResourceExhausted).await;
    assert!(
        busy.message().contains("being opened"),
        "{}",
        busy.message()
    );
    let done = tokio::time::timeout(
        Duration::from_secs(120),
        client_a.transcode_segment(segment.clone(), &profiles, "while-flooded"),
    )
    .await
    .expect("nothing hangs")
    .expect("a job through A while B is flooded");
    let worker = PublicId::from_slice("worker", &done.worker_id).expect("worker id");
    assert!(remote.contains(&worker), "done by {worker} over a link");
    // Once the silent links go, their places are free again: the next open is judged on its key.
    for stall in stalls {
        stall.abort();
    }
    refused_when(&peer, &throwaway, tonic::Code::PermissionDenied).await;
    wait_listed(&client_a, 2).await;
    drop((a, b, c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slash_through_one_coordinator_is_listed_with_its_evidence_through_another() {
    let Some(url) = crate::cluster::postgres_schema_or_rerun(
        "relay::a_slash_through_one_coordinator_is_listed_with_its_evidence_through_another",
        "evidence",
    ) else {
        return;
    };
    let dirs: Vec<tempfile::TempDir> = (0..2)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let a = start(dirs[0].path(), &url);
    let b = start(dirs[1].path(), &url);
    let cheat = RunningWorker::start_with(&a.url, |c| {
        c.fault = Some(dualrig_worker::job::Fault::Garbage)
    })
    .await;
    let client_a = DualrigClient::connect(&a.url).await.expect("connect A");
    wait_listed(&client_a, 1).await;
    let work = tempfile::tempdir().expect("tempdir");
    let (segment, profiles) = crate::support::tiny_job(work.path());
    // The cheat's garbage is refused and slashed; what becomes of the job is not this test's concern.
    let job = tokio::spawn(async move {
        let _ = client_a
            .transcode_segment(segment, &profiles, "cheated")
            .await;
    });

    let mut listed = Vec::new();
    for _ in 0..600 {
        listed = crate::support::list_slashes(&b.url, Some(cheat.id)).await;
        if !listed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    job.abort();
    assert_eq!(listed.len(), 1, "B lists the slash A recorded");
    let entry = &listed[0];
    assert!(!entry.evidence_dropped);
    assert_eq!(entry.evidence.len() as u64, entry.evidence_size);
    assert!(!entry.evidence.is_empty(), "B serves the whole evidence");
    assert_eq!(
        blake3::hash(&entry.evidence).as_bytes().as_slice(),
        entry.evidence_hash.as_slice()
    );
    let checked = entry.clone();
    let verdict = tokio::task::spawn_blocking(move || {
        let scratch = tempfile::tempdir().expect("tempdir");
        dualrig_coordinator::evidence::reverify(&checked, scratch.path()).expect("re-verifies")
    })
    .await
    .expect("task");
    assert!(verdict.upheld && verdict.agrees(), "{verdict}");
    // Through A, the same bytes; and neither data directory holds a copy of its own.
    let through_a = crate::support::list_slashes(&a.url, Some(cheat.id)).await;
    assert_eq!(through_a[0].evidence, entry.evidence);
    for dir in &dirs {
        let files = std::fs::read_dir(dir.path().join("evidence"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(files, 0, "evidence is kept in the database");
    }
    drop((a, b, cheat));
}

/// Opens links with `key` until one is refused with `code` (the others' states settle within the
/// handshake's 10 s), and returns that refusal.
async fn refused_when(
    peer: &PeerClient<tonic::transport::Channel>,
    key: &Identity,
    code: tonic::Code,
) -> tonic::Status {
    let mut last = None;
    for _ in 0..200 {
        let open = LinkUp {
            message: Some(link_up::Message::Open(LinkOpen {
                coordinator_id: key.id().as_bytes().to_vec(),
                nonce: vec![7; 32],
            })),
        };
        let status = peer
            .clone()
            .link(futures::stream::iter([open]))
            .await
            .expect_err("a throwaway key is refused");
        if status.code() == code {
            return status;
        }
        last = Some(status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never refused with {code:?}; last {last:?}");
}

/// Jobs in the draw test, and how many are in flight at once: fewer than any worker's sessions, so no
/// worker is ever busy and the draw is over all six at every job.
const DRAWN_JOBS: usize = 3_000;
const IN_FLIGHT: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_sent_to_any_coordinator_go_to_workers_in_proportion_to_stake() {
    let Some(url) = crate::cluster::postgres_schema_or_rerun(
        "relay::jobs_sent_to_any_coordinator_go_to_workers_in_proportion_to_stake",
        "draw",
    ) else {
        return;
    };
    const TOKEN: u64 = 1_000_000;
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let funder = Identity::from_secret([61; 32]);
    let genesis = dirs[0].path().join("genesis.toml");
    crate::support::write_genesis(&genesis, &[(funder.id(), 100 * TOKEN)]);
    // Each coordinator draws from its own seed, so the run repeats.
    let coordinators: Vec<CoordinatorProcess> = dirs
        .iter()
        .enumerate()
        .map(|(n, dir)| {
            let config = dir.path().join("coordinator.toml");
            std::fs::write(&config, format!("draw_seed = {}\n", 2026 + n)).expect("config");
            CoordinatorProcess::start(
                dir.path(),
                &[
                    "--database-url",
                    &url,
                    "--round-secs",
                    "1",
                    "--genesis",
                    genesis.to_str().expect("utf-8 path"),
                    "--config",
                    config.to_str().expect("utf-8 path"),
                ],
            )
        })
        .collect();
    // Two workers on each coordinator; stakes 1:1:2:2:3:3, the two of a stake on different ones.
    let stakes = [1, 2, 3, 1, 2, 3];
    let mut workers = Vec::new();
    for (n, &stake) in stakes.iter().enumerate() {
        let worker = RunningWorker::start_with(&coordinators[n % 3].url, |c| {
            c.sessions = dualrig_worker::config::Sessions::Fixed(8.try_into().expect("nonzero"));
        })
        .await;
        workers.push((worker, stake));
    }
    let clients: Vec<DualrigClient> = futures::future::join_all(
        coordinators
            .iter()
            .map(|c| async { DualrigClient::connect(&c.url).await.expect("connect") }),
    )
    .await;
    for (worker, stake) in &workers {
        let key = Identity::load_or_create(&worker.key_path()).expect("worker key");
        clients[0]
            .execute(
                &funder,
                Operation::Transfer {
                    to: worker.id,
                    amount: stake * TOKEN,
                },
            )
            .await
            .expect("fund the worker");
        clients[0]
            .execute(
                &key,
                Operation::Bond {
                    amount: stake * TOKEN,
                },
            )
            .await
            .expect("bond");
    }
    for client in &clients {
        wait_listed(client, 6).await;
    }
    // Every coordinator reads stake once a round (1 s).
    tokio::time::sleep(Duration::from_secs(3)).await;

    let work = tempfile::tempdir().expect("tempdir");
    let clip = make_lavfi_clip(
        work.path(),
        "src.ts",
        "testsrc2=size=96x54:rate=10,format=yuv420p",
        0.2,
    );
    let segment = std::fs::read(&clip).expect("segment");
    let profiles = vec![small_profile("36p", 64, 36, 60_000)];
    let mut choose = StdRng::seed_from_u64(14);
    let sent: Vec<usize> = (0..DRAWN_JOBS).map(|_| choose.gen_range(0..3)).collect();
    let done: Vec<PublicId> = futures::stream::iter(sent.iter().enumerate())
        .map(|(n, &to)| {
            let client = clients[to].clone();
            let (segment, profiles) = (segment.clone(), profiles.clone());
            async move {
                let done = tokio::time::timeout(
                    Duration::from_secs(120),
                    client.transcode_segment(segment, &profiles, &format!("draw-{n}")),
                )
                .await
                .expect("nothing hangs")
                .unwrap_or_else(|e| panic!("job {n} through coordinator {to}: {e}"));
                PublicId::from_slice("worker", &done.worker_id).expect("worker id")
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;

    let total: u64 = stakes.iter().sum();
    let mut statistic = 0.0;
    eprintln!("worker  stake  jobs  expected");
    for (worker, stake) in &workers {
        let observed = done.iter().filter(|w| **w == worker.id).count() as f64;
        let expected = DRAWN_JOBS as f64 * *stake as f64 / total as f64;
        statistic += (observed - expected).powi(2) / expected;
        eprintln!(
            "{}  {stake}  {observed:>5}  {expected:>7.1}",
            worker.id.short()
        );
    }
    // χ² with 5 degrees of freedom exceeds 20.515 with probability 0.001.
    eprintln!("chi-square {statistic:.3} over {DRAWN_JOBS} jobs (5 degrees of freedom)");
    assert!(
        statistic < 20.515,
        "shares differ from stake: chi-square {statistic:.3} ≥ 20.515 (p < 0.001)"
    );
    drop(coordinators);
}
