//! Hosting payouts: the split, the mint, the empty round, held-back earnings, forfeits, and the
//! statements that reproduce them.

use super::*;

fn credit(who: &Identity, credited: u64) -> ProofCredit {
    ProofCredit {
        worker: who.id(),
        proven_bytes: credited,
        credited,
    }
}

/// Workers with `min_stake` bonded, on a ledger minting 1000 a round, nothing held back.
fn staked(workers: &[&Identity]) -> Harness {
    let config = LedgerConfig {
        hosting: HostingRules {
            held_back_ppm: [0; HELD_BACK_STEPS],
            ..HOSTING_CONFIG.hosting
        },
        ..HOSTING_CONFIG
    };
    let balances: Vec<(&Identity, u64)> = workers.iter().map(|w| (*w, 1_000)).collect();
    let h = Harness::in_memory_with(config, &balances);
    for w in workers {
        h.act(w, Operation::Bond { amount: 100 }).expect("bond");
    }
    h
}

#[test]
fn a_payout_splits_the_rounds_mint_by_credit_and_mints_only_that() {
    let (a, b) = (actor(1), actor(2));
    let h = staked(&[&a, &b]);
    let supply = h.ledger.supply().expect("supply");
    let paid = h
        .ledger
        .pay_hosting(&[credit(&a, 1 << 30), credit(&b, 2 << 30)])
        .expect("pay");
    // Round 0 is the first payout: it covers that one round.
    assert_eq!(paid.round.rounds_covered, 1);
    assert_eq!(paid.round.minted, 1_000);
    let reward = |who: &Identity| {
        paid.shares
            .iter()
            .find(|s| s.worker == who.id())
            .map(|s| s.reward)
    };
    assert_eq!((reward(&a), reward(&b)), (Some(333), Some(666)));
    assert_eq!(paid.round.dust, 1);
    assert_eq!(h.ledger.balance(&a.id()).expect("ledger"), 900 + 333);
    assert_eq!(h.ledger.balance(&b.id()).expect("ledger"), 900 + 666);
    assert_eq!(h.ledger.pool_balance().expect("ledger"), 1);
    assert_eq!(h.ledger.supply().expect("ledger"), supply + 1_000);
    assert_eq!(
        h.ledger.genesis_and_minted().expect("ledger"),
        (2_000, 1_000)
    );

    // Three rounds later the next payout carries three rounds of mint.
    for _ in 0..3 {
        h.ledger.advance_round().expect("advance");
    }
    let paid = h.ledger.pay_hosting(&[credit(&a, 5)]).expect("pay");
    assert_eq!((paid.round.rounds_covered, paid.round.minted), (3, 3_000));
    assert_eq!(paid.shares[0].reward, 3_000);
    assert!(h.ledger.recheck_payout(3).expect("ledger").is_empty());
}

#[test]
fn an_empty_round_mints_nothing_and_a_round_pays_once() {
    let (a, nobody) = (actor(1), actor(9));
    let h = staked(&[&a]);
    let before = h.ledger.snapshot().expect("snapshot");
    // No credit, zero credit, and credit of an account with no stake: nothing is paid or minted.
    for credits in [vec![], vec![credit(&a, 0)], vec![credit(&nobody, 1 << 20)]] {
        let paid = h.ledger.pay_hosting(&credits).expect("pay");
        assert_eq!((paid.round.minted, paid.round.budget), (0, 0));
        assert!(paid.shares.is_empty());
    }
    let after = h.ledger.snapshot().expect("snapshot");
    assert_eq!(after.supply, before.supply);
    assert_eq!(
        after.tables["hosting_rounds"],
        before.tables["hosting_rounds"]
    );
    assert_eq!(h.ledger.genesis_and_minted().expect("ledger").1, 0);

    // The rounds that passed unpaid are not paid later.
    h.ledger.advance_round().expect("advance");
    let paid = h.ledger.pay_hosting(&[credit(&a, 7)]).expect("pay");
    assert_eq!((paid.round.rounds_covered, paid.round.minted), (1, 1_000));
    // A second challenge round ending in the same ledger round pays nothing more.
    let again = h.ledger.pay_hosting(&[credit(&a, 7)]).expect("pay");
    assert_eq!((again.round.minted, again.shares.len()), (0, 0));
    assert_eq!(h.ledger.genesis_and_minted().expect("ledger").1, 1_000);
}

#[test]
fn held_back_rewards_are_paid_in_good_standing_and_forfeited_on_a_storage_fault() {
    let (honest, deleter) = (actor(1), actor(2));
    let balances = [(&honest, 1_000), (&deleter, 1_000)];
    let h = Harness::in_memory_with(HOSTING_CONFIG, &balances);
    for w in [&honest, &deleter] {
        h.act(w, Operation::Bond { amount: 200 }).expect("bond");
    }
    // Round 0: both are new, half of each share is held for two rounds.
    let paid = h
        .ledger
        .pay_hosting(&[credit(&honest, 10), credit(&deleter, 10)])
        .expect("pay");
    assert_eq!(
        paid.shares
            .iter()
            .map(|s| (s.reward, s.held))
            .collect::<Vec<_>>(),
        vec![(500, 250), (500, 250)]
    );
    assert_eq!(h.ledger.balance(&honest.id()).expect("ledger"), 800 + 250);
    assert_eq!(h.ledger.held_back(&honest.id()).expect("ledger"), 250);

    // The deleter fails a storage challenge: its held-back share goes to the pool with the slash.
    let note = SlashNote {
        evidence: b"storage fault",
        stored: None,
        at_unix: 0,
        forfeits_held_back: true,
    };
    let tenth = SlashFraction::from_ppm(100_000).expect("ledger");
    let record = h
        .ledger
        .slash_noted(&deleter.id(), tenth, &note)
        .expect("ledger");
    assert_eq!(h.ledger.held_back(&deleter.id()).expect("ledger"), 0);
    assert_eq!(
        h.ledger.pool_balance().expect("ledger"),
        record.amount + 250
    );
    // A transcode fault does not take held-back hosting rewards.
    let note = SlashNote {
        forfeits_held_back: false,
        ..note
    };
    h.ledger
        .slash_noted(&honest.id(), tenth, &note)
        .expect("ledger");
    assert_eq!(h.ledger.held_back(&honest.id()).expect("ledger"), 250);

    // Due in round 2, but the honest worker is suspended until round 2 (suspend_rounds 2): paid then.
    h.ledger.advance_round().expect("round 1");
    assert_eq!(h.ledger.held_back(&honest.id()).expect("ledger"), 250);
    h.ledger.advance_round().expect("round 2");
    assert_eq!(h.ledger.held_back(&honest.id()).expect("ledger"), 0);
    let statements = h.ledger.statements(&honest.id(), None, 10).expect("ledger");
    assert_eq!(statements.len(), 2);
    assert_eq!((statements[0].reward, statements[0].held), (500, 250));
    assert_eq!((statements[1].round, statements[1].released), (2, 250));
    let deleter_rows = h
        .ledger
        .statements(&deleter.id(), None, 10)
        .expect("ledger");
    assert_eq!(deleter_rows[0].forfeited, 250);

    // Past its first step (4 rounds) nothing more is held.
    for _ in 0..3 {
        h.ledger.advance_round().expect("advance");
    }
    let paid = h.ledger.pay_hosting(&[credit(&honest, 10)]).expect("pay");
    assert_eq!(paid.shares[0].held, 0);
}

#[test]
fn a_tampered_statement_no_longer_reproduces() {
    let (a, b) = (actor(1), actor(2));
    let h = staked(&[&a, &b]);
    h.ledger
        .pay_hosting(&[credit(&a, 3), credit(&b, 9)])
        .expect("pay");
    assert!(h.ledger.recheck_payout(0).expect("ledger").is_empty());
    h.ledger
        .store
        .write(|conn| {
            conn.execute(
                "UPDATE hosting_statements SET reward = reward + 1 WHERE worker = ?1",
                crate::db::params![a.id().as_bytes()],
            )
        })
        .expect("ledger");
    assert_eq!(h.ledger.recheck_payout(0).expect("ledger"), vec![a.id()]);
}

#[test]
fn minting_stops_short_of_what_the_database_holds() {
    let rules = HostingRules {
        mint_per_round: u64::MAX,
        inflation_ppm: 1_000_000,
        ..HostingRules::NONE
    };
    assert_eq!(rules.mint_for(3, u64::MAX), u64::MAX);
    let a = actor(1);
    let config = LedgerConfig {
        hosting: rules,
        ..CONFIG
    };
    let h = Harness::in_memory_with(config, &[(&a, 1_000)]);
    h.act(&a, Operation::Bond { amount: 100 }).expect("bond");
    let paid = h.ledger.pay_hosting(&[credit(&a, 1)]).expect("pay");
    assert_eq!(paid.round.minted, i64::MAX as u64 - 1_000);
    let paid = h.ledger.pay_hosting(&[credit(&a, 1)]).expect("pay");
    assert_eq!(paid.round.minted, 0);
}
