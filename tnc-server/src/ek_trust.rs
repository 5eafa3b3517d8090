//! The CAs the PDP trusts for EK certificates: the TPM manufacturers' and
//! cloud vTPMs' CAs shipped in `pki/ek-roots/` (unless `vendor_ek_roots =
//! false`), less those the operator distrusts, plus the operator's own PEM
//! files (`ek_roots`). `tnc-server ek-roots list` prints this table; the PDP
//! takes its anchors from it.

use crate::config::ServerConfig;
use anyhow::{anyhow, bail};
use pki::ek_roots::{effective_anchors, CaCertificate, NotTrusted};
use std::path::PathBuf;

/// Where a trusted CA certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Shipped with tnc-server (`pki/ek-roots/FILE`).
    Shipped {
        vendor: &'static str,
        file: &'static str,
    },
    /// A PEM file the config's `ek_roots` names.
    File(PathBuf),
}

/// Whether the PDP uses a certificate as an EK trust anchor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Trusted,
    /// Trusted, but past its notAfter: no EK certificate chains through it.
    Expired,
    /// In `distrusted_ek_roots`.
    Distrusted,
    /// Shipped, issued by a shipped certificate the operator distrusts.
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

    /// Given to the chain check (an expired anchor still is: the check then
    /// says "expired", which tells the operator more than "unknown CA").
    pub fn is_anchor(self) -> bool {
        matches!(self, Status::Trusted | Status::Expired)
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
}

impl EkTrust {
    /// The shipped set alone, as a new PDP's config sees it.
    pub fn shipped_only(now: i64) -> anyhow::Result<Self> {
        Self::build(true, &[], Vec::new(), now)
    }

    /// Reads the files the config names. A missing or unreadable file, a
    /// certificate that does not parse, one that is not a CA and a malformed
    /// fingerprint are errors naming the key and the file.
    pub fn load(config: &ServerConfig, now: i64) -> anyhow::Result<Self> {
        let a = &config.attestation;
        for fp in &a.distrusted_ek_roots {
            if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!(
                    "attestation.distrusted_ek_roots: {fp:?} is not a SHA-256 fingerprint \
                     (64 hex digits, as `tnc-server ek-roots list` prints them)"
                );
            }
        }
        let mut own = Vec::new();
        for p in &a.ek_roots {
            let path = config.path(p);
            let bytes = std::fs::read(&path)
                .map_err(|e| anyhow!("attestation.ek_roots: reading {}: {e}", path.display()))?;
            let certs = CaCertificate::all_from_pem_or_der(&bytes, &path.display().to_string())
                .map_err(|e| anyhow!("attestation.ek_roots: {}: {e}", path.display()))?;
            for c in certs {
                if !c.is_ca {
                    bail!(
                        "attestation.ek_roots: {}: {:?} is not a CA certificate (basicConstraints): \
                         an EK certificate itself is no trust anchor",
                        path.display(),
                        c.subject
                    );
                }
                own.push((c, path.clone()));
            }
        }
        let distrusted: Vec<String> = a
            .distrusted_ek_roots
            .iter()
            .map(|f| f.to_ascii_lowercase())
            .collect();
        Self::build(a.vendor_ek_roots, &distrusted, own, now)
    }

    fn build(
        vendor: bool,
        distrusted: &[String],
        own: Vec<(CaCertificate, PathBuf)>,
        now: i64,
    ) -> anyhow::Result<Self> {
        let shipped = pki::ek_roots::shipped()
            .map_err(|e| anyhow!("the EK CAs shipped with tnc-server: {e}"))?;
        let shipped_status = effective_anchors(&shipped, distrusted);
        let expiry = |c: &CaCertificate| {
            if c.expired(now) {
                Status::Expired
            } else {
                Status::Trusted
            }
        };
        let mut entries = Vec::new();
        for (s, st) in shipped.into_iter().zip(shipped_status) {
            let status = match st {
                Some(NotTrusted::Distrusted) => Status::Distrusted,
                Some(NotTrusted::IssuerDistrusted) => Status::IssuerDistrusted,
                // A shipped certificate that is not a CA fails the shipped
                // set's own test; never an anchor.
                Some(NotTrusted::NotCa) => continue,
                None if !vendor => Status::VendorSetOff,
                None => expiry(&s.certificate),
            };
            entries.push(TrustEntry {
                origin: Origin::Shipped {
                    vendor: s.vendor,
                    file: s.file,
                },
                status,
                certificate: s.certificate,
            });
        }
        for (c, path) in own {
            let status = if distrusted.contains(&c.fingerprint()) {
                Status::Distrusted
            } else {
                expiry(&c)
            };
            entries.push(TrustEntry {
                certificate: c,
                origin: Origin::File(path),
                status,
            });
        }
        Ok(Self { entries })
    }

    /// The DER certificates the EK chain check anchors on, each once.
    pub fn anchors(&self) -> Vec<Vec<u8>> {
        let mut seen = std::collections::HashSet::new();
        self.entries
            .iter()
            .filter(|e| e.status.is_anchor() && seen.insert(e.certificate.sha256))
            .map(|e| e.certificate.der.clone())
            .collect()
    }

    /// Anchors that are within their validity period.
    pub fn usable(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.status == Status::Trusted)
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
}
