//! The recipient's side of a payment: issue ticket params, then accept a job's tickets only when every
//! one is good and together they cover the job's price.

use std::collections::{HashMap, HashSet};

use super::verify::SenderKey;
use super::{
    MAX_TICKETS_PER_PAYMENT, Rate, SignedTicket, TicketError, TicketParams, TicketTerms,
    params_label, recipient_rand,
};
use crate::identity::PublicId;

/// A winning ticket with what its redemption needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WinningTicket {
    pub ticket: SignedTicket,
    pub recipient_rand: [u8; 32],
}

/// What an accepted payment was worth and what the recipient must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Sum of the tickets' expected values.
    pub expected_value: u64,
    /// `price_per_unit × units` the payment had to cover.
    pub owed: u64,
    /// Tickets to redeem at the ledger.
    pub winners: Vec<WinningTicket>,
    /// `recipient_rand_hash` of each params retired because one of its tickets won: publish new ones.
    pub retired: Vec<[u8; 32]>,
}

/// A refused payment: why, and the ticket at fault where one is (its place in the payment, from 0,
/// and its nonce).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RefusedTicket {
    pub ticket: Option<(usize, u64)>,
    #[source]
    pub error: TicketError,
}

impl std::fmt::Display for RefusedTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ticket {
            Some((index, nonce)) => write!(f, "ticket {index} (nonce {nonce}): {}", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}

struct Issued {
    params: TicketParams,
    recipient_rand: [u8; 32],
    seen: HashSet<(PublicId, u64)>,
}

/// Checks tickets against the params this recipient issued (PROTOCOL §3).
///
/// Everything is in memory: params die with the process, which is safe because `recipient_rand` is
/// derived from the secret and the seed, and a restarted recipient simply issues new params.
pub struct TicketValidator {
    recipient: PublicId,
    secret: [u8; 32],
    current_round: u64,
    live: HashMap<[u8; 32], Issued>,
    /// Retired params by `recipient_rand_hash`, kept until they expire so their tickets stay refused.
    retired: HashMap<[u8; 32], u64>,
    /// Senders' keys with their tables, made once: a payment's tickets share a sender, and senders
    /// pay again. At most [`KEY_CACHE`] entries (about 10 KiB each); cleared when full.
    keys: HashMap<PublicId, SenderKey>,
}

/// Sender keys a validator keeps ready.
const KEY_CACHE: usize = 256;

impl std::fmt::Debug for TicketValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketValidator")
            .field("recipient", &self.recipient)
            .field("current_round", &self.current_round)
            .field("live", &self.live.len())
            .field("retired", &self.retired.len())
            .finish_non_exhaustive()
    }
}

impl TicketValidator {
    /// A validator for `recipient`, whose `recipient_rand`s derive from `secret` (32 random bytes the
    /// recipient keeps to itself; it need not outlive the process).
    pub fn new(recipient: PublicId, secret: [u8; 32], current_round: u64) -> Self {
        Self {
            recipient,
            secret,
            current_round,
            live: HashMap::new(),
            retired: HashMap::new(),
            keys: HashMap::new(),
        }
    }

    /// A validator with a fresh random secret.
    pub fn with_random_secret(recipient: PublicId, current_round: u64) -> Self {
        Self::new(recipient, rand::random(), current_round)
    }

    pub fn recipient(&self) -> PublicId {
        self.recipient
    }

    pub fn current_round(&self) -> u64 {
        self.current_round
    }

    /// Issues params for `terms` under `seed`. A seed whose params are live or retired is refused: the
    /// same seed gives the same `recipient_rand`, which may already be public.
    pub fn issue(
        &mut self,
        terms: TicketTerms,
        seed: [u8; 32],
    ) -> Result<TicketParams, TicketError> {
        let params = TicketParams::derive(self.recipient, &self.secret, seed, terms);
        let hash = params.recipient_rand_hash;
        if self.live.contains_key(&hash) || self.retired.contains_key(&hash) {
            return Err(TicketError::ReusedSeed {
                params: params.label(),
            });
        }
        self.live.insert(
            hash,
            Issued {
                params,
                recipient_rand: recipient_rand(&self.secret, &seed),
                seen: HashSet::new(),
            },
        );
        Ok(params)
    }

    /// Issues params for `terms` under a fresh random seed.
    pub fn issue_random(&mut self, terms: TicketTerms) -> Result<TicketParams, TicketError> {
        self.issue(terms, rand::random())
    }

    /// The live params with this `recipient_rand_hash`.
    pub fn params(&self, recipient_rand_hash: &[u8; 32]) -> Option<&TicketParams> {
        self.live.get(recipient_rand_hash).map(|i| &i.params)
    }

    pub fn live_params(&self) -> impl Iterator<Item = &TicketParams> {
        self.live.values().map(|i| &i.params)
    }

    /// Retires params by hand (for example when a winning ticket was redeemed elsewhere). Returns
    /// whether they were live.
    pub fn retire(&mut self, recipient_rand_hash: &[u8; 32]) -> bool {
        match self.live.remove(recipient_rand_hash) {
            Some(issued) => {
                self.retired
                    .insert(*recipient_rand_hash, issued.params.expiration_round);
                true
            }
            None => false,
        }
    }

    /// Moves to `round` and forgets params that expired before it.
    pub fn set_round(&mut self, round: u64) {
        self.current_round = round;
        self.live.retain(|_, i| i.params.expiration_round >= round);
        self.retired.retain(|_, expiration| *expiration >= round);
    }

    /// Accepts `tickets` as payment for `units` of work, or refuses them all.
    ///
    /// Each ticket must be made out to this recipient, unexpired, under live params it matches exactly,
    /// with a nonce its sender has not used under those params, and signed by its sender; together
    /// their expected values must reach `price_per_unit × units` (the highest price among the params
    /// used). A refused payment changes nothing. An accepted one records the nonces, returns the
    /// winners, and retires every params that produced a winner, since redeeming reveals its secret.
    pub fn validate(
        &mut self,
        tickets: &[SignedTicket],
        units: u64,
    ) -> Result<Accepted, TicketError> {
        self.validate_naming_ticket(tickets, units)
            .map_err(|refused| refused.error)
    }

    /// [`Self::validate`], whose refusal also names the ticket refused (its place in the payment and
    /// its nonce) where one ticket is at fault rather than the payment as a whole.
    pub fn validate_naming_ticket(
        &mut self,
        tickets: &[SignedTicket],
        units: u64,
    ) -> Result<Accepted, RefusedTicket> {
        self.validate_at(tickets, units, Rate::PerUnit)
    }

    /// [`Self::validate_naming_ticket`] for `units` priced at `rate`: output pixels at
    /// `price_per_unit`, or the bytes of a download at `price_per_byte`. Every other rule is the same.
    pub fn validate_at(
        &mut self,
        tickets: &[SignedTicket],
        units: u64,
        rate: Rate,
    ) -> Result<Accepted, RefusedTicket> {
        let whole = |error| RefusedTicket {
            ticket: None,
            error,
        };
        if tickets.len() > MAX_TICKETS_PER_PAYMENT {
            return Err(whole(TicketError::TooManyTickets {
                count: tickets.len() as u64,
                limit: MAX_TICKETS_PER_PAYMENT,
            }));
        }
        if tickets.is_empty() && units > 0 {
            return Err(whole(TicketError::NoTickets { units }));
        }
        let mut batch = HashSet::with_capacity(tickets.len());
        let mut offered = 0u64;
        let mut price = 0u64;
        for (index, signed) in tickets.iter().enumerate() {
            let this = |error| RefusedTicket {
                ticket: Some((index, signed.ticket.sender_nonce)),
                error,
            };
            let price_per_unit = self.check_one(signed).map_err(this)?.params.price(rate);
            self.check_signature(signed).map_err(this)?;
            let t = &signed.ticket;
            if !batch.insert((t.recipient_rand_hash, t.sender, t.sender_nonce)) {
                return Err(this(replayed(signed)));
            }
            offered = offered
                .checked_add(t.expected_value())
                .ok_or(TicketError::Overflow {
                    what: "sum of ticket expected values",
                })
                .map_err(whole)?;
            price = price.max(price_per_unit);
        }
        let owed = price
            .checked_mul(units)
            .ok_or(TicketError::Overflow {
                what: "price_per_unit × units",
            })
            .map_err(whole)?;
        if offered < owed {
            return Err(whole(TicketError::EvShort { offered, owed }));
        }

        // Every ticket was checked against live params, so the lookups below cannot miss; a params is
        // retired only after all of this payment's tickets under it have been drawn.
        let mut winners = Vec::new();
        for signed in tickets {
            let t = &signed.ticket;
            if let Some(issued) = self.live.get_mut(&t.recipient_rand_hash) {
                issued.seen.insert((t.sender, t.sender_nonce));
                if signed.wins(&issued.recipient_rand) {
                    winners.push(WinningTicket {
                        ticket: *signed,
                        recipient_rand: issued.recipient_rand,
                    });
                }
            }
        }
        let mut retired = Vec::new();
        for w in &winners {
            let hash = w.ticket.ticket.recipient_rand_hash;
            if self.retire(&hash) {
                retired.push(hash);
            }
        }
        Ok(Accepted {
            expected_value: offered,
            owed,
            winners,
            retired,
        })
    }

    fn check_one(&self, signed: &SignedTicket) -> Result<&Issued, TicketError> {
        let t = &signed.ticket;
        if t.recipient != self.recipient {
            return Err(TicketError::WrongRecipient {
                expected: self.recipient,
                got: t.recipient,
            });
        }
        t.check_live(self.current_round)?;
        let label = || params_label(&t.recipient_rand_hash);
        let Some(issued) = self.live.get(&t.recipient_rand_hash) else {
            return Err(if self.retired.contains_key(&t.recipient_rand_hash) {
                TicketError::RetiredParams { params: label() }
            } else {
                TicketError::UnknownParams { params: label() }
            });
        };
        let p = &issued.params;
        for (field, got, expected) in [
            ("face_value", t.face_value, p.face_value),
            ("win_prob", t.win_prob, p.win_prob),
            ("expiration_round", t.expiration_round, p.expiration_round),
        ] {
            if got != expected {
                return Err(TicketError::TermsMismatch {
                    params: label(),
                    field,
                    got,
                    expected,
                });
            }
        }
        if issued.seen.contains(&(t.sender, t.sender_nonce)) {
            return Err(replayed(signed));
        }
        Ok(issued)
    }

    /// The sender's signature, by [`SignedTicket::verify`]'s rule, under its key made ready once.
    fn check_signature(&mut self, signed: &SignedTicket) -> Result<(), TicketError> {
        let sender = signed.ticket.sender;
        let forged = || TicketError::ForgedSignature { sender };
        if !self.keys.contains_key(&sender) {
            let key = SenderKey::new(sender.as_bytes()).ok_or_else(forged)?;
            if self.keys.len() >= KEY_CACHE {
                self.keys.clear();
            }
            self.keys.insert(sender, key);
        }
        let key = self.keys.get(&sender).ok_or_else(forged)?;
        if key.verifies(&signed.ticket_hash(), &signed.sig) {
            Ok(())
        } else {
            Err(forged())
        }
    }
}

fn replayed(signed: &SignedTicket) -> TicketError {
    TicketError::ReplayedNonce {
        sender: signed.ticket.sender,
        nonce: signed.ticket.sender_nonce,
        params: params_label(&signed.ticket.recipient_rand_hash),
    }
}
