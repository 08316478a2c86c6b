//! Who may move funds: signatures, nonces, transfers, genesis and the database settings.

use super::*;

#[test]
fn transfer_moves_funds_between_accounts() {
    let (alice, bob) = (actor(1), actor(2));
    let h = Harness::on_disk(&[(&alice, 1000)]);
    h.ok(
        &alice,
        Operation::Transfer {
            to: bob.id(),
            amount: 300,
        },
    );
    assert_eq!(h.balance(&alice), 700);
    assert_eq!(h.balance(&bob), 300);
    assert_eq!(h.ledger.supply().expect("supply"), 1000);
}

#[test]
fn nobody_moves_another_accounts_funds() {
    let (alice, mallory) = (actor(1), actor(3));
    let h = Harness::in_memory(&[(&alice, 1000)]);
    let op = Operation::Transfer {
        to: mallory.id(),
        amount: 1000,
    };
    let mut forged = SignedRequest::sign(&mallory, 1, &op);
    forged.account = alice.id();
    let before = h.ledger.snapshot().expect("snapshot");
    assert!(matches!(
        h.ledger.execute(&forged),
        Err(LedgerError::BadSignature { account }) if account == alice.id()
    ));
    assert_eq!(h.ledger.snapshot().expect("snapshot"), before);
}

#[test]
fn a_request_is_accepted_once_and_nonces_only_go_up() {
    let (alice, bob) = (actor(1), actor(2));
    let h = Harness::in_memory(&[(&alice, 1000)]);
    let op = Operation::Transfer {
        to: bob.id(),
        amount: 10,
    };
    let first = SignedRequest::sign(&alice, 5, &op);
    h.ledger.execute(&first).expect("first");
    let before = h.ledger.snapshot().expect("snapshot");
    for replay in [first, SignedRequest::sign(&alice, 4, &op)] {
        assert!(matches!(
            h.ledger.execute(&replay),
            Err(LedgerError::StaleNonce { last: 5, .. })
        ));
    }
    assert_eq!(h.ledger.snapshot().expect("snapshot"), before);
    h.ledger
        .execute(&SignedRequest::sign(&alice, 6, &op))
        .expect("next nonce");
    assert_eq!(h.balance(&bob), 20);
}

#[test]
fn a_refused_request_does_not_use_up_its_nonce() {
    let (alice, bob) = (actor(1), actor(2));
    let h = Harness::in_memory(&[(&alice, 10)]);
    let too_much = SignedRequest::sign(
        &alice,
        1,
        &Operation::Transfer {
            to: bob.id(),
            amount: 11,
        },
    );
    assert!(matches!(
        h.ledger.execute(&too_much),
        Err(LedgerError::InsufficientBalance {
            available: 10,
            needed: 11,
            ..
        })
    ));
    assert_eq!(h.ledger.last_nonce(&alice.id()).expect("nonce"), 0);
    h.ledger
        .execute(&SignedRequest::sign(
            &alice,
            1,
            &Operation::Transfer {
                to: bob.id(),
                amount: 10,
            },
        ))
        .expect("same nonce, affordable");
}

#[test]
fn transfers_refuse_zero_and_keyless_recipients() {
    let alice = actor(1);
    let h = Harness::in_memory(&[(&alice, 10)]);
    assert!(matches!(
        h.refused(
            &alice,
            Operation::Transfer {
                to: actor(2).id(),
                amount: 0
            }
        ),
        LedgerError::ZeroAmount
    ));
    // y = 2 is not on the curve: no key could ever spend from there.
    let mut nowhere = [0u8; 32];
    nowhere[0] = 2;
    assert!(matches!(
        h.refused(
            &alice,
            Operation::Transfer {
                to: PublicId(nowhere),
                amount: 1
            }
        ),
        LedgerError::InvalidAccount { .. }
    ));
}

#[test]
fn malformed_operation_bytes_are_refused() {
    let alice = actor(1);
    let h = Harness::in_memory(&[(&alice, 10)]);
    let bytes = vec![1, 2, 3];
    let sig = alice.sign(&request_message(&alice.id(), 1, &bytes));
    let req = SignedRequest::from_parts(alice.id(), 1, bytes, &sig).expect("parts");
    assert!(matches!(
        h.ledger.execute(&req),
        Err(LedgerError::Request(RequestError::Length { .. }))
    ));
}

#[test]
fn genesis_is_applied_on_first_run_only() {
    let (alice, bob) = (actor(1), actor(2));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.db");
    {
        let ledger = Ledger::open(&path, CONFIG, &genesis(&[(&alice, 500)])).expect("first open");
        assert_eq!(ledger.balance(&alice.id()).expect("balance"), 500);
    }
    let ledger = Ledger::open(&path, CONFIG, &genesis(&[(&alice, 9), (&bob, 9)])).expect("again");
    assert_eq!(ledger.balance(&alice.id()).expect("balance"), 500);
    assert_eq!(ledger.balance(&bob.id()).expect("balance"), 0);
    assert_eq!(ledger.supply().expect("supply"), 500);
}

#[test]
fn file_ledger_uses_wal_and_full_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(&dir.path().join("ledger.db"), CONFIG, &genesis(&[])).expect("open");
    let (mode, sync) = ledger
        .store
        .with_sqlite(|conn| {
            let mode: String = conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .expect("journal_mode");
            let sync: i64 = conn
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .expect("synchronous");
            (mode, sync)
        })
        .expect("a file ledger is SQLite");
    assert_eq!(mode, "wal");
    assert_eq!(sync, 2, "synchronous=FULL");
}

#[test]
fn pool_pays_rewards_only_from_what_it_holds() {
    let (alice, worker) = (actor(1), actor(2));
    let h = Harness::in_memory(&[(&worker, 1000)]);
    h.ok(&worker, Operation::Bond { amount: 1000 });
    h.ledger
        .slash(
            &worker.id(),
            SlashFraction::from_ppm(100_000).expect("ppm"),
            b"evidence",
        )
        .expect("slash");
    assert_eq!(h.ledger.pool_balance().expect("pool"), 100);
    assert!(matches!(
        h.ledger.pay_from_pool(&alice.id(), 101),
        Err(LedgerError::InsufficientPool {
            available: 100,
            needed: 101
        })
    ));
    h.ledger.pay_from_pool(&alice.id(), 60).expect("reward");
    assert_eq!(h.balance(&alice), 60);
    assert_eq!(h.ledger.pool_balance().expect("pool"), 40);
    assert_eq!(h.ledger.supply().expect("supply"), 1000);
}

#[tokio::test]
async fn async_callers_use_a_blocking_thread() {
    let alice = actor(1);
    let h = Harness::in_memory(&[(&alice, 7)]);
    let ledger = std::sync::Arc::new(h.ledger);
    let id = alice.id();
    let balance = ledger.call(move |l| l.balance(&id)).await.expect("call");
    assert_eq!(balance, 7);
}
