//! Integration tests of dualrig-worker: real kernels on a real (or software) adapter, real binaries.
mod hash;
mod shaders;
