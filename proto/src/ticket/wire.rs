//! Message forms of tickets and params, shaped like generated protobuf messages (ids and hashes as
//! byte strings, the nested ticket optional), with checked conversions to the typed forms.
//!
//! Everything arriving from a peer goes through `TryFrom`, which refuses wrong lengths and ids that are
//! not ed25519 keys before any other rule looks at it.

use super::{SignedTicket, Ticket, TicketError, TicketParams};
use crate::identity::PublicId;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TicketMsg {
    pub recipient: Vec<u8>,
    pub sender: Vec<u8>,
    pub face_value: u64,
    pub win_prob: u64,
    pub sender_nonce: u64,
    pub recipient_rand_hash: Vec<u8>,
    pub expiration_round: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignedTicketMsg {
    pub ticket: Option<TicketMsg>,
    pub sig: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TicketParamsMsg {
    pub recipient: Vec<u8>,
    pub face_value: u64,
    pub win_prob: u64,
    pub recipient_rand_hash: Vec<u8>,
    pub seed: Vec<u8>,
    pub expiration_round: u64,
    pub price_per_unit: u64,
    pub price_per_byte: u64,
}

/// A winning ticket as a recipient sends it for redemption.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WinningTicketMsg {
    pub ticket: Option<SignedTicketMsg>,
    pub recipient_rand: Vec<u8>,
}

fn fixed<const N: usize>(field: &'static str, bytes: &[u8]) -> Result<[u8; N], TicketError> {
    bytes.try_into().map_err(|_| TicketError::Malformed {
        field,
        len: bytes.len(),
        expected: N,
    })
}

fn id(field: &'static str, bytes: &[u8]) -> Result<PublicId, TicketError> {
    let arr = fixed::<32>(field, bytes)?;
    PublicId::from_slice(field, &arr).map_err(|_| TicketError::InvalidId { field })
}

impl From<&Ticket> for TicketMsg {
    fn from(t: &Ticket) -> Self {
        Self {
            recipient: t.recipient.as_bytes().to_vec(),
            sender: t.sender.as_bytes().to_vec(),
            face_value: t.face_value,
            win_prob: t.win_prob,
            sender_nonce: t.sender_nonce,
            recipient_rand_hash: t.recipient_rand_hash.to_vec(),
            expiration_round: t.expiration_round,
        }
    }
}

impl TryFrom<&TicketMsg> for Ticket {
    type Error = TicketError;

    fn try_from(m: &TicketMsg) -> Result<Self, TicketError> {
        Ok(Self {
            recipient: id("ticket recipient", &m.recipient)?,
            sender: id("ticket sender", &m.sender)?,
            face_value: m.face_value,
            win_prob: m.win_prob,
            sender_nonce: m.sender_nonce,
            recipient_rand_hash: fixed("recipient_rand_hash", &m.recipient_rand_hash)?,
            expiration_round: m.expiration_round,
        })
    }
}

impl From<&SignedTicket> for SignedTicketMsg {
    fn from(s: &SignedTicket) -> Self {
        Self {
            ticket: Some(TicketMsg::from(&s.ticket)),
            sig: s.sig.to_vec(),
        }
    }
}

impl TryFrom<&SignedTicketMsg> for SignedTicket {
    type Error = TicketError;

    fn try_from(m: &SignedTicketMsg) -> Result<Self, TicketError> {
        let ticket = m.ticket.as_ref().ok_or(TicketError::Malformed {
            field: "ticket",
            len: 0,
            expected: super::TICKET_LEN,
        })?;
        Ok(Self {
            ticket: Ticket::try_from(ticket)?,
            sig: fixed("ticket signature", &m.sig)?,
        })
    }
}

impl From<&TicketParams> for TicketParamsMsg {
    fn from(p: &TicketParams) -> Self {
        Self {
            recipient: p.recipient.as_bytes().to_vec(),
            face_value: p.face_value,
            win_prob: p.win_prob,
            recipient_rand_hash: p.recipient_rand_hash.to_vec(),
            seed: p.seed.to_vec(),
            expiration_round: p.expiration_round,
            price_per_unit: p.price_per_unit,
            price_per_byte: p.price_per_byte,
        }
    }
}

impl TryFrom<&TicketParamsMsg> for TicketParams {
    type Error = TicketError;

    fn try_from(m: &TicketParamsMsg) -> Result<Self, TicketError> {
        Ok(Self {
            recipient: id("params recipient", &m.recipient)?,
            face_value: m.face_value,
            win_prob: m.win_prob,
            recipient_rand_hash: fixed("recipient_rand_hash", &m.recipient_rand_hash)?,
            seed: fixed("params seed", &m.seed)?,
            expiration_round: m.expiration_round,
            price_per_unit: m.price_per_unit,
            price_per_byte: m.price_per_byte,
        })
    }
}

impl From<&super::WinningTicket> for WinningTicketMsg {
    fn from(w: &super::WinningTicket) -> Self {
        Self {
            ticket: Some(SignedTicketMsg::from(&w.ticket)),
            recipient_rand: w.recipient_rand.to_vec(),
        }
    }
}

impl TryFrom<&WinningTicketMsg> for super::WinningTicket {
    type Error = TicketError;

    fn try_from(m: &WinningTicketMsg) -> Result<Self, TicketError> {
        let ticket = m.ticket.as_ref().ok_or(TicketError::Malformed {
            field: "winning ticket",
            len: 0,
            expected: super::TICKET_LEN + 64,
        })?;
        Ok(Self {
            ticket: SignedTicket::try_from(ticket)?,
            recipient_rand: fixed("recipient_rand", &m.recipient_rand)?,
        })
    }
}

// Generated `dualrig.v1` forms, through the message forms above.

impl From<&TicketParams> for crate::v1::TicketParams {
    fn from(p: &TicketParams) -> Self {
        let m = TicketParamsMsg::from(p);
        Self {
            recipient: m.recipient,
            face_value: m.face_value,
            win_prob: m.win_prob,
            recipient_rand_hash: m.recipient_rand_hash,
            seed: m.seed,
            expiration_round: m.expiration_round,
            price_per_unit: m.price_per_unit,
            price_per_byte: m.price_per_byte,
        }
    }
}

impl TryFrom<&crate::v1::TicketParams> for TicketParams {
    type Error = TicketError;

    fn try_from(p: &crate::v1::TicketParams) -> Result<Self, TicketError> {
        TicketParams::try_from(&TicketParamsMsg {
            recipient: p.recipient.clone(),
            face_value: p.face_value,
            win_prob: p.win_prob,
            recipient_rand_hash: p.recipient_rand_hash.clone(),
            seed: p.seed.clone(),
            expiration_round: p.expiration_round,
            price_per_unit: p.price_per_unit,
            price_per_byte: p.price_per_byte,
        })
    }
}

impl From<&SignedTicket> for crate::v1::SignedTicket {
    fn from(s: &SignedTicket) -> Self {
        let t = TicketMsg::from(&s.ticket);
        Self {
            ticket: Some(crate::v1::Ticket {
                recipient: t.recipient,
                sender: t.sender,
                face_value: t.face_value,
                win_prob: t.win_prob,
                sender_nonce: t.sender_nonce,
                recipient_rand_hash: t.recipient_rand_hash,
                expiration_round: t.expiration_round,
            }),
            sig: s.sig.to_vec(),
        }
    }
}

impl TryFrom<&crate::v1::SignedTicket> for SignedTicket {
    type Error = TicketError;

    fn try_from(s: &crate::v1::SignedTicket) -> Result<Self, TicketError> {
        SignedTicket::try_from(&SignedTicketMsg {
            ticket: s.ticket.as_ref().map(|t| TicketMsg {
                recipient: t.recipient.clone(),
                sender: t.sender.clone(),
                face_value: t.face_value,
                win_prob: t.win_prob,
                sender_nonce: t.sender_nonce,
                recipient_rand_hash: t.recipient_rand_hash.clone(),
                expiration_round: t.expiration_round,
            }),
            sig: s.sig.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::ticket::{TicketTerms, TicketValidator, WinningTicket, win_prob_one_in};

    fn params() -> (Identity, TicketParams) {
        let worker = Identity::from_secret([1; 32]);
        let mut v = TicketValidator::new(worker.id(), [2; 32], 0);
        let p = v
            .issue(
                TicketTerms {
                    face_value: 1000,
                    win_prob: win_prob_one_in(3),
                    expiration_round: 9,
                    price_per_unit: 1,
                    price_per_byte: 0,
                },
                [3; 32],
            )
            .expect("issue");
        (worker, p)
    }

    #[test]
    fn every_form_round_trips() {
        let (_, p) = params();
        assert_eq!(TicketParams::try_from(&TicketParamsMsg::from(&p)), Ok(p));
        let client = Identity::from_secret([4; 32]);
        let signed = SignedTicket::sign(p.ticket(client.id(), 77), &client);
        let msg = SignedTicketMsg::from(&signed);
        assert_eq!(SignedTicket::try_from(&msg), Ok(signed));
        let w = WinningTicket {
            ticket: signed,
            recipient_rand: [5; 32],
        };
        assert_eq!(WinningTicket::try_from(&WinningTicketMsg::from(&w)), Ok(w));
    }

    #[test]
    fn malformed_messages_are_refused_by_field() {
        let (_, p) = params();
        let client = Identity::from_secret([4; 32]);
        let good = SignedTicketMsg::from(&SignedTicket::sign(p.ticket(client.id(), 1), &client));

        let mut short_sig = good.clone();
        short_sig.sig.pop();
        assert_eq!(
            SignedTicket::try_from(&short_sig),
            Err(TicketError::Malformed {
                field: "ticket signature",
                len: 63,
                expected: 64
            })
        );
        let mut no_ticket = good.clone();
        no_ticket.ticket = None;
        assert!(matches!(
            SignedTicket::try_from(&no_ticket),
            Err(TicketError::Malformed {
                field: "ticket",
                ..
            })
        ));
        let mut bad_hash = good.clone();
        if let Some(t) = bad_hash.ticket.as_mut() {
            t.recipient_rand_hash = vec![0; 31];
        }
        assert!(matches!(
            SignedTicket::try_from(&bad_hash),
            Err(TicketError::Malformed {
                field: "recipient_rand_hash",
                ..
            })
        ));
        let mut bad_id = good;
        if let Some(t) = bad_id.ticket.as_mut() {
            t.sender = vec![1; 33];
        }
        assert!(matches!(
            SignedTicket::try_from(&bad_id),
            Err(TicketError::Malformed {
                field: "ticket sender",
                ..
            })
        ));
    }
}
