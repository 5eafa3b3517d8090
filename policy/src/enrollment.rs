//! AK enrollment, server side: is this attestation key a restricted signing key
//! that lives in the same TPM as an endorsement key a trusted manufacturer
//! certified? Nothing about a device is trusted before this holds.
//!
//! 1. [`begin`]: the EK certificate chains to a configured root, the EK public
//!    area the device sent is the certified key, the AK has the attributes of a
//!    TPM-resident attestation key; a fresh secret is wrapped for the EK and bound
//!    to the AK's Name (TPM2_MakeCredential, done in software by `pki`).
//! 2. The device's TPM runs TPM2_ActivateCredential: it releases the secret only
//!    if it holds the EK's private key *and* an object with exactly that Name.
//! 3. [`PendingEnrollment::finish`]: the returned secret must match (constant
//!    time). Then the AK is enrolled for this device.

use crate::digest::hex;
use crate::tpm::{Public, PublicKey};
use pki::credential::{make_credential, CredentialError};
use pki::ek::{
    ek_matches_certificate, verify_ek_certificate, EkCertError, EkCertificate, EkKey, EkPublic,
    EkSymmetric,
};
use thiserror::Error;

/// Bytes of the credential secret: the EK nameAlg's digest size bounds it; 32
/// bytes fit SHA-256 and larger.
pub const SECRET_LEN: usize = 32;

/// Why enrollment was refused.
#[derive(Debug, Error)]
pub enum EnrollError {
    #[error("EK certificate: {0}")]
    EkCertificate(#[from] EkCertError),
    #[error("the EK public area sent is not the key the EK certificate certifies")]
    EkMismatch,
    #[error("the EK public area cannot be used: {0}")]
    BadEk(String),
    #[error("not an attestation key: {0}")]
    BadAk(String),
    #[error("cannot make the credential: {0}")]
    Credential(#[from] CredentialError),
    #[error("credential activation failed: the AK is not in the TPM that holds the certified EK")]
    ActivationFailed,
}

/// TPMA_OBJECT bits an AK must have: fixedTPM, fixedParent, sensitiveDataOrigin
/// (it was made in, and can never leave, this TPM), restricted and sign (it signs
/// only TPM-generated structures); decrypt must be clear.
pub fn check_ak_attributes(ak: &Public) -> Result<(), EnrollError> {
    let a = ak.object_attributes;
    let required = [
        (a.fixed_tpm(), "fixedTPM"),
        (a.fixed_parent(), "fixedParent"),
        (a.sensitive_data_origin(), "sensitiveDataOrigin"),
        (a.restricted(), "restricted"),
        (a.sign(), "sign"),
    ];
    let missing: Vec<&str> = required
        .iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, n)| *n)
        .collect();
    if !missing.is_empty() {
        return Err(EnrollError::BadAk(format!(
            "attributes {:#010x} lack {}",
            a.0,
            missing.join(", ")
        )));
    }
    if a.decrypt() {
        return Err(EnrollError::BadAk(format!(
            "attributes {:#010x} allow decryption",
            a.0
        )));
    }
    Ok(())
}

/// The EK as `pki` needs it for MakeCredential.
pub fn ek_for_credential(ek: &Public) -> Result<EkPublic, EnrollError> {
    if !ek.name_alg.is_sha2() {
        return Err(EnrollError::BadEk(format!(
            "nameAlg {} is not SHA-256/384/512",
            ek.name_alg
        )));
    }
    let sym = ek
        .symmetric
        .as_ref()
        .ok_or_else(|| EnrollError::BadEk("no symmetric algorithm: not a storage key".into()))?;
    let key = match &ek.key {
        PublicKey::Rsa(k) => EkKey::Rsa {
            modulus: k.modulus.clone(),
            exponent: k.exponent,
        },
        PublicKey::Ecc(k) if k.curve.field_size().is_none() => {
            return Err(EnrollError::BadEk(format!(
                "curve {:#06x}",
                k.curve.tpm_curve()
            )))
        }
        PublicKey::Ecc(k) => EkKey::Ecc {
            curve: k.curve,
            x: k.x.clone(),
            y: k.y.clone(),
        },
    };
    Ok(EkPublic {
        name_alg: ek.name_alg,
        symmetric: EkSymmetric {
            algorithm: sym.algorithm,
            key_bits: sym.key_bits,
            mode: sym.mode,
        },
        key,
    })
}

/// An enrollment waiting for the device's activation.
pub struct PendingEnrollment {
    /// TPM2B_ID_OBJECT for TPM2_ActivateCredential.
    pub id_object: Vec<u8>,
    /// TPM2B_ENCRYPTED_SECRET for TPM2_ActivateCredential.
    pub encrypted_secret: Vec<u8>,
    /// The AK's Name the credential is bound to.
    pub ak_name: Vec<u8>,
    pub ek_certificate: EkCertificate,
    secret: [u8; SECRET_LEN],
}

impl std::fmt::Debug for PendingEnrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingEnrollment")
            .field("ak_name", &hex(&self.ak_name))
            .field("ek_subject", &self.ek_certificate.subject)
            .finish_non_exhaustive()
    }
}

/// Checks the EK certificate, the EK and the AK, and wraps a fresh secret for
/// them. `now` is unix seconds (the caller's clock).
pub fn begin(
    ek: &Public,
    ek_certificate: &[u8],
    roots: &[Vec<u8>],
    intermediates: &[Vec<u8>],
    ak: &Public,
    now: i64,
    rng: &dyn pki::rand::SecureRandom,
) -> Result<PendingEnrollment, EnrollError> {
    let cert = verify_ek_certificate(ek_certificate, roots, intermediates, now)?;
    let ek_pub = ek_for_credential(ek)?;
    if !ek_matches_certificate(&ek_pub, &cert) {
        return Err(EnrollError::EkMismatch);
    }
    check_ak_attributes(ak)?;
    let mut secret = [0u8; SECRET_LEN];
    rng.fill(&mut secret)
        .map_err(|_| EnrollError::BadEk("no randomness for the credential".into()))?;
    let ak_name = ak.name();
    let made = make_credential(&ek_pub, &ak_name, &secret, rng)?;
    Ok(PendingEnrollment {
        id_object: made.id_object,
        encrypted_secret: made.encrypted_secret,
        ak_name,
        ek_certificate: cert,
        secret,
    })
}

impl PendingEnrollment {
    /// Checks what the device's TPM returned from TPM2_ActivateCredential.
    pub fn finish(&self, activated: &[u8]) -> Result<(), EnrollError> {
        if crate::quote::constant_time_eq(activated, &self.secret) {
            Ok(())
        } else {
            Err(EnrollError::ActivationFailed)
        }
    }
}
