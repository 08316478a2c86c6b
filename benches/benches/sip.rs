//! The service infrastructure pool (PROTOCOL §6.11) on a ledger on disk with 1,000 staked workers: one
//! `BuyWeight` (a signed request in its own fsync'd transaction) and one ledger round in which all
//! 1,000 workers' mining weight bleeds back, each against a round with no weight to bleed, in CPU time.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use dualrig_benches::{bonded_workers, process_cpu};
use dualrig_coordinator::ledger::{Operation, Receipt, SignedRequest};
use dualrig_proto::identity::Identity;

const WORKERS: usize = 1_000;

fn buy(worker: &Identity, nonce: u64, amount: u64) -> SignedRequest {
    SignedRequest::sign(
        worker,
        nonce,
        &Operation::BuyWeight {
            worker: worker.id(),
            amount,
            max_price_ppm: u64::MAX,
        },
    )
}

/// CPU time of `iters` ledger rounds, the rounds only.
fn rounds_cpu(ledger: &dualrig_coordinator::ledger::Ledger, iters: u64) -> Duration {
    let mut spent = Duration::ZERO;
    for _ in 0..iters {
        let start = process_cpu();
        ledger.advance_round().expect("round");
        spent += process_cpu() - start;
    }
    spent
}

fn sip(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ledger, workers) = bonded_workers(dir.path(), WORKERS, 9);
    let mut group = c.benchmark_group("sip");
    group.sample_size(20);

    // Rounds with nothing to bleed: what advance_round costs without the SIP.
    group.bench_function("round_no_weight_cpu", |b| {
        b.iter_custom(|iters| rounds_cpu(&ledger, iters))
    });

    // Every worker buys weight for itself in one batch; then each round bleeds all 1,000.
    let purchases: Vec<SignedRequest> = workers.iter().map(|w| buy(w, 2, 2_000_000)).collect();
    for applied in ledger.execute_batch(&purchases).expect("buy") {
        assert!(matches!(applied.expect("bought").0, Receipt::Bought { .. }));
    }
    group.bench_function("round_bleeding_1000_workers_cpu", |b| {
        b.iter_custom(|iters| {
            let spent = rounds_cpu(&ledger, iters);
            assert_eq!(ledger.eligible_workers().expect("eligible").len(), WORKERS);
            spent
        })
    });

    // One purchase of 1,000 units, signature check included, in its own fsync'd transaction; the
    // buyers take turns so no balance runs out.
    let mut nonces = vec![2u64; WORKERS];
    let mut turn = 0usize;
    group.bench_function("buy_weight_cpu", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                turn = (turn + 1) % WORKERS;
                nonces[turn] += 1;
                let request = buy(&workers[turn], nonces[turn], 1_000);
                let start = process_cpu();
                let receipt = ledger.execute(&request).expect("bought");
                spent += process_cpu() - start;
                assert!(matches!(receipt, Receipt::Bought { weight } if weight > 0));
            }
            spent
        })
    });
    group.finish();
}

criterion_group!(benches, sip);
criterion_main!(benches);
