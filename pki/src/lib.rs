//! Keys and certificates (P-256 and SM2), EK certificate chains, MakeCredential,
//! access tickets and the RFC 8998 ShangMi provider for rustls and quinn.
//!
//! Nothing is implemented yet: the evidence issue brings the EK chain checks and
//! MakeCredential, later issues the SM2 certificates, tickets and the provider.
//! Until then this crate exports nothing.

#![forbid(unsafe_code)]
