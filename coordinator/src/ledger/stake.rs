//! Stake (PROTOCOL §4): self-bonds and delegations per worker, unbonding after a wait, slashing to the
//! pool with suspension, and the stake figures assignment draws on.

use crate::db::{Connection, OptionalExtension, params};
use dualrig_proto::identity::PublicId;

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
    /// Its place in the order slashes were recorded.
    pub id: u64,
    pub worker: PublicId,
    pub round: u64,
    pub fraction: SlashFraction,
    /// Units moved to the pool.
    pub amount: u64,
    /// With `stored`: the verdict (an encoded `SlashEvidence` without its `kind`). Without: the whole
    /// encoded evidence, inline.
    pub evidence: Vec<u8>,
    /// The whole evidence's name in the evidence store.
    pub stored: Option<StoredEvidence>,
    /// Seconds since the epoch when it was recorded (0 before version 2).
    pub at_unix: u64,
}

/// Where a slash's evidence went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredEvidence {
    /// BLAKE3 of the encoded evidence.
    pub hash: [u8; 32],
    pub size: u64,
    /// Still in the store; false once dropped for age or room, or when it was too large to keep.
    pub kept: bool,
}

/// What a slash records about its evidence.
#[derive(Debug, Clone, Copy)]
pub struct SlashNote<'a> {
    /// See [`SlashRecord::evidence`].
    pub evidence: &'a [u8],
    pub stored: Option<StoredEvidence>,
    pub at_unix: u64,
    /// A storage fault: the worker's held-back hosting rewards go to the pool too.
    pub forfeits_held_back: bool,
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
    super::governance::record_stake(conn, delegator)
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
        .prepare_cached(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM bonds WHERE worker = ?1",
        )?
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
        "SELECT b.worker, CAST(SUM(b.amount) AS BIGINT) FROM bonds b
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
    note: &SlashNote<'_>,
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

    super::sip::credit(conn, super::sip::Source::Slashes, cut_total)?;

    if config.suspend_rounds > 0 {
        let resume = round
            .checked_add(config.suspend_rounds)
            .ok_or(LedgerError::Overflow {
                what: "suspension end",
            })?;
        conn.prepare_cached(
            "INSERT INTO suspensions (worker, resume_round) VALUES (?1, ?2)
             ON CONFLICT (worker) DO UPDATE SET resume_round = CASE
                 WHEN excluded.resume_round > suspensions.resume_round THEN excluded.resume_round
                 ELSE suspensions.resume_round END",
        )?
        .execute(params![worker.as_bytes(), to_db("suspension end", resume)?])?;
    }

    if note.forfeits_held_back {
        super::hosting::forfeit(conn, worker)?;
    }

    let stored = note.stored;
    let id = conn
        .prepare_cached(
            "INSERT INTO slashes (worker, round, fraction_ppm, amount, evidence, evidence_hash,
                              evidence_size, evidence_kept, at_unix)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         RETURNING id",
        )?
        .query_row(
            params![
                worker.as_bytes(),
                to_db("round", round)?,
                fraction.ppm(),
                to_db("slash", cut_total)?,
                note.evidence,
                stored.as_ref().map(|s| s.hash.to_vec()),
                to_db("evidence size", stored.map_or(0, |s| s.size))?,
                stored.is_some_and(|s| s.kept),
                to_db("slash time", note.at_unix)?,
            ],
            |r| r.get::<_, i64>(0),
        )?;
    Ok(SlashRecord {
        id: u64::try_from(id).map_err(|_| LedgerError::Corrupt("negative slash id".into()))?,
        worker: *worker,
        round,
        fraction,
        amount: cut_total,
        evidence: note.evidence.to_vec(),
        stored,
        at_unix: note.at_unix,
    })
}

/// At most `limit` slashes after the one numbered `after_id` (of one worker, or of all), in the order
/// they were recorded.
pub(super) fn slashes_page(
    conn: &Connection,
    worker: Option<&PublicId>,
    after_id: u64,
    limit: usize,
) -> Result<Vec<SlashRecord>, LedgerError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, worker, round, fraction_ppm, amount, evidence, evidence_hash, evidence_size,
                evidence_kept, at_unix
         FROM slashes WHERE id > ?1 AND (?2 IS NULL OR worker = ?2) ORDER BY id LIMIT ?3",
    )?;
    let after = to_db("slash id", after_id)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(
        params![after, worker.map(|w| w.as_bytes().to_vec()), limit],
        |r| {
            Ok(SlashRow {
                id: r.get(0)?,
                worker: r.get(1)?,
                round: r.get(2)?,
                ppm: r.get(3)?,
                amount: r.get(4)?,
                evidence: r.get(5)?,
                hash: r.get(6)?,
                size: r.get(7)?,
                kept: r.get(8)?,
                at_unix: r.get(9)?,
            })
        },
    )?;
    rows.map(|row| slash_record(row?)).collect()
}

/// Drops evidence from the store's keeping: every item recorded before `keep_since_unix`, then, while
/// the kept items (each counted once) weigh more than `max_bytes`, the evidence of the slash that moved
/// the least, oldest first, so a flood of slashes of unstaked keys is the first to go. Returns the
/// items no kept slash names any more, for the store to delete.
pub(super) fn prune_evidence(
    conn: &Connection,
    max_bytes: u64,
    keep_since_unix: u64,
) -> Result<Vec<[u8; 32]>, LedgerError> {
    // Most slashes leave the store within its bounds: find that out without loading the rows.
    let (held, oldest): (i64, Option<i64>) = conn
        .prepare_cached(
            "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT), MIN(oldest) FROM (
                 SELECT MAX(evidence_size) AS size, MIN(at_unix) AS oldest FROM slashes
                 WHERE evidence_kept = 1 GROUP BY evidence_hash) AS kept",
        )?
        .query_row(params![], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if from_db("evidence size", held)? <= max_bytes
        && oldest.is_none_or(|at| at >= to_db("slash time", keep_since_unix).unwrap_or(i64::MAX))
    {
        return Ok(Vec::new());
    }
    let kept: Vec<(i64, Vec<u8>, i64, i64)> = conn
        .prepare_cached(
            "SELECT id, evidence_hash, evidence_size, at_unix FROM slashes
             WHERE evidence_kept = 1 ORDER BY amount, id",
        )?
        .query_map(params![], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut named: std::collections::HashMap<Vec<u8>, (u64, usize)> =
        std::collections::HashMap::new();
    for (_, hash, size, _) in &kept {
        let entry = named
            .entry(hash.clone())
            .or_insert((from_db("evidence size", *size)?, 0));
        entry.1 += 1;
    }
    let mut total: u64 = named.values().map(|(size, _)| size).sum();
    let keep_since = to_db("slash time", keep_since_unix)?;
    let mut dropped_ids = Vec::new();
    let mut unnamed = Vec::new();
    // Old ones first, whatever they weigh; then by the order above until the rest fit.
    let (old, recent): (Vec<_>, Vec<_>) =
        kept.into_iter().partition(|(_, _, _, at)| *at < keep_since);
    let over = |total: u64| total > max_bytes;
    for (is_old, (id, hash, _, _)) in old
        .into_iter()
        .map(|r| (true, r))
        .chain(recent.into_iter().map(|r| (false, r)))
    {
        if !is_old && !over(total) {
            break;
        }
        dropped_ids.push(id);
        if let Some(entry) = named.get_mut(&hash) {
            entry.1 -= 1;
            if entry.1 == 0 {
                total -= entry.0;
                unnamed.push(
                    <[u8; 32]>::try_from(hash.as_slice())
                        .map_err(|_| LedgerError::Corrupt("evidence hash length".into()))?,
                );
            }
        }
    }
    let mut update = conn.prepare_cached("UPDATE slashes SET evidence_kept = 0 WHERE id = ?1")?;
    for id in dropped_ids {
        update.execute(params![id])?;
    }
    Ok(unnamed)
}

/// Every item some slash still keeps in the evidence store.
pub(super) fn kept_evidence(
    conn: &Connection,
) -> Result<std::collections::HashSet<[u8; 32]>, LedgerError> {
    let hashes: Vec<Vec<u8>> = conn
        .prepare_cached("SELECT DISTINCT evidence_hash FROM slashes WHERE evidence_kept = 1")?
        .query_map(params![], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    hashes
        .into_iter()
        .map(|h| {
            <[u8; 32]>::try_from(h.as_slice())
                .map_err(|_| LedgerError::Corrupt("evidence hash length".into()))
        })
        .collect()
}

struct SlashRow {
    id: i64,
    worker: Vec<u8>,
    round: i64,
    ppm: i64,
    amount: i64,
    evidence: Vec<u8>,
    hash: Option<Vec<u8>>,
    size: i64,
    kept: bool,
    at_unix: i64,
}

fn slash_record(row: SlashRow) -> Result<SlashRecord, LedgerError> {
    let ppm = row.ppm;
    let ppm =
        u32::try_from(ppm).map_err(|_| LedgerError::Corrupt(format!("slash fraction {ppm}")))?;
    let stored = match row.hash {
        None => None,
        Some(hash) => Some(StoredEvidence {
            hash: <[u8; 32]>::try_from(hash.as_slice())
                .map_err(|_| LedgerError::Corrupt("evidence hash length".into()))?,
            size: from_db("evidence size", row.size)?,
            kept: row.kept,
        }),
    };
    Ok(SlashRecord {
        id: from_db("slash id", row.id)?,
        worker: id_from_db(row.worker)?,
        round: from_db("round", row.round)?,
        fraction: SlashFraction::from_ppm(ppm)?,
        amount: from_db("slash", row.amount)?,
        evidence: row.evidence,
        stored,
        at_unix: from_db("slash time", row.at_unix)?,
    })
}
