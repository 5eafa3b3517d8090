//! The Access Requestor: the login agent (`tnc-client login`), its integrity
//! measurement collectors and the TPM layer.
//!
//! Today the protocol side of the agent lives in `tnc-proto` (the sans-IO PT-TLS
//! client and PB-TNC client state machines, driven end to end by `testnet demo`).
//! The TPM layer (tss-esapi) arrives with the evidence issue and the networked
//! login agent with the PDP issue; until then this crate exports nothing.

#![forbid(unsafe_code)]
