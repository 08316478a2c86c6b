//! Stake-weighted assignment (PROTOCOL §4.2): draw one worker with probability proportional to
//! `(stake + mining weight × k) × score`, using the caller's random source so a seeded draw is
//! reproducible.

use dualrig_proto::identity::PublicId;
use rand::Rng;

/// Score resolution: a score is turned into parts per million before weighting, so weights are exact
/// integers.
const SCORE_SCALE: f64 = 1_000_000.0;

/// One eligible worker as the scheduler sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub worker: PublicId,
    /// Eligible stake from the ledger ([`super::Ledger::eligible_workers`]).
    pub stake: u64,
    /// Mining weight bought from the SIP, in stake units (`k` applied by the ledger).
    pub mining: u64,
    /// Recent success in (0, 1]; anything else (0, negative, NaN) weighs nothing, above 1 counts as 1.
    pub score: f64,
}

/// `(stake + mining) × score`, with the score in parts per million.
pub fn weight(candidate: &Candidate) -> u128 {
    let s = candidate.score;
    if !s.is_finite() || s <= 0.0 {
        return 0;
    }
    // In [0, 10^6] after the clamp, so the cast neither truncates nor saturates.
    let ppm = (s.min(1.0) * SCORE_SCALE).round() as u128;
    (u128::from(candidate.stake) + u128::from(candidate.mining)) * ppm
}

/// Draws one candidate with probability `weight / total weight`; `None` when every weight is zero.
pub fn draw_weighted<'a, R: Rng + ?Sized>(
    candidates: &'a [Candidate],
    rng: &mut R,
) -> Option<&'a Candidate> {
    let total: u128 = candidates.iter().map(weight).sum();
    if total == 0 {
        return None;
    }
    let mut point = rng.gen_range(0..total);
    for c in candidates {
        let w = weight(c);
        if point < w {
            return Some(c);
        }
        point -= w;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn c(byte: u8, stake: u64, score: f64) -> Candidate {
        Candidate {
            worker: PublicId([byte; 32]),
            stake,
            mining: 0,
            score,
        }
    }

    #[test]
    fn weights_are_stake_times_score() {
        assert_eq!(weight(&c(1, 10, 1.0)), 10_000_000);
        assert_eq!(weight(&c(1, 10, 0.5)), 5_000_000);
        assert_eq!(weight(&c(1, 10, 7.0)), 10_000_000);
        assert_eq!(weight(&c(1, 10, 0.0)), 0);
        assert_eq!(weight(&c(1, 10, -1.0)), 0);
        assert_eq!(weight(&c(1, 10, f64::NAN)), 0);
        assert_eq!(
            weight(&c(1, u64::MAX, 1.0)),
            u128::from(u64::MAX) * 1_000_000
        );
        let both = Candidate {
            mining: u64::MAX,
            ..c(1, u64::MAX, 1.0)
        };
        assert_eq!(weight(&both), 2 * u128::from(u64::MAX) * 1_000_000);
        let bought = Candidate {
            mining: 30,
            ..c(1, 10, 0.5)
        };
        assert_eq!(weight(&bought), 20_000_000);
    }

    #[test]
    fn nothing_to_draw_from_gives_none() {
        let mut rng = StdRng::seed_from_u64(1);
        assert!(draw_weighted(&[], &mut rng).is_none());
        assert!(draw_weighted(&[c(1, 0, 1.0), c(2, 5, 0.0)], &mut rng).is_none());
    }

    #[test]
    fn zero_weight_is_never_drawn_and_a_seed_repeats() {
        let pool = [c(1, 5, 1.0), c(2, 0, 1.0), c(3, 5, 0.0), c(4, 1, 0.25)];
        let draws = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..500)
                .map(|_| draw_weighted(&pool, &mut rng).map(|c| c.worker.0[0]))
                .collect::<Vec<_>>()
        };
        let first = draws(7);
        assert_eq!(first, draws(7));
        assert!(first.iter().all(|w| matches!(w, Some(1) | Some(4))));
    }
}
