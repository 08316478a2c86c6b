//! A full copy of the ledger's rows, for audits and for tests that prove a refused operation changed
//! nothing, and the total supply, which only minting changes (`genesis + minted`).

use std::collections::BTreeMap;

use rusqlite::Connection;
use rusqlite::types::Value;

use super::LedgerError;
use super::store::from_db;

/// Every row of every table, in primary-key order.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerSnapshot {
    pub tables: BTreeMap<String, Vec<Vec<Value>>>,
    /// Balances + bonds + unbonding + deposits + reserves + pool + held back + hosting fees + access
    /// stake (locked and on its way back) + proposal bonds still locked + the capacity fund.
    pub supply: u128,
}

pub(super) fn take(conn: &Connection) -> Result<LedgerSnapshot, LedgerError> {
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut tables = BTreeMap::new();
    for name in names {
        // Table names come from the schema itself, not from input.
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{name}\" ORDER BY 1, 2"))?;
        let width = stmt.column_count();
        let rows = stmt
            .query_map([], |r| (0..width).map(|i| r.get::<_, Value>(i)).collect())?
            .collect::<Result<Vec<Vec<Value>>, _>>()?;
        tables.insert(name, rows);
    }
    Ok(LedgerSnapshot {
        tables,
        supply: supply(conn)?,
    })
}

/// Every unit the ledger holds, wherever it sits.
pub(super) fn supply(conn: &Connection) -> Result<u128, LedgerError> {
    let mut total: u128 = 0;
    for sql in [
        "SELECT balance FROM accounts",
        "SELECT amount FROM bonds",
        "SELECT amount FROM unbonding",
        "SELECT deposit FROM senders",
        "SELECT reserve FROM senders",
        // The SIP; mining weight is not tokens and its curve's count is not a balance.
        "SELECT value FROM meta WHERE key = 'pool'",
        "SELECT value FROM meta WHERE key = 'hosting_fees'",
        "SELECT amount FROM held_back",
        "SELECT stake FROM collective_members",
        "SELECT amount FROM collective_unbonding",
        "SELECT bond_locked FROM proposals",
        "SELECT value FROM meta WHERE key = 'capacity_fund'",
    ] {
        let mut stmt = conn.prepare(sql)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            total += u128::from(from_db("amount", row.get(0)?)?);
        }
    }
    Ok(total)
}
