//! Slash evidence kept in the database, for coordinators sharing one (PROTOCOL §4.3): each encoded
//! `SlashEvidence` in a row named by its BLAKE3 hash. A row is written by the transaction that records
//! its slash and deleted by the one that drops the last kept slash naming it, so every coordinator
//! serves the evidence of every slash, and no row outlives or precedes the slashes that name it.

use super::LedgerError;
use super::store::{from_db, to_db};
use crate::db::{Connection, OptionalExtension, params};

/// Version 12: slash evidence shared by every coordinator on the database.
pub(super) const TABLES: &str = "
CREATE TABLE IF NOT EXISTS slash_evidence (
    hash       BLOB PRIMARY KEY CHECK (length(hash) = 32),
    bytes      BLOB NOT NULL,
    written_at INTEGER NOT NULL CHECK (written_at >= 0)
) STRICT, WITHOUT ROWID;
";

/// Keeps `bytes` under `hash` (a no-op when that item is already kept).
pub(super) fn put(
    conn: &Connection,
    hash: &[u8; 32],
    bytes: &[u8],
    at_unix: u64,
) -> Result<(), LedgerError> {
    conn.prepare_cached(
        "INSERT INTO slash_evidence (hash, bytes, written_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (hash) DO NOTHING",
    )?
    .execute(params![&hash[..], bytes, to_db("evidence time", at_unix)?])?;
    Ok(())
}

/// The item named `hash`, as stored (the caller checks it against its name).
pub(super) fn get(conn: &Connection, hash: &[u8; 32]) -> Result<Option<Vec<u8>>, LedgerError> {
    Ok(conn
        .prepare_cached("SELECT bytes FROM slash_evidence WHERE hash = ?1")?
        .query_row(params![&hash[..]], |r| r.get(0))
        .optional()?)
}

/// Deletes the named items.
pub(super) fn remove(conn: &Connection, hashes: &[[u8; 32]]) -> Result<(), LedgerError> {
    let mut delete = conn.prepare_cached("DELETE FROM slash_evidence WHERE hash = ?1")?;
    for hash in hashes {
        delete.execute(params![&hash[..]])?;
    }
    Ok(())
}

/// Deletes every row no kept slash names; how many it deleted.
pub(super) fn sweep(conn: &Connection) -> Result<usize, LedgerError> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM slash_evidence WHERE NOT EXISTS (
                 SELECT 1 FROM slashes
                 WHERE slashes.evidence_hash = slash_evidence.hash AND slashes.evidence_kept = 1)",
        )?
        .execute(params![])?)
}

/// Bytes of every item kept.
pub(super) fn bytes(conn: &Connection) -> Result<u64, LedgerError> {
    let total: i64 = conn
        .prepare_cached(
            "SELECT CAST(COALESCE(SUM(length(bytes)), 0) AS BIGINT) FROM slash_evidence",
        )?
        .query_row(params![], |r| r.get(0))?;
    from_db("evidence bytes", total)
}
