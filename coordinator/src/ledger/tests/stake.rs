//! Bonding, delegation, unbonding and slashing.

use super::*;

#[test]
fn bond_and_delegation_add_up_to_a_workers_stake() {
    let (worker, fan) = (actor(1), actor(2));
    let h = Harness::in_memory(&[(&worker, 1000), (&fan, 1000)]);
    h.ok(&worker, Operation::Bond { amount: 60 });
    assert_eq!(
        h.ledger.stake_of(&worker.id()).expect("stake"),
        None,
        "below min_stake"
    );
    h.ok(
        &fan,
        Operation::Delegate {
            worker: worker.id(),
            amount: 40,
        },
    );
    assert_eq!(h.ledger.stake_of(&worker.id()).expect("stake"), Some(100));
    assert_eq!(h.ledger.bonded(&worker.id(), &fan.id()).expect("bond"), 40);
    assert_eq!(
        h.ledger.eligible_stakes().expect("eligible"),
        vec![(worker.id(), 100)]
    );
    assert_eq!(h.balance(&worker), 940);
    assert_eq!(h.balance(&fan), 960);
}

#[test]
fn unbonded_stake_returns_only_after_the_wait() {
    let worker = actor(1);
    let h = Harness::on_disk(&[(&worker, 1000)]);
    h.ok(&worker, Operation::Bond { amount: 500 });
    h.ok(
        &worker,
        Operation::Unbond {
            worker: worker.id(),
            amount: 200,
        },
    );
    assert_eq!(h.ledger.total_stake(&worker.id()).expect("stake"), 300);
    assert_eq!(
        h.ledger.unbonding(&worker.id()).expect("unbonding"),
        vec![UnbondingEntry {
            worker: worker.id(),
            amount: 200,
            release_round: 3
        }]
    );
    h.advance(2);
    assert!(matches!(
        h.refused(&worker, Operation::WithdrawUnbonded),
        LedgerError::NothingUnbonded {
            next_release: Some(3),
            ..
        }
    ));
    h.advance(1);
    assert_eq!(
        h.ok(&worker, Operation::WithdrawUnbonded),
        Receipt::Withdrawn { amount: 200 }
    );
    assert_eq!(h.balance(&worker), 700);
    assert!(
        h.ledger
            .unbonding(&worker.id())
            .expect("unbonding")
            .is_empty()
    );
}

#[test]
fn unbonding_more_than_bonded_is_refused() {
    let (worker, fan) = (actor(1), actor(2));
    let h = Harness::in_memory(&[(&worker, 1000), (&fan, 1000)]);
    h.ok(&worker, Operation::Bond { amount: 100 });
    assert!(matches!(
        h.refused(
            &fan,
            Operation::Unbond {
                worker: worker.id(),
                amount: 1
            }
        ),
        LedgerError::InsufficientBond { bonded: 0, .. }
    ));
    assert!(matches!(
        h.refused(
            &worker,
            Operation::Unbond {
                worker: worker.id(),
                amount: 101
            }
        ),
        LedgerError::InsufficientBond { bonded: 100, .. }
    ));
    assert!(matches!(
        h.refused(&worker, Operation::Bond { amount: 901 }),
        LedgerError::InsufficientBalance { .. }
    ));
}

#[test]
fn slash_moves_stake_to_the_pool_records_evidence_and_suspends() {
    let (worker, fan) = (actor(1), actor(2));
    let h = Harness::on_disk(&[(&worker, 1000), (&fan, 1000)]);
    h.ok(&worker, Operation::Bond { amount: 400 });
    h.ok(
        &fan,
        Operation::Delegate {
            worker: worker.id(),
            amount: 200,
        },
    );
    h.ok(
        &worker,
        Operation::Unbond {
            worker: worker.id(),
            amount: 100,
        },
    );
    h.advance(1);
    let quarter = SlashFraction::from_ppm(250_000).expect("ppm");
    let record = h
        .ledger
        .slash(
            &worker.id(),
            quarter,
            b"signed result that failed to decode",
        )
        .expect("slash");
    // 300 self-bonded, 200 delegated, 100 unbonding: a quarter of each.
    assert_eq!(record.amount, 75 + 50 + 25);
    assert_eq!(record.round, 1);
    assert_eq!(h.ledger.bonded(&worker.id(), &worker.id()).expect("b"), 225);
    assert_eq!(h.ledger.bonded(&worker.id(), &fan.id()).expect("b"), 150);
    assert_eq!(h.ledger.unbonding(&worker.id()).expect("u")[0].amount, 75);
    assert_eq!(h.ledger.pool_balance().expect("pool"), 150);
    assert_eq!(h.ledger.supply().expect("supply"), 2000);
    assert_eq!(
        h.ledger.slashes(&worker.id()).expect("slashes"),
        vec![record]
    );

    assert_eq!(h.ledger.suspended_until(&worker.id()).expect("s"), Some(3));
    assert_eq!(h.ledger.stake_of(&worker.id()).expect("stake"), None);
    assert!(h.ledger.eligible_stakes().expect("eligible").is_empty());
    h.advance(2);
    assert_eq!(h.ledger.suspended_until(&worker.id()).expect("s"), None);
    assert_eq!(h.ledger.stake_of(&worker.id()).expect("stake"), Some(375));
}

#[test]
fn slash_fraction_is_bounded_and_exact() {
    assert!(matches!(
        SlashFraction::from_ppm(1_000_001),
        Err(LedgerError::BadFraction { .. })
    ));
    assert_eq!(SlashFraction::WHOLE.of(u64::MAX), u64::MAX);
    let third = SlashFraction::from_ppm(333_333).expect("ppm");
    assert_eq!(third.of(3_000_000), 999_999);
    assert_eq!(third.of(2), 0);
}

#[test]
fn whole_slash_clears_the_stake() {
    let worker = actor(1);
    let h = Harness::in_memory(&[(&worker, 500)]);
    h.ok(&worker, Operation::Bond { amount: 500 });
    h.ledger
        .slash(&worker.id(), SlashFraction::WHOLE, b"forged result")
        .expect("slash");
    assert_eq!(h.ledger.total_stake(&worker.id()).expect("stake"), 0);
    assert_eq!(h.ledger.pool_balance().expect("pool"), 500);
    assert!(matches!(
        h.refused(
            &worker,
            Operation::Unbond {
                worker: worker.id(),
                amount: 1
            }
        ),
        LedgerError::InsufficientBond { .. }
    ));
}

#[test]
fn all_slashes_lists_every_worker_in_the_order_slashed() {
    let (a, b) = (actor(1), actor(2));
    let h = Harness::in_memory(&[(&a, 1000), (&b, 1000)]);
    h.ok(&a, Operation::Bond { amount: 1000 });
    h.ok(&b, Operation::Bond { amount: 1000 });
    let tenth = SlashFraction::from_ppm(100_000).expect("ppm");
    let first = h.ledger.slash(&b.id(), tenth, b"b first").expect("slash");
    let second = h.ledger.slash(&a.id(), tenth, b"then a").expect("slash");
    let third = h.ledger.slash(&b.id(), tenth, b"b again").expect("slash");
    assert_eq!(
        h.ledger.all_slashes().expect("all"),
        vec![first.clone(), second, third.clone()]
    );
    assert_eq!(h.ledger.slashes(&b.id()).expect("b's"), vec![first, third]);
}
