//! Stake (PROTOCOL §4): self-bonds and delegations per worker, unbonding after a wait, slashing to the
//! pool with suspension, and the stake figures assignment draws on.

use dualrig_proto::identity::PublicId;
use rusqlite::{Connection, OptionalExtension, params};

use super::store::{self, check_id, from_db, id_from_db, nonzero, to_db};
use super::{LedgerConfig, LedgerError};

/// A share of stake in parts per million (1,000,000 is all of it); integer, so every side computes the
/// same cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SlashFraction(u32);

impl SlashFraction {
    pub const WHOLE: Self = Self(1_000_000);
    /// What a fault costs unless configured otherwise: 10 %.
    pub const DEFAULT: Self = Self(100_000);

    pub fn from_ppm(ppm: u32) -> Result<Self, LedgerError> {
        if ppm > Self::WHOLE.0 {
            return Err(LedgerError::BadFraction { ppm });
        }
        Ok(Self(ppm))
    }

    pub fn ppm(self) -> u32 {
        self.0
    }

    /// `amount × ppm / 10^6`, rounded down.
    pub fn of(self, amount: u64) -> u64 {
        let cut = u128::from(amount) * u128::from(self.0) / u128::from(Self::WHOLE.0);
        // ppm ≤ 10^6, so the cut is at most `amount`.
        u64::try_from(cut).unwrap_or(amount)
    }
}

/// Stake on its way out of a bond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnbondingEntry {
    pub worker: PublicId,
    pub amount: u64,
    /// First round at which it may be withdrawn.
    pub release_round: u64,
}

/// One slash as the ledger recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlashRecord {
    pub worker: PublicId,
    pub round: u64,
    pub fraction: SlashFraction,
    /// Units moved to the pool.
    pub amount: u64,
    pub evidence: Vec<u8>,
}

pub(super) fn bonded(
    conn: &Connection,
    worker: &PublicId,
    delegator: &PublicId,
) -> Result<u64, LedgerError> {
    let v: Option<i64> = conn
        .prepare_cached("SELECT amount FROM bonds WHERE worker = ?1 AND delegator = ?2")?
        .query_row(params![worker.as_bytes(), delegator.as_bytes()], |r| {
            r.get(0)
        })
        .optional()?;
    from_db("bond", v.unwrap_or(0))
}

fn set_bond(
    conn: &Connection,
    worker: &PublicId,
    delegator: &PublicId,
    amount: u64,
) -> Result<(), LedgerError> {
    if amount == 0 {
        conn.prepare_cached("DELETE FROM bonds WHERE worker = ?1 AND delegator = ?2")?
            .execute(params![worker.as_bytes(), delegator.as_bytes()])?;
    } else {
        conn.prepare_cached(
            "INSERT INTO bonds (worker, delegator, amount) VALUES (?1, ?2, ?3)
             ON CONFLICT (worker, delegator) DO UPDATE SET amount = excluded.amount",
        )?
        .execute(params![
            worker.as_bytes(),
            delegator.as_bytes(),
            to_db("bond", amount)?
        ])?;
    }
    Ok(())
}

/// Moves `amount` of `delegator`'s balance into stake on `worker` (a self-bond when they are equal).
pub(super) fn bond(
    conn: &Connection,
    worker: &PublicId,
    delegator: &PublicId,
    amount: u64,
) -> Result<(), LedgerError> {
    nonzero(amount)?;
    check_id("worker", worker)?;
    store::debit(conn, delegator, amount)?;
    let now = bonded(conn, worker, delegator)?
        .checked_add(amount)
        .ok_or(LedgerError::Overflow { what: "bond" })?;
    set_bond(conn, worker, delegator, now)
}

/// Moves `amount` of `delegator`'s stake on `worker` into an unbonding entry, still slashable, released
/// `unbonding_rounds` from now.
pub(super) fn unbond(
    conn: &Connection,
    config: &LedgerConfig,
    worker: &PublicId,
    delegator: &PublicId,
    amount: u64,
) -> Result<(), LedgerError> {
    nonzero(amount)?;
    let have = bonded(conn, worker, delegator)?;
    let left = have
        .checked_sub(amount)
        .ok_or(LedgerError::InsufficientBond {
            worker: *worker,
            delegator: *delegator,
            bonded: have,
            needed: amount,
        })?;
    set_bond(conn, worker, delegator, left)?;
    let release = store::round(conn)?
        .checked_add(config.unbonding_rounds)
        .ok_or(LedgerError::Overflow {
            what: "unbonding release round",
        })?;
    conn.prepare_cached(
        "INSERT INTO unbonding (delegator, worker, amount, release_round) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        delegator.as_bytes(),
        worker.as_bytes(),
        to_db("unbonding", amount)?,
        to_db("unbonding release round", release)?
    ])?;
    Ok(())
}

pub(super) fn unbonding(
    conn: &Connection,
    delegator: &PublicId,
) -> Result<Vec<UnbondingEntry>, LedgerError> {
    let mut stmt = conn.prepare_cached(
        "SELECT worker, amount, release_round FROM unbonding WHERE delegator = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![delegator.as_bytes()], |r| {
        Ok((
            r.get::<_, Vec<u8>>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    rows.map(|row| {
        let (worker, amount, release) = row?;
        Ok(UnbondingEntry {
            worker: id_from_db(worker)?,
            amount: from_db("unbonding", amount)?,
            release_round: from_db("release round", release)?,
        })
    })
    .collect()
}

/// Pays out every released unbonding entry of `delegator`; refuses when none is released yet.
pub(super) fn withdraw_unbonded(
    conn: &Connection,
    delegator: &PublicId,
) -> Result<u64, LedgerError> {
    let round = store::round(conn)?;
    let mut total: u64 = 0;
    let mut next_release: Option<u64> = None;
    for e in unbonding(conn, delegator)? {
        if e.release_round <= round {
            total = total
                .checked_add(e.amount)
                .ok_or(LedgerError::Overflow { what: "withdrawal" })?;
        } else {
            next_release = Some(next_release.map_or(e.release_round, |n| n.min(e.release_round)));
        }
    }
    if total == 0 {
        return Err(LedgerError::NothingUnbonded {
            account: *delegator,
            next_release,
        });
    }
    conn.prepare_cached("DELETE FROM unbonding WHERE delegator = ?1 AND release_round <= ?2")?
        .execute(params![delegator.as_bytes(), to_db("round", round)?])?;
    store::credit(conn, delegator, total)?;
    Ok(total)
}

pub(super) fn total_stake(conn: &Connection, worker: &PublicId) -> Result<u64, LedgerError> {
    let v: i64 = conn
        .prepare_cached("SELECT COALESCE(SUM(amount), 0) FROM bonds WHERE worker = ?1")?
        .query_row(params![worker.as_bytes()], |r| r.get(0))?;
    from_db("stake", v)
}

/// First round at which a suspended worker is eligible again; `None` when it is not suspended now.
pub(super) fn suspended_until(
    conn: &Connection,
    worker: &PublicId,
) -> Result<Option<u64>, LedgerError> {
    let v: Option<i64> = conn
        .prepare_cached("SELECT resume_round FROM suspensions WHERE worker = ?1")?
        .query_row(params![worker.as_bytes()], |r| r.get(0))
        .optional()?;
    let round = store::round(conn)?;
    match v {
        Some(resume) => {
            let resume = from_db("resume round", resume)?;
            Ok((resume > round).then_some(resume))
        }
        None => Ok(None),
    }
}

pub(super) fn eligible_stake(
    conn: &Connection,
    config: &LedgerConfig,
    worker: &PublicId,
) -> Result<Option<u64>, LedgerError> {
    if suspended_until(conn, worker)?.is_some() {
        return Ok(None);
    }
    let stake = total_stake(conn, worker)?;
    Ok((stake > 0 && stake >= config.min_stake).then_some(stake))
}

pub(super) fn eligible(
    conn: &Connection,
    config: &LedgerConfig,
) -> Result<Vec<(PublicId, u64)>, LedgerError> {
    let round = to_db("round", store::round(conn)?)?;
    let mut stmt = conn.prepare_cached(
        "SELECT b.worker, SUM(b.amount) FROM bonds b
         LEFT JOIN suspensions s ON s.worker = b.worker
         WHERE s.resume_round IS NULL OR s.resume_round <= ?1
         GROUP BY b.worker ORDER BY b.worker",
    )?;
    let rows = stmt.query_map(params![round], |r| {
        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (worker, stake) = row?;
        let stake = from_db("stake", stake)?;
        if stake >= config.min_stake {
            out.push((id_from_db(worker)?, stake));
        }
    }
    Ok(out)
}

/// Cuts `fraction` from every bond and unbonding entry on `worker` into the pool, suspends the
/// worker, and records the slash with its evidence.
pub(super) fn slash(
    conn: &Connection,
    config: &LedgerConfig,
    worker: &PublicId,
    fraction: SlashFraction,
    evidence: &[u8],
) -> Result<SlashRecord, LedgerError> {
    let round = store::round(conn)?;
    let mut cut_total: u64 = 0;
    let mut add = |cut: u64| -> Result<(), LedgerError> {
        cut_total = cut_total
            .checked_add(cut)
            .ok_or(LedgerError::Overflow { what: "slash" })?;
        Ok(())
    };

    let bonds: Vec<(Vec<u8>, i64)> = conn
        .prepare_cached("SELECT delegator, amount FROM bonds WHERE worker = ?1")?
        .query_map(params![worker.as_bytes()], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (delegator, amount) in bonds {
        let delegator = id_from_db(delegator)?;
        let amount = from_db("bond", amount)?;
        let cut = fraction.of(amount);
        add(cut)?;
        set_bond(conn, worker, &delegator, amount - cut)?;
    }

    let entries: Vec<(i64, i64)> = conn
        .prepare_cached("SELECT id, amount FROM unbonding WHERE worker = ?1")?
        .query_map(params![worker.as_bytes()], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (id, amount) in entries {
        let amount = from_db("unbonding", amount)?;
        let cut = fraction.of(amount);
        add(cut)?;
        if cut == amount {
            conn.prepare_cached("DELETE FROM unbonding WHERE id = ?1")?
                .execute(params![id])?;
        } else {
            conn.prepare_cached("UPDATE unbonding SET amount = ?2 WHERE id = ?1")?
                .execute(params![id, to_db("unbonding", amount - cut)?])?;
        }
    }

    let pool = store::pool(conn)?
        .checked_add(cut_total)
        .ok_or(LedgerError::Overflow { what: "pool" })?;
    store::set_pool(conn, pool)?;

    if config.suspend_rounds > 0 {
        let resume = round
            .checked_add(config.suspend_rounds)
            .ok_or(LedgerError::Overflow {
                what: "suspension end",
            })?;
        conn.prepare_cached(
            "INSERT INTO suspensions (worker, resume_round) VALUES (?1, ?2)
             ON CONFLICT (worker) DO UPDATE SET resume_round = MAX(resume_round, excluded.resume_round)",
        )?
        .execute(params![worker.as_bytes(), to_db("suspension end", resume)?])?;
    }

    conn.prepare_cached(
        "INSERT INTO slashes (worker, round, fraction_ppm, amount, evidence) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        worker.as_bytes(),
        to_db("round", round)?,
        fraction.ppm(),
        to_db("slash", cut_total)?,
        evidence
    ])?;
    Ok(SlashRecord {
        worker: *worker,
        round,
        fraction,
        amount: cut_total,
        evidence: evidence.to_vec(),
    })
}

pub(super) fn slashes(
    conn: &Connection,
    worker: &PublicId,
) -> Result<Vec<SlashRecord>, LedgerError> {
    let mut stmt = conn.prepare_cached(
        "SELECT worker, round, fraction_ppm, amount, evidence FROM slashes WHERE worker = ?1
         ORDER BY id",
    )?;
    let rows = stmt.query_map(params![worker.as_bytes()], slash_row)?;
    rows.map(|row| slash_record(row?)).collect()
}

/// Every slash of every worker, in the order they were recorded.
pub(super) fn all_slashes(conn: &Connection) -> Result<Vec<SlashRecord>, LedgerError> {
    let mut stmt = conn.prepare_cached(
        "SELECT worker, round, fraction_ppm, amount, evidence FROM slashes ORDER BY id",
    )?;
    let rows = stmt.query_map([], slash_row)?;
    rows.map(|row| slash_record(row?)).collect()
}

type SlashRow = (Vec<u8>, i64, i64, i64, Vec<u8>);

fn slash_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SlashRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn slash_record(
    (worker, round, ppm, amount, evidence): SlashRow,
) -> Result<SlashRecord, LedgerError> {
    let ppm =
        u32::try_from(ppm).map_err(|_| LedgerError::Corrupt(format!("slash fraction {ppm}")))?;
    Ok(SlashRecord {
        worker: id_from_db(worker)?,
        round: from_db("round", round)?,
        fraction: SlashFraction::from_ppm(ppm)?,
        amount: from_db("slash", amount)?,
        evidence,
    })
}
