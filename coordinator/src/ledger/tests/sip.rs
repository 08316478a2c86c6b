//! The service infrastructure pool: fee and mint shares, the flows table that accounts for every unit
//! in it, mining weight bought along the curve, its bleed, its weight in the draw, and the refusals.

use std::collections::HashMap;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

/// A small curve (T₀ = W₀ = 1000) so the expected figures can be worked by hand; 5 % fee share,
/// 10 % mint share up to 150 in the pool, 10 % bleed a round, one unit of weight worth two of stake.
const SIP: SipRules = SipRules {
    fee_share_ppm: 50_000,
    mint_share_ppm: 100_000,
    mint_ceiling: 150,
    virtual_tokens: 1_000,
    virtual_weight: 1_000,
    weight_bleed_ppm: 100_000,
    weight_stake_ppm: 2_000_000,
};

const SIP_CONFIG: LedgerConfig = LedgerConfig {
    sip: SIP,
    ..HOSTING_CONFIG
};

fn buy(worker: &Identity, amount: u64) -> Operation {
    Operation::BuyWeight {
        worker: worker.id(),
        amount,
        max_price_ppm: u64::MAX,
    }
}

/// `workers` with 100 bonded each (the minimum) and 10,000 left.
fn staked(config: LedgerConfig, workers: &[&Identity]) -> Harness {
    let balances: Vec<(&Identity, u64)> = workers.iter().map(|w| (*w, 10_100)).collect();
    let h = Harness::in_memory_with(config, &balances);
    for w in workers {
        h.ok(w, Operation::Bond { amount: 100 });
    }
    h
}

fn inflow(h: &Harness, source: SipSource) -> u64 {
    h.ledger
        .sip_flows(0)
        .expect("flows")
        .iter()
        .filter(|f| f.source == source)
        .map(|f| f.amount_in)
        .sum()
}

/// The pool's balance is what `sip_flows` says came in, less what it says went out.
fn assert_flows_add_up(h: &Harness) {
    let flows = h.ledger.sip_flows(0).expect("flows");
    let came_in: u64 = flows.iter().map(|f| f.amount_in).sum();
    let went_out: u64 = flows.iter().map(|f| f.amount_out).sum();
    assert_eq!(
        h.ledger.pool_balance().expect("pool"),
        came_in - went_out,
        "{flows:?}"
    );
    let status = h.ledger.sip_status(u64::MAX).expect("status");
    for (source, amount_in, amount_out) in status.totals {
        let of: Vec<_> = flows.iter().filter(|f| f.source == source).collect();
        assert_eq!(amount_in, of.iter().map(|f| f.amount_in).sum::<u64>());
        assert_eq!(amount_out, of.iter().map(|f| f.amount_out).sum::<u64>());
    }
}

#[test]
fn every_ticket_pays_the_fee_share_and_a_download_pays_the_hosting_share_first() {
    let (client, worker) = (actor(1), actor(2));
    let h = Harness::in_memory_with(SIP_CONFIG, &[(&client, 10_000)]);
    h.ok(&client, Operation::Deposit { amount: 5_000 });

    let (job, rand) = winning_ticket(&client, &worker.id(), 1_000, 10, 1);
    let Receipt::Redeemed(r) = h.ok(&worker, redeem_op(job, rand)) else {
        panic!("not a redemption");
    };
    assert_eq!((r.fee, r.sip_fee, r.credited()), (0, 50, 950));
    assert_eq!(h.balance(&worker), 950);

    // A download's ticket: 10 % to the hosting pot, then 5 % of what was paid to the SIP.
    let (download, rand) = winning_ticket(&client, &worker.id(), 999, 10, 2);
    h.ledger
        .record_download_tickets(&worker.id(), &[download.ticket_hash()])
        .expect("forward");
    let Receipt::Redeemed(r) = h.ok(&worker, redeem_op(download, rand)) else {
        panic!("not a redemption");
    };
    assert_eq!((r.fee, r.sip_fee, r.credited()), (99, 49, 851));
    assert_eq!(h.ledger.hosting_fees().expect("fees"), 99);
    assert_eq!(h.ledger.pool_balance().expect("pool"), 99);
    assert_eq!(inflow(&h, SipSource::Fees), 99);
    assert_eq!(h.ledger.supply().expect("supply"), 10_000);
    assert_flows_add_up(&h);
}

#[test]
fn the_mint_share_fills_the_sip_up_to_its_ceiling_then_stops() {
    let a = actor(1);
    let config = LedgerConfig {
        hosting: HostingRules {
            held_back_ppm: [0; HELD_BACK_STEPS],
            ..HOSTING_CONFIG.hosting
        },
        ..SIP_CONFIG
    };
    let h = staked(config, &[&a]);
    let credit = |c| ProofCredit {
        worker: a.id(),
        proven_bytes: c,
        credited: c,
    };
    // 1000 minted: 100 to the SIP, 900 split.
    let paid = h.ledger.pay_hosting(&[credit(10)]).expect("pay");
    assert_eq!((paid.round.minted, paid.round.budget), (1_000, 900));
    assert_eq!(h.ledger.pool_balance().expect("pool"), 100);
    // Next round: only 50 more fit under the ceiling of 150.
    h.advance(1);
    let paid = h.ledger.pay_hosting(&[credit(10)]).expect("pay");
    assert_eq!(paid.round.budget, 950);
    assert_eq!(h.ledger.pool_balance().expect("pool"), 150);
    // At the ceiling the whole mint is split.
    h.advance(1);
    let paid = h.ledger.pay_hosting(&[credit(10)]).expect("pay");
    assert_eq!(paid.round.budget, 1_000);
    assert_eq!(inflow(&h, SipSource::Mint), 150);
    assert!(h.ledger.recheck_payout(2).expect("recheck").is_empty());
    let (genesis, minted) = h.ledger.genesis_and_minted().expect("minted");
    assert_eq!(
        h.ledger.supply().expect("supply"),
        u128::from(genesis + minted)
    );
    assert_flows_add_up(&h);
}

#[test]
fn weight_follows_the_constant_product_curve_and_its_price_rises_with_weight_out() {
    let (a, b) = (actor(1), actor(2));
    let h = staked(SIP_CONFIG, &[&a, &b]);
    assert_eq!(
        h.ledger.sip_quote(100).expect("quote"),
        Quote {
            amount: 100,
            weight: 90,
            price_ppm: Some(1_111_112),
        }
    );
    // ⌊1000 · 100 / (1000 + 100)⌋ = 90.
    assert_eq!(h.ok(&a, buy(&a, 100)), Receipt::Bought { weight: 90 });
    // T = 1100, W = 910: ⌊910 · 100 / 1200⌋ = 75 — the same tokens buy less.
    assert_eq!(h.ok(&b, buy(&a, 100)), Receipt::Bought { weight: 75 });
    assert_eq!(h.ledger.mining_weight(&a.id()).expect("weight"), 165);
    assert_eq!(
        h.ledger.account(&a.id()).expect("account").mining_weight,
        165
    );
    let status = h.ledger.sip_status(1).expect("status");
    assert_eq!(status.weight_outstanding, 165);
    assert_eq!(
        status.curve,
        Curve {
            tokens: 1_200,
            weight: 835
        }
    );
    assert_eq!(status.balance, 200);
    assert_eq!(inflow(&h, SipSource::Purchases), 200);
    // Weight is not tokens: the supply is what it was, the tokens sit in the pool.
    assert_eq!(h.ledger.supply().expect("supply"), 2 * 10_100);
    assert_eq!(h.balance(&a), 10_000 - 100);
    assert_eq!(h.balance(&b), 10_000 - 100);
    // Weight cannot be unbonded: only the 100 of stake can.
    assert!(matches!(
        h.refused(
            &a,
            Operation::Unbond {
                worker: a.id(),
                amount: 101
            }
        ),
        LedgerError::InsufficientBond { bonded: 100, .. }
    ));
    assert_flows_add_up(&h);
}

#[test]
fn weight_bleeds_back_at_the_configured_rate_and_the_tokens_stay_in_the_sip() {
    let (a, b) = (actor(1), actor(2));
    let h = staked(SIP_CONFIG, &[&a, &b]);
    h.ok(&a, buy(&a, 100));
    h.ok(&b, buy(&b, 300));
    // ⌊910 · 300 / (1100 + 300)⌋ = 195.
    let pool = h.ledger.pool_balance().expect("pool");
    let mut expect = [
        h.ledger.mining_weight(&a.id()).expect("weight"),
        h.ledger.mining_weight(&b.id()).expect("weight"),
    ];
    assert_eq!(expect, [90, 195]);
    let status = h.ledger.sip_status(0).expect("status");
    let (mut tokens, mut weight) = (status.curve.tokens, status.curve.weight);
    for round in 1..=60u64 {
        h.advance(1);
        // Each weight loses ⌈w · 10 %⌉; the sum is sold in one sale at ⌊T·w / (W + w)⌋.
        let mut bled = 0;
        for w in &mut expect {
            let cut = (*w * 100_000).div_ceil(1_000_000);
            *w -= cut;
            bled += cut;
        }
        let proceeds = tokens * u128::from(bled) / (weight + u128::from(bled));
        tokens -= proceeds;
        weight += u128::from(bled);
        let got = [
            h.ledger.mining_weight(&a.id()).expect("weight"),
            h.ledger.mining_weight(&b.id()).expect("weight"),
        ];
        assert_eq!(got, expect, "round {round}");
        let status = h.ledger.sip_status(0).expect("status");
        assert_eq!(status.weight_outstanding, expect.iter().sum::<u64>());
        assert_eq!(status.curve, Curve { tokens, weight }, "round {round}");
        assert_eq!(status.balance, pool, "bleed moved tokens out of the SIP");
    }
    // ⌈·⌉ takes the last unit too: weight must be renewed or it is gone.
    assert_eq!(expect, [0, 0]);
    let status = h.ledger.sip_status(0).expect("status");
    assert_eq!(status.curve.weight, 1_000);
    assert!(status.curve.tokens >= 1_000, "{:?}", status.curve);
    assert!(h.ledger.snapshot().expect("snapshot").tables["mining_weight"].is_empty());
}

#[test]
fn bad_purchases_are_refused_with_a_reason_and_change_nothing() {
    let (worker, buyer, unstaked, cheat) = (actor(1), actor(2), actor(3), actor(4));
    let h = staked(SIP_CONFIG, &[&worker, &cheat]);
    h.ok(
        &worker,
        Operation::Transfer {
            to: buyer.id(),
            amount: 500,
        },
    );
    h.ok(
        &worker,
        Operation::Transfer {
            to: unstaked.id(),
            amount: 500,
        },
    );
    h.ledger
        .slash(
            &cheat.id(),
            SlashFraction::from_ppm(1).expect("ppm"),
            b"evidence",
        )
        .expect("slash");

    assert!(matches!(
        h.refused(&buyer, buy(&worker, 0)),
        LedgerError::ZeroAmount
    ));
    assert!(matches!(
        h.refused(&buyer, buy(&worker, 501)),
        LedgerError::InsufficientBalance {
            available: 500,
            needed: 501,
            ..
        }
    ));
    // y = 2 is not on the curve: not a worker anyone could run.
    let mut not_a_key = [0u8; 32];
    not_a_key[0] = 2;
    assert!(matches!(
        h.refused(
            &buyer,
            Operation::BuyWeight {
                worker: PublicId(not_a_key),
                amount: 10,
                max_price_ppm: u64::MAX
            }
        ),
        LedgerError::InvalidAccount { .. }
    ));
    // A throwaway key with tokens but no stake cannot buy its way into the draw.
    assert!(matches!(
        h.refused(&unstaked, buy(&unstaked, 100)),
        LedgerError::WeightForNonWorker {
            stake: 0,
            min_stake: 100,
            ..
        }
    ));
    assert!(matches!(
        h.refused(&buyer, buy(&cheat, 100)),
        LedgerError::WeightForSuspended { .. }
    ));
    // 100 costs 1.111112 a unit of weight now.
    assert!(matches!(
        h.refused(
            &buyer,
            Operation::BuyWeight {
                worker: worker.id(),
                amount: 100,
                max_price_ppm: 1_111_111
            }
        ),
        LedgerError::PriceAboveLimit {
            price_ppm: 1_111_112,
            max_price_ppm: 1_111_111
        }
    ));
    // One unit buys ⌊1000 / 1001⌋ = 0 weight.
    let err = h.refused(&buyer, buy(&worker, 1));
    assert!(
        matches!(err, LedgerError::WeightTooSmall { amount: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("pay more"), "{err}");
    // At the limit it goes through.
    assert_eq!(
        h.ok(
            &buyer,
            Operation::BuyWeight {
                worker: worker.id(),
                amount: 100,
                max_price_ppm: 1_111_112
            }
        ),
        Receipt::Bought { weight: 90 }
    );
}

#[test]
fn weight_is_not_slashed_but_a_suspended_or_unstaked_worker_draws_nothing_with_it() {
    let (a, b) = (actor(1), actor(2));
    let h = staked(SIP_CONFIG, &[&a, &b]);
    h.ok(&a, buy(&a, 100));
    h.ok(&b, buy(&b, 100));
    let eligible = |h: &Harness| {
        h.ledger
            .eligible_workers()
            .expect("eligible")
            .into_iter()
            .map(|e| (e.worker, (e.stake, e.mining)))
            .collect::<HashMap<_, _>>()
    };
    // k = 2: 90 weight counts as 180 stake, 75 as 150.
    assert_eq!(eligible(&h)[&a.id()], (100, 180));
    assert_eq!(eligible(&h)[&b.id()], (100, 150));
    h.ledger
        .slash(
            &a.id(),
            SlashFraction::from_ppm(100_000).expect("ppm"),
            b"e",
        )
        .expect("slash");
    assert_eq!(h.ledger.mining_weight(&a.id()).expect("weight"), 90);
    assert!(!eligible(&h).contains_key(&a.id()));
    // b drops below min_stake: its weight does not carry it.
    h.ok(
        &b,
        Operation::Unbond {
            worker: b.id(),
            amount: 1,
        },
    );
    assert!(!eligible(&h).contains_key(&b.id()));
    assert_eq!(h.ledger.mining_weight(&b.id()).expect("weight"), 75);
}

/// χ² critical value for 2 degrees of freedom at p = 0.001.
const CHI2_DF2_P001: f64 = 13.816;

#[test]
fn bought_weight_raises_a_workers_share_of_draws_in_proportion() {
    let workers: Vec<Identity> = (1..=3).map(actor).collect();
    let refs: Vec<&Identity> = workers.iter().collect();
    let config = LedgerConfig {
        sip: SipRules {
            virtual_tokens: 1_000_000,
            virtual_weight: 1_000_000,
            weight_stake_ppm: 1_000_000,
            ..SIP
        },
        ..SIP_CONFIG
    };
    let h = staked(config, &refs);
    // Equal stake; worker 2 buys ⌊10⁶·200 / (10⁶ + 200)⌋ = 199 weight, worker 3 then 499.
    h.ok(&workers[1], buy(&workers[1], 200));
    h.ok(&workers[2], buy(&workers[2], 500));
    let candidates: Vec<Candidate> = h
        .ledger
        .eligible_workers()
        .expect("eligible")
        .into_iter()
        .map(|e| Candidate {
            worker: e.worker,
            stake: e.stake,
            mining: e.mining,
            score: 1.0,
        })
        .collect();
    let weights: HashMap<PublicId, u64> = candidates
        .iter()
        .map(|c| (c.worker, c.stake + c.mining))
        .collect();
    assert_eq!(
        workers.iter().map(|w| weights[&w.id()]).collect::<Vec<_>>(),
        [100, 299, 599]
    );
    let total: u64 = weights.values().sum();

    const DRAWS: u32 = 20_000;
    let mut rng = StdRng::seed_from_u64(20_261_202);
    let mut counts: HashMap<PublicId, u32> = HashMap::new();
    for _ in 0..DRAWS {
        let picked = draw_weighted(&candidates, &mut rng).expect("someone is eligible");
        *counts.entry(picked.worker).or_default() += 1;
    }
    let chi2: f64 = workers
        .iter()
        .map(|w| {
            let expected = f64::from(DRAWS) * weights[&w.id()] as f64 / total as f64;
            let observed = f64::from(counts.get(&w.id()).copied().unwrap_or(0));
            (observed - expected).powi(2) / expected
        })
        .sum();
    assert!(
        chi2 < CHI2_DF2_P001,
        "χ² = {chi2:.2} over {counts:?}: shares do not follow stake + weight {weights:?}"
    );
    // Against stake alone (1:1:1) the same draws are far off.
    let chi2_stake_only: f64 = workers
        .iter()
        .map(|w| {
            let expected = f64::from(DRAWS) / 3.0;
            let observed = f64::from(counts.get(&w.id()).copied().unwrap_or(0));
            (observed - expected).powi(2) / expected
        })
        .sum();
    assert!(chi2_stake_only > CHI2_DF2_P001, "{chi2_stake_only}");
}

#[test]
fn the_sip_grows_only_by_what_its_flows_record() {
    let (a, b, client) = (actor(1), actor(2), actor(3));
    let config = LedgerConfig {
        hosting: HostingRules {
            held_back_ppm: [500_000, 0, 0, 0],
            ..HOSTING_CONFIG.hosting
        },
        ..SIP_CONFIG
    };
    let balances = [(&a, 10_100), (&b, 10_100), (&client, 10_000)];
    let h = Harness::in_memory_with(config, &balances);
    for w in [&a, &b] {
        h.ok(w, Operation::Bond { amount: 100 });
    }
    h.ok(&client, Operation::Deposit { amount: 5_000 });
    let credit = |w: &Identity, c| ProofCredit {
        worker: w.id(),
        proven_bytes: c,
        credited: c,
    };
    let mut tag = 0;
    for round in 0..6u64 {
        tag += 1;
        let (t, r) = winning_ticket(&client, &a.id(), 333, round + 5, tag);
        h.ok(&a, redeem_op(t, r));
        h.ledger
            .pay_hosting(&[credit(&a, 1), credit(&b, 2)])
            .expect("pay");
        h.ok(&b, buy(&b, 50 + round));
        if round == 2 {
            let note = SlashNote {
                evidence: b"storage",
                stored: None,
                at_unix: 0,
                forfeits_held_back: true,
            };
            h.ledger
                .slash_noted(
                    &a.id(),
                    SlashFraction::from_ppm(250_000).expect("ppm"),
                    &note,
                )
                .expect("slash");
        }
        if round == 4 {
            h.ledger.pay_from_pool(&b.id(), 7).expect("reward");
        }
        assert_flows_add_up(&h);
        h.advance(1);
        assert_flows_add_up(&h);
    }
    for source in [
        SipSource::Fees,
        SipSource::Mint,
        SipSource::Purchases,
        SipSource::Slashes,
        SipSource::Forfeits,
        SipSource::Dust,
    ] {
        assert!(inflow(&h, source) > 0, "nothing came from {source:?}");
    }
    let status = h.ledger.sip_status(2).expect("status");
    assert!(status.recent.iter().all(|f| f.round + 2 > status.round));
    assert!(!status.recent.is_empty());
    let (genesis, minted) = h.ledger.genesis_and_minted().expect("minted");
    assert_eq!(
        h.ledger.supply().expect("supply"),
        u128::from(genesis + minted)
    );
}
