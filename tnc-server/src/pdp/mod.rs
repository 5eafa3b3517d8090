//! The policy decision point: what every session shares ([`PdpContext`]) and
//! the PB-TNC session that runs the validators ([`session`]).

pub mod session;
#[cfg(test)]
mod tests;

use crate::clock::Clock;
use crate::config::{OsPolicy, ServerConfig};
pub use crate::imv::ReferenceError;
use crate::store::PdpStore;
use pki::rand::SystemRandom;
use policy::reference::CompiledReference;
use policy::tpm::PcrSelection;
use policy::Verdict;
use std::collections::BTreeMap;
use std::sync::Arc;
use tnc_proto::attestation::Role;

/// Policy and state shared by all sessions.
pub struct PdpContext {
    /// Reference values per role (a terminal and a VM boot different things),
    /// as of the newest policy version in the store.
    pub policies: PolicyCache,
    /// The PCRs every quote must cover.
    pub selection: Vec<PcrSelection>,
    /// DER certificates of the EK CAs (trust anchors; empty: no TPM can
    /// enroll, see `EkTrust`) and their intermediates.
    pub ek_roots: Vec<Vec<u8>>,
    pub ek_intermediates: Vec<Vec<u8>>,
    /// The verdict for an endpoint that sends no TPM evidence (operator's
    /// choice; default isolate, never silently allow).
    pub no_evidence: Verdict,
    /// Verify quotes signed with SHA-1 (legacy vTPMs); logged when used.
    pub allow_sha1_quotes: bool,
    pub os_policy: OsPolicy,
    pub store: Arc<dyn PdpStore>,
    /// User authentication inside PT-TLS.
    pub sasl: crate::config::Sasl,
    /// Wrong passwords counted per user name and per address.
    pub guesses: crate::guard::GuessGuard,
    /// What all sessions together may buffer of unfinished messages.
    pub message_budget: crate::budget::MessageBudget,
    pub rng: SystemRandom,
    pub clock: Arc<dyn Clock>,
    /// Issues credentials on allow; None: the PDP issues none.
    pub issuer: Option<Arc<crate::issue::Issuer>>,
    /// The VMs serving channels now, for pairings.
    pub pairings: crate::pairing::Registry,
    /// Continuous trust: intervals, jitter, stale devices.
    pub reassessment: crate::config::Reassessment,
    /// What tells open sessions to re-assess now (the watcher, tests).
    pub triggers: tokio::sync::broadcast::Sender<crate::continuous::Trigger>,
    /// The newest revocation number in the store, as the watcher last read
    /// it: the revocation stream's subscribers wake on its change.
    pub newest_revocation: tokio::sync::watch::Sender<i64>,
    /// Woken when this PDP stored a revocation: the watcher reads the
    /// store at once instead of at its next poll.
    pub revoked: Arc<tokio::sync::Notify>,
    /// This PDP process among those sharing the store: the owner named in
    /// the leases it holds (random at start).
    pub instance: String,
    /// What the metrics listener serves.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// The PCRs quotes cover unless the configuration says otherwise.
pub const DEFAULT_PCRS: &str = "sha256:0,1,2,3,4,5,6,7,8,9,10";

impl PdpContext {
    /// A PDP on `store` with the defaults of an empty configuration: no EK
    /// CA trusted, the default PCRs and OS policy, no user authentication,
    /// the system clock.
    pub fn new(store: Arc<dyn PdpStore>) -> Self {
        let limits = crate::config::Limits::default();
        Self {
            policies: PolicyCache::default(),
            #[allow(clippy::expect_used)]
            selection: policy::tpm::parse_selection(DEFAULT_PCRS)
                .expect("the default PCR selection parses"),
            ek_roots: Vec::new(),
            ek_intermediates: Vec::new(),
            no_evidence: Verdict::Isolate,
            allow_sha1_quotes: false,
            os_policy: OsPolicy::default(),
            store,
            sasl: crate::config::Sasl::default(),
            guesses: crate::guard::GuessGuard::default(),
            message_budget: crate::budget::MessageBudget::new(limits.message_budget_mib),
            rng: SystemRandom::new(),
            clock: Arc::new(crate::clock::SystemClock),
            issuer: None,
            pairings: crate::pairing::Registry::default(),
            reassessment: crate::config::Reassessment::default(),
            triggers: tokio::sync::broadcast::channel(crate::continuous::TRIGGER_QUEUE).0,
            newest_revocation: tokio::sync::watch::channel(0).0,
            revoked: Arc::default(),
            instance: {
                let mut id = [0u8; 8];
                let _ = pki::rand::SecureRandom::fill(&SystemRandom::new(), &mut id);
                crate::store::hex(&id)
            },
            metrics: Arc::default(),
        }
    }

    /// Everything the sessions share, read from the files the config names.
    pub fn from_config(
        config: &ServerConfig,
        store: Arc<dyn PdpStore>,
    ) -> Result<Self, crate::error::ConfigError> {
        let trust = crate::ek_trust::EkTrust::load(config, system_clock() as i64)?;
        let ek_roots = trust.anchors();
        let ek_intermediates = trust.intermediates();
        if ek_roots.is_empty() {
            tracing::warn!(
                "attestation: no EK CA is trusted (vendor_ek_roots = {}, ek_roots {:?}): \
                 no TPM can enroll, so new TPM endpoints get the no_evidence verdict ({}); \
                 add your TPM vendor's EK CA with `tnc-server ek-roots add`",
                config.attestation.vendor_ek_roots,
                config.attestation.ek_roots,
                config.attestation.no_evidence.name()
            );
        } else if trust.usable() == 0 {
            tracing::warn!(
                anchors = ek_roots.len(),
                "attestation: every trusted EK CA has expired: new TPM endpoints get no \
                 access (their EK certificates cannot chain); `tnc-server ek-roots list` \
                 shows them"
            );
        } else {
            tracing::info!(
                anchors = ek_roots.len(),
                usable = trust.usable(),
                intermediates = ek_intermediates.len(),
                "EK trust anchors loaded (tnc-server ek-roots list shows them)"
            );
        }
        let selection =
            policy::tpm::parse_selection(&config.attestation.pcrs).ok_or_else(|| {
                crate::error::ConfigError::new(
                    "attestation.pcrs",
                    format!(
                        "{:?} is not a PCR selection like \"{DEFAULT_PCRS}\"",
                        config.attestation.pcrs
                    ),
                )
            })?;
        Ok(PdpContext {
            selection,
            ek_roots,
            ek_intermediates,
            no_evidence: config.attestation.no_evidence,
            allow_sha1_quotes: config.attestation.allow_sha1_quotes,
            os_policy: config.os.clone(),
            sasl: config.auth.sasl,
            guesses: crate::guard::GuessGuard::new(config.auth.guess_limits()),
            message_budget: crate::budget::MessageBudget::new(config.limits.message_budget_mib),
            issuer: crate::issue::Issuer::from_config(config)?.map(Arc::new),
            reassessment: config.reassessment.clone(),
            ..PdpContext::new(store)
        })
    }

    /// Unix seconds.
    pub fn now(&self) -> u64 {
        self.clock.unix()
    }

    /// What the attestation validator works with, as of now.
    pub fn attestation_env(&self) -> crate::imv::attestation::Env<'_> {
        crate::imv::attestation::Env {
            ek_roots: &self.ek_roots,
            ek_intermediates: &self.ek_intermediates,
            selection: &self.selection,
            no_evidence: self.no_evidence,
            allow_sha1_quotes: self.allow_sha1_quotes,
            now: self.now(),
            rng: &self.rng,
        }
    }
}

/// The compiled reference values of the policy versions last seen in the
/// store; refreshed when `tnc-server policy load` records a new version.
#[derive(Default)]
pub struct PolicyCache {
    current: std::sync::RwLock<BTreeMap<Role, (i64, Arc<CompiledReference>)>>,
}

impl PdpContext {
    /// The reference values a device of `role` is appraised by now, or why
    /// there are none.
    pub async fn reference(&self, role: Role) -> Result<Arc<CompiledReference>, ReferenceError> {
        let versions = self.store.policy_versions().await?;
        let Some(&want) = versions.get(&role) else {
            return Err(ReferenceError::Missing(role));
        };
        let cached = {
            let current = self
                .policies
                .current
                .read()
                .unwrap_or_else(|p| p.into_inner());
            current
                .get(&role)
                .filter(|(v, _)| *v == want)
                .map(|(_, r)| r.clone())
        };
        if let Some(r) = cached {
            return Ok(r);
        }
        let bodies = self.store.current_policies().await?;
        let Some((version, body)) = bodies.get(&role) else {
            return Err(ReferenceError::Missing(role));
        };
        let compiled = policy::reference::ReferenceValues::from_toml(body)
            .and_then(|r| r.compile())
            .map_err(|e| ReferenceError::Invalid {
                role,
                version: *version,
                why: e.to_string(),
            })?;
        let compiled = Arc::new(compiled);
        self.policies
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(role, (*version, compiled.clone()));
        Ok(compiled)
    }
}

pub use crate::clock::system_unix as system_clock;
