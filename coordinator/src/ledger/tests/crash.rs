//! Crash safety: a process redeeming a burst of tickets is killed with SIGKILL mid-burst; the reopened
//! ledger holds exactly the redemptions that committed, each paid once.
//!
//! The child is this test binary run again with [`CHILD_ENV`] set, selecting [`redemption_burst_child`].

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use super::*;

const CHILD_ENV: &str = "DUALRIG_LEDGER_CRASH_CHILD_DB";
/// More redemptions than the child can finish before it is killed.
const BURST: u64 = 100_000;
/// Commits the parent waits to see before it kills the child.
const KILL_AFTER: u64 = 40;
const DEPOSIT: u64 = 1_000_000_000_000;

fn face(i: u64) -> u64 {
    1_000 + i
}

fn burst_ticket(i: u64) -> (SignedTicket, [u8; 32]) {
    winning_ticket(&actor(1), &actor(2).id(), face(i), u64::MAX, i)
}

/// In the child process: redeem the burst in order, reporting each commit on stdout.
#[test]
fn redemption_burst_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let ledger = open_again(&path.to_string_lossy());
    let worker = actor(2);
    for i in 0..BURST {
        let (t, r) = burst_ticket(i);
        let request = SignedRequest::sign(&worker, i + 1, &redeem_op(t, r));
        ledger.execute(&request).expect("redeem");
        println!("committed {i}");
    }
}

#[test]
fn ledger_survives_sigkill_mid_burst() {
    let (client, worker) = (actor(1), actor(2));
    let place = Place::fresh();
    let path = place.at().to_owned();
    {
        let h = place.open(CONFIG, &genesis(&[(&client, DEPOSIT)]));
        h.execute(&SignedRequest::sign(
            &client,
            1,
            &Operation::Deposit { amount: DEPOSIT },
        ))
        .expect("deposit");
    }

    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "ledger::tests::crash::redemption_burst_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut acknowledged = 0u64;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child");
        if line.starts_with("committed ") {
            acknowledged += 1;
            if acknowledged == KILL_AFTER {
                break;
            }
        }
    }
    assert_eq!(acknowledged, KILL_AFTER, "child stopped before the kill");
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("reap");
    assert!(
        !status.success(),
        "child finished the whole burst: {status}"
    );

    let ledger = open_again(&path);
    if let Some(integrity) = ledger.store.with_sqlite(|conn| {
        conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
            .expect("integrity_check")
    }) {
        assert_eq!(integrity, "ok");
    }

    // The child redeems in order, so what committed is a prefix of the burst, at least as long as
    // what it reported, and not all of it.
    let committed = (0..BURST)
        .take_while(|i| {
            ledger
                .is_redeemed(&burst_ticket(*i).0.ticket_hash())
                .expect("lookup")
        })
        .count() as u64;
    assert!((KILL_AFTER..BURST).contains(&committed), "{committed}");
    assert!(
        !ledger
            .is_redeemed(&burst_ticket(committed + 1).0.ticket_hash())
            .expect("lookup"),
        "redemptions committed out of order"
    );
    let paid: u64 = (0..committed).map(face).sum();
    assert_eq!(ledger.balance(&worker.id()).expect("balance"), paid);
    assert_eq!(
        ledger.sender(&client.id()).expect("sender").deposit,
        DEPOSIT - paid
    );
    assert_eq!(ledger.last_nonce(&worker.id()).expect("nonce"), committed);
    assert_eq!(ledger.supply().expect("supply"), u128::from(DEPOSIT));

    // Nothing is paid twice: a committed ticket is refused, the next one is paid.
    let (t, r) = burst_ticket(committed - 1);
    let again = SignedRequest::sign(&worker, committed + 1, &redeem_op(t, r));
    assert!(matches!(
        ledger.execute(&again),
        Err(LedgerError::AlreadyRedeemed { .. })
    ));
    let (t, r) = burst_ticket(committed);
    ledger
        .execute(&SignedRequest::sign(
            &worker,
            committed + 1,
            &redeem_op(t, r),
        ))
        .expect("next redemption");
    assert_eq!(
        ledger.balance(&worker.id()).expect("balance"),
        paid + face(committed)
    );
}
