//! Kill -9 the real coordinator during a burst of ticket redemptions, restart it on the same data dir:
//! every balance matches the committed redemptions and no ticket is paid twice.

use std::path::Path;
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

fn start(dir: &Path, genesis: &Path) -> (Killed, String) {
    let genesis = genesis.to_str().expect("utf-8 path");
    let process = CoordinatorProcess::start(dir, &["--round-secs", "3600", "--genesis", genesis]);
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
