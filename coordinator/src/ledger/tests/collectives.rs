//! Collectives: create and add by the owner only, join locks the access stake, leave releases it after
//! `unbonding_rounds`, the per-round allotment, and every refusal leaving the ledger as it was.

use super::*;

fn rules(access_stake: u64, free: u64) -> CollectiveRules {
    CollectiveRules {
        access_stake,
        price_per_byte: 2,
        free_bytes_per_round: free,
        replicas: 3,
    }
}

fn create(name: &str, stake: u64) -> Operation {
    Operation::CreateCollective {
        name: name.into(),
        rules: rules(stake, 100),
    }
}

fn join(name: &str) -> Operation {
    Operation::JoinCollective { name: name.into() }
}

fn leave(name: &str) -> Operation {
    Operation::LeaveCollective { name: name.into() }
}

/// `op` by `who` is refused with an error `check` accepts, and no row changes.
fn refused(h: &Harness, who: &Identity, op: Operation, check: impl Fn(&LedgerError) -> bool) {
    let before = h.ledger.snapshot().expect("snapshot");
    let shown = format!("{op:?}");
    let e = h.act(who, op).expect_err(&shown);
    assert!(check(&e), "{shown}: {e}");
    assert_eq!(h.ledger.snapshot().expect("snapshot"), before, "{shown}");
}

#[test]
fn join_locks_the_stake_and_leave_returns_it_only_after_the_unbonding_rounds() {
    let (owner, member) = (actor(1), actor(2));
    let h = Harness::in_memory(&[(&owner, 1_000), (&member, 500)]);
    h.ok(&owner, create("films", 300));
    h.ok(&member, join("films"));
    assert_eq!(h.ledger.balance(&member.id()).expect("balance"), 200);
    assert!(h.ledger.is_member("films", &member.id()).expect("member"));
    let c = h.ledger.collective("films").expect("collective");
    assert_eq!((c.members, c.stake_locked, c.owner), (1, 300, owner.id()));
    assert_eq!(h.ledger.supply().expect("supply"), 1_500);

    h.ok(&member, leave("films"));
    assert!(!h.ledger.is_member("films", &member.id()).expect("member"));
    assert_eq!(h.ledger.supply().expect("supply"), 1_500);
    for _ in 0..CONFIG.unbonding_rounds - 1 {
        h.ledger.advance_round().expect("round");
        refused(&h, &member, Operation::WithdrawUnbonded, |e| {
            matches!(
                e,
                LedgerError::NothingUnbonded {
                    next_release: Some(3),
                    ..
                }
            )
        });
    }
    h.ledger.advance_round().expect("round");
    assert_eq!(
        h.ok(&member, Operation::WithdrawUnbonded),
        Receipt::Withdrawn { amount: 300 }
    );
    assert_eq!(h.ledger.balance(&member.id()).expect("balance"), 500);
}

#[test]
fn refusals_name_what_is_wrong_and_change_nothing() {
    let (owner, member, poor) = (actor(1), actor(2), actor(3));
    let h = Harness::in_memory(&[(&owner, 1_000), (&member, 500), (&poor, 10)]);
    h.ok(&owner, create("films", 300));
    h.ok(&member, join("films"));
    refused(&h, &owner, create("films", 1), |e| {
        matches!(e, LedgerError::CollectiveExists { .. })
    });
    for bad in ["", "Films", "a b", &"x".repeat(65)] {
        refused(&h, &owner, create(bad, 1), |e| {
            matches!(e, LedgerError::CollectiveName(_))
        });
    }
    refused(
        &h,
        &owner,
        Operation::CreateCollective {
            name: "many".into(),
            rules: CollectiveRules {
                replicas: 17,
                ..rules(0, 0)
            },
        },
        |e| matches!(e, LedgerError::CollectiveReplicas { .. }),
    );
    refused(
        &h,
        &member,
        Operation::AddToCollective {
            name: "films".into(),
            root: [1; 32],
        },
        |e| matches!(e, LedgerError::NotCollectiveOwner { .. }),
    );
    refused(&h, &member, join("films"), |e| {
        matches!(e, LedgerError::AlreadyMember { .. })
    });
    refused(&h, &poor, join("films"), |e| {
        matches!(
            e,
            LedgerError::AccessStakeShort {
                needed: 300,
                available: 10,
                ..
            }
        )
    });
    refused(&h, &poor, leave("films"), |e| {
        matches!(e, LedgerError::NotMember { .. })
    });
    refused(&h, &poor, join("nothing"), |e| {
        matches!(e, LedgerError::NoSuchCollective { .. })
    });
    let add = Operation::AddToCollective {
        name: "films".into(),
        root: [1; 32],
    };
    h.ok(&owner, add.clone());
    refused(&h, &owner, add, |e| {
        matches!(e, LedgerError::BlobAlreadyInCollective { .. })
    });
}

#[test]
fn the_allotment_is_counted_per_round_and_renews() {
    let (owner, member, stranger) = (actor(1), actor(2), actor(3));
    let h = Harness::in_memory(&[(&owner, 1_000), (&member, 500)]);
    h.ok(&owner, create("films", 0));
    h.ok(&member, join("films"));
    let e = h
        .ledger
        .admit_collective_get("films", &stranger.id(), 1, false)
        .expect_err("stranger");
    assert!(
        matches!(
            e,
            LedgerError::NotMemberForGet {
                access_stake: 0,
                ..
            }
        ),
        "{e}"
    );
    let a = h
        .ledger
        .admit_collective_get("films", &member.id(), 60, false)
        .expect("first");
    assert_eq!(a.used, 60);
    let e = h
        .ledger
        .admit_collective_get("films", &member.id(), 41, false)
        .expect_err("over the allotment");
    assert!(
        matches!(
            e,
            LedgerError::AllotmentUsed {
                used: 60,
                free_bytes: 100,
                asked: 41,
                renews_round: 1,
                ..
            }
        ),
        "{e}"
    );
    h.ledger
        .admit_collective_get("films", &member.id(), 40, false)
        .expect("what is left");
    h.ledger.advance_round().expect("round");
    assert_eq!(
        h.ledger
            .admit_collective_get("films", &member.id(), 100, false)
            .expect("renewed")
            .used,
        100
    );
}

#[test]
fn a_version_2_ledger_gains_collectives_and_keeps_its_accounts() {
    let (owner, member) = (actor(1), actor(2));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.db");
    // A ledger as version 2 left it, with two accounts.
    version_2_ledger(&path, &[("genesis", 700)], &[(&owner, 400), (&member, 300)]);
    let ledger = Ledger::open(&path, CONFIG, &genesis(&[])).expect("upgrades");
    let h = Harness {
        ledger,
        _place: None,
    };
    assert_eq!(h.ledger.balance(&owner.id()).expect("balance"), 400);
    h.ok(&owner, create("films", 100));
    h.ok(&member, join("films"));
    assert_eq!(h.ledger.supply().expect("supply"), 700);
    drop(h);
    // Opened again, the version is the current one and nothing runs twice.
    let again = Ledger::open(&path, CONFIG, &genesis(&[])).expect("reopens");
    assert!(again.is_member("films", &member.id()).expect("member"));
}
