//! Tools outside Rust that tests drive: headless Chromium through playwright-core, and Python's stock
//! gRPC reflection client. `make test` installs them (the Makefile's `tool-deps`); a test run without
//! them fails and says how to get them, never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn tool_dir(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache").join(default))
}

fn require(path: &Path, what: &str) {
    assert!(
        path.exists(),
        "{what} is missing at {}: run `make tool-deps` (or `make test`) to install it",
        path.display()
    );
}

/// Where the test artifacts (screenshots) go: `target/test-artifacts/`.
pub fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// Runs `node tests/browser/<script>.cjs ARGS` with the pinned npm packages on its path and returns
/// its stdout; panics with its output when it fails.
pub fn run_node(script: &str, args: &[&str]) -> String {
    let modules = tool_dir("DUALRIG_BROWSER_DIR", "browser").join("node_modules");
    require(&modules.join("playwright-core"), "playwright-core");
    let chromium = std::env::var("DUALRIG_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    require(Path::new(&chromium), "Chromium");
    let script = repo_root()
        .join("tests/browser")
        .join(format!("{script}.cjs"));
    let output = Command::new("node")
        .arg(&script)
        .args(args)
        .env("NODE_PATH", &modules)
        .env("DUALRIG_CHROMIUM", &chromium)
        .output()
        .expect("node runs (install Node.js: `make tool-deps`)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{}: {stdout}{stderr}", script.display());
    assert!(
        output.status.success(),
        "{} failed ({}):\n{stdout}\n{stderr}",
        script.display(),
        output.status
    );
    stdout
}

/// Runs `tests/python/<script>.py ARGS` in the pinned virtualenv and returns its stdout; panics with
/// its output when it fails.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let python = tool_dir("DUALRIG_PYTHON_DIR", "python").join("bin/python3");
    require(
        &python,
        "the Python virtualenv of tests/python/requirements.txt",
    );
    let script = repo_root()
        .join("tests/python")
        .join(format!("{script}.py"));
    let output = Command::new(&python)
        .arg(&script)
        .args(args)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{} failed ({}):\n{stdout}\n{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
