//! The network access gateway, the policy enforcement point between
//! terminals and the VMs' network (docs/gateway.md), and the enforcement
//! pieces a serving VM shares with it.
//!
//! - [`revocation`]: the subscriber's side of the PDP's revocation stream:
//!   what is revoked, the connections carried per ticket, cut on revocation.
//! - [`gate`]: the gateway: a terminal's first frame carries its access
//!   ticket, checked offline (the PDP's SM2 key, expiry, the VM named, not
//!   revoked, limits), then the connection is relayed to the VM. The
//!   ShangMi TLS runs end to end through it: the gateway holds no channel
//!   key and sees no plaintext.
//! - [`config`]: `gateway.toml`; [`enrol`]: the one-time-token enrolment
//!   that gets the gateway its certificate.
//!
//! It depends on no store and on no TPM.

#![forbid(unsafe_code)]

pub mod config;
pub mod enrol;
pub mod gate;
pub mod metrics;
pub mod revocation;
