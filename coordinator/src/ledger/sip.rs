//! The service infrastructure pool, the SIP (PROTOCOL §6.11): the `pool` meta value, what flows into
//! it per round and from where, and mining weight bought from it along a constant-product curve.
//!
//! Every unit that enters or leaves the pool goes through [`credit`] or [`record_out`], which write a
//! row of `sip_flows`, so the balance is the sum of that table's inflows less its outflows. Mining
//! weight is not tokens: it holds no supply, cannot be unbonded or slashed, and bleeds back to the curve
//! each round (`weight_bleed_ppm`); the tokens paid for it stay in the pool.

use std::collections::HashMap;

use crate::db::{Connection, OptionalExtension, params};
use dualrig_proto::identity::PublicId;

use super::store::{self, check_id, from_db, id_from_db, nonzero, to_db};
use super::{LedgerConfig, LedgerError, stake};

/// Version 6: the SIP's flows per round and source, and each worker's mining weight.
pub(super) const TABLES: &str = "
CREATE TABLE IF NOT EXISTS sip_flows (
    round      INTEGER NOT NULL CHECK (round >= 0),
    source     TEXT NOT NULL CHECK (length(source) BETWEEN 1 AND 32),
    amount_in  INTEGER NOT NULL DEFAULT 0 CHECK (amount_in >= 0),
    amount_out INTEGER NOT NULL DEFAULT 0 CHECK (amount_out >= 0),
    PRIMARY KEY (round, source)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mining_weight (
    worker BLOB PRIMARY KEY CHECK (length(worker) = 32),
    weight INTEGER NOT NULL CHECK (weight > 0)
) STRICT, WITHOUT ROWID;
";

/// `meta` key: mining weight outstanding, the sum of `mining_weight`.
const WEIGHT_OUTSTANDING: &str = "sip_weight_outstanding";
/// `meta` key: tokens paid for weight that is still out, as the curve counts them (`R` in §6.11).
const CURVE_TOKENS: &str = "sip_curve_tokens";

const PPM: u128 = 1_000_000;

/// How the SIP is filled and what its mining weight costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipRules {
    /// Share (ppm) of every redeemed ticket's paid face value that goes to the SIP.
    pub fee_share_ppm: u32,
    /// Share (ppm) of each hosting payout's mint that goes to the SIP while it holds less than
    /// `mint_ceiling`.
    pub mint_share_ppm: u32,
    pub mint_ceiling: u64,
    /// The curve's virtual token reserve `T₀` and virtual weight reserve `W₀` (§6.11): the first unit
    /// of weight costs `T₀ / W₀` units, and no more than `W₀` can ever be out.
    pub virtual_tokens: u64,
    pub virtual_weight: u64,
    /// Share (ppm) of each worker's mining weight that bleeds back each round, rounded up.
    pub weight_bleed_ppm: u32,
    /// Stake units one unit of mining weight counts for in the draw, in millionths (`k`).
    pub weight_stake_ppm: u32,
}

impl SipRules {
    /// 5 % of ticket fees and 10 % of minting (up to 1,000 tokens in the pool) to the SIP; a curve whose
    /// first weight costs one unit of stake per unit and holds at most a million tokens' worth; 0.1 %
    /// of mining weight bled back a round; one unit of weight counts as one unit of stake.
    pub const DEFAULT: Self = Self {
        fee_share_ppm: 50_000,
        mint_share_ppm: 100_000,
        mint_ceiling: 1_000_000_000,
        virtual_tokens: 1_000_000_000_000,
        virtual_weight: 1_000_000_000_000,
        weight_bleed_ppm: 1_000,
        weight_stake_ppm: 1_000_000,
    };

    /// No fee or mint share and no bleed; the curve and `k` as in [`Self::DEFAULT`].
    pub const NONE: Self = Self {
        fee_share_ppm: 0,
        mint_share_ppm: 0,
        mint_ceiling: 0,
        weight_bleed_ppm: 0,
        ..Self::DEFAULT
    };

    /// Mining weight `weight` counted in stake units (`weight × k`, rounded down).
    pub fn weight_as_stake(&self, weight: u64) -> u64 {
        let units = u128::from(weight) * u128::from(self.weight_stake_ppm) / PPM;
        u64::try_from(units).unwrap_or(u64::MAX)
    }
}

/// Where units entering or leaving the SIP come from or go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// The fee share of redeemed tickets.
    Fees,
    /// The mint share of hosting payouts.
    Mint,
    /// Tokens paid for mining weight.
    Purchases,
    /// Slashed stake.
    Slashes,
    /// Held-back hosting rewards forfeited on a storage fault.
    Forfeits,
    /// What a hosting payout's integer split left over.
    Dust,
    /// Bonds of proposals that missed quorum (§6.12).
    Bonds,
    /// Rewards paid out of the pool (an outflow), passed proposals' payments among them.
    Rewards,
}

impl Source {
    pub const ALL: [Self; 8] = [
        Self::Fees,
        Self::Mint,
        Self::Purchases,
        Self::Slashes,
        Self::Forfeits,
        Self::Dust,
        Self::Bonds,
        Self::Rewards,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Fees => "fees",
            Self::Mint => "mint",
            Self::Purchases => "purchases",
            Self::Slashes => "slashes",
            Self::Forfeits => "forfeits",
            Self::Dust => "dust",
            Self::Bonds => "bonds",
            Self::Rewards => "rewards",
        }
    }

    fn from_name(name: &str) -> Result<Self, LedgerError> {
        Self::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| LedgerError::Corrupt(format!("unknown SIP flow source {name:?}")))
    }

    fn total_key(self) -> String {
        format!("sip_total:{}", self.name())
    }
}

/// One round's flow of one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipFlow {
    pub round: u64,
    pub source: Source,
    pub amount_in: u64,
    pub amount_out: u64,
}

/// The curve's state: `T = T₀ + R` and `W = W₀ − weight outstanding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Curve {
    pub tokens: u128,
    pub weight: u128,
}

impl Curve {
    /// Weight minted for `amount` units: `⌊W·a / (T + a)⌋`.
    pub fn weight_for(&self, amount: u64) -> u64 {
        let a = u128::from(amount);
        // W < 2^64 and a < 2^64, so the product fits; T + a > 0 because T₀ > 0.
        let w = self.weight * a / (self.tokens + a).max(1);
        u64::try_from(w).unwrap_or(u64::MAX)
    }

    /// Units the curve gives back for `weight` sold to it: `⌊T·w / (W + w)⌋`.
    pub fn proceeds_for(&self, weight: u64) -> u128 {
        let w = u128::from(weight);
        self.tokens * w / (self.weight + w).max(1)
    }

    /// The marginal price `T / W` in millionths of a unit per unit of weight (rounded up); `None` once
    /// all of `W₀` is out.
    pub fn spot_price_ppm(&self) -> Option<u64> {
        (self.weight > 0)
            .then(|| u64::try_from((self.tokens * PPM).div_ceil(self.weight)).unwrap_or(u64::MAX))
    }
}

/// A price quote: what `amount` buys now, and at what average price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    pub amount: u64,
    pub weight: u64,
    /// `⌈amount · 10⁶ / weight⌉`; `None` when it buys no weight.
    pub price_ppm: Option<u64>,
}

/// The SIP's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipStatus {
    pub round: u64,
    pub balance: u64,
    pub weight_outstanding: u64,
    pub curve: Curve,
    /// Every unit in (and, for `Rewards`, out) since genesis, by source.
    pub totals: Vec<(Source, u64, u64)>,
    /// The flows of the rounds from `round − recent + 1` on, oldest first.
    pub recent: Vec<SipFlow>,
}

/// What one round's bleed did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bleed {
    pub weight: u64,
    /// Units the curve counted back for it; they stay in the pool.
    pub proceeds: u64,
}

/// Adds `amount` to the pool from `source`, in the current round.
pub(super) fn credit(conn: &Connection, source: Source, amount: u64) -> Result<(), LedgerError> {
    if amount == 0 {
        return Ok(());
    }
    let pool = store::pool(conn)?
        .checked_add(amount)
        .ok_or(LedgerError::Overflow { what: "pool" })?;
    store::set_pool(conn, pool)?;
    record(conn, source, amount, 0)
}

/// Records `amount` as having left the pool to `source` (the caller moved it).
pub(super) fn record_out(
    conn: &Connection,
    source: Source,
    amount: u64,
) -> Result<(), LedgerError> {
    record(conn, source, 0, amount)
}

fn record(
    conn: &Connection,
    source: Source,
    amount_in: u64,
    amount_out: u64,
) -> Result<(), LedgerError> {
    let round = store::round(conn)?;
    conn.prepare_cached(
        "INSERT INTO sip_flows (round, source, amount_in, amount_out) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (round, source) DO UPDATE SET
             amount_in = sip_flows.amount_in + excluded.amount_in,
             amount_out = sip_flows.amount_out + excluded.amount_out",
    )?
    .execute(params![
        to_db("round", round)?,
        source.name(),
        to_db("SIP inflow", amount_in)?,
        to_db("SIP outflow", amount_out)?
    ])?;
    let key = source.total_key();
    let total = store::meta(conn, &key)?
        .checked_add(amount_in.max(amount_out))
        .ok_or(LedgerError::Overflow { what: "SIP total" })?;
    store::set_meta(conn, &key, total)
}

/// `ppm` of `amount`, rounded down.
fn share(amount: u64, ppm: u32) -> u64 {
    (u128::from(amount) * u128::from(ppm).min(PPM) / PPM) as u64
}

/// The SIP's fee share of a redemption that paid `paid`, of which `taken` already went elsewhere;
/// credits it to the pool and returns it. Never more than what is left of `paid`.
pub(super) fn take_fee_share(
    conn: &Connection,
    rules: &SipRules,
    paid: u64,
    taken: u64,
) -> Result<u64, LedgerError> {
    let fee = share(paid, rules.fee_share_ppm).min(paid.saturating_sub(taken));
    credit(conn, Source::Fees, fee)?;
    Ok(fee)
}

/// The SIP's share of a hosting payout's `mint`, up to what keeps the pool at `mint_ceiling`; credits
/// it and returns it.
pub(super) fn take_mint_share(
    conn: &Connection,
    rules: &SipRules,
    mint: u64,
) -> Result<u64, LedgerError> {
    let room = rules.mint_ceiling.saturating_sub(store::pool(conn)?);
    let take = share(mint, rules.mint_share_ppm).min(room);
    credit(conn, Source::Mint, take)?;
    Ok(take)
}

pub(super) fn weight_outstanding(conn: &Connection) -> Result<u64, LedgerError> {
    store::meta(conn, WEIGHT_OUTSTANDING)
}

pub(super) fn curve(conn: &Connection, rules: &SipRules) -> Result<Curve, LedgerError> {
    let reserve = store::meta(conn, CURVE_TOKENS)?;
    Ok(Curve {
        tokens: u128::from(rules.virtual_tokens) + u128::from(reserve),
        weight: u128::from(rules.virtual_weight)
            .saturating_sub(u128::from(weight_outstanding(conn)?)),
    })
}

pub(super) fn quote(
    conn: &Connection,
    rules: &SipRules,
    amount: u64,
) -> Result<Quote, LedgerError> {
    let weight = curve(conn, rules)?.weight_for(amount);
    Ok(Quote {
        amount,
        weight,
        price_ppm: price_ppm(amount, weight),
    })
}

fn price_ppm(amount: u64, weight: u64) -> Option<u64> {
    (weight > 0).then(|| {
        u64::try_from((u128::from(amount) * PPM).div_ceil(u128::from(weight))).unwrap_or(u64::MAX)
    })
}

pub(super) fn mining_weight(conn: &Connection, worker: &PublicId) -> Result<u64, LedgerError> {
    let v: Option<i64> = conn
        .prepare_cached("SELECT weight FROM mining_weight WHERE worker = ?1")?
        .query_row(params![worker.as_bytes()], |r| r.get(0))
        .optional()?;
    from_db("mining weight", v.unwrap_or(0))
}

fn set_mining_weight(conn: &Connection, worker: &PublicId, weight: u64) -> Result<(), LedgerError> {
    if weight == 0 {
        conn.prepare_cached("DELETE FROM mining_weight WHERE worker = ?1")?
            .execute(params![worker.as_bytes()])?;
    } else {
        conn.prepare_cached(
            "INSERT INTO mining_weight (worker, weight) VALUES (?1, ?2)
             ON CONFLICT (worker) DO UPDATE SET weight = excluded.weight",
        )?
        .execute(params![worker.as_bytes(), to_db("mining weight", weight)?])?;
    }
    Ok(())
}

/// Every worker's mining weight.
pub(super) fn all_weights(conn: &Connection) -> Result<HashMap<PublicId, u64>, LedgerError> {
    let rows: Vec<(Vec<u8>, i64)> = conn
        .prepare_cached("SELECT worker, weight FROM mining_weight")?
        .query_map(params![], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(w, v)| Ok((id_from_db(w)?, from_db("mining weight", v)?)))
        .collect()
}

/// `BuyWeight`: `amount` from `buyer`'s balance into the pool, minting weight on `worker` at the
/// curve's price. Returns the weight minted.
pub(super) fn buy(
    conn: &Connection,
    config: &LedgerConfig,
    buyer: &PublicId,
    worker: &PublicId,
    amount: u64,
    max_price_ppm: u64,
) -> Result<u64, LedgerError> {
    nonzero(amount)?;
    check_id("mining weight's worker", worker)?;
    if let Some(resume_round) = stake::suspended_until(conn, worker)? {
        return Err(LedgerError::WeightForSuspended {
            worker: *worker,
            resume_round,
        });
    }
    let stake = stake::total_stake(conn, worker)?;
    let min_stake = config.min_stake.max(1);
    if stake < min_stake {
        return Err(LedgerError::WeightForNonWorker {
            worker: *worker,
            stake,
            min_stake,
        });
    }
    store::debit(conn, buyer, amount)?;
    let rules = &config.sip;
    let now = curve(conn, rules)?;
    let weight = now.weight_for(amount);
    let Some(price_ppm) = price_ppm(amount, weight) else {
        return Err(LedgerError::WeightTooSmall {
            amount,
            spot_price_ppm: now.spot_price_ppm(),
        });
    };
    if price_ppm > max_price_ppm {
        return Err(LedgerError::PriceAboveLimit {
            price_ppm,
            max_price_ppm,
        });
    }
    credit(conn, Source::Purchases, amount)?;
    let reserve =
        store::meta(conn, CURVE_TOKENS)?
            .checked_add(amount)
            .ok_or(LedgerError::Overflow {
                what: "SIP curve tokens",
            })?;
    store::set_meta(conn, CURVE_TOKENS, reserve)?;
    // weight ≤ W = W₀ − outstanding, so the sums stay within W₀.
    store::set_meta(conn, WEIGHT_OUTSTANDING, weight_outstanding(conn)? + weight)?;
    set_mining_weight(conn, worker, mining_weight(conn, worker)? + weight)?;
    Ok(weight)
}

/// Bleeds `⌈weight × weight_bleed_ppm / 10⁶⌉` of every worker's weight back to the curve, sold in one
/// sale at the round's curve; the proceeds leave the curve's count, never the pool.
pub(super) fn bleed(conn: &Connection, rules: &SipRules) -> Result<Bleed, LedgerError> {
    if rules.weight_bleed_ppm == 0 {
        return Ok(Bleed::default());
    }
    let ppm = u128::from(rules.weight_bleed_ppm).min(PPM);
    let rows: Vec<(Vec<u8>, i64)> = conn
        .prepare_cached("SELECT worker, weight FROM mining_weight ORDER BY worker")?
        .query_map(params![], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut bled = 0u64;
    for (worker, weight) in rows {
        let weight = from_db("mining weight", weight)?;
        // ≤ weight because ppm ≤ 10⁶.
        let cut = (u128::from(weight) * ppm).div_ceil(PPM) as u64;
        if cut == weight {
            conn.prepare_cached("DELETE FROM mining_weight WHERE worker = ?1")?
                .execute(params![worker])?;
        } else {
            conn.prepare_cached("UPDATE mining_weight SET weight = ?2 WHERE worker = ?1")?
                .execute(params![worker, to_db("mining weight", weight - cut)?])?;
        }
        bled += cut;
    }
    if bled == 0 {
        return Ok(Bleed::default());
    }
    let outstanding = weight_outstanding(conn)?;
    let after = outstanding.checked_sub(bled).ok_or_else(|| {
        LedgerError::Corrupt(format!(
            "mining weight outstanding {outstanding} is below the {bled} bled"
        ))
    })?;
    // The curve before the sale: W counts the bled weight as still out.
    let reserve = store::meta(conn, CURVE_TOKENS)?;
    let proceeds = curve(conn, rules)?.proceeds_for(bled);
    // Rounding down on both buy and sell keeps T·W from falling, so the reserve covers the proceeds;
    // `min` holds the line should rules change between a buy and its bleed.
    let proceeds = u64::try_from(proceeds).unwrap_or(u64::MAX).min(reserve);
    store::set_meta(conn, CURVE_TOKENS, reserve - proceeds)?;
    store::set_meta(conn, WEIGHT_OUTSTANDING, after)?;
    Ok(Bleed {
        weight: bled,
        proceeds,
    })
}

pub(super) fn status(
    conn: &Connection,
    rules: &SipRules,
    recent: u64,
) -> Result<SipStatus, LedgerError> {
    let round = store::round(conn)?;
    let mut totals = Vec::with_capacity(Source::ALL.len());
    for source in Source::ALL {
        let total = store::meta(conn, &source.total_key())?;
        let (i, o) = if source == Source::Rewards {
            (0, total)
        } else {
            (total, 0)
        };
        totals.push((source, i, o));
    }
    let from = (round + 1).saturating_sub(recent);
    Ok(SipStatus {
        round,
        balance: store::pool(conn)?,
        weight_outstanding: weight_outstanding(conn)?,
        curve: curve(conn, rules)?,
        totals,
        recent: flows(conn, from)?,
    })
}

/// Every flow of rounds `from` and after, oldest first.
pub(super) fn flows(conn: &Connection, from: u64) -> Result<Vec<SipFlow>, LedgerError> {
    let rows: Vec<(i64, String, i64, i64)> = conn
        .prepare_cached(
            "SELECT round, source, amount_in, amount_out FROM sip_flows WHERE round >= ?1
             ORDER BY round, source",
        )?
        .query_map(params![to_db("round", from)?], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(round, source, i, o)| {
            Ok(SipFlow {
                round: from_db("round", round)?,
                source: Source::from_name(&source)?,
                amount_in: from_db("SIP inflow", i)?,
                amount_out: from_db("SIP outflow", o)?,
            })
        })
        .collect()
}
