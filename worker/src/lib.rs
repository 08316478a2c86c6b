//! The dualrig worker, run by a miner beside its miner: it transcodes video segments on the GPU's
//! encoder ASICs (or libx264) for the coordinator, and hashes stored data with BLAKE3 on the GPU's shader
//! cores (or the CPU) to prove it still holds what it hosts.
//!
//! [`session`] keeps the outbound connection to one of the [`coordinators`] alive, [`job`] turns one transcode job
//! into a signed result, [`hash`] is the GPU/CPU BLAKE3 hasher, [`store`] keeps hosted blobs with their
//! outboards, [`hosting`] serves them (pushes, fetches, challenges, scrubs), [`bench`] measures the rig, and
//! [`dashboard`] shows all of it on a page (`--dashboard-addr`). [`slots`] holds jobs to the worker's
//! sessions, which [`reload`] changes live.

pub mod bench;
pub mod config;
pub mod coordinators;
pub mod dashboard;
pub mod earnings;
pub mod hash;
pub mod hosting;
pub mod job;
pub mod metrics;
pub mod payment;
pub mod pull;
pub mod reload;
pub mod session;
pub mod slots;
pub mod store;

pub use config::WorkerConfig;
pub use session::Worker;
