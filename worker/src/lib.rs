//! placeholder
pub mod bench;
pub mod hash;
