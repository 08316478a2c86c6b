//! Ticket signatures checked by exactly `ed25519_dalek::VerifyingKey::verify_strict`'s rule, cheaper for
//! a sender seen before.
//!
//! A signature `(R, s)` on message `M` under key `A` is accepted when:
//!
//! 1. `s` is canonical (`s < ℓ`);
//! 2. `R` is the canonical encoding of a curve point, and neither `R` nor `A` has small order;
//! 3. `[s]B − [k]A = R`, with `k = SHA-512(R ‖ A ‖ M) mod ℓ` over the bytes as sent (cofactorless).
//!
//! `verify_strict` checks 3 by recomputing `R` and comparing encodings, which costs a field inversion;
//! here `R` is decompressed (which step 2 needs anyway) and compared as a point, with its encoding
//! checked canonical on its own, which accepts exactly the same set. `[s]B − [k]A` runs over a table
//! of `A`'s odd multiples kept per sender (width-8 NAF for both points, where a one-off check builds a
//! width-5 table for `A` every time).
//!
//! Batch verification (one multiscalar multiplication over many signatures) is not used: its equation
//! cannot tell a signature whose `R` carries a small torsion component from a good one, while the
//! cofactorless rule refuses it, so a batch accepts tickets the ledger refuses, unless every `R` is
//! first proven torsion-free, which costs a scalar multiplication each, as much as the check it
//! would save.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint, VartimeEdwardsPrecomputation};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::VartimePrecomputedMultiscalarMul;
use sha2::{Digest, Sha512};

/// A sender's key, ready to check its signatures.
pub(crate) struct SenderKey {
    compressed: [u8; 32],
    /// False for a small-order key: every signature under it is refused.
    usable: bool,
    /// Odd multiples of the basepoint and of the key.
    table: VartimeEdwardsPrecomputation,
}

impl SenderKey {
    /// The key with these bytes, or `None` when they are no curve point.
    pub fn new(bytes: &[u8; 32]) -> Option<Self> {
        let point = CompressedEdwardsY(*bytes).decompress()?;
        Some(SenderKey {
            compressed: *bytes,
            usable: !point.is_small_order(),
            table: VartimeEdwardsPrecomputation::new([
                curve25519_dalek::constants::ED25519_BASEPOINT_POINT,
                point,
            ]),
        })
    }

    /// Whether `signature` signs `message` under this key, by `verify_strict`'s rule.
    pub fn verifies(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        if !self.usable {
            return false;
        }
        let mut r_bytes = [0u8; 32];
        let mut s_bytes = [0u8; 32];
        r_bytes.copy_from_slice(&signature[..32]);
        s_bytes.copy_from_slice(&signature[32..]);
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return false;
        };
        if !canonical_y(&r_bytes) {
            return false;
        }
        let Some(r) = CompressedEdwardsY(r_bytes).decompress() else {
            return false;
        };
        if r.is_small_order() {
            return false;
        }
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(r_bytes)
                .chain_update(self.compressed)
                .chain_update(message),
        );
        let expected: EdwardsPoint = self.table.vartime_multiscalar_mul([s, -k]);
        expected == r
    }
}

/// Whether the low 255 bits (y) of a point encoding are below p = 2^255 − 19. The sign bit needs no
/// check: the only points with x = 0, where a set sign bit would be non-canonical, have small order.
fn canonical_y(bytes: &[u8; 32]) -> bool {
    // y ≥ p only for y in [2^255 − 19, 2^255): every byte 0xff but the first (≥ 0xed) and the top
    // one (0x7f once the sign bit is masked).
    !(bytes[31] & 0x7f == 0x7f && bytes[1..31].iter().all(|&b| b == 0xff) && bytes[0] >= 0xed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
    use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
    use proptest::prelude::*;

    /// What `verify_strict` says, for comparison.
    fn strict(key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
        VerifyingKey::from_bytes(key).is_ok_and(|k| {
            k.verify_strict(message, &Signature::from_bytes(signature))
                .is_ok()
        })
    }

    fn ours(key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
        SenderKey::new(key).is_some_and(|k| k.verifies(message, signature))
    }

    fn signed(secret: [u8; 32], message: &[u8]) -> ([u8; 32], [u8; 64]) {
        let key = SigningKey::from_bytes(&secret);
        (key.verifying_key().to_bytes(), key.sign(message).to_bytes())
    }

    /// Signs with a chosen nonce point so R can carry torsion: returns (R, s) with
    /// s = r + k·a for R = [r]B + T, which the cofactorless rule refuses unless T = 0.
    fn with_torsion_in_r(secret: [u8; 32], message: &[u8], t: usize) -> ([u8; 32], [u8; 64]) {
        let key = SigningKey::from_bytes(&secret);
        let a = key.to_scalar();
        let public = key.verifying_key().to_bytes();
        let r = Scalar::from_bytes_mod_order([7u8; 32]);
        let big_r = (ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[t]).compress();
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(big_r.as_bytes())
                .chain_update(public)
                .chain_update(message),
        );
        let s = r + k * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(big_r.as_bytes());
        sig[32..].copy_from_slice(s.as_bytes());
        (public, sig)
    }

    #[test]
    fn agrees_with_verify_strict_on_crafted_signatures() {
        let message = b"ticket hash, 32 bytes of it.....";
        let (key, good) = signed([1; 32], message);
        assert!(ours(&key, message, &good) && strict(&key, message, &good));

        let mut cases: Vec<([u8; 32], [u8; 64], &str)> = vec![(key, good, "good")];
        // s + ℓ: the same point equation, a non-canonical scalar.
        let mut high_s = good;
        let s =
            Scalar::from_canonical_bytes(good[32..].try_into().expect("32")).expect("canonical");
        let mut s_plus_l = [0u8; 32];
        // ℓ, little-endian.
        let mut l = [0u8; 32];
        l[..16].copy_from_slice(&[
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14,
        ]);
        l[31] = 0x10;
        let mut carry = 0u16;
        for ((out, a), b) in s_plus_l.iter_mut().zip(s.as_bytes()).zip(l) {
            let v = u16::from(*a) + u16::from(b) + carry;
            *out = v as u8;
            carry = v >> 8;
        }
        high_s[32..].copy_from_slice(&s_plus_l);
        cases.push((key, high_s, "s + l"));
        // R with each torsion component added, and each small-order point as R.
        for (t, torsion) in EIGHT_TORSION.iter().enumerate() {
            let (k, sig) = with_torsion_in_r([2; 32], message, t);
            cases.push((k, sig, "torsion in R"));
            let mut small_r = good;
            small_r[..32].copy_from_slice(torsion.compress().as_bytes());
            cases.push((key, small_r, "small-order R"));
            // A small-order key.
            cases.push((*torsion.compress().as_bytes(), good, "small-order key"));
        }
        // Non-canonical encodings of R: y + p for the small y that have one (y < 19).
        for y in 0u8..19 {
            let mut enc = [0xffu8; 32];
            enc[0] = 0xed + y;
            enc[31] = 0x7f;
            let mut sig = good;
            sig[..32].copy_from_slice(&enc);
            cases.push((key, sig, "non-canonical R"));
            let mut signed_bit = enc;
            signed_bit[31] |= 0x80;
            sig[..32].copy_from_slice(&signed_bit);
            cases.push((key, sig, "non-canonical R, sign set"));
        }
        // R = the good R with the sign bit flipped: another point.
        let mut flipped = good;
        flipped[31] ^= 0x80;
        cases.push((key, flipped, "R sign flipped"));
        for (key, sig, what) in cases {
            assert_eq!(
                ours(&key, message, &sig),
                strict(&key, message, &sig),
                "{what}"
            );
        }
    }

    #[test]
    fn a_torsion_component_in_r_is_refused_by_both() {
        let message = b"m";
        for t in 1..8 {
            let (key, sig) = with_torsion_in_r([3; 32], message, t);
            assert!(!strict(&key, message, &sig), "{t}");
            assert!(!ours(&key, message, &sig), "{t}");
        }
        let (key, sig) = with_torsion_in_r([3; 32], message, 0);
        assert!(strict(&key, message, &sig) && ours(&key, message, &sig));
    }

    proptest! {
        #[test]
        fn agrees_with_verify_strict_on_damaged_signatures(
            secret in any::<[u8; 32]>(),
            message in proptest::collection::vec(any::<u8>(), 0..80),
            flip in 0usize..(64 * 8 + 32 * 8 + 1),
        ) {
            let (mut key, mut sig) = signed(secret, &message);
            let mut message = message;
            match flip {
                f if f < 512 => sig[f / 8] ^= 1 << (f % 8),
                f if f < 768 => key[(f - 512) / 8] ^= 1 << (f % 8),
                _ => message.push(0),
            }
            prop_assert_eq!(ours(&key, &message, &sig), strict(&key, &message, &sig));
        }

        #[test]
        fn agrees_with_verify_strict_on_random_bytes(
            key in any::<[u8; 32]>(),
            r in any::<[u8; 32]>(),
            s in any::<[u8; 32]>(),
        ) {
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&r);
            sig[32..].copy_from_slice(&s);
            prop_assert_eq!(ours(&key, b"x", &sig), strict(&key, b"x", &sig));
        }
    }
}
