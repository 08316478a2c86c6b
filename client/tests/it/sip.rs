//! `dualrig sip` through the real binary against a real coordinator: the status it prints, and a
//! purchase by a key with no stake refused with the reason, the SIP unchanged.

use crate::support::{CoordinatorProcess, dualrig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_status_prints_the_pool_and_a_purchase_without_stake_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator = CoordinatorProcess::start(dir.path(), 0);
    let key = dir.path().join("throwaway.key");

    let (ok, status, stderr) = dualrig(
        &coordinator.url,
        &key,
        &["sip", "status", "--quote", "2", "--rounds", "3"],
    );
    assert!(ok, "{stderr}");
    // The default curve: 2 tokens buy just under 2,000,000 weight, at just above one unit a unit.
    for line in [
        "balance            0\n",
        "weight outstanding 0\n",
        "quote              2 tokens buy 1999996 weight at 1.000003 a unit",
        "bleed              0.1 % a round; one unit of weight counts as 1 of stake",
        "total purchases    0",
    ] {
        assert!(status.contains(line), "{line:?} missing from:\n{status}");
    }

    let (ok, _, stderr) = dualrig(&coordinator.url, &key, &["sip", "buy", "1"]);
    assert!(!ok);
    assert!(stderr.contains("bond stake on it first"), "{stderr}");
    let (ok, _, stderr) = dualrig(
        &coordinator.url,
        &key,
        &["sip", "status", "--rounds", "1001"],
    );
    assert!(!ok && stderr.contains("ask for fewer rounds"), "{stderr}");
    let (_, after, _) = dualrig(
        &coordinator.url,
        &key,
        &["sip", "status", "--quote", "2", "--rounds", "3"],
    );
    assert_eq!(after, status, "a refused purchase changed the SIP");
    coordinator.kill();
}
