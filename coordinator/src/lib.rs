//! The dualrig coordinator: takes transcode jobs from clients, hands each to a connected worker, verifies
//! every rendition that comes back and retries elsewhere when a worker fails, stalls or vanishes.
//!
//! Workers dial in (they sit behind NAT): [`service`] handles their Hello/Register/Attach calls and the
//! clients' Transcode calls, [`pool`] tracks who is connected and what each holds, [`dispatch`] runs a job
//! through attempts on workers, and [`verify`] decides whether a result is what was asked for. The
//! [`ledger`] holds accounts and stake; [`stakes`] carries stake to the pool, which draws workers by it.

pub mod cluster;
pub mod config;
pub mod db;
pub mod dispatch;
pub mod error;
pub mod evidence;
pub mod fault;
pub mod inspections;
pub mod ledger;
pub mod limits;
pub mod metrics;
pub mod network;
pub mod paging;
pub mod pool;
pub mod proposals;
pub mod relay;
pub mod server;
pub mod service;
pub mod sessions;
pub mod simulate;
pub mod sip;
pub mod slashing;
pub mod slots;
pub mod staging;
pub mod stakes;
pub mod statements;
pub mod storage;
pub mod verify;

pub use config::Config;
pub use server::{Coordinator, serve};
