//! Hosting reward accounting (PROTOCOL §6.9): one payout over 1,000 workers' credits on a ledger on
//! disk (one fsync'd transaction, as a challenge round ends), in CPU time and wall time, and a
//! worker's statement query over 100 paid rounds.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use dualrig_benches::{bonded_workers, process_cpu};
use dualrig_coordinator::ledger::ProofCredit;
use dualrig_proto::identity::Identity;

const WORKERS: usize = 1_000;

fn credits(workers: &[Identity], round: u64) -> Vec<ProofCredit> {
    workers
        .iter()
        .enumerate()
        .map(|(i, w)| ProofCredit {
            worker: w.id(),
            proven_bytes: (i as u64 + round) << 20,
            credited: (i as u64 + round) << 25,
        })
        .collect()
}

fn hosting(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ledger, workers) = bonded_workers(dir.path(), WORKERS, 7);
    let mut group = c.benchmark_group("hosting");
    group.sample_size(20);

    // Each payout in a round of its own, as challenge rounds are.
    group.bench_function("payout_1000_workers_cpu", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let round = ledger.advance_round().expect("round");
                let credits = credits(&workers, round);
                let start = process_cpu();
                let paid = ledger.pay_hosting(&credits).expect("pay");
                spent += process_cpu() - start;
                assert_eq!(paid.shares.len(), WORKERS);
            }
            spent
        })
    });
    group.bench_function("payout_1000_workers_wall", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let round = ledger.advance_round().expect("round");
                let credits = credits(&workers, round);
                let start = Instant::now();
                ledger.pay_hosting(&credits).expect("pay");
                spent += start.elapsed();
            }
            spent
        })
    });

    // By now every worker has a statement for each round paid above; ask for a window of 100.
    let worker = workers[WORKERS / 2].id();
    let round = ledger.round().expect("round");
    group.bench_function("statements_100_rounds", |b| {
        b.iter(|| {
            let after = round.saturating_sub(100);
            let rows = ledger.statements(&worker, Some(after), 100).expect("rows");
            assert!(!rows.is_empty());
            rows
        })
    });
    group.finish();
}

criterion_group!(benches, hosting);
criterion_main!(benches);
