//! Probabilistic micropayment tickets (PROTOCOL §3): the ticket and its 128-byte encoding, the sender's
//! signature, the win rule, expected values, and the params a recipient publishes.
//!
//! A client pays for a job with tickets whose expected values add up to what the job owes; the worker
//! checks them with a [`TicketValidator`] and redeems the few that win at the coordinator's ledger. The
//! client side builds tickets with a [`TicketPayer`]. [`wire`] holds the message forms.

mod payer;
mod status;
mod validator;
mod verify;
pub mod wire;

use ed25519_dalek::{Signature, VerifyingKey};

use crate::identity::{Identity, PublicId};

pub use payer::TicketPayer;
pub use validator::{Accepted, RefusedTicket, TicketValidator, WinningTicket};

/// Key-derivation context of `ticket_hash`, the digest a sender signs.
pub const TICKET_CONTEXT: &str = "dualrig 2026-11 ticket v1";

/// Length of [`Ticket::bytes`].
pub const TICKET_LEN: usize = 128;

/// Most tickets one payment may carry: bounds the signatures a recipient checks for one job.
pub const MAX_TICKETS_PER_PAYMENT: usize = 4096;

/// Why a ticket, a payment or a redemption is refused. Each rejection has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("ticket signature does not verify under its sender {sender}: forged or corrupted")]
    ForgedSignature { sender: PublicId },
    #[error("ticket is made out to {got}, not to this recipient {expected}")]
    WrongRecipient { expected: PublicId, got: PublicId },
    #[error("sender {sender} already used nonce {nonce} under ticket params {params}")]
    ReplayedNonce {
        sender: PublicId,
        nonce: u64,
        params: String,
    },
    #[error("ticket expired at round {expiration_round}; the current round is {current_round}")]
    Expired {
        expiration_round: u64,
        current_round: u64,
    },
    #[error("ticket params {params} were retired after a win; ask the recipient for new params")]
    RetiredParams { params: String },
    #[error("ticket params {params} were not issued by this recipient (or have expired)")]
    UnknownParams { params: String },
    #[error("ticket {field} is {got} but params {params} say {expected}")]
    TermsMismatch {
        params: String,
        field: &'static str,
        got: u64,
        expected: u64,
    },
    #[error("tickets are worth {offered} units in expectation; the job owes {owed}")]
    EvShort { offered: u64, owed: u64 },
    #[error("no tickets attached to a job of {units} units")]
    NoTickets { units: u64 },
    #[error(
        "{count} tickets in one payment; at most {limit} are accepted (raise face_value instead)"
    )]
    TooManyTickets { count: u64, limit: usize },
    #[error("{what} does not fit in a u64")]
    Overflow { what: &'static str },
    #[error("recipient_rand does not hash to the ticket's recipient_rand_hash")]
    RandMismatch,
    #[error("ticket does not win; only winning tickets are redeemed")]
    NotWinning,
    #[error(
        "ticket params {params} are worth nothing in expectation (face value × win_prob < 2^64)"
    )]
    ZeroExpectedValue { params: String },
    #[error("ticket params {params} were issued before; every params needs a fresh seed")]
    ReusedSeed { params: String },
    #[error("{field} is not a valid ed25519 public key")]
    InvalidId { field: &'static str },
    #[error("{field} is {len} bytes; expected {expected}")]
    Malformed {
        field: &'static str,
        len: usize,
        expected: usize,
    },
}

/// Short printable label of a params' `recipient_rand_hash`, for messages and logs.
pub fn params_label(recipient_rand_hash: &[u8; 32]) -> String {
    hex::encode(&recipient_rand_hash[..8])
}

/// `win_prob` for a chance of one in `n`: `floor(2^64 / n)`, saturated to `u64::MAX` for `n = 1`;
/// `n = 0` gives 0, a ticket that never wins.
pub const fn win_prob_one_in(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let p = (1u128 << 64) / n as u128;
    if p > u64::MAX as u128 {
        u64::MAX
    } else {
        p as u64
    }
}

/// The recipient's secret for one params: `blake3 keyed(recipient_secret, seed)`, so a recipient stores
/// nothing per params beyond the seed it published.
pub fn recipient_rand(recipient_secret: &[u8; 32], seed: &[u8; 32]) -> [u8; 32] {
    *blake3::keyed_hash(recipient_secret, seed).as_bytes()
}

/// The commitment to a `recipient_rand` that tickets carry: `blake3(recipient_rand)`.
pub fn recipient_rand_hash(recipient_rand: &[u8; 32]) -> [u8; 32] {
    *blake3::hash(recipient_rand).as_bytes()
}

/// One ticket, exactly the fields of PROTOCOL §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket {
    pub recipient: PublicId,
    pub sender: PublicId,
    pub face_value: u64,
    pub win_prob: u64,
    pub sender_nonce: u64,
    pub recipient_rand_hash: [u8; 32],
    pub expiration_round: u64,
}

impl Ticket {
    /// The 128-byte encoding: recipient ‖ sender ‖ face_value ‖ win_prob ‖ sender_nonce ‖
    /// recipient_rand_hash ‖ expiration_round, integers little-endian.
    pub fn bytes(&self) -> [u8; TICKET_LEN] {
        let mut out = [0u8; TICKET_LEN];
        out[0..32].copy_from_slice(self.recipient.as_bytes());
        out[32..64].copy_from_slice(self.sender.as_bytes());
        out[64..72].copy_from_slice(&self.face_value.to_le_bytes());
        out[72..80].copy_from_slice(&self.win_prob.to_le_bytes());
        out[80..88].copy_from_slice(&self.sender_nonce.to_le_bytes());
        out[88..120].copy_from_slice(&self.recipient_rand_hash);
        out[120..128].copy_from_slice(&self.expiration_round.to_le_bytes());
        out
    }

    /// Decodes [`Ticket::bytes`]. Ids are not checked here; a bad sender id fails signature checks.
    pub fn from_bytes(bytes: &[u8; TICKET_LEN]) -> Self {
        let id = |at: usize| {
            let mut a = [0u8; 32];
            a.copy_from_slice(&bytes[at..at + 32]);
            a
        };
        let int = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(a)
        };
        Self {
            recipient: PublicId(id(0)),
            sender: PublicId(id(32)),
            face_value: int(64),
            win_prob: int(72),
            sender_nonce: int(80),
            recipient_rand_hash: id(88),
            expiration_round: int(120),
        }
    }

    /// `blake3 derive_key("dualrig 2026-11 ticket v1", bytes)`: what the sender signs and the ledger's
    /// unique key for redemption.
    pub fn ticket_hash(&self) -> [u8; 32] {
        // The context's key is derived once per process, not once per ticket.
        static CONTEXT_HASHER: std::sync::LazyLock<blake3::Hasher> =
            std::sync::LazyLock::new(|| blake3::Hasher::new_derive_key(TICKET_CONTEXT));
        let mut hasher = CONTEXT_HASHER.clone();
        hasher.update(&self.bytes());
        *hasher.finalize().as_bytes()
    }

    /// `face_value × win_prob / 2^64`, rounded down, computed exactly in 128-bit integers. Every side
    /// sums these floors, so a payer and a recipient always agree on what a payment is worth.
    pub fn expected_value(&self) -> u64 {
        expected_value(self.face_value, self.win_prob)
    }

    /// `u64::from_le_bytes(blake3(sig ‖ recipient_rand)[0..8]) < win_prob`.
    pub fn wins(&self, sig: &[u8; 64], recipient_rand: &[u8; 32]) -> bool {
        let mut hasher = blake3::Hasher::new();
        hasher.update(sig);
        hasher.update(recipient_rand);
        let digest = hasher.finalize();
        let mut head = [0u8; 8];
        head.copy_from_slice(&digest.as_bytes()[..8]);
        u64::from_le_bytes(head) < self.win_prob
    }

    /// A ticket may be accepted and redeemed through its expiration round, not after.
    pub fn is_expired(&self, current_round: u64) -> bool {
        current_round > self.expiration_round
    }

    /// [`Self::is_expired`] as the refusal every side gives.
    pub fn check_live(&self, current_round: u64) -> Result<(), TicketError> {
        if self.is_expired(current_round) {
            return Err(TicketError::Expired {
                expiration_round: self.expiration_round,
                current_round,
            });
        }
        Ok(())
    }
}

/// `face_value × win_prob / 2^64`, rounded down; the product of two u64 always fits in a u128 and the
/// quotient always fits in a u64.
pub fn expected_value(face_value: u64, win_prob: u64) -> u64 {
    let scaled = u128::from(face_value) * u128::from(win_prob);
    // The shift leaves at most 64 significant bits.
    (scaled >> 64) as u64
}

/// A surge multiplier of ×1, in parts per million (PROTOCOL §6.8).
pub const SURGE_UNIT_PPM: u32 = 1_000_000;

/// `price × multiplier_ppm / 10^6`, rounded up, so a multiplier above ×1 never rounds a price down:
/// what a hot blob's download owes per byte (PROTOCOL §6.8).
pub fn surged_price(price: u64, multiplier_ppm: u32) -> u64 {
    let scaled = u128::from(price) * u128::from(multiplier_ppm);
    u64::try_from(scaled.div_ceil(u128::from(SURGE_UNIT_PPM))).unwrap_or(u64::MAX)
}

/// A ticket with its sender's ed25519 signature over [`Ticket::ticket_hash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignedTicket {
    pub ticket: Ticket,
    pub sig: [u8; 64],
}

impl SignedTicket {
    /// Signs `ticket` with `sender`'s key. The signature only verifies when `sender` is the ticket's
    /// `sender` field.
    pub fn sign(ticket: Ticket, sender: &Identity) -> Self {
        let sig = sender.sign(&ticket.ticket_hash());
        Self { ticket, sig }
    }

    pub fn ticket_hash(&self) -> [u8; 32] {
        self.ticket.ticket_hash()
    }

    /// Checks the signature under the ticket's sender, refusing small-order keys and non-canonical
    /// signatures so nobody can sign for a key without its secret.
    pub fn verify(&self) -> Result<(), TicketError> {
        self.verify_with(&self.sender_key()?)
    }

    /// The sender's key, decompressed (a caller checking many tickets from one sender keeps it).
    pub fn sender_key(&self) -> Result<VerifyingKey, TicketError> {
        VerifyingKey::from_bytes(self.ticket.sender.as_bytes()).map_err(|_| {
            TicketError::ForgedSignature {
                sender: self.ticket.sender,
            }
        })
    }

    /// [`Self::verify`] under `key`, which must be [`Self::sender_key`]'s.
    pub fn verify_with(&self, key: &VerifyingKey) -> Result<(), TicketError> {
        debug_assert_eq!(key.as_bytes(), self.ticket.sender.as_bytes());
        key.verify_strict(&self.ticket_hash(), &Signature::from_bytes(&self.sig))
            .map_err(|_| TicketError::ForgedSignature {
                sender: self.ticket.sender,
            })
    }

    pub fn wins(&self, recipient_rand: &[u8; 32]) -> bool {
        self.ticket.wins(&self.sig, recipient_rand)
    }

    /// The checks of a claim on this ticket that need no ledger state, in PROTOCOL §3's order:
    /// `redeemer` is the recipient, `recipient_rand` matches its commitment, the sender signed, and the
    /// ticket wins. The ledger runs them before its transaction, the worker before it queues a winner.
    pub fn check_claim(
        &self,
        redeemer: &PublicId,
        recipient_rand: &[u8; 32],
    ) -> Result<(), TicketError> {
        if *redeemer != self.ticket.recipient {
            return Err(TicketError::WrongRecipient {
                expected: *redeemer,
                got: self.ticket.recipient,
            });
        }
        if recipient_rand_hash(recipient_rand) != self.ticket.recipient_rand_hash {
            return Err(TicketError::RandMismatch);
        }
        self.verify()?;
        if !self.wins(recipient_rand) {
            return Err(TicketError::NotWinning);
        }
        Ok(())
    }

    /// Every check a redemption makes before anything is paid: [`Ticket::check_live`] at
    /// `current_round`, then [`Self::check_claim`]. (Uniqueness is the ledger's.)
    pub fn check_redeemable(
        &self,
        redeemer: &PublicId,
        recipient_rand: &[u8; 32],
        current_round: u64,
    ) -> Result<(), TicketError> {
        self.ticket.check_live(current_round)?;
        self.check_claim(redeemer, recipient_rand)
    }
}

/// The terms a recipient chooses for a batch of tickets, before a seed makes them params.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketTerms {
    pub face_value: u64,
    pub win_prob: u64,
    pub expiration_round: u64,
    /// Price of one unit of transcoding work (an output pixel).
    pub price_per_unit: u64,
    /// Price of one byte served to a paid download.
    pub price_per_byte: u64,
}

/// Which price a payment is held to: output pixels of a transcode, bytes of a download at the params'
/// price, or bytes at a price the request's terms set instead (a collective's, PROTOCOL §6.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    PerUnit,
    PerByte,
    Fixed(u64),
}

/// What a recipient publishes through the coordinator so senders can pay it (PROTOCOL §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TicketParams {
    pub recipient: PublicId,
    pub face_value: u64,
    pub win_prob: u64,
    pub recipient_rand_hash: [u8; 32],
    pub seed: [u8; 32],
    pub expiration_round: u64,
    pub price_per_unit: u64,
    pub price_per_byte: u64,
}

impl TicketParams {
    /// Params for `terms` under `recipient_secret` and `seed`.
    pub fn derive(
        recipient: PublicId,
        recipient_secret: &[u8; 32],
        seed: [u8; 32],
        terms: TicketTerms,
    ) -> Self {
        Self {
            recipient,
            face_value: terms.face_value,
            win_prob: terms.win_prob,
            recipient_rand_hash: recipient_rand_hash(&recipient_rand(recipient_secret, &seed)),
            seed,
            expiration_round: terms.expiration_round,
            price_per_unit: terms.price_per_unit,
            price_per_byte: terms.price_per_byte,
        }
    }

    pub fn label(&self) -> String {
        params_label(&self.recipient_rand_hash)
    }

    /// `price_per_unit × units`, or an overflow error.
    pub fn amount_owed(&self, units: u64) -> Result<u64, TicketError> {
        self.price_per_unit
            .checked_mul(units)
            .ok_or(TicketError::Overflow {
                what: "price_per_unit × units",
            })
    }

    /// The price these params ask at `rate`.
    pub fn price(&self, rate: Rate) -> u64 {
        match rate {
            Rate::PerUnit => self.price_per_unit,
            Rate::PerByte => self.price_per_byte,
            Rate::Fixed(price) => price,
        }
    }

    /// `price(rate) × units`, or an overflow error.
    pub fn amount_owed_at(&self, rate: Rate, units: u64) -> Result<u64, TicketError> {
        self.price(rate)
            .checked_mul(units)
            .ok_or(TicketError::Overflow {
                what: "price × units",
            })
    }

    /// Expected value of one ticket under these params.
    pub fn expected_value(&self) -> u64 {
        expected_value(self.face_value, self.win_prob)
    }

    /// The unsigned ticket `sender` makes under these params with `sender_nonce`.
    pub fn ticket(&self, sender: PublicId, sender_nonce: u64) -> Ticket {
        Ticket {
            recipient: self.recipient,
            sender,
            face_value: self.face_value,
            win_prob: self.win_prob,
            sender_nonce,
            recipient_rand_hash: self.recipient_rand_hash,
            expiration_round: self.expiration_round,
        }
    }
}

#[cfg(test)]
mod payment_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Ticket {
        Ticket {
            recipient: PublicId([1; 32]),
            sender: PublicId([2; 32]),
            face_value: 0x0102_0304_0506_0708,
            win_prob: 0x1112_1314_1516_1718,
            sender_nonce: 0x2122_2324_2526_2728,
            recipient_rand_hash: [3; 32],
            expiration_round: 0x3132_3334_3536_3738,
        }
    }

    #[test]
    fn ticket_bytes_follow_the_design_layout() {
        let t = sample();
        let b = t.bytes();
        assert_eq!(&b[0..32], &[1; 32]);
        assert_eq!(&b[32..64], &[2; 32]);
        assert_eq!(&b[64..72], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(
            &b[72..80],
            &[0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11]
        );
        assert_eq!(
            &b[80..88],
            &[0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21]
        );
        assert_eq!(&b[88..120], &[3; 32]);
        assert_eq!(
            &b[120..128],
            &[0x38, 0x37, 0x36, 0x35, 0x34, 0x33, 0x32, 0x31]
        );
        assert_eq!(Ticket::from_bytes(&b), t);
    }

    #[test]
    fn ticket_hash_is_the_derive_key_of_the_bytes() {
        let t = sample();
        let mut h = blake3::Hasher::new_derive_key("dualrig 2026-11 ticket v1");
        h.update(&t.bytes());
        assert_eq!(t.ticket_hash(), *h.finalize().as_bytes());
        let mut other = t;
        other.sender_nonce += 1;
        assert_ne!(other.ticket_hash(), t.ticket_hash());
    }

    #[test]
    fn expected_value_is_exact_and_never_overflows() {
        assert_eq!(expected_value(u64::MAX, u64::MAX), u64::MAX - 1);
        assert_eq!(expected_value(1 << 20, 1 << 63), 1 << 19);
        assert_eq!(expected_value(0, u64::MAX), 0);
        assert_eq!(expected_value(50_000, win_prob_one_in(50)), 999);
        assert_eq!(expected_value(1 << 40, win_prob_one_in(2)), 1 << 39);
    }

    #[test]
    fn win_prob_one_in_edges() {
        assert_eq!(win_prob_one_in(0), 0);
        assert_eq!(win_prob_one_in(1), u64::MAX);
        assert_eq!(win_prob_one_in(2), 1 << 63);
        assert_eq!(win_prob_one_in(50), ((1u128 << 64) / 50) as u64);
    }

    #[test]
    fn wins_compares_the_first_eight_bytes_little_endian() {
        let t = sample();
        let sig = [9u8; 64];
        let rand = [4u8; 32];
        let mut h = blake3::Hasher::new();
        h.update(&sig);
        h.update(&rand);
        let mut head = [0u8; 8];
        head.copy_from_slice(&h.finalize().as_bytes()[..8]);
        let draw = u64::from_le_bytes(head);
        let at = |win_prob| Ticket { win_prob, ..t }.wins(&sig, &rand);
        assert!(!at(draw));
        assert!(at(draw + 1));
        assert!(!at(0));
    }

    #[test]
    fn signature_verifies_only_under_the_sender() {
        let sender = Identity::from_secret([5; 32]);
        let mut t = sample();
        t.sender = sender.id();
        let signed = SignedTicket::sign(t, &sender);
        signed.verify().expect("honest ticket");

        let impostor = Identity::from_secret([6; 32]);
        let forged = SignedTicket::sign(t, &impostor);
        assert_eq!(
            forged.verify(),
            Err(TicketError::ForgedSignature { sender: t.sender })
        );
        let mut tampered = signed;
        tampered.ticket.face_value += 1;
        assert!(matches!(
            tampered.verify(),
            Err(TicketError::ForgedSignature { .. })
        ));
    }

    #[test]
    fn small_order_sender_keys_are_refused() {
        // The identity point: under a lax check any signature with R = identity, s = 0 verifies.
        let mut identity_point = [0u8; 32];
        identity_point[0] = 1;
        let mut t = sample();
        t.sender = PublicId(identity_point);
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&identity_point);
        let signed = SignedTicket { ticket: t, sig };
        assert!(matches!(
            signed.verify(),
            Err(TicketError::ForgedSignature { .. })
        ));
    }

    #[test]
    fn recipient_rand_is_keyed_by_the_secret_and_committed_by_its_hash() {
        let secret = [7u8; 32];
        let seed = [8u8; 32];
        let rand = recipient_rand(&secret, &seed);
        assert_eq!(rand, *blake3::keyed_hash(&secret, &seed).as_bytes());
        assert_ne!(rand, recipient_rand(&[9; 32], &seed));
        assert_eq!(recipient_rand_hash(&rand), *blake3::hash(&rand).as_bytes());
        let params = TicketParams::derive(
            PublicId([1; 32]),
            &secret,
            seed,
            TicketTerms {
                face_value: 10,
                win_prob: 1,
                expiration_round: 3,
                price_per_unit: 2,
                price_per_byte: 0,
            },
        );
        assert_eq!(params.recipient_rand_hash, recipient_rand_hash(&rand));
    }

    #[test]
    fn amount_owed_overflow_is_an_error() {
        let params = TicketParams {
            recipient: PublicId([1; 32]),
            face_value: 1,
            win_prob: 1,
            recipient_rand_hash: [0; 32],
            seed: [0; 32],
            expiration_round: 0,
            price_per_unit: u64::MAX / 2 + 1,
            price_per_byte: 0,
        };
        assert_eq!(params.amount_owed(1), Ok(u64::MAX / 2 + 1));
        assert!(matches!(
            params.amount_owed(2),
            Err(TicketError::Overflow { .. })
        ));
    }

    #[test]
    fn redeemable_checks_expiry_commitment_signature_and_win() {
        let sender = Identity::from_secret([5; 32]);
        let secret = [7u8; 32];
        let seed = [8u8; 32];
        let rand = recipient_rand(&secret, &seed);
        let mut t = sample();
        t.sender = sender.id();
        t.recipient_rand_hash = recipient_rand_hash(&rand);
        t.expiration_round = 10;
        t.win_prob = u64::MAX;
        let signed = SignedTicket::sign(t, &sender);
        let me = t.recipient;
        signed.check_redeemable(&me, &rand, 10).expect("redeemable");
        assert!(matches!(
            signed.check_redeemable(&me, &rand, 11),
            Err(TicketError::Expired { .. })
        ));
        assert_eq!(
            signed.check_redeemable(&me, &[0; 32], 10),
            Err(TicketError::RandMismatch)
        );
        let stranger = Identity::from_secret([6; 32]).id();
        assert!(matches!(
            signed.check_redeemable(&stranger, &rand, 10),
            Err(TicketError::WrongRecipient { .. })
        ));
        let mut losing = t;
        losing.win_prob = 0;
        let losing = SignedTicket::sign(losing, &sender);
        assert_eq!(
            losing.check_redeemable(&me, &rand, 10),
            Err(TicketError::NotWinning)
        );
    }
}
