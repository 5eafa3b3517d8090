//! The policy decision point: the PT-TLS listener, one PB-TNC session per
//! connection, the validators (OS and attestation), and the device registry.
//! The `tnc-server` binary adds the operator CLI on top.

#![forbid(unsafe_code)]

pub mod address;
pub mod admin;
pub mod auth;
pub mod budget;
pub mod certs;
pub mod clock;
pub mod config;
pub mod continuous;
pub mod daemon;
pub mod devices;
pub mod ek_trust;
pub mod error;
pub mod events;
pub mod guard;
pub mod imv;
pub mod issue;
pub mod log;
pub mod metrics;
pub mod net;
pub mod pairing;
pub mod pdp;
pub mod pending;
pub mod revocation;
pub mod store;
