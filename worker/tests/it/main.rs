//! Integration tests of dualrig-worker: real kernels on a real (or software) adapter, real binaries.
mod bench;
mod hash;
mod sessions;
mod shaders;
