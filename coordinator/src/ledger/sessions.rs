//! The capacity fund's bonus for encoder sessions (PROTOCOL §6.13): the most transcode jobs of one
//! worker whose verified results overlapped in time, as the coordinator's dispatcher saw them, kept
//! per worker per round (`session_proofs`), and a bonus of `capacity_bonus_per_session` for each
//! session beyond the most the worker had ever proved before (`session_bonuses`).
//!
//! A count only ever comes from the coordinator's own record of verified jobs
//! ([`crate::sessions::SessionTracker`]); nothing a worker says about its sessions reaches this
//! module. A bonus is paid when a count rises past the maximum, from the fund and never more than it
//! holds; the maximum rises whether or not a bonus is paid, so sessions dropped and proven again earn
//! nothing.

use crate::db::{Connection, params};
use dualrig_proto::identity::PublicId;

use super::store::{self, from_db, to_db};
use super::{LedgerConfig, LedgerError, capacity};

/// Version 9's step: only adds tables.
pub(super) const TABLES: &str = "
CREATE TABLE IF NOT EXISTS session_proofs (
    round    INTEGER NOT NULL CHECK (round >= 0),
    worker   BLOB NOT NULL CHECK (length(worker) = 32),
    sessions INTEGER NOT NULL CHECK (sessions > 0),
    PRIMARY KEY (round, worker)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS session_proofs_by_worker ON session_proofs (worker, sessions);
CREATE TABLE IF NOT EXISTS session_bonuses (
    round          INTEGER NOT NULL CHECK (round >= 0),
    worker         BLOB NOT NULL CHECK (length(worker) = 32),
    added_sessions INTEGER NOT NULL CHECK (added_sessions > 0),
    bonus          INTEGER NOT NULL CHECK (bonus >= 0),
    PRIMARY KEY (round, worker)
) STRICT, WITHOUT ROWID;
";

/// What recording a worker's proven sessions did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionProof {
    pub round: u64,
    pub worker: PublicId,
    /// The most the worker has proved in `round`, this count included.
    pub sessions: u32,
    /// Sessions beyond the worker's previous maximum over every round (0 when none).
    pub added_sessions: u32,
    /// What the fund paid for them.
    pub bonus: u64,
}

/// A bonus paid for sessions added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionBonus {
    pub round: u64,
    pub worker: PublicId,
    pub added_sessions: u32,
    pub bonus: u64,
}

fn sessions_from_db(what: &'static str, v: i64) -> Result<u32, LedgerError> {
    u32::try_from(v).map_err(|_| LedgerError::Corrupt(format!("{what} {v}")))
}

/// The most sessions `worker` has proved in any round (0 before its first).
fn max_sessions(conn: &Connection, worker: &PublicId) -> Result<u32, LedgerError> {
    let v: i64 = conn
        .prepare_cached(
            "SELECT CAST(COALESCE(MAX(sessions), 0) AS BIGINT) FROM session_proofs WHERE worker = ?1",
        )?
        .query_row(params![worker.as_bytes()], |r| r.get(0))?;
    sessions_from_db("sessions", v)
}

/// Records that `worker` had `sessions` verified jobs overlapping in the current round, and pays
/// the bonus for those beyond its previous maximum: `capacity_bonus_per_session` each, or what the
/// fund holds when that is less.
pub(super) fn prove(
    conn: &Connection,
    config: &LedgerConfig,
    worker: &PublicId,
    sessions: u32,
) -> Result<SessionProof, LedgerError> {
    store::check_id("worker", worker)?;
    if sessions == 0 {
        return Err(LedgerError::ZeroAmount);
    }
    let round = store::round(conn)?;
    let before = max_sessions(conn, worker)?;
    conn.prepare_cached(
        "INSERT INTO session_proofs (round, worker, sessions) VALUES (?1, ?2, ?3)
         ON CONFLICT (round, worker) DO UPDATE SET sessions = CASE
             WHEN excluded.sessions > session_proofs.sessions THEN excluded.sessions
             ELSE session_proofs.sessions END",
    )?
    .execute(params![to_db("round", round)?, worker.as_bytes(), sessions])?;
    let in_round: i64 = conn
        .prepare_cached("SELECT sessions FROM session_proofs WHERE round = ?1 AND worker = ?2")?
        .query_row(params![to_db("round", round)?, worker.as_bytes()], |r| {
            r.get(0)
        })?;
    let mut proof = SessionProof {
        round,
        worker: *worker,
        sessions: sessions_from_db("sessions", in_round)?,
        added_sessions: 0,
        bonus: 0,
    };
    if sessions <= before {
        return Ok(proof);
    }
    let added = sessions - before;
    let available = capacity::fund(conn)?;
    let bonus = u64::from(added)
        .saturating_mul(config.capacity_bonus_per_session)
        .min(available);
    conn.prepare_cached(
        "INSERT INTO session_bonuses (round, worker, added_sessions, bonus) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (round, worker) DO UPDATE SET
             added_sessions = session_bonuses.added_sessions + excluded.added_sessions,
             bonus = session_bonuses.bonus + excluded.bonus",
    )?
    .execute(params![
        to_db("round", round)?,
        worker.as_bytes(),
        added,
        to_db("bonus", bonus)?
    ])?;
    if bonus > 0 {
        store::credit(conn, worker, bonus)?;
        capacity::set_fund(conn, available - bonus)?;
    }
    proof.added_sessions = added;
    proof.bonus = bonus;
    Ok(proof)
}

/// `worker`'s proven sessions, by round, oldest first.
pub(super) fn proofs(conn: &Connection, worker: &PublicId) -> Result<Vec<(u64, u32)>, LedgerError> {
    let rows: Vec<(i64, i64)> = conn
        .prepare_cached(
            "SELECT round, sessions FROM session_proofs WHERE worker = ?1 ORDER BY round",
        )?
        .query_map(params![worker.as_bytes()], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(round, sessions)| {
            Ok((
                from_db("round", round)?,
                sessions_from_db("sessions", sessions)?,
            ))
        })
        .collect()
}

/// Session bonuses paid to `worker`, oldest first.
pub(super) fn bonuses(
    conn: &Connection,
    worker: &PublicId,
) -> Result<Vec<SessionBonus>, LedgerError> {
    let rows: Vec<(i64, i64, i64)> = conn
        .prepare_cached(
            "SELECT round, added_sessions, bonus FROM session_bonuses WHERE worker = ?1 ORDER BY round",
        )?
        .query_map(params![worker.as_bytes()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(round, added, bonus)| {
            Ok(SessionBonus {
                round: from_db("round", round)?,
                worker: *worker,
                added_sessions: sessions_from_db("added sessions", added)?,
                bonus: from_db("bonus", bonus)?,
            })
        })
        .collect()
}
