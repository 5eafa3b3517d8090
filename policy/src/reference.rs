//! Reference values: what a good endpoint's evidence must contain.
//!
//! Written by operators as TOML (one file per class of endpoint, e.g. the
//! terminals of one hardware model). Anything the evidence holds that the
//! reference values do not name is a finding: missing reference values never mean
//! "allowed".
//!
//! ```toml
//! name = "thin-client-2026"
//! bank = "sha256"                  # digests below are in this bank
//!
//! [boot]
//! pcrs = [0, 1, 2, 3, 4, 5, 6, 7]  # every event in these PCRs must be listed
//! [[boot.events]]
//! pcr = 4
//! type = "EV_EFI_BOOT_SERVICES_APPLICATION"
//! digest = "3d45...e7"
//! note = "shim 15.8"
//!
//! [kernel]                         # PCR 9: images the boot loader loaded
//! images = ["a1b2..."]             # PCR 8: "kernel_cmdline: ..." events
//! cmdlines = ["root=/dev/vda2 ro quiet ima_policy=tcb"]
//!
//! [ima]
//! excluded_prefixes = ["/tmp/", "/var/log/"]
//! key_applications = ["/usr/sbin/nginx"]
//! [ima.allow]
//! "/usr/sbin/nginx" = ["77aa..."]
//! ```

use crate::digest::{from_hex, HashAlg};
use crate::eventlog::event_type_name;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use thiserror::Error;

/// The PCR IMA extends (CONFIG_IMA_MEASURE_PCR_IDX).
pub const IMA_PCR: u32 = 10;
/// The PCR grub2 measures the kernel command line (and its commands) into.
pub const CMDLINE_PCR: u32 = 8;
/// The PCR grub2 measures the files it loads (kernel, initrd) into.
pub const KERNEL_PCR: u32 = 9;
/// Prefix of grub2's command-line measurement (EV_IPL in PCR 8).
pub const CMDLINE_PREFIX: &str = "kernel_cmdline: ";

/// Reference values for one class of endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceValues {
    /// A name for findings and the audit log.
    #[serde(default)]
    pub name: String,
    /// The PCR bank the reference digests are in, and which replays are compared.
    #[serde(default = "default_bank", with = "bank_name")]
    pub bank: HashAlg,
    pub boot: Option<BootReference>,
    pub kernel: Option<KernelReference>,
    pub ima: Option<ImaReference>,
}

fn default_bank() -> HashAlg {
    HashAlg::Sha256
}

mod bank_name {
    use crate::HashAlg;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &HashAlg, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(b.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HashAlg, D::Error> {
        let name = String::deserialize(d)?;
        HashAlg::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown bank {name:?}: use sha1, sha256, sha384, sha512 or sm3"
            ))
        })
    }
}

/// Firmware and boot loader events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootReference {
    /// PCRs whose every event must match an entry of `events`.
    pub pcrs: Vec<u32>,
    #[serde(default)]
    pub events: Vec<BootEvent>,
}

/// One allowed boot event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootEvent {
    pub pcr: u32,
    /// The event type by TCG name (`EV_SEPARATOR`) or number.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Hex digest in the reference bank.
    pub digest: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// The kernel the boot loader loaded, and its command line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelReference {
    /// Digests (reference bank, hex) of every file measured into PCR 9: kernel
    /// images and initrds.
    pub images: Vec<String>,
    /// Allowed kernel command lines, exactly as measured after
    /// `kernel_cmdline: ` in PCR 8.
    pub cmdlines: Vec<String>,
}

/// Runtime measurements (IMA).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImaReference {
    /// Paths starting with one of these are not appraised (scratch and log files).
    #[serde(default)]
    pub excluded_prefixes: Vec<String>,
    /// Applications that must have been measured (they ran): a web server, its
    /// modules, a runtime library.
    #[serde(default)]
    pub key_applications: Vec<String>,
    /// path -> allowed file digests (hex, in the algorithm IMA logged: the d-ng
    /// prefix says which).
    #[serde(default)]
    pub allow: BTreeMap<String, Vec<String>>,
}

/// A reference file that cannot be used, naming the key and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ReferenceError {
    #[error("reference values are not valid TOML: {0}")]
    Toml(String),
    #[error("{key}: {value:?} is not a hex digest of {bank} ({size} bytes)")]
    BadDigest {
        key: String,
        value: String,
        bank: HashAlg,
        size: usize,
    },
    #[error("{key}: {value:?} is not an event type name (EV_...) or number")]
    BadEventType { key: String, value: String },
    #[error("{key}: PCR {pcr} is not 0..=23")]
    BadPcr { key: String, pcr: u32 },
}

/// (pcr, event type) -> allowed digests, each with its note.
pub type BootTable = BTreeMap<(u32, u32), BTreeMap<Vec<u8>, String>>;

/// Reference values checked and indexed for appraisal.
#[derive(Clone, Debug)]
pub struct CompiledReference {
    pub source: ReferenceValues,
    /// The PCRs whose events must all be listed, and the allowed events.
    pub boot: Option<(BTreeSet<u32>, BootTable)>,
    pub kernel_images: Option<BTreeSet<Vec<u8>>>,
    pub cmdlines: Option<BTreeSet<String>>,
    pub ima: Option<CompiledIma>,
}

#[derive(Clone, Debug)]
pub struct CompiledIma {
    pub excluded_prefixes: Vec<String>,
    pub key_applications: BTreeSet<String>,
    /// path -> allowed digests, sorted. A hash map, not a B-tree: one lookup
    /// per IMA entry is the hot path of a cold appraisal, and 5,000 ordered
    /// string comparisons cost a B-tree ~1 ms in cache misses (testnet bench).
    pub allow: HashMap<String, Vec<Vec<u8>>>,
}

/// An event type by name (`EV_IPL`) or number (`13`, `0x8000000d`).
pub fn parse_event_type(s: &str) -> Option<u32> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u32::from_str_radix(hex, 16).ok();
    }
    if let Ok(n) = s.parse() {
        return Some(n);
    }
    // Every named type lies in one of these two ranges (PFP §10.4.1).
    (0..0x20u32)
        .chain(0x8000_0000..0x8000_0100)
        .find(|t| event_type_name(*t) == Some(s))
}

/// What [`ReferenceValues::learn`] saw, for the operator to check before
/// accepting the result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Learned {
    pub boot_events: usize,
    pub kernel_images: usize,
    pub cmdlines: usize,
    pub files: usize,
    /// IMA entries left out: violations (contents unknown) and files under
    /// the excluded prefixes.
    pub skipped: usize,
}

impl ReferenceValues {
    /// Reference values that allow exactly what one endpoint's evidence shows:
    /// every boot event of PCRs 0-7, the files measured into PCR 9, the
    /// command lines in PCR 8, and every file IMA measured (outside
    /// `/tmp/` and `/var/log/`). The learn mode of the PDP: the operator runs
    /// it on a known-good endpoint's last evidence and reviews the result;
    /// no key applications are named (that is the operator's choice).
    ///
    /// Only evidence that was appraised genuine (quote verified, logs
    /// replayed to it) should be learned from; this function trusts its input.
    pub fn learn(
        name: &str,
        bank: HashAlg,
        event_log: &[u8],
        ima: &[u8],
    ) -> Result<(Self, Learned), String> {
        use crate::digest::hex;
        use crate::eventlog::{EventLog, EV_IPL, EV_NO_ACTION};
        let log = EventLog::parse(event_log).map_err(|e| format!("event log: {e}"))?;
        let mut stats = Learned::default();
        let mut events = Vec::new();
        let mut images = Vec::new();
        let mut cmdlines = Vec::new();
        for e in &log.events {
            if e.event_type == EV_NO_ACTION {
                continue;
            }
            let Some(d) = e.digest(bank) else { continue };
            match e.pcr {
                0..=7 => events.push(BootEvent {
                    pcr: e.pcr,
                    event_type: e
                        .type_name()
                        .map_or_else(|| e.event_type.to_string(), str::to_string),
                    digest: hex(d),
                    note: e.describe().unwrap_or_default(),
                }),
                KERNEL_PCR if !images.contains(&hex(d)) => images.push(hex(d)),
                CMDLINE_PCR if e.event_type == EV_IPL => {
                    let text = String::from_utf8_lossy(e.data);
                    if let Some(c) = text.trim_end_matches('\0').strip_prefix(CMDLINE_PREFIX) {
                        if bank.digest(e.data) == d && !cmdlines.contains(&c.to_string()) {
                            cmdlines.push(c.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        stats.boot_events = events.len();
        stats.kernel_images = images.len();
        stats.cmdlines = cmdlines.len();
        let excluded_prefixes = vec!["/tmp/".to_string(), "/var/log/".to_string()];
        let mut allow: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut entries = crate::ima::ImaEntries::new(ima);
        while let Some(r) = entries.next_record() {
            let r = r.map_err(|e| format!("IMA list: {e}"))?;
            let path = r.path.as_deref().unwrap_or("");
            if path == "boot_aggregate" {
                continue;
            }
            let Some((_, digest)) = r.digest else {
                stats.skipped += 1;
                continue;
            };
            if r.is_violation()
                || excluded_prefixes
                    .iter()
                    .any(|p| path.starts_with(p.as_str()))
            {
                stats.skipped += 1;
                continue;
            }
            let list = allow.entry(path.to_string()).or_default();
            if !list.contains(&hex(digest)) {
                list.push(hex(digest));
            }
        }
        stats.files = allow.len();
        Ok((
            Self {
                name: name.to_string(),
                bank,
                boot: Some(BootReference {
                    pcrs: (0..8).collect(),
                    events,
                }),
                kernel: Some(KernelReference { images, cmdlines }),
                ima: Some(ImaReference {
                    excluded_prefixes,
                    key_applications: Vec::new(),
                    allow,
                }),
            },
            stats,
        ))
    }
    pub fn from_toml(text: &str) -> Result<Self, ReferenceError> {
        toml::from_str(text).map_err(|e| ReferenceError::Toml(e.to_string()))
    }

    pub fn to_toml(&self) -> String {
        // Serializing plain data structures cannot fail.
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks every value and builds the lookup tables appraisal uses.
    pub fn compile(&self) -> Result<CompiledReference, ReferenceError> {
        let bank = self.bank;
        let digest = |key: String, value: &str| {
            from_hex(value)
                .filter(|d| d.len() == bank.size())
                .ok_or(ReferenceError::BadDigest {
                    key,
                    value: value.to_string(),
                    bank,
                    size: bank.size(),
                })
        };
        let boot = match &self.boot {
            None => None,
            Some(b) => {
                let mut table = BootTable::new();
                for &pcr in &b.pcrs {
                    if pcr > 23 {
                        return Err(ReferenceError::BadPcr {
                            key: "boot.pcrs".into(),
                            pcr,
                        });
                    }
                }
                for (i, e) in b.events.iter().enumerate() {
                    let key = format!("boot.events[{i}]");
                    if e.pcr > 23 {
                        return Err(ReferenceError::BadPcr { key, pcr: e.pcr });
                    }
                    let t = parse_event_type(&e.event_type).ok_or_else(|| {
                        ReferenceError::BadEventType {
                            key: format!("{key}.type"),
                            value: e.event_type.clone(),
                        }
                    })?;
                    let d = digest(format!("{key}.digest"), &e.digest)?;
                    table
                        .entry((e.pcr, t))
                        .or_default()
                        .insert(d, e.note.clone());
                }
                Some((b.pcrs.iter().copied().collect(), table))
            }
        };
        let (kernel_images, cmdlines) = match &self.kernel {
            None => (None, None),
            Some(k) => {
                let images = k
                    .images
                    .iter()
                    .enumerate()
                    .map(|(i, d)| digest(format!("kernel.images[{i}]"), d))
                    .collect::<Result<BTreeSet<_>, _>>()?;
                (Some(images), Some(k.cmdlines.iter().cloned().collect()))
            }
        };
        let ima = match &self.ima {
            None => None,
            Some(m) => {
                let mut allow = HashMap::with_capacity(m.allow.len());
                for (path, digests) in &m.allow {
                    let set = digests
                        .iter()
                        .enumerate()
                        .map(|(i, d)| {
                            // IMA file digests may be of any algorithm the kernel's
                            // policy chose: any known digest length is accepted.
                            from_hex(d)
                                .filter(|b| HashAlg::ALL.iter().any(|a| a.size() == b.len()))
                                .ok_or(ReferenceError::BadDigest {
                                    key: format!("ima.allow.\"{path}\"[{i}]"),
                                    value: d.clone(),
                                    bank,
                                    size: bank.size(),
                                })
                        })
                        .collect::<Result<BTreeSet<_>, _>>()?;
                    allow.insert(path.clone(), set.into_iter().collect());
                }
                Some(CompiledIma {
                    excluded_prefixes: m.excluded_prefixes.clone(),
                    key_applications: m.key_applications.iter().cloned().collect(),
                    allow,
                })
            }
        };
        Ok(CompiledReference {
            source: self.clone(),
            boot,
            kernel_images,
            cmdlines,
            ima,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
name = "t"
bank = "sha256"
[boot]
pcrs = [0, 4]
[[boot.events]]
pcr = 4
type = "EV_EFI_BOOT_SERVICES_APPLICATION"
digest = "0000000000000000000000000000000000000000000000000000000000000001"
note = "shim"
[[boot.events]]
pcr = 0
type = "0x4"
digest = "0000000000000000000000000000000000000000000000000000000000000002"
[kernel]
images = ["0000000000000000000000000000000000000000000000000000000000000003"]
cmdlines = ["root=/dev/vda2 ro"]
[ima]
excluded_prefixes = ["/tmp/"]
key_applications = ["/usr/sbin/nginx"]
[ima.allow]
"/usr/sbin/nginx" = ["aa00000000000000000000000000000000000000000000000000000000000000"]
"#;

    #[test]
    fn parses_and_compiles_the_documented_form() {
        let r = ReferenceValues::from_toml(EXAMPLE).unwrap();
        let c = r.compile().unwrap();
        let (pcrs, table) = c.boot.unwrap();
        assert_eq!(pcrs, BTreeSet::from([0, 4]));
        assert!(table.contains_key(&(4, 0x8000_0003)));
        assert!(table.contains_key(&(0, 4)));
        assert_eq!(c.cmdlines.unwrap().len(), 1);
        assert!(c.ima.unwrap().key_applications.contains("/usr/sbin/nginx"));
        // And back: what we write, we read.
        assert_eq!(ReferenceValues::from_toml(&r.to_toml()).unwrap(), r);
    }

    #[test]
    fn errors_name_the_key() {
        let bad = EXAMPLE.replace("type = \"0x4\"", "type = \"EV_NOPE\"");
        let e = ReferenceValues::from_toml(&bad)
            .unwrap()
            .compile()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "boot.events[1].type: \"EV_NOPE\" is not an event type name (EV_...) or number"
        );
        let bad = EXAMPLE.replace("000003\"]", "03\"]");
        let e = ReferenceValues::from_toml(&bad)
            .unwrap()
            .compile()
            .unwrap_err();
        assert!(e.to_string().starts_with("kernel.images[0]:"), "{e}");
        let e = ReferenceValues::from_toml("bank = \"md5\"").unwrap_err();
        assert!(e.to_string().contains("unknown bank"), "{e}");
        let e = ReferenceValues::from_toml("colour = 1").unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }

    #[test]
    fn event_types_by_name_and_number() {
        assert_eq!(parse_event_type("EV_IPL"), Some(0xD));
        assert_eq!(
            parse_event_type("EV_EFI_VARIABLE_AUTHORITY"),
            Some(0x8000_00E0)
        );
        assert_eq!(parse_event_type("13"), Some(13));
        assert_eq!(parse_event_type("0x80000003"), Some(0x8000_0003));
        assert_eq!(parse_event_type("EV_BOGUS"), None);
    }
}
