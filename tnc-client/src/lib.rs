//! The Access Requestor: the login agent (`tnc-client login`), its integrity
//! measurement collectors and the TPM layer.
//!
//! - [`agent`]: the login agent's PT-TLS + PB-TNC session as the posture broker
//!   client, and the TLS 1.3 connection to the PDP (server certificate always
//!   checked against the configured CA);
//! - [`attest`]: the attestation collector (AK enrollment, quotes, logs);
//! - [`channel`]: the SM2 channel key and the credentials granted for it;
//! - [`tunnel`]: the ShangMi channel between a terminal and a VM;
//! - [`pairing`]: `serve` and `connect`, the two ends of a pairing;
//! - [`os`]: the operating-system collector (IETF attributes of the running
//!   system);
//! - [`collect`]: the UEFI event log and the IMA list from an entry offset;
//! - [`tpm`]: EKs and their certificates, attestation keys that survive
//!   restarts, quotes, credential activation, through tss-esapi;
//! - [`config`] reads `client.toml`.

#![forbid(unsafe_code)]

pub mod agent;
pub mod attest;
pub mod channel;
pub mod collect;
pub mod config;
pub mod os;
pub mod pairing;
pub mod tpm;
pub mod tunnel;
