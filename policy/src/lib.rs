//! Evidence formats and appraisal: TPM 2.0 structures, quote verification, the TCG
//! PC Client event log and the Linux IMA list, reference values and verdicts.
//!
//! Pure functions from (evidence, reference values, now) to a verdict with
//! findings: no I/O, no clock.

#![forbid(unsafe_code)]

pub mod appraisal;
pub mod digest;
pub mod enrollment;
pub mod eventlog;
pub mod ima;
pub mod quote;
pub mod reference;
pub mod tpm;

pub use appraisal::{appraise, Appraisal, Finding, Verdict};
pub use digest::HashAlg;
