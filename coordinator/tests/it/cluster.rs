//! Two real coordinator binaries on one PostgreSQL database: they share one ledger, a ticket pays once
//! whichever of them it is sent to, a kill -9 of one loses no committed redemption, and the other
//! takes the round clock over.
//!
//! The test needs a PostgreSQL server: under `scripts/with-postgres` (`DUALRIG_TEST_DATABASE_URL`) it
//! uses that one; run alone it runs itself again under that script, which starts and stops one.

use std::path::Path;
use std::time::{Duration, Instant};

use dualrig_client::DualrigClient;
use dualrig_proto::identity::Identity;
use dualrig_proto::ledger_request::{Operation, SignedRequest};
use dualrig_proto::ticket::{SignedTicket, TicketParams, TicketTerms, recipient_rand};

use crate::support::CoordinatorProcess;

pub(crate) const FACE: u64 = 1_000;
const DEPOSIT: u64 = 100_000_000;
const RACERS: u64 = 50;
const BURST: u64 = 300;

/// A fresh schema named `schema` on the test PostgreSQL server, as a URL for `--database-url`, or `None`
/// after running `test` again under `scripts/with-postgres`.
pub(crate) fn postgres_schema_or_rerun(test: &str, schema: &str) -> Option<String> {
    let server = postgres_or_rerun(test)?;
    Some(dualrig_coordinator::db::postgres::fresh_schema(&server, schema).expect("schema"))
}

/// The test PostgreSQL server's URL, or `None` after running `test` again under `scripts/with-postgres`.
pub(crate) fn postgres_or_rerun(test: &str) -> Option<String> {
    if let Ok(url) = std::env::var("DUALRIG_TEST_DATABASE_URL")
        && !url.is_empty()
    {
        return Some(url);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/with-postgres");
    let status = std::process::Command::new(script)
        .arg(std::env::current_exe().expect("test binary"))
        .args([
            test,
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .status()
        .expect("run scripts/with-postgres");
    assert!(status.success(), "{test} failed on PostgreSQL: {status}");
    None
}

/// A coordinator on `url` whose ledger starts from `genesis`, with one-second rounds, tickets that stay
/// valid for the whole test and no SIP share, so a ticket's recipient is owed its whole face value.
pub(crate) fn start(dir: &Path, url: &str, genesis: &Path) -> CoordinatorProcess {
    CoordinatorProcess::start(
        dir,
        &[
            "--database-url",
            url,
            "--round-secs",
            "1",
            "--genesis",
            genesis.to_str().expect("utf-8 path"),
            // No SIP share: the worker is owed each ticket's whole face value.
            "--sip-fee-share-ppm",
            "0",
            "--unlock-rounds",
            "100000",
            "--ticket-validity-rounds",
            "50000",
        ],
    )
}

/// A recipient of winning tickets of `FACE` from one sender, and the redemptions it signs.
pub(crate) struct Payee {
    pub key: Identity,
    sender: Identity,
    params: TicketParams,
    rand: [u8; 32],
}

impl Payee {
    pub(crate) fn new(key: Identity, sender: Identity) -> Self {
        let secret = [9u8; 32];
        let seed = [4u8; 32];
        let params = TicketParams::derive(
            key.id(),
            &secret,
            seed,
            TicketTerms {
                face_value: FACE,
                win_prob: u64::MAX,
                expiration_round: 1_000_000,
                price_per_unit: 0,
                price_per_byte: 0,
            },
        );
        Self {
            rand: recipient_rand(&secret, &seed),
            key,
            sender,
            params,
        }
    }

    /// The sender's ticket number `n`; every one wins.
    pub(crate) fn ticket(&self, n: u64) -> SignedTicket {
        SignedTicket::sign(self.params.ticket(self.sender.id(), n), &self.sender)
    }

    /// The recipient's request to redeem `ticket`, under ledger nonce `nonce`.
    pub(crate) fn redeem(&self, nonce: u64, ticket: SignedTicket) -> SignedRequest {
        SignedRequest::sign(
            &self.key,
            nonce,
            &Operation::RedeemTicket {
                ticket,
                recipient_rand: self.rand,
            },
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_coordinators_on_one_database_share_the_ledger_pay_once_and_survive_a_kill_9() {
    let Some(url) = postgres_schema_or_rerun(
        "cluster::two_coordinators_on_one_database_share_the_ledger_pay_once_and_survive_a_kill_9",
        "cluster",
    ) else {
        return;
    };
    let (a_dir, b_dir) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let sender_secret: [u8; 32] = rand::random();
    let sender = Identity::from_secret(sender_secret);
    let worker_secret: [u8; 32] = rand::random();
    let worker = Identity::from_secret(worker_secret);
    let genesis = a_dir.path().join("genesis.toml");
    crate::support::write_genesis(&genesis, &[(sender.id(), DEPOSIT * 2)]);

    // Both start at once on the empty database: one creates the tables and applies the genesis.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| start(a_dir.path(), &url, &genesis));
        let b = s.spawn(|| start(b_dir.path(), &url, &genesis));
        (a.join().expect("a"), b.join().expect("b"))
    });
    let on_a = DualrigClient::connect(&a.url).await.expect("connect a");
    let on_b = DualrigClient::connect(&b.url).await.expect("connect b");

    // A deposit through A is B's too.
    on_a.execute(&sender, Operation::Deposit { amount: DEPOSIT })
        .await
        .expect("deposit");
    let seen = on_b.account(sender.id()).await.expect("account on b");
    assert_eq!((seen.deposit, seen.balance), (DEPOSIT, DEPOSIT));

    let payee = std::sync::Arc::new(Payee::new(
        Identity::from_secret(worker_secret),
        Identity::from_secret(sender_secret),
    ));
    let ticket = |n: u64| payee.ticket(n);
    let redeem = |nonce: u64, ticket: SignedTicket| payee.redeem(nonce, ticket);

    // Fifty redemptions of one winning ticket, half through each coordinator, all at once.
    race_one_ticket(&[on_a.clone(), on_b.clone()], &payee).await;
    let raced_nonce = on_b.account(worker.id()).await.expect("worker").nonce;

    // A burst of distinct tickets to both; A is killed with SIGKILL in the middle of it.
    let tickets: Vec<SignedTicket> = (2..2 + BURST).map(ticket).collect();
    let burst = {
        let (on_a, on_b) = (on_a.clone(), on_b.clone());
        let tickets = tickets.clone();
        let payee = std::sync::Arc::clone(&payee);
        tokio::spawn(async move {
            let mut nonce = raced_nonce;
            let mut acknowledged = 0u64;
            for (i, t) in tickets.iter().enumerate() {
                let request = payee.redeem(nonce + 1, *t);
                let first = if i % 2 == 0 { &on_a } else { &on_b };
                let sent = match first.execute_signed(&request).await {
                    Ok(r) => Ok(r),
                    // A is gone: the same request goes to B. It may have committed on A already.
                    Err(_) => on_b.execute_signed(&request).await,
                };
                match sent {
                    Ok(_) => {
                        acknowledged += 1;
                        nonce += 1;
                    }
                    Err(e) if e.code() == Some(tonic::Code::Aborted) => {
                        // Committed on A before it died: the nonce is used, the ticket paid.
                        nonce += 1;
                    }
                    Err(e) => panic!("redemption {i} refused: {e}"),
                }
            }
            acknowledged
        })
    };
    let mut a = a;
    loop {
        if on_b.account(worker.id()).await.expect("worker").balance >= 60 * FACE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let round_at_kill = on_b.sip_status(0, 0).await.expect("sip").round;
    a.child.0.kill().expect("SIGKILL");
    let _ = a.child.0.wait();
    let acknowledged = burst.await.expect("burst");
    assert!(acknowledged > 0);

    // Every ticket paid exactly once: the balance is the committed redemptions', and each ticket
    // sent again through B is refused as already paid.
    let info = on_b.account(worker.id()).await.expect("worker");
    let committed = info.nonce - raced_nonce;
    assert_eq!(committed, BURST, "every ticket of the burst committed once");
    assert_eq!(info.balance, FACE * (1 + BURST));
    let sender_now = on_b.account(sender.id()).await.expect("sender");
    assert_eq!(sender_now.deposit, DEPOSIT - FACE * (1 + BURST));
    for (i, t) in tickets.iter().enumerate().step_by(37) {
        let again = redeem(info.nonce + 1, *t);
        let refused = on_b.execute_signed(&again).await.expect_err("paid twice");
        assert_eq!(
            refused.code(),
            Some(tonic::Code::AlreadyExists),
            "ticket {i}: {refused}"
        );
    }

    // Whichever held the round clock, B holds it within three rounds of A's death and moves it on.
    rounds_move_on(&on_b, round_at_kill).await;
    drop(b);
}

/// Sends `RACERS` redemptions of one winning ticket of `payee`'s, under distinct nonces, to `clients`
/// in turn, all at once: exactly one pays, every other is refused as paid or as a lost race, and every
/// coordinator sees the payee's balance at one face value.
pub(crate) async fn race_one_ticket(clients: &[DualrigClient], payee: &Payee) {
    let race = payee.ticket(1);
    let calls = (0..RACERS).map(|i| {
        let client = clients[i as usize % clients.len()].clone();
        let request = payee.redeem(i + 1, race);
        async move { client.execute_signed(&request).await }
    });
    let outcomes = futures::future::join_all(calls).await;
    let paid = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(paid, 1, "{outcomes:?}");
    for refused in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert!(
            matches!(
                refused.code(),
                Some(tonic::Code::AlreadyExists | tonic::Code::Aborted)
            ),
            "{refused}"
        );
    }
    for client in clients {
        assert_eq!(
            client.account(payee.key.id()).await.expect("payee").balance,
            FACE
        );
    }
}

/// Waits until `client`'s coordinator is five rounds past `round_at_kill`: the round clock moved on
/// after a kill, whichever coordinator held it, within the lease's takeover bound.
pub(crate) async fn rounds_move_on(client: &DualrigClient, round_at_kill: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let round = client.sip_status(0, 0).await.expect("sip").round;
        if round >= round_at_kill + 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the round stalled at {round} after the kill (was {round_at_kill})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The coordinators `client` lists, as (key, advertised address).
async fn listed(client: &DualrigClient) -> Vec<(Vec<u8>, String)> {
    let mut all: Vec<_> = client
        .list_coordinators()
        .await
        .expect("list coordinators")
        .coordinators
        .into_iter()
        .map(|c| (c.id, c.advertise_addr))
        .collect();
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinators_on_one_database_list_each_other_forget_a_killed_one_and_refuse_its_key_twice()
{
    let Some(url) = postgres_schema_or_rerun(
        "cluster::coordinators_on_one_database_list_each_other_forget_a_killed_one_and_refuse_its_key_twice",
        "registry",
    ) else {
        return;
    };
    let (a_dir, b_dir, twin_dir) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let args = ["--database-url", url.as_str(), "--round-secs", "1"];
    let a = CoordinatorProcess::start(a_dir.path(), &args);
    let b = CoordinatorProcess::start(b_dir.path(), &args);
    let key_of = |dir: &Path| {
        Identity::load_or_create(&dir.join("coordinator.key"))
            .expect("key")
            .id()
            .as_bytes()
            .to_vec()
    };
    let mut both = vec![
        (key_of(a_dir.path()), a.url.clone()),
        (key_of(b_dir.path()), b.url.clone()),
    ];
    both.sort();
    let on_a = DualrigClient::connect(&a.url).await.expect("connect a");
    let on_b = DualrigClient::connect(&b.url).await.expect("connect b");
    assert_eq!(listed(&on_a).await, both);
    assert_eq!(listed(&on_b).await, both);

    // One of them holds the round clock, and both say which.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = on_b.list_coordinators().await.expect("list");
        let holders: Vec<_> = list.coordinators.iter().filter(|c| c.round_clock).collect();
        if holders.len() == 1 {
            assert_eq!(holders[0].id, list.round_clock_holder);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no coordinator holds the round clock: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A second coordinator with A's key, while A runs, is refused and changes nothing.
    std::fs::copy(
        a_dir.path().join("coordinator.key"),
        twin_dir.path().join("coordinator.key"),
    )
    .expect("copy key");
    let twin = std::process::Command::new(env!("CARGO_BIN_EXE_dualrig-coordinator"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--heartbeat-interval-secs",
            "0.5",
        ])
        .arg("--data-dir")
        .arg(twin_dir.path())
        .args(args)
        .output()
        .expect("run the twin");
    let said = String::from_utf8_lossy(&twin.stderr);
    assert!(
        !twin.status.success(),
        "a second run of A's key started: {said}"
    );
    assert!(
        said.contains("is in use by another running coordinator") && said.contains(&a.url),
        "{said}"
    );
    assert_eq!(listed(&on_b).await, both);

    // A killed with SIGKILL leaves no goodbye; B stops listing it once it is silent.
    let mut a = a;
    a.child.0.kill().expect("SIGKILL");
    let _ = a.child.0.wait();
    let only_b = vec![(key_of(b_dir.path()), b.url.clone())];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = listed(&on_b).await;
        if now == only_b {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B still lists {now:?} after A's kill"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A restarted on its own data dir takes its key's row back: its old run is silent.
    let a = CoordinatorProcess::start(a_dir.path(), &args);
    let mut again = vec![(key_of(a_dir.path()), a.url.clone()), only_b[0].clone()];
    again.sort();
    assert_eq!(listed(&on_b).await, again);
    drop((a, b));
}
