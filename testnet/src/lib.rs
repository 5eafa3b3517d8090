//! Test beds for the TNC system: real software TPMs, the measured-boot
//! simulator, a software AK for appraisal tests and benchmarks, and later
//! topologies and load generators. Used by `testnet`'s own tests and
//! binary; product code never depends on it.

#![forbid(unsafe_code)]

pub mod act3;
pub mod e2e;
pub mod openssl;
pub mod postgres;
pub mod simulator;
pub mod soft_ak;
pub mod swtpm;
