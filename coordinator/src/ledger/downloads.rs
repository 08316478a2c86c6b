//! Paid downloads in the ledger (PROTOCOL §6.7): the tickets the coordinator forwarded to holders, the
//! bytes each worker served per round with what they were paid, and the `hosting_fees` pot that a
//! share of every download ticket's redemption fills.
//!
//! A ticket is recorded once: a second forwarding of the same ticket (a client reusing its payment) is
//! refused by the table's key. At redemption, a recorded ticket sends `download_fee_share_ppm` of what
//! it pays into `hosting_fees` instead of the recipient; the pot is not an account, so no key can move
//! it, and it counts toward the supply.

use crate::db::{Connection, OptionalExtension, params};
use dualrig_proto::identity::PublicId;

use super::LedgerError;
use super::store::{self, from_db, id_from_db, to_db};

/// The `meta` key of the pot download fees go to.
pub(super) const HOSTING_FEES: &str = "hosting_fees";

/// What one worker served to downloads in one round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Served {
    /// Bytes of the ranges it served in full.
    pub bytes: u64,
    /// Sum of the expected values of the tickets forwarded to it for them.
    pub paid: u64,
}

/// Records `ticket_hashes` as forwarded to `holder` in `round`; refuses the lot, naming the first,
/// when any was forwarded before.
pub(super) fn record_forwarded(
    conn: &Connection,
    holder: &PublicId,
    round: u64,
    ticket_hashes: &[[u8; 32]],
) -> Result<(), LedgerError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO download_tickets (ticket_hash, holder, round) VALUES (?1, ?2, ?3)",
    )?;
    for hash in ticket_hashes {
        match insert.execute(params![
            &hash[..],
            holder.as_bytes(),
            to_db("round", round)?
        ]) {
            Ok(_) => {}
            Err(e) if e.is_unique_violation() => {
                return Err(LedgerError::TicketForwarded { ticket_hash: *hash });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Forgets the tickets forwarded before round `round − unlock_rounds`. A ticket is forwarded only when
/// it expires within `ticket_validity_rounds` of the ledger's round then, and the coordinator keeps
/// that below `unlock_rounds`; so every ticket forgotten has expired, and neither forwarding it again
/// nor redeeming it can pass, with or without its row.
pub(super) fn prune_forwarded(
    conn: &Connection,
    round: u64,
    unlock_rounds: u64,
) -> Result<(), LedgerError> {
    let Some(before) = round.checked_sub(unlock_rounds) else {
        return Ok(());
    };
    conn.prepare_cached("DELETE FROM download_tickets WHERE round < ?1")?
        .execute(params![to_db("round", before)?])?;
    Ok(())
}

/// Whether `ticket_hash` paid for a download.
pub(super) fn is_download_ticket(
    conn: &Connection,
    ticket_hash: &[u8; 32],
) -> Result<bool, LedgerError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM download_tickets WHERE ticket_hash = ?1")?
        .query_row(params![&ticket_hash[..]], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Adds `bytes` served and `paid` to `worker`'s row of `round`.
pub(super) fn add_served(
    conn: &Connection,
    round: u64,
    worker: &PublicId,
    bytes: u64,
    paid: u64,
) -> Result<(), LedgerError> {
    let now = served(conn, round, worker)?;
    let bytes = now.bytes.checked_add(bytes).ok_or(LedgerError::Overflow {
        what: "bytes served",
    })?;
    let paid = now.paid.checked_add(paid).ok_or(LedgerError::Overflow {
        what: "paid for bytes served",
    })?;
    conn.prepare_cached(
        "INSERT INTO served (round, worker, bytes, paid) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (round, worker) DO UPDATE SET bytes = excluded.bytes, paid = excluded.paid",
    )?
    .execute(params![
        to_db("round", round)?,
        worker.as_bytes(),
        to_db("bytes served", bytes)?,
        to_db("paid", paid)?
    ])?;
    Ok(())
}

pub(super) fn served(
    conn: &Connection,
    round: u64,
    worker: &PublicId,
) -> Result<Served, LedgerError> {
    let row: Option<(i64, i64)> = conn
        .prepare_cached("SELECT bytes, paid FROM served WHERE round = ?1 AND worker = ?2")?
        .query_row(params![to_db("round", round)?, worker.as_bytes()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((bytes, paid)) = row else {
        return Ok(Served::default());
    };
    Ok(Served {
        bytes: from_db("bytes served", bytes)?,
        paid: from_db("paid", paid)?,
    })
}

/// Every worker's row of `round`, by worker id.
pub(super) fn served_in_round(
    conn: &Connection,
    round: u64,
) -> Result<Vec<(PublicId, Served)>, LedgerError> {
    let mut stmt = conn.prepare_cached(
        "SELECT worker, bytes, paid FROM served WHERE round = ?1 ORDER BY worker",
    )?;
    let rows = stmt
        .query_map(params![to_db("round", round)?], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(worker, bytes, paid)| {
            Ok((
                id_from_db(worker)?,
                Served {
                    bytes: from_db("bytes served", bytes)?,
                    paid: from_db("paid", paid)?,
                },
            ))
        })
        .collect()
}

pub(super) fn hosting_fees(conn: &Connection) -> Result<u64, LedgerError> {
    store::meta(conn, HOSTING_FEES)
}

/// `fee_share_ppm` of `paid`, rounded down, moved from what the recipient gets into the pot.
pub(super) fn take_fee(
    conn: &Connection,
    fee_share_ppm: u32,
    paid: u64,
) -> Result<u64, LedgerError> {
    let fee = (u128::from(paid) * u128::from(fee_share_ppm.min(1_000_000)) / 1_000_000) as u64;
    if fee > 0 {
        let pot = hosting_fees(conn)?
            .checked_add(fee)
            .ok_or(LedgerError::Overflow {
                what: "hosting fees",
            })?;
        store::set_meta(conn, HOSTING_FEES, pot)?;
    }
    Ok(fee)
}
