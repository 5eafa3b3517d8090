//! A device the PDP has enrolled, with what the next attestation continues
//! from (kept in the [`Store`](crate::store::Store)).

use policy::appraisal::DeviceState;
use policy::Verdict;
use tnc_proto::attestation::Role;

/// One enrolled device.
#[derive(Clone, Debug)]
pub struct DeviceRecord {
    /// SHA-256 of the EK certificate: the TPM, hence the device.
    pub device_id: [u8; 32],
    pub role: Role,
    pub ek_certificate: Vec<u8>,
    /// The Name of the AK proven (by credential activation) to live in that TPM.
    pub ak_name: Vec<u8>,
    pub ak_public: Vec<u8>,
    /// Where the next appraisal continues (None: from a whole IMA list).
    pub state: Option<DeviceState>,
    pub last_verdict: Option<Verdict>,
    /// Unix seconds.
    pub last_seen: u64,
    /// Unix seconds of the credential activation that proved the AK.
    pub enrolled_at: u64,
    /// Who authenticated on its last session (SASL user or client
    /// certificate), if anyone did.
    pub user: Option<String>,
    /// The host its last Hello named (reported, not attested).
    pub host: Option<String>,
    /// How many findings of its last decision depart from the policy (0:
    /// it matched the reference values).
    pub drift: u32,
}
