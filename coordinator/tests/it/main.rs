//! End-to-end tests of the coordinator with real workers, real clients and real video on loopback.
mod architecture;
mod attacks;
mod bad_input;
mod binary;
mod crash;
mod e2e;
mod evidence;
mod exposition;
mod failover;
mod faults;
mod honest;
mod ledger;
mod metrics;
mod storage;
mod support;
mod survival;
