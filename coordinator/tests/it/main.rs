//! End-to-end tests of the coordinator with real workers, real clients and real video on loopback.
mod bad_input;
mod binary;
mod crash;
mod e2e;
mod failover;
mod faults;
mod ledger;
mod support;
