//! The service infrastructure pool (PROTOCOL §6.11) on a ledger on disk with 1,000 staked workers: one
//! `BuyWeight` (a signed request in its own fsync'd transaction) and one ledger round in which all
//! 1,000 workers' mining weight bleeds back, each against a round with no weight to bleed, in CPU time.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use dualrig_benches::process_cpu;
use dualrig_coordinator::ledger::{
    Genesis, GenesisAccount, Ledger, LedgerConfig, Operation, Receipt, SignedRequest,
};
use dualrig_proto::identity::Identity;

const WORKERS: usize = 1_000;

/// A ledger on disk with `WORKERS` workers, each with the least stake bonded and 9 tokens left.
fn ledger(dir: &std::path::Path) -> (Ledger, Vec<Identity>) {
    let workers: Vec<Identity> = (0..WORKERS)
        .map(|i| {
            let mut secret = [9u8; 32];
            secret[..8].copy_from_slice(&(i as u64).to_le_bytes());
            Identity::from_secret(secret)
        })
        .collect();
    let genesis = Genesis::new(
        workers
            .iter()
            .map(|w| GenesisAccount {
                id: w.id(),
                balance: 10_000_000,
            })
            .collect(),
    )
    .expect("genesis");
    let ledger =
        Ledger::open(&dir.join("ledger.db"), LedgerConfig::default(), &genesis).expect("ledger");
    let bonds: Vec<SignedRequest> = workers
        .iter()
        .map(|w| SignedRequest::sign(w, 1, &Operation::Bond { amount: 1_000_000 }))
        .collect();
    for applied in ledger.execute_batch(&bonds).expect("bond") {
        applied.expect("bonded");
    }
    (ledger, workers)
}

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

fn sip(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ledger, workers) = ledger(dir.path());
    let mut group = c.benchmark_group("sip");
    group.sample_size(20);

    // Rounds with nothing to bleed: what advance_round costs without the SIP.
    group.bench_function("round_no_weight_cpu", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let start = process_cpu();
                ledger.advance_round().expect("round");
                spent += process_cpu() - start;
            }
            spent
        })
    });

    // Every worker buys weight for itself in one batch; then each round bleeds all 1,000.
    let purchases: Vec<SignedRequest> = workers.iter().map(|w| buy(w, 2, 2_000_000)).collect();
    for applied in ledger.execute_batch(&purchases).expect("buy") {
        assert!(matches!(applied.expect("bought").0, Receipt::Bought { .. }));
    }
    group.bench_function("round_bleeding_1000_workers_cpu", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let start = process_cpu();
                ledger.advance_round().expect("round");
                spent += process_cpu() - start;
            }
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
