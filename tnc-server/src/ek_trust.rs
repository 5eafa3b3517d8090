//! The CAs the PDP trusts for EK certificates: the TPM manufacturers' and
//! cloud vTPMs' CAs shipped in `pki/ek-roots/` (unless `vendor_ek_roots =
//! false`), less those the operator distrusts, plus the operator's own PEM
//! files (`ek_roots`, and `ek_intermediates` to chain through). `tnc-server
//! ek-roots list` prints this table; the PDP takes its anchors from it.

use crate::config::ServerConfig;
use crate::error::ConfigError;
use pki::ek_roots::{trust_status, CaCertificate, NotTrusted};
use std::path::{Path, PathBuf};

/// Where a CA certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Shipped with tnc-server (`pki/ek-roots/FILE`).
    Shipped {
        vendor: &'static str,
        file: &'static str,
    },
    /// A PEM file the config's `ek_roots` names: a trust anchor.
    File(PathBuf),
    /// A PEM file the config's `ek_intermediates` names: chained through,
    /// never an anchor.
    Intermediate(PathBuf),
}

/// Whether the PDP uses a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Trusted,
    /// Past its notAfter: no EK certificate chains through it.
    Expired,
    /// Its CA (this certificate or another of the same name and key) is in
    /// `distrusted_ek_roots`.
    Distrusted,
    /// Shipped, issued by a CA the operator distrusts.
    IssuerDistrusted,
    /// Shipped, and `vendor_ek_roots = false`.
    VendorSetOff,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Trusted => "trusted",
            Status::Expired => "expired",
            Status::Distrusted => "distrusted",
            Status::IssuerDistrusted => "issuer distrusted",
            Status::VendorSetOff => "off (vendor_ek_roots = false)",
        }
    }
}

#[derive(Clone, Debug)]
pub struct TrustEntry {
    pub certificate: CaCertificate,
    pub origin: Origin,
    pub status: Status,
}

/// Every EK CA the config knows, with its status.
#[derive(Clone, Debug, Default)]
pub struct EkTrust {
    pub entries: Vec<TrustEntry>,
    vendor: bool,
    distrusted: Vec<String>,
    now: i64,
}

impl EkTrust {
    /// The shipped set alone, as a new PDP's config sees it.
    pub fn shipped_only(now: i64) -> Result<Self, ConfigError> {
        let mut t = Self {
            entries: shipped_entries()?,
            vendor: true,
            distrusted: Vec::new(),
            now,
        };
        t.settle();
        Ok(t)
    }

    /// Reads the files the config names. A missing or unreadable file, a
    /// certificate that does not parse, an anchor that is not a CA and a
    /// malformed fingerprint are errors naming the key and the file.
    pub fn load(config: &ServerConfig, now: i64) -> Result<Self, ConfigError> {
        let a = &config.attestation;
        for fp in &a.distrusted_ek_roots {
            if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::new(
                    "attestation.distrusted_ek_roots",
                    format!(
                        "{fp:?} is not a SHA-256 fingerprint (64 hex digits, as \
                         `tnc-server ek-roots list` prints them)"
                    ),
                ));
            }
        }
        let mut entries = shipped_entries()?;
        for p in &a.ek_roots {
            let path = config.path(p);
            for c in read_cas("attestation.ek_roots", &path)? {
                if !c.is_ca {
                    return Err(ConfigError::new(
                        format!("attestation.ek_roots: {}", path.display()),
                        format!(
                            "{:?} is not a CA certificate (basicConstraints): an EK \
                             certificate itself is no trust anchor",
                            c.subject
                        ),
                    ));
                }
                entries.push(entry(c, Origin::File(path.clone())));
            }
        }
        for p in &a.ek_intermediates {
            let path = config.path(p);
            for c in read_cas("attestation.ek_intermediates", &path)? {
                entries.push(entry(c, Origin::Intermediate(path.clone())));
            }
        }
        let mut t = Self {
            entries,
            vendor: a.vendor_ek_roots,
            distrusted: a
                .distrusted_ek_roots
                .iter()
                .map(|f| f.to_ascii_lowercase())
                .collect(),
            now,
        };
        t.settle();
        Ok(t)
    }

    /// The same certificates with another distrusted list (what an edit of
    /// the config would make of them).
    pub fn with_distrusted(&self, distrusted: Vec<String>) -> Self {
        let mut t = Self {
            distrusted,
            ..self.clone()
        };
        t.settle();
        t
    }

    /// Sets every entry's status from the inputs.
    fn settle(&mut self) {
        let certs: Vec<&CaCertificate> = self.entries.iter().map(|e| &e.certificate).collect();
        let cascade: Vec<bool> = self
            .entries
            .iter()
            .map(|e| matches!(e.origin, Origin::Shipped { .. }))
            .collect();
        let status = trust_status(&certs, &cascade, &self.distrusted);
        let now = self.now;
        for (e, st) in self.entries.iter_mut().zip(status) {
            e.status = match st {
                Some(NotTrusted::Distrusted) => Status::Distrusted,
                Some(NotTrusted::IssuerDistrusted) => Status::IssuerDistrusted,
                // Refused when loaded (anchors) or never an anchor anyway
                // (intermediates: the chain check judges them).
                Some(NotTrusted::NotCa) | None => {
                    if matches!(e.origin, Origin::Shipped { .. }) && !self.vendor {
                        Status::VendorSetOff
                    } else if e.certificate.expired(now) {
                        Status::Expired
                    } else {
                        Status::Trusted
                    }
                }
            };
        }
    }

    /// The DER certificates the EK chain check anchors on, each once: the
    /// trusted ones, and an expired one only when no valid certificate of
    /// the same CA is there (then the check says "expired", which tells the
    /// operator more than "unknown CA"; with a valid twin it would only
    /// stand in the way).
    pub fn anchors(&self) -> Vec<Vec<u8>> {
        let anchors: Vec<&TrustEntry> = self
            .entries
            .iter()
            .filter(|e| !matches!(e.origin, Origin::Intermediate(_)))
            .collect();
        let mut seen = std::collections::HashSet::new();
        anchors
            .iter()
            .filter(|e| match e.status {
                Status::Trusted => true,
                Status::Expired => !anchors
                    .iter()
                    .any(|o| o.status == Status::Trusted && o.certificate.same_ca(&e.certificate)),
                _ => false,
            })
            .filter(|e| seen.insert(e.certificate.sha256))
            .map(|e| e.certificate.der.clone())
            .collect()
    }

    /// The operator's intermediates the chain check may go through (not
    /// those of a distrusted CA).
    pub fn intermediates(&self) -> Vec<Vec<u8>> {
        self.entries
            .iter()
            .filter(|e| matches!(e.origin, Origin::Intermediate(_)))
            .filter(|e| matches!(e.status, Status::Trusted | Status::Expired))
            .map(|e| e.certificate.der.clone())
            .collect()
    }

    /// Anchors within their validity period.
    pub fn usable(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.status == Status::Trusted && !matches!(e.origin, Origin::Intermediate(_)))
            .count()
    }

    /// The entries whose fingerprint starts with `prefix` (hex, any case).
    pub fn matching(&self, prefix: &str) -> Vec<&TrustEntry> {
        let prefix = prefix.to_ascii_lowercase();
        self.entries
            .iter()
            .filter(|e| e.certificate.fingerprint().starts_with(&prefix))
            .collect()
    }

    pub fn distrusted(&self) -> &[String] {
        &self.distrusted
    }
}

fn entry(certificate: CaCertificate, origin: Origin) -> TrustEntry {
    TrustEntry {
        certificate,
        origin,
        // Set by `settle`.
        status: Status::Trusted,
    }
}

fn shipped_entries() -> Result<Vec<TrustEntry>, ConfigError> {
    Ok(pki::ek_roots::shipped()
        .map_err(|e| ConfigError::new("the EK CAs shipped with tnc-server", e))?
        .into_iter()
        .map(|s| {
            entry(
                s.certificate,
                Origin::Shipped {
                    vendor: s.vendor,
                    file: s.file,
                },
            )
        })
        .collect())
}

/// The certificates of a PEM (or DER) file the config names under `key`.
pub fn read_cas(key: &str, path: &Path) -> Result<Vec<CaCertificate>, ConfigError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::new(format!("{key}: reading {}", path.display()), e))?;
    CaCertificate::all_from_pem_or_der(&bytes, &path.display().to_string())
        .map_err(|e| ConfigError::new(format!("{key}: {}", path.display()), e))
}

/// The swtpm local CA's certificates (root, then issuer) for
/// `--lab-swtpm-ca[=DIR]`: in DIR when given; else where the
/// `swtpm-localca.conf` swtpm reads puts them (`statedir`, `issuercert`),
/// by default `/var/lib/swtpm-localca`.
pub fn lab_ca_files(arg: &Option<Option<PathBuf>>) -> Option<[PathBuf; 2]> {
    let root_name = "swtpm-localca-rootca-cert.pem";
    Some(match arg.as_ref()? {
        Some(dir) => [dir.join(root_name), dir.join("issuercert.pem")],
        None => {
            let conf = swtpm_localca_conf().unwrap_or_default();
            let value = |key: &str| {
                conf.lines().find_map(|l| {
                    let (k, v) = l.split_once('=')?;
                    (k.trim() == key).then(|| PathBuf::from(v.trim()))
                })
            };
            let dir = value("statedir").unwrap_or_else(|| PathBuf::from("/var/lib/swtpm-localca"));
            let issuer = value("issuercert").unwrap_or_else(|| dir.join("issuercert.pem"));
            [dir.join(root_name), issuer]
        }
    })
}

/// The text of the `swtpm-localca.conf` that swtpm_setup uses: the user's
/// own (`$XDG_CONFIG_HOME`, else `~/.config`) for everyone but root, else
/// `/etc`'s.
fn swtpm_localca_conf() -> Option<String> {
    let mut confs = Vec::new();
    if !is_root() {
        match std::env::var_os("XDG_CONFIG_HOME") {
            Some(x) => confs.push(PathBuf::from(x).join("swtpm-localca.conf")),
            None => {
                if let Some(h) = std::env::var_os("HOME") {
                    confs.push(PathBuf::from(h).join(".config/swtpm-localca.conf"));
                }
            }
        }
    }
    confs.push(PathBuf::from("/etc/swtpm-localca.conf"));
    confs.iter().find_map(|c| std::fs::read_to_string(c).ok())
}

/// Whether this process runs as root (real uid 0, from /proc/self/status:
/// no libc call needed).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next())
            == Some("0")
    })
}

/// The certificates in `files` ([`lab_ca_files`]).
pub fn swtpm_local_ca(files: &[PathBuf; 2]) -> Result<Vec<CaCertificate>, ConfigError> {
    let mut out = Vec::new();
    for path in files {
        let bytes = std::fs::read(path).map_err(|e| {
            ConfigError::new(
                format!("--lab-swtpm-ca: reading {}", path.display()),
                format!(
                    "{e} (swtpm_setup --create-ek-cert creates the local CA the first time it \
                     runs; or name the CA's directory: --lab-swtpm-ca=DIR)"
                ),
            )
        })?;
        out.extend(
            CaCertificate::all_from_pem_or_der(&bytes, &path.display().to_string())
                .map_err(|e| ConfigError::new(path.display().to_string(), e))?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-04.
    const NOW: i64 = 1_796_342_400;

    #[test]
    fn expired_certificates_are_flagged_and_a_valid_twin_wins() {
        let t = EkTrust::shipped_only(NOW).unwrap();
        let expired: Vec<&TrustEntry> = t
            .entries
            .iter()
            .filter(|e| e.certificate.expired(NOW))
            .collect();
        assert!(!expired.is_empty(), "the shipped set holds expired CAs");
        assert!(expired.iter().all(|e| e.status == Status::Expired));
        let anchors = t.anchors();
        assert!(t.usable() > 400 && anchors.len() <= t.entries.len());
        for e in &expired {
            let twin_valid = t
                .entries
                .iter()
                .any(|o| o.status == Status::Trusted && o.certificate.same_ca(&e.certificate));
            assert_eq!(
                anchors.contains(&e.certificate.der),
                !twin_valid,
                "{:?}",
                e.origin
            );
        }
        // In ten thousand years, nothing is usable.
        let later = EkTrust::shipped_only(NOW + 10_000 * 365 * 86_400).unwrap();
        assert_eq!(later.usable(), 0);
    }

    #[test]
    fn distrust_and_the_vendor_switch() {
        let t = EkTrust::shipped_only(NOW).unwrap();
        let first = t.entries[0].certificate.fingerprint();
        let d = t.with_distrusted(vec![first.clone()]);
        assert_eq!(d.entries[0].status, Status::Distrusted);
        assert!(!d.anchors().contains(&d.entries[0].certificate.der));
        assert_eq!(d.distrusted(), [first]);
        let off = EkTrust {
            vendor: false,
            ..t.clone()
        }
        .with_distrusted(Vec::new());
        assert!(off.anchors().is_empty() && off.usable() == 0);
        assert!(off.entries.iter().all(|e| e.status == Status::VendorSetOff));
    }
}
