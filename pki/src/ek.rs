//! Endorsement keys: the EK public values MakeCredential needs, and the check of an
//! EK certificate's chain up to a configured root (the TPM vendor's, or swtpm's
//! local CA in tests: the same code).
//!
//! The chain check is path validation reduced to what an EK certificate needs
//! (RFC 5280 §6 without policies, name constraints or revocation): each certificate
//! is signed by the next, the last by a configured root; every certificate is within
//! its validity at `now`; every issuer is a CA (basicConstraints, keyUsage, path
//! length); no certificate carries a critical extension we do not understand.
//! The TCG EK Credential Profile's own critical extension, a subjectAltName with the
//! TPM manufacturer, model and version as a directory name (with an empty subject
//! allowed), is understood, and its values are returned.

use crate::alg::{EccCurve, HashAlg};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

/// An EK's public area, reduced to what MakeCredential uses. Take the values from the
/// EK's TPMT_PUBLIC (its Name covers them), not from the certificate, which carries
/// no nameAlg or symmetric.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EkPublic {
    /// nameAlg: the hash of KDFa, KDFe, OAEP and the integrity HMAC.
    pub name_alg: HashAlg,
    /// TPMT_SYM_DEF_OBJECT of the EK: the cipher for the credential.
    pub symmetric: EkSymmetric,
    pub key: EkKey,
}

/// TPMT_SYM_DEF_OBJECT, as TPM identifiers. MakeCredential accepts AES in CFB mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EkSymmetric {
    pub algorithm: u16,
    pub key_bits: u16,
    pub mode: u16,
}

impl EkSymmetric {
    /// TPM_ALG_AES.
    pub const AES: u16 = 0x0006;
    /// TPM_ALG_CFB.
    pub const CFB: u16 = 0x0043;
    /// The low-range EK templates (L-1, L-2).
    pub const AES_128_CFB: Self = Self::aes_cfb(128);
    /// The high-range templates for larger keys (e.g. H-3, ECC P-384).
    pub const AES_256_CFB: Self = Self::aes_cfb(256);

    pub const fn aes_cfb(key_bits: u16) -> Self {
        Self {
            algorithm: Self::AES,
            key_bits,
            mode: Self::CFB,
        }
    }
}

/// An EK's public key, from its TPMT_PUBLIC `unique` field or its certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EkKey {
    Rsa {
        /// Big-endian modulus.
        modulus: Vec<u8>,
        /// Public exponent; 0 stands for 65537, as in TPMS_RSA_PARMS.
        exponent: u32,
    },
    Ecc {
        curve: EccCurve,
        /// Big-endian coordinates.
        x: Vec<u8>,
        y: Vec<u8>,
    },
}

/// What a verified EK certificate says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EkCertificate {
    /// RFC 4514-style text; often empty for EK certificates (the TPM is named in the
    /// subjectAltName instead).
    pub subject: String,
    pub issuer: String,
    /// Serial number, big-endian as encoded.
    pub serial: Vec<u8>,
    /// Validity, unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    pub public_key: EkKey,
    /// From the subjectAltName directory name (TCG OIDs 2.23.133.2.1/2/3), e.g.
    /// "id:00001014" (IBM, as swtpm says), "swtpm", "id:20191023".
    pub tpm_manufacturer: Option<String>,
    pub tpm_model: Option<String>,
    pub tpm_version: Option<String>,
    /// Subjects from the EK certificate's issuer up to the root that anchored it.
    pub chain: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EkCertError {
    #[error("{what} is not a DER X.509 certificate: {reason}")]
    Malformed { what: String, reason: String },
    #[error(
        "unknown CA: no configured root or intermediate issued {subject:?} (issuer {issuer:?})"
    )]
    UnknownCa { subject: String, issuer: String },
    #[error("bad signature: {subject:?} does not verify with the key of {issuer:?}")]
    BadSignature { subject: String, issuer: String },
    #[error("{subject:?} is signed with {algorithm}, which is not accepted")]
    UnsupportedSignatureAlgorithm { subject: String, algorithm: String },
    #[error("{subject:?} expired at {not_after} (now {now}, unix seconds)")]
    Expired {
        subject: String,
        not_after: i64,
        now: i64,
    },
    #[error("{subject:?} is not valid before {not_before} (now {now}, unix seconds)")]
    NotYetValid {
        subject: String,
        not_before: i64,
        now: i64,
    },
    #[error("{subject:?} issued a certificate but is not a CA (basicConstraints/keyUsage)")]
    NotCa { subject: String },
    #[error("{subject:?} allows {allowed} intermediate CAs below it, the chain has {found}")]
    PathLenExceeded {
        subject: String,
        allowed: u32,
        found: u32,
    },
    #[error("{subject:?} carries critical extension {oid}, which is not understood")]
    UnsupportedCriticalExtension { subject: String, oid: String },
    #[error("the EK certificate's public key is not supported: {0}")]
    UnsupportedPublicKey(String),
    #[error("no chain of at most {0} certificates reaches a configured root")]
    ChainTooLong(usize),
    #[error("PEM: {0}")]
    Pem(String),
}

/// Longest chain accepted, the EK certificate and the root included.
pub const MAX_CHAIN_LEN: usize = 8;

/// Critical extensions this module understands (RFC 5280 §4.2: anything else that is
/// critical must make the certificate fail).
const UNDERSTOOD_CRITICAL: [&str; 5] = [
    "2.5.29.15", // keyUsage
    "2.5.29.17", // subjectAltName: the TCG profile makes it critical
    "2.5.29.19", // basicConstraints
    "2.5.29.32", // certificatePolicies: no policy is required, so none is enforced
    "2.5.29.37", // extendedKeyUsage
];

/// Signature algorithms refused outright: SHA-1 and MD5 signatures can be forged.
const WEAK_SIGNATURES: [&str; 5] = [
    "1.2.840.113549.1.1.4", // md5WithRSAEncryption
    "1.2.840.113549.1.1.5", // sha1WithRSAEncryption
    "1.3.14.3.2.29",        // sha1WithRSA (OIW)
    "1.2.840.10045.4.1",    // ecdsa-with-SHA1
    "1.2.840.10040.4.3",    // dsa-with-sha1
];

const OID_TPM_MANUFACTURER: &str = "2.23.133.2.1";
const OID_TPM_MODEL: &str = "2.23.133.2.2";
const OID_TPM_VERSION: &str = "2.23.133.2.3";

/// Checks `cert_der`, an EK certificate, against the trust anchors `roots` with the
/// help of `intermediates` (all DER), at `now` (unix seconds), and returns what it
/// certifies. Trailing NUL or 0xFF bytes after the certificate (an NV index larger
/// than the certificate) are ignored.
///
/// Roots are trust anchors: their own signature is not checked, but their validity
/// period and CA status are.
pub fn verify_ek_certificate(
    cert_der: &[u8],
    roots: &[Vec<u8>],
    intermediates: &[Vec<u8>],
    now: i64,
) -> Result<EkCertificate, EkCertError> {
    let leaf = parse(cert_der, "the EK certificate")?;
    let roots = roots
        .iter()
        .enumerate()
        .map(|(i, der)| parse(der, &format!("root certificate {i}")))
        .collect::<Result<Vec<_>, _>>()?;
    let intermediates = intermediates
        .iter()
        .enumerate()
        .map(|(i, der)| parse(der, &format!("intermediate certificate {i}")))
        .collect::<Result<Vec<_>, _>>()?;

    // Signatures first: an unknown or forged chain is reported as such even when it
    // is also expired.
    let chain = build_chain(&leaf, &roots, &intermediates)?;
    for (depth, cert) in chain.iter().enumerate() {
        check_validity(cert, now)?;
        check_critical_extensions(cert)?;
        if depth > 0 {
            // `depth - 1` intermediate CAs sit between this issuer and the EK cert.
            check_issuer(cert, depth as u32 - 1)?;
        }
    }

    let public_key = certificate_key(&leaf)?;
    let (tpm_manufacturer, tpm_model, tpm_version) = tpm_identity(&leaf);
    Ok(EkCertificate {
        subject: leaf.subject().to_string(),
        issuer: leaf.issuer().to_string(),
        serial: leaf.raw_serial().to_vec(),
        not_before: leaf.validity().not_before.timestamp(),
        not_after: leaf.validity().not_after.timestamp(),
        public_key,
        tpm_manufacturer,
        tpm_model,
        tpm_version,
        chain: chain[1..].iter().map(|c| c.subject().to_string()).collect(),
    })
}

/// Whether the EK the TPM presented is the key the certificate certifies.
pub fn ek_matches_certificate(ek: &EkPublic, cert: &EkCertificate) -> bool {
    match (&ek.key, &cert.public_key) {
        (
            EkKey::Rsa {
                modulus: m1,
                exponent: e1,
            },
            EkKey::Rsa {
                modulus: m2,
                exponent: e2,
            },
        ) => {
            let e = |e: u32| if e == 0 { 65537 } else { e };
            strip_leading_zeros(m1) == strip_leading_zeros(m2) && e(*e1) == e(*e2)
        }
        (
            EkKey::Ecc {
                curve: c1,
                x: x1,
                y: y1,
            },
            EkKey::Ecc {
                curve: c2,
                x: x2,
                y: y2,
            },
        ) => {
            c1 == c2
                && strip_leading_zeros(x1) == strip_leading_zeros(x2)
                && strip_leading_zeros(y1) == strip_leading_zeros(y2)
        }
        _ => false,
    }
}

/// The DER certificates in PEM text (`-----BEGIN CERTIFICATE-----` blocks; other
/// blocks are skipped), e.g. a file of vendor roots.
pub fn certificates_from_pem(pem: &[u8]) -> Result<Vec<Vec<u8>>, EkCertError> {
    let out = certificates_in_pem(pem)?;
    if out.is_empty() {
        return Err(EkCertError::Pem("no CERTIFICATE block".into()));
    }
    Ok(out)
}

/// As [`certificates_from_pem`], but text without any certificate (a file
/// that holds only comments, waiting for the operator's first CA) is no error.
pub fn certificates_in_pem(pem: &[u8]) -> Result<Vec<Vec<u8>>, EkCertError> {
    let mut out = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| EkCertError::Pem(e.to_string()))?;
        if block.label == "CERTIFICATE" {
            out.push(block.contents);
        }
    }
    Ok(out)
}

pub(crate) fn parse<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>, EkCertError> {
    let malformed = |reason: String| EkCertError::Malformed {
        what: what.to_string(),
        reason,
    };
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| malformed(e.to_string()))?;
    if !rest.iter().all(|&b| b == 0x00 || b == 0xFF) {
        return Err(malformed(format!(
            "{} bytes after the certificate",
            rest.len()
        )));
    }
    // RFC 5280 §4.1.1.2: the signed and the outer algorithm must agree.
    if cert.tbs_certificate.signature.algorithm != cert.signature_algorithm.algorithm {
        return Err(malformed(
            "inner and outer signature algorithms differ".into(),
        ));
    }
    Ok(cert)
}

/// Leaf first, root last. Among certificates whose subject matches an issuer name
/// (and whose subjectKeyIdentifier matches the authorityKeyIdentifier, where both
/// are present), the first whose key verifies the signature is taken.
fn build_chain<'c, 'a>(
    leaf: &'c X509Certificate<'a>,
    roots: &'c [X509Certificate<'a>],
    intermediates: &'c [X509Certificate<'a>],
) -> Result<Vec<&'c X509Certificate<'a>>, EkCertError> {
    let mut chain = vec![leaf];
    while chain.len() < MAX_CHAIN_LEN {
        let child = chain[chain.len() - 1];
        check_signature_algorithm(child)?;
        let mut named = false;
        for (is_root, candidate) in roots
            .iter()
            .map(|c| (true, c))
            .chain(intermediates.iter().map(|c| (false, c)))
        {
            if !may_have_issued(candidate, child)
                || chain.iter().any(|c| c.as_raw() == candidate.as_raw())
            {
                continue;
            }
            named = true;
            match child.verify_signature(Some(candidate.public_key())) {
                Ok(()) => {
                    chain.push(candidate);
                    if is_root {
                        return Ok(chain);
                    }
                    break;
                }
                Err(x509_parser::error::X509Error::SignatureUnsupportedAlgorithm) => {
                    return Err(EkCertError::UnsupportedSignatureAlgorithm {
                        subject: child.subject().to_string(),
                        algorithm: child.signature_algorithm.algorithm.to_id_string(),
                    })
                }
                Err(_) => continue,
            }
        }
        if chain[chain.len() - 1].as_raw() == child.as_raw() {
            // Nobody verified `child`'s signature.
            return Err(if named {
                EkCertError::BadSignature {
                    subject: child.subject().to_string(),
                    issuer: child.issuer().to_string(),
                }
            } else {
                EkCertError::UnknownCa {
                    subject: child.subject().to_string(),
                    issuer: child.issuer().to_string(),
                }
            });
        }
    }
    Err(EkCertError::ChainTooLong(MAX_CHAIN_LEN))
}

/// Subject names equal (byte for byte) and, where both certificates name the key,
/// the same key: a different CA that happens to share a name is not an issuer.
pub(crate) fn may_have_issued(issuer: &X509Certificate, child: &X509Certificate) -> bool {
    if issuer.subject().as_raw() != child.issuer().as_raw() {
        return false;
    }
    let ski = issuer
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0),
            _ => None,
        });
    let aki = child
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0),
            _ => None,
        });
    match (ski, aki) {
        (Some(ski), Some(aki)) => ski == aki,
        _ => true,
    }
}

fn check_signature_algorithm(cert: &X509Certificate) -> Result<(), EkCertError> {
    let oid = cert.signature_algorithm.algorithm.to_id_string();
    if WEAK_SIGNATURES.contains(&oid.as_str()) {
        return Err(EkCertError::UnsupportedSignatureAlgorithm {
            subject: cert.subject().to_string(),
            algorithm: oid,
        });
    }
    Ok(())
}

fn check_validity(cert: &X509Certificate, now: i64) -> Result<(), EkCertError> {
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    if now < not_before {
        return Err(EkCertError::NotYetValid {
            subject: cert.subject().to_string(),
            not_before,
            now,
        });
    }
    if now > not_after {
        return Err(EkCertError::Expired {
            subject: cert.subject().to_string(),
            not_after,
            now,
        });
    }
    Ok(())
}

fn check_critical_extensions(cert: &X509Certificate) -> Result<(), EkCertError> {
    for ext in cert.extensions() {
        if !ext.critical {
            continue;
        }
        let oid = ext.oid.to_id_string();
        let understood = UNDERSTOOD_CRITICAL.contains(&oid.as_str())
            && !matches!(
                ext.parsed_extension(),
                ParsedExtension::ParseError { .. } | ParsedExtension::UnsupportedExtension { .. }
            );
        if !understood {
            return Err(EkCertError::UnsupportedCriticalExtension {
                subject: cert.subject().to_string(),
                oid,
            });
        }
    }
    Ok(())
}

/// An issuer must say it is a CA, may sign certificates, and allows
/// `intermediates_below` CAs under it. A version 1 root (no extensions at all) is
/// accepted as a CA: it predates basicConstraints, and it is configured as an anchor.
pub(crate) fn check_issuer(
    cert: &X509Certificate,
    intermediates_below: u32,
) -> Result<(), EkCertError> {
    let subject = || cert.subject().to_string();
    let not_ca = || EkCertError::NotCa { subject: subject() };
    let v1 = cert.extensions().is_empty();
    match cert.basic_constraints() {
        Ok(Some(bc)) => {
            if !bc.value.ca {
                return Err(not_ca());
            }
            if let Some(allowed) = bc.value.path_len_constraint {
                if intermediates_below > allowed {
                    return Err(EkCertError::PathLenExceeded {
                        subject: subject(),
                        allowed,
                        found: intermediates_below,
                    });
                }
            }
        }
        Ok(None) if v1 => {}
        _ => return Err(not_ca()),
    }
    match cert.key_usage() {
        Ok(Some(ku)) if !ku.value.key_cert_sign() => Err(not_ca()),
        Ok(_) => Ok(()),
        Err(_) => Err(not_ca()),
    }
}

fn certificate_key(cert: &X509Certificate) -> Result<EkKey, EkCertError> {
    let unsupported = |why: String| EkCertError::UnsupportedPublicKey(why);
    let spki = cert.public_key();
    match spki.parsed().map_err(|e| unsupported(e.to_string()))? {
        PublicKey::RSA(rsa) => {
            let exponent = rsa
                .try_exponent()
                .ok()
                .and_then(|e| u32::try_from(e).ok())
                .ok_or_else(|| unsupported("RSA exponent does not fit 32 bits".into()))?;
            Ok(EkKey::Rsa {
                modulus: strip_leading_zeros(rsa.modulus).to_vec(),
                exponent,
            })
        }
        PublicKey::EC(point) => {
            let oid = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .ok_or_else(|| unsupported("EC key without a named curve".into()))?;
            let curve =
                EccCurve::from_oid(&oid).ok_or_else(|| unsupported(format!("EC curve {oid}")))?;
            let field = curve
                .field_size()
                .ok_or_else(|| unsupported(format!("EC curve {oid}")))?;
            let data = point.data();
            if data.len() != 1 + 2 * field || data[0] != 0x04 {
                return Err(unsupported("EC point is not uncompressed".into()));
            }
            Ok(EkKey::Ecc {
                curve,
                x: data[1..1 + field].to_vec(),
                y: data[1 + field..].to_vec(),
            })
        }
        other => Err(unsupported(format!(
            "{} key",
            match other {
                PublicKey::DSA(_) => "DSA",
                PublicKey::GostR3410(_) | PublicKey::GostR3410_2012(_) => "GOST",
                _ => "unknown",
            }
        ))),
    }
}

/// The TPM manufacturer, model and version from the subjectAltName directory name.
fn tpm_identity(cert: &X509Certificate) -> (Option<String>, Option<String>, Option<String>) {
    let (mut manufacturer, mut model, mut version) = (None, None, None);
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return (None, None, None);
    };
    for name in &san.value.general_names {
        let GeneralName::DirectoryName(dn) = name else {
            continue;
        };
        for attr in dn.iter_attributes() {
            let value = attr
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|_| String::from_utf8_lossy(attr.as_slice()).into_owned());
            match attr.attr_type().to_id_string().as_str() {
                OID_TPM_MANUFACTURER => manufacturer = Some(value),
                OID_TPM_MODEL => model = Some(value),
                OID_TPM_VERSION => version = Some(value),
                _ => {}
            }
        }
    }
    (manufacturer, model, version)
}

fn strip_leading_zeros(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|&b| b != 0).unwrap_or(value.len());
    &value[start..]
}
