//! EK trust anchors: the CA certificates TPM manufacturers and cloud vTPM
//! operators publish for their endorsement keys, shipped in `pki/ek-roots/`
//! (its README says where each came from), and the operator's own.
//!
//! Every shipped CA certificate is a trust anchor, intermediates included, as
//! Keylime's `tpm_cert_store` treats them: some vendors publish intermediates
//! whose root is not public, and an intermediate signed with SHA-1 by its root
//! would otherwise fail the chain although the vendor still issues under it.
//! Trusting a vendor's intermediate directly is no wider than trusting its
//! root, and an operator who distrusts a root distrusts what it issued
//! ([`effective_anchors`]).

use crate::ek::{check_issuer, parse, EkCertError};
use ring::digest::{digest, SHA256};

#[path = "ek_roots_shipped.rs"]
mod shipped_files;

/// A CA certificate with what an operator wants to see of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaCertificate {
    pub der: Vec<u8>,
    pub subject: String,
    pub issuer: String,
    pub not_before: i64,
    pub not_after: i64,
    /// SHA-256 of the DER encoding: how operators and the README name it.
    pub sha256: [u8; 32],
    /// basicConstraints CA (and keyCertSign where keyUsage is present).
    pub is_ca: bool,
}

impl CaCertificate {
    /// Parses one DER certificate; `what` names it in errors.
    pub fn parse(der: Vec<u8>, what: &str) -> Result<Self, EkCertError> {
        let (subject, issuer, not_before, not_after, is_ca) = {
            let cert = parse(&der, what)?;
            (
                cert.subject().to_string(),
                cert.issuer().to_string(),
                cert.validity().not_before.timestamp(),
                cert.validity().not_after.timestamp(),
                check_issuer(&cert, 0).is_ok(),
            )
        };
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(digest(&SHA256, &der).as_ref());
        Ok(Self {
            der,
            subject,
            issuer,
            not_before,
            not_after,
            sha256,
            is_ca,
        })
    }

    /// Every certificate in PEM text (or one DER certificate), parsed.
    pub fn all_from_pem_or_der(bytes: &[u8], what: &str) -> Result<Vec<Self>, EkCertError> {
        let ders = if bytes.first() == Some(&0x30) {
            vec![bytes.to_vec()]
        } else {
            crate::ek::certificates_in_pem(bytes)?
        };
        ders.into_iter()
            .enumerate()
            .map(|(i, der)| Self::parse(der, &format!("{what}, certificate {}", i + 1)))
            .collect()
    }

    pub fn fingerprint(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn self_signed(&self) -> bool {
        self.subject == self.issuer
    }

    /// Outside its validity period at `now` (unix seconds).
    pub fn expired(&self, now: i64) -> bool {
        now > self.not_after
    }

    /// The certificate as a PEM block.
    pub fn pem(&self) -> String {
        pem::encode_config(
            &pem::Pem::new("CERTIFICATE", self.der.clone()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    }
}

/// A certificate shipped in `pki/ek-roots/`.
#[derive(Clone, Debug)]
pub struct ShippedCa {
    /// The manufacturer or cloud ("Infineon", "Google Cloud").
    pub vendor: &'static str,
    /// Its file, relative to `pki/ek-roots/`.
    pub file: &'static str,
    pub certificate: CaCertificate,
}

/// The shipped EK CA certificates, parsed. A test keeps every one parseable,
/// so an error here means a broken build, but it is still an error, not a
/// panic.
pub fn shipped() -> Result<Vec<ShippedCa>, EkCertError> {
    let mut out = Vec::new();
    for &(vendor, file, pem) in shipped_files::SHIPPED {
        for certificate in CaCertificate::all_from_pem_or_der(pem, file)? {
            out.push(ShippedCa {
                vendor,
                file,
                certificate,
            });
        }
    }
    Ok(out)
}

/// Why a shipped certificate is not an anchor, if it is not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotTrusted {
    /// The operator distrusted it.
    Distrusted,
    /// The operator distrusted the shipped certificate that issued it.
    IssuerDistrusted,
    /// It is not a CA certificate.
    NotCa,
}

/// Which shipped certificates are anchors, given the fingerprints (full
/// lower-case hex) the operator distrusts: `None` for an anchor, else why not.
/// A distrusted certificate takes with it every shipped certificate below it.
pub fn effective_anchors(shipped: &[ShippedCa], distrusted: &[String]) -> Vec<Option<NotTrusted>> {
    let mut status: Vec<Option<NotTrusted>> = shipped
        .iter()
        .map(|s| {
            if distrusted.contains(&s.certificate.fingerprint()) {
                Some(NotTrusted::Distrusted)
            } else if !s.certificate.is_ca {
                Some(NotTrusted::NotCa)
            } else {
                None
            }
        })
        .collect();
    // Propagate down the shipped hierarchy (a few levels at most; bounded by
    // the number of certificates).
    for _ in 0..shipped.len() {
        let mut changed = false;
        for (i, s) in shipped.iter().enumerate() {
            if status[i].is_some() || s.certificate.self_signed() {
                continue;
            }
            let issuer_gone = shipped.iter().zip(&status).any(|(p, st)| {
                matches!(
                    st,
                    Some(NotTrusted::Distrusted | NotTrusted::IssuerDistrusted)
                ) && p.certificate.subject == s.certificate.issuer
            });
            if issuer_gone {
                status[i] = Some(NotTrusted::IssuerDistrusted);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-04, for the expiry report.
    const NOW: i64 = 1_796_342_400;

    #[test]
    fn every_shipped_certificate_parses_and_is_a_ca() {
        let shipped = shipped().expect("every shipped file parses");
        assert!(shipped.len() >= 10, "{} certificates", shipped.len());
        let mut expired = Vec::new();
        for s in &shipped {
            assert!(s.certificate.is_ca, "{}: not a CA certificate", s.file);
            if s.certificate.expired(NOW) {
                expired.push(s.file);
            }
        }
        // Expired ones stay listed (`tnc-server ek-roots list` flags them):
        // an EK certificate issued under them still fails its chain check.
        eprintln!("{} shipped, expired: {expired:?}", shipped.len());
    }

    #[test]
    fn the_readme_lists_every_file_with_its_fingerprint() {
        let readme = include_str!("../ek-roots/README.md");
        let shipped = shipped().unwrap();
        for s in &shipped {
            let row = readme
                .lines()
                .find(|l| l.contains(&format!("`{}`", s.file)))
                .unwrap_or_else(|| panic!("{} has no row in pki/ek-roots/README.md", s.file));
            assert!(
                row.contains(&format!("`{}`", s.certificate.fingerprint())),
                "{}: the README's fingerprint is not {}",
                s.file,
                s.certificate.fingerprint()
            );
        }
        let rows = readme
            .lines()
            .filter(|l| l.starts_with("| `") && l.contains(".pem`"))
            .count();
        assert_eq!(rows, shipped.len(), "a README row without its file");
        // And the folder holds no file the build does not ship.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ek-roots");
        let mut on_disk = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "pem") {
                    on_disk.push(p.strip_prefix(&dir).unwrap().display().to_string());
                }
            }
        }
        on_disk.sort();
        let mut listed: Vec<String> = shipped.iter().map(|s| s.file.to_string()).collect();
        listed.sort();
        listed.dedup();
        assert_eq!(
            on_disk, listed,
            "pki/src/ek_roots_shipped.rs and the folder differ"
        );
    }

    #[test]
    fn distrusting_a_root_takes_what_it_issued() {
        let shipped = shipped().unwrap();
        let Some((i, root)) = shipped.iter().enumerate().find(|(_, r)| {
            r.certificate.self_signed()
                && shipped.iter().any(|c| {
                    !c.certificate.self_signed() && c.certificate.issuer == r.certificate.subject
                })
        }) else {
            panic!("no shipped root with a shipped intermediate");
        };
        let before = effective_anchors(&shipped, &[]);
        assert!(before.iter().all(Option::is_none));
        let after = effective_anchors(&shipped, &[root.certificate.fingerprint()]);
        assert_eq!(after[i], Some(NotTrusted::Distrusted));
        let child = shipped
            .iter()
            .position(|c| {
                !c.certificate.self_signed() && c.certificate.issuer == root.certificate.subject
            })
            .unwrap();
        assert_eq!(after[child], Some(NotTrusted::IssuerDistrusted));
        assert!(after.iter().filter(|s| s.is_none()).count() + 2 <= shipped.len());
    }

    #[test]
    fn pem_round_trip() {
        let s = &shipped().unwrap()[0];
        let again =
            CaCertificate::all_from_pem_or_der(s.certificate.pem().as_bytes(), "x").unwrap();
        assert_eq!(again, vec![s.certificate.clone()]);
        let der = CaCertificate::all_from_pem_or_der(&s.certificate.der, "x").unwrap();
        assert_eq!(der, vec![s.certificate.clone()]);
    }
}
