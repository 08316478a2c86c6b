//! Which chunks a challenge asks for, and how likely a challenge is to catch lost data.
//!
//! The indices for one (round seed, worker, blob) are drawn from the BLAKE3 XOF of
//! `seed ‖ worker id ‖ blob id` under the derive-key context [`CHALLENGE_CONTEXT`], so the
//! coordinator and the worker compute the same set and nobody can steer it once the seed is drawn.
//! The XOF output is read as consecutive little-endian u64 words; a word is reduced to `[0, n)` by
//! rejection sampling (words in the top `2^64 mod n` values are skipped), so there is no modulo bias.
//! `k` distinct indices are chosen with Floyd's algorithm and returned in ascending order; a blob of
//! at most `k` chunks is challenged on every chunk.
//!
//! Because the indices are distinct, a blob missing a fraction `f` of its chunks escapes a challenge
//! with probability at most `(1 − f)^k`: [`catch_probability`] is a lower bound on the chance to catch it.

use std::collections::BTreeSet;

use crate::identity::PublicId;

use super::chunk_count;

/// BLAKE3 derive-key context of challenge sampling.
pub const CHALLENGE_CONTEXT: &str = "dualrig 2026-11 challenge v1";

/// The chunk indices of `blob` (of `blob_len` bytes) that `worker` must prove in the round drawn with
/// `seed`: `min(k, chunks)` distinct indices in ascending order (see the module docs).
pub fn challenge_indices(
    seed: &[u8; 32],
    worker: &PublicId,
    blob: &[u8; 32],
    blob_len: u64,
    k: usize,
) -> Vec<u64> {
    let chunks = chunk_count(blob_len);
    let k = k as u64;
    if k >= chunks {
        return (0..chunks).collect();
    }
    let mut hasher = blake3::Hasher::new_derive_key(CHALLENGE_CONTEXT);
    hasher.update(seed);
    hasher.update(worker.as_bytes());
    hasher.update(blob);
    let mut words = Words(hasher.finalize_xof());
    // Floyd: for j in n−k..n, draw t in [0, j]; take t, or j when t is already taken. Every k-subset
    // comes out with the same probability after exactly k draws.
    let mut chosen = BTreeSet::new();
    for j in chunks - k..chunks {
        let t = words.below(j + 1);
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    chosen.into_iter().collect()
}

/// Little-endian u64 words of an XOF stream.
struct Words(blake3::OutputReader);

impl Words {
    fn next(&mut self) -> u64 {
        let mut word = [0u8; 8];
        self.0.fill(&mut word);
        u64::from_le_bytes(word)
    }

    /// A uniform draw from `[0, n)`, `n ≥ 1`.
    fn below(&mut self, n: u64) -> u64 {
        loop {
            if let Some(value) = reduce(self.next(), n) {
                return value;
            }
        }
    }
}

/// `word mod n` when `word` lies below the largest multiple of `n` that fits in 2^64, otherwise `None`
/// (the word must be redrawn): each value of `[0, n)` then has the same number of preimages.
fn reduce(word: u64, n: u64) -> Option<u64> {
    // 2^64 mod n, computed without 128-bit arithmetic.
    let excess = (u64::MAX % n + 1) % n;
    (excess == 0 || word <= u64::MAX - excess).then_some(word % n)
}

/// The chance that `k` challenged chunks include at least one of a fraction `f` of missing chunks:
/// `1 − (1 − f)^k` (a lower bound with distinct indices). `f` is clamped to `[0, 1]`.
pub fn catch_probability(f: f64, k: u64) -> f64 {
    let f = f.clamp(0.0, 1.0);
    if f >= 1.0 {
        return if k == 0 { 0.0 } else { 1.0 };
    }
    // 1 − e^{k·ln(1−f)}, accurate for small f.
    -(k as f64 * (-f).ln_1p()).exp_m1()
}

/// Rounds of challenges needed to catch, with probability at least `target`, a worker whose sampled
/// blobs each miss a fraction `f` of their chunks, when every round samples `blobs_sampled_per_round`
/// of them with `k` chunks each. `0` when `target ≤ 0`; `u64::MAX` when it can never be reached (no
/// chunks missing, nothing sampled, or a `target ≥ 1` that only certainty meets).
pub fn rounds_to_catch(f: f64, k: u64, blobs_sampled_per_round: u64, target: f64) -> u64 {
    if target <= 0.0 || target.is_nan() {
        return 0;
    }
    let f = f.clamp(0.0, 1.0);
    let draws = k.saturating_mul(blobs_sampled_per_round);
    if f == 0.0 || draws == 0 {
        return u64::MAX;
    }
    if f >= 1.0 {
        return 1;
    }
    if target >= 1.0 {
        return u64::MAX;
    }
    // Escape after r rounds: (1 − f)^(draws·r) ≤ 1 − target.
    let per_round = draws as f64 * (-f).ln_1p();
    let rounds = ((-target).ln_1p() / per_round).ceil();
    if rounds >= u64::MAX as f64 {
        u64::MAX
    } else {
        (rounds as u64).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_rejects_exactly_the_biased_top_words() {
        // 2^64 mod 3 = 1: only u64::MAX is in the biased tail.
        assert_eq!(reduce(u64::MAX, 3), None);
        assert_eq!(reduce(u64::MAX - 1, 3), Some((u64::MAX - 1) % 3));
        // Powers of two divide 2^64: nothing is rejected.
        assert_eq!(reduce(u64::MAX, 4), Some(3));
        assert_eq!(reduce(u64::MAX, 1), Some(0));
        // n = 2^63 + 1: only one multiple of n fits, so every word from n up is redrawn.
        let n = (1u64 << 63) + 1;
        assert_eq!(reduce(1u64 << 63, n), Some(1u64 << 63));
        assert_eq!(reduce(n, n), None);
        assert_eq!(reduce(u64::MAX, n), None);
    }

    #[test]
    fn catch_probability_matches_the_formula() {
        assert_eq!(catch_probability(0.0, 100), 0.0);
        assert_eq!(catch_probability(1.0, 1), 1.0);
        assert_eq!(catch_probability(0.5, 0), 0.0);
        let p = catch_probability(0.01, 300);
        assert!((p - (1.0 - 0.99f64.powi(300))).abs() < 1e-12, "{p}");
        assert!((catch_probability(0.1, 16) - (1.0 - 0.9f64.powi(16))).abs() < 1e-12);
    }

    #[test]
    fn rounds_to_catch_reaches_the_target_and_no_sooner() {
        for (f, k, blobs, target) in [(0.01, 16, 1, 0.99), (0.001, 8, 4, 0.999), (0.5, 1, 1, 0.9)] {
            let rounds = rounds_to_catch(f, k, blobs, target);
            let caught = |r: u64| catch_probability(f, k * blobs * r);
            assert!(
                caught(rounds) >= target,
                "{f} {k} {blobs} {target}: {rounds}"
            );
            assert!(
                caught(rounds - 1) < target,
                "{f} {k} {blobs} {target}: {rounds}"
            );
        }
        assert_eq!(rounds_to_catch(0.0, 16, 1, 0.99), u64::MAX);
        assert_eq!(rounds_to_catch(0.1, 0, 1, 0.99), u64::MAX);
        assert_eq!(rounds_to_catch(1.0, 1, 1, 0.99), 1);
        assert_eq!(rounds_to_catch(0.1, 16, 1, 0.0), 0);
        assert_eq!(rounds_to_catch(0.1, 16, 1, 1.0), u64::MAX);
    }
}
