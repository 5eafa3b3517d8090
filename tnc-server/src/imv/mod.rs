//! Integrity Measurement Verifiers: one per PA subtype, each in its own file.
//! Each decides allow / isolate / no access with reasons; the session combines
//! them (RFC 5793 §4.6: the posture broker server's recommendation reflects all
//! validators).

pub mod attestation;
pub mod os;

use policy::Verdict;
use tnc_proto::attestation::Role;

/// One reason for a verdict, for PB-Reason-String and the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
    /// The verdict this reason alone implies.
    pub severity: Verdict,
    pub text: String,
}

/// A validator's decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    pub verdict: Verdict,
    /// Most severe first.
    pub reasons: Vec<Reason>,
}

impl Assessment {
    pub fn single(verdict: Verdict, text: impl Into<String>) -> Self {
        Self {
            verdict,
            reasons: vec![Reason {
                severity: verdict,
                text: text.into(),
            }],
        }
    }

    pub fn from_reasons(reasons: Vec<Reason>, otherwise: &str) -> Self {
        let verdict = reasons
            .iter()
            .map(|r| r.severity)
            .max()
            .unwrap_or(Verdict::Allow);
        if reasons.is_empty() {
            return Self::single(Verdict::Allow, otherwise);
        }
        let mut reasons = reasons;
        reasons.sort_by_key(|r| std::cmp::Reverse(r.severity));
        Self { verdict, reasons }
    }
}

/// Why a session has no reference values to appraise by.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// The store could not be read: the PDP cannot decide (no access).
    #[error("the PDP cannot read its policy: {0}")]
    Store(#[from] crate::store::StoreError),
    /// No policy was loaded for the role (isolate, until one is).
    #[error("no reference values for the role {}: nothing is allowed without them", .0.name())]
    Missing(Role),
    /// The stored policy does not compile (isolate: the operator's to fix).
    #[error("policy version {version} for {}: {why}", role.name())]
    Invalid {
        role: Role,
        version: i64,
        why: String,
    },
}

impl ReferenceError {
    /// The verdict a device gets without reference values.
    pub fn verdict(&self) -> Verdict {
        match self {
            ReferenceError::Store(_) => Verdict::NoAccess,
            ReferenceError::Missing(_) | ReferenceError::Invalid { .. } => Verdict::Isolate,
        }
    }
}
