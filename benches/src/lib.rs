//! Criterion benches live in `benches/`; this library holds what several of them share.

use std::time::Duration;

use dualrig_coordinator::ledger::{
    Genesis, GenesisAccount, Ledger, LedgerConfig, Operation, SignedRequest,
};
use dualrig_proto::identity::Identity;

/// CPU time this process has used, every thread.
pub fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the one we pass.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// A ledger on disk in `dir` under the default rules with `count` workers (keys derived from `tag`),
/// each given 10 tokens at genesis and with the least stake (1 token) bonded.
pub fn bonded_workers(dir: &std::path::Path, count: usize, tag: u8) -> (Ledger, Vec<Identity>) {
    let workers: Vec<Identity> = (0..count)
        .map(|i| {
            let mut secret = [tag; 32];
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
