//! SIP governance through signed requests: proposals, votes at the snapshot, the tally that pays once,
//! and every refusal leaving the ledger as it was.

use super::*;

/// Funds the SIP with `amount` by slashing the whole stake of a worker bonded for it.
fn fill_pool(h: &Harness, worker: &Identity, amount: u64) {
    h.ok(worker, Operation::Bond { amount });
    h.ledger
        .slash(&worker.id(), SlashFraction::WHOLE, b"fills the pool")
        .expect("slash");
}

fn pay(to: &Identity, amount: u64) -> Operation {
    Operation::Propose {
        kind: ProposalKind::Pay {
            to: to.id(),
            amount,
        },
        reason: "pays a relay operator".into(),
    }
}

fn vote(proposal: u64, choice: VoteChoice) -> Operation {
    Operation::Vote { proposal, choice }
}

fn proposed(receipt: Receipt) -> u64 {
    match receipt {
        Receipt::Proposed { id } => id,
        other => panic!("not a proposal's receipt: {other:?}"),
    }
}

/// Proposer `a`, stakers `v1` (300 bonded) and `v2` (100 delegated to v1), payee `p`, a SIP of 1000
/// from a slashed worker; the stake history is in place and round 1 has begun.
struct Scene {
    h: Harness,
    a: Identity,
    v1: Identity,
    v2: Identity,
    p: Identity,
}

fn scene() -> Scene {
    let (a, v1, v2, p, filler) = (actor(1), actor(2), actor(3), actor(4), actor(5));
    let h = Harness::in_memory(&[(&a, 1_000), (&v1, 1_000), (&v2, 1_000), (&filler, 1_000)]);
    h.ok(&v1, Operation::Bond { amount: 300 });
    h.ok(
        &v2,
        Operation::Delegate {
            worker: v1.id(),
            amount: 100,
        },
    );
    fill_pool(&h, &filler, 1_000);
    h.advance(1);
    Scene { h, a, v1, v2, p }
}

#[test]
fn a_passed_proposal_pays_once_however_many_rounds_follow() {
    let Scene { h, a, v1, v2, p } = scene();
    let supply = h.ledger.supply().expect("supply");
    let id = proposed(h.ok(&a, pay(&p, 200)));
    assert_eq!(h.balance(&a), 1_000 - GOVERNANCE.proposal_bond);
    let before = h.ledger.proposal(id).expect("proposal");
    assert_eq!(
        (before.snapshot_round, before.vote_start, before.vote_end),
        (1, 2, 4)
    );
    assert_eq!(before.total_stake, 400);
    assert!(matches!(
        h.refused(&v1, vote(id, VoteChoice::Yes)),
        LedgerError::VoteNotOpen { vote_start: 2, .. }
    ));

    h.advance(1);
    assert_eq!(
        h.ok(&v1, vote(id, VoteChoice::Yes)),
        Receipt::Voted { weight: 300 }
    );
    assert!(matches!(
        h.refused(&v1, vote(id, VoteChoice::No)),
        LedgerError::AlreadyVoted {
            choice: VoteChoice::Yes,
            ..
        }
    ));
    h.advance(1);
    assert_eq!(
        h.ok(&v2, vote(id, VoteChoice::No)),
        Receipt::Voted { weight: 100 }
    );

    h.advance(1);
    let done = h.ledger.proposal(id).expect("proposal");
    assert_eq!(done.state, ProposalState::Executed, "{}", done.outcome);
    assert_eq!((done.yes, done.no, done.abstain), (300, 100, 0));
    assert_eq!(
        (done.paid, done.tallied_round, done.bond_locked),
        (200, Some(4), 0)
    );
    assert_eq!(h.balance(&p), 200);
    assert_eq!(h.balance(&a), 1_000, "the bond comes back at quorum");
    assert_eq!(h.ledger.pool_balance().expect("pool"), 800);
    assert_eq!(
        h.ledger.proposal_payments(id).expect("payments"),
        vec![(p.id(), 0, 200)]
    );
    assert!(matches!(
        h.refused(&v2, vote(id, VoteChoice::Yes)),
        LedgerError::VoteClosed { vote_end: 4, .. }
    ));

    h.advance(25);
    assert_eq!(h.balance(&p), 200);
    assert_eq!(h.ledger.pool_balance().expect("pool"), 800);
    assert_eq!(h.ledger.proposal(id).expect("proposal"), done);
    assert_eq!(h.ledger.supply().expect("supply"), supply);
}

#[test]
fn a_proposal_short_of_quorum_pays_nothing_and_forfeits_its_bond() {
    let Scene { h, a, v2, p, .. } = scene();
    let id = proposed(h.ok(&a, pay(&p, 200)));
    h.advance(1);
    // 100 of 400 staked is 25 %, under the 33 % quorum.
    h.ok(&v2, vote(id, VoteChoice::Yes));
    h.advance(2);
    let done = h.ledger.proposal(id).expect("proposal");
    assert_eq!(done.state, ProposalState::Rejected);
    assert!(done.outcome.contains("quorum"), "{}", done.outcome);
    assert_eq!(done.paid, 0);
    assert_eq!(h.balance(&p), 0);
    assert_eq!(h.balance(&a), 1_000 - GOVERNANCE.proposal_bond);
    assert_eq!(
        h.ledger.pool_balance().expect("pool"),
        1_000 + GOVERNANCE.proposal_bond
    );
    h.advance(5);
    assert_eq!(h.balance(&p), 0);
}

#[test]
fn a_proposal_without_more_than_half_yes_pays_nothing_but_returns_its_bond() {
    let Scene { h, a, v1, v2, p } = scene();
    let v3 = actor(9);
    h.ok(
        &a,
        Operation::Transfer {
            to: v3.id(),
            amount: 100,
        },
    );
    h.ok(
        &v3,
        Operation::Delegate {
            worker: v1.id(),
            amount: 100,
        },
    );
    h.advance(1);
    let lost = proposed(h.ok(&a, pay(&p, 200)));
    let tied = proposed(h.ok(&a, pay(&p, 300)));
    h.advance(1);
    h.ok(&v1, vote(lost, VoteChoice::No));
    h.ok(&v2, vote(lost, VoteChoice::Yes));
    // 100 yes and 100 no, v1's 300 abstaining (it counts toward quorum only): not more than half.
    h.ok(&v1, vote(tied, VoteChoice::Abstain));
    h.ok(&v2, vote(tied, VoteChoice::Yes));
    h.ok(&v3, vote(tied, VoteChoice::No));
    h.advance(2);
    for id in [lost, tied] {
        let done = h.ledger.proposal(id).expect("proposal");
        assert_eq!(done.state, ProposalState::Rejected);
        assert!(done.outcome.contains("not approved"), "{}", done.outcome);
        assert_eq!(done.paid, 0);
    }
    let tied = h.ledger.proposal(tied).expect("proposal");
    assert_eq!((tied.yes, tied.no, tied.abstain), (100, 100, 300));
    assert_eq!(h.balance(&p), 0);
    assert_eq!(
        h.balance(&a),
        900,
        "both bonds come back: both votes reached quorum"
    );
    assert_eq!(h.ledger.pool_balance().expect("pool"), 1_000);
}

#[test]
fn stake_bonded_after_the_snapshot_does_not_vote() {
    let Scene { h, a, v1, v2, p } = scene();
    let late = actor(9);
    h.ok(
        &a,
        Operation::Transfer {
            to: late.id(),
            amount: 500,
        },
    );
    let id = proposed(h.ok(&a, pay(&p, 200)));
    // Bonded in the proposal's own round, after it was known: it does not count.
    h.ok(&late, Operation::Bond { amount: 400 });
    h.ok(
        &v2,
        Operation::Delegate {
            worker: v1.id(),
            amount: 800,
        },
    );
    h.advance(1);
    assert!(matches!(
        h.refused(&late, vote(id, VoteChoice::Yes)),
        LedgerError::NoStakeAtSnapshot {
            snapshot_round: 1,
            ..
        }
    ));
    assert_eq!(
        h.ok(&v2, vote(id, VoteChoice::Yes)),
        Receipt::Voted { weight: 100 }
    );
    // Unbonding after the snapshot does not take the vote away either: the snapshot is the rule.
    h.ok(
        &v1,
        Operation::Unbond {
            worker: v1.id(),
            amount: 300,
        },
    );
    assert_eq!(
        h.ok(&v1, vote(id, VoteChoice::No)),
        Receipt::Voted { weight: 300 }
    );
    assert_eq!(h.ledger.stake_at(&v2.id(), 1).expect("stake"), 100);
    assert_eq!(h.ledger.stake_at(&v2.id(), 2).expect("stake"), 900);
    h.advance(2);
    let done = h.ledger.proposal(id).expect("proposal");
    assert_eq!((done.yes, done.no), (100, 300));
    assert_eq!(done.state, ProposalState::Rejected);
    assert_eq!(h.balance(&p), 0);
}

#[test]
fn a_passed_proposal_the_sip_cannot_cover_records_why_and_pays_nothing() {
    let Scene { h, a, v1, p, .. } = scene();
    let id = proposed(h.ok(&a, pay(&p, 5_000)));
    h.advance(1);
    h.ok(&v1, vote(id, VoteChoice::Yes));
    h.advance(2);
    let done = h.ledger.proposal(id).expect("proposal");
    assert_eq!(done.state, ProposalState::Failed);
    assert!(done.outcome.contains("pool holds 1000"), "{}", done.outcome);
    assert_eq!((done.paid, h.balance(&p)), (0, 0));
    assert_eq!(h.ledger.pool_balance().expect("pool"), 1_000);
    assert_eq!(h.balance(&a), 1_000);
    assert!(h.ledger.proposal_payments(id).expect("payments").is_empty());
}

#[test]
fn operator_support_pays_in_proportion_to_hosting_credit_in_its_window() {
    let (a, w1, w2, old, filler) = (actor(1), actor(2), actor(3), actor(4), actor(5));
    let config = LedgerConfig {
        hosting: HostingRules {
            held_back_ppm: [0; HELD_BACK_STEPS],
            ..HOSTING_CONFIG.hosting
        },
        ..HOSTING_CONFIG
    };
    let h = Harness::in_memory_with(
        config,
        &[
            (&a, 1_000),
            (&w1, 1_000),
            (&w2, 1_000),
            (&old, 1_000),
            (&filler, 10_000),
        ],
    );
    for w in [&w1, &w2, &old] {
        h.ok(w, Operation::Bond { amount: 100 });
    }
    fill_pool(&h, &filler, 10_000);
    let credit = |w: &Identity, c: u64| ProofCredit {
        worker: w.id(),
        proven_bytes: c,
        credited: c,
    };
    // Round 0's work is outside the window of a tally in round 8 that looks 3 rounds back.
    h.ledger
        .pay_hosting(&[credit(&old, 1_000_000)])
        .expect("pay");
    h.advance(5);
    let id = proposed(h.ok(
        &a,
        Operation::Propose {
            kind: ProposalKind::OperatorSupport {
                amount: 4_000,
                window_rounds: 3,
            },
            reason: "keeps the operators of the last three rounds running".into(),
        },
    ));
    h.advance(1);
    for w in [&w1, &w2, &old] {
        h.ok(w, vote(id, VoteChoice::Yes));
    }
    h.ledger
        .pay_hosting(&[credit(&w1, 300), credit(&w2, 100)])
        .expect("pay");
    h.advance(1);
    let before = [h.balance(&w1), h.balance(&w2), h.balance(&old)];
    let pool = h.ledger.pool_balance().expect("pool");
    h.advance(1);
    let done = h.ledger.proposal(id).expect("proposal");
    assert_eq!(done.state, ProposalState::Executed, "{}", done.outcome);
    assert_eq!((done.tallied_round, done.paid), (Some(8), 4_000));
    let mut expected = vec![(w1.id(), 300, 3_000), (w2.id(), 100, 1_000)];
    expected.sort();
    assert_eq!(h.ledger.proposal_payments(id).expect("payments"), expected);
    let after = [h.balance(&w1), h.balance(&w2), h.balance(&old)];
    assert_eq!(after, [before[0] + 3_000, before[1] + 1_000, before[2]]);
    assert_eq!(h.ledger.pool_balance().expect("pool"), pool - 4_000);
}

#[test]
fn operator_support_with_no_work_in_its_window_fails_and_pays_nothing() {
    let Scene { h, a, v1, .. } = scene();
    let id = proposed(h.ok(
        &a,
        Operation::Propose {
            kind: ProposalKind::OperatorSupport {
                amount: 10,
                window_rounds: 5,
            },
            reason: "support".into(),
        },
    ));
    h.advance(1);
    h.ok(&v1, vote(id, VoteChoice::Yes));
    h.advance(2);
    let done = h.ledger.proposal(id).expect("proposal");
    assert_eq!(done.state, ProposalState::Failed);
    assert!(
        done.outcome.contains("no verified work"),
        "{}",
        done.outcome
    );
    assert_eq!(h.ledger.pool_balance().expect("pool"), 1_000);
}

#[test]
fn bad_governance_requests_are_refused_with_the_ledger_unchanged() {
    let Scene { h, a, v1, p, .. } = scene();
    let poor = actor(9);
    assert!(matches!(
        h.refused(&v1, vote(7, VoteChoice::Yes)),
        LedgerError::NoSuchProposal { id: 7 }
    ));
    let long = Operation::Propose {
        kind: ProposalKind::Pay {
            to: p.id(),
            amount: 1,
        },
        reason: "x".repeat(MAX_REASON + 1),
    };
    assert!(matches!(
        h.refused(&a, long),
        LedgerError::ReasonTooLong { len, max: MAX_REASON } if len == MAX_REASON + 1
    ));
    let empty = Operation::Propose {
        kind: ProposalKind::Pay {
            to: p.id(),
            amount: 1,
        },
        reason: "  ".into(),
    };
    assert!(matches!(h.refused(&a, empty), LedgerError::EmptyReason));
    assert!(matches!(
        h.refused(&poor, pay(&p, 10)),
        LedgerError::ProposalBondShort {
            available: 0,
            needed: 50,
            ..
        }
    ));
    assert!(matches!(h.refused(&a, pay(&p, 0)), LedgerError::ZeroAmount));
    // y = 2 is not on the curve: no key could ever spend what such a proposal paid.
    let mut off_curve = [0u8; 32];
    off_curve[0] = 2;
    let nowhere = Operation::Propose {
        kind: ProposalKind::Pay {
            to: PublicId(off_curve),
            amount: 1,
        },
        reason: "to no key".into(),
    };
    assert!(matches!(
        h.refused(&a, nowhere),
        LedgerError::InvalidAccount { .. }
    ));
    for window_rounds in [0, MAX_WINDOW_ROUNDS + 1] {
        let support = Operation::Propose {
            kind: ProposalKind::OperatorSupport {
                amount: 1,
                window_rounds,
            },
            reason: "support".into(),
        };
        assert!(matches!(
            h.refused(&a, support),
            LedgerError::BadWindow { .. }
        ));
    }
    assert!(matches!(
        h.refused(
            &v1,
            Operation::SetRedirect {
                share_ppm: 1_000_001
            }
        ),
        LedgerError::RedirectShare {
            share_ppm: 1_000_001
        }
    ));

    // A choice outside yes, no and abstain does not decode: the same signed bytes, choice 4.
    let id = proposed(h.ok(&a, pay(&p, 1)));
    h.advance(1);
    let mut bytes = vote(id, VoteChoice::Yes).encode();
    *bytes.last_mut().expect("choice") = 4;
    let nonce = h.ledger.last_nonce(&v1.id()).expect("nonce") + 1;
    let sig = v1.sign(&request_message(&v1.id(), nonce, &bytes));
    let request = SignedRequest {
        account: v1.id(),
        nonce,
        operation: bytes,
        sig,
    };
    let before = h.ledger.snapshot().expect("snapshot");
    let err = h.ledger.execute(&request).expect_err("bad choice");
    assert!(
        matches!(err, LedgerError::Request(RequestError::UnknownChoice(4))),
        "{err}"
    );
    assert!(err.to_string().contains("yes"), "{err}");
    assert_eq!(h.ledger.snapshot().expect("snapshot"), before);
}

/// A worker with `min_stake` bonded on a hosting ledger minting 1000 a round with nothing held back,
/// a client with a deposit for its tickets, and a bonus of `bonus_per_byte` for capacity added.
fn hosting_scene(bonus_per_byte: u64) -> (Harness, Identity, Identity) {
    let (worker, client) = (actor(1), actor(2));
    let config = LedgerConfig {
        hosting: HostingRules {
            held_back_ppm: [0; HELD_BACK_STEPS],
            ..HOSTING_CONFIG.hosting
        },
        capacity_bonus_per_byte: bonus_per_byte,
        ..HOSTING_CONFIG
    };
    let h = Harness::in_memory_with(config, &[(&worker, 1_000), (&client, 100_000)]);
    h.ok(&worker, Operation::Bond { amount: 100 });
    h.ok(&client, Operation::Deposit { amount: 50_000 });
    (h, worker, client)
}

fn proof(worker: &Identity, bytes: u64) -> ProofCredit {
    ProofCredit {
        worker: worker.id(),
        proven_bytes: bytes,
        credited: bytes,
    }
}

#[test]
fn a_redirect_moves_its_share_from_the_next_round_and_opting_out_waits_a_round_too() {
    let (h, worker, client) = hosting_scene(0);
    let supply = h.ledger.supply().expect("supply");
    h.ok(&worker, Operation::SetRedirect { share_ppm: 500_000 });
    assert_eq!(
        h.ledger.redirect(&worker.id()).expect("redirect"),
        Redirect {
            share_ppm: 0,
            next_ppm: 500_000,
            redirected: 0
        }
    );
    // Round 0: the rate set in it is not in force yet.
    let (t, r) = winning_ticket(&client, &worker.id(), 1_000, 10, 1);
    let before = h.balance(&worker);
    h.ok(&worker, redeem_op(t, r));
    h.ledger.pay_hosting(&[proof(&worker, 10)]).expect("pay");
    assert_eq!(h.balance(&worker), before + 1_000 + 1_000);
    assert_eq!(h.ledger.capacity_fund().expect("fund"), 0);

    // Round 1: half of the ticket and half of the hosting reward go to the fund.
    h.advance(1);
    let (t, r) = winning_ticket(&client, &worker.id(), 1_000, 10, 2);
    let before = h.balance(&worker);
    match h.ok(&worker, redeem_op(t, r)) {
        Receipt::Redeemed(redemption) => {
            assert_eq!((redemption.redirected, redemption.credited()), (500, 500));
        }
        other => panic!("{other:?}"),
    }
    h.ledger.pay_hosting(&[proof(&worker, 10)]).expect("pay");
    assert_eq!(h.balance(&worker), before + 500 + 500);
    assert_eq!(h.ledger.capacity_fund().expect("fund"), 1_000);

    // Opting out in round 1 leaves round 1's rate in force for the rest of it.
    h.ok(&worker, Operation::SetRedirect { share_ppm: 0 });
    let (t, r) = winning_ticket(&client, &worker.id(), 1_000, 10, 3);
    h.ok(&worker, redeem_op(t, r));
    assert_eq!(h.ledger.capacity_fund().expect("fund"), 1_500);
    h.advance(1);
    let (t, r) = winning_ticket(&client, &worker.id(), 1_000, 10, 4);
    let before = h.balance(&worker);
    h.ok(&worker, redeem_op(t, r));
    assert_eq!(h.balance(&worker), before + 1_000);
    assert_eq!(h.ledger.capacity_fund().expect("fund"), 1_500);
    let redirect = h.ledger.redirect(&worker.id()).expect("redirect");
    assert_eq!((redirect.share_ppm, redirect.redirected), (0, 1_500));
    // Minted rewards are the only change to supply; the fund counts in it.
    let (_, minted) = h.ledger.genesis_and_minted().expect("minted");
    assert_eq!(
        h.ledger.supply().expect("supply"),
        supply + u128::from(minted)
    );
}

#[test]
fn the_capacity_bonus_pays_only_for_bytes_beyond_the_previous_maximum_and_never_more_than_the_fund()
{
    let (h, worker, client) = hosting_scene(2);
    let other = actor(3);
    h.ok(
        &client,
        Operation::Transfer {
            to: other.id(),
            amount: 1_000,
        },
    );
    h.ok(&other, Operation::Bond { amount: 100 });
    // The whole of the client-paid worker's tickets fund the bonus.
    h.ok(
        &worker,
        Operation::SetRedirect {
            share_ppm: 1_000_000,
        },
    );
    h.advance(1);
    let (t, r) = winning_ticket(&client, &worker.id(), 700, 20, 1);
    h.ok(&worker, redeem_op(t, r));
    assert_eq!(h.ledger.capacity_fund().expect("fund"), 700);

    // Round 1: `other` proves 100 bytes, its first: a bonus of 200.
    h.ledger.pay_hosting(&[proof(&other, 100)]).expect("pay");
    let bonus = |who: &Identity| -> Vec<(u64, u64, u64)> {
        h.ledger
            .capacity_bonuses(&who.id())
            .expect("bonuses")
            .iter()
            .map(|b| (b.round, b.added_bytes, b.bonus))
            .collect()
    };
    assert_eq!(bonus(&other), vec![(1, 100, 200)]);
    assert_eq!(h.ledger.capacity_fund().expect("fund"), 500);

    // Dropping to 40 bytes and coming back to 100 earns nothing: the maximum is the rule.
    for bytes in [100, 40, 100] {
        h.advance(1);
        h.ledger.pay_hosting(&[proof(&other, bytes)]).expect("pay");
    }
    assert_eq!(bonus(&other), vec![(1, 100, 200)]);
    assert_eq!(h.ledger.capacity_fund().expect("fund"), 500);

    // 400 bytes beyond the maximum would earn 800; the fund holds 500 and pays exactly that.
    h.advance(1);
    let before = h.balance(&other);
    let paid = h.ledger.pay_hosting(&[proof(&other, 500)]).expect("pay");
    assert_eq!(bonus(&other), vec![(1, 100, 200), (5, 400, 500)]);
    assert_eq!(h.ledger.capacity_fund().expect("fund"), 0);
    assert_eq!(h.balance(&other), before + paid.shares[0].reward + 500);
}

/// The hosting scene with a bonus of `per_session` for encoder sessions added, and a fund of 700
/// from the worker's redirected ticket in round 1; `other` is a second worker with stake.
fn session_scene(per_session: u64) -> (Harness, Identity) {
    let (worker, client, other) = (actor(1), actor(2), actor(3));
    let config = LedgerConfig {
        capacity_bonus_per_session: per_session,
        ..HOSTING_CONFIG
    };
    let h = Harness::in_memory_with(
        config,
        &[(&worker, 1_000), (&client, 100_000), (&other, 1_000)],
    );
    h.ok(&worker, Operation::Bond { amount: 100 });
    h.ok(&client, Operation::Deposit { amount: 50_000 });
    h.ok(&other, Operation::Bond { amount: 100 });
    h.ok(
        &worker,
        Operation::SetRedirect {
            share_ppm: 1_000_000,
        },
    );
    h.advance(1);
    let (t, r) = winning_ticket(&client, &worker.id(), 700, 20, 1);
    h.ok(&worker, redeem_op(t, r));
    assert_eq!(h.ledger.capacity_fund().expect("fund"), 700);
    (h, other)
}

fn session_bonuses(h: &Harness, who: &Identity) -> Vec<(u64, u32, u64)> {
    h.ledger
        .session_bonuses(&who.id())
        .expect("bonuses")
        .iter()
        .map(|b| (b.round, b.added_sessions, b.bonus))
        .collect()
}

#[test]
fn the_session_bonus_pays_only_for_sessions_beyond_the_previous_maximum_and_never_more_than_the_fund()
 {
    let (h, other) = session_scene(100);
    let supply = h.ledger.supply().expect("supply");
    let start = h.balance(&other);
    // Round 1: two sessions, its first: 200.
    let proof = h.ledger.prove_sessions(&other.id(), 2).expect("prove");
    assert_eq!(
        (
            proof.round,
            proof.sessions,
            proof.added_sessions,
            proof.bonus
        ),
        (1, 2, 2, 200)
    );
    assert_eq!(h.ledger.capacity_fund().expect("fund"), 500);
    // The same count again, a lower one, and the same after a round with fewer: nothing.
    assert_eq!(
        h.ledger
            .prove_sessions(&other.id(), 2)
            .expect("prove")
            .bonus,
        0
    );
    assert_eq!(
        h.ledger
            .prove_sessions(&other.id(), 1)
            .expect("prove")
            .sessions,
        2
    );
    h.advance(1);
    h.ledger.prove_sessions(&other.id(), 1).expect("prove");
    h.advance(1);
    assert_eq!(
        h.ledger
            .prove_sessions(&other.id(), 2)
            .expect("prove")
            .bonus,
        0
    );
    assert_eq!(session_bonuses(&h, &other), vec![(1, 2, 200)]);
    assert_eq!(h.balance(&other), start + 200);
    // One more than ever: 100.
    assert_eq!(
        h.ledger
            .prove_sessions(&other.id(), 3)
            .expect("prove")
            .bonus,
        100
    );
    // Six more would earn 600; the fund holds 400 and pays exactly that.
    h.advance(1);
    let proof = h.ledger.prove_sessions(&other.id(), 9).expect("prove");
    assert_eq!((proof.added_sessions, proof.bonus), (6, 400));
    assert_eq!(h.ledger.capacity_fund().expect("fund"), 0);
    // An empty fund pays nothing, and the maximum still rises.
    assert_eq!(
        h.ledger
            .prove_sessions(&other.id(), 10)
            .expect("prove")
            .bonus,
        0
    );
    assert_eq!(
        session_bonuses(&h, &other),
        vec![(1, 2, 200), (3, 1, 100), (4, 7, 400)]
    );
    assert_eq!(
        h.ledger.session_proofs(&other.id()).expect("proofs"),
        vec![(1, 2), (2, 1), (3, 3), (4, 10)]
    );
    assert_eq!(h.balance(&other), start + 700);
    // The bonus moves units from the fund to a balance: supply is what it was.
    assert_eq!(h.ledger.supply().expect("supply"), supply);
}

#[test]
fn the_session_bonus_is_zero_by_default_and_a_count_of_none_is_refused() {
    assert_eq!(LedgerConfig::default().capacity_bonus_per_session, 0);
    let (h, other) = session_scene(0);
    let before = h.balance(&other);
    let proof = h.ledger.prove_sessions(&other.id(), 4).expect("prove");
    assert_eq!(
        (proof.sessions, proof.added_sessions, proof.bonus),
        (4, 4, 0)
    );
    assert_eq!(h.balance(&other), before);
    assert_eq!(h.ledger.capacity_fund().expect("fund"), 700);
    assert_eq!(session_bonuses(&h, &other), vec![(1, 4, 0)]);

    let snapshot = h.ledger.snapshot().expect("snapshot");
    let err = h
        .ledger
        .prove_sessions(&other.id(), 0)
        .expect_err("no sessions");
    assert!(matches!(err, LedgerError::ZeroAmount), "{err}");
    assert_eq!(h.ledger.snapshot().expect("snapshot"), snapshot);
}

#[test]
fn an_upgraded_ledger_counts_the_stake_bonded_before_the_upgrade() {
    let (staker, proposer, payee) = (actor(1), actor(2), actor(3));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.db");
    // A ledger as version 2 left it, in round 5, with a bond and no stake history.
    version_2_ledger(
        &path,
        &[("genesis", 1000), ("round", 5)],
        &[(&staker, 700), (&proposer, 100)],
    );
    rusqlite::Connection::open(&path)
        .expect("open")
        .execute(
            "INSERT INTO bonds (worker, delegator, amount) VALUES (?1, ?1, 200)",
            rusqlite::params![staker.id().as_bytes().to_vec()],
        )
        .expect("bond");
    let ledger = Ledger::open(&path, CONFIG, &genesis(&[])).expect("upgrades");
    let h = Harness {
        ledger,
        _place: None,
    };
    assert_eq!(h.ledger.stake_at(&staker.id(), 5).expect("stake"), 200);
    let id = proposed(h.ok(&proposer, pay(&payee, 10)));
    assert_eq!(h.ledger.proposal(id).expect("proposal").total_stake, 200);
    h.advance(1);
    assert_eq!(
        h.ok(&staker, vote(id, VoteChoice::Yes)),
        Receipt::Voted { weight: 200 }
    );
    assert_eq!(h.ledger.supply().expect("supply"), 1_000);
    drop(h);
    let again = Ledger::open(&path, CONFIG, &genesis(&[])).expect("reopens");
    assert_eq!(again.proposal(id).expect("proposal").yes, 200);
}
