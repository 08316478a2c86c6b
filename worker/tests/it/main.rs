//! Integration tests of dualrig-worker: real kernels on a real (or software) adapter, real binaries.
mod bench;
mod hash;
mod metrics;
mod sessions;
mod shaders;
