//! Invariants of the architecture that the build itself can show.

/// "The coordinator never links wgpu" (ARCHITECTURE.md): GPU code lives in the worker only, so a
/// coordinator builds and runs on machines without a GPU stack. `cargo tree` over the coordinator's
/// normal dependencies (what its binary links) names no GPU crate.
#[test]
fn the_coordinator_never_links_wgpu() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "--package",
            "dualrig-coordinator",
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        crates.contains(&"dualrig-media") && crates.contains(&"tonic"),
        "the tree lists the coordinator's dependencies: {tree}"
    );
    let gpu: Vec<&&str> = crates
        .iter()
        .filter(|c| c.starts_with("wgpu") || c.starts_with("naga") || **c == "dualrig-worker")
        .collect();
    assert!(gpu.is_empty(), "the coordinator links {gpu:?}");
}
