//! Hosting rewards (PROTOCOL §6.9): after each challenge round the bytes workers proved in it are
//! recorded (`hosting_credits`), and the first challenge round to end in a ledger round pays every
//! credit recorded and not yet paid, by any coordinator, out of a budget minted for the ledger rounds the
//! payout covers plus the download fees gathered since; part of a new worker's share is held back and
//! paid once it has stayed in good standing, forfeited on a storage fault. Every payout writes its
//! inputs (`hosting_rounds`) and each worker's statement (`hosting_statements`), so any payout can be
//! computed again from the ledger alone.
//!
//! Minting is the only way supply grows: `meta.minted` adds up every mint, and the ledger's supply is
//! `meta.genesis + meta.minted` after any sequence of operations.

use std::collections::BTreeMap;

use crate::db::{Connection, OptionalExtension, params};
use dualrig_proto::identity::PublicId;

use super::store::{self, from_db, id_from_db, to_db};
use super::{LedgerConfig, LedgerError, sip, stake};

/// Version 3: hosting rewards, held-back earnings and statements.
pub(super) const TABLES: &str = "
CREATE TABLE IF NOT EXISTS hosting_rounds (
    round          INTEGER PRIMARY KEY CHECK (round >= 0),
    rounds_covered INTEGER NOT NULL CHECK (rounds_covered >= 0),
    minted         INTEGER NOT NULL CHECK (minted >= 0),
    fees           INTEGER NOT NULL CHECK (fees >= 0),
    budget         INTEGER NOT NULL CHECK (budget >= 0),
    credited       INTEGER NOT NULL CHECK (credited >= 0),
    workers        INTEGER NOT NULL CHECK (workers >= 0),
    dust           INTEGER NOT NULL CHECK (dust >= 0)
) STRICT;
CREATE TABLE IF NOT EXISTS hosting_workers (
    worker      BLOB PRIMARY KEY CHECK (length(worker) = 32),
    first_round INTEGER NOT NULL CHECK (first_round >= 0)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS held_back (
    worker        BLOB NOT NULL CHECK (length(worker) = 32),
    release_round INTEGER NOT NULL CHECK (release_round >= 0),
    amount        INTEGER NOT NULL CHECK (amount > 0),
    PRIMARY KEY (worker, release_round)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS held_back_by_release ON held_back (release_round);
CREATE TABLE IF NOT EXISTS hosting_statements (
    worker       BLOB NOT NULL CHECK (length(worker) = 32),
    round        INTEGER NOT NULL CHECK (round >= 0),
    proven_bytes INTEGER NOT NULL DEFAULT 0 CHECK (proven_bytes >= 0),
    credited     INTEGER NOT NULL DEFAULT 0 CHECK (credited >= 0),
    reward       INTEGER NOT NULL DEFAULT 0 CHECK (reward >= 0),
    held         INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
    released     INTEGER NOT NULL DEFAULT 0 CHECK (released >= 0),
    forfeited    INTEGER NOT NULL DEFAULT 0 CHECK (forfeited >= 0),
    PRIMARY KEY (worker, round)
) STRICT, WITHOUT ROWID;
";

/// Version 11: credits recorded and not yet paid, one row per worker per challenge round (`round` is
/// the ledger round it was recorded in). Coordinators sharing the ledger each record theirs; the next
/// payout pays and deletes every row, so a credit recorded after its round's payout waits for the next.
pub(super) const CREDITS: &str = "
CREATE TABLE IF NOT EXISTS hosting_credits (
    id           INTEGER PRIMARY KEY,
    worker       BLOB NOT NULL CHECK (length(worker) = 32),
    round        INTEGER NOT NULL CHECK (round >= 0),
    proven_bytes INTEGER NOT NULL CHECK (proven_bytes >= 0),
    credited     INTEGER NOT NULL CHECK (credited > 0)
) STRICT;
";

/// Steps of the held-back schedule a worker passes through as it ages.
pub const HELD_BACK_STEPS: usize = 4;

/// How hosting rewards are minted and held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostingRules {
    /// Base units minted for each ledger round a payout covers.
    pub mint_per_round: u64,
    /// Parts per million of the supply minted for each ledger round a payout covers, on top.
    pub inflation_ppm: u32,
    /// Share of a worker's reward held back (ppm) in each step of its age, counted from its first
    /// hosting reward; 0 once past the last step.
    pub held_back_ppm: [u32; HELD_BACK_STEPS],
    /// Ledger rounds in one step of `held_back_ppm`.
    pub held_back_step_rounds: u64,
    /// Ledger rounds an amount is held before it is paid (to a worker not suspended then).
    pub held_back_rounds: u64,
}

impl HostingRules {
    /// No minting and nothing held: a ledger that pays hosting only from download fees.
    pub const NONE: Self = Self {
        mint_per_round: 0,
        inflation_ppm: 0,
        held_back_ppm: [0; HELD_BACK_STEPS],
        held_back_step_rounds: 1,
        held_back_rounds: 0,
    };

    /// One token per round; 75 %, 50 %, 25 % held in the first three steps of 129 600 rounds (90 days
    /// of 60 s rounds each), then nothing; each amount held for one step.
    pub const DEFAULT: Self = Self {
        mint_per_round: 1_000_000,
        inflation_ppm: 0,
        held_back_ppm: [750_000, 500_000, 250_000, 0],
        held_back_step_rounds: 129_600,
        held_back_rounds: 129_600,
    };

    /// The share (ppm) held back from a worker whose first reward came `age` rounds ago.
    pub fn held_ppm(&self, age: u64) -> u32 {
        let step = age / self.held_back_step_rounds.max(1);
        usize::try_from(step)
            .ok()
            .and_then(|s| self.held_back_ppm.get(s).copied())
            .unwrap_or(0)
    }

    /// What is minted for `rounds` ledger rounds on a ledger whose supply is `supply`.
    pub fn mint_for(&self, rounds: u64, supply: u64) -> u64 {
        let inflation = u128::from(supply) * u128::from(self.inflation_ppm) / 1_000_000;
        let per_round = u128::from(self.mint_per_round) + inflation;
        u64::try_from(per_round * u128::from(rounds)).unwrap_or(u64::MAX)
    }
}

/// Bytes one worker proved in one challenge round, and what they count for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofCredit {
    pub worker: PublicId,
    /// Bytes of the blobs it passed (what it proved, sampled).
    pub proven_bytes: u64,
    /// What the payout weighs: each passed blob's bytes over its sampling probability, times its boost.
    pub credited: u64,
}

/// A payout's inputs and outcome, as `hosting_rounds` keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostingRound {
    pub round: u64,
    pub rounds_covered: u64,
    pub minted: u64,
    pub fees: u64,
    pub budget: u64,
    pub credited: u64,
    pub workers: u64,
    /// What the integer split left over; it goes to the pool.
    pub dust: u64,
}

/// What one payout did: its row, and each worker's share.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Payout {
    pub round: HostingRound,
    pub shares: Vec<WorkerShare>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerShare {
    pub worker: PublicId,
    pub credited: u64,
    pub reward: u64,
    pub held: u64,
}

/// One worker's hosting figures for one ledger round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Statement {
    pub round: u64,
    pub proven_bytes: u64,
    pub credited: u64,
    /// Its share of the round's budget: `held` of it was held back, the rest paid at once.
    pub reward: u64,
    pub held: u64,
    /// Held-back amounts paid out this round.
    pub released: u64,
    /// Held-back amounts lost to the pool this round on a storage fault.
    pub forfeited: u64,
    /// Bytes it served to downloads this round, and the expected value of the tickets forwarded for
    /// them (what it was paid, before redemption's fee share).
    pub served_bytes: u64,
    pub served_paid: u64,
}

impl Statement {
    /// What reached the worker's balance this round.
    pub fn paid(&self) -> u64 {
        self.reward - self.held + self.released
    }
}

/// Each worker's share of `budget`, in proportion to its credit (rounded down), and the dust left.
pub fn split(budget: u64, credits: &[(PublicId, u64)]) -> (Vec<(PublicId, u64)>, u64) {
    let total: u128 = credits.iter().map(|(_, c)| u128::from(*c)).sum();
    if total == 0 {
        return (Vec::new(), budget);
    }
    let shares: Vec<(PublicId, u64)> = credits
        .iter()
        .map(|(w, c)| {
            let share = u128::from(budget) * u128::from(*c) / total;
            (*w, u64::try_from(share).unwrap_or(u64::MAX))
        })
        .collect();
    let paid: u64 = shares.iter().map(|(_, s)| s).sum();
    (shares, budget - paid)
}

pub(super) fn genesis_supply(conn: &Connection) -> Result<u64, LedgerError> {
    store::meta(conn, "genesis")
}

pub(super) fn minted(conn: &Connection) -> Result<u64, LedgerError> {
    store::meta(conn, "minted")
}

/// The pot of download fees waiting for the next payout.
pub(super) fn fees(conn: &Connection) -> Result<u64, LedgerError> {
    store::meta(conn, "hosting_fees")
}

fn add_to_statement(
    conn: &Connection,
    worker: &PublicId,
    round: u64,
    column: &'static str,
    amount: u64,
) -> Result<(), LedgerError> {
    // `column` is one of this module's literals, never input.
    conn.prepare_cached(&format!(
        "INSERT INTO hosting_statements (worker, round, {column}) VALUES (?1, ?2, ?3)
         ON CONFLICT (worker, round) DO UPDATE SET {column} = hosting_statements.{column} + excluded.{column}"
    ))?
    .execute(params![
        worker.as_bytes(),
        to_db("round", round)?,
        to_db(column, amount)?
    ])?;
    Ok(())
}

/// Records one challenge round's credits in the current ledger round (one row per worker credited),
/// then pays every credit recorded and not yet paid, if the round has had no payout yet. A ledger round
/// pays once, so every payout can be split again exactly from its row: credits recorded after it (a
/// second challenge round ending in the round, or another coordinator's) wait for the next round's.
/// Only credits of workers with at least `min_stake` bonded at the payout count, and the others are
/// dropped with it; when none counts, nothing is minted and the fees stay in their pot.
pub(super) fn pay(
    conn: &Connection,
    config: &LedgerConfig,
    credits: &[ProofCredit],
) -> Result<Payout, LedgerError> {
    let rules = &config.hosting;
    let round = store::round(conn)?;
    record(conn, round, credits)?;
    let nothing = |rounds_covered| Payout {
        round: HostingRound {
            round,
            rounds_covered,
            ..HostingRound::default()
        },
        shares: Vec::new(),
    };
    if hosting_round(conn, round)?.is_some() {
        return Ok(nothing(0));
    }
    // Rounds not yet covered by a payout: from `hosting_from` (the first unpaid one) through this one.
    // A payout always covers its own round, even after an attempt in it that found nothing to pay.
    let from = match store::meta_opt(conn, "hosting_from")? {
        Some(from) => from.min(round),
        None => round,
    };
    let covered = round + 1 - from;
    store::set_meta(conn, "hosting_from", round + 1)?;

    let mut counted: BTreeMap<PublicId, (u64, u64)> = BTreeMap::new();
    for (worker, (proven, credited)) in take_unpaid(conn)? {
        if config.min_stake > 0 && stake::total_stake(conn, &worker)? < config.min_stake {
            continue;
        }
        counted.insert(worker, (proven, credited));
    }
    if counted.is_empty() {
        return Ok(nothing(covered));
    }

    let supply = genesis_supply(conn)?
        .checked_add(minted(conn)?)
        .ok_or(LedgerError::Overflow { what: "supply" })?;
    // The database holds i64: minting stops short of it.
    let room = (i64::MAX as u64).saturating_sub(supply);
    let mint = rules.mint_for(covered, supply).min(room);
    // The SIP's share comes off the mint before the split; the row's `budget` is what was split.
    let to_sip = sip::take_mint_share(conn, &config.sip, mint)?;
    let fees = fees(conn)?;
    let budget = (mint - to_sip)
        .checked_add(fees)
        .ok_or(LedgerError::Overflow {
            what: "hosting budget",
        })?;
    let weights: Vec<(PublicId, u64)> = counted.iter().map(|(w, (_, c))| (*w, *c)).collect();
    let (shares, dust) = split(budget, &weights);
    let credited_total = weights
        .iter()
        .fold(0u64, |sum, (_, c)| sum.saturating_add(*c));

    let mut paid_shares = Vec::with_capacity(shares.len());
    for (worker, share) in &shares {
        conn.prepare_cached(
            "INSERT INTO hosting_workers (worker, first_round) VALUES (?1, ?2)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![worker.as_bytes(), to_db("round", round)?])?;
        let first: i64 = conn
            .prepare_cached("SELECT first_round FROM hosting_workers WHERE worker = ?1")?
            .query_row(params![worker.as_bytes()], |r| r.get(0))?;
        let age = round.saturating_sub(from_db("first round", first)?);
        let held = held_amount(*share, rules.held_ppm(age));
        let (proven, credited) = counted[worker];
        // One row per worker per round; a release or forfeit may have opened it already.
        conn.prepare_cached(
            "INSERT INTO hosting_statements (worker, round, proven_bytes, credited, reward, held)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (worker, round) DO UPDATE SET
                 proven_bytes = hosting_statements.proven_bytes + excluded.proven_bytes,
                 credited = hosting_statements.credited + excluded.credited,
                 reward = hosting_statements.reward + excluded.reward,
                 held = hosting_statements.held + excluded.held",
        )?
        .execute(params![
            worker.as_bytes(),
            to_db("round", round)?,
            to_db("proven bytes", proven)?,
            to_db("credited", credited)?,
            to_db("reward", *share)?,
            to_db("held", held)?,
        ])?;
        if held > 0 {
            let release =
                round
                    .checked_add(rules.held_back_rounds)
                    .ok_or(LedgerError::Overflow {
                        what: "release round",
                    })?;
            conn.prepare_cached(
                "INSERT INTO held_back (worker, release_round, amount) VALUES (?1, ?2, ?3)
                 ON CONFLICT (worker, release_round) DO UPDATE SET amount = held_back.amount + excluded.amount",
            )?
            .execute(params![
                worker.as_bytes(),
                to_db("release round", release)?,
                to_db("held back", held)?
            ])?;
        }
        if share - held > 0 {
            store::credit(conn, worker, share - held)?;
            super::capacity::divert(conn, worker, share - held, super::capacity::Source::Hosting)?;
        }
        paid_shares.push(WorkerShare {
            worker: *worker,
            credited,
            reward: *share,
            held,
        });
    }
    sip::credit(conn, sip::Source::Dust, dust)?;
    store::set_meta(conn, "hosting_fees", 0)?;
    store::set_meta(conn, "minted", minted(conn)? + mint)?;

    let paid = HostingRound {
        round,
        rounds_covered: covered,
        minted: mint,
        fees,
        budget,
        credited: credited_total,
        workers: shares.len() as u64,
        dust,
    };
    conn.prepare_cached(
        "INSERT INTO hosting_rounds
             (round, rounds_covered, minted, fees, budget, credited, workers, dust)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        to_db("round", paid.round)?,
        to_db("rounds", paid.rounds_covered)?,
        to_db("minted", paid.minted)?,
        to_db("fees", paid.fees)?,
        to_db("budget", paid.budget)?,
        to_db("credited", paid.credited)?,
        to_db("workers", paid.workers)?,
        to_db("dust", paid.dust)?,
    ])?;
    Ok(Payout {
        round: paid,
        shares: paid_shares,
    })
}

/// Records `credits` as earned in `round`: one row per worker, its credits in the call summed.
fn record(conn: &Connection, round: u64, credits: &[ProofCredit]) -> Result<(), LedgerError> {
    let mut by_worker: BTreeMap<PublicId, (u64, u64)> = BTreeMap::new();
    for credit in credits.iter().filter(|c| c.credited > 0) {
        let entry = by_worker.entry(credit.worker).or_default();
        entry.0 = entry.0.saturating_add(credit.proven_bytes);
        entry.1 = entry.1.saturating_add(credit.credited);
    }
    for (worker, (proven, credited)) in by_worker {
        conn.prepare_cached(
            "INSERT INTO hosting_credits (worker, round, proven_bytes, credited)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            worker.as_bytes(),
            to_db("round", round)?,
            to_db("proven bytes", proven)?,
            to_db("credited", credited)?,
        ])?;
    }
    Ok(())
}

/// Every credit recorded and not yet paid, per worker: the most bytes it proved in one challenge round
/// (what the capacity bonus compares with its maximum) and its credits summed. Deletes the rows read.
fn take_unpaid(conn: &Connection) -> Result<BTreeMap<PublicId, (u64, u64)>, LedgerError> {
    let rows: Vec<(i64, Vec<u8>, i64, i64)> = conn
        .prepare_cached(
            "SELECT id, worker, proven_bytes, credited FROM hosting_credits ORDER BY id",
        )?
        .query_map(params![], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut unpaid: BTreeMap<PublicId, (u64, u64)> = BTreeMap::new();
    let mut last = None;
    for (id, worker, proven, credited) in rows {
        let entry = unpaid.entry(id_from_db(worker)?).or_default();
        entry.0 = entry.0.max(from_db("proven bytes", proven)?);
        entry.1 = entry.1.saturating_add(from_db("credited", credited)?);
        last = Some(id);
    }
    if let Some(last) = last {
        // Every row up to the last one read. On PostgreSQL a row another coordinator is inserting is
        // invisible to this transaction, so it is neither read nor deleted: it waits for the next payout
        // (or this transaction loses the serialization race and runs again).
        conn.prepare_cached("DELETE FROM hosting_credits WHERE id <= ?1")?
            .execute(params![last])?;
    }
    Ok(unpaid)
}

/// `ppm` of `share`, rounded down.
pub fn held_amount(share: u64, ppm: u32) -> u64 {
    (u128::from(share) * u128::from(ppm.min(1_000_000)) / 1_000_000) as u64
}

/// Pays out, in round `round`, every held amount due by then to a worker that is not suspended.
pub(super) fn release_due(conn: &Connection, round: u64) -> Result<u64, LedgerError> {
    let due: Vec<(Vec<u8>, i64, i64)> = conn
        .prepare_cached(
            "SELECT worker, release_round, amount FROM held_back WHERE release_round <= ?1
             ORDER BY worker, release_round",
        )?
        .query_map(params![to_db("round", round)?], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut released = 0u64;
    for (worker, release_round, amount) in due {
        let worker = id_from_db(worker)?;
        if stake::suspended_until(conn, &worker)?.is_some_and(|resume| resume > round) {
            continue;
        }
        let amount = from_db("held back", amount)?;
        conn.prepare_cached("DELETE FROM held_back WHERE worker = ?1 AND release_round = ?2")?
            .execute(params![worker.as_bytes(), release_round])?;
        store::credit(conn, &worker, amount)?;
        add_to_statement(conn, &worker, round, "released", amount)?;
        released += amount;
    }
    Ok(released)
}

/// Moves everything held back from `worker` to the pool (a storage fault); returns the amount.
pub(super) fn forfeit(conn: &Connection, worker: &PublicId) -> Result<u64, LedgerError> {
    let held = held_back_of(conn, worker)?;
    if held == 0 {
        return Ok(0);
    }
    conn.prepare_cached("DELETE FROM held_back WHERE worker = ?1")?
        .execute(params![worker.as_bytes()])?;
    sip::credit(conn, sip::Source::Forfeits, held)?;
    add_to_statement(conn, worker, store::round(conn)?, "forfeited", held)?;
    Ok(held)
}

/// What is held back from `worker` now.
pub(super) fn held_back_of(conn: &Connection, worker: &PublicId) -> Result<u64, LedgerError> {
    let held: i64 = conn
        .prepare_cached(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM held_back WHERE worker = ?1",
        )?
        .query_row(params![worker.as_bytes()], |r| r.get(0))?;
    from_db("held back", held)
}

pub(super) fn hosting_round(
    conn: &Connection,
    round: u64,
) -> Result<Option<HostingRound>, LedgerError> {
    conn.prepare_cached(
        "SELECT round, rounds_covered, minted, fees, budget, credited, workers, dust
         FROM hosting_rounds WHERE round = ?1",
    )?
    .query_row(params![to_db("round", round)?], read_round)
    .optional()?
    .transpose()
}

fn read_round(r: &crate::db::Row) -> Result<Result<HostingRound, LedgerError>, crate::db::DbError> {
    let v: [i64; 8] = columns(r)?;
    Ok((|| {
        Ok(HostingRound {
            round: from_db("round", v[0])?,
            rounds_covered: from_db("rounds", v[1])?,
            minted: from_db("minted", v[2])?,
            fees: from_db("fees", v[3])?,
            budget: from_db("budget", v[4])?,
            credited: from_db("credited", v[5])?,
            workers: from_db("workers", v[6])?,
            dust: from_db("dust", v[7])?,
        })
    })())
}

/// The first `N` columns of a row of integers.
fn columns<const N: usize>(r: &crate::db::Row) -> Result<[i64; N], crate::db::DbError> {
    let mut values = [0; N];
    for (i, value) in values.iter_mut().enumerate() {
        *value = r.get(i)?;
    }
    Ok(values)
}

/// `worker`'s statements for rounds after `after_round`, oldest first, at most `limit`: every round it
/// had a hosting payout, release or forfeit in, or served downloads in.
pub(super) fn statements(
    conn: &Connection,
    worker: &PublicId,
    after_round: Option<u64>,
    limit: usize,
) -> Result<Vec<Statement>, LedgerError> {
    let after = match after_round {
        Some(r) => to_db("round", r)?,
        None => -1,
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows: Vec<[i64; 9]> = conn
        .prepare_cached(
            "SELECT round, CAST(SUM(proven_bytes) AS BIGINT), CAST(SUM(credited) AS BIGINT), CAST(SUM(reward) AS BIGINT), CAST(SUM(held) AS BIGINT), CAST(SUM(released) AS BIGINT),
                    CAST(SUM(forfeited) AS BIGINT), CAST(SUM(served_bytes) AS BIGINT), CAST(SUM(served_paid) AS BIGINT)
             FROM (
                 SELECT round, proven_bytes, credited, reward, held, released, forfeited,
                        0 AS served_bytes, 0 AS served_paid
                 FROM hosting_statements WHERE worker = ?1 AND round > ?2
                 UNION ALL
                 SELECT round, 0, 0, 0, 0, 0, 0, bytes, paid
                 FROM served WHERE worker = ?1 AND round > ?2
             ) AS rows
             GROUP BY round ORDER BY round LIMIT ?3",
        )?
        .query_map(params![worker.as_bytes(), after, limit], columns::<9>)?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|v| {
            Ok(Statement {
                round: from_db("round", v[0])?,
                proven_bytes: from_db("proven bytes", v[1])?,
                credited: from_db("credited", v[2])?,
                reward: from_db("reward", v[3])?,
                held: from_db("held", v[4])?,
                released: from_db("released", v[5])?,
                forfeited: from_db("forfeited", v[6])?,
                served_bytes: from_db("served bytes", v[7])?,
                served_paid: from_db("served paid", v[8])?,
            })
        })
        .collect()
}

/// Every worker's credit in the payout of `round`, from the statements: with the round's budget, the
/// split can be done again and compared.
pub(super) fn credits_of_round(
    conn: &Connection,
    round: u64,
) -> Result<Vec<(PublicId, u64, u64)>, LedgerError> {
    let rows: Vec<(Vec<u8>, i64, i64)> = conn
        .prepare_cached(
            "SELECT worker, credited, reward FROM hosting_statements
             WHERE round = ?1 AND credited > 0 ORDER BY worker",
        )?
        .query_map(params![to_db("round", round)?], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(w, c, s)| {
            Ok((
                id_from_db(w)?,
                from_db("credited", c)?,
                from_db("reward", s)?,
            ))
        })
        .collect()
}
