//! The Access Requestor: the login agent (`tnc-client login`), its integrity
//! measurement collectors and the TPM layer.
//!
//! Here today: the operating-system collector ([`os`]), which reads the IETF
//! standard attributes from the running system; the evidence collectors
//! ([`collect`]: the UEFI event log, the IMA list from an entry offset); and the
//! TPM layer ([`tpm`]):
//! EKs and their certificates, attestation keys that survive restarts, quotes,
//! credential activation, through tss-esapi. The protocol side of the agent is
//! `tnc-proto`'s sans-IO PT-TLS and PB-TNC client; `testnet demo` drives both end
//! to end. The networked login agent arrives with the PDP issue.

#![forbid(unsafe_code)]

pub mod agent;
pub mod attest;
pub mod collect;
pub mod os;
pub mod tpm;
