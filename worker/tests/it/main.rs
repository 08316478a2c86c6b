//! Integration tests of dualrig-worker: real kernels on a real (or software) adapter, real binaries.
mod bench;
// Headless Chromium and the other tools outside Rust, shared with the coordinator's tests.
#[path = "../../../coordinator/tests/it/browser.rs"]
#[allow(dead_code)]
mod browser;
mod dashboard;
mod failover;
mod hash;
mod metrics;
mod sessions;
mod shaders;
