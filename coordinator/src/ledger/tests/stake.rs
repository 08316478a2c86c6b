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

#[test]
fn slashes_page_in_order_and_evidence_is_pruned_by_age_then_least_slashed_first() {
    let (staked, free, other) = (actor(1), actor(2), actor(3));
    let h = Harness::in_memory(&[(&staked, 1000), (&free, 1000), (&other, 1000)]);
    h.ok(&staked, Operation::Bond { amount: 1000 });
    let tenth = SlashFraction::from_ppm(100_000).expect("ppm");
    let item = |n: u8, size: u64| StoredEvidence {
        hash: [n; 32],
        size,
        kept: true,
    };
    let slash = |who: &Identity, stored: StoredEvidence, at_unix: u64| {
        let note = SlashNote {
            evidence: b"verdict",
            stored: Some(stored),
            at_unix,
            forfeits_held_back: false,
        };
        h.ledger
            .slash_noted(&who.id(), tenth, &note)
            .expect("slash")
    };
    // The staked worker's slash moves 100; the unstaked ones move nothing.
    let old = slash(&other, item(9, 10), 50);
    let kept = slash(&staked, item(1, 400), 1000);
    let first_free = slash(&free, item(2, 400), 1001);
    let second_free = slash(&free, item(3, 400), 1002);
    // The same evidence twice is counted once.
    let again = slash(&other, item(3, 400), 1003);
    assert_eq!(kept.amount, 100);
    assert_eq!(first_free.amount, 0);

    let page = h.ledger.slashes_page(None, 0, 2).expect("page");
    assert_eq!(page, vec![old.clone(), kept.clone()]);
    let page = h.ledger.slashes_page(None, kept.id, 10).expect("page");
    assert_eq!(page.len(), 3);
    let page = h.ledger.slashes_page(Some(free.id()), 0, 10).expect("page");
    assert_eq!(page, vec![first_free.clone(), second_free.clone()]);

    // Under 900 bytes kept, recorded since 100: the old item goes for age; then the unstaked slashes'
    // evidence, oldest first, until the rest fits; item 3 goes only once neither slash naming it keeps it.
    let unnamed = h.ledger.prune_evidence(900, 100).expect("prune");
    assert_eq!(unnamed, vec![[9; 32], [2; 32]]);
    let kept_now = h.ledger.kept_evidence().expect("kept");
    assert_eq!(kept_now, [[1; 32], [3; 32]].into());
    let unnamed = h.ledger.prune_evidence(400, 100).expect("prune");
    assert_eq!(unnamed, vec![[3; 32]]);
    let listed = h.ledger.all_slashes().expect("all");
    let kept_flags: Vec<bool> = listed
        .iter()
        .map(|r| r.stored.expect("stored").kept)
        .collect();
    assert_eq!(kept_flags, [false, true, false, false, false]);
    assert_eq!(listed[4].id, again.id);
    // Nothing left to drop.
    assert!(h.ledger.prune_evidence(400, 100).expect("prune").is_empty());
}

#[test]
fn evidence_kept_in_the_database_lives_and_goes_with_the_slashes_naming_it() {
    let (a, b) = (actor(1), actor(2));
    let h = Harness::in_memory(&[(&a, 1000), (&b, 1000)]);
    let tenth = SlashFraction::from_ppm(100_000).expect("ppm");
    let whole = |n: u8| vec![n; 300];
    let slash = |who: &Identity, bytes: &[u8], kept: bool, at_unix: u64| {
        let named = crate::evidence::EvidenceRef::of(bytes);
        let note = SlashNote {
            evidence: b"verdict",
            stored: Some(StoredEvidence {
                hash: named.hash,
                size: named.size,
                kept,
            }),
            at_unix,
            forfeits_held_back: false,
        };
        h.ledger
            .slash_keeping(&who.id(), tenth, &note, bytes)
            .expect("slash");
        named.hash
    };
    let first = slash(&a, &whole(1), true, 10);
    let second = slash(&b, &whole(2), true, 20);
    // The same evidence named twice is one item; a slash whose item was too large to keep writes none.
    assert_eq!(slash(&b, &whole(2), true, 21), second);
    let unkept = slash(&a, &whole(3), false, 30);
    assert_eq!(
        h.ledger.evidence_item(&first).expect("read"),
        Some(whole(1))
    );
    assert_eq!(h.ledger.evidence_item(&unkept).expect("read"), None);
    assert_eq!(h.ledger.evidence_item_bytes().expect("bytes"), 600);

    // Dropped for age in the transaction that drops its last kept slash.
    assert_eq!(
        h.ledger.prune_evidence(10_000, 15).expect("prune"),
        vec![first]
    );
    assert_eq!(h.ledger.evidence_item(&first).expect("read"), None);
    assert_eq!(
        h.ledger.evidence_item(&second).expect("read"),
        Some(whole(2))
    );

    // An item no kept slash names (a file moved in for a slash since dropped) goes at the sweep.
    h.ledger
        .put_evidence_item(&[7; 32], b"orphan", 40)
        .expect("put");
    assert_eq!(h.ledger.sweep_evidence_items().expect("sweep"), 1);
    assert_eq!(h.ledger.evidence_item_bytes().expect("bytes"), 300);
}

#[test]
fn a_version_1_ledger_keeps_its_inline_evidence_after_the_upgrade() {
    let worker = actor(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.db");
    // A ledger as version 1 wrote it: the slashes table without the evidence store's columns.
    {
        let conn = rusqlite::Connection::open(&path).expect("open");
        let tx = conn.unchecked_transaction().expect("tx");
        tx.execute_batch(super::super::schema::TABLES_V1_FOR_TESTS)
            .expect("v1 tables");
        tx.execute("INSERT INTO meta (key, value) VALUES ('schema', 1)", [])
            .expect("version");
        tx.execute(
            "INSERT INTO slashes (worker, round, fraction_ppm, amount, evidence) VALUES (?1, 3, 1000, 7, ?2)",
            rusqlite::params![worker.id().as_bytes().to_vec(), b"inline evidence".to_vec()],
        )
        .expect("v1 slash");
        tx.commit().expect("commit");
    }
    let ledger = Ledger::open(&path, CONFIG, &genesis(&[(&worker, 1000)])).expect("upgrades");
    let listed = ledger.slashes(&worker.id()).expect("slashes");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].amount,
            listed[0].evidence.as_slice(),
            listed[0].stored
        ),
        (7, &b"inline evidence"[..], None)
    );
    assert!(ledger.kept_evidence().expect("kept").is_empty());
}
