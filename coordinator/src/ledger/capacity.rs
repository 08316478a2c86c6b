//! The opt-in capacity redirect (PROTOCOL §6.13): a worker sends a share of its own hosting rewards
//! and transcode ticket redemptions to the capacity fund (`meta.capacity_fund`), and each hosting
//! payout pays from the fund a bonus for capacity added: bytes a worker proved in the round beyond the
//! most it had ever proved before.
//!
//! The rate in force for a round is the one set before the round began (`redirect_rates.from_round`
//! is the round after the one it was set in), so a change, opting out included, takes effect next
//! round. Every amount redirected (`redirected`) and every bonus (`capacity_bonuses`) has its row.

use crate::db::{Connection, OptionalExtension, params};
use dualrig_proto::identity::PublicId;

use super::store::{self, from_db, id_from_db, to_db};
use super::{LedgerConfig, LedgerError, hosting};

/// Part of version 7 (see `governance::TABLES`).
pub(super) const TABLES: &str = "
CREATE TABLE IF NOT EXISTS redirect_rates (
    account    BLOB NOT NULL CHECK (length(account) = 32),
    from_round INTEGER NOT NULL CHECK (from_round >= 0),
    share_ppm  INTEGER NOT NULL CHECK (share_ppm BETWEEN 0 AND 1000000),
    PRIMARY KEY (account, from_round)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS redirected (
    round   INTEGER NOT NULL CHECK (round >= 0),
    account BLOB NOT NULL CHECK (length(account) = 32),
    source  TEXT NOT NULL CHECK (source IN ('hosting', 'tickets')),
    amount  INTEGER NOT NULL CHECK (amount > 0),
    PRIMARY KEY (round, account, source)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS capacity_max (
    worker    BLOB PRIMARY KEY CHECK (length(worker) = 32),
    max_bytes INTEGER NOT NULL CHECK (max_bytes >= 0)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS capacity_bonuses (
    round       INTEGER NOT NULL CHECK (round >= 0),
    worker      BLOB NOT NULL CHECK (length(worker) = 32),
    added_bytes INTEGER NOT NULL CHECK (added_bytes > 0),
    bonus       INTEGER NOT NULL CHECK (bonus >= 0),
    PRIMARY KEY (round, worker)
) STRICT, WITHOUT ROWID;
";

/// Which reward a redirected amount came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// The part of a hosting reward paid at once (not the part held back).
    Hosting,
    /// A transcode ticket's redemption (a download's ticket is hosting work paid by its fee share,
    /// and is not redirected).
    Tickets,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Self::Hosting => "hosting",
            Self::Tickets => "tickets",
        }
    }
}

/// A bonus paid for capacity added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityBonus {
    pub round: u64,
    pub worker: PublicId,
    /// Bytes proven beyond the worker's previous maximum.
    pub added_bytes: u64,
    pub bonus: u64,
}

/// A worker's redirect: the share in force now, and the one that takes over next round if it differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Redirect {
    pub share_ppm: u32,
    pub next_ppm: u32,
    /// Everything it has redirected so far.
    pub redirected: u64,
}

pub(super) fn fund(conn: &Connection) -> Result<u64, LedgerError> {
    store::meta(conn, "capacity_fund")
}

pub(super) fn set_fund(conn: &Connection, value: u64) -> Result<(), LedgerError> {
    store::set_meta(conn, "capacity_fund", value)
}

/// Sets `account`'s share from the next round on.
pub(super) fn set_redirect(
    conn: &Connection,
    account: &PublicId,
    share_ppm: u32,
) -> Result<(), LedgerError> {
    if share_ppm > 1_000_000 {
        return Err(LedgerError::RedirectShare { share_ppm });
    }
    let from = store::round(conn)?
        .checked_add(1)
        .ok_or(LedgerError::Overflow { what: "round" })?;
    conn.prepare_cached(
        "INSERT INTO redirect_rates (account, from_round, share_ppm) VALUES (?1, ?2, ?3)
         ON CONFLICT (account, from_round) DO UPDATE SET share_ppm = excluded.share_ppm",
    )?
    .execute(params![
        account.as_bytes(),
        to_db("round", from)?,
        share_ppm
    ])?;
    Ok(())
}

/// The share in force for `account` in `round`.
pub(super) fn share_at(
    conn: &Connection,
    account: &PublicId,
    round: u64,
) -> Result<u32, LedgerError> {
    let v: Option<i64> = conn
        .prepare_cached(
            "SELECT share_ppm FROM redirect_rates WHERE account = ?1 AND from_round <= ?2
             ORDER BY from_round DESC LIMIT 1",
        )?
        .query_row(params![account.as_bytes(), to_db("round", round)?], |r| {
            r.get(0)
        })
        .optional()?;
    match v {
        None => Ok(0),
        Some(v) => u32::try_from(v).map_err(|_| LedgerError::Corrupt(format!("redirect {v}"))),
    }
}

pub(super) fn redirect_of(conn: &Connection, account: &PublicId) -> Result<Redirect, LedgerError> {
    let round = store::round(conn)?;
    let redirected: i64 = conn
        .prepare_cached(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM redirected WHERE account = ?1",
        )?
        .query_row(params![account.as_bytes()], |r| r.get(0))?;
    Ok(Redirect {
        share_ppm: share_at(conn, account, round)?,
        next_ppm: share_at(conn, account, round.saturating_add(1))?,
        redirected: from_db("redirected", redirected)?,
    })
}

/// Moves `account`'s share in force of `amount`, just credited to its balance, to the fund; returns
/// what moved.
pub(super) fn divert(
    conn: &Connection,
    account: &PublicId,
    amount: u64,
    source: Source,
) -> Result<u64, LedgerError> {
    let round = store::round(conn)?;
    let ppm = share_at(conn, account, round)?;
    let cut = hosting::held_amount(amount, ppm);
    if cut == 0 {
        return Ok(0);
    }
    store::debit(conn, account, cut)?;
    let now = fund(conn)?.checked_add(cut).ok_or(LedgerError::Overflow {
        what: "capacity fund",
    })?;
    set_fund(conn, now)?;
    conn.prepare_cached(
        "INSERT INTO redirected (round, account, source, amount) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (round, account, source) DO UPDATE SET amount = redirected.amount + excluded.amount",
    )?
    .execute(params![
        to_db("round", round)?,
        account.as_bytes(),
        source.name(),
        to_db("redirected", cut)?
    ])?;
    Ok(cut)
}

/// Pays the capacity bonus of the hosting payout just made in the current round: each credited
/// worker's bytes proven beyond its previous maximum, at `capacity_bonus_per_byte`, all of it when
/// the fund covers every bonus, else the fund shared in proportion to what each would get. The
/// maximum rises whether or not a bonus is paid, so capacity dropped and proven again earns nothing.
pub(super) fn pay_bonus(conn: &Connection, config: &LedgerConfig) -> Result<(), LedgerError> {
    let round = store::round(conn)?;
    let proven: Vec<(Vec<u8>, i64, Option<i64>)> = conn
        .prepare_cached(
            "SELECT s.worker, s.proven_bytes, m.max_bytes FROM hosting_statements s
             LEFT JOIN capacity_max m ON m.worker = s.worker
             WHERE s.round = ?1 AND s.credited > 0 ORDER BY s.worker",
        )?
        .query_map(params![to_db("round", round)?], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut added: Vec<(PublicId, u64, u64)> = Vec::new();
    for (worker, bytes, max) in proven {
        let worker = id_from_db(worker)?;
        let bytes = from_db("proven bytes", bytes)?;
        let max = max
            .map(|m| from_db("max bytes", m))
            .transpose()?
            .unwrap_or(0);
        if bytes <= max {
            continue;
        }
        conn.prepare_cached(
            "INSERT INTO capacity_max (worker, max_bytes) VALUES (?1, ?2)
             ON CONFLICT (worker) DO UPDATE SET max_bytes = excluded.max_bytes",
        )?
        .execute(params![worker.as_bytes(), to_db("max bytes", bytes)?])?;
        let wanted = bytes
            .saturating_sub(max)
            .saturating_mul(config.capacity_bonus_per_byte);
        added.push((worker, bytes - max, wanted));
    }
    let available = fund(conn)?;
    let wanted: u128 = added.iter().map(|(_, _, w)| u128::from(*w)).sum();
    let bonuses: Vec<u64> = if wanted <= u128::from(available) {
        added.iter().map(|(_, _, w)| *w).collect()
    } else {
        let weights: Vec<(PublicId, u64)> = added.iter().map(|(w, _, b)| (*w, *b)).collect();
        hosting::split(available, &weights)
            .0
            .into_iter()
            .map(|(_, b)| b)
            .collect()
    };
    let mut paid = 0u64;
    for ((worker, bytes, _), bonus) in added.iter().zip(bonuses) {
        conn.prepare_cached(
            "INSERT INTO capacity_bonuses (round, worker, added_bytes, bonus) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            to_db("round", round)?,
            worker.as_bytes(),
            to_db("added bytes", *bytes)?,
            to_db("bonus", bonus)?
        ])?;
        if bonus > 0 {
            store::credit(conn, worker, bonus)?;
            paid += bonus;
        }
    }
    set_fund(conn, available - paid)
}

/// Bonuses paid to `worker`, oldest first.
pub(super) fn bonuses(
    conn: &Connection,
    worker: &PublicId,
) -> Result<Vec<CapacityBonus>, LedgerError> {
    let rows: Vec<(i64, i64, i64)> = conn
        .prepare_cached(
            "SELECT round, added_bytes, bonus FROM capacity_bonuses WHERE worker = ?1 ORDER BY round",
        )?
        .query_map(params![worker.as_bytes()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(round, added, bonus)| {
            Ok(CapacityBonus {
                round: from_db("round", round)?,
                worker: *worker,
                added_bytes: from_db("added bytes", added)?,
                bonus: from_db("bonus", bonus)?,
            })
        })
        .collect()
}
