//! The coordinators sharing this database: each registers its key and the address it can be reached
//! on, heartbeats, and is listed while it keeps heartbeating. The round clock's holder deletes rows
//! silent for long. A coordinator's key is its identity, so two live processes with one key are
//! refused: the second finds a row with its key, another run and a recent heartbeat.

use dualrig_proto::identity::PublicId;

use super::LedgerError;
use super::store::{from_db, id_from_db, to_db};
use super::{ROUND_CLOCK, lease};
use crate::db::{Connection, OptionalExtension, params};

/// Version 10: the coordinators registry.
pub(super) const TABLES: &str = "
CREATE TABLE IF NOT EXISTS coordinators (
    id             BLOB PRIMARY KEY CHECK (length(id) = 32),
    advertise_addr TEXT NOT NULL,
    run            INTEGER NOT NULL,
    started_unix   INTEGER NOT NULL CHECK (started_unix >= 0),
    last_seen_unix INTEGER NOT NULL CHECK (last_seen_unix >= 0)
) STRICT, WITHOUT ROWID;
";

/// One coordinator's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorEntry {
    pub id: PublicId,
    /// Where clients and workers reach it (`--advertise-addr`).
    pub advertise_addr: String,
    pub started_unix: u64,
    pub last_seen_unix: u64,
}

/// One process's claim on a key: the key, where it serves, and what tells it apart from another
/// process with the same key (`run`, drawn at start, and its start time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub id: PublicId,
    pub advertise_addr: String,
    pub run: i64,
    pub started_unix: u64,
}

/// What a row with this key holds now, if anything.
pub(super) fn seen(
    conn: &Connection<'_>,
    id: &PublicId,
) -> Result<Option<(i64, String, u64)>, LedgerError> {
    let row: Option<(i64, String, i64)> = conn
        .prepare_cached(
            "SELECT run, advertise_addr, last_seen_unix FROM coordinators WHERE id = ?1",
        )?
        .query_row(params![id.as_bytes()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    row.map(|(run, addr, last)| Ok((run, addr, from_db("last seen", last)?)))
        .transpose()
}

/// Records that `me` is alive at `now_unix`, refusing when another run with its key heartbeat within
/// `silent_after` seconds. When `me` holds the round clock, rows silent for more than `forget_after`
/// seconds are deleted in the same transaction.
pub(super) fn heartbeat(
    conn: &Connection<'_>,
    me: &Registration,
    now_unix: u64,
    silent_after: u64,
    forget_after: u64,
) -> Result<(), LedgerError> {
    if let Some((run, addr, last_seen)) = seen(conn, &me.id)?
        && run != me.run
        && last_seen.saturating_add(silent_after) >= now_unix
    {
        return Err(LedgerError::CoordinatorKeyInUse {
            id: me.id,
            advertise_addr: addr,
            last_seen_unix: last_seen,
        });
    }
    conn.prepare_cached(
        "INSERT INTO coordinators (id, advertise_addr, run, started_unix, last_seen_unix)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET advertise_addr = excluded.advertise_addr,
                                        run = excluded.run,
                                        started_unix = excluded.started_unix,
                                        last_seen_unix = excluded.last_seen_unix",
    )?
    .execute(params![
        me.id.as_bytes(),
        me.advertise_addr.as_str(),
        me.run,
        to_db("start time", me.started_unix)?,
        to_db("heartbeat time", now_unix)?
    ])?;
    if lease::holder(conn, ROUND_CLOCK)?.is_some_and(|(holder, _)| holder == me.id) {
        conn.prepare_cached("DELETE FROM coordinators WHERE last_seen_unix < ?1")?
            .execute(params![to_db(
                "heartbeat time",
                now_unix.saturating_sub(forget_after)
            )?])?;
    }
    Ok(())
}

/// Deletes `me`'s row, if it is still this run's (a coordinator shutting down).
pub(super) fn leave(conn: &Connection<'_>, me: &Registration) -> Result<(), LedgerError> {
    conn.prepare_cached("DELETE FROM coordinators WHERE id = ?1 AND run = ?2")?
        .execute(params![me.id.as_bytes(), me.run])?;
    Ok(())
}

/// The coordinators that heartbeat within `silent_after` seconds of `now_unix`, by id.
pub(super) fn live(
    conn: &Connection<'_>,
    now_unix: u64,
    silent_after: u64,
) -> Result<Vec<CoordinatorEntry>, LedgerError> {
    let since = to_db("heartbeat time", now_unix.saturating_sub(silent_after))?;
    let rows: Vec<(Vec<u8>, String, i64, i64)> = conn
        .prepare_cached(
            "SELECT id, advertise_addr, started_unix, last_seen_unix FROM coordinators
             WHERE last_seen_unix >= ?1 ORDER BY id",
        )?
        .query_map(params![since], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(id, advertise_addr, started, last)| {
            Ok(CoordinatorEntry {
                id: id_from_db(id)?,
                advertise_addr,
                started_unix: from_db("start time", started)?,
                last_seen_unix: from_db("last seen", last)?,
            })
        })
        .collect()
}
