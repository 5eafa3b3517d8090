//! TPM2_Quote verification: is this TPMS_ATTEST, signed by this AK, a fresh quote of
//! the PCRs the verifier asked for? (`shared/specs/tpm-evidence.md` §2–§4.)
//!
//! Each failed check is its own [`QuoteError`] variant; its Display text is the
//! finding an operator reads.

use crate::digest::{hex, HashAlg};
use crate::tpm::{
    self, alg, Attest, EccCurve, EccPublic, EccSignature, PcrSelection, PcrValues, Public,
    PublicKey, QuoteInfo, Signature, TpmError, TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE,
};
use pki::sig::{self, SigError};

/// What the verifier asked the TPM to quote.
#[derive(Clone, Copy, Debug)]
pub struct QuoteExpectation<'a> {
    /// The nonce sent as qualifyingData; the quote's extraData must equal it.
    pub nonce: &'a [u8],
    /// The PCR selection requested; `None` accepts whatever the quote covers.
    pub selection: Option<&'a [PcrSelection]>,
    /// PCR values (read or replayed) the quote's pcrDigest must match; `None` skips it.
    pub pcr_values: Option<&'a PcrValues>,
    /// Verify RSASSA signatures over SHA-1 (legacy cloud vTPMs sign quotes so).
    /// SHA-1 collisions with a chosen prefix are practical, so this is an
    /// operator's explicit choice; [`VerifiedQuote::sig_hash`] tells the
    /// caller when it was used.
    pub allow_sha1: bool,
}

/// A quote that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedQuote {
    /// The signed TPMS_ATTEST: clock info, firmware version, qualified signer.
    pub attest: Attest,
    /// Its TPMS_QUOTE_INFO: the selection and digest the signature covers.
    pub quote: QuoteInfo,
    /// The signing scheme's hash, which is also the hash of `quote.pcr_digest`.
    pub sig_hash: HashAlg,
}

/// Why a quote was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    #[error("the AK is not a restricted signing key (attributes {0:#010x}): its signatures do not prove the TPM made the quote")]
    NotAnAttestationKey(u32),
    #[error("signature scheme {sig} does not fit the AK ({key})")]
    SchemeMismatch { sig: String, key: String },
    #[error("signature cannot be checked: {0}")]
    Unsupported(String),
    #[error("the AK public key is unusable: {0}")]
    BadKey(String),
    #[error("the quote signature does not verify with the AK: the quote was altered or signed by another key")]
    BadSignature,
    #[error("the signed quote does not parse: {0}")]
    Malformed(TpmError),
    #[error("magic {0:#010x} is not TPM_GENERATED_VALUE 0xff544347: the TPM did not produce these bytes")]
    WrongMagic(u32),
    #[error("attestation type {0:#06x} is not TPM_ST_ATTEST_QUOTE 0x8018")]
    NotAQuote(u16),
    #[error(
        "nonce mismatch: the quote carries {got}, expected {expected} (stale or replayed quote)"
    )]
    NonceMismatch { got: String, expected: String },
    #[error("PCR selection mismatch: the quote covers {got}, the verifier asked for {expected}")]
    SelectionMismatch { got: String, expected: String },
    #[error("PCR digest mismatch: the quote says {got}, the PCR values give {expected}")]
    PcrDigestMismatch { got: String, expected: String },
    #[error("cannot compute the PCR digest: {0}")]
    PcrValues(TpmError),
}

/// Verifies a quote made by `ak` over `attest_bytes` (TPMS_ATTEST, no size prefix).
///
/// Checks, in order: the AK is a restricted signing key; the signature scheme fits
/// the AK; the signature verifies; magic; type; nonce; selection; PCR digest.
pub fn verify_quote(
    ak: &Public,
    attest_bytes: &[u8],
    sig: &Signature,
    expected: &QuoteExpectation<'_>,
) -> Result<VerifiedQuote, QuoteError> {
    // Only a restricted key refuses to sign outside data that starts with
    // TPM_GENERATED_VALUE; with any other key the magic check proves nothing.
    let attrs = ak.object_attributes;
    if !(attrs.restricted() && attrs.sign()) || attrs.decrypt() {
        return Err(QuoteError::NotAnAttestationKey(attrs.0));
    }
    check_scheme(ak, sig)?;
    let sig_hash = verify_signature(ak, attest_bytes, sig, expected.allow_sha1)?;

    let attest = Attest::parse(attest_bytes).map_err(QuoteError::Malformed)?;
    if attest.magic != TPM_GENERATED_VALUE {
        return Err(QuoteError::WrongMagic(attest.magic));
    }
    if attest.attest_type != TPM_ST_ATTEST_QUOTE {
        return Err(QuoteError::NotAQuote(attest.attest_type));
    }
    let quote = match attest.quote_info() {
        Some(q) => q.clone(),
        None => return Err(QuoteError::NotAQuote(attest.attest_type)),
    };
    if !constant_time_eq(&attest.extra_data, expected.nonce) {
        return Err(QuoteError::NonceMismatch {
            got: hex(&attest.extra_data),
            expected: hex(expected.nonce),
        });
    }
    if let Some(selection) = expected.selection {
        if quote.pcr_select.as_slice() != selection {
            return Err(QuoteError::SelectionMismatch {
                got: tpm::selection_to_string(&quote.pcr_select),
                expected: tpm::selection_to_string(selection),
            });
        }
    }
    if let Some(values) = expected.pcr_values {
        let digest =
            tpm::pcr_digest(sig_hash, &quote.pcr_select, values).map_err(QuoteError::PcrValues)?;
        if !constant_time_eq(&digest, &quote.pcr_digest) {
            return Err(QuoteError::PcrDigestMismatch {
                got: hex(&quote.pcr_digest),
                expected: hex(&digest),
            });
        }
    }
    Ok(VerifiedQuote {
        attest,
        quote,
        sig_hash,
    })
}

/// Equality whose time depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold into an early exit.
    core::hint::black_box(diff) == 0
}

fn key_description(ak: &Public) -> String {
    let scheme = ak.scheme();
    let scheme = match scheme.hash {
        Some(h) => format!("{}/{}", tpm::alg_name(scheme.scheme), tpm::alg_name(h)),
        None => tpm::alg_name(scheme.scheme),
    };
    match &ak.key {
        PublicKey::Rsa(k) => format!("RSA-{} key, scheme {scheme}", k.key_bits),
        PublicKey::Ecc(k) => format!("ECC {} key, scheme {scheme}", k.curve),
    }
}

/// The signature's scheme must be one the AK's type can make, and the AK's own
/// scheme if it fixes one (a restricted key signs only with its scheme).
fn check_scheme(ak: &Public, sig: &Signature) -> Result<(), QuoteError> {
    let fits_type = match (&ak.key, sig) {
        (PublicKey::Rsa(_), Signature::RsaSsa(_) | Signature::RsaPss(_)) => true,
        (PublicKey::Ecc(k), Signature::Sm2(_)) => k.curve == EccCurve::Sm2P256,
        (
            PublicKey::Ecc(k),
            Signature::Ecdsa(_) | Signature::EcDaa(_) | Signature::EcSchnorr(_),
        ) => k.curve != EccCurve::Sm2P256,
        _ => false,
    };
    let scheme = ak.scheme();
    let fits_scheme =
        scheme.scheme == alg::NULL || (scheme.scheme == sig.sig_alg() && scheme.hash == sig.hash());
    if fits_type && fits_scheme {
        return Ok(());
    }
    let sig_desc = match sig.hash() {
        Some(h) => format!("{}/{}", tpm::alg_name(sig.sig_alg()), tpm::alg_name(h)),
        None => tpm::alg_name(sig.sig_alg()),
    };
    Err(QuoteError::SchemeMismatch {
        sig: sig_desc,
        key: key_description(ak),
    })
}

/// Verifies the signature over `msg`; returns the scheme's hash.
fn verify_signature(
    ak: &Public,
    msg: &[u8],
    sig: &Signature,
    allow_sha1: bool,
) -> Result<HashAlg, QuoteError> {
    let raw_hash = sig
        .hash()
        .ok_or_else(|| QuoteError::Unsupported("a NULL signature".into()))?;
    let hash = HashAlg::from_tpm_alg(raw_hash).ok_or_else(|| {
        QuoteError::Unsupported(format!("unknown signature hash {raw_hash:#06x}"))
    })?;
    if hash == HashAlg::Sha1 && !allow_sha1 {
        return Err(QuoteError::Unsupported(
            "SHA-1 signatures are not accepted (a legacy vTPM's quote: verify it with \
             `evidence quote --allow-sha1`, or let the PDP accept such quotes with \
             attestation.allow_sha1_quotes = true)"
                .into(),
        ));
    }
    match (&ak.key, sig) {
        (PublicKey::Rsa(k), Signature::RsaSsa(s) | Signature::RsaPss(s)) => {
            let pss = matches!(sig, Signature::RsaPss(_));
            sig::verify_rsa((&k.modulus, k.exponent), pss, hash, msg, &s.sig).map_err(from_sig)?
        }
        (PublicKey::Ecc(k), Signature::Ecdsa(s)) => {
            sig::verify_ecdsa(k.curve, point(k), hash, msg, rs(s)).map_err(from_sig)?
        }
        (PublicKey::Ecc(k), Signature::Sm2(s)) => {
            sig::verify_sm2_tpm(point(k), hash, msg, rs(s)).map_err(from_sig)?
        }
        _ => {
            return Err(QuoteError::Unsupported(format!(
                "{} signatures (ECDAA and EC-Schnorr need TPM-side state; HMAC is not a quote signature)",
                tpm::alg_name(sig.sig_alg())
            )))
        }
    }
    Ok(hash)
}

/// A signature check's failure in the quote's terms.
fn from_sig(e: SigError) -> QuoteError {
    match e {
        SigError::Unsupported(what) => QuoteError::Unsupported(what),
        SigError::BadKey(what) => QuoteError::BadKey(what),
        SigError::BadSignature => QuoteError::BadSignature,
    }
}

/// SEC1-free views of the TPM structures for `pki::sig`.
fn point(k: &EccPublic) -> (&[u8], &[u8]) {
    (&k.x, &k.y)
}

fn rs(s: &EccSignature) -> (&[u8], &[u8]) {
    (&s.r, &s.s)
}

pub use pki::sig::sm2_verify_prehash_vartime;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::from_hex;
    use crate::tpm::{Attested, ClockInfo, RsaSignature};
    use ring::rand::SystemRandom;
    use ring::signature::{self as rsig, RsaPublicKeyComponents};
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use sm2::dsa::signature::hazmat::PrehashSigner;

    const NONCE: &[u8] = &[0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77];
    /// Any distinguishing identifier works: the prehash path never computes Z_A.
    const SM2_DISTID: &str = "1234567812345678";
    const AK_ATTRS: u32 = 0x0005_0072;

    fn unhex(s: &str) -> Vec<u8> {
        from_hex(s).expect("test vector hex")
    }

    fn tpm2b(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        out.extend_from_slice(b);
    }

    /// TPMT_PUBLIC of an ECC AK with the given attributes, scheme and point.
    fn ecc_ak(attrs: u32, curve: u16, scheme: u16, sec1: &[u8]) -> Public {
        let half = (sec1.len() - 1) / 2;
        let mut b = Vec::new();
        b.extend_from_slice(&[0x00, 0x23, 0x00, 0x0b]);
        b.extend_from_slice(&attrs.to_be_bytes());
        b.extend_from_slice(&[0x00, 0x00, 0x00, 0x10]); // no policy, symmetric NULL
        b.extend_from_slice(&scheme.to_be_bytes());
        b.extend_from_slice(&[0x00, 0x0b]);
        b.extend_from_slice(&curve.to_be_bytes());
        b.extend_from_slice(&[0x00, 0x10]); // kdf NULL
        tpm2b(&mut b, &sec1[1..1 + half]);
        tpm2b(&mut b, &sec1[1 + half..]);
        Public::parse(&b).unwrap()
    }

    fn rsa_ak(scheme: u16, n: &[u8]) -> Public {
        let mut b = Vec::new();
        b.extend_from_slice(&[0x00, 0x01, 0x00, 0x0b]);
        b.extend_from_slice(&AK_ATTRS.to_be_bytes());
        b.extend_from_slice(&[0x00, 0x00, 0x00, 0x10]);
        b.extend_from_slice(&scheme.to_be_bytes());
        b.extend_from_slice(&[0x00, 0x0b, 0x08, 0x00, 0, 0, 0, 0]);
        tpm2b(&mut b, n);
        Public::parse(&b).unwrap()
    }

    fn sample_attest(nonce: &[u8], values: &PcrValues) -> Attest {
        let pcr_select = tpm::parse_selection("sha256:0,1,2,3,10").unwrap();
        let pcr_digest = tpm::pcr_digest(HashAlg::Sha256, &pcr_select, values).unwrap();
        Attest {
            magic: TPM_GENERATED_VALUE,
            attest_type: TPM_ST_ATTEST_QUOTE,
            qualified_signer: vec![0x00, 0x0b, 0xaa, 0xbb],
            extra_data: nonce.to_vec(),
            clock_info: ClockInfo {
                clock: 1234,
                reset_count: 2,
                restart_count: 0,
                safe: true,
            },
            firmware_version: 0x2019_1023_0016_3636,
            attested: Attested::Quote(QuoteInfo {
                pcr_select,
                pcr_digest,
            }),
        }
    }

    fn sample_values() -> PcrValues {
        let mut values = PcrValues::new();
        for i in [0u32, 1, 2, 3, 10] {
            values.insert(HashAlg::Sha256, i, HashAlg::Sha256.digest(&i.to_be_bytes()));
        }
        values
    }

    /// A software "TPM" for one key type: signs attest bytes as a TPM would.
    trait SoftAk {
        fn public(&self) -> Public;
        fn sign(&self, msg: &[u8]) -> Signature;
    }

    struct P256(EcdsaKeyPair);

    impl P256 {
        fn new() -> Self {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            Self(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap(),
            )
        }
    }

    impl SoftAk for P256 {
        fn public(&self) -> Public {
            ecc_ak(AK_ATTRS, 0x0003, alg::ECDSA, self.0.public_key().as_ref())
        }
        fn sign(&self, msg: &[u8]) -> Signature {
            let rs = self.0.sign(&SystemRandom::new(), msg).unwrap();
            let (r, s) = rs.as_ref().split_at(32);
            // Like a TPM, drop a leading zero byte of r: the verifier must re-pad.
            Signature::Ecdsa(EccSignature {
                hash: 0x000b,
                r: r[r.iter().take_while(|&&b| b == 0).count()..].to_vec(),
                s: s.to_vec(),
            })
        }
    }

    struct Sm2Key(sm2::dsa::SigningKey);

    impl Sm2Key {
        fn new(seed: u8) -> Self {
            let secret = HashAlg::Sha256.digest(&[seed]);
            Self(sm2::dsa::SigningKey::from_slice(SM2_DISTID, &secret).unwrap())
        }
    }

    impl SoftAk for Sm2Key {
        fn public(&self) -> Public {
            let point = self.0.verifying_key().to_sec1_bytes();
            ecc_ak(AK_ATTRS, 0x0020, alg::SM2, &point)
        }
        fn sign(&self, msg: &[u8]) -> Signature {
            let sig = self.0.sign_prehash(&HashAlg::Sha256.digest(msg)).unwrap();
            let bytes = sig.to_bytes();
            Signature::Sm2(EccSignature {
                hash: 0x000b,
                r: bytes[..32].to_vec(),
                s: bytes[32..].to_vec(),
            })
        }
    }

    fn expect<'a>(
        sel: Option<&'a [PcrSelection]>,
        values: Option<&'a PcrValues>,
    ) -> QuoteExpectation<'a> {
        QuoteExpectation {
            nonce: NONCE,
            selection: sel,
            pcr_values: values,
            allow_sha1: false,
        }
    }

    /// Every rejection path for one key type.
    fn rejection_paths(key: &dyn SoftAk, foreign: &dyn SoftAk) {
        let ak = key.public();
        let values = sample_values();
        let selection = tpm::parse_selection("sha256:0,1,2,3,10").unwrap();
        let good = expect(Some(&selection), Some(&values));
        let attest = sample_attest(NONCE, &values);
        let msg = attest.encode();
        let sig = key.sign(&msg);

        let ok = verify_quote(&ak, &msg, &sig, &good).unwrap();
        assert_eq!(ok.attest, attest);
        assert_eq!(ok.sig_hash, HashAlg::Sha256);
        assert_eq!(ok.attest.clock_info.clock, 1234);

        // Wrong nonce.
        let stale = QuoteExpectation {
            nonce: b"another nonce",
            ..good
        };
        let err = verify_quote(&ak, &msg, &sig, &stale).unwrap_err();
        assert!(matches!(err, QuoteError::NonceMismatch { .. }), "{err}");
        assert!(err.to_string().contains("0011223344556677"));

        // Any changed byte breaks the signature.
        for i in 0..msg.len() {
            let mut bad = msg.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                verify_quote(&ak, &bad, &sig, &good),
                Err(QuoteError::BadSignature),
                "byte {i}"
            );
        }

        // Another key's signature, and this key's signature checked against another AK.
        let other = foreign.sign(&msg);
        let err = verify_quote(&ak, &msg, &other, &good).unwrap_err();
        assert!(
            matches!(
                err,
                QuoteError::BadSignature | QuoteError::SchemeMismatch { .. }
            ),
            "{err}"
        );
        let err = verify_quote(&foreign.public(), &msg, &sig, &good).unwrap_err();
        assert!(
            matches!(
                err,
                QuoteError::BadSignature | QuoteError::SchemeMismatch { .. }
            ),
            "{err}"
        );

        // Wrong selection.
        let asked = tpm::parse_selection("sha256:0,1,2,3").unwrap();
        let err = verify_quote(&ak, &msg, &sig, &expect(Some(&asked), None)).unwrap_err();
        assert_eq!(
            err,
            QuoteError::SelectionMismatch {
                got: "sha256:0,1,2,3,10".into(),
                expected: "sha256:0,1,2,3".into()
            }
        );

        // PCR values that do not give the quoted digest, and missing ones.
        let mut changed = values.clone();
        changed.insert(HashAlg::Sha256, 10, vec![0; 32]);
        let err = verify_quote(&ak, &msg, &sig, &expect(None, Some(&changed))).unwrap_err();
        assert!(matches!(err, QuoteError::PcrDigestMismatch { .. }), "{err}");
        let mut missing = PcrValues::new();
        missing.insert(HashAlg::Sha256, 0, vec![0; 32]);
        let err = verify_quote(&ak, &msg, &sig, &expect(None, Some(&missing))).unwrap_err();
        assert!(
            matches!(err, QuoteError::PcrValues(TpmError::MissingPcr { .. })),
            "{err}"
        );

        // A validly signed body that is not a TPM quote: wrong magic, wrong type, garbage.
        let mut wrong_magic = attest.clone();
        wrong_magic.magic = 0xFF54_4348;
        let bytes = wrong_magic.encode();
        let err = verify_quote(&ak, &bytes, &key.sign(&bytes), &good).unwrap_err();
        assert_eq!(err, QuoteError::WrongMagic(0xFF54_4348));
        let mut certify = attest.clone();
        certify.attest_type = 0x8017;
        let bytes = certify.encode();
        let err = verify_quote(&ak, &bytes, &key.sign(&bytes), &good).unwrap_err();
        assert_eq!(err, QuoteError::NotAQuote(0x8017));
        let mut trailing = msg.clone();
        trailing.push(0);
        let err = verify_quote(&ak, &trailing, &key.sign(&trailing), &good).unwrap_err();
        assert!(matches!(err, QuoteError::Malformed(_)), "{err}");

        // An AK that is not a restricted signing key cannot vouch for the magic.
        let mut unrestricted = Public::parse(ak.marshalled()).unwrap();
        unrestricted.object_attributes = tpm::ObjectAttributes(0x0004_0072);
        assert_eq!(
            verify_quote(&unrestricted, &msg, &sig, &good),
            Err(QuoteError::NotAnAttestationKey(0x0004_0072))
        );

        // No expectations beyond the nonce: accepted.
        assert!(verify_quote(&ak, &msg, &sig, &expect(None, None)).is_ok());
    }

    #[test]
    fn ecdsa_p256_rejection_paths() {
        rejection_paths(&P256::new(), &P256::new());
    }

    #[test]
    fn sm2_rejection_paths() {
        rejection_paths(&Sm2Key::new(1), &Sm2Key::new(2));
    }

    /// The variable-time SM2 verifier agrees with the `sm2` crate's own
    /// (constant-time) one on genuine signatures and on every way of spoiling
    /// them: another prehash, another key, r or s changed, s = n - r (t = 0).
    #[test]
    fn sm2_vartime_verifier_matches_the_crate() {
        use sm2::dsa::signature::hazmat::PrehashVerifier;
        use sm2::elliptic_curve::PrimeField;
        let crate_verify = |key: &Sm2Key, e: &[u8; 32], sig: &sm2::dsa::Signature| {
            key.0.verifying_key().verify_prehash(e, sig).is_ok()
        };
        let ours = |key: &Sm2Key, e: &[u8; 32], sig: &sm2::dsa::Signature| {
            sm2_verify_prehash_vartime(
                &sm2::PublicKey::from_affine(*key.0.verifying_key().as_affine()).unwrap(),
                e,
                sig,
            )
        };
        let mut accepted = 0;
        let mut refused = 0;
        for seed in 0..24u8 {
            let key = Sm2Key::new(seed);
            let other = Sm2Key::new(seed.wrapping_add(100));
            let e: [u8; 32] = HashAlg::Sha256.digest(&[seed, 0xe5]).try_into().unwrap();
            let sig: sm2::dsa::Signature = key.0.sign_prehash(&e).unwrap();
            let bytes = sig.to_bytes();
            let mut cases = vec![(&key, e, sig)];
            let mut e2 = e;
            e2[31 - usize::from(seed % 32)] ^= 1 << (seed % 8);
            cases.push((&key, e2, sig));
            cases.push((&other, e, sig));
            for i in [0, 31, 32, 63] {
                let mut b = bytes;
                b[i] ^= 0x40;
                if let Ok(bad) = sm2::dsa::Signature::from_slice(&b) {
                    cases.push((&key, e, bad));
                }
            }
            // s = n - r makes t = 0, which B5 refuses.
            let neg_r = -*sig.r();
            let mut b = bytes;
            b[32..].copy_from_slice(&neg_r.to_repr());
            cases.push((&key, e, sm2::dsa::Signature::from_slice(&b).unwrap()));
            for (k, e, sig) in cases {
                let (want, got) = (crate_verify(k, &e, &sig), ours(k, &e, &sig));
                assert_eq!(want, got, "seed {seed}: crate {want}, ours {got}");
                if got {
                    accepted += 1;
                } else {
                    refused += 1;
                }
            }
        }
        assert_eq!(accepted, 24, "every genuine signature verifies");
        assert!(refused >= 24 * 7, "{refused} refusals");
    }

    #[test]
    fn key_type_and_scheme_must_match() {
        let p256 = P256::new();
        let sm2 = Sm2Key::new(3);
        let values = sample_values();
        let msg = sample_attest(NONCE, &values).encode();
        let good = expect(None, None);
        // An SM2 signature presented for an ECDSA AK, and the reverse.
        let err = verify_quote(&p256.public(), &msg, &sm2.sign(&msg), &good).unwrap_err();
        assert!(matches!(err, QuoteError::SchemeMismatch { .. }), "{err}");
        assert!(err.to_string().contains("sm2/sha256"), "{err}");
        let err = verify_quote(&sm2.public(), &msg, &p256.sign(&msg), &good).unwrap_err();
        assert!(matches!(err, QuoteError::SchemeMismatch { .. }), "{err}");
        // An RSA signature for an ECC AK.
        let rsa_sig = Signature::RsaSsa(RsaSignature {
            hash: 0x000b,
            sig: vec![1; 256],
        });
        let err = verify_quote(&p256.public(), &msg, &rsa_sig, &good).unwrap_err();
        assert!(matches!(err, QuoteError::SchemeMismatch { .. }), "{err}");
        // The right scheme with a hash the AK does not allow.
        let Signature::Ecdsa(mut e) = p256.sign(&msg) else {
            unreachable!()
        };
        e.hash = 0x000c;
        let err = verify_quote(&p256.public(), &msg, &Signature::Ecdsa(e), &good).unwrap_err();
        assert!(matches!(err, QuoteError::SchemeMismatch { .. }), "{err}");
        // The Z_A-prefixed SM2 of ordinary SM2 signing is not what a TPM makes.
        use sm2::dsa::signature::Signer;
        let za: sm2::dsa::Signature = sm2.0.sign(&msg);
        let bytes = za.to_bytes();
        let za = Signature::Sm2(EccSignature {
            hash: 0x000b,
            r: bytes[..32].to_vec(),
            s: bytes[32..].to_vec(),
        });
        assert_eq!(
            verify_quote(&sm2.public(), &msg, &za, &good),
            Err(QuoteError::BadSignature)
        );
    }

    // RSA-2048 key and signatures over the swtpm quote in `tpm::tests`, made with
    // Python `cryptography` 48 (OpenSSL): PKCS#1 v1.5, and PSS with salt lengths
    // 32 (= hash), 222 (the maximum) and 0, all SHA-256.
    const RSA_N: &str = "d244321327502fc8257e8325503cae8f52ba4c69c115e243202ea7e61afabfe6a42187bbd8c7153c4db7466de13e374f42dbb8dd1078140770b1889d18fb3adc1f8b7cd309737edf0308db30725c884bec257ad006da54f049d069499f9fc2ea36d5452e0b221032b176eb8745cdb2f1ee349f9a47f71270d620b8e510ef04bcb26fb2e99e542680822117184384f2a5428b298b13de70f6490bd3056cad2ecf7285712b004324a83536607dd44e7288056ca5b3b67cdc51f2a47c81a77d8329904bc12c6ed7f973a3089b87cf8c6c257ca69d4b8258171fb10d417d499e5b67e097ecd8debdba703541a242a2d57f20a6b0844677f14ee67d2771007680122d";
    const RSA_PKCS1: &str = "87b09a5a9522e651bd9738e08639fd9c3ddd30e58d71b7af58ac28441da7ad8b3db0f7418e91548effa141cadd27409e9df2d92ed1ecaacec1b62c77185aa321ca0b0c866f41ad790462c07a68ea1b6ff516a2163e48d79fb378c5f77a871747a94af67861eb08c98443222a07a047bb17b8f7a98ffd24d15ce82fb96549989f6d94e9e0944cbd6a259a12b11e68fb20d5a8a8c5e34adfa66f913e8939f017ce304a52067bb908659ed1441a77d5144db72ed0bf6bb818ae7fbdec7fc0e4b91e748378e57b0cf1fc5001b008b135ca504c34b889d69835088280d15df5f535aee005c0c84f1605d4845e6651cceae5b4265e057e1346b21344623a4eb98cfc0c";
    const RSA_PSS_32: &str = "0566857282cc28a003579eeb557e8e49abb95dcd157883537280ebcd2d7704954895dc7448db598498b68c0f1555b3f35bacd7caf366271b42d3abe8606ab1a027137b9e9ebb5e6713a6137267aef8d3fc556f732b0f0620573a7f7e32fe4a3ce8b4979c9ad5340ad64d59b1c0824ffd0644ffaf3e596e8114bdad1805386766ce50c3434dca18515e08f2a3132373d36d7a3574803760a04a528c37359ef36615fe32f738e9f6b0bcc3b22d73f833be8ecbfa17eeec6fe03a2dc84e81835bc4838fb4a958a40d8c143d7888f1e06571fa031f3a5442af7f7f6830be502259959fe459f3e82d664c6d9cf7481266aabfcf3161926102ecf7c5485d9c1bc4beb6";
    const RSA_PSS_MAX: &str = "0a7d1269b63423fede0423fb7207de1511d63743af349c2089de794a0ead44956099a1eb394902e31806c9c6c441cd938f83ecfd56fe59ff01957602ea3a3c8c8da32a2d273b503ab2e2189720e1b50d2b559feb976c487e5ace03b5745e724886fb37975a563e11e18bf2c546bb6ea709645a9dd3f714cb81a82518879eddac59b26d2c66d5e61f01264ac2f9357e787ac18e7ee59ecb19925200bd46c30fbf768c662a078ab00fbf57f27ecf7d4d2cfc16a74534e2fa54e422a24dd62bc663507b33320a33c81ee6d91f0cf5e9c9abcffc0a4922c2db76e52a62d6653b7573a43ac9a99494016de5cf703bfd4e0e7800f77cd8fa4e503b9c795e26e0799109";
    const RSA_PSS_0: &str = "881dd76a7de48999c802f471b2185ebae07a958bed28dc1ae3b5635f054f3ceb97453f4eb9908d3ab80e80030b5eff1423216605a5655e4feff982c6230ad6461af3633b8c72bc4c047b17d6dab6dcc236f28da12eb0f25163df5c7b91f8468a9ec9f7534c681df31f465b746fc9bbaf47d9fe6614d3ae2c3f8061e4b65ac2ec6834587bcc57871acd8d71821cd41d78e09ba6500b31c449bd1b030f1aaa0348d7c1339066bf234077e5dafe77d93421e6dd70d0a492785008dd6fce727df72216d0b8b30102f6c56dc4a5fcd6700d2cc2c6413ffab6adde1e25ac63749291b41d374e4e6a2c78914d040c3672914e7f57659dfe4da25bfef9875ec1d8dc4297";
    const SWTPM_QUOTE_MSG: &str = "ff54434780180022000bb42e0f43c698f1d15298a6ddc6fef281545ad88f52ede3688eb6a29912c4ad96000800112233445566770000000000000270000000010000000001201910230016363600000001000b030f040000204bc5c1d8df80b4d413df287f0732e0e39e3cb1311898f641c653d2275b436969";

    fn rsa_sig(pss: bool, hex_sig: &str) -> Signature {
        let s = RsaSignature {
            hash: 0x000b,
            sig: unhex(hex_sig),
        };
        if pss {
            Signature::RsaPss(s)
        } else {
            Signature::RsaSsa(s)
        }
    }

    #[test]
    fn rsa_public_op_recovers_pkcs1_encoding() {
        let em = pki::sig::rsa_public_op(&unhex(RSA_N), 65537, &unhex(RSA_PKCS1)).unwrap();
        let digest = HashAlg::Sha256.digest(&unhex(SWTPM_QUOTE_MSG));
        let digest_info = unhex("3031300d060960864801650304020105000420");
        let mut want = vec![0x00, 0x01];
        want.resize(256 - 3 - digest_info.len() - 32 + 2, 0xff);
        want.push(0x00);
        want.extend_from_slice(&digest_info);
        want.extend_from_slice(&digest);
        assert_eq!(em, want);
    }

    #[test]
    fn rsa_signatures_verify_with_any_pss_salt() {
        let msg = unhex(SWTPM_QUOTE_MSG);
        let good = expect(None, None);
        let ssa_ak = rsa_ak(alg::RSASSA, &unhex(RSA_N));
        let pss_ak = rsa_ak(alg::RSAPSS, &unhex(RSA_N));
        assert!(verify_quote(&ssa_ak, &msg, &rsa_sig(false, RSA_PKCS1), &good).is_ok());
        for vector in [RSA_PSS_32, RSA_PSS_MAX, RSA_PSS_0] {
            let sig = rsa_sig(true, vector);
            assert!(verify_quote(&pss_ak, &msg, &sig, &good).is_ok());
            // Mixing up the two RSA schemes is a scheme mismatch for a key that fixes one.
            assert!(matches!(
                verify_quote(&ssa_ak, &msg, &sig, &good),
                Err(QuoteError::SchemeMismatch { .. })
            ));
            let mut bad = msg.clone();
            bad[40] ^= 0x80;
            assert_eq!(
                verify_quote(&pss_ak, &bad, &sig, &good),
                Err(QuoteError::BadSignature)
            );
        }
        // Only the hash-length salt goes through ring; the others need the fallback.
        let n = unhex(RSA_N);
        let e: &[u8] = &[1, 0, 1];
        let ring_ok = |sig: &str| {
            RsaPublicKeyComponents { n: &n[..], e }
                .verify(&rsig::RSA_PSS_2048_8192_SHA256, &msg, &unhex(sig))
                .is_ok()
        };
        assert!(ring_ok(RSA_PSS_32));
        assert!(!ring_ok(RSA_PSS_MAX) && !ring_ok(RSA_PSS_0));
        // A PKCS#1 v1.5 signature is not a PSS signature with some salt.
        assert_eq!(
            verify_quote(&pss_ak, &msg, &rsa_sig(true, RSA_PKCS1), &good),
            Err(QuoteError::BadSignature)
        );
        // A wrong nonce is still caught after an RSA signature verifies.
        let stale = QuoteExpectation {
            nonce: b"x",
            ..good
        };
        assert!(matches!(
            verify_quote(&ssa_ak, &msg, &rsa_sig(false, RSA_PKCS1), &stale),
            Err(QuoteError::NonceMismatch { .. })
        ));
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    proptest::proptest! {
        #[test]
        fn verify_never_panics(attest in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
                               r in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
                               s in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            let ak = Sm2Key::new(9).public();
            let sig = Signature::Sm2(EccSignature { hash: 0x000b, r: r.clone(), s: s.clone() });
            let _ = verify_quote(&ak, &attest, &sig, &expect(None, None));
            let ak = P256::new().public();
            let sig = Signature::Ecdsa(EccSignature { hash: 0x000b, r, s });
            let _ = verify_quote(&ak, &attest, &sig, &expect(None, None));
        }
    }
}
