//! The ledger's tables and connection settings, and the one-time genesis.
//!
//! Ids are 32-byte blobs and amounts non-negative integers; `CHECK` constraints repeat the rules the
//! code enforces so a bug cannot store a negative balance. `redeemed.ticket_hash` is the primary key:
//! the database itself refuses a second redemption of one ticket.

use crate::db::{Backend, Connection, OptionalExtension, params};

use super::genesis::Genesis;
use super::{
    LedgerError, capacity, evidence, governance, hosting, lease, registry, sessions, sip, store,
};

/// Bumped when the tables change; a database from a newer version is refused.
const SCHEMA_VERSION: i64 = 12;

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS accounts (
    id      BLOB PRIMARY KEY CHECK (length(id) = 32),
    balance INTEGER NOT NULL DEFAULT 0 CHECK (balance >= 0),
    nonce   INTEGER NOT NULL DEFAULT 0 CHECK (nonce >= 0)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bonds (
    worker    BLOB NOT NULL CHECK (length(worker) = 32),
    delegator BLOB NOT NULL CHECK (length(delegator) = 32),
    amount    INTEGER NOT NULL CHECK (amount > 0),
    PRIMARY KEY (worker, delegator)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS unbonding (
    id            INTEGER PRIMARY KEY,
    delegator     BLOB NOT NULL,
    worker        BLOB NOT NULL,
    amount        INTEGER NOT NULL CHECK (amount > 0),
    release_round INTEGER NOT NULL CHECK (release_round >= 0)
) STRICT;
CREATE INDEX IF NOT EXISTS unbonding_by_delegator ON unbonding (delegator);
CREATE INDEX IF NOT EXISTS unbonding_by_worker ON unbonding (worker);
CREATE TABLE IF NOT EXISTS suspensions (
    worker          BLOB PRIMARY KEY,
    resume_round INTEGER NOT NULL CHECK (resume_round >= 0)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS senders (
    id             BLOB PRIMARY KEY CHECK (length(id) = 32),
    deposit        INTEGER NOT NULL CHECK (deposit >= 0),
    reserve        INTEGER NOT NULL CHECK (reserve >= 0),
    withdraw_round INTEGER CHECK (withdraw_round >= 0)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reserve_rounds (
    sender     BLOB NOT NULL,
    round      INTEGER NOT NULL,
    reserve    INTEGER NOT NULL CHECK (reserve >= 0),
    recipients INTEGER NOT NULL CHECK (recipients > 0),
    PRIMARY KEY (sender, round)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reserve_claims (
    sender    BLOB NOT NULL,
    recipient BLOB NOT NULL,
    round     INTEGER NOT NULL,
    claimed   INTEGER NOT NULL CHECK (claimed > 0),
    PRIMARY KEY (sender, recipient, round)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS redeemed (
    ticket_hash  BLOB PRIMARY KEY CHECK (length(ticket_hash) = 32),
    sender       BLOB NOT NULL,
    recipient    BLOB NOT NULL,
    from_deposit INTEGER NOT NULL CHECK (from_deposit >= 0),
    from_reserve INTEGER NOT NULL CHECK (from_reserve >= 0),
    round        INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS slashes (
    id           INTEGER PRIMARY KEY,
    worker       BLOB NOT NULL,
    round        INTEGER NOT NULL,
    fraction_ppm INTEGER NOT NULL CHECK (fraction_ppm BETWEEN 0 AND 1000000),
    amount       INTEGER NOT NULL CHECK (amount >= 0),
    evidence     BLOB NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS slashes_by_worker ON slashes (worker);
";

/// The tables as version 1 created them, for the upgrade test.
#[cfg(test)]
pub(super) const TABLES_V1_FOR_TESTS: &str = TABLES;

/// Version 2: slash evidence lives in the evidence store, named by hash; the row keeps the verdict
/// (`evidence` holds a `SlashEvidence` without its `kind`). Rows from version 1 keep their evidence
/// inline (`evidence_hash` NULL).
const SLASH_EVIDENCE_BY_HASH: &str = "
ALTER TABLE slashes ADD COLUMN evidence_hash BLOB
    CHECK (evidence_hash IS NULL OR length(evidence_hash) = 32);
ALTER TABLE slashes ADD COLUMN evidence_size INTEGER NOT NULL DEFAULT 0 CHECK (evidence_size >= 0);
ALTER TABLE slashes ADD COLUMN evidence_kept INTEGER NOT NULL DEFAULT 0 CHECK (evidence_kept IN (0, 1));
ALTER TABLE slashes ADD COLUMN at_unix INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS slashes_kept ON slashes (amount, id) WHERE evidence_kept = 1;
";

/// Version 4: paid downloads. `download_tickets` names every ticket the coordinator forwarded to a
/// holder for a download (its redemption pays `download_fee_share_ppm` of itself into the
/// `hosting_fees` pot in `meta`); `served` sums, per round and worker, the bytes served to downloads
/// and the expected value of the tickets forwarded for them.
const DOWNLOADS: &str = "
CREATE TABLE IF NOT EXISTS download_tickets (
    ticket_hash BLOB PRIMARY KEY CHECK (length(ticket_hash) = 32),
    holder      BLOB NOT NULL CHECK (length(holder) = 32),
    round       INTEGER NOT NULL CHECK (round >= 0)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS served (
    round  INTEGER NOT NULL CHECK (round >= 0),
    worker BLOB NOT NULL CHECK (length(worker) = 32),
    bytes  INTEGER NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    paid   INTEGER NOT NULL DEFAULT 0 CHECK (paid >= 0),
    PRIMARY KEY (round, worker)
) STRICT, WITHOUT ROWID;
";

/// Version 5: collectives (PROTOCOL §2.5, §6.10): their rules, their blobs, their members with the
/// access stake each locked, access stake on its way back after a leave, and each member's bytes
/// fetched per round. Only adds tables.
const COLLECTIVES: &str = "
CREATE TABLE IF NOT EXISTS collectives (
    name           TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    owner          BLOB NOT NULL CHECK (length(owner) = 32),
    access_stake   INTEGER NOT NULL CHECK (access_stake >= 0),
    price_per_byte INTEGER NOT NULL CHECK (price_per_byte >= 0),
    free_bytes     INTEGER NOT NULL CHECK (free_bytes >= 0),
    replicas       INTEGER NOT NULL CHECK (replicas >= 0),
    created_round  INTEGER NOT NULL CHECK (created_round >= 0)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS collective_blobs (
    collective TEXT NOT NULL,
    root       BLOB NOT NULL CHECK (length(root) = 32),
    PRIMARY KEY (collective, root)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS collective_blobs_by_root ON collective_blobs (root);
CREATE TABLE IF NOT EXISTS collective_members (
    collective   TEXT NOT NULL,
    member       BLOB NOT NULL CHECK (length(member) = 32),
    stake        INTEGER NOT NULL CHECK (stake >= 0),
    joined_round INTEGER NOT NULL CHECK (joined_round >= 0),
    PRIMARY KEY (collective, member)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS collective_members_by_member ON collective_members (member);
CREATE TABLE IF NOT EXISTS collective_unbonding (
    id            INTEGER PRIMARY KEY,
    member        BLOB NOT NULL CHECK (length(member) = 32),
    collective    TEXT NOT NULL,
    amount        INTEGER NOT NULL CHECK (amount > 0),
    release_round INTEGER NOT NULL CHECK (release_round >= 0)
) STRICT;
CREATE INDEX IF NOT EXISTS collective_unbonding_by_member ON collective_unbonding (member);
CREATE TABLE IF NOT EXISTS collective_usage (
    collective TEXT NOT NULL,
    member     BLOB NOT NULL,
    round      INTEGER NOT NULL CHECK (round >= 0),
    bytes      INTEGER NOT NULL CHECK (bytes >= 0),
    PRIMARY KEY (collective, member, round)
) STRICT, WITHOUT ROWID;
";

/// Each version's step, in order: a database at version `v` runs every step above `v`; a new one runs
/// them all. A step only adds tables and columns.
const MIGRATIONS: &[(i64, &str)] = &[
    (2, SLASH_EVIDENCE_BY_HASH),
    (3, hosting::TABLES),
    (4, DOWNLOADS),
    (5, COLLECTIVES),
    (6, sip::TABLES),
    // Version 7: governance (stake history, proposals, votes; PROTOCOL §6.12) and the capacity
    // redirect (§6.13), in two parts of one step.
    (7, governance::TABLES),
    (7, capacity::TABLES),
    // Version 8: leases on once-per-network duties (the round clock).
    (8, lease::TABLES),
    // Version 9: encoder sessions proven by verified work and their capacity bonuses (§6.13).
    (9, sessions::TABLES),
    // Version 10: the coordinators sharing the database, with their heartbeats.
    (10, registry::TABLES),
    // Version 11: hosting credits recorded by every coordinator and not yet paid.
    (11, hosting::CREDITS),
    // Version 12: slash evidence in the database, shared by the coordinators on it.
    (12, evidence::TABLES),
];

/// Version 2's step, for the upgrade tests.
#[cfg(test)]
pub(super) const SLASH_EVIDENCE_BY_HASH_FOR_TESTS: &str = SLASH_EVIDENCE_BY_HASH;

/// Connection settings. A file database uses WAL with a full `fsync` at every commit, so a commit that
/// returned survives a crash or power loss.
pub(super) fn configure(conn: &rusqlite::Connection, durable: bool) -> Result<(), LedgerError> {
    if durable {
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(LedgerError::Corrupt(format!(
                "database refused WAL journaling (got {mode})"
            )));
        }
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

/// Creates missing tables and checks the schema version.
pub(super) fn create(tx: &Connection<'_>) -> Result<(), LedgerError> {
    step(tx, TABLES)?;
    let version: Option<i64> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema'",
            params![],
            |r| r.get(0),
        )
        .optional()?;
    let from = version.unwrap_or(1);
    if from > SCHEMA_VERSION {
        return Err(LedgerError::Corrupt(format!(
            "schema version {from}; this build reads version {SCHEMA_VERSION}"
        )));
    }
    for (step, sql) in MIGRATIONS {
        if *step > from {
            self::step(tx, sql)?;
        }
    }
    if version != Some(SCHEMA_VERSION) {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![SCHEMA_VERSION],
        )?;
    }
    Ok(())
}

/// Runs one schema step, written in SQLite's terms, on either backend.
fn step(tx: &Connection<'_>, sql: &str) -> Result<(), LedgerError> {
    match tx.backend() {
        Backend::Sqlite => tx.execute_batch(sql)?,
        Backend::Postgres => tx.execute_batch(&crate::db::postgres::ddl(sql))?,
    }
    Ok(())
}

/// Applies `genesis` unless some genesis was applied before; records that it was.
pub(super) fn apply_genesis_once(
    tx: &Connection<'_>,
    genesis: &Genesis,
) -> Result<(), LedgerError> {
    let applied = tx
        .query_row(
            "SELECT 1 FROM meta WHERE key = 'genesis'",
            params![],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if applied {
        return Ok(());
    }
    for a in genesis.accounts() {
        store::set_balance(tx, &a.id, a.balance)?;
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('genesis', ?1)",
        params![store::to_db("genesis supply", genesis.supply())?],
    )?;
    Ok(())
}
