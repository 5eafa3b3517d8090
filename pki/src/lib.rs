//! Keys and certificates for the TNC system. No network I/O, no clock: time comes in
//! as an argument.
//!
//! What is here so far, for AK enrollment on the server side (pure Rust, no TSS):
//! * [`ek`]: the EK certificate chain check against configured roots
//!   ([`ek::verify_ek_certificate`]), the certified key and TPM identity it yields,
//!   and [`ek::ek_matches_certificate`] to tie the EK a TPM presents to it.
//! * [`credential`]: TPM2_MakeCredential in software for RSA and ECC (P-256, P-384)
//!   EKs ([`credential::make_credential`]), so a client proves with
//!   TPM2_ActivateCredential that its AK lives in the TPM that holds the EK.
//! * [`ek_roots`]: the TPM manufacturers' and cloud vTPMs' EK CA certificates
//!   shipped in `pki/ek-roots/`, and which of them are trust anchors.
//! * [`alg`]: the project's one hash-algorithm type and one curve type, with the
//!   TPM identifiers, names and OIDs they convert from and to.
//! * [`sig`]: signature verification (ECDSA, SM2 over a TPM's prehash,
//!   RSASSA-PKCS1-v1_5, RSASSA-PSS with any salt), which `policy` verifies
//!   quotes with.
//!
//! Later issues add the SM2 session certificates, access tickets and the RFC 8998
//! ShangMi provider for rustls and quinn.

// `deny`, not `forbid`: `sm4::x86` (SM4's intrinsics) and `sm2_verify::x86`
// (the SM2 field's assembly) are the two modules that allow `unsafe`; a
// test names the allowances.
#![deny(unsafe_code)]

pub mod alg;
pub mod ca;
pub mod credential;
pub mod ek;
pub mod ek_roots;
mod kdf;
pub mod sig;
pub mod sm2_verify;
#[cfg(feature = "tls")]
pub mod sm4;
pub mod ticket;
#[cfg(feature = "tls")]
pub mod tls;

/// The random source [`credential::make_credential`] takes, re-exported so callers
/// need no direct `ring` dependency (nor a second version of it).
pub mod rand {
    pub use ring::rand::{SecureRandom, SystemRandom};
}

pub use alg::{EccCurve, HashAlg};
pub use credential::{make_credential, CredentialError, MadeCredential};
pub use ek::{
    ek_matches_certificate, verify_ek_certificate, EkCertError, EkCertificate, EkKey, EkPublic,
    EkSymmetric,
};

/// Lower-case hex, for Debug output.
pub(crate) fn digest_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the admin API and `tnc-server admin issue` read of a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectNames {
    /// The subject's common name (the first, if several).
    pub common_name: Option<String>,
    /// The subject's organizational units, in order.
    pub units: Vec<String>,
    /// The subject Name, DER (what an issued certificate's issuer must be).
    pub subject_der: Vec<u8>,
    /// The SubjectPublicKeyInfo, DER.
    pub public_key_info: Vec<u8>,
}

/// A DER X.509 certificate's subject CN and OUs, its subject and public key
/// DER; `None` when the bytes are not a certificate or a name is not text.
pub fn subject_names(der: &[u8]) -> Option<SubjectNames> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let common_name = match subject.iter_common_name().next() {
        Some(cn) => Some(cn.as_str().ok()?.to_string()),
        None => None,
    };
    let units = subject
        .iter_organizational_unit()
        .map(|ou| ou.as_str().map(str::to_string).ok())
        .collect::<Option<Vec<_>>>()?;
    Some(SubjectNames {
        common_name,
        units,
        subject_der: subject.as_raw().to_vec(),
        public_key_info: cert.public_key().raw.to_vec(),
    })
}

/// The subject of a DER X.509 certificate as RFC 4514-style text (its first
/// DNS subjectAltName when the subject is empty), for logs and the audit
/// trail; `None` when the bytes are not a certificate.
pub fn certificate_subject(der: &[u8]) -> Option<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject().to_string();
    if !subject.is_empty() {
        return Some(subject);
    }
    let san = cert.subject_alternative_name().ok().flatten()?;
    san.value.general_names.iter().find_map(|n| match n {
        GeneralName::DNSName(d) => Some(d.to_string()),
        _ => None,
    })
}
