//! TPM2_MakeCredential in software (TPM 2.0 Library Part 1 §24, Part 3 §12.6): the
//! verifier encrypts a fresh secret to a TPM's EK, bound to the Name of an AK. Only
//! the TPM holding that EK can recover the secret, and it releases it
//! (TPM2_ActivateCredential) only if an object with that Name is loaded in it: a
//! client that returns the secret proves its AK lives beside the EK.
//!
//! Byte layout (big-endian), with `H` the EK's nameAlg and the EK's symmetric key size:
//! * `seed`: `H`-size random bytes. RSA EK: `secret = RSA-OAEP(H, label "IDENTITY\0")(seed)`.
//!   ECC EK: an ephemeral ECDH with the EK's key gives `Z` (x-coordinate) and
//!   `seed = KDFe(H, Z, "IDENTITY", Qe.x, Qek.x)`; `secret = TPMS_ECC_POINT(Qe)`.
//! * `symKey = KDFa(H, seed, "STORAGE", akName, "", keyBits)`;
//!   `encIdentity = AES-CFB(symKey, IV 0)(u16 size || credential)`.
//! * `hmacKey = KDFa(H, seed, "INTEGRITY", "", "", |H|*8)`;
//!   `integrity = HMAC_H(hmacKey, encIdentity || akName)`.
//! * TPM2B_ID_OBJECT = `u16 size || u16 |H| || integrity || encIdentity`;
//!   TPM2B_ENCRYPTED_SECRET = `u16 size || secret`.

use crate::alg::{EccCurve, HashAlg, Sha2};
use crate::ek::{EkKey, EkPublic, EkSymmetric};
use crate::kdf::{kdf_a, kdf_e};
use cfb_mode::cipher::{AsyncStreamCipher, KeyIvInit};
use ring::agreement;
use ring::hmac;
use ring::rand::SecureRandom;
use rsa::rand_core::{CryptoRng, RngCore};
use std::fmt;

/// Magic at the start of the credential file tpm2-tools writes
/// (`tpm2_makecredential -o`) and reads (`tpm2_activatecredential -i`).
pub const TPM2_TOOLS_CREDENTIAL_MAGIC: u32 = 0xBADC_C0DE;

/// What TPM2_MakeCredential returns: the two arguments of TPM2_ActivateCredential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MadeCredential {
    /// TPM2B_ID_OBJECT (`credentialBlob`), its u16 size included.
    pub id_object: Vec<u8>,
    /// TPM2B_ENCRYPTED_SECRET (`secret`), its u16 size included.
    pub encrypted_secret: Vec<u8>,
}

impl MadeCredential {
    /// The file format of tpm2-tools 5.x: u32 magic 0xBADCC0DE, u32 version 1, then
    /// the TPM2B_ID_OBJECT and the TPM2B_ENCRYPTED_SECRET, all big-endian.
    pub fn to_tpm2_tools_file(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.id_object.len() + self.encrypted_secret.len());
        out.extend_from_slice(&TPM2_TOOLS_CREDENTIAL_MAGIC.to_be_bytes());
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(&self.id_object);
        out.extend_from_slice(&self.encrypted_secret);
        out
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error(
        "EK symmetric algorithm {algorithm:#06x}/{key_bits} bits/mode {mode:#06x} \
         is not supported (AES-128/192/256 in CFB mode)"
    )]
    UnsupportedSymmetric {
        algorithm: u16,
        key_bits: u16,
        mode: u16,
    },
    #[error("EK curve {0:?} is not supported for MakeCredential (NIST P-256, P-384)")]
    UnsupportedCurve(EccCurve),
    #[error("EK nameAlg {0} is not supported for MakeCredential (SHA-256, SHA-384, SHA-512)")]
    UnsupportedNameAlg(HashAlg),
    #[error("EK public key is unusable: {0}")]
    InvalidEkKey(&'static str),
    #[error("credential of {len} bytes: must be 1 to {max} bytes (the EK nameAlg's digest size)")]
    CredentialSize { len: usize, max: usize },
    #[error("AK Name of {len} bytes is not nameAlg || digest of a known hash")]
    InvalidAkName { len: usize },
    #[error("seed of {len} bytes: the EK nameAlg needs {expected}")]
    SeedSize { len: usize, expected: usize },
    #[error("the seed was made for a different EK key type")]
    SeedKeyMismatch,
    #[error("the random number generator failed")]
    Rng,
}

/// The seed both sides derive the credential keys from, and the TPM2B_ENCRYPTED_SECRET
/// that carries it to the TPM (step 1 of MakeCredential).
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialSeed {
    seed: Vec<u8>,
    encrypted_secret: Vec<u8>,
    for_rsa: bool,
}

impl fmt::Debug for CredentialSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The seed decrypts the credential: never print it.
        f.debug_struct("CredentialSeed")
            .field("seed", &"<redacted>")
            .field("encrypted_secret_len", &self.encrypted_secret.len())
            .finish()
    }
}

impl CredentialSeed {
    /// A fresh seed for `ek`, encrypted to it (RSA-OAEP or ephemeral ECDH).
    pub fn generate(ek: &EkPublic, rng: &dyn SecureRandom) -> Result<Self, CredentialError> {
        check_symmetric(&ek.symmetric)?;
        let h = name_alg(ek)?;
        match &ek.key {
            EkKey::Rsa { .. } => {
                let mut seed = vec![0u8; h.size()];
                rng.fill(&mut seed).map_err(|_| CredentialError::Rng)?;
                Self::rsa(ek, seed, rng)
            }
            EkKey::Ecc { curve, x, y } => {
                let (alg, field) = ecdh_alg(*curve)?;
                let ek_point = uncompressed_point(field, x, y)?;
                let private = agreement::EphemeralPrivateKey::generate(alg, rng)
                    .map_err(|_| CredentialError::Rng)?;
                let public = private
                    .compute_public_key()
                    .map_err(|_| CredentialError::Rng)?;
                let public = public.as_ref();
                if public.len() != 1 + 2 * field {
                    return Err(CredentialError::Rng);
                }
                let (qe_x, qe_y) = public[1..].split_at(field);
                let peer = agreement::UnparsedPublicKey::new(alg, &ek_point);
                let z = agreement::agree_ephemeral(private, &peer, |z| z.to_vec())
                    .map_err(|_| CredentialError::InvalidEkKey("EC point is not on the curve"))?;
                Self::from_ecdh(ek, &z, qe_x, qe_y)
            }
        }
    }

    /// For an RSA EK: `seed` as given, OAEP-encrypted with the label "IDENTITY\0";
    /// `rng` supplies only the OAEP padding's randomness.
    pub fn rsa(
        ek: &EkPublic,
        seed: Vec<u8>,
        rng: &dyn SecureRandom,
    ) -> Result<Self, CredentialError> {
        let EkKey::Rsa { modulus, exponent } = &ek.key else {
            return Err(CredentialError::SeedKeyMismatch);
        };
        check_seed_size(ek.name_alg, &seed)?;
        let modulus = strip_leading_zeros(modulus);
        if modulus.len() < 256 {
            return Err(CredentialError::InvalidEkKey(
                "RSA modulus shorter than 2048 bits",
            ));
        }
        // TPMS_RSA_PARMS.exponent 0 stands for 65537.
        let exponent = if *exponent == 0 { 65537 } else { *exponent };
        let key = rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(modulus),
            rsa::BigUint::from(exponent),
        )
        .map_err(|_| CredentialError::InvalidEkKey("RSA key rejected (size or exponent)"))?;
        let padding = match name_alg(ek)? {
            Sha2::Sha256 => rsa::Oaep::new_with_label::<sha2::Sha256, _>("IDENTITY\0"),
            Sha2::Sha384 => rsa::Oaep::new_with_label::<sha2::Sha384, _>("IDENTITY\0"),
            Sha2::Sha512 => rsa::Oaep::new_with_label::<sha2::Sha512, _>("IDENTITY\0"),
        };
        let mut oaep_rng = RingRng { rng, failed: false };
        let encrypted = key
            .encrypt(&mut oaep_rng, padding, &seed)
            .map_err(|_| CredentialError::InvalidEkKey("RSA-OAEP refused the seed"))?;
        if oaep_rng.failed {
            return Err(CredentialError::Rng);
        }
        Ok(Self {
            seed,
            encrypted_secret: tpm2b(&encrypted)?,
            for_rsa: true,
        })
    }

    /// For an ECC EK, from an ECDH done elsewhere: `z` is the x-coordinate of
    /// `d_e · Q_ek`, `(ephemeral_x, ephemeral_y)` is `Q_e`. Known-answer tests use
    /// this; so could an HSM that keeps the ephemeral key.
    pub fn from_ecdh(
        ek: &EkPublic,
        z: &[u8],
        ephemeral_x: &[u8],
        ephemeral_y: &[u8],
    ) -> Result<Self, CredentialError> {
        let EkKey::Ecc { curve, x, .. } = &ek.key else {
            return Err(CredentialError::SeedKeyMismatch);
        };
        let (_, field) = ecdh_alg(*curve)?;
        let ek_x = left_pad(x, field)?;
        let qe_x = left_pad(ephemeral_x, field)?;
        let qe_y = left_pad(ephemeral_y, field)?;
        let z = left_pad(z, field)?;
        let h = name_alg(ek)?;
        let seed = kdf_e(h, &z, "IDENTITY", &qe_x, &ek_x, h.size() as u32 * 8);
        // TPMS_ECC_POINT: TPM2B_ECC_PARAMETER x, TPM2B_ECC_PARAMETER y.
        let mut point = tpm2b(&qe_x)?;
        point.extend_from_slice(&tpm2b(&qe_y)?);
        Ok(Self {
            seed,
            encrypted_secret: tpm2b(&point)?,
            for_rsa: false,
        })
    }

    /// The TPM2B_ENCRYPTED_SECRET, size included.
    pub fn encrypted_secret(&self) -> &[u8] {
        &self.encrypted_secret
    }
}

/// TPM2_MakeCredential: `credential` (1 to |nameAlg| bytes) for the TPM holding `ek`,
/// released only to an object whose Name is `ak_name`.
pub fn make_credential(
    ek: &EkPublic,
    ak_name: &[u8],
    credential: &[u8],
    rng: &dyn SecureRandom,
) -> Result<MadeCredential, CredentialError> {
    check_inputs(ek, ak_name, credential)?;
    let seed = CredentialSeed::generate(ek, rng)?;
    make_credential_with_seed(ek, ak_name, credential, &seed)
}

/// MakeCredential with step 1 done already: deterministic, for known-answer tests.
pub fn make_credential_with_seed(
    ek: &EkPublic,
    ak_name: &[u8],
    credential: &[u8],
    seed: &CredentialSeed,
) -> Result<MadeCredential, CredentialError> {
    check_inputs(ek, ak_name, credential)?;
    check_seed_size(ek.name_alg, &seed.seed)?;
    if seed.for_rsa != matches!(ek.key, EkKey::Rsa { .. }) {
        return Err(CredentialError::SeedKeyMismatch);
    }
    let h = name_alg(ek)?;
    let key_bits = ek.symmetric.key_bits;

    let sym_key = kdf_a(h, &seed.seed, "STORAGE", ak_name, &[], u32::from(key_bits));
    // The credential goes in as a TPM2B_DIGEST: its size is encrypted too.
    let mut enc_identity = tpm2b(credential)?;
    aes_cfb_encrypt(&sym_key, &mut enc_identity)?;

    let hmac_key = kdf_a(h, &seed.seed, "INTEGRITY", &[], &[], h.size() as u32 * 8);
    let key = hmac::Key::new(h.hmac_alg(), &hmac_key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(&enc_identity);
    ctx.update(ak_name);
    let integrity = ctx.sign();

    // TPM2B_ID_OBJECT: the integrity HMAC as a TPM2B_DIGEST, then encIdentity with
    // no size of its own.
    let mut body = tpm2b(integrity.as_ref())?;
    body.extend_from_slice(&enc_identity);
    Ok(MadeCredential {
        id_object: tpm2b(&body)?,
        encrypted_secret: seed.encrypted_secret.clone(),
    })
}

fn check_inputs(ek: &EkPublic, ak_name: &[u8], credential: &[u8]) -> Result<(), CredentialError> {
    check_symmetric(&ek.symmetric)?;
    let max = name_alg(ek)?.size();
    if credential.is_empty() || credential.len() > max {
        return Err(CredentialError::CredentialSize {
            len: credential.len(),
            max,
        });
    }
    let name_ok = ak_name.len() >= 2
        && HashAlg::from_tpm_alg(u16::from_be_bytes([ak_name[0], ak_name[1]]))
            .is_some_and(|h| ak_name.len() == 2 + h.size());
    if !name_ok {
        return Err(CredentialError::InvalidAkName { len: ak_name.len() });
    }
    Ok(())
}

fn check_symmetric(sym: &EkSymmetric) -> Result<(), CredentialError> {
    let ok = sym.algorithm == EkSymmetric::AES
        && sym.mode == EkSymmetric::CFB
        && matches!(sym.key_bits, 128 | 192 | 256);
    if ok {
        Ok(())
    } else {
        Err(CredentialError::UnsupportedSymmetric {
            algorithm: sym.algorithm,
            key_bits: sym.key_bits,
            mode: sym.mode,
        })
    }
}

/// The EK's nameAlg, if MakeCredential can work with it here.
fn name_alg(ek: &EkPublic) -> Result<Sha2, CredentialError> {
    Sha2::of(ek.name_alg).ok_or(CredentialError::UnsupportedNameAlg(ek.name_alg))
}

fn check_seed_size(h: HashAlg, seed: &[u8]) -> Result<(), CredentialError> {
    if seed.len() == h.size() {
        Ok(())
    } else {
        Err(CredentialError::SeedSize {
            len: seed.len(),
            expected: h.size(),
        })
    }
}

fn aes_cfb_encrypt(key: &[u8], buf: &mut [u8]) -> Result<(), CredentialError> {
    const IV: [u8; 16] = [0; 16];
    let bad = |_| CredentialError::InvalidEkKey("symmetric key size");
    match key.len() {
        16 => cfb_mode::Encryptor::<aes::Aes128>::new_from_slices(key, &IV)
            .map_err(bad)?
            .encrypt(buf),
        24 => cfb_mode::Encryptor::<aes::Aes192>::new_from_slices(key, &IV)
            .map_err(bad)?
            .encrypt(buf),
        32 => cfb_mode::Encryptor::<aes::Aes256>::new_from_slices(key, &IV)
            .map_err(bad)?
            .encrypt(buf),
        _ => return Err(CredentialError::InvalidEkKey("symmetric key size")),
    }
    Ok(())
}

/// ring's ECDH for the EK's curve, and the curve's field size.
fn ecdh_alg(curve: EccCurve) -> Result<(&'static agreement::Algorithm, usize), CredentialError> {
    match curve {
        EccCurve::NistP256 => Ok((&agreement::ECDH_P256, 32)),
        EccCurve::NistP384 => Ok((&agreement::ECDH_P384, 48)),
        other => Err(CredentialError::UnsupportedCurve(other)),
    }
}

fn uncompressed_point(field: usize, x: &[u8], y: &[u8]) -> Result<Vec<u8>, CredentialError> {
    let mut point = vec![0x04];
    point.extend_from_slice(&left_pad(x, field)?);
    point.extend_from_slice(&left_pad(y, field)?);
    Ok(point)
}

/// A coordinate as exactly `size` big-endian bytes, as the TPM marshals it.
fn left_pad(value: &[u8], size: usize) -> Result<Vec<u8>, CredentialError> {
    let value = strip_leading_zeros(value);
    if value.len() > size {
        return Err(CredentialError::InvalidEkKey(
            "EC coordinate larger than the field",
        ));
    }
    let mut out = vec![0u8; size - value.len()];
    out.extend_from_slice(value);
    Ok(out)
}

fn strip_leading_zeros(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|&b| b != 0).unwrap_or(value.len());
    &value[start..]
}

fn tpm2b(body: &[u8]) -> Result<Vec<u8>, CredentialError> {
    let size = u16::try_from(body.len())
        .map_err(|_| CredentialError::InvalidEkKey("structure larger than a TPM2B"))?;
    let mut out = Vec::with_capacity(2 + body.len());
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// ring's random source as the `rand_core` generator `rsa` wants. `RngCore` cannot
/// fail, so a failure is remembered and the caller discards the result.
struct RingRng<'a> {
    rng: &'a dyn SecureRandom,
    failed: bool,
}

impl RngCore for RingRng<'_> {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if self.rng.fill(dest).is_err() {
            self.failed = true;
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for RingRng<'_> {}
