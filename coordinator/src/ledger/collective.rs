//! Collectives (PROTOCOL §2.5, §6.10): a named set of blobs with an access rule. The owner creates it and
//! adds blobs; a member locks the collective's access stake to join and gets its free bytes each round;
//! leaving ends access at once and releases the stake after `unbonding_rounds`, withdrawn with
//! `WithdrawUnbonded` like unbonded stake. [`admit_get`] is the one place a member's Get is counted
//! against its allotment.

use crate::db::{Connection, OptionalExtension, params};
use dualrig_proto::access::check_name;
use dualrig_proto::identity::PublicId;
use dualrig_proto::ledger_request::CollectiveRules;

use super::store::{self, from_db, id_from_db, to_db};
use super::{LedgerConfig, LedgerError};
use crate::config::MAX_REPLICAS;

/// A collective as the ledger keeps it, with its figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collective {
    pub name: String,
    pub owner: PublicId,
    pub rules: CollectiveRules,
    pub members: u64,
    /// Access stake its members have locked.
    pub stake_locked: u64,
    pub blobs: u64,
}

/// Access stake of one account: locked in a collective it belongs to, or on its way back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectiveStake {
    pub collective: String,
    pub amount: u64,
    /// First round it may be withdrawn; `None` while the account is still a member.
    pub release_round: Option<u64>,
}

/// A member's Get that its allotment covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Bytes of this round's allotment used, this Get included.
    pub used: u64,
    pub free_bytes_per_round: u64,
    pub round: u64,
}

fn name_ok(name: &str) -> Result<(), LedgerError> {
    check_name(name).map_err(LedgerError::CollectiveName)
}

fn rules_of(r: &crate::db::Row, at: usize) -> Result<(i64, i64, i64, i64), crate::db::DbError> {
    Ok((r.get(at)?, r.get(at + 1)?, r.get(at + 2)?, r.get(at + 3)?))
}

fn rules_from_db(
    (stake, price, free, replicas): (i64, i64, i64, i64),
) -> Result<CollectiveRules, LedgerError> {
    Ok(CollectiveRules {
        access_stake: from_db("access stake", stake)?,
        price_per_byte: from_db("price per byte", price)?,
        free_bytes_per_round: from_db("free bytes", free)?,
        replicas: u32::try_from(replicas)
            .map_err(|_| LedgerError::Corrupt(format!("replicas is {replicas}")))?,
    })
}

/// Owner and rules of `name`; `NoSuchCollective` when there is none.
fn rules(conn: &Connection, name: &str) -> Result<(PublicId, CollectiveRules), LedgerError> {
    let row = conn
        .prepare_cached(
            "SELECT owner, access_stake, price_per_byte, free_bytes, replicas FROM collectives
             WHERE name = ?1",
        )?
        .query_row(params![name], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, rules_of(r, 1)?))
        })
        .optional()?;
    let (owner, rules) = row.ok_or_else(|| LedgerError::NoSuchCollective {
        name: name.to_owned(),
    })?;
    Ok((id_from_db(owner)?, rules_from_db(rules)?))
}

fn member_stake(
    conn: &Connection,
    name: &str,
    member: &PublicId,
) -> Result<Option<u64>, LedgerError> {
    let v: Option<i64> = conn
        .prepare_cached(
            "SELECT stake FROM collective_members WHERE collective = ?1 AND member = ?2",
        )?
        .query_row(params![name, member.as_bytes()], |r| r.get(0))
        .optional()?;
    v.map(|s| from_db("access stake", s)).transpose()
}

pub(super) fn create(
    conn: &Connection,
    owner: &PublicId,
    name: &str,
    rules: &CollectiveRules,
) -> Result<(), LedgerError> {
    name_ok(name)?;
    if rules.replicas > MAX_REPLICAS {
        return Err(LedgerError::CollectiveReplicas {
            asked: rules.replicas,
            max: MAX_REPLICAS,
        });
    }
    let exists = conn
        .prepare_cached("SELECT 1 FROM collectives WHERE name = ?1")?
        .query_row(params![name], |_| Ok(()))
        .optional()?
        .is_some();
    if exists {
        return Err(LedgerError::CollectiveExists {
            name: name.to_owned(),
        });
    }
    conn.prepare_cached(
        "INSERT INTO collectives
         (name, owner, access_stake, price_per_byte, free_bytes, replicas, created_round)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        name,
        owner.as_bytes(),
        to_db("access stake", rules.access_stake)?,
        to_db("price per byte", rules.price_per_byte)?,
        to_db("free bytes", rules.free_bytes_per_round)?,
        i64::from(rules.replicas),
        to_db("round", store::round(conn)?)?,
    ])?;
    Ok(())
}

pub(super) fn add(
    conn: &Connection,
    account: &PublicId,
    name: &str,
    root: &[u8; 32],
) -> Result<(), LedgerError> {
    name_ok(name)?;
    let (owner, _) = rules(conn, name)?;
    if owner != *account {
        return Err(LedgerError::NotCollectiveOwner {
            name: name.to_owned(),
            owner,
            account: *account,
        });
    }
    let inserted = conn
        .prepare_cached(
            "INSERT INTO collective_blobs (collective, root) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?
        .execute(params![name, &root[..]])?;
    if inserted == 0 {
        return Err(LedgerError::BlobAlreadyInCollective {
            name: name.to_owned(),
            root: *root,
        });
    }
    Ok(())
}

pub(super) fn join(conn: &Connection, account: &PublicId, name: &str) -> Result<(), LedgerError> {
    name_ok(name)?;
    let (_, rules) = rules(conn, name)?;
    if member_stake(conn, name, account)?.is_some() {
        return Err(LedgerError::AlreadyMember {
            name: name.to_owned(),
            account: *account,
        });
    }
    let available = store::balance(conn, account)?;
    if available < rules.access_stake {
        return Err(LedgerError::AccessStakeShort {
            name: name.to_owned(),
            account: *account,
            needed: rules.access_stake,
            available,
        });
    }
    store::debit(conn, account, rules.access_stake)?;
    conn.prepare_cached(
        "INSERT INTO collective_members (collective, member, stake, joined_round)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        name,
        account.as_bytes(),
        to_db("access stake", rules.access_stake)?,
        to_db("round", store::round(conn)?)?,
    ])?;
    Ok(())
}

pub(super) fn leave(
    conn: &Connection,
    config: &LedgerConfig,
    account: &PublicId,
    name: &str,
) -> Result<(), LedgerError> {
    name_ok(name)?;
    rules(conn, name)?;
    let stake = member_stake(conn, name, account)?.ok_or_else(|| LedgerError::NotMember {
        name: name.to_owned(),
        account: *account,
    })?;
    conn.prepare_cached("DELETE FROM collective_members WHERE collective = ?1 AND member = ?2")?
        .execute(params![name, account.as_bytes()])?;
    if stake > 0 {
        let release = store::round(conn)?
            .checked_add(config.unbonding_rounds)
            .ok_or(LedgerError::Overflow {
                what: "access stake release round",
            })?;
        conn.prepare_cached(
            "INSERT INTO collective_unbonding (member, collective, amount, release_round)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            account.as_bytes(),
            name,
            to_db("access stake", stake)?,
            to_db("release round", release)?
        ])?;
    }
    Ok(())
}

/// Pays `account` every released access stake; returns the amount (0 when none is released) and the
/// next release round still ahead.
pub(super) fn withdraw_released(
    conn: &Connection,
    account: &PublicId,
) -> Result<(u64, Option<u64>), LedgerError> {
    let round = store::round(conn)?;
    let mut total: u64 = 0;
    let mut next: Option<u64> = None;
    for s in stakes(conn, account)? {
        match s.release_round {
            Some(r) if r <= round => {
                total = total
                    .checked_add(s.amount)
                    .ok_or(LedgerError::Overflow { what: "withdrawal" })?;
            }
            Some(r) => next = Some(next.map_or(r, |n| n.min(r))),
            None => {}
        }
    }
    if total > 0 {
        conn.prepare_cached(
            "DELETE FROM collective_unbonding WHERE member = ?1 AND release_round <= ?2",
        )?
        .execute(params![account.as_bytes(), to_db("round", round)?])?;
        store::credit(conn, account, total)?;
    }
    Ok((total, next))
}

/// `account`'s access stake: locked in each collective it belongs to, then what is on its way back.
pub(super) fn stakes(
    conn: &Connection,
    account: &PublicId,
) -> Result<Vec<CollectiveStake>, LedgerError> {
    let mut out = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT collective, stake FROM collective_members WHERE member = ?1 ORDER BY collective",
    )?;
    let rows = stmt.query_map(params![account.as_bytes()], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    for row in rows {
        let (collective, amount) = row?;
        out.push(CollectiveStake {
            collective,
            amount: from_db("access stake", amount)?,
            release_round: None,
        });
    }
    let mut stmt = conn.prepare_cached(
        "SELECT collective, amount, release_round FROM collective_unbonding WHERE member = ?1
         ORDER BY id",
    )?;
    let rows = stmt.query_map(params![account.as_bytes()], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (collective, amount, release) = row?;
        out.push(CollectiveStake {
            collective,
            amount: from_db("access stake", amount)?,
            release_round: Some(from_db("release round", release)?),
        });
    }
    Ok(out)
}

pub(super) fn collective(conn: &Connection, name: &str) -> Result<Collective, LedgerError> {
    let (owner, rules) = rules(conn, name)?;
    let (members, stake_locked): (i64, i64) = conn
        .prepare_cached(
            "SELECT COUNT(*), CAST(COALESCE(SUM(stake), 0) AS BIGINT) FROM collective_members WHERE collective = ?1",
        )?
        .query_row(params![name], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let blobs: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM collective_blobs WHERE collective = ?1")?
        .query_row(params![name], |r| r.get(0))?;
    Ok(Collective {
        name: name.to_owned(),
        owner,
        rules,
        members: from_db("members", members)?,
        stake_locked: from_db("access stake", stake_locked)?,
        blobs: from_db("blobs", blobs)?,
    })
}

/// At most `limit` collectives after the name `after`, in name order.
pub(super) fn collectives_page(
    conn: &Connection,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<Collective>, LedgerError> {
    let names: Vec<String> = conn
        .prepare_cached("SELECT name FROM collectives WHERE name > ?1 ORDER BY name LIMIT ?2")?
        .query_map(
            params![
                after.unwrap_or(""),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    names.iter().map(|n| collective(conn, n)).collect()
}

/// At most `limit` blob roots of `name` after `after`, in root order.
pub(super) fn roots_page(
    conn: &Connection,
    name: &str,
    after: Option<&[u8; 32]>,
    limit: usize,
) -> Result<Vec<[u8; 32]>, LedgerError> {
    let rows: Vec<Vec<u8>> = conn
        .prepare_cached(
            "SELECT root FROM collective_blobs WHERE collective = ?1 AND root > ?2
             ORDER BY root LIMIT ?3",
        )?
        .query_map(
            params![
                name,
                after.map(|a| a.to_vec()).unwrap_or_default(),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|r| {
            <[u8; 32]>::try_from(r)
                .map_err(|_| LedgerError::Corrupt("a blob root is not 32 bytes".into()))
        })
        .collect()
}

/// Whether `account` is a member of `name` now.
pub(super) fn is_member(
    conn: &Connection,
    name: &str,
    account: &PublicId,
) -> Result<bool, LedgerError> {
    Ok(member_stake(conn, name, account)?.is_some())
}

/// Decides a Get of `bytes` of a blob of `name` by `account`, and counts the bytes when it is
/// admitted. The one access rule: a non-member is refused, naming the stake to join; a member fetches
/// free up to the allotment of the round; beyond it the Get would be paid at `price_per_byte`, and
/// until paid downloads exist it is refused, naming the round the allotment renews.
pub(super) fn admit_get(
    conn: &Connection,
    name: &str,
    account: &PublicId,
    bytes: u64,
    paid: bool,
) -> Result<Admission, LedgerError> {
    let (_, rules) = rules(conn, name)?;
    if !is_member(conn, name, account)? {
        return Err(LedgerError::NotMemberForGet {
            name: name.to_owned(),
            account: *account,
            access_stake: rules.access_stake,
        });
    }
    let round = store::round(conn)?;
    let used: i64 = conn
        .prepare_cached(
            "SELECT bytes FROM collective_usage WHERE collective = ?1 AND member = ?2 AND round = ?3",
        )?
        .query_row(params![name, account.as_bytes(), to_db("round", round)?], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let used = from_db("usage", used)?;
    if paid {
        // Paid bytes are the holder's business (its tickets); they use none of the free ones.
        return Ok(Admission {
            used,
            free_bytes_per_round: rules.free_bytes_per_round,
            round,
        });
    }
    let after = used
        .checked_add(bytes)
        .ok_or(LedgerError::Overflow { what: "usage" })?;
    if after > rules.free_bytes_per_round {
        return Err(LedgerError::AllotmentUsed {
            name: name.to_owned(),
            free_bytes: rules.free_bytes_per_round,
            used,
            asked: bytes,
            price_per_byte: rules.price_per_byte,
            renews_round: round.saturating_add(1),
        });
    }
    conn.prepare_cached(
        "INSERT INTO collective_usage (collective, member, round, bytes) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (collective, member, round) DO UPDATE SET bytes = excluded.bytes",
    )?
    .execute(params![
        name,
        account.as_bytes(),
        to_db("round", round)?,
        to_db("usage", after)?
    ])?;
    Ok(Admission {
        used: after,
        free_bytes_per_round: rules.free_bytes_per_round,
        round,
    })
}

/// Drops usage of rounds before `round`: only the current round's counts matter.
pub(super) fn prune_usage(conn: &Connection, round: u64) -> Result<(), LedgerError> {
    conn.prepare_cached("DELETE FROM collective_usage WHERE round < ?1")?
        .execute(params![to_db("round", round)?])?;
    Ok(())
}

/// Members and access stake locked over every collective, for the metrics.
pub(super) fn totals(conn: &Connection) -> Result<(u64, u64), LedgerError> {
    let (members, stake): (i64, i64) = conn
        .prepare_cached(
            "SELECT COUNT(*), CAST(COALESCE(SUM(stake), 0) AS BIGINT) FROM collective_members",
        )?
        .query_row(params![], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((
        from_db("members", members)?,
        from_db("access stake", stake)?,
    ))
}
