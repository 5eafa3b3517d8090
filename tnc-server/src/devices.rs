//! Devices the PDP has enrolled, with what the next attestation continues
//! from. Held in memory for now; the durable store replaces this registry
//! behind the same methods.

use policy::appraisal::DeviceState;
use policy::Verdict;
use std::collections::HashMap;
use std::sync::Mutex;
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
}

#[derive(Debug, Default)]
pub struct Devices {
    by_id: Mutex<HashMap<[u8; 32], DeviceRecord>>,
}

impl Devices {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], DeviceRecord>> {
        // A panic while holding the lock leaves whole records only (every
        // write is one insert), so the data stays usable.
        self.by_id.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, id: &[u8; 32]) -> Option<DeviceRecord> {
        self.lock().get(id).cloned()
    }

    pub fn put(&self, record: DeviceRecord) {
        self.lock().insert(record.device_id, record);
    }

    pub fn list(&self) -> Vec<DeviceRecord> {
        let mut v: Vec<_> = self.lock().values().cloned().collect();
        v.sort_by_key(|d| d.device_id);
        v
    }
}
