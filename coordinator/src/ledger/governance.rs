//! Governance of the SIP (PROTOCOL §6.12): proposals that pay from the `pool`, votes weighted by the
//! stake each voter had bonded or delegated when the proposal was made, and the tally that executes a
//! passed proposal exactly once when its voting period ends.
//!
//! Stake at a round comes from `stake_history`, one row per account per round its bonds changed in
//! (written by `stake::set_bond`), and `stake_totals`, the same for the sum of all bonds. A proposal
//! made in round `S` counts the stake as it stood when round `S` began: nothing bonded once the
//! proposal is known, or bought for the vote after it, weighs anything.

use std::collections::BTreeMap;

use crate::db::{Connection, OptionalExtension, params};
use dualrig_proto::identity::PublicId;
use dualrig_proto::ledger_request::{ProposalKind, VoteChoice};

use super::store::{self, check_id, from_db, id_from_db, nonzero, to_db};
use super::{LedgerConfig, LedgerError, hosting};

/// Version 7: stake history, proposals, votes and what executed proposals paid; the capacity
/// redirect's tables (`capacity::TABLES`) come in the same step. Only adds tables and an index; the
/// history starts from the bonds as they stand, recorded at round 0.
pub(super) const TABLES: &str = "
CREATE INDEX IF NOT EXISTS bonds_by_delegator ON bonds (delegator);
CREATE TABLE IF NOT EXISTS stake_history (
    account BLOB NOT NULL CHECK (length(account) = 32),
    round   INTEGER NOT NULL CHECK (round >= 0),
    stake   INTEGER NOT NULL CHECK (stake >= 0),
    PRIMARY KEY (account, round)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stake_totals (
    round INTEGER PRIMARY KEY CHECK (round >= 0),
    stake INTEGER NOT NULL CHECK (stake >= 0)
) STRICT;
INSERT INTO stake_history (account, round, stake)
    SELECT delegator, 0, CAST(SUM(amount) AS BIGINT) FROM bonds WHERE true GROUP BY delegator ON CONFLICT DO NOTHING;
INSERT INTO stake_totals (round, stake) SELECT 0, CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM bonds WHERE true
    ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS proposals (
    id             INTEGER PRIMARY KEY,
    proposer       BLOB NOT NULL CHECK (length(proposer) = 32),
    kind           INTEGER NOT NULL CHECK (kind IN (1, 2)),
    payee          BLOB CHECK (payee IS NULL OR length(payee) = 32),
    amount         INTEGER NOT NULL CHECK (amount > 0),
    window_rounds  INTEGER NOT NULL CHECK (window_rounds >= 0),
    reason         TEXT NOT NULL,
    snapshot_round INTEGER NOT NULL CHECK (snapshot_round >= 0),
    vote_start     INTEGER NOT NULL CHECK (vote_start >= 0),
    vote_end       INTEGER NOT NULL CHECK (vote_end >= vote_start),
    total_stake    INTEGER NOT NULL CHECK (total_stake >= 0),
    bond           INTEGER NOT NULL CHECK (bond >= 0),
    bond_locked    INTEGER NOT NULL CHECK (bond_locked >= 0),
    yes            INTEGER NOT NULL DEFAULT 0 CHECK (yes >= 0),
    no             INTEGER NOT NULL DEFAULT 0 CHECK (no >= 0),
    abstain        INTEGER NOT NULL DEFAULT 0 CHECK (abstain >= 0),
    state          TEXT NOT NULL DEFAULT 'voting'
                   CHECK (state IN ('voting', 'executed', 'failed', 'rejected')),
    outcome        TEXT NOT NULL DEFAULT '',
    tallied_round  INTEGER CHECK (tallied_round IS NULL OR tallied_round >= 0),
    paid           INTEGER NOT NULL DEFAULT 0 CHECK (paid >= 0)
) STRICT;
CREATE INDEX IF NOT EXISTS proposals_open ON proposals (vote_end) WHERE state = 'voting';
CREATE TABLE IF NOT EXISTS votes (
    proposal INTEGER NOT NULL,
    voter    BLOB NOT NULL CHECK (length(voter) = 32),
    choice   INTEGER NOT NULL CHECK (choice IN (1, 2, 3)),
    weight   INTEGER NOT NULL CHECK (weight > 0),
    round    INTEGER NOT NULL CHECK (round >= 0),
    PRIMARY KEY (proposal, voter)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS proposal_payments (
    proposal INTEGER NOT NULL,
    payee    BLOB NOT NULL CHECK (length(payee) = 32),
    work     INTEGER NOT NULL CHECK (work >= 0),
    amount   INTEGER NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (proposal, payee)
) STRICT, WITHOUT ROWID;
";

/// Longest proposal reason, in bytes of UTF-8.
pub const MAX_REASON: usize = 512;
/// Longest look-back of an operator-support proposal: about 70 days of 60 s rounds.
pub const MAX_WINDOW_ROUNDS: u64 = 100_000;

/// How proposals are made, voted on and decided (Livepeer's LIP-89 treasury is the model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GovernanceRules {
    /// Units locked from the proposer's balance; returned when the vote reaches quorum, forfeited to
    /// the SIP otherwise.
    pub proposal_bond: u64,
    /// Rounds between a proposal and the first round votes are taken.
    pub vote_delay_rounds: u64,
    /// Rounds votes are taken in.
    pub vote_period_rounds: u64,
    /// Least turnout (yes + no + abstain), in ppm of all stake bonded at the snapshot.
    pub quorum_ppm: u32,
    /// Yes must be more than this share (ppm) of yes + no.
    pub approval_ppm: u32,
}

impl GovernanceRules {
    /// A 10-token bond, one round of delay, ten of voting, 33 % quorum, more than 50 % approval.
    pub const DEFAULT: Self = Self {
        proposal_bond: 10_000_000,
        vote_delay_rounds: 1,
        vote_period_rounds: 10,
        quorum_ppm: 330_000,
        approval_ppm: 500_000,
    };

    /// Takes every setting given (a flag or a file key) over the one in place.
    pub fn merge(
        &mut self,
        proposal_bond: Option<u64>,
        vote_delay_rounds: Option<u64>,
        vote_period_rounds: Option<u64>,
        quorum_ppm: Option<u32>,
        approval_ppm: Option<u32>,
    ) {
        self.proposal_bond = proposal_bond.unwrap_or(self.proposal_bond);
        self.vote_delay_rounds = vote_delay_rounds.unwrap_or(self.vote_delay_rounds);
        self.vote_period_rounds = vote_period_rounds.unwrap_or(self.vote_period_rounds);
        self.quorum_ppm = quorum_ppm.unwrap_or(self.quorum_ppm);
        self.approval_ppm = approval_ppm.unwrap_or(self.approval_ppm);
    }
}

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalState {
    /// Before or inside its voting period.
    Voting,
    /// Passed and paid.
    Executed,
    /// Passed, but could not pay (the SIP was short, or no operator had verified work); `outcome`
    /// says why. Nothing was paid.
    Failed,
    /// Missed quorum or approval; nothing was paid.
    Rejected,
}

impl ProposalState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Voting => "voting",
            Self::Executed => "executed",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
        }
    }

    fn parse(text: &str) -> Result<Self, LedgerError> {
        Ok(match text {
            "voting" => Self::Voting,
            "executed" => Self::Executed,
            "failed" => Self::Failed,
            "rejected" => Self::Rejected,
            other => return Err(LedgerError::Corrupt(format!("proposal state '{other}'"))),
        })
    }
}

/// One proposal with its tally, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub id: u64,
    pub proposer: PublicId,
    pub kind: ProposalKind,
    pub reason: String,
    /// Stake counts as it stood when this round began.
    pub snapshot_round: u64,
    /// Votes are taken in rounds `vote_start..vote_end`; the tally runs when round `vote_end` begins.
    pub vote_start: u64,
    pub vote_end: u64,
    /// All stake bonded at the snapshot: the base of the quorum.
    pub total_stake: u64,
    pub bond: u64,
    /// Still locked (0 once returned or forfeited).
    pub bond_locked: u64,
    pub yes: u64,
    pub no: u64,
    pub abstain: u64,
    pub state: ProposalState,
    /// Why it ended as it did; empty while voting.
    pub outcome: String,
    pub tallied_round: Option<u64>,
    /// What its execution paid from the SIP.
    pub paid: u64,
}

/// Stake `account` bonded or delegated, as it stood when round `round` began.
pub(super) fn stake_at(
    conn: &Connection,
    account: &PublicId,
    round: u64,
) -> Result<u64, LedgerError> {
    let v: Option<i64> = conn
        .prepare_cached(
            "SELECT stake FROM stake_history WHERE account = ?1 AND round < ?2
             ORDER BY round DESC LIMIT 1",
        )?
        .query_row(params![account.as_bytes(), to_db("round", round)?], |r| {
            r.get(0)
        })
        .optional()?;
    from_db("stake", v.unwrap_or(0))
}

/// All bonded stake as it stood when round `round` began.
pub(super) fn total_stake_at(conn: &Connection, round: u64) -> Result<u64, LedgerError> {
    let v: Option<i64> = conn
        .prepare_cached(
            "SELECT stake FROM stake_totals WHERE round < ?1 ORDER BY round DESC LIMIT 1",
        )?
        .query_row(params![to_db("round", round)?], |r| r.get(0))
        .optional()?;
    from_db("stake", v.unwrap_or(0))
}

/// Records, for the current round, what `delegator` now has bonded or delegated in all, and the sum of
/// every bond. Called whenever a bond changes.
pub(super) fn record_stake(conn: &Connection, delegator: &PublicId) -> Result<(), LedgerError> {
    let round = to_db("round", store::round(conn)?)?;
    conn.prepare_cached(
        "INSERT INTO stake_history (account, round, stake)
         SELECT ?1, ?2, CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM bonds WHERE delegator = ?1
         ON CONFLICT (account, round) DO UPDATE SET stake = excluded.stake",
    )?
    .execute(params![delegator.as_bytes(), round])?;
    conn.prepare_cached(
        // `WHERE true` tells SQLite's parser the ON CONFLICT is the upsert's, not a join's.
        "INSERT INTO stake_totals (round, stake) SELECT ?1, CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM bonds
         WHERE true ON CONFLICT (round) DO UPDATE SET stake = excluded.stake",
    )?
    .execute(params![round])?;
    Ok(())
}

/// Records `proposer`'s proposal in the current round, locking the bond from its balance.
pub(super) fn propose(
    conn: &Connection,
    config: &LedgerConfig,
    proposer: &PublicId,
    kind: &ProposalKind,
    reason: &str,
) -> Result<u64, LedgerError> {
    let rules = &config.governance;
    if reason.trim().is_empty() {
        return Err(LedgerError::EmptyReason);
    }
    if reason.len() > MAX_REASON {
        return Err(LedgerError::ReasonTooLong {
            len: reason.len(),
            max: MAX_REASON,
        });
    }
    let (code, payee, amount, window) = match *kind {
        ProposalKind::Pay { to, amount } => {
            check_id("proposal payee", &to)?;
            (1, Some(to), amount, 0)
        }
        ProposalKind::OperatorSupport {
            amount,
            window_rounds,
        } => {
            if !(1..=MAX_WINDOW_ROUNDS).contains(&window_rounds) {
                return Err(LedgerError::BadWindow {
                    window_rounds,
                    max: MAX_WINDOW_ROUNDS,
                });
            }
            (2, None, amount, window_rounds)
        }
    };
    nonzero(amount)?;
    let available = store::balance(conn, proposer)?;
    if available < rules.proposal_bond {
        return Err(LedgerError::ProposalBondShort {
            account: *proposer,
            available,
            needed: rules.proposal_bond,
        });
    }
    store::debit(conn, proposer, rules.proposal_bond)?;
    let round = store::round(conn)?;
    let overflow = || LedgerError::Overflow {
        what: "voting period",
    };
    let vote_start = round
        .checked_add(rules.vote_delay_rounds)
        .ok_or_else(overflow)?;
    let vote_end = vote_start
        .checked_add(rules.vote_period_rounds)
        .ok_or_else(overflow)?;
    let id = conn.prepare_cached(
        "INSERT INTO proposals (proposer, kind, payee, amount, window_rounds, reason, snapshot_round,
                                vote_start, vote_end, total_stake, bond, bond_locked)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)
         RETURNING id",
    )?
    .query_row(params![
        proposer.as_bytes(),
        code,
        payee.map(|p| p.as_bytes().to_vec()),
        to_db("proposal amount", amount)?,
        to_db("window", window)?,
        reason,
        to_db("round", round)?,
        to_db("round", vote_start)?,
        to_db("round", vote_end)?,
        to_db("stake", total_stake_at(conn, round)?)?,
        to_db("proposal bond", rules.proposal_bond)?,
    ], |r| r.get::<_, i64>(0))?;
    u64::try_from(id).map_err(|_| LedgerError::Corrupt("negative proposal id".into()))
}

/// Casts `voter`'s stake at the proposal's snapshot for `choice`, once per voter.
pub(super) fn vote(
    conn: &Connection,
    voter: &PublicId,
    id: u64,
    choice: VoteChoice,
) -> Result<u64, LedgerError> {
    let p = proposal(conn, id)?.ok_or(LedgerError::NoSuchProposal { id })?;
    let round = store::round(conn)?;
    if p.state != ProposalState::Voting || round >= p.vote_end {
        return Err(LedgerError::VoteClosed {
            id,
            vote_end: p.vote_end,
            round,
        });
    }
    if round < p.vote_start {
        return Err(LedgerError::VoteNotOpen {
            id,
            vote_start: p.vote_start,
            round,
        });
    }
    let cast: Option<i64> = conn
        .prepare_cached("SELECT choice FROM votes WHERE proposal = ?1 AND voter = ?2")?
        .query_row(params![to_db("proposal", id)?, voter.as_bytes()], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(code) = cast {
        let choice = u8::try_from(code)
            .ok()
            .and_then(|c| VoteChoice::from_code(c).ok())
            .ok_or_else(|| LedgerError::Corrupt(format!("vote choice {code}")))?;
        return Err(LedgerError::AlreadyVoted {
            id,
            voter: *voter,
            choice,
        });
    }
    let weight = stake_at(conn, voter, p.snapshot_round)?;
    if weight == 0 {
        return Err(LedgerError::NoStakeAtSnapshot {
            id,
            voter: *voter,
            snapshot_round: p.snapshot_round,
        });
    }
    conn.prepare_cached(
        "INSERT INTO votes (proposal, voter, choice, weight, round) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        to_db("proposal", id)?,
        voter.as_bytes(),
        choice.code(),
        to_db("vote weight", weight)?,
        to_db("round", round)?,
    ])?;
    let (column, now) = match choice {
        VoteChoice::Yes => ("yes", p.yes.checked_add(weight)),
        VoteChoice::No => ("no", p.no.checked_add(weight)),
        VoteChoice::Abstain => ("abstain", p.abstain.checked_add(weight)),
    };
    let now = now.ok_or(LedgerError::Overflow { what: "tally" })?;
    // `column` is one of the literals above, never input.
    conn.prepare_cached(&format!("UPDATE proposals SET {column} = ?2 WHERE id = ?1"))?
        .execute(params![to_db("proposal", id)?, to_db("tally", now)?])?;
    Ok(weight)
}

/// Tallies, in round `round`, every proposal whose voting period has ended, oldest first: the bond
/// goes back or to the SIP, and a passed proposal pays. Each proposal is tallied once; its row keeps
/// the outcome.
pub(super) fn tally_due(
    conn: &Connection,
    config: &LedgerConfig,
    round: u64,
) -> Result<(), LedgerError> {
    let due: Vec<i64> = conn
        .prepare_cached(
            "SELECT id FROM proposals WHERE state = 'voting' AND vote_end <= ?1 ORDER BY id",
        )?
        .query_map(params![to_db("round", round)?], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in due {
        let p = proposal(conn, from_db("proposal", id)?)?
            .ok_or_else(|| LedgerError::Corrupt(format!("proposal {id} vanished")))?;
        tally(conn, config, round, &p)?;
    }
    Ok(())
}

fn tally(
    conn: &Connection,
    config: &LedgerConfig,
    round: u64,
    p: &Proposal,
) -> Result<(), LedgerError> {
    let rules = &config.governance;
    let turnout = u128::from(p.yes) + u128::from(p.no) + u128::from(p.abstain);
    let quorum = p.total_stake > 0
        && turnout * 1_000_000 >= u128::from(rules.quorum_ppm) * u128::from(p.total_stake);
    if p.bond_locked > 0 {
        if quorum {
            store::credit(conn, &p.proposer, p.bond_locked)?;
        } else {
            super::sip::credit(conn, super::sip::Source::Bonds, p.bond_locked)?;
        }
    }
    let decided = u128::from(p.yes) + u128::from(p.no);
    let approved = u128::from(p.yes) * 1_000_000 > u128::from(rules.approval_ppm) * decided;
    let (state, outcome, paid) = if !quorum {
        (
            ProposalState::Rejected,
            format!(
                "quorum missed: {turnout} of {} staked voted; {} ppm needed",
                p.total_stake, rules.quorum_ppm
            ),
            0,
        )
    } else if !approved {
        (
            ProposalState::Rejected,
            format!(
                "not approved: {} yes of {decided} yes and no; more than {} ppm needed",
                p.yes, rules.approval_ppm
            ),
            0,
        )
    } else {
        // A payment that cannot be made leaves no trace but the reason.
        conn.execute_batch("SAVEPOINT proposal")?;
        match execute(conn, round, p) {
            Ok(paid) => {
                conn.execute_batch("RELEASE proposal")?;
                (
                    ProposalState::Executed,
                    format!("passed; paid {paid} units from the SIP"),
                    paid,
                )
            }
            Err(e) => {
                conn.execute_batch("ROLLBACK TO proposal; RELEASE proposal")?;
                (ProposalState::Failed, format!("passed, not paid: {e}"), 0)
            }
        }
    };
    conn.prepare_cached(
        "UPDATE proposals SET state = ?2, outcome = ?3, tallied_round = ?4, paid = ?5,
                              bond_locked = 0
         WHERE id = ?1",
    )?
    .execute(params![
        to_db("proposal", p.id)?,
        state.name(),
        outcome,
        to_db("round", round)?,
        to_db("paid", paid)?,
    ])?;
    Ok(())
}

/// Pays a passed proposal from the SIP; refuses, paying nothing, when the SIP holds less than the
/// whole amount.
fn execute(conn: &Connection, round: u64, p: &Proposal) -> Result<u64, LedgerError> {
    let amount = match p.kind {
        ProposalKind::Pay { amount, .. } | ProposalKind::OperatorSupport { amount, .. } => amount,
    };
    let available = store::pool(conn)?;
    if available < amount {
        return Err(LedgerError::InsufficientPool {
            available,
            needed: amount,
        });
    }
    match p.kind {
        ProposalKind::Pay { to, amount } => {
            store::pay_from_pool(conn, &to, amount)?;
            record_payment(conn, p.id, &to, 0, amount)?;
            Ok(amount)
        }
        ProposalKind::OperatorSupport {
            amount,
            window_rounds,
        } => {
            let work = verified_work(conn, round.saturating_sub(window_rounds), round)?;
            if work.is_empty() {
                return Err(LedgerError::NoVerifiedWork { window_rounds });
            }
            let (shares, _dust) = hosting::split(amount, &work);
            let mut paid = 0u64;
            for ((worker, share), (_, credited)) in shares.iter().zip(&work) {
                record_payment(conn, p.id, worker, *credited, *share)?;
                if *share > 0 {
                    store::pay_from_pool(conn, worker, *share)?;
                    paid += share;
                }
            }
            Ok(paid)
        }
    }
}

/// Each worker's verified work in rounds `from..to`: the hosting credit its payouts counted (bytes
/// proven in challenges, weighed as the payout weighed them), saturating. Only staked workers are
/// ever credited, so this is the auditable record of proven work.
pub(super) fn verified_work(
    conn: &Connection,
    from: u64,
    to: u64,
) -> Result<Vec<(PublicId, u64)>, LedgerError> {
    let rows: Vec<(Vec<u8>, i64)> = conn
        .prepare_cached(
            "SELECT worker, credited FROM hosting_statements
             WHERE round >= ?1 AND round < ?2 AND credited > 0",
        )?
        .query_map(params![to_db("round", from)?, to_db("round", to)?], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut work: BTreeMap<PublicId, u64> = BTreeMap::new();
    for (worker, credited) in rows {
        let entry = work.entry(id_from_db(worker)?).or_default();
        *entry = entry.saturating_add(from_db("credited", credited)?);
    }
    Ok(work.into_iter().collect())
}

fn record_payment(
    conn: &Connection,
    id: u64,
    payee: &PublicId,
    work: u64,
    amount: u64,
) -> Result<(), LedgerError> {
    conn.prepare_cached(
        "INSERT INTO proposal_payments (proposal, payee, work, amount) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        to_db("proposal", id)?,
        payee.as_bytes(),
        to_db("work", work)?,
        to_db("payment", amount)?
    ])?;
    Ok(())
}

/// What an executed proposal paid to whom, with the work each payment was weighed by, by payee.
pub(super) fn payments(
    conn: &Connection,
    id: u64,
) -> Result<Vec<(PublicId, u64, u64)>, LedgerError> {
    let rows: Vec<(Vec<u8>, i64, i64)> = conn
        .prepare_cached(
            "SELECT payee, work, amount FROM proposal_payments WHERE proposal = ?1 ORDER BY payee",
        )?
        .query_map(params![to_db("proposal", id)?], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(p, w, a)| Ok((id_from_db(p)?, from_db("work", w)?, from_db("payment", a)?)))
        .collect()
}

const COLUMNS: &str = "id, proposer, kind, payee, amount, window_rounds, reason, snapshot_round,
    vote_start, vote_end, total_stake, bond, bond_locked, yes, no, abstain, state, outcome,
    tallied_round, paid";

pub(super) fn proposal(conn: &Connection, id: u64) -> Result<Option<Proposal>, LedgerError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM proposals WHERE id = ?1"))?
        .query_row(params![to_db("proposal", id)?], read_proposal)
        .optional()?
        .transpose()
}

/// At most `limit` proposals numbered above `after_id`, oldest first.
pub(super) fn proposals_page(
    conn: &Connection,
    after_id: u64,
    limit: usize,
) -> Result<Vec<Proposal>, LedgerError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows: Vec<Result<Proposal, LedgerError>> = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM proposals WHERE id > ?1 ORDER BY id LIMIT ?2"
        ))?
        .query_map(params![to_db("proposal", after_id)?, limit], read_proposal)?
        .collect::<Result<_, _>>()?;
    rows.into_iter().collect()
}

fn read_proposal(r: &crate::db::Row) -> Result<Result<Proposal, LedgerError>, crate::db::DbError> {
    let int = |i: usize| r.get::<_, i64>(i);
    let raw = (
        r.get::<_, Vec<u8>>(1)?,
        int(2)?,
        r.get::<_, Option<Vec<u8>>>(3)?,
        [
            int(0)?,
            int(4)?,
            int(5)?,
            int(7)?,
            int(8)?,
            int(9)?,
            int(10)?,
        ],
        [int(11)?, int(12)?, int(13)?, int(14)?, int(15)?, int(19)?],
        r.get::<_, String>(6)?,
        r.get::<_, String>(16)?,
        r.get::<_, String>(17)?,
        r.get::<_, Option<i64>>(18)?,
    );
    Ok((|| {
        let (proposer, kind, payee, a, b, reason, state, outcome, tallied) = raw;
        let amount = from_db("proposal amount", a[1])?;
        let kind = match (kind, payee) {
            (1, Some(payee)) => ProposalKind::Pay {
                to: id_from_db(payee)?,
                amount,
            },
            (2, None) => ProposalKind::OperatorSupport {
                amount,
                window_rounds: from_db("window", a[2])?,
            },
            (k, _) => return Err(LedgerError::Corrupt(format!("proposal kind {k}"))),
        };
        Ok(Proposal {
            id: from_db("proposal", a[0])?,
            proposer: id_from_db(proposer)?,
            kind,
            reason,
            snapshot_round: from_db("round", a[3])?,
            vote_start: from_db("round", a[4])?,
            vote_end: from_db("round", a[5])?,
            total_stake: from_db("stake", a[6])?,
            bond: from_db("bond", b[0])?,
            bond_locked: from_db("bond", b[1])?,
            yes: from_db("tally", b[2])?,
            no: from_db("tally", b[3])?,
            abstain: from_db("tally", b[4])?,
            state: ProposalState::parse(&state)?,
            outcome,
            tallied_round: tallied.map(|t| from_db("round", t)).transpose()?,
            paid: from_db("paid", b[5])?,
        })
    })())
}
