//! Kill -9 the real coordinator during a burst of ticket redemptions, restart it on the same data dir:
//! every balance matches the committed redemptions and no ticket is paid twice. Kill -9 a worker
//! holding winning tickets it has not redeemed, restart it: each is redeemed exactly once.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use dualrig_client::DualrigClient;
use dualrig_proto::identity::Identity;
use dualrig_proto::ledger_request::{Operation, SignedRequest};
use dualrig_proto::ticket::{
    SignedTicket, TicketParams, TicketTerms, recipient_rand, win_prob_one_in,
};

use crate::support::{CoordinatorProcess, Killed};

const FACE: u64 = 1_000;
const TICKETS: u64 = 400;
const DEPOSIT: u64 = 100_000_000;
/// Face value of the crashing worker's tickets: a few per job.
const WORKER_FACE: u64 = 1_000_000;

fn start(dir: &Path, genesis: &Path) -> (Killed, String) {
    let genesis = genesis.to_str().expect("utf-8 path");
    // No SIP fee share: the worker is owed every ticket's whole face value.
    let process = CoordinatorProcess::start(
        dir,
        &[
            "--round-secs",
            "3600",
            "--genesis",
            genesis,
            "--sip-fee-share-ppm",
            "0",
        ],
    );
    (process.child, process.url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_redemptions_loses_nothing_and_pays_nothing_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sender = Identity::generate();
    let worker = Identity::generate();
    let genesis = dir.path().join("genesis.toml");
    std::fs::write(
        &genesis,
        format!(
            "[[accounts]]\nid = \"{}\"\nbalance = {}\n",
            sender.id(),
            DEPOSIT * 2
        ),
    )
    .expect("genesis");

    let secret = [9u8; 32];
    let seed = [4u8; 32];
    let params = TicketParams::derive(
        worker.id(),
        &secret,
        seed,
        TicketTerms {
            face_value: FACE,
            win_prob: win_prob_one_in(1),
            expiration_round: 1_000_000,
            price_per_unit: 0,
            price_per_byte: 0,
        },
    );
    let rand = recipient_rand(&secret, &seed);
    let tickets: Vec<SignedTicket> = (1..=TICKETS)
        .map(|n| SignedTicket::sign(params.ticket(sender.id(), n), &sender))
        .collect();
    let redeem = |nonce: u64, ticket: &SignedTicket| {
        SignedRequest::sign(
            &worker,
            nonce,
            &Operation::RedeemTicket {
                ticket: *ticket,
                recipient_rand: rand,
            },
        )
    };

    let (first, url) = start(dir.path(), &genesis);
    let client = DualrigClient::connect(&url).await.expect("connect");
    client
        .execute(&sender, Operation::Deposit { amount: DEPOSIT })
        .await
        .expect("deposit");

    // The burst: redemptions back to back; the process is killed with SIGKILL after some are
    // acknowledged, while others are in flight.
    let burst = {
        let client = client.clone();
        let requests: Vec<SignedRequest> = tickets
            .iter()
            .enumerate()
            .map(|(i, t)| redeem(i as u64 + 1, t))
            .collect();
        tokio::spawn(async move {
            let mut acknowledged = 0u64;
            for request in &requests {
                match client.execute_signed(request).await {
                    Ok(_) => acknowledged += 1,
                    Err(_) => break,
                }
            }
            acknowledged
        })
    };
    let mut child = first;
    loop {
        let info = client.account(worker.id()).await.expect("account");
        if info.balance >= 40 * FACE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.0.kill().expect("SIGKILL");
    let _ = child.0.wait();
    let acknowledged = burst.await.expect("burst task");
    assert!(acknowledged < TICKETS, "the kill landed mid-burst");

    let (_second, url) = start(dir.path(), &genesis);
    let client = DualrigClient::connect(&url).await.expect("reconnect");
    let worker_info = client.account(worker.id()).await.expect("worker account");
    let sender_info = client.account(sender.id()).await.expect("sender account");
    let committed = worker_info.nonce;
    assert!(
        committed >= acknowledged,
        "an acknowledged redemption was lost: {committed} committed, {acknowledged} acknowledged"
    );
    assert_eq!(
        worker_info.balance,
        committed * FACE,
        "balance = committed redemptions"
    );
    assert_eq!(sender_info.deposit, DEPOSIT - committed * FACE);
    assert_eq!(
        sender_info.balance, DEPOSIT,
        "the sender's balance is untouched"
    );

    // Redeem every ticket again: the committed ones are refused, the rest pay once.
    let mut nonce = committed;
    let mut refused = 0u64;
    for ticket in &tickets {
        nonce += 1;
        match client.execute_signed(&redeem(nonce, ticket)).await {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.code(), Some(tonic::Code::AlreadyExists), "{e}");
                refused += 1;
                // A refused request does not use up its nonce.
                nonce -= 1;
            }
        }
    }
    assert_eq!(
        refused, committed,
        "exactly the committed tickets were already paid"
    );
    let worker_info = client.account(worker.id()).await.expect("worker account");
    let sender_info = client.account(sender.id()).await.expect("sender account");
    assert_eq!(
        worker_info.balance,
        TICKETS * FACE,
        "every ticket paid exactly once"
    );
    assert_eq!(sender_info.deposit, DEPOSIT - TICKETS * FACE);
}

/// Settings the parent hands to [`worker_process`] through the environment.
const CHILD_ENV: &str = "DUALRIG_TEST_WORKER_PROCESS";

/// Not a test of its own: the body of the worker process that
/// [`kill_9_of_a_worker_holding_won_tickets_loses_none_and_pays_none_twice`] starts and kills. It runs
/// only when the parent set [`CHILD_ENV`] (coordinator URL, data dir, redeem delay in seconds).
#[test]
#[ignore = "the worker process of a crash test, started by that test"]
fn worker_process() {
    let Ok(settings) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = settings.splitn(3, '|');
    let (url, dir, delay) = (
        parts.next().expect("url"),
        parts.next().expect("dir"),
        parts.next().expect("delay"),
    );
    let mut config = dualrig_worker::WorkerConfig::new(url, dir.into());
    config.price_per_unit = 1;
    config.ticket_face_value = WORKER_FACE;
    config.ticket_win_prob_one_in = 1;
    config.redeem_delay = Duration::from_secs(delay.parse().expect("delay"));
    let worker = dualrig_worker::Worker::prepare(config).expect("worker prepares");
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(worker.run(std::future::pending::<()>()));
}

/// The worker as a process of its own, killed with SIGKILL when dropped.
fn start_worker(url: &str, dir: &Path, redeem_delay_secs: u64) -> Killed {
    Killed(
        Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "crash::worker_process",
                "--ignored",
                "--nocapture",
            ])
            .env(
                CHILD_ENV,
                format!("{url}|{}|{redeem_delay_secs}", dir.display()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn worker process"),
    )
}

/// Kill -9 a worker whose winning tickets are not redeemed yet (it holds them back), restart it on
/// the same data dir: every ticket is redeemed, exactly once, and a third start redeems nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_worker_holding_won_tickets_loses_none_and_pays_none_twice() {
    use crate::support::{RunningCoordinator, make_clip, wait_for_workers, write_genesis};

    let dir = tempfile::tempdir().expect("tempdir");
    let payer = Identity::from_secret([51; 32]);
    let genesis = dir.path().join("genesis.toml");
    write_genesis(&genesis, &[(payer.id(), DEPOSIT)]);
    let coordinator = RunningCoordinator::start_at(&dir.path().join("coordinator"), |c| {
        c.genesis = Some(genesis.clone());
    })
    .await;
    let client = coordinator.client().await;
    client
        .execute(&payer, Operation::Deposit { amount: DEPOSIT })
        .await
        .expect("deposit");
    let worker_dir = dir.path().join("worker");
    let winners_dir = worker_dir.join("winners");
    let winners = || {
        std::fs::read_dir(&winners_dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().len() == 64)
                    .count()
            })
            .unwrap_or(0)
    };

    let first = start_worker(&coordinator.url, &worker_dir, 3600);
    wait_for_workers(&client, 1).await;
    let worker_id = client.list_workers().await.expect("workers")[0]
        .worker_id
        .clone();
    let worker_id =
        dualrig_proto::identity::PublicId::from_slice("worker", &worker_id).expect("id");
    let clip = make_clip(dir.path(), "paid.ts", 1, "320x240");
    let segment = std::fs::read(&clip).expect("clip");
    let profiles = dualrig_proto::profile::Profile::parse_list("240p").expect("profile");
    let payment = dualrig_client::Payment::new(Identity::from_secret([51; 32]), None);
    let payer_nonces = std::sync::Arc::clone(&payment.payer);
    let first_nonce = payer_nonces.lock().expect("payer").next_nonce();
    for label in ["one", "two"] {
        client
            .transcode_segment_paid(segment.clone(), &profiles, label, &payment)
            .await
            .expect("paid job");
    }
    let tickets = payer_nonces.lock().expect("payer").next_nonce() - first_nonce;
    assert!(tickets >= 2, "every ticket wins: {tickets}");
    assert_eq!(winners() as u64, tickets, "every win is on disk");
    drop(first); // SIGKILL
    assert_eq!(client.account(worker_id).await.expect("worker").balance, 0);

    let second = start_worker(&coordinator.url, &worker_dir, 0);
    let owed = tickets * WORKER_FACE;
    let mut earned = 0;
    for _ in 0..600 {
        earned = client.account(worker_id).await.expect("worker").balance;
        if earned >= owed && winners() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        earned, owed,
        "{tickets} tickets of {WORKER_FACE}, each paid once"
    );
    assert_eq!(winners(), 0, "redeemed tickets leave the disk");
    drop(second);

    // A third start finds nothing to redeem, and nothing more is paid.
    let third = start_worker(&coordinator.url, &worker_dir, 0);
    wait_for_workers(&client, 1).await;
    let info = client.account(worker_id).await.expect("worker");
    assert_eq!(info.balance, owed);
    let sender = client.account(payer.id()).await.expect("payer");
    assert_eq!(sender.deposit, DEPOSIT - owed);
    drop(third);
    coordinator.stop().await;
}
