//! `dualrig sip` through the real binary against a real coordinator: the status it prints, a
//! purchase by a key with no stake refused with the reason, the SIP unchanged, and a payment proposed,
//! voted on and executed by the coordinator's own round clock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dualrig_proto::identity::Identity;

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

/// A key file for the secret `[n; 32]`, and its identity.
fn key(dir: &Path, name: &str, n: u8) -> (PathBuf, Identity) {
    let path = dir.join(format!("{name}.key"));
    std::fs::write(&path, [n; 32]).expect("write key");
    (path, Identity::from_secret([n; 32]))
}

/// Runs `dualrig` and returns its output, failing the test with its stderr when it fails.
fn ok(url: &str, key: &Path, args: &[&str]) -> String {
    let (ok, out, err) = dualrig(url, key, args);
    assert!(ok, "dualrig {args:?} failed: {err}");
    out
}

/// Runs `dualrig` and returns its stderr, failing the test when it succeeds.
fn refused(url: &str, key: &Path, args: &[&str]) -> String {
    let (ok, out, err) = dualrig(url, key, args);
    assert!(!ok, "dualrig {args:?} was accepted: {out}");
    err
}

/// The coordinator's round, from the first line of `dualrig sip proposals`.
fn round(url: &str, key: &Path) -> u64 {
    let out = ok(url, key, &["sip", "proposals"]);
    out.split_whitespace()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no round in:\n{out}"))
}

/// Waits, a round at a time, until `done` holds of `dualrig sip proposals`' output; the coordinator's
/// clock, not the test, advances the rounds.
fn wait_for_proposals(url: &str, key: &Path, done: impl Fn(&str) -> bool) -> String {
    for _ in 0..120 {
        let out = ok(url, key, &["sip", "proposals"]);
        if done(&out) {
            return out;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("the proposals never got there");
}

fn balance(url: &str, key: &Path, id: &Identity) -> String {
    let out = ok(url, key, &["account", &id.id().to_hex()]);
    out.lines()
        .find_map(|l| l.strip_prefix("balance   "))
        .unwrap_or_else(|| panic!("no balance in:\n{out}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_proposed_and_voted_through_the_binary_executes_once_and_bad_votes_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (proposer_key, proposer) = key(dir.path(), "proposer", 61);
    let (yes_key, yes) = key(dir.path(), "yes", 62);
    let (no_key, no) = key(dir.path(), "no", 63);
    let (_, payee) = key(dir.path(), "payee", 64);
    let throwaway = dir.path().join("throwaway.key");
    let genesis = dir.path().join("genesis.toml");
    let accounts: String = [(&proposer, 100), (&yes, 10), (&no, 10)]
        .iter()
        .map(|(who, tokens)| {
            format!(
                "[[accounts]]\nid = \"{}\"\nbalance = {}\n\n",
                who.id(),
                tokens * 1_000_000
            )
        })
        .collect();
    std::fs::write(&genesis, accounts).expect("write genesis");
    // Rounds of a second, voting open from the proposal's round for fifteen of them.
    let file = dir.path().join("coordinator.toml");
    std::fs::write(
        &file,
        format!(
            "genesis = {:?}\nround_secs = 1\nvote_delay_rounds = 0\nvote_period_rounds = 15\n",
            genesis.display().to_string()
        ),
    )
    .expect("write config");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    let coordinator = CoordinatorProcess::start_with(&data, 0, Some(&file));
    let url = coordinator.url.as_str();

    ok(url, &proposer_key, &["stake", "bond", "1"]);
    ok(url, &yes_key, &["stake", "bond", "3"]);
    ok(url, &no_key, &["stake", "bond", "1"]);
    // The SIP holds what the proposer paid for mining weight.
    ok(url, &proposer_key, &["sip", "buy", "5"]);
    // Votes weigh the stake bonded when the proposal's round began: the next round's.
    let bonded = round(url, &proposer_key);
    while round(url, &proposer_key) <= bonded {
        std::thread::sleep(Duration::from_millis(200));
    }

    let payee_hex = payee.id().to_hex();
    let out = ok(
        url,
        &proposer_key,
        &[
            "sip",
            "propose",
            "--pay",
            &payee_hex,
            "2",
            "--reason",
            "runs a relay",
        ],
    );
    assert!(out.starts_with("proposal #1 recorded"), "{out}");
    let out = ok(url, &yes_key, &["sip", "vote", "1", "yes"]);
    assert!(
        out.starts_with("voted yes on proposal #1 with 3 tokens"),
        "{out}"
    );
    let out = ok(url, &no_key, &["sip", "vote", "1", "no"]);
    assert!(
        out.starts_with("voted no on proposal #1 with 1 tokens"),
        "{out}"
    );

    // A key with no stake, a proposal that does not exist and a word that is not a vote.
    let err = refused(url, &throwaway, &["sip", "vote", "1", "yes"]);
    assert!(
        err.contains("had no stake bonded or delegated") && err.contains("stake bonded later"),
        "{err}"
    );
    let err = refused(url, &yes_key, &["sip", "vote", "99", "no"]);
    assert!(err.contains("no proposal is numbered 99"), "{err}");
    assert!(err.contains("`dualrig sip proposals` lists them"), "{err}");
    let err = refused(url, &no_key, &["sip", "vote", "1", "maybe"]);
    assert!(
        err.contains("'maybe' is not a vote; vote yes, no or abstain"),
        "{err}"
    );
    let err = refused(url, &no_key, &["sip", "vote", "first", "yes"]);
    assert!(err.contains("'first'"), "{err}");
    let out = ok(url, &yes_key, &["sip", "proposals", "1"]);
    assert!(out.contains("#1  voting"), "{out}");
    assert!(out.contains("yes 3  no 1  abstain 0 of 5 staked"), "{out}");

    let listed = wait_for_proposals(url, &yes_key, |out| !out.contains("#1  voting"));
    assert!(listed.contains("#1  executed"), "{listed}");
    assert!(
        listed.contains(&format!("pay 2 to {payee_hex}")),
        "{listed}"
    );
    let one = ok(url, &yes_key, &["sip", "proposals", "1"]);
    assert!(one.contains(&format!("paid 2 to {payee_hex}")), "{one}");
    assert_eq!(balance(url, &yes_key, &payee), "2");
    // Rounds later it has still paid once.
    let tallied = round(url, &yes_key);
    while round(url, &yes_key) < tallied + 2 {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(balance(url, &yes_key, &payee), "2");
    assert_eq!(ok(url, &yes_key, &["sip", "proposals", "1"]), one);
    coordinator.kill();
}
