//! The ticket broker (PROTOCOL §3): senders' deposits and reserves, the unlock wait before a withdrawal,
//! and the redemption of winning tickets.
//!
//! A winner is paid from the sender's deposit. When the deposit is short, the rest comes from the
//! reserve, but each recipient may take at most `reserve / active recipients` per round, both figures
//! frozen at the sender's first reserve claim of the round. Active recipients are the workers eligible
//! by stake; only they may claim from a reserve. A ticket that is paid in part is spent; one that
//! cannot be paid anything is refused and stays redeemable later.

use crate::db::{Connection, OptionalExtension, params};
use dualrig_proto::identity::PublicId;
use dualrig_proto::ticket::{SignedTicket, TicketError};

use super::stake;
use super::store::{self, from_db, nonzero, to_db};
use super::{LedgerConfig, LedgerError};

/// A sender's funds at the broker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderAccount {
    pub deposit: u64,
    pub reserve: u64,
    /// Set by an unlock: the first round at which deposit and reserve may be withdrawn.
    pub withdraw_round: Option<u64>,
}

/// What one redemption paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redemption {
    pub ticket_hash: [u8; 32],
    pub sender: PublicId,
    pub recipient: PublicId,
    pub from_deposit: u64,
    pub from_reserve: u64,
    /// Face value the sender could not cover; the ticket is spent all the same.
    pub unpaid: u64,
    /// Of what was paid, the share that went to the `hosting_fees` pot (a download's ticket).
    pub fee: u64,
    /// Of what was paid, the share that went to the SIP (`sip_fee_share_ppm`, every ticket).
    pub sip_fee: u64,
    /// Of what was paid, the share the recipient redirects to the capacity fund (a transcode
    /// ticket; PROTOCOL §6.13).
    pub redirected: u64,
}

impl Redemption {
    pub fn paid(&self) -> u64 {
        // Both parts come out of one face value, so their sum fits.
        self.from_deposit.saturating_add(self.from_reserve)
    }

    /// What the recipient's balance gained: what was paid less the fees and the redirected share.
    pub fn credited(&self) -> u64 {
        self.paid()
            .saturating_sub(self.fee)
            .saturating_sub(self.sip_fee)
            .saturating_sub(self.redirected)
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Fund {
    Deposit,
    Reserve,
}

pub(super) fn sender(conn: &Connection, id: &PublicId) -> Result<SenderAccount, LedgerError> {
    let row: Option<(i64, i64, Option<i64>)> = conn
        .prepare_cached("SELECT deposit, reserve, withdraw_round FROM senders WHERE id = ?1")?
        .query_row(params![id.as_bytes()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((deposit, reserve, withdraw_round)) = row else {
        return Ok(SenderAccount::default());
    };
    Ok(SenderAccount {
        deposit: from_db("deposit", deposit)?,
        reserve: from_db("reserve", reserve)?,
        withdraw_round: withdraw_round
            .map(|r| from_db("withdraw round", r))
            .transpose()?,
    })
}

/// Stores `s`; a sender with nothing left and no unlock under way has no row.
fn set_sender(conn: &Connection, id: &PublicId, s: &SenderAccount) -> Result<(), LedgerError> {
    if s == &SenderAccount::default() {
        conn.prepare_cached("DELETE FROM senders WHERE id = ?1")?
            .execute(params![id.as_bytes()])?;
        return Ok(());
    }
    let withdraw_round = s
        .withdraw_round
        .map(|r| to_db("withdraw round", r))
        .transpose()?;
    conn.prepare_cached(
        "INSERT INTO senders (id, deposit, reserve, withdraw_round) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET deposit = excluded.deposit, reserve = excluded.reserve,
             withdraw_round = excluded.withdraw_round",
    )?
    .execute(params![
        id.as_bytes(),
        to_db("deposit", s.deposit)?,
        to_db("reserve", s.reserve)?,
        withdraw_round
    ])?;
    Ok(())
}

/// Moves `amount` from the sender's balance into its deposit or reserve.
pub(super) fn fund(
    conn: &Connection,
    id: &PublicId,
    amount: u64,
    into: Fund,
) -> Result<(), LedgerError> {
    nonzero(amount)?;
    store::debit(conn, id, amount)?;
    let mut s = sender(conn, id)?;
    let (slot, what) = match into {
        Fund::Deposit => (&mut s.deposit, "deposit"),
        Fund::Reserve => (&mut s.reserve, "reserve"),
    };
    *slot = slot
        .checked_add(amount)
        .ok_or(LedgerError::Overflow { what })?;
    set_sender(conn, id, &s)
}

pub(super) fn unlock(
    conn: &Connection,
    config: &LedgerConfig,
    id: &PublicId,
) -> Result<(), LedgerError> {
    let mut s = sender(conn, id)?;
    if let Some(withdraw_round) = s.withdraw_round {
        return Err(LedgerError::AlreadyUnlocking {
            sender: *id,
            withdraw_round,
        });
    }
    if s.deposit == 0 && s.reserve == 0 {
        return Err(LedgerError::NothingToUnlock { sender: *id });
    }
    let at = store::round(conn)?
        .checked_add(config.unlock_rounds)
        .ok_or(LedgerError::Overflow {
            what: "withdraw round",
        })?;
    s.withdraw_round = Some(at);
    set_sender(conn, id, &s)
}

pub(super) fn cancel_unlock(conn: &Connection, id: &PublicId) -> Result<(), LedgerError> {
    let mut s = sender(conn, id)?;
    if s.withdraw_round.take().is_none() {
        return Err(LedgerError::NotUnlocking { sender: *id });
    }
    set_sender(conn, id, &s)
}

/// Returns deposit and reserve to the balance once the unlock wait is over.
pub(super) fn withdraw(conn: &Connection, id: &PublicId) -> Result<u64, LedgerError> {
    let s = sender(conn, id)?;
    let withdraw_round = s
        .withdraw_round
        .ok_or(LedgerError::NotUnlocking { sender: *id })?;
    let current_round = store::round(conn)?;
    if current_round < withdraw_round {
        return Err(LedgerError::UnlockPending {
            sender: *id,
            withdraw_round,
            current_round,
        });
    }
    let amount = s
        .deposit
        .checked_add(s.reserve)
        .ok_or(LedgerError::Overflow { what: "withdrawal" })?;
    set_sender(conn, id, &SenderAccount::default())?;
    store::credit(conn, id, amount)?;
    Ok(amount)
}

/// The checks that need no ledger state (`SignedTicket::check_claim`), with "not the recipient" as
/// the ledger's own refusal.
pub(super) fn check_ticket(
    account: PublicId,
    ticket: &SignedTicket,
    recipient_rand: &[u8; 32],
) -> Result<(), LedgerError> {
    ticket
        .check_claim(&account, recipient_rand)
        .map_err(|e| match e {
            TicketError::WrongRecipient { got, .. } => LedgerError::NotRecipient {
                account,
                recipient: got,
            },
            other => other.into(),
        })
}

pub(super) fn is_redeemed(conn: &Connection, ticket_hash: &[u8; 32]) -> Result<bool, LedgerError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM redeemed WHERE ticket_hash = ?1")?
        .query_row(params![&ticket_hash[..]], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Pays a ticket that passed [`check_ticket`]: not expired, never redeemed, then deposit first and the
/// reserve share after.
pub(super) fn redeem(
    conn: &Connection,
    config: &LedgerConfig,
    ticket: &SignedTicket,
) -> Result<Redemption, LedgerError> {
    let t = &ticket.ticket;
    let round = store::round(conn)?;
    t.check_live(round)?;
    let ticket_hash = ticket.ticket_hash();
    if is_redeemed(conn, &ticket_hash)? {
        return Err(LedgerError::AlreadyRedeemed { ticket_hash });
    }

    let mut s = sender(conn, &t.sender)?;
    let from_deposit = t.face_value.min(s.deposit);
    let short = t.face_value - from_deposit;
    let from_reserve = if short > 0 && s.reserve > 0 {
        reserve_share(
            conn,
            config,
            &t.sender,
            &t.recipient,
            round,
            s.reserve,
            short,
        )?
    } else {
        0
    };
    if from_deposit == 0 && from_reserve == 0 {
        return Err(LedgerError::SenderCannotPay {
            sender: t.sender,
            recipient: t.recipient,
        });
    }
    s.deposit -= from_deposit;
    s.reserve -= from_reserve;
    set_sender(conn, &t.sender, &s)?;
    let paid = from_deposit + from_reserve;
    let download = super::downloads::is_download_ticket(conn, &ticket_hash)?;
    let fee = if download {
        super::downloads::take_fee(conn, config.download_fee_share_ppm, paid)?
    } else {
        0
    };
    // The hosting pot's share first, then the SIP's, both of what was paid; never more than it. The
    // recipient's capacity redirect takes its share of what is left to it (a transcode ticket only).
    let sip_fee = super::sip::take_fee_share(conn, &config.sip, paid, fee)?;
    let kept = paid - fee - sip_fee;
    store::credit(conn, &t.recipient, kept)?;
    let redirected = if download {
        0
    } else {
        super::capacity::divert(conn, &t.recipient, kept, super::capacity::Source::Tickets)?
    };

    let inserted = conn
        .prepare_cached(
            "INSERT INTO redeemed (ticket_hash, sender, recipient, from_deposit, from_reserve, round)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            &ticket_hash[..],
            t.sender.as_bytes(),
            t.recipient.as_bytes(),
            to_db("payment", from_deposit)?,
            to_db("payment", from_reserve)?,
            to_db("round", round)?
        ]);
    match inserted {
        Ok(_) => {}
        // The check above makes this unreachable within one transaction; the key is the backstop.
        Err(e) if e.is_unique_violation() => {
            return Err(LedgerError::AlreadyRedeemed { ticket_hash });
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Redemption {
        ticket_hash,
        sender: t.sender,
        recipient: t.recipient,
        from_deposit,
        from_reserve,
        unpaid: short - from_reserve,
        fee,
        sip_fee,
        redirected,
    })
}

/// What `recipient` may take from `sender`'s reserve this round, up to `wanted`, recording the claim.
fn reserve_share(
    conn: &Connection,
    config: &LedgerConfig,
    sender: &PublicId,
    recipient: &PublicId,
    round: u64,
    reserve: u64,
    wanted: u64,
) -> Result<u64, LedgerError> {
    if stake::eligible_stake(conn, config, recipient)?.is_none() {
        return Ok(0);
    }
    let round_db = to_db("round", round)?;
    let frozen: Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT reserve, recipients FROM reserve_rounds WHERE sender = ?1 AND round = ?2",
        )?
        .query_row(params![sender.as_bytes(), round_db], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let (base, recipients) = match frozen {
        Some((base, n)) => (from_db("reserve", base)?, from_db("recipients", n)?),
        None => {
            // The recipient itself is eligible, so there is at least one.
            let n = stake::eligible(conn, config)?.len() as u64;
            conn.prepare_cached(
                "INSERT INTO reserve_rounds (sender, round, reserve, recipients) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                sender.as_bytes(),
                round_db,
                to_db("reserve", reserve)?,
                to_db("recipients", n)?
            ])?;
            (reserve, n)
        }
    };
    let cap = base.checked_div(recipients).unwrap_or(0);
    let claimed: u64 = from_db(
        "reserve claim",
        conn.prepare_cached(
            "SELECT claimed FROM reserve_claims WHERE sender = ?1 AND recipient = ?2 AND round = ?3",
        )?
        .query_row(params![sender.as_bytes(), recipient.as_bytes(), round_db], |r| r.get(0))
        .optional()?
        .unwrap_or(0),
    )?;
    let take = wanted.min(cap.saturating_sub(claimed)).min(reserve);
    if take > 0 {
        conn.prepare_cached(
            "INSERT INTO reserve_claims (sender, recipient, round, claimed) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (sender, recipient, round) DO UPDATE SET claimed = excluded.claimed",
        )?
        .execute(params![
            sender.as_bytes(),
            recipient.as_bytes(),
            round_db,
            to_db("reserve claim", claimed + take)?
        ])?;
    }
    Ok(take)
}

/// Forgets reserve bookkeeping of rounds before `round`: caps only ever apply to the current round.
pub(super) fn prune_reserve_rounds(conn: &Connection, round: u64) -> Result<(), LedgerError> {
    let round = to_db("round", round)?;
    conn.prepare_cached("DELETE FROM reserve_rounds WHERE round < ?1")?
        .execute(params![round])?;
    conn.prepare_cached("DELETE FROM reserve_claims WHERE round < ?1")?
        .execute(params![round])?;
    Ok(())
}
