//! Evidence formats and appraisal: TPM 2.0 structures, quote verification, the TCG
//! PC Client event log and the Linux IMA list, reference values and verdicts.
//!
//! Pure functions from (evidence, reference values, now) to a verdict with
//! findings: no I/O, no clock. Nothing is implemented yet: this crate is filled by
//! the evidence issue ("TPM 2.0 evidence end to end"), and until then it exports
//! nothing, so nothing can rely on an appraisal that does not exist.

#![forbid(unsafe_code)]
