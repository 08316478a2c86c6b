//! The sender's side of a payment: enough freshly numbered, signed tickets to cover what a job owes.

use super::{MAX_TICKETS_PER_PAYMENT, SignedTicket, TicketError, TicketParams};
use crate::identity::Identity;

/// Numbers and signs a sender's tickets.
///
/// One counter serves every params: a nonce never repeats for this payer, so it is new under every
/// `recipient_rand_hash`. A new payer starts at a random multiple of 2^32 (`starting_at` fixes it), so
/// a restarted sender is unlikely to land on nonces it already used under params still live.
#[derive(Debug, Clone)]
pub struct TicketPayer {
    next_nonce: u64,
}

impl Default for TicketPayer {
    fn default() -> Self {
        Self::new()
    }
}

impl TicketPayer {
    pub fn new() -> Self {
        let start: u32 = rand::random();
        Self::starting_at(u64::from(start) << 32)
    }

    pub fn starting_at(next_nonce: u64) -> Self {
        Self { next_nonce }
    }

    /// The nonce the next ticket gets.
    pub fn next_nonce(&self) -> u64 {
        self.next_nonce
    }

    /// How many tickets under `params` cover `owed`: `ceil(owed / EV)`.
    pub fn tickets_needed(params: &TicketParams, owed: u64) -> Result<u64, TicketError> {
        if owed == 0 {
            return Ok(0);
        }
        let ev = params.expected_value();
        if ev == 0 {
            return Err(TicketError::ZeroExpectedValue {
                params: params.label(),
            });
        }
        Ok(owed.div_ceil(ev))
    }

    /// Signed tickets under `params` whose expected values sum to at least `owed`.
    pub fn pay(
        &mut self,
        sender: &Identity,
        params: &TicketParams,
        owed: u64,
    ) -> Result<Vec<SignedTicket>, TicketError> {
        let count = Self::tickets_needed(params, owed)?;
        self.sign_many(sender, params, count)
    }

    /// Pays for `units` of work at the params' price. A job with work in it always gets at least one
    /// ticket, even at a price of zero, since a recipient refuses an empty payment for real work.
    pub fn pay_for_units(
        &mut self,
        sender: &Identity,
        params: &TicketParams,
        units: u64,
    ) -> Result<Vec<SignedTicket>, TicketError> {
        let owed = params.amount_owed(units)?;
        let mut count = Self::tickets_needed(params, owed)?;
        if units > 0 {
            count = count.max(1);
        }
        self.sign_many(sender, params, count)
    }

    fn sign_many(
        &mut self,
        sender: &Identity,
        params: &TicketParams,
        count: u64,
    ) -> Result<Vec<SignedTicket>, TicketError> {
        let too_many = TicketError::TooManyTickets {
            count,
            limit: MAX_TICKETS_PER_PAYMENT,
        };
        let n = usize::try_from(count).map_err(|_| too_many.clone())?;
        if n > MAX_TICKETS_PER_PAYMENT {
            return Err(too_many);
        }
        let last = self
            .next_nonce
            .checked_add(count)
            .ok_or(TicketError::Overflow {
                what: "sender nonce",
            })?;
        let id = sender.id();
        let tickets = (self.next_nonce..last)
            .map(|nonce| SignedTicket::sign(params.ticket(id, nonce), sender))
            .collect();
        self.next_nonce = last;
        Ok(tickets)
    }
}
