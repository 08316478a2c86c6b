//! Stake-weighted assignment through the pool itself: real registrations, a seeded draw.

use dualrig_proto::identity::Identity;

use super::*;

struct Attached {
    id: PublicId,
    connection: u64,
    commands: CommandReceiver,
}

fn attach(pool: &WorkerPool, secret: u8) -> Attached {
    let identity = Identity::from_secret([secret; 32]);
    let id = identity.id();
    let nonce = pool.issue_nonce(id).expect("nonce");
    let sig = identity.sign(&registration_message(&nonce, &id));
    let capabilities = Capabilities {
        sessions: 4,
        max_width: 1920,
        max_height: 1080,
        ..Capabilities::default()
    };
    let token = pool
        .register(id, &nonce, &sig, capabilities)
        .expect("registers");
    let (id, connection, queues) = pool.attach(&token).expect("attaches");
    Attached {
        id,
        connection,
        commands: queues.bulk,
    }
}

fn staked(stake: u64) -> StakeView {
    StakeView {
        stake,
        mining: 0,
        suspended: false,
    }
}

/// Draws `n` jobs one after another, each finished before the next, and counts who got them.
fn draw_many(pool: &WorkerPool, workers: &mut [Attached], n: usize) -> HashMap<PublicId, usize> {
    let needs = Requirements {
        width: 640,
        height: 360,
    };
    let mut counts = HashMap::new();
    for i in 0..n {
        let job = TranscodeJob {
            job_id: format!("job-{i}"),
            ..TranscodeJob::default()
        };
        let assignment = pool
            .try_assign(&job, needs, &HashSet::new())
            .expect("a worker is eligible");
        *counts.entry(assignment.worker).or_default() += 1;
        let w = workers
            .iter_mut()
            .find(|w| w.id == assignment.worker)
            .expect("one of ours");
        while w.commands.try_recv().is_ok() {}
        assert!(pool.complete(
            w.id,
            w.connection,
            &job.job_id,
            AttemptOutcome::Failed("done".into())
        ));
    }
    counts
}

/// Pearson's chi-square of `observed` against `weights` scaled to the same total.
fn chi_square(observed: &[usize], weights: &[f64]) -> f64 {
    let n: usize = observed.iter().sum();
    let total: f64 = weights.iter().sum();
    observed
        .iter()
        .zip(weights)
        .map(|(&o, &w)| {
            let expected = n as f64 * w / total;
            (o as f64 - expected).powi(2) / expected
        })
        .sum()
}

/// The chi-square critical value for 2 degrees of freedom at p = 0.001.
const CHI2_DF2_P001: f64 = 13.816;

#[test]
fn shares_follow_stake_and_unstaked_or_suspended_workers_get_nothing() {
    let pool = WorkerPool::with_rng(1_000_000, StdRng::seed_from_u64(7));
    let mut workers: Vec<Attached> = (1..=5).map(|s| attach(&pool, s)).collect();
    let ids: Vec<PublicId> = workers.iter().map(|w| w.id).collect();
    pool.set_stakes(HashMap::from([
        (ids[0], staked(1_000_000)),
        (ids[1], staked(2_000_000)),
        (ids[2], staked(7_000_000)),
        // ids[3] has bonded less than the minimum.
        (ids[3], staked(999_999)),
        // ids[4] has the most stake but is suspended.
        (
            ids[4],
            StakeView {
                stake: 50_000_000,
                mining: 0,
                suspended: true,
            },
        ),
    ]));
    let counts = draw_many(&pool, &mut workers, 2000);
    let observed: Vec<usize> = ids[..3]
        .iter()
        .map(|id| counts.get(id).copied().unwrap_or(0))
        .collect();
    let chi2 = chi_square(&observed, &[1.0, 2.0, 7.0]);
    assert!(
        chi2 < CHI2_DF2_P001,
        "shares {observed:?}, chi-square {chi2}"
    );
    assert_eq!(counts.get(&ids[3]), None, "under the minimum stake");
    assert_eq!(counts.get(&ids[4]), None, "suspended");
}

#[test]
fn with_no_minimum_every_worker_but_a_suspended_one_is_drawn() {
    let pool = WorkerPool::with_rng(0, StdRng::seed_from_u64(8));
    let mut workers: Vec<Attached> = (1..=3).map(|s| attach(&pool, s)).collect();
    let ids: Vec<PublicId> = workers.iter().map(|w| w.id).collect();
    // ids[0] is unknown to the ledger; ids[1] staked 1 unit; ids[2] is suspended.
    pool.set_stakes(HashMap::from([
        (ids[1], staked(1)),
        (
            ids[2],
            StakeView {
                stake: 5,
                mining: 0,
                suspended: true,
            },
        ),
    ]));
    let counts = draw_many(&pool, &mut workers, 400);
    let (a, b) = (counts[&ids[0]], counts[&ids[1]]);
    assert_eq!(a + b, 400);
    assert!(chi_square(&[a, b], &[1.0, 1.0]) < 10.828, "{a} vs {b}");
    assert_eq!(counts.get(&ids[2]), None);

    let shortage = {
        let suspended = StakeView {
            stake: 0,
            mining: 0,
            suspended: true,
        };
        pool.set_stakes(HashMap::from([(ids[0], suspended), (ids[2], suspended)]));
        let only = HashSet::from([ids[1]]);
        let job = TranscodeJob {
            job_id: "last".into(),
            ..TranscodeJob::default()
        };
        pool.try_assign(
            &job,
            Requirements {
                width: 640,
                height: 360,
            },
            &only,
        )
        .expect_err("one excluded, one suspended, one suspended")
    };
    assert_eq!((shortage.excluded, shortage.unstaked), (1, 2), "{shortage}");
}

#[test]
fn a_passed_challenge_raises_the_score_but_is_no_verified_job() {
    let pool = WorkerPool::with_rng(0, StdRng::seed_from_u64(9));
    let id = attach(&pool, 41).id;
    pool.record_verdict(id, true);
    assert_eq!(pool.jobs_done(&id), 1);
    pool.record_verdict(id, false);
    pool.record_challenge_passed(id);
    assert!((pool.score(&id) - 0.6).abs() < 1e-9);
    assert_eq!(pool.jobs_done(&id), 1);
}

#[test]
fn scores_halve_on_failure_recover_on_success_and_have_a_floor() {
    let pool = WorkerPool::with_rng(0, StdRng::seed_from_u64(9));
    let id = PublicId([3; 32]);
    assert_eq!(pool.score(&id), 1.0);
    pool.record_verdict(id, false);
    assert_eq!(pool.score(&id), 0.5);
    pool.record_verdict(id, true);
    assert!((pool.score(&id) - 0.6).abs() < 1e-9);
    for _ in 0..20 {
        pool.lower_score(id);
    }
    assert_eq!(pool.score(&id), MIN_SCORE);
    for _ in 0..20 {
        pool.record_verdict(id, true);
    }
    assert_eq!(pool.score(&id), 1.0);
}

#[test]
fn a_capacity_below_the_jobs_in_flight_keeps_them_and_takes_no_more_until_they_finish() {
    let pool = WorkerPool::with_rng(0, StdRng::seed_from_u64(10));
    let mut w = attach(&pool, 7);
    let needs = Requirements {
        width: 640,
        height: 360,
    };
    let job = |i: usize| TranscodeJob {
        job_id: format!("job-{i}"),
        ..TranscodeJob::default()
    };
    for i in 0..2 {
        pool.try_assign(&job(i), needs, &HashSet::new())
            .expect("a free session");
    }
    pool.set_capacity(w.id, w.connection, 1);
    let listed = &pool.snapshot()[0];
    assert_eq!(
        listed.capabilities.as_ref().map(|c| c.sessions),
        Some(1),
        "the worker list shows the new count"
    );
    assert_eq!(listed.free_sessions, 0);
    pool.try_assign(&job(2), needs, &HashSet::new())
        .expect_err("two in flight, one session");
    while w.commands.try_recv().is_ok() {}
    assert!(pool.complete(
        w.id,
        w.connection,
        "job-0",
        AttemptOutcome::Failed("done".into())
    ));
    pool.try_assign(&job(2), needs, &HashSet::new())
        .expect_err("one still in flight fills the one session");
    assert!(pool.complete(
        w.id,
        w.connection,
        "job-1",
        AttemptOutcome::Failed("done".into())
    ));
    pool.try_assign(&job(2), needs, &HashSet::new())
        .expect("free once both finished");

    pool.set_capacity(w.id, w.connection, 3);
    assert_eq!(pool.snapshot()[0].free_sessions, 2);
    for i in 3..5 {
        pool.try_assign(&job(i), needs, &HashSet::new())
            .expect("grown");
    }
    // A capacity from an old connection changes nothing.
    pool.set_capacity(w.id, w.connection + 1, 9);
    assert_eq!(
        pool.snapshot()[0].capabilities.as_ref().map(|c| c.sessions),
        Some(3)
    );
}
