//! The IETF Network Endpoint Assessment protocols, byte for byte, with no I/O.
//!
//! - [`pt_tls`]: PT-TLS (RFC 6876) messages, a framer for a TLS byte stream, and the
//!   version and SASL negotiation of both sides.
//! - [`pb_tnc`]: PB-TNC (RFC 5793) batches and messages, and the Posture Broker
//!   Client and Server state machines (§3.2).
//! - [`pa_tnc`]: PA-TNC (RFC 5792) messages and the IETF standard attributes.
//! - [`attestation`]: the project's own PA-TNC attributes (TPM evidence, AK
//!   enrollment), vendor 32473, CBOR values.
//! - [`dissect`]: a field-by-field description of raw bytes, for operators.
//!
//! Like `quinn-proto`, nothing here opens a socket, reads a clock or spawns a
//! thread: bytes go in, decoded messages and bytes to send come out. Decoders borrow
//! from the input; no attribute or message body is copied.

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

// First: its `wire_enum!` is used by the modules below.
#[macro_use]
pub mod codec;
pub mod admin;
pub mod attestation;
mod cbor;
pub mod common;
pub mod credential;
pub mod dissect;
pub mod gateway;
pub mod pa_tnc;
pub mod pb_tnc;
pub mod pt_tls;
pub mod revocation;

pub use cbor::{vendor_message, VendorAttribute};
pub use codec::{Codec, Malformed, Reader, U24};
