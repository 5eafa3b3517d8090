//! The measured-boot simulator: from a profile of what an endpoint boots and runs,
//! the measurements firmware, shim/GRUB and the kernel's IMA would make.
//!
//! [`Profile::measure`] writes a crypto-agile TCG PC Client event log and an IMA
//! `ima-ng` binary list, and lists every PCR extend they stand for, so that the
//! same measurements can be applied to a real swtpm ([`Measurements::apply`]) or
//! to a software PCR bank ([`Measurements::pcr_values`]). Replaying the logs gives
//! exactly those PCRs.
//!
//! Digests of boot applications are SHA hashes of the file content here (real
//! firmware uses the PE Authenticode hash); for appraisal that makes no
//! difference, since reference values hold whatever digest the log carries.

use crate::swtpm::Swtpm;
use policy::digest::hex;
use policy::eventlog::{
    EV_EFI_ACTION, EV_EFI_BOOT_SERVICES_APPLICATION, EV_EFI_PLATFORM_FIRMWARE_BLOB,
    EV_EFI_VARIABLE_DRIVER_CONFIG, EV_IPL, EV_NO_ACTION, EV_SEPARATOR, EV_S_CRTM_VERSION,
};
use policy::reference::{ReferenceValues, CMDLINE_PCR, CMDLINE_PREFIX, IMA_PCR, KERNEL_PCR};
use policy::tpm::PcrValues;
use policy::HashAlg;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A file measured by content.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blob {
    /// Where it lives (event data for the kernel, the IMA path for files).
    pub path: String,
    /// Its content; profiles give text, and a tampered profile changes it.
    pub content: String,
}

/// What an endpoint boots and runs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    /// `terminal` or `vm`.
    #[serde(default = "default_role")]
    pub role: String,
    /// PCR banks the TPM has active (`sha1`, `sha256`, `sm3`, ...).
    #[serde(default = "default_banks")]
    pub banks: Vec<String>,
    /// Firmware version string (EV_S_CRTM_VERSION) and firmware volumes.
    pub firmware_version: String,
    pub firmware: Vec<Blob>,
    /// Secure Boot variables measured into PCR 7 (name -> content).
    #[serde(default)]
    pub secure_boot: BTreeMap<String, String>,
    /// Boot applications in load order (shim, GRUB), into PCR 4.
    pub bootloader: Vec<Blob>,
    /// Kernel image and initrd, measured by GRUB into PCR 9.
    pub kernel: Blob,
    pub initrd: Blob,
    /// Kernel command line, measured by GRUB into PCR 8.
    pub cmdline: String,
    /// Files IMA measures after boot, in order.
    #[serde(default)]
    pub ima: Vec<Blob>,
    /// Of those, the key applications the reference values insist on.
    #[serde(default)]
    pub key_applications: Vec<String>,
}

fn default_role() -> String {
    "terminal".into()
}

fn default_banks() -> Vec<String> {
    vec!["sha1".into(), "sha256".into()]
}

/// One PCR extend in every active bank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extend {
    pub pcr: u32,
    pub digests: Vec<(HashAlg, Vec<u8>)>,
}

/// What a boot and the runtime measured.
#[derive(Clone, Debug)]
pub struct Measurements {
    pub banks: Vec<HashAlg>,
    /// The crypto-agile event log (binary_bios_measurements).
    pub event_log: Vec<u8>,
    /// The IMA list (binary_runtime_measurements), ima-ng template.
    pub ima: Vec<u8>,
    /// Every extend, boot first, then IMA, in order.
    pub extends: Vec<Extend>,
    /// How many of `extends` the boot made (the rest are IMA's, one per entry).
    pub boot_extends: usize,
}

impl Profile {
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn banks(&self) -> Result<Vec<HashAlg>, String> {
        self.banks
            .iter()
            .map(|b| HashAlg::from_name(b).ok_or_else(|| format!("unknown bank {b:?}")))
            .collect()
    }

    /// The measurements of one boot and the IMA entries after it.
    pub fn measure(&self) -> Result<Measurements, String> {
        let banks = self.banks()?;
        let mut log = EventLogWriter::new(&banks);
        // PCR 0: the static root of trust and the firmware volumes.
        log.event(0, EV_S_CRTM_VERSION, &utf16(&self.firmware_version), None);
        for blob in &self.firmware {
            // Event data: UEFI_PLATFORM_FIRMWARE_BLOB (base, length); the digest is
            // of the volume itself.
            let mut data = 0xFFC0_0000u64.to_le_bytes().to_vec();
            data.extend_from_slice(&(blob.content.len() as u64).to_le_bytes());
            log.event(
                0,
                EV_EFI_PLATFORM_FIRMWARE_BLOB,
                &data,
                Some(blob.content.as_bytes()),
            );
        }
        // PCR 7: Secure Boot policy, then the separator every PCR 0-7 gets.
        for (name, value) in &self.secure_boot {
            log.event(
                7,
                EV_EFI_VARIABLE_DRIVER_CONFIG,
                &efi_variable(name, value.as_bytes()),
                None,
            );
        }
        log.event(
            4,
            EV_EFI_ACTION,
            b"Calling EFI Application from Boot Option",
            None,
        );
        for pcr in 0..8 {
            log.event(pcr, EV_SEPARATOR, &[0, 0, 0, 0], None);
        }
        // PCR 4: the boot applications, hashed by content.
        for app in &self.bootloader {
            log.event(
                4,
                EV_EFI_BOOT_SERVICES_APPLICATION,
                &image_load_event(app),
                Some(app.content.as_bytes()),
            );
        }
        // GRUB: the command line into PCR 8, the files it loads into PCR 9.
        let cmdline = format!("{CMDLINE_PREFIX}{}", self.cmdline);
        log.event(CMDLINE_PCR, EV_IPL, cmdline.as_bytes(), None);
        for file in [&self.kernel, &self.initrd] {
            log.event(
                KERNEL_PCR,
                EV_IPL,
                file.path.as_bytes(),
                Some(file.content.as_bytes()),
            );
        }
        let boot_extends = log.extends.len();

        // IMA: boot_aggregate over PCRs 0-9 of the sha256 bank, then each file.
        let mut ima = Vec::new();
        let mut extends = log.extends.clone();
        let boot = software_replay(&banks, &extends);
        let agg_bank = if banks.contains(&HashAlg::Sha256) {
            HashAlg::Sha256
        } else {
            HashAlg::Sha1
        };
        let parts: Vec<Vec<u8>> = (0..10)
            .map(|pcr| {
                boot.get(agg_bank, pcr)
                    .map_or_else(|| vec![0; agg_bank.size()], <[u8]>::to_vec)
            })
            .collect();
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let aggregate = agg_bank.digest_parts(&refs);
        extends.push(ima_ng(
            &mut ima,
            &banks,
            agg_bank,
            &aggregate,
            "boot_aggregate",
        ));
        for f in &self.ima {
            let digest = HashAlg::Sha256.digest(f.content.as_bytes());
            extends.push(ima_ng(&mut ima, &banks, HashAlg::Sha256, &digest, &f.path));
        }
        Ok(Measurements {
            banks,
            event_log: log.bytes,
            ima,
            extends,
            boot_extends,
        })
    }

    /// The reference values of this profile as a known-good endpoint: what an
    /// operator's "learn" step would write for it.
    pub fn reference_values(&self) -> Result<ReferenceValues, String> {
        let m = self.measure()?;
        // What learn mode makes of this boot, plus what only the profile
        // knows: the key applications that must run.
        let (mut values, _) =
            ReferenceValues::learn(&self.name, HashAlg::Sha256, &m.event_log, &m.ima)?;
        if let Some(ima) = values.ima.as_mut() {
            ima.key_applications = self.key_applications.clone();
        }
        Ok(values)
    }
}

impl Measurements {
    /// The PCR values after all extends, computed in software.
    pub fn pcr_values(&self) -> PcrValues {
        software_replay(&self.banks, &self.extends)
    }

    /// The PCR values after the boot and the first `ima_entries` IMA entries.
    pub fn pcr_values_after(&self, ima_entries: usize) -> PcrValues {
        let n = (self.boot_extends + ima_entries).min(self.extends.len());
        software_replay(&self.banks, &self.extends[..n])
    }

    /// Number of IMA entries (boot_aggregate included).
    pub fn ima_entries(&self) -> usize {
        self.extends.len() - self.boot_extends
    }

    /// IMA entries `from..to` as a client would send them.
    pub fn ima_range(&self, from: usize, to: usize) -> Vec<u8> {
        let tail = self.ima_from(from);
        let mut entries = policy::ima::ImaEntries::new(&tail);
        if entries.skip_entries(to.saturating_sub(from)).is_err() {
            return tail;
        }
        tail[..entries.offset()].to_vec()
    }

    /// Extends a real TPM's PCRs with every measurement (tpm2_pcrextend, one call
    /// per event with all banks, as firmware and the kernel do).
    pub fn apply(&self, tpm: &Swtpm, workdir: &Path) -> Result<(), String> {
        self.apply_to(&tpm.tcti(), workdir)
    }

    /// [`Measurements::apply`] to the TPM behind `tcti`.
    pub fn apply_to(&self, tcti: &str, workdir: &Path) -> Result<(), String> {
        for e in &self.extends {
            let spec: Vec<String> = e
                .digests
                .iter()
                .map(|(b, d)| format!("{}={}", b.name(), hex(d)))
                .collect();
            let arg = format!("{}:{}", e.pcr, spec.join(","));
            let out = crate::swtpm::tpm2_at(tcti, workdir, "tpm2_pcrextend", &[&arg])
                .map_err(|err| err.to_string())?;
            if !out.status.success() {
                return Err(format!(
                    "tpm2_pcrextend {arg}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        Ok(())
    }

    /// The IMA list from entry `first` on (what a client sends on re-attestation).
    pub fn ima_from(&self, first: usize) -> Vec<u8> {
        let mut entries = policy::ima::ImaEntries::new(&self.ima);
        if entries.skip_entries(first).is_err() {
            return Vec::new();
        }
        self.ima[entries.offset()..].to_vec()
    }
}

/// Replays extends on zeroed PCRs (the simulator only uses PCRs 0-10).
fn software_replay(banks: &[HashAlg], extends: &[Extend]) -> PcrValues {
    let mut pcrs: BTreeMap<(HashAlg, u32), Vec<u8>> = BTreeMap::new();
    for e in extends {
        for (bank, d) in &e.digests {
            if !banks.contains(bank) {
                continue;
            }
            let v = pcrs
                .entry((*bank, e.pcr))
                .or_insert_with(|| vec![0; bank.size()]);
            bank.extend(v, d);
        }
    }
    let mut out = PcrValues::new();
    for ((b, p), v) in pcrs {
        out.insert(b, p, v);
    }
    out
}

fn utf16(s: &str) -> Vec<u8> {
    let mut v: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
    v.extend_from_slice(&[0, 0]);
    v
}

/// UEFI_IMAGE_LOAD_EVENT (PFP §10.2.3): location, length, link-time address,
/// and a device path holding one media file path node and the end node.
fn image_load_event(app: &Blob) -> Vec<u8> {
    let mut file_node = vec![0x04, 0x04]; // MEDIA_DEVICE_PATH, MEDIA_FILEPATH_DP
    let name = utf16(&app.path);
    file_node.extend_from_slice(&((4 + name.len()) as u16).to_le_bytes());
    file_node.extend_from_slice(&name);
    file_node.extend_from_slice(&[0x7f, 0xff, 0x04, 0x00]); // end of device path
    let mut v = 0x7E00_0000u64.to_le_bytes().to_vec();
    v.extend_from_slice(&(app.content.len() as u64).to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    v.extend_from_slice(&(file_node.len() as u64).to_le_bytes());
    v.extend_from_slice(&file_node);
    v
}

/// UEFI_VARIABLE_DATA for EFI_GLOBAL_VARIABLE (8be4df61-93ca-11d2-aa0d-00e098032b8c).
fn efi_variable(name: &str, data: &[u8]) -> Vec<u8> {
    let mut v = vec![
        0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b,
        0x8c,
    ];
    let units: Vec<u16> = name.encode_utf16().collect();
    v.extend_from_slice(&(units.len() as u64).to_le_bytes());
    v.extend_from_slice(&(data.len() as u64).to_le_bytes());
    units
        .iter()
        .for_each(|u| v.extend_from_slice(&u.to_le_bytes()));
    v.extend_from_slice(data);
    v
}

/// Writes TCG_PCR_EVENT2 records after a Spec ID header (PFP §10.4.5).
struct EventLogWriter {
    banks: Vec<HashAlg>,
    bytes: Vec<u8>,
    extends: Vec<Extend>,
}

impl EventLogWriter {
    fn new(banks: &[HashAlg]) -> Self {
        let mut spec = b"Spec ID Event03\0".to_vec();
        spec.extend_from_slice(&0u32.to_le_bytes()); // platform class: client
        spec.extend_from_slice(&[0, 2, 0, 2]); // version 2.0, errata 0, uintn UINT64
        spec.extend_from_slice(&(banks.len() as u32).to_le_bytes());
        for b in banks {
            spec.extend_from_slice(&b.tpm_alg().to_le_bytes());
            spec.extend_from_slice(&(b.size() as u16).to_le_bytes());
        }
        spec.push(0); // no vendor info
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&EV_NO_ACTION.to_le_bytes());
        bytes.extend_from_slice(&[0; 20]);
        bytes.extend_from_slice(&(spec.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&spec);
        Self {
            banks: banks.to_vec(),
            bytes,
            extends: Vec::new(),
        }
    }

    /// Logs and records one extend; the digest is of `measured`, or of the event
    /// data when the measured object is the data itself.
    fn event(&mut self, pcr: u32, event_type: u32, data: &[u8], measured: Option<&[u8]>) {
        let measured = measured.unwrap_or(data);
        let digests: Vec<(HashAlg, Vec<u8>)> = self
            .banks
            .iter()
            .map(|b| (*b, b.digest(measured)))
            .collect();
        self.bytes.extend_from_slice(&pcr.to_le_bytes());
        self.bytes.extend_from_slice(&event_type.to_le_bytes());
        self.bytes
            .extend_from_slice(&(digests.len() as u32).to_le_bytes());
        for (b, d) in &digests {
            self.bytes.extend_from_slice(&b.tpm_alg().to_le_bytes());
            self.bytes.extend_from_slice(d);
        }
        self.bytes
            .extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(data);
        self.extends.push(Extend { pcr, digests });
    }
}

/// One `ima-ng` record (PCR 10) as the kernel writes it, and its template data.
pub fn ima_ng_record(alg: HashAlg, file_digest: &[u8], path: &str) -> (Vec<u8>, Vec<u8>) {
    let mut d_ng = format!("{}:", alg.name()).into_bytes();
    d_ng.push(0);
    d_ng.extend_from_slice(file_digest);
    let mut n_ng = path.as_bytes().to_vec();
    n_ng.push(0);
    let mut data = Vec::new();
    for field in [&d_ng, &n_ng] {
        data.extend_from_slice(&(field.len() as u32).to_le_bytes());
        data.extend_from_slice(field);
    }
    let mut record = IMA_PCR.to_le_bytes().to_vec();
    record.extend_from_slice(&HashAlg::Sha1.digest(&data));
    record.extend_from_slice(&6u32.to_le_bytes());
    record.extend_from_slice(b"ima-ng");
    record.extend_from_slice(&(data.len() as u32).to_le_bytes());
    record.extend_from_slice(&data);
    (record, data)
}

/// Appends one ima-ng record and returns its extend (each bank hashes the same
/// template data, as kernels with per-bank template hashes do).
fn ima_ng(
    out: &mut Vec<u8>,
    banks: &[HashAlg],
    alg: HashAlg,
    file_digest: &[u8],
    path: &str,
) -> Extend {
    let (record, data) = ima_ng_record(alg, file_digest, path);
    out.extend_from_slice(&record);
    Extend {
        pcr: IMA_PCR,
        digests: banks.iter().map(|b| (*b, b.digest(&data))).collect(),
    }
}
