//! A full copy of the ledger's rows, for audits and for tests that prove a refused operation changed
//! nothing, and the total supply, which only minting changes (`genesis + minted`).

use std::collections::BTreeMap;

use crate::db::{Backend, Connection, Value, params};

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
    let list = match conn.backend() {
        Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
        Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
             ORDER BY table_name"
        }
    };
    let names: Vec<String> = conn
        .prepare(list)?
        .query_map(params![], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut tables = BTreeMap::new();
    for name in names {
        // Table names come from the schema itself, not from input.
        let rows = conn
            .prepare(&format!("SELECT * FROM \"{name}\" ORDER BY 1, 2"))?
            .query(params![])?
            .into_iter()
            .map(crate::db::Row::into_values)
            .collect::<Vec<Vec<Value>>>();
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
        for row in conn.prepare(sql)?.query(params![])? {
            total += u128::from(from_db("amount", row.get(0)?)?);
        }
    }
    Ok(total)
}
