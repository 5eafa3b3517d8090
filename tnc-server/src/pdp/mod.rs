//! The policy decision point: what every session shares ([`PdpContext`]) and
//! the PB-TNC session that runs the validators ([`session`]).

pub mod session;

use crate::config::OsPolicy;
use crate::devices::Devices;
use pki::rand::{SecureRandom, SystemRandom};
use policy::reference::CompiledReference;
use policy::tpm::PcrSelection;
use policy::Verdict;
use std::collections::BTreeMap;
use std::sync::Arc;
use tnc_proto::attestation::Role;

/// Policy and state shared by all sessions.
pub struct PdpContext {
    /// Reference values per role: a terminal and a VM boot different things.
    pub references: BTreeMap<Role, CompiledReference>,
    /// The PCRs every quote must cover.
    pub selection: Vec<PcrSelection>,
    /// DER certificates of the EK CAs (roots) and their intermediates.
    pub ek_roots: Vec<Vec<u8>>,
    pub ek_intermediates: Vec<Vec<u8>>,
    /// The verdict for an endpoint that sends no TPM evidence (operator's
    /// choice; default isolate, never silently allow).
    pub no_evidence: Verdict,
    pub os_policy: OsPolicy,
    pub devices: Arc<Devices>,
    pub rng: SystemRandom,
    /// Unix seconds; replaceable in tests.
    pub clock: fn() -> u64,
}

impl PdpContext {
    pub fn now(&self) -> u64 {
        (self.clock)()
    }

    /// Fills `buf` from the system's CSPRNG. A failing CSPRNG is not
    /// recoverable for a verifier: nonces would repeat.
    pub fn fill_random(&self, buf: &mut [u8]) {
        #[allow(clippy::expect_used)]
        self.rng
            .fill(buf)
            .expect("the system random number generator failed");
    }
}

pub fn system_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
