//! End-to-end tests of the coordinator with real workers, real clients and real video on loopback.
mod architecture;
mod attacks;
mod bad_input;
mod binary;
mod browser;
mod crash;
mod e2e;
mod evidence;
mod failover;
mod faults;
mod honest;
mod ledger;
mod readme;
mod storage;
mod support;
mod survival;
