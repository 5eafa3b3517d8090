//! The admin API's JSON bodies, shared by the PDP (`tnc_server::admin`) and
//! its clients (`tnc-monitor`, `tnc-server ... --server`). Documented in
//! `docs/admin-api.md`. Requests reject unknown fields: a misspelt field is
//! an error the operator sees, not a default silently taken.

use serde::{Deserialize, Serialize};

/// The subject OU of an admin certificate that may only read.
pub const OU_READ: &str = "tnc-admin-read";
/// The subject OU of an admin certificate that may also act (re-assess,
/// revoke, forget, load a policy).
pub const OU_WRITE: &str = "tnc-admin-write";

/// What an admin certificate allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum AdminRole {
    ReadOnly,
    ReadWrite,
}

impl AdminRole {
    /// The role a certificate's subject OU names, if it names one.
    pub fn from_ou(ou: &str) -> Option<Self> {
        match ou {
            OU_READ => Some(Self::ReadOnly),
            OU_WRITE => Some(Self::ReadWrite),
            _ => None,
        }
    }

    pub fn ou(self) -> &'static str {
        match self {
            Self::ReadOnly => OU_READ,
            Self::ReadWrite => OU_WRITE,
        }
    }
}

/// `GET /v1/whoami`: the caller as the PDP sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhoAmI {
    pub name: String,
    pub role: AdminRole,
}

/// An error answer: what was wrong and, where there is one, what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiError {
    pub error: String,
}

/// `GET /v1/devices`: one enrolled device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Device {
    /// SHA-256 of its EK certificate, hex.
    pub device: String,
    pub role: String,
    /// The Name of its AK, hex.
    pub ak_name: String,
    /// allow, isolate, no-access; None before its first verdict.
    pub last_verdict: Option<String>,
    /// Unix seconds of its last attestation.
    pub last_seen: u64,
    pub enrolled_at: u64,
    /// IMA entries appraised so far (None: the next login sends a whole list).
    pub ima_entries: Option<u64>,
    pub tpm_reset_count: Option<u32>,
    /// Who authenticated on its last session, if anyone did.
    #[serde(default)]
    pub user: Option<String>,
    /// The host it says it runs on (a VM's hypervisor host, a terminal's
    /// name): reported by the endpoint, not attested.
    #[serde(default)]
    pub host: Option<String>,
    /// Findings of its last decision that depart from the policy (0: it
    /// matched the reference values).
    #[serde(default)]
    pub drift: u32,
}

/// One appraisal of a device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attestation {
    /// Its number in the store: a later attestation has a larger one.
    pub id: i64,
    pub at: i64,
    pub verdict: String,
    /// What the appraisal found, one line each (PCR, event, path, expected
    /// and seen digests).
    pub findings: Vec<String>,
}

/// A revoked ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Revocation {
    /// Its place in the revocation log.
    pub seq: i64,
    pub at: i64,
    pub device: String,
    pub ticket: String,
    pub certificate_sha256: String,
    pub not_after: i64,
    pub reason: String,
}

/// `GET /v1/devices/{id}`: a device, its recent attestations (newest first)
/// and its revoked tickets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceDetail {
    #[serde(flatten)]
    pub device: Device,
    pub attestations: Vec<Attestation>,
    pub revocations: Vec<Revocation>,
}

/// `GET /v1/audit`: one entry of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub seq: i64,
    pub at: i64,
    pub kind: String,
    pub subject: String,
    pub detail: String,
    pub hash: String,
}

/// `GET /v1/policies`: the current version of a role's reference values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyVersion {
    pub role: String,
    pub version: i64,
    /// SHA-256 of the TOML text, hex.
    pub sha256: String,
    /// Unix seconds.
    pub loaded_at: i64,
}

/// `GET /v1/sessions`: a PB-TNC session open on this PDP (each PDP on a
/// shared store lists its own).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    /// Its number in this PDP's life (the event stream's `session`).
    pub session: u64,
    pub peer: String,
    /// tcp or quic.
    pub transport: String,
    /// Unix seconds.
    pub opened_at: u64,
    /// Set once decided: the device, its role, who authenticated, the
    /// standing verdict and when it was reached.
    pub device: Option<String>,
    pub role: Option<String>,
    pub user: Option<String>,
    pub verdict: Option<String>,
    pub assessed_at: Option<u64>,
    /// Re-assessments on this session so far.
    pub reassessments: u32,
}

/// `GET /v1/credentials`: a credential issued on allow (a certificate for
/// the channel key and the access ticket that names it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Credential {
    /// The ticket's ID, hex (what a revocation names).
    pub ticket: String,
    pub device: String,
    /// Unix seconds it was issued.
    pub issued_at: i64,
    pub user: Option<String>,
    /// The channel role it was issued for.
    pub role: String,
    /// The certificate's serial, hex, and SHA-256 of its DER, hex.
    pub serial: String,
    pub certificate_sha256: String,
    pub not_after: i64,
    /// Its place in the revocation log, if revoked.
    pub revoked: Option<i64>,
}

/// `GET /v1/pairings`: the VMs serving channels through this PDP and the
/// pairings it made lately (never their keys).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pairings {
    pub serving: Vec<ServingVm>,
    /// Newest first.
    pub recent: Vec<PairingRecord>,
}

/// A VM whose control session is open for pairings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServingVm {
    /// Its name in tickets.
    pub name: String,
    pub device: String,
    pub address: String,
    pub quic_address: Option<String>,
    /// Unix seconds it registered.
    pub since: u64,
}

/// A pairing a terminal asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PairingRecord {
    /// Its ID, hex (none when it was not made).
    pub id: Option<String>,
    pub vm: String,
    /// The terminal's device ID.
    pub terminal: String,
    pub at: u64,
    pub expires: u64,
    /// acknowledged, or why not: not-serving, no-ack, busy, random.
    pub outcome: String,
}

/// `POST /v1/devices/{id}/revoke`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// Why, for the audit log and the subscribers.
    pub reason: String,
}

/// `POST /v1/policies/{role}`: reference values (TOML, as `policy load`
/// reads them) to record as the role's new version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyLoad {
    pub reference_values: String,
}

/// What an action did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "done", rename_all = "snake_case")]
pub enum ActionResult {
    /// A re-assessment was asked of every PDP on the store (of one device,
    /// or of all open sessions).
    ReassessRequested { device: Option<String> },
    /// The device's unexpired tickets were revoked (pushed to gateways and
    /// VMs).
    Revoked { device: String, tickets: u64 },
    /// The device was forgotten: its next login enrolls its AK again.
    Forgotten { device: String },
    /// Reference values recorded as the role's new version (None: the same
    /// text is the current version already).
    PolicyLoaded { role: String, version: Option<i64> },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_come_only_from_their_own_ou() {
        assert_eq!(AdminRole::from_ou(OU_READ), Some(AdminRole::ReadOnly));
        assert_eq!(AdminRole::from_ou(OU_WRITE), Some(AdminRole::ReadWrite));
        for other in ["gateway", "vm", "", "TNC-ADMIN-WRITE", "tnc-admin-write "] {
            assert_eq!(AdminRole::from_ou(other), None, "{other:?}");
        }
        for r in [AdminRole::ReadOnly, AdminRole::ReadWrite] {
            assert_eq!(AdminRole::from_ou(r.ou()), Some(r));
        }
    }
}
