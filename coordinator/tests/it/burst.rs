//! Fifty redemptions of one winning ticket raced through three coordinators on one PostgreSQL database
//! pay exactly once. Then one of the three is killed with kill -9 in the middle of a burst of jobs, puts
//! and ticket redemptions: its workers attach to the others (each worker is given all three), every job
//! ends verified or with a status saying the coordinator is gone, every put that was acknowledged keeps
//! its copies and comes back byte-identical, every ticket is paid exactly once, and the round clock moves
//! on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dualrig_client::DualrigClient;
use dualrig_proto::identity::Identity;
use dualrig_proto::ledger_request::Operation;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cluster::{FACE, Payee, postgres_schema_or_rerun, start};
use crate::support::{CoordinatorProcess, RunningWorker, file_hash, random_file};

const DEPOSIT: u64 = 100_000_000;
const JOBS: usize = 36;
const PUTS: usize = 9;
const REDEMPTIONS: u64 = 150;

/// Waits until `client`'s coordinator lists `n` workers, attached to it or reached over its links.
async fn wait_listed(client: &DualrigClient, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let listed = client.list_workers().await.map(|w| w.len());
        if listed.as_ref().ok() == Some(&n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the coordinator lists {listed:?} workers, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How a call to the killed coordinator may end: it is gone, and the status says so.
fn gone(code: Option<tonic::Code>) -> bool {
    matches!(
        code,
        Some(tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_during_jobs_puts_and_redemptions_loses_nothing() {
    let Some(url) = postgres_schema_or_rerun(
        "burst::a_kill_9_during_jobs_puts_and_redemptions_loses_nothing",
        "burst",
    ) else {
        return;
    };
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let sender_secret: [u8; 32] = rand::random();
    let sender = Identity::from_secret(sender_secret);
    let genesis = dirs[0].path().join("genesis.toml");
    crate::support::write_genesis(&genesis, &[(sender.id(), DEPOSIT * 2)]);
    let mut coordinators: Vec<CoordinatorProcess> = dirs
        .iter()
        .map(|d| start(d.path(), &url, &genesis))
        .collect();
    let urls: Vec<String> = coordinators.iter().map(|c| c.url.clone()).collect();
    // Two workers start on each coordinator and know the other two as fallbacks.
    let mut workers = Vec::new();
    for n in 0..6 {
        let mut order = urls.clone();
        order.rotate_left(n % 3);
        workers.push(
            RunningWorker::start_with(&order[0], |c| {
                c.coordinators = order.clone();
                c.max_backoff = Duration::from_millis(500);
            })
            .await,
        );
    }
    let clients: Vec<DualrigClient> = futures::future::join_all(
        urls.iter()
            .map(|u| async { DualrigClient::connect(u).await.expect("connect") }),
    )
    .await;
    for client in &clients {
        wait_listed(client, 6, Duration::from_secs(20)).await;
    }
    clients[0]
        .execute(&sender, Operation::Deposit { amount: DEPOSIT })
        .await
        .expect("deposit");
    // Fifty redemptions of one winning ticket, sent to the three coordinators in turn, all at once.
    let racer = Payee::new(Identity::generate(), Identity::from_secret(sender_secret));
    crate::cluster::race_one_ticket(&clients, &racer).await;

    let payee = Arc::new(Payee::new(
        Identity::generate(),
        Identity::from_secret(sender_secret),
    ));

    let work = tempfile::tempdir().expect("tempdir");
    let (segment, profiles) = crate::support::tiny_job(work.path());
    let files: Vec<_> = (0..PUTS)
        .map(|n| {
            random_file(
                work.path(),
                &format!("blob-{n}"),
                (256 << 10) + n as u64,
                n as u64,
            )
        })
        .collect();

    // The burst: jobs and puts to coordinators drawn from a fixed seed, redemptions round-robin, each
    // redemption sent on to the next coordinator when the one it went to is gone.
    let mut choose = StdRng::seed_from_u64(9);
    let job_to: Vec<usize> = (0..JOBS).map(|_| choose.gen_range(0..3)).collect();
    let put_to: Vec<usize> = (0..PUTS).map(|_| choose.gen_range(0..3)).collect();
    let jobs = {
        let clients = clients.clone();
        tokio::spawn(async move {
            let mut ended = Vec::new();
            for (n, to) in job_to.into_iter().enumerate() {
                let done = tokio::time::timeout(
                    Duration::from_secs(120),
                    clients[to].transcode_segment(
                        segment.clone(),
                        &profiles,
                        &format!("burst-{n}"),
                    ),
                )
                .await
                .expect("no job hangs");
                ended.push((to, done));
            }
            ended
        })
    };
    let puts = {
        let clients = clients.clone();
        let files = files.clone();
        tokio::spawn(async move {
            let mut ended = Vec::new();
            for (file, to) in files.iter().zip(put_to) {
                let put =
                    tokio::time::timeout(Duration::from_secs(120), clients[to].put_file(file, 2))
                        .await
                        .expect("no put hangs");
                ended.push((to, put));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            ended
        })
    };
    let redemptions = {
        let clients = clients.clone();
        let payee = Arc::clone(&payee);
        tokio::spawn(async move {
            let mut nonce = 0;
            for i in 0..REDEMPTIONS {
                let request = payee.redeem(nonce + 1, payee.ticket(i + 1));
                let mut outcome = None;
                for attempt in 0..3 {
                    let to = (i as usize + attempt) % 3;
                    match clients[to].execute_signed(&request).await {
                        Ok(_) => outcome = Some(Ok(())),
                        // Committed by the killed one before it died: the nonce is used, the ticket paid.
                        Err(e) if e.code() == Some(tonic::Code::Aborted) => outcome = Some(Ok(())),
                        Err(e) if gone(e.code()) => continue,
                        Err(e) => outcome = Some(Err(format!("redemption {i} refused: {e}"))),
                    }
                    break;
                }
                match outcome {
                    Some(Ok(())) => nonce += 1,
                    Some(Err(e)) => panic!("{e}"),
                    None => panic!("redemption {i}: no coordinator answered"),
                }
            }
            nonce
        })
    };

    // B (index 1) dies with SIGKILL once the burst is well under way.
    let victim = 1;
    let deadline = Instant::now() + Duration::from_secs(60);
    while clients[0]
        .account(payee.key.id())
        .await
        .expect("account")
        .balance
        < 40 * FACE
    {
        assert!(Instant::now() < deadline, "the redemptions never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let round_at_kill = clients[0].sip_status(0, 0).await.expect("sip").round;
    coordinators[victim].child.0.kill().expect("SIGKILL");
    let _ = coordinators[victim].child.0.wait();

    let committed = redemptions.await.expect("redemptions");
    let jobs = jobs.await.expect("jobs");
    let puts = puts.await.expect("puts");

    // Its two workers attach to the others: A and C each list all six again.
    for survivor in [0, 2] {
        wait_listed(&clients[survivor], 6, Duration::from_secs(60)).await;
    }

    // Every job ended verified, or, sent to the killed coordinator, with a status saying it is gone.
    let mut verified = 0;
    for (n, (to, done)) in jobs.iter().enumerate() {
        match done {
            Ok(done) => {
                assert_eq!(done.renditions.len(), 1, "job {n}");
                let out = work.path().join(format!("out-{n}.ts"));
                std::fs::write(&out, &done.renditions[0].data).expect("write rendition");
                let info = dualrig_media::inspect(&out).expect("the rendition decodes");
                assert_eq!((info.width, info.height), (128, 72), "job {n}");
                verified += 1;
            }
            Err(e) => assert!(
                *to == victim && gone(e.code()),
                "job {n} through coordinator {to} failed: {e}"
            ),
        }
    }
    let to_survivors = jobs.iter().filter(|(to, _)| *to != victim).count();
    assert!(verified >= to_survivors, "{verified} of {JOBS} verified");
    eprintln!("{verified} of {JOBS} jobs verified; the rest went to the killed coordinator");

    // Every acknowledged put keeps its two copies and comes back byte-identical through A and C.
    let mut kept = 0;
    for (n, (to, put)) in puts.iter().enumerate() {
        let put = match put {
            Ok(put) => put,
            Err(e) => {
                assert!(
                    *to == victim && gone(e.code()),
                    "put {n} through coordinator {to} failed: {e}"
                );
                continue;
            }
        };
        assert_eq!(put.holders.len(), 2, "put {n}: {:?}", put.holders);
        for holder in &put.holders {
            let worker = workers
                .iter()
                .find(|w| w.id == *holder)
                .expect("a holder is one of the workers");
            assert!(
                worker.store.get(&put.root).is_some(),
                "put {n}: {holder} holds it"
            );
        }
        for survivor in [0, 2] {
            let back = work.path().join(format!("back-{n}-{survivor}"));
            clients[survivor]
                .get_to_file(*put.root.as_bytes(), 0, None, &back)
                .await
                .unwrap_or_else(|e| panic!("put {n} through coordinator {survivor}: {e}"));
            assert_eq!(file_hash(&back), file_hash(&files[n]), "put {n}");
        }
        kept += 1;
    }
    assert!(kept > 0, "no put was acknowledged");

    // Every ticket paid exactly once: the balance is the committed redemptions', and a ticket sent
    // again is refused as paid.
    let info = clients[2].account(payee.key.id()).await.expect("payee");
    assert_eq!(committed, REDEMPTIONS, "every redemption committed once");
    assert_eq!(info.nonce, REDEMPTIONS);
    assert_eq!(info.balance, FACE * REDEMPTIONS);
    let sender_now = clients[0].account(sender.id()).await.expect("sender");
    assert_eq!(sender_now.deposit, DEPOSIT - FACE * (1 + REDEMPTIONS));
    for n in (1..=REDEMPTIONS).step_by(29) {
        let again = payee.redeem(info.nonce + 1, payee.ticket(n));
        let refused = clients[0]
            .execute_signed(&again)
            .await
            .expect_err("paid twice");
        assert_eq!(
            refused.code(),
            Some(tonic::Code::AlreadyExists),
            "ticket {n}: {refused}"
        );
    }

    // Jobs through the survivors go on, whoever holds the workers now.
    let (segment, profiles) = crate::support::tiny_job(work.path());
    for to in [0, 2] {
        clients[to]
            .transcode_segment(segment.clone(), &profiles, "after")
            .await
            .unwrap_or_else(|e| panic!("a job through coordinator {to} after the kill: {e}"));
    }

    // The round clock moves on once a silent holder's lease runs out, whichever coordinator held it.
    crate::cluster::rounds_move_on(&clients[2], round_at_kill).await;
    drop(coordinators);
}
