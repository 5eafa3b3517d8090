//! Test beds for the TNC system: real software TPMs, and later the measured-boot
//! simulator, topologies and load generators. Used by `testnet`'s own tests and
//! binary; product code never depends on it.

#![forbid(unsafe_code)]

pub mod swtpm;
