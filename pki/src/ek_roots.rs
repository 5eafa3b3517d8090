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
//! ([`trust_status`]).
//!
//! A CA is its name and key, not one encoding of it: vendors re-issue the
//! same CA (same subject, same key) with new validity periods, and the chain
//! check accepts any certificate of that name and key. So distrusting one
//! certificate distrusts its twins, and "issued by" is decided as the chain
//! check decides it (name, key identifiers, else the signature).

use crate::ek::{check_issuer, may_have_issued, parse, EkCertError};
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
    /// The DER of the subject name and of the SubjectPublicKeyInfo: with
    /// them, the identity of the CA ([`CaCertificate::same_ca`]).
    subject_raw: Vec<u8>,
    issuer_raw: Vec<u8>,
    spki: Vec<u8>,
}

impl CaCertificate {
    /// Parses one DER certificate; `what` names it in errors.
    pub fn parse(der: Vec<u8>, what: &str) -> Result<Self, EkCertError> {
        let (subject, issuer, not_before, not_after, is_ca, subject_raw, issuer_raw, spki) = {
            let cert = parse(&der, what)?;
            // A version 1 certificate has no basicConstraints to say it is a
            // CA; only a self-signed one (an old root) is taken as one.
            let v1_leaf = cert.extensions().is_empty() && cert.subject() != cert.issuer();
            (
                cert.subject().to_string(),
                cert.issuer().to_string(),
                cert.validity().not_before.timestamp(),
                cert.validity().not_after.timestamp(),
                check_issuer(&cert, 0).is_ok() && !v1_leaf,
                cert.subject().as_raw().to_vec(),
                cert.issuer().as_raw().to_vec(),
                cert.public_key().raw.to_vec(),
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
            subject_raw,
            issuer_raw,
            spki,
        })
    }

    /// The same CA: the same name and the same key (another certificate of
    /// it, e.g. re-issued with a later notAfter).
    pub fn same_ca(&self, other: &CaCertificate) -> bool {
        self.subject_raw == other.subject_raw && self.spki == other.spki
    }

    /// Whether this CA issued `child`, as the EK chain check would accept
    /// it: the names match, the key identifiers (where both are present)
    /// match, and the signature verifies. A signature that cannot be checked
    /// (an algorithm the verifier refuses, such as SHA-1) counts as issued:
    /// for distrust, erring towards "issued" is the safe side.
    pub fn issued(&self, child: &CaCertificate) -> bool {
        if self.same_ca(child) || self.subject_raw != child.issuer_raw {
            return false;
        }
        let (Ok(parent), Ok(kid)) = (parse(&self.der, "issuer"), parse(&child.der, "child")) else {
            return false;
        };
        if !may_have_issued(&parent, &kid) {
            return false;
        }
        !matches!(
            kid.verify_signature(Some(parent.public_key())),
            Err(x509_parser::error::X509Error::SignatureVerificationError)
        )
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

/// Why a certificate is not an anchor, if it is not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotTrusted {
    /// The operator distrusted it.
    Distrusted,
    /// The operator distrusted the shipped certificate that issued it.
    IssuerDistrusted,
    /// It is not a CA certificate.
    NotCa,
}

/// Which of `certs` may anchor an EK chain, given the fingerprints (full
/// lower-case hex) the operator distrusts: `None` for those that may, else
/// why not. A distrusted fingerprint distrusts every certificate of the same
/// CA ([`CaCertificate::same_ca`]); where `cascade[i]` is set (the shipped
/// certificates), certificate `i` is also distrusted when a distrusted CA
/// issued it, down the hierarchy.
pub fn trust_status(
    certs: &[&CaCertificate],
    cascade: &[bool],
    distrusted: &[String],
) -> Vec<Option<NotTrusted>> {
    let named: Vec<&CaCertificate> = certs
        .iter()
        .copied()
        .filter(|c| distrusted.contains(&c.fingerprint()))
        .collect();
    let mut status: Vec<Option<NotTrusted>> = certs
        .iter()
        .map(|c| {
            if named.iter().any(|d| d.same_ca(c)) {
                Some(NotTrusted::Distrusted)
            } else if !c.is_ca {
                Some(NotTrusted::NotCa)
            } else {
                None
            }
        })
        .collect();
    // Down the hierarchy until nothing changes (each round settles at least
    // one more level; bounded by the number of certificates).
    for _ in 0..certs.len() {
        let mut changed = false;
        for (i, c) in certs.iter().enumerate() {
            if status[i].is_some() || !cascade.get(i).copied().unwrap_or(false) {
                continue;
            }
            let issuer_gone = certs.iter().zip(&status).any(|(p, st)| {
                matches!(
                    st,
                    Some(NotTrusted::Distrusted | NotTrusted::IssuerDistrusted)
                ) && p.issued(c)
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

    fn refs(shipped: &[ShippedCa]) -> (Vec<&CaCertificate>, Vec<bool>) {
        (
            shipped.iter().map(|s| &s.certificate).collect(),
            vec![true; shipped.len()],
        )
    }

    #[test]
    fn distrusting_a_root_takes_what_it_issued() {
        let shipped = shipped().unwrap();
        let (certs, cascade) = refs(&shipped);
        let (i, child) = certs
            .iter()
            .enumerate()
            .find_map(|(i, r)| {
                let child = certs.iter().position(|c| r.self_signed() && r.issued(c))?;
                Some((i, child))
            })
            .expect("a shipped root with a shipped certificate it issued");
        let before = trust_status(&certs, &cascade, &[]);
        assert!(before.iter().all(Option::is_none));
        let after = trust_status(&certs, &cascade, &[certs[i].fingerprint()]);
        assert_eq!(after[i], Some(NotTrusted::Distrusted));
        assert_eq!(after[child], Some(NotTrusted::IssuerDistrusted));
        // Without the cascade (the operator's own files) only the CA itself.
        let own = trust_status(&certs, &vec![false; certs.len()], &[certs[i].fingerprint()]);
        assert_eq!(own[child], None);
        // Everything that fell is the root, its twins, or below them.
        for (j, st) in after.iter().enumerate() {
            if *st == Some(NotTrusted::Distrusted) {
                assert!(certs[j].same_ca(certs[i]), "{}", shipped[j].file);
            }
        }
    }

    /// Vendors re-issue a CA with the same name and key; distrusting one
    /// certificate of it distrusts them all (the chain check would accept
    /// any of them).
    #[test]
    fn distrust_takes_the_twins() {
        let shipped = shipped().unwrap();
        let (certs, cascade) = refs(&shipped);
        let (a, b) = (0..certs.len())
            .find_map(|a| {
                let b = (0..certs.len()).find(|&b| b != a && certs[a].same_ca(certs[b]))?;
                Some((a, b))
            })
            .expect("twins among the shipped certificates");
        assert_ne!(certs[a].sha256, certs[b].sha256);
        let st = trust_status(&certs, &cascade, &[certs[a].fingerprint()]);
        assert_eq!(st[a], Some(NotTrusted::Distrusted));
        assert_eq!(st[b], Some(NotTrusted::Distrusted), "{}", shipped[b].file);
    }

    /// Two CAs of one name but different keys: distrusting one does not
    /// distrust what the other issued.
    #[test]
    fn a_namesake_is_not_an_issuer() {
        let shipped = shipped().unwrap();
        let (certs, cascade) = refs(&shipped);
        let found = (0..certs.len()).find_map(|a| {
            (0..certs.len()).find_map(|b| {
                let namesakes = a != b
                    && certs[a].subject_raw == certs[b].subject_raw
                    && !certs[a].same_ca(certs[b]);
                if !namesakes {
                    return None;
                }
                let child = certs.iter().position(|c| {
                    certs[b].issued(c) && !certs[a].issued(c) && !certs[a].same_ca(c)
                })?;
                Some((a, child))
            })
        });
        let (a, child) = found.expect("two shipped CAs sharing a name");
        let st = trust_status(&certs, &cascade, &[certs[a].fingerprint()]);
        assert_eq!(st[child], None, "{}", shipped[child].file);
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
