//! Row-level reads and writes of accounts, nonces, the round and the pool, with the u64 ↔ i64 edge in
//! one place. Every function runs inside the caller's transaction.

use crate::db::{Connection, OptionalExtension, params};
use dualrig_proto::identity::PublicId;
use ed25519_dalek::VerifyingKey;

use super::LedgerError;

/// An amount, round or nonce as SQLite stores it.
pub(super) fn to_db(what: &'static str, value: u64) -> Result<i64, LedgerError> {
    i64::try_from(value).map_err(|_| LedgerError::Overflow { what })
}

/// A stored integer back as u64; a negative one means the file was tampered with.
pub(super) fn from_db(what: &'static str, value: i64) -> Result<u64, LedgerError> {
    u64::try_from(value).map_err(|_| LedgerError::Corrupt(format!("{what} is {value}")))
}

pub(super) fn id_from_db(bytes: Vec<u8>) -> Result<PublicId, LedgerError> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| LedgerError::Corrupt(format!("an id is {} bytes", b.len())))?;
    Ok(PublicId(arr))
}

/// Refuses ids that are not ed25519 keys, so nobody sends funds where no key can ever reach them.
pub(super) fn check_id(what: &'static str, id: &PublicId) -> Result<(), LedgerError> {
    VerifyingKey::from_bytes(id.as_bytes())
        .map(|_| ())
        .map_err(|_| LedgerError::InvalidAccount { what })
}

pub(super) fn nonzero(amount: u64) -> Result<u64, LedgerError> {
    if amount == 0 {
        Err(LedgerError::ZeroAmount)
    } else {
        Ok(amount)
    }
}

pub(super) fn meta(conn: &Connection, key: &str) -> Result<u64, LedgerError> {
    Ok(meta_opt(conn, key)?.unwrap_or(0))
}

/// A `meta` value, or `None` when it was never set.
pub(super) fn meta_opt(conn: &Connection, key: &str) -> Result<Option<u64>, LedgerError> {
    let v: Option<i64> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row(params![key], |r| r.get(0))
        .optional()?;
    v.map(|v| from_db("meta value", v)).transpose()
}

pub(super) fn set_meta(conn: &Connection, key: &str, value: u64) -> Result<(), LedgerError> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, to_db("meta value", value)?])?;
    Ok(())
}

pub(super) fn round(conn: &Connection) -> Result<u64, LedgerError> {
    meta(conn, "round")
}

pub(super) fn set_round(conn: &Connection, round: u64) -> Result<(), LedgerError> {
    set_meta(conn, "round", round)
}

/// The pool holds slashed stake. It is not an account, so no key, weak or otherwise, can move it.
pub(super) fn pool(conn: &Connection) -> Result<u64, LedgerError> {
    meta(conn, "pool")
}

pub(super) fn set_pool(conn: &Connection, value: u64) -> Result<(), LedgerError> {
    set_meta(conn, "pool", value)
}

pub(super) fn balance(conn: &Connection, id: &PublicId) -> Result<u64, LedgerError> {
    let v: Option<i64> = conn
        .prepare_cached("SELECT balance FROM accounts WHERE id = ?1")?
        .query_row(params![id.as_bytes()], |r| r.get(0))
        .optional()?;
    from_db("balance", v.unwrap_or(0))
}

pub(super) fn set_balance(conn: &Connection, id: &PublicId, value: u64) -> Result<(), LedgerError> {
    conn.prepare_cached(
        "INSERT INTO accounts (id, balance) VALUES (?1, ?2)
         ON CONFLICT (id) DO UPDATE SET balance = excluded.balance",
    )?
    .execute(params![id.as_bytes(), to_db("balance", value)?])?;
    Ok(())
}

pub(super) fn credit(conn: &Connection, id: &PublicId, amount: u64) -> Result<(), LedgerError> {
    let now = balance(conn, id)?
        .checked_add(amount)
        .ok_or(LedgerError::Overflow { what: "balance" })?;
    set_balance(conn, id, now)
}

pub(super) fn debit(conn: &Connection, id: &PublicId, amount: u64) -> Result<(), LedgerError> {
    let available = balance(conn, id)?;
    let now = available
        .checked_sub(amount)
        .ok_or(LedgerError::InsufficientBalance {
            account: *id,
            available,
            needed: amount,
        })?;
    set_balance(conn, id, now)
}

pub(super) fn last_nonce(conn: &Connection, id: &PublicId) -> Result<u64, LedgerError> {
    let v: Option<i64> = conn
        .prepare_cached("SELECT nonce FROM accounts WHERE id = ?1")?
        .query_row(params![id.as_bytes()], |r| r.get(0))
        .optional()?;
    from_db("nonce", v.unwrap_or(0))
}

/// Accepts `nonce` for `account` only if it is above the last one accepted, and records it.
pub(super) fn take_nonce(
    conn: &Connection,
    account: &PublicId,
    nonce: u64,
) -> Result<(), LedgerError> {
    let last = last_nonce(conn, account)?;
    if nonce <= last {
        return Err(LedgerError::StaleNonce {
            account: *account,
            nonce,
            last,
        });
    }
    conn.prepare_cached(
        "INSERT INTO accounts (id, nonce) VALUES (?1, ?2)
         ON CONFLICT (id) DO UPDATE SET nonce = excluded.nonce",
    )?
    .execute(params![account.as_bytes(), to_db("request nonce", nonce)?])?;
    Ok(())
}

pub(super) fn transfer(
    conn: &Connection,
    from: &PublicId,
    to: &PublicId,
    amount: u64,
) -> Result<(), LedgerError> {
    nonzero(amount)?;
    check_id("transfer recipient", to)?;
    debit(conn, from, amount)?;
    credit(conn, to, amount)
}

pub(super) fn pay_from_pool(
    conn: &Connection,
    to: &PublicId,
    amount: u64,
) -> Result<(), LedgerError> {
    nonzero(amount)?;
    check_id("pool payee", to)?;
    let available = pool(conn)?;
    let now = available
        .checked_sub(amount)
        .ok_or(LedgerError::InsufficientPool {
            available,
            needed: amount,
        })?;
    set_pool(conn, now)?;
    super::sip::record_out(conn, super::sip::Source::Rewards, amount)?;
    credit(conn, to, amount)
}
