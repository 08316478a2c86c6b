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

/// A ledger minting 1000 a round, nothing held back.
const MINTING: LedgerConfig = LedgerConfig {
    hosting: HostingRules {
        held_back_ppm: [0; HELD_BACK_STEPS],
        ..HOSTING_CONFIG.hosting
    },
    ..HOSTING_CONFIG
};

/// Workers with `min_stake` bonded, on a ledger minting 1000 a round, nothing held back.
fn staked(workers: &[&Identity]) -> Harness {
    let balances: Vec<(&Identity, u64)> = workers.iter().map(|w| (*w, 1_000)).collect();
    let h = Harness::in_memory_with(MINTING, &balances);
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
    // A second challenge round ending in the same ledger round pays nothing more in it: its credit
    // waits for the next round's payout.
    let again = h.ledger.pay_hosting(&[credit(&a, 7)]).expect("pay");
    assert_eq!((again.round.minted, again.shares.len()), (0, 0));
    assert_eq!(h.ledger.genesis_and_minted().expect("ledger").1, 1_000);
    h.ledger.advance_round().expect("advance");
    let next = h.ledger.pay_hosting(&[]).expect("pay");
    assert_eq!((next.round.minted, next.shares.len()), (1_000, 1));
    assert_eq!(next.shares[0].credited, 7);
}

/// Sums what payouts handed out: every share and the dust.
fn handed_out(payouts: &[&Payout]) -> u64 {
    payouts
        .iter()
        .map(|p| p.shares.iter().map(|s| s.reward).sum::<u64>() + p.round.dust)
        .sum()
}

/// A second handle on `h`'s ledger: another coordinator sharing its database.
fn another_coordinator(h: &Harness, genesis: &Genesis) -> Ledger {
    let place = h._place.as_ref().expect("a ledger in a place of its own");
    open_at(place.at(), *h.ledger.config(), genesis).expect("second handle")
}

/// Regression: with two coordinators on one ledger, the second to end a challenge round in a ledger
/// round had its workers' credits dropped ("a ledger round pays once"). They now wait in the ledger and
/// the next round's payout pays them; nothing is paid twice and the supply is what was minted.
#[test]
fn credits_recorded_after_a_rounds_payout_are_paid_in_the_next_rounds_payout() {
    let (a, b, client) = (actor(1), actor(2), actor(3));
    let genesis = genesis(&[(&a, 1_000), (&b, 1_000), (&client, 10_000)]);
    let h = shared_with_bonded(&genesis, [&a, &b]);
    h.ok(&client, Operation::Deposit { amount: 5_000 });
    // `first` challenges worker a, `second` worker b.
    let first = &h.ledger;
    let second = another_coordinator(&h, &genesis);

    // Round 0: `second` ends a challenge round with nothing proven yet, `first` pays a's credit, then
    // `second` proves b's: recorded, not paid in this round.
    let empty = second.pay_hosting(&[]).expect("pay");
    assert!(empty.shares.is_empty());
    let round_0 = first.pay_hosting(&[credit(&a, 10)]).expect("pay");
    assert_eq!(
        (round_0.round.rounds_covered, round_0.round.minted),
        (1, 1_000)
    );
    let late = second.pay_hosting(&[credit(&b, 30)]).expect("pay");
    assert_eq!((late.round.minted, late.shares.len()), (0, 0));
    assert_eq!(h.balance(&b), 900);
    let waiting = &h.ledger.snapshot().expect("snapshot").tables["hosting_credits"];
    assert_eq!(waiting.len(), 1, "{waiting:?}");

    // Round 1: a download's fee fills the pot; `first` pays, and b's credit from round 0 is in the split.
    first.advance_round().expect("advance");
    let (ticket, rand) = winning_ticket(&client, &a.id(), 1_000, 10, 1);
    first
        .record_download_tickets(&a.id(), &[ticket.ticket_hash()])
        .expect("forwarded");
    h.ok(&a, redeem_op(ticket, rand));
    let fees = h.ledger.hosting_fees().expect("fees");
    assert_eq!(fees, 100);
    let round_1 = first.pay_hosting(&[credit(&a, 10)]).expect("pay");
    assert_eq!((round_1.round.minted, round_1.round.budget), (1_000, 1_100));
    let share = |p: &Payout, who: &Identity| {
        p.shares
            .iter()
            .find(|s| s.worker == who.id())
            .map(|s| (s.credited, s.reward))
    };
    assert_eq!(share(&round_1, &a), Some((10, 275)));
    assert_eq!(share(&round_1, &b), Some((30, 825)));
    assert_eq!(h.balance(&b), 900 + 825);
    let statement = &second.statements(&b.id(), None, 10).expect("statements")[0];
    assert_eq!((statement.round, statement.credited), (1, 30));

    // Paid once: nothing waits, and a later payout has nothing of theirs to pay again.
    assert!(h.ledger.snapshot().expect("snapshot").tables["hosting_credits"].is_empty());
    assert!(second.pay_hosting(&[]).expect("pay").shares.is_empty());
    second.advance_round().expect("advance");
    let round_2 = second.pay_hosting(&[]).expect("pay");
    assert_eq!((round_2.round.minted, round_2.shares.len()), (0, 0));
    for round in [0, 1] {
        assert!(h.ledger.recheck_payout(round).expect("recheck").is_empty());
    }

    // What the workers and the pool got is exactly the two rounds' mint and the fee.
    assert_eq!(handed_out(&[&round_0, &round_1]), 2_000 + fees);
    assert_eq!(h.ledger.hosting_fees().expect("fees"), 0);
    assert_minted_and_conserved(&h, 2_000);
}

/// Two coordinators ending challenge rounds at the same moment, each on its own connection: one pays
/// the round, the other's credit waits for the next payout, and each worker is paid for its credit once.
#[test]
fn two_coordinators_paying_at_once_pay_the_round_once_and_lose_no_credit() {
    let (a, b) = (actor(1), actor(2));
    let genesis = genesis(&[(&a, 1_000), (&b, 1_000)]);
    let h = shared_with_bonded(&genesis, [&a, &b]);
    let barrier = std::sync::Barrier::new(2);
    let payouts: Vec<Payout> = std::thread::scope(|s| {
        let racers: Vec<_> = [&a, &b]
            .into_iter()
            .map(|worker| {
                let ledger = another_coordinator(&h, &genesis);
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    ledger.pay_hosting(&[credit(worker, 10)]).expect("pay")
                })
            })
            .collect();
        racers
            .into_iter()
            .map(|r| r.join().expect("racer"))
            .collect()
    });
    let paid: Vec<&Payout> = payouts.iter().filter(|p| !p.shares.is_empty()).collect();
    assert_eq!(paid.len(), 1, "{payouts:?}");
    assert_eq!(
        h.ledger.snapshot().expect("snapshot").tables["hosting_credits"].len(),
        1
    );

    h.advance(1);
    let next = h.ledger.pay_hosting(&[]).expect("pay");
    assert_eq!(next.shares.len(), 1);
    assert_ne!(next.shares[0].worker, paid[0].shares[0].worker);
    // One worker per payout: each got one round's mint whole.
    for w in [&a, &b] {
        assert_eq!(h.balance(w), 900 + 1_000);
    }
    assert_minted_and_conserved(&h, 2_000);
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

/// The ledger minted `expected` in all, and its supply is still genesis plus what it minted.
fn assert_minted_and_conserved(h: &Harness, expected: u64) {
    let (applied, minted) = h.ledger.genesis_and_minted().expect("minted");
    assert_eq!(minted, expected);
    assert_eq!(
        h.ledger.supply().expect("supply"),
        u128::from(applied + minted)
    );
}

/// A minting ledger in a place other coordinators can open too, with 100 bonded by each of `workers`.
fn shared_with_bonded(genesis: &Genesis, workers: [&Identity; 2]) -> Harness {
    let place = Place::fresh();
    let h = Harness {
        ledger: place.open(MINTING, genesis),
        _place: Some(place),
    };
    for w in workers {
        h.ok(w, Operation::Bond { amount: 100 });
    }
    h
}
