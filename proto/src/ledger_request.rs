//! What an account signs to move its own funds: an operation in a canonical byte form, a nonce above the
//! last one the ledger accepted from it, and an ed25519 signature bound to this purpose.
//!
//! It lives beside the identity and ticket rules so clients build requests with exactly the code the
//! ledger checks them with.

use ed25519_dalek::{Signature, VerifyingKey};

use crate::identity::{Identity, PublicId};
use crate::ticket::{SignedTicket, TICKET_LEN, Ticket};

/// Key-derivation context of the digest an account signs for a ledger request.
pub const REQUEST_CONTEXT: &str = "dualrig 2026-11 ledger request v1";

/// Why a request's operation bytes do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("operation is empty")]
    Empty,
    #[error("unknown operation tag {0}")]
    UnknownTag(u8),
    #[error("operation {name} is {len} bytes; its encoding is {expected}")]
    Length {
        name: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("collective name is {len} bytes but its length byte says {declared}")]
    NameLength { declared: usize, len: usize },
    #[error("collective name is not UTF-8")]
    NameNotUtf8,
    #[error("proposal kind {0} is unknown; 1 pays an account from the SIP, 2 pays operators")]
    UnknownProposalKind(u8),
    #[error("proposal reason is {len} bytes but its length says {declared}")]
    ReasonLength { declared: usize, len: usize },
    #[error("proposal reason is not UTF-8")]
    ReasonNotUtf8,
    #[error("vote choice {0} is unknown; vote yes (1), no (2) or abstain (3)")]
    UnknownChoice(u8),
    #[error("signature is {len} bytes; an ed25519 signature is 64")]
    SignatureLength { len: usize },
    #[error(
        "request signature does not verify under account {account}; only an account's key moves its funds"
    )]
    BadSignature { account: PublicId },
}

/// A state change an account asks for. Amounts are base units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Balance → `to`'s balance.
    Transfer { to: PublicId, amount: u64 },
    /// Balance → self-stake of the signing worker.
    Bond { amount: u64 },
    /// Balance → stake delegated to `worker`.
    Delegate { worker: PublicId, amount: u64 },
    /// Stake on `worker` (the signer's own id for self-stake) → unbonding, released after
    /// `unbonding_rounds`.
    Unbond { worker: PublicId, amount: u64 },
    /// Released unbonding entries → balance.
    WithdrawUnbonded,
    /// Balance → deposit, which pays winning tickets.
    Deposit { amount: u64 },
    /// Balance → reserve, the guarantee behind the deposit.
    Reserve { amount: u64 },
    /// Starts the wait after which deposit and reserve can be withdrawn.
    Unlock,
    /// Stops an unlock; the funds stay put.
    CancelUnlock,
    /// Deposit and reserve → balance, once the unlock wait is over.
    Withdraw,
    /// Redeems a winning ticket made out to the signer.
    RedeemTicket {
        ticket: SignedTicket,
        recipient_rand: [u8; 32],
    },
    /// Creates collective `name` owned by the signer (PROTOCOL §2.5).
    CreateCollective {
        name: String,
        rules: CollectiveRules,
    },
    /// Adds blob `root` to the signer's collective `name`.
    AddToCollective { name: String, root: [u8; 32] },
    /// Balance → access stake locked in collective `name`; the signer becomes a member.
    JoinCollective { name: String },
    /// Ends the signer's membership of `name` at once; its access stake is released after
    /// `unbonding_rounds` and comes back with `WithdrawUnbonded`.
    LeaveCollective { name: String },
    /// Balance → the service infrastructure pool; mints mining weight bonded to `worker` at the pool's
    /// price (PROTOCOL §6.11), refused when that price is above `max_price_ppm` (units per unit of
    /// weight, in millionths; `u64::MAX` takes any price).
    BuyWeight {
        worker: PublicId,
        amount: u64,
        max_price_ppm: u64,
    },
    /// Puts a payment from the SIP to the stakeholders' vote, locking the proposal bond from the
    /// signer's balance (PROTOCOL §6.12).
    Propose { kind: ProposalKind, reason: String },
    /// Casts the signer's stake at the proposal's snapshot for `choice`.
    Vote { proposal: u64, choice: VoteChoice },
    /// Sends `share_ppm` of the signer's hosting rewards and transcode ticket redemptions to the
    /// capacity fund from the next round on (PROTOCOL §6.13); 0 opts out.
    SetRedirect { share_ppm: u32 },
}

/// What a passed proposal pays from the SIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalKind {
    /// `amount` to account `to`.
    Pay { to: PublicId, amount: u64 },
    /// `amount` shared among operators in proportion to their verified work over the last
    /// `window_rounds` rounds before execution.
    OperatorSupport { amount: u64, window_rounds: u64 },
}

/// A stakeholder's answer to a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteChoice {
    Yes,
    No,
    /// Counts toward quorum, not toward approval.
    Abstain,
}

impl VoteChoice {
    pub fn code(self) -> u8 {
        match self {
            Self::Yes => 1,
            Self::No => 2,
            Self::Abstain => 3,
        }
    }

    pub fn from_code(code: u8) -> Result<Self, RequestError> {
        match code {
            1 => Ok(Self::Yes),
            2 => Ok(Self::No),
            3 => Ok(Self::Abstain),
            other => Err(RequestError::UnknownChoice(other)),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Yes => "yes",
            Self::No => "no",
            Self::Abstain => "abstain",
        }
    }
}

impl std::str::FromStr for VoteChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "yes" => Ok(Self::Yes),
            "no" => Ok(Self::No),
            "abstain" => Ok(Self::Abstain),
            _ => Err(format!("'{text}' is not a vote; vote yes, no or abstain")),
        }
    }
}

/// What a collective asks of its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CollectiveRules {
    /// Units a member locks to join.
    pub access_stake: u64,
    /// Units per byte beyond the free bytes of a round.
    pub price_per_byte: u64,
    /// Bytes each member fetches free per ledger round.
    pub free_bytes_per_round: u64,
    /// Copies kept of each blob; 0: the coordinator's default.
    pub replicas: u32,
}

const RULES: usize = 8 + 8 + 8 + 4;

const AMOUNT: usize = 8;
const ID_AMOUNT: usize = 32 + 8;
const REDEEM: usize = TICKET_LEN + 64 + 32;
const BUY_WEIGHT: usize = 32 + 8 + 8;

impl Operation {
    fn tag(&self) -> u8 {
        match self {
            Self::Transfer { .. } => 1,
            Self::Bond { .. } => 2,
            Self::Delegate { .. } => 3,
            Self::Unbond { .. } => 4,
            Self::WithdrawUnbonded => 5,
            Self::Deposit { .. } => 6,
            Self::Reserve { .. } => 7,
            Self::Unlock => 8,
            Self::CancelUnlock => 9,
            Self::Withdraw => 10,
            Self::RedeemTicket { .. } => 11,
            Self::CreateCollective { .. } => 21,
            Self::AddToCollective { .. } => 22,
            Self::JoinCollective { .. } => 23,
            Self::LeaveCollective { .. } => 24,
            Self::BuyWeight { .. } => 25,
            Self::Propose { .. } => 35,
            Self::Vote { .. } => 36,
            Self::SetRedirect { .. } => 37,
        }
    }

    /// The canonical encoding: a tag byte, then fixed-width fields (ids raw, integers little-endian).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.tag()];
        match self {
            Self::Transfer { to: id, amount }
            | Self::Delegate { worker: id, amount }
            | Self::Unbond { worker: id, amount } => {
                out.extend_from_slice(id.as_bytes());
                out.extend_from_slice(&amount.to_le_bytes());
            }
            Self::Bond { amount } | Self::Deposit { amount } | Self::Reserve { amount } => {
                out.extend_from_slice(&amount.to_le_bytes());
            }
            Self::WithdrawUnbonded | Self::Unlock | Self::CancelUnlock | Self::Withdraw => {}
            Self::RedeemTicket {
                ticket,
                recipient_rand,
            } => {
                out.extend_from_slice(&ticket.ticket.bytes());
                out.extend_from_slice(&ticket.sig);
                out.extend_from_slice(recipient_rand);
            }
            Self::CreateCollective { name, rules } => {
                put_name(&mut out, name);
                out.extend_from_slice(&rules.access_stake.to_le_bytes());
                out.extend_from_slice(&rules.price_per_byte.to_le_bytes());
                out.extend_from_slice(&rules.free_bytes_per_round.to_le_bytes());
                out.extend_from_slice(&rules.replicas.to_le_bytes());
            }
            Self::AddToCollective { name, root } => {
                put_name(&mut out, name);
                out.extend_from_slice(root);
            }
            Self::JoinCollective { name } | Self::LeaveCollective { name } => {
                put_name(&mut out, name);
            }
            Self::BuyWeight {
                worker,
                amount,
                max_price_ppm,
            } => {
                out.extend_from_slice(worker.as_bytes());
                out.extend_from_slice(&amount.to_le_bytes());
                out.extend_from_slice(&max_price_ppm.to_le_bytes());
            }
            Self::Propose { kind, reason } => {
                match kind {
                    ProposalKind::Pay { to, amount } => {
                        out.push(1);
                        out.extend_from_slice(to.as_bytes());
                        out.extend_from_slice(&amount.to_le_bytes());
                    }
                    ProposalKind::OperatorSupport {
                        amount,
                        window_rounds,
                    } => {
                        out.push(2);
                        out.extend_from_slice(&amount.to_le_bytes());
                        out.extend_from_slice(&window_rounds.to_le_bytes());
                    }
                }
                // The ledger refuses reasons above `MAX_REASON`; a longer one is cut to what the
                // length prefix can say, and refused there.
                let bytes = &reason.as_bytes()[..reason.len().min(usize::from(u16::MAX))];
                out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
                out.extend_from_slice(bytes);
            }
            Self::Vote { proposal, choice } => {
                out.extend_from_slice(&proposal.to_le_bytes());
                out.push(choice.code());
            }
            Self::SetRedirect { share_ppm } => {
                out.extend_from_slice(&share_ppm.to_le_bytes());
            }
        }
        out
    }

    /// Decodes [`Operation::encode`], refusing trailing or missing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, RequestError> {
        let (&tag, body) = bytes.split_first().ok_or(RequestError::Empty)?;
        let sized = |name: &'static str, expected: usize| {
            if body.len() == expected {
                Ok(body)
            } else {
                Err(RequestError::Length {
                    name,
                    len: body.len(),
                    expected,
                })
            }
        };
        let id_amount =
            |name| sized(name, ID_AMOUNT).map(|b| (PublicId(array(&b[..32])), u64_le(&b[32..])));
        let amount = |name| sized(name, AMOUNT).map(u64_le);
        let bare = |name, op| sized(name, 0).map(|_| op);
        Ok(match tag {
            1 => {
                let (to, amount) = id_amount("transfer")?;
                Self::Transfer { to, amount }
            }
            2 => Self::Bond {
                amount: amount("bond")?,
            },
            3 => {
                let (worker, amount) = id_amount("delegate")?;
                Self::Delegate { worker, amount }
            }
            4 => {
                let (worker, amount) = id_amount("unbond")?;
                Self::Unbond { worker, amount }
            }
            5 => bare("withdraw_unbonded", Self::WithdrawUnbonded)?,
            6 => Self::Deposit {
                amount: amount("deposit")?,
            },
            7 => Self::Reserve {
                amount: amount("reserve")?,
            },
            8 => bare("unlock", Self::Unlock)?,
            9 => bare("cancel_unlock", Self::CancelUnlock)?,
            10 => bare("withdraw", Self::Withdraw)?,
            11 => {
                let b = sized("redeem_ticket", REDEEM)?;
                Self::RedeemTicket {
                    ticket: SignedTicket {
                        ticket: Ticket::from_bytes(&array(&b[..TICKET_LEN])),
                        sig: array(&b[TICKET_LEN..TICKET_LEN + 64]),
                    },
                    recipient_rand: array(&b[TICKET_LEN + 64..]),
                }
            }
            21..=24 => {
                let (name, rest) = take_name(body)?;
                let sized_rest = |op: &'static str, expected: usize| {
                    if rest.len() == expected {
                        Ok(rest)
                    } else {
                        Err(RequestError::Length {
                            name: op,
                            len: body.len(),
                            expected: body.len() - rest.len() + expected,
                        })
                    }
                };
                match tag {
                    21 => {
                        let b = sized_rest("create_collective", RULES)?;
                        Self::CreateCollective {
                            name,
                            rules: CollectiveRules {
                                access_stake: u64_le(&b[..8]),
                                price_per_byte: u64_le(&b[8..16]),
                                free_bytes_per_round: u64_le(&b[16..24]),
                                replicas: u32::from_le_bytes(array(&b[24..])),
                            },
                        }
                    }
                    22 => Self::AddToCollective {
                        name,
                        root: array(sized_rest("add_to_collective", 32)?),
                    },
                    23 => {
                        sized_rest("join_collective", 0)?;
                        Self::JoinCollective { name }
                    }
                    _ => {
                        sized_rest("leave_collective", 0)?;
                        Self::LeaveCollective { name }
                    }
                }
            }
            25 => {
                let b = sized("buy_weight", BUY_WEIGHT)?;
                Self::BuyWeight {
                    worker: PublicId(array(&b[..32])),
                    amount: u64_le(&b[32..40]),
                    max_price_ppm: u64_le(&b[40..]),
                }
            }
            35 => decode_propose(body)?,
            36 => {
                let b = sized("vote", VOTE)?;
                Self::Vote {
                    proposal: u64_le(&b[..8]),
                    choice: VoteChoice::from_code(b[8])?,
                }
            }
            37 => Self::SetRedirect {
                share_ppm: u32::from_le_bytes(array(sized("set_redirect", 4)?)),
            },
            other => return Err(RequestError::UnknownTag(other)),
        })
    }
}

const VOTE: usize = 8 + 1;

/// A proposal's body: the kind byte and its fields, then the reason as a u16 LE length and UTF-8.
fn decode_propose(body: &[u8]) -> Result<Operation, RequestError> {
    let short = |expected: usize| RequestError::Length {
        name: "propose",
        len: body.len(),
        expected,
    };
    let (&kind, rest) = body.split_first().ok_or(short(1))?;
    let fields = match kind {
        1 => ID_AMOUNT,
        2 => 16,
        other => return Err(RequestError::UnknownProposalKind(other)),
    };
    if rest.len() < fields + 2 {
        return Err(short(1 + fields + 2));
    }
    let (f, rest) = rest.split_at(fields);
    let kind = if kind == 1 {
        ProposalKind::Pay {
            to: PublicId(array(&f[..32])),
            amount: u64_le(&f[32..]),
        }
    } else {
        ProposalKind::OperatorSupport {
            amount: u64_le(&f[..8]),
            window_rounds: u64_le(&f[8..]),
        }
    };
    let (len, text) = rest.split_at(2);
    let declared = usize::from(u16::from_le_bytes(array(len)));
    if text.len() != declared {
        return Err(RequestError::ReasonLength {
            declared,
            len: text.len(),
        });
    }
    let reason = std::str::from_utf8(text).map_err(|_| RequestError::ReasonNotUtf8)?;
    Ok(Operation::Propose {
        kind,
        reason: reason.to_owned(),
    })
}

/// A name as a length byte and its bytes. Names the ledger accepts are at most 64 bytes; a longer one
/// is cut to 255 here and refused by the ledger's name check.
fn put_name(out: &mut Vec<u8>, name: &str) {
    let bytes = &name.as_bytes()[..name.len().min(255)];
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

fn take_name(body: &[u8]) -> Result<(String, &[u8]), RequestError> {
    let (&len, rest) = body.split_first().ok_or(RequestError::Length {
        name: "collective operation",
        len: 0,
        expected: 1,
    })?;
    let len = usize::from(len);
    if rest.len() < len {
        return Err(RequestError::NameLength {
            declared: len,
            len: rest.len(),
        });
    }
    let name = std::str::from_utf8(&rest[..len]).map_err(|_| RequestError::NameNotUtf8)?;
    Ok((name.to_owned(), &rest[len..]))
}

/// Callers pass exactly `N` bytes (lengths are checked before).
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

fn u64_le(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(array(bytes))
}

/// The digest an account signs: `blake3 derive_key(REQUEST_CONTEXT, account ‖ nonce LE ‖ operation)`.
/// Account and nonce have fixed widths, so the operation bytes are unambiguous.
pub fn request_message(account: &PublicId, nonce: u64, operation: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(REQUEST_CONTEXT);
    hasher.update(account.as_bytes());
    hasher.update(&nonce.to_le_bytes());
    hasher.update(operation);
    *hasher.finalize().as_bytes()
}

/// An operation signed by the account it acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    pub account: PublicId,
    pub nonce: u64,
    /// [`Operation::encode`]d bytes, signed as they travel.
    pub operation: Vec<u8>,
    pub sig: [u8; 64],
}

impl SignedRequest {
    /// Signs `operation` as `identity` with `nonce`, which must be above the account's last.
    pub fn sign(identity: &Identity, nonce: u64, operation: &Operation) -> Self {
        let account = identity.id();
        let operation = operation.encode();
        let sig = identity.sign(&request_message(&account, nonce, &operation));
        Self {
            account,
            nonce,
            operation,
            sig,
        }
    }

    /// Builds a request from wire parts, checking the signature's length.
    pub fn from_parts(
        account: PublicId,
        nonce: u64,
        operation: Vec<u8>,
        sig: &[u8],
    ) -> Result<Self, RequestError> {
        let sig = sig
            .try_into()
            .map_err(|_| RequestError::SignatureLength { len: sig.len() })?;
        Ok(Self {
            account,
            nonce,
            operation,
            sig,
        })
    }

    /// Checks the signature (strictly: no small-order keys, canonical signatures only) and decodes the
    /// operation. The nonce is the ledger's to check.
    pub fn verify(&self) -> Result<Operation, RequestError> {
        let bad = || RequestError::BadSignature {
            account: self.account,
        };
        let key = VerifyingKey::from_bytes(self.account.as_bytes()).map_err(|_| bad())?;
        let message = request_message(&self.account, self.nonce, &self.operation);
        key.verify_strict(&message, &Signature::from_bytes(&self.sig))
            .map_err(|_| bad())?;
        Operation::decode(&self.operation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_operation() -> Vec<Operation> {
        let id = PublicId([7; 32]);
        let ticket = Ticket {
            recipient: id,
            sender: PublicId([8; 32]),
            face_value: 1,
            win_prob: 2,
            sender_nonce: 3,
            recipient_rand_hash: [4; 32],
            expiration_round: 5,
        };
        vec![
            Operation::Transfer { to: id, amount: 1 },
            Operation::Bond { amount: 2 },
            Operation::Delegate {
                worker: id,
                amount: 3,
            },
            Operation::Unbond {
                worker: id,
                amount: 4,
            },
            Operation::WithdrawUnbonded,
            Operation::Deposit { amount: 5 },
            Operation::Reserve { amount: 6 },
            Operation::Unlock,
            Operation::CancelUnlock,
            Operation::Withdraw,
            Operation::RedeemTicket {
                ticket: SignedTicket {
                    ticket,
                    sig: [9; 64],
                },
                recipient_rand: [10; 32],
            },
            Operation::CreateCollective {
                name: "films".into(),
                rules: CollectiveRules {
                    access_stake: 11,
                    price_per_byte: 12,
                    free_bytes_per_round: 13,
                    replicas: 14,
                },
            },
            Operation::AddToCollective {
                name: "films".into(),
                root: [15; 32],
            },
            Operation::JoinCollective {
                name: "films".into(),
            },
            Operation::LeaveCollective { name: "x".into() },
            Operation::BuyWeight {
                worker: id,
                amount: 16,
                max_price_ppm: 17,
            },
            Operation::Propose {
                kind: ProposalKind::Pay { to: id, amount: 16 },
                reason: "a relay in Lagos".into(),
            },
            Operation::Propose {
                kind: ProposalKind::OperatorSupport {
                    amount: 17,
                    window_rounds: 18,
                },
                reason: String::new(),
            },
            Operation::Vote {
                proposal: 19,
                choice: VoteChoice::Abstain,
            },
            Operation::SetRedirect { share_ppm: 20 },
        ]
    }

    #[test]
    fn every_operation_round_trips_and_refuses_extra_or_missing_bytes() {
        for op in every_operation() {
            let bytes = op.encode();
            assert_eq!(Operation::decode(&bytes), Ok(op.clone()));
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(matches!(
                Operation::decode(&longer),
                Err(RequestError::Length { .. } | RequestError::ReasonLength { .. })
            ));
            if bytes.len() > 1 {
                assert!(matches!(
                    Operation::decode(&bytes[..bytes.len() - 1]),
                    Err(RequestError::Length { .. }
                        | RequestError::NameLength { .. }
                        | RequestError::ReasonLength { .. })
                ));
            }
        }
        assert_eq!(Operation::decode(&[]), Err(RequestError::Empty));
        assert_eq!(Operation::decode(&[0]), Err(RequestError::UnknownTag(0)));
        assert_eq!(Operation::decode(&[12]), Err(RequestError::UnknownTag(12)));
        assert_eq!(Operation::decode(&[26]), Err(RequestError::UnknownTag(26)));
        assert_eq!(
            Operation::decode(&[23, 5, b'a']),
            Err(RequestError::NameLength {
                declared: 5,
                len: 1
            })
        );
        assert_eq!(
            Operation::decode(&[23, 1, 0xff]),
            Err(RequestError::NameNotUtf8)
        );
    }

    #[test]
    fn governance_operations_refuse_unknown_kinds_choices_and_bad_reasons() {
        assert_eq!(Operation::decode(&[34]), Err(RequestError::UnknownTag(34)));
        assert_eq!(Operation::decode(&[38]), Err(RequestError::UnknownTag(38)));
        let mut vote = Operation::Vote {
            proposal: 1,
            choice: VoteChoice::Yes,
        }
        .encode();
        *vote.last_mut().expect("choice byte") = 4;
        assert_eq!(
            Operation::decode(&vote),
            Err(RequestError::UnknownChoice(4))
        );
        let mut propose = Operation::Propose {
            kind: ProposalKind::OperatorSupport {
                amount: 1,
                window_rounds: 1,
            },
            reason: "ab".into(),
        }
        .encode();
        propose[1] = 3;
        assert_eq!(
            Operation::decode(&propose),
            Err(RequestError::UnknownProposalKind(3))
        );
        propose[1] = 2;
        let last = propose.len() - 1;
        propose[last] = 0xff;
        assert_eq!(
            Operation::decode(&propose),
            Err(RequestError::ReasonNotUtf8)
        );
        assert_eq!("Abstain".parse(), Ok(VoteChoice::Abstain));
        assert!("maybe".parse::<VoteChoice>().is_err());
    }

    #[test]
    fn signature_binds_account_nonce_and_operation() {
        let alice = Identity::from_secret([1; 32]);
        let bob = Identity::from_secret([2; 32]);
        let op = Operation::Transfer {
            to: bob.id(),
            amount: 10,
        };
        let req = SignedRequest::sign(&alice, 1, &op);
        assert_eq!(req.verify().expect("honest"), op);

        let mut other_nonce = req.clone();
        other_nonce.nonce = 2;
        let mut other_op = req.clone();
        other_op.operation = Operation::Transfer {
            to: bob.id(),
            amount: 11,
        }
        .encode();
        let mut stolen = SignedRequest::sign(&bob, 1, &op);
        stolen.account = alice.id();
        for bad in [other_nonce, other_op, stolen] {
            assert!(matches!(
                bad.verify(),
                Err(RequestError::BadSignature { .. })
            ));
        }
    }

    #[test]
    fn wire_signature_length_is_checked() {
        assert_eq!(
            SignedRequest::from_parts(PublicId([1; 32]), 1, vec![5], &[0; 63]),
            Err(RequestError::SignatureLength { len: 63 })
        );
    }
}
