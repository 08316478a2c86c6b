//! Random sequences of operations, accepted or refused: supply is always the genesis plus what hosting
//! payouts minted (slashes, forfeits, fee and mint shares and mining weight purchases go to the pool,
//! download fees to the hosting-fee pot, proposal bonds stay locked until their tally, redirected
//! rewards sit in the capacity fund until a byte or session bonus pays them out; mining weight bleeds and holds no supply), nothing goes negative,
//! a refused operation leaves every row as it was, and no proposal pays twice.

use crate::db::Value;
use proptest::prelude::*;

use super::*;

const ACTORS: u8 = 4;
const START: u64 = 1_000;

#[derive(Debug, Clone)]
enum Step {
    Act {
        who: u8,
        op: Op,
    },
    /// The last accepted request, sent again.
    Replay,
    /// A request for `who` signed by `signer`.
    Forged {
        who: u8,
        signer: u8,
        amount: u64,
    },
    Slash {
        worker: u8,
        ppm: u32,
    },
    PayFromPool {
        to: u8,
        amount: u64,
    },
    /// A hosting payout for these (worker, credited bytes).
    PayHosting {
        credits: Vec<(u8, u64)>,
    },
    /// The dispatcher's count of a worker's overlapping verified jobs (0 is refused).
    ProveSessions {
        worker: u8,
        sessions: u32,
    },
    /// A storage fault's slash: the worker's held-back rewards are forfeited too.
    StorageSlash {
        worker: u8,
        ppm: u32,
    },
    /// The coordinator forwards the ticket `Op::Redeem` with these fields names to `recipient` for a
    /// download: its redemption then pays a fee into the pot.
    Forward {
        recipient: u8,
        sender: u8,
        tag: u64,
        face: u64,
        expiration: u64,
    },
    Advance,
}

#[derive(Debug, Clone)]
enum Op {
    Transfer {
        to: u8,
        amount: u64,
    },
    Bond {
        amount: u64,
    },
    Delegate {
        worker: u8,
        amount: u64,
    },
    Unbond {
        worker: u8,
        amount: u64,
    },
    WithdrawUnbonded,
    Deposit {
        amount: u64,
    },
    Reserve {
        amount: u64,
    },
    Unlock,
    CancelUnlock,
    Withdraw,
    /// Create collective `c{name}` locking `stake` to join.
    CreateCollective {
        name: u8,
        stake: u64,
    },
    AddToCollective {
        name: u8,
        root: u8,
    },
    JoinCollective {
        name: u8,
    },
    LeaveCollective {
        name: u8,
    },
    /// Buy mining weight for `worker` with `amount`, at most `max_price_ppm` a unit.
    BuyWeight {
        worker: u8,
        amount: u64,
        max_price_ppm: u64,
    },
    /// A proposal paying `amount` to `to`, or (`to` = None) shared among operators over `window`
    /// rounds; `long` makes its reason one byte too long.
    Propose {
        to: Option<u8>,
        amount: u64,
        window: u64,
        long: bool,
    },
    Vote {
        proposal: u64,
        choice: u8,
    },
    SetRedirect {
        share_ppm: u32,
    },
    /// Redeem ticket `tag` from `sender` (always a winner), possibly expired by now.
    Redeem {
        sender: u8,
        tag: u64,
        face: u64,
        expiration: u64,
    },
}

fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..=50, 0u64..=1_200, Just(u64::MAX)]
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0..ACTORS;
    prop_oneof![
        (who.clone(), amount()).prop_map(|(to, amount)| Op::Transfer { to, amount }),
        amount().prop_map(|amount| Op::Bond { amount }),
        (who.clone(), amount()).prop_map(|(worker, amount)| Op::Delegate { worker, amount }),
        (who.clone(), amount()).prop_map(|(worker, amount)| Op::Unbond { worker, amount }),
        Just(Op::WithdrawUnbonded),
        amount().prop_map(|amount| Op::Deposit { amount }),
        amount().prop_map(|amount| Op::Reserve { amount }),
        Just(Op::Unlock),
        Just(Op::CancelUnlock),
        Just(Op::Withdraw),
        (0u8..3, amount()).prop_map(|(name, stake)| Op::CreateCollective { name, stake }),
        (0u8..3, 0u8..2).prop_map(|(name, root)| Op::AddToCollective { name, root }),
        (0u8..3).prop_map(|name| Op::JoinCollective { name }),
        (0u8..3).prop_map(|name| Op::LeaveCollective { name }),
        (
            who.clone(),
            amount(),
            prop_oneof![0u64..=3_000_000, Just(u64::MAX)]
        )
            .prop_map(|(worker, amount, max_price_ppm)| Op::BuyWeight {
                worker,
                amount,
                max_price_ppm
            }),
        (
            proptest::option::of(who.clone()),
            amount(),
            0u64..4,
            proptest::bool::weighted(0.1)
        )
            .prop_map(|(to, amount, window, long)| Op::Propose {
                to,
                amount,
                window,
                long
            }),
        (0u64..3, 1u8..=4).prop_map(|(proposal, choice)| Op::Vote { proposal, choice }),
        prop_oneof![Just(0u32), 0u32..=1_000_000, Just(1_000_001)]
            .prop_map(|share_ppm| Op::SetRedirect { share_ppm }),
        (
            who,
            0u64..6,
            prop_oneof![1u64..=400, Just(u64::MAX)],
            0u64..6
        )
            .prop_map(|(sender, tag, face, expiration)| Op::Redeem {
                sender,
                tag,
                face,
                expiration
            }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0..ACTORS, op()).prop_map(|(who, op)| Step::Act { who, op }),
        1 => Just(Step::Replay),
        1 => (0..ACTORS, 0..ACTORS, amount()).prop_map(|(who, signer, amount)| Step::Forged { who, signer, amount }),
        1 => (0..ACTORS, prop_oneof![0u32..=1_000_000, Just(1_000_001)]).prop_map(|(worker, ppm)| Step::Slash { worker, ppm }),
        1 => (0..ACTORS, amount()).prop_map(|(to, amount)| Step::PayFromPool { to, amount }),
        2 => proptest::collection::vec((0..ACTORS, prop_oneof![0u64..=10, 0u64..=1 << 40, Just(u64::MAX)]), 0..4)
            .prop_map(|credits| Step::PayHosting { credits }),
        2 => (0..ACTORS, 0u32..=6).prop_map(|(worker, sessions)| Step::ProveSessions { worker, sessions }),
        1 => (0..ACTORS, 0u32..=1_000_000).prop_map(|(worker, ppm)| Step::StorageSlash { worker, ppm }),
        2 => (0..ACTORS, 0..ACTORS, 0u64..6, prop_oneof![1u64..=400, Just(u64::MAX)], 0u64..6)
            .prop_map(|(recipient, sender, tag, face, expiration)| Step::Forward { recipient, sender, tag, face, expiration }),
        5 => Just(Step::Advance),
        // Stake enough to be a worker, mining weight bought for one, proposals and votes on the first
        // few, often enough that purchases, bleeds and executed proposals are in most sequences.
        2 => (0..ACTORS, 100u64..=300).prop_map(|(who, amount)| Step::Act { who, op: Op::Bond { amount } }),
        3 => (0..ACTORS, 0..ACTORS, 1u64..=100, prop_oneof![1_000_000u64..=2_000_000, Just(u64::MAX)])
            .prop_map(|(who, worker, amount, max_price_ppm)| Step::Act { who, op: Op::BuyWeight { worker, amount, max_price_ppm } }),
        2 => (0..ACTORS, 0..ACTORS, 1u64..=150).prop_map(|(who, to, amount)| Step::Act { who, op: Op::Propose { to: Some(to), amount, window: 0, long: false } }),
        6 => (0..ACTORS, 1u64..3, prop_oneof![3 => Just(1u8), 1 => 2u8..=4]).prop_map(|(who, proposal, choice)| Step::Act { who, op: Op::Vote { proposal, choice } }),
    ]
}

fn identity(n: u8) -> Identity {
    actor(n + 1)
}

fn operation(who: u8, op: &Op) -> Operation {
    let id = |n: u8| identity(n).id();
    match *op {
        Op::Transfer { to, amount } => Operation::Transfer { to: id(to), amount },
        Op::Bond { amount } => Operation::Bond { amount },
        Op::Delegate { worker, amount } => Operation::Delegate {
            worker: id(worker),
            amount,
        },
        Op::Unbond { worker, amount } => Operation::Unbond {
            worker: id(worker),
            amount,
        },
        Op::WithdrawUnbonded => Operation::WithdrawUnbonded,
        Op::Deposit { amount } => Operation::Deposit { amount },
        Op::Reserve { amount } => Operation::Reserve { amount },
        Op::Unlock => Operation::Unlock,
        Op::CancelUnlock => Operation::CancelUnlock,
        Op::Withdraw => Operation::Withdraw,
        Op::CreateCollective { name, stake } => Operation::CreateCollective {
            // `c2` is refused for its capital letter: a bad name must change nothing either.
            name: if name == 2 {
                "C2".into()
            } else {
                format!("c{name}")
            },
            rules: CollectiveRules {
                access_stake: stake,
                price_per_byte: 1,
                free_bytes_per_round: 100,
                replicas: 1,
            },
        },
        Op::AddToCollective { name, root } => Operation::AddToCollective {
            name: format!("c{name}"),
            root: [root; 32],
        },
        Op::JoinCollective { name } => Operation::JoinCollective {
            name: format!("c{name}"),
        },
        Op::LeaveCollective { name } => Operation::LeaveCollective {
            name: format!("c{name}"),
        },
        Op::BuyWeight {
            worker,
            amount,
            max_price_ppm,
        } => Operation::BuyWeight {
            worker: id(worker),
            amount,
            max_price_ppm,
        },
        Op::Propose {
            to,
            amount,
            window,
            long,
        } => Operation::Propose {
            kind: match to {
                Some(to) => ProposalKind::Pay { to: id(to), amount },
                None => ProposalKind::OperatorSupport {
                    amount,
                    window_rounds: window,
                },
            },
            reason: "r".repeat(if long { MAX_REASON + 1 } else { 8 }),
        },
        Op::Vote { proposal, choice } => Operation::Vote {
            proposal,
            // Choice 4 is not one: it is sent as raw bytes below.
            choice: VoteChoice::from_code(choice).unwrap_or(VoteChoice::Abstain),
        },
        Op::SetRedirect { share_ppm } => Operation::SetRedirect { share_ppm },
        Op::Redeem {
            sender,
            tag,
            face,
            expiration,
        } => {
            let (t, r) = winning_ticket(&identity(sender), &id(who), face, expiration, tag);
            redeem_op(t, r)
        }
    }
}

/// [`HOSTING_CONFIG`] with every SIP inflow on and a small curve that bleeds fast.
const PROPS_CONFIG: LedgerConfig = LedgerConfig {
    sip: SipRules {
        fee_share_ppm: 50_000,
        mint_share_ppm: 100_000,
        mint_ceiling: 500,
        virtual_tokens: 1_000,
        virtual_weight: 1_000,
        weight_bleed_ppm: 200_000,
        weight_stake_ppm: 1_000_000,
    },
    ..HOSTING_CONFIG
};

/// The pool is its flows' inflows less outflows, and the weight outstanding is every worker's sum.
fn sip_accounts_add_up(h: &Harness, snapshot: &LedgerSnapshot) -> Result<(), TestCaseError> {
    let flows = h.ledger.sip_flows(0).expect("flows");
    let came_in: u64 = flows.iter().map(|f| f.amount_in).sum();
    let went_out: u64 = flows.iter().map(|f| f.amount_out).sum();
    prop_assert_eq!(h.ledger.pool_balance().expect("pool"), came_in - went_out);
    let weights: i64 = snapshot.tables["mining_weight"]
        .iter()
        .map(|row| match row[1] {
            Value::Int(w) => w,
            _ => 0,
        })
        .sum();
    let status = h.ledger.sip_status(0).expect("status");
    prop_assert_eq!(
        u64::try_from(weights).expect("positive"),
        status.weight_outstanding
    );
    prop_assert!(status.curve.tokens >= u128::from(PROPS_CONFIG.sip.virtual_tokens));
    Ok(())
}

fn no_negative_values(snapshot: &LedgerSnapshot) -> Result<(), TestCaseError> {
    for (table, rows) in &snapshot.tables {
        for row in rows {
            for v in row {
                if let Value::Int(i) = v {
                    prop_assert!(*i >= 0, "negative {i} in {table}: {row:?}");
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_sequence_conserves_supply_and_refusals_change_nothing(
        staked in proptest::bool::ANY,
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let actors: Vec<Identity> = (0..ACTORS).map(identity).collect();
        let balances: Vec<(&Identity, u64)> = actors.iter().map(|a| (a, START)).collect();
        // Votes open in the proposal's own round, so more random sequences reach a tally that pays.
        let governance = GovernanceRules { vote_delay_rounds: 0, ..GOVERNANCE };
        let config = LedgerConfig { capacity_bonus_per_byte: 1, capacity_bonus_per_session: 40, governance, ..PROPS_CONFIG };
        let h = Harness::in_memory_with(config, &balances);
        let mut paid_by_proposal: std::collections::BTreeMap<u64, u64> = Default::default();
        let genesis = u128::from(START) * u128::from(ACTORS);
        let mut last_accepted: Option<SignedRequest> = None;
        // Half the runs start with every actor staked a round ago, so their votes weigh something,
        // and a SIP of 100.
        if staked {
            for a in &actors {
                h.ok(a, Operation::Bond { amount: 200 });
            }
            // And the SIP holds something to pay proposals from.
            h.ledger.slash(&actors[0].id(), SlashFraction::from_ppm(500_000).expect("half"), b"e").expect("slash");
            h.advance(1);
        }

        for step in &steps {
            let before = h.ledger.snapshot().expect("snapshot");
            let outcome: Result<(), LedgerError> = match step {
                Step::Act { who, op } => {
                    let mut op = op.clone();
                    // A vote names the n-th latest proposal (0: one that does not exist).
                    if let Op::Vote { proposal, .. } = &mut op {
                        let made = h.ledger.proposals_page(0, usize::MAX).expect("proposals").len() as u64;
                        *proposal = if *proposal == 0 { made + 1 } else { made.saturating_sub(*proposal - 1) };
                    }
                    let op = &op;
                    let mut request = h.request(&actors[usize::from(*who)], operation(*who, op));
                    if let Op::Vote { choice: 4, .. } = op {
                        let signer = &actors[usize::from(*who)];
                        let last = request.operation.len() - 1;
                        request.operation[last] = 4;
                        request.sig = signer.sign(&request_message(&request.account, request.nonce, &request.operation));
                    }
                    let r = h.ledger.execute(&request).map(|_| ());
                    if r.is_ok() {
                        last_accepted = Some(request);
                    }
                    r
                }
                Step::Replay => match &last_accepted {
                    Some(request) => {
                        let r = h.ledger.execute(request).map(|_| ());
                        prop_assert!(matches!(r, Err(LedgerError::StaleNonce { .. })), "{r:?}");
                        r
                    }
                    None => continue,
                },
                Step::Forged { who, signer, amount } => {
                    if who == signer {
                        continue;
                    }
                    let op = Operation::Transfer { to: actors[usize::from(*signer)].id(), amount: *amount };
                    let mut request = h.request(&actors[usize::from(*signer)], op);
                    request.account = actors[usize::from(*who)].id();
                    let r = h.ledger.execute(&request).map(|_| ());
                    prop_assert!(matches!(r, Err(LedgerError::BadSignature { .. })), "{r:?}");
                    r
                }
                Step::Slash { worker, ppm } => SlashFraction::from_ppm(*ppm)
                    .and_then(|f| h.ledger.slash(&actors[usize::from(*worker)].id(), f, b"evidence"))
                    .map(|_| ()),
                Step::PayFromPool { to, amount } => h.ledger.pay_from_pool(&actors[usize::from(*to)].id(), *amount),
                Step::PayHosting { credits } => {
                    let credits: Vec<ProofCredit> = credits
                        .iter()
                        .map(|(w, c)| ProofCredit { worker: actors[usize::from(*w)].id(), proven_bytes: *c, credited: *c })
                        .collect();
                    h.ledger.pay_hosting(&credits).map(|_| ())
                }
                Step::ProveSessions { worker, sessions } => {
                    let fund = h.ledger.capacity_fund().expect("fund");
                    let r = h.ledger.prove_sessions(&actors[usize::from(*worker)].id(), *sessions);
                    if let Ok(proof) = &r {
                        prop_assert!(proof.bonus <= fund, "{proof:?} paid more than the fund's {fund}");
                        prop_assert_eq!(proof.bonus, fund.min(40 * u64::from(proof.added_sessions)));
                    }
                    r.map(|_| ())
                }
                Step::StorageSlash { worker, ppm } => {
                    let note = SlashNote { evidence: b"storage", stored: None, at_unix: 0, forfeits_held_back: true };
                    SlashFraction::from_ppm(*ppm)
                        .and_then(|f| h.ledger.slash_noted(&actors[usize::from(*worker)].id(), f, &note))
                        .map(|_| ())
                }
                Step::Forward { recipient, sender, tag, face, expiration } => {
                    let to = actors[usize::from(*recipient)].id();
                    let (t, _) = winning_ticket(&actors[usize::from(*sender)], &to, *face, *expiration, *tag);
                    let r = h.ledger.record_download_tickets(&to, &[t.ticket_hash()]).map(|_| ());
                    if let Err(e) = &r {
                        prop_assert!(matches!(e, LedgerError::TicketForwarded { .. }), "{e}");
                    }
                    r
                }
                Step::Advance => h.ledger.advance_round().map(|_| ()),
            };
            let after = h.ledger.snapshot().expect("snapshot");
            if let Err(e) = &outcome {
                prop_assert!(!matches!(e, LedgerError::Storage(_) | LedgerError::Corrupt(_)), "{e}");
                prop_assert_eq!(&after, &before, "refused {:?} ({}) changed the ledger", step, e);
            }
            let (applied, minted) = h.ledger.genesis_and_minted().expect("minted");
            prop_assert_eq!(u128::from(applied), genesis);
            prop_assert_eq!(after.supply, genesis + u128::from(minted), "after {:?}", step);
            if let Step::PayHosting { .. } = step {
                let round = h.ledger.round().expect("round");
                prop_assert!(h.ledger.recheck_payout(round).expect("recheck").is_empty());
            }
            no_negative_values(&after)?;
            sip_accounts_add_up(&h, &after)?;
            // A tallied proposal's payment never changes again: it paid once.
            for p in h.ledger.proposals_page(0, usize::MAX).expect("proposals") {
                if p.state == ProposalState::Voting {
                    prop_assert_eq!(p.paid, 0);
                    continue;
                }
                let paid = h.ledger.proposal_payments(p.id).expect("payments");
                prop_assert_eq!(paid.iter().map(|(_, _, a)| a).sum::<u64>(), p.paid);
                let first = *paid_by_proposal.entry(p.id).or_insert(p.paid);
                prop_assert_eq!(first, p.paid, "proposal {} paid again", p.id);
            }
        }
    }
}
