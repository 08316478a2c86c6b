//! Stake-weighted assignment from ledger stakes: shares match stakes, ineligible workers get nothing.

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

/// χ² critical value for 2 degrees of freedom at p = 0.001.
const CHI2_DF2_P001: f64 = 13.816;

#[test]
fn draws_follow_stake_one_two_seven_and_skip_the_ineligible() {
    let workers: Vec<Identity> = (1..=5).map(actor).collect();
    let balances: Vec<(&Identity, u64)> = workers.iter().map(|w| (w, 10_000)).collect();
    let h = Harness::in_memory(&balances);
    for (w, stake) in workers.iter().zip([100, 200, 700, 99, 700]) {
        h.ok(w, Operation::Bond { amount: stake });
    }
    // Worker 4 is below min_stake; worker 5 is slashed (a sliver) and so suspended.
    h.ledger
        .slash(
            &workers[4].id(),
            SlashFraction::from_ppm(1).expect("ppm"),
            b"missed storage challenge",
        )
        .expect("slash");
    assert_eq!(h.ledger.stake_of(&workers[3].id()).expect("stake"), None);
    assert_eq!(h.ledger.stake_of(&workers[4].id()).expect("stake"), None);

    let candidates: Vec<Candidate> = h
        .ledger
        .eligible_stakes()
        .expect("eligible")
        .into_iter()
        .map(|(worker, stake)| Candidate {
            worker,
            stake,
            mining: 0,
            score: 1.0,
        })
        .collect();
    assert_eq!(candidates.len(), 3);

    let mut rng = StdRng::seed_from_u64(20_261_123);
    let mut counts = std::collections::HashMap::new();
    for _ in 0..2000 {
        let picked = draw_weighted(&candidates, &mut rng).expect("someone is eligible");
        *counts.entry(picked.worker).or_insert(0u32) += 1;
    }
    assert_eq!(counts.get(&workers[3].id()), None);
    assert_eq!(counts.get(&workers[4].id()), None);
    let chi2: f64 = workers[..3]
        .iter()
        .zip([0.1, 0.2, 0.7])
        .map(|(w, share)| {
            let expected = 2000.0 * share;
            let observed = f64::from(counts.get(&w.id()).copied().unwrap_or(0));
            (observed - expected).powi(2) / expected
        })
        .sum();
    assert!(
        chi2 < CHI2_DF2_P001,
        "χ² = {chi2:.2} over {counts:?}: shares do not follow 1:2:7"
    );
}

#[test]
fn score_scales_a_workers_share() {
    let candidates = [
        Candidate {
            worker: actor(1).id(),
            stake: 100,
            mining: 0,
            score: 1.0,
        },
        Candidate {
            worker: actor(2).id(),
            stake: 100,
            mining: 0,
            score: 0.25,
        },
    ];
    let mut rng = StdRng::seed_from_u64(5);
    let first = (0..5000)
        .filter(|_| draw_weighted(&candidates, &mut rng).map(|c| c.worker) == Some(actor(1).id()))
        .count();
    // Expected 4000 of 5000 (weights 4:1), σ ≈ 28.
    assert!((3850..=4150).contains(&first), "{first} of 5000");
}
