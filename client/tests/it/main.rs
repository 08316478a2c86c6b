//! The real `dualrig` binary: what a person sees when a command is given wrong, and a transcode that
//! resumes and rides out a coordinator restart.

mod collective;
mod resume;
mod sip;
mod support;

use std::process::Command;

fn dualrig(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dualrig"))
        .args(["--coordinator", "http://127.0.0.1:9"])
        .args(args)
        .output()
        .expect("run dualrig");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn malformed_roots_and_ranges_are_refused_before_anything_is_sent() {
    let root = "ab".repeat(32);
    for (args, says) in [
        (vec!["get", "xyz", "-o", "out"], "not a blob root"),
        (vec!["get", &"ab".repeat(31), "-o", "out"], "31 bytes"),
        (
            vec!["get", &root, "-o", "out", "--range", "9..3"],
            "ends before it starts",
        ),
        (
            vec!["get", &root, "-o", "out", "--range", "1-3"],
            "not a range",
        ),
        (
            vec!["get", &root, "-o", "out", "--range", "a..3"],
            "not a byte offset",
        ),
        (vec!["put"], "required"),
    ] {
        let (ok, stderr) = dualrig(&args);
        assert!(!ok, "{args:?} must fail");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn an_unreachable_coordinator_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("f");
    std::fs::write(&file, b"hello").expect("write");
    let (ok, stderr) = dualrig(&["put", file.to_str().expect("utf-8")]);
    assert!(!ok);
    assert!(
        stderr.contains("cannot reach the coordinator at http://127.0.0.1:9"),
        "{stderr}"
    );
    assert!(!dir.path().join("out").exists());
}
