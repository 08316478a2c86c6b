//! Leases on duties the network runs once, whichever coordinator runs them: the round clock. One
//! coordinator holds a duty's lease and renews it each time it acts; when it goes silent past the
//! lease, the next coordinator to ask takes it over. On PostgreSQL the check and the renewal are one
//! serializable transaction with the duty itself, so two coordinators never both act for one lease.

use dualrig_proto::identity::PublicId;

use super::LedgerError;
use super::store::{from_db, to_db};
use crate::db::{Connection, OptionalExtension, params};

/// Version 8: leases.
pub(super) const TABLES: &str = "
CREATE TABLE IF NOT EXISTS leases (
    duty         TEXT PRIMARY KEY,
    holder       BLOB NOT NULL CHECK (length(holder) = 32),
    expires_unix INTEGER NOT NULL CHECK (expires_unix >= 0)
) STRICT, WITHOUT ROWID;
";

/// The duty that advances the ledger's round.
pub const ROUND_CLOCK: &str = "round clock";

/// Takes or renews `duty` for `holder` until `now_unix + lease_secs`, unless another holder's lease
/// still runs at `now_unix`. Whether `holder` holds it now.
pub(super) fn hold(
    conn: &Connection<'_>,
    duty: &str,
    holder: &PublicId,
    now_unix: u64,
    lease_secs: u64,
) -> Result<bool, LedgerError> {
    let current: Option<(Vec<u8>, i64)> = conn
        .prepare_cached("SELECT holder, expires_unix FROM leases WHERE duty = ?1")?
        .query_row(params![duty], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((other, expires)) = current
        && other != holder.as_bytes()
        && from_db("lease expiry", expires)? > now_unix
    {
        return Ok(false);
    }
    conn.prepare_cached(
        "INSERT INTO leases (duty, holder, expires_unix) VALUES (?1, ?2, ?3)
         ON CONFLICT (duty) DO UPDATE SET holder = excluded.holder,
                                          expires_unix = excluded.expires_unix",
    )?
    .execute(params![
        duty,
        holder.as_bytes(),
        to_db("lease expiry", now_unix.saturating_add(lease_secs))?
    ])?;
    Ok(true)
}

/// Who holds `duty`, and until when; `None` when nobody ever took it.
pub(super) fn holder(
    conn: &Connection<'_>,
    duty: &str,
) -> Result<Option<(PublicId, u64)>, LedgerError> {
    let row: Option<(Vec<u8>, i64)> = conn
        .prepare_cached("SELECT holder, expires_unix FROM leases WHERE duty = ?1")?
        .query_row(params![duty], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(id, expires)| {
        Ok((
            super::store::id_from_db(id)?,
            from_db("lease expiry", expires)?,
        ))
    })
    .transpose()
}
