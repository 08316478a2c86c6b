//! The real `dualrig-coordinator simulate`: the table it prints, its exit status, and refusals of bad
//! settings.

use std::process::Command;

fn simulate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dualrig-coordinator"))
        .arg("simulate")
        .args(args)
        .output()
        .expect("run dualrig-coordinator simulate")
}

#[test]
fn simulate_prints_every_strategy_against_honest_play() {
    let out = simulate(&["--rounds", "400", "--seed", "5", "--actors", "2"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "simulate failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("400 ledger rounds, 80 challenge rounds, seed 5"),
        "{stdout}"
    );
    for name in [
        "honest transcoder",
        "lazy transcoder",
        "SIP drainer",
        "honest host",
        "data deleter",
        "outsourcer",
        "Sybil worker",
        "honest sender",
        "ticket withholder",
        "vote capturer",
    ] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no row for {name}: {stdout}"));
        assert_eq!(row.matches('|').count(), 8, "{row}");
    }
    let again = simulate(&["--rounds", "400", "--seed", "5", "--actors", "2"]);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        stdout,
        "a seed repeats"
    );
}

#[test]
fn simulate_fails_when_a_cheat_pays_and_names_it() {
    // An outsourcer that never misses a deadline keeps only hash trees and earns a holder's rewards.
    let out = simulate(&[
        "--rounds",
        "400",
        "--seed",
        "5",
        "--actors",
        "1",
        "--outsourcer-miss",
        "0",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cheating pays under these rules: outsourcer"),
        "{stderr}"
    );
}

#[test]
fn simulate_refuses_settings_it_cannot_run_with_the_reason() {
    let out = simulate(&["--rounds", "1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--rounds = 1"), "{stderr}");
    let out = simulate(&["--deleter-keeps", "1.5"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--deleter-keeps = 1.5"));
    let out = simulate(&["--honest-redirect-ppm", "2000000"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--honest-redirect-ppm = 2000000"));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("rules.toml");
    std::fs::write(&config, "challenge_k = 0\n").expect("config");
    let out = simulate(&["--config", config.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("challenge_k"));
}
