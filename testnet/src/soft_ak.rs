//! A SOFTWARE attestation key: an ECDSA P-256 or SM2 key held in memory that
//! signs TPMS_ATTEST structures as a TPM would.
//!
//! It proves nothing about any machine. It exists so that appraisal tests can
//! cover paths a real TPM cannot easily be made to take (rewound counters,
//! arbitrary PCR values), and so that benchmarks can load the verifier beyond
//! what swtpm produces, with pre-recorded evidence and fresh nonces. Everything
//! it signs is labelled as such by its callers; product code never uses it.

use crate::simulator::Measurements;
use policy::tpm::{
    self, Attest, Attested, ClockInfo, PcrSelection, PcrValues, Public, QuoteInfo,
    TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE,
};
use policy::HashAlg;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use sm2::dsa::signature::hazmat::PrehashSigner;
use std::sync::{Arc, Mutex};
use tnc_client::agent::Collector;
use tnc_proto::attestation::{
    AttestationAttribute, AttestationResult, Hello, Identity, QuoteEvidence, QuoteRequest, Role,
};

/// TPM_ALG_ECDSA and TPM_ALG_SM2 (TPM 2.0 Library Part 2, table 9).
const ALG_ECDSA: u16 = 0x0018;
const ALG_SM2: u16 = 0x001B;
/// TPM_ECC_NIST_P256 and TPM_ECC_SM2_P256 (Part 2, table 10).
const CURVE_NIST_P256: u16 = 0x0003;
const CURVE_SM2_P256: u16 = 0x0020;
/// The SM2 signing key wants a distinguishing ID, but a TPM signs the prehash
/// without Z_A, so its value never reaches a signature; this is the default one.
const SM2_DISTID: &str = "1234567812345678";

/// The private half and how it signs.
enum Key {
    /// ECDSA P-256 with SHA-256.
    Ecdsa {
        key: EcdsaKeyPair,
        /// Kept to clone the key (ring's key pairs are not `Clone`).
        pkcs8: Vec<u8>,
        rng: SystemRandom,
    },
    /// SM2 over SHA-256(TPMS_ATTEST), as a TPM signs with scheme SM2/SHA-256:
    /// e is the scheme hash of the message, with no Z_A prefix.
    Sm2(sm2::dsa::SigningKey),
}

/// A software stand-in for a TPM's ECC AK (restricted, sign, fixedTPM...):
/// ECDSA/SHA-256 on NIST P-256 ([`SoftAk::generate`]) or SM2/SHA-256 on
/// SM2 P-256 ([`SoftAk::generate_sm2`]).
pub struct SoftAk {
    key: Key,
    public: Vec<u8>,
    /// The TPM clock the next quote reports; tests move it as they please.
    pub clock: ClockInfo,
}

/// The same key (a device's next session), with the same clock.
impl Clone for SoftAk {
    fn clone(&self) -> Self {
        let key = match &self.key {
            Key::Ecdsa { pkcs8, .. } => {
                let rng = SystemRandom::new();
                let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
                    .expect("a key that parsed before");
                Key::Ecdsa {
                    key,
                    pkcs8: pkcs8.clone(),
                    rng,
                }
            }
            Key::Sm2(k) => Key::Sm2(k.clone()),
        };
        Self {
            key,
            public: self.public.clone(),
            clock: self.clock,
        }
    }
}

impl std::fmt::Debug for SoftAk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftAk")
            .field("algorithm", &self.algorithm())
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

fn tpm2b(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

/// TPMT_PUBLIC of an ECC AK: nameAlg SHA-256, the attributes of a TPM AK
/// (fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|restricted|sign),
/// no policy, symmetric NULL, `scheme`/SHA-256, `curve`, KDF NULL, the point
/// (SEC1 uncompressed, `04 || x || y`).
fn ecc_public_area(scheme: u16, curve: u16, sec1_point: &[u8]) -> Vec<u8> {
    let (x, y) = sec1_point[1..].split_at((sec1_point.len() - 1) / 2);
    let mut public = vec![0x00, 0x23, 0x00, 0x0b, 0x00, 0x05, 0x00, 0x72];
    public.extend_from_slice(&[0x00, 0x00, 0x00, 0x10]);
    public.extend_from_slice(&scheme.to_be_bytes());
    public.extend_from_slice(&[0x00, 0x0b]);
    public.extend_from_slice(&curve.to_be_bytes());
    public.extend_from_slice(&[0x00, 0x10]);
    tpm2b(&mut public, x);
    tpm2b(&mut public, y);
    public
}

impl SoftAk {
    /// An ECDSA P-256 AK.
    pub fn generate() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("ring generates P-256 keys");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("a key ring just generated");
        let public = ecc_public_area(ALG_ECDSA, CURVE_NIST_P256, key.public_key().as_ref());
        let pkcs8 = pkcs8.as_ref().to_vec();
        Self::with_key(Key::Ecdsa { key, pkcs8, rng }, public)
    }

    /// An SM2 AK on the SM2 P-256 curve, signing with scheme SM2/SHA-256.
    pub fn generate_sm2() -> Self {
        let rng = SystemRandom::new();
        // A uniformly random scalar: 32 random bytes, redrawn in the rare case
        // they are 0 or not below the group order.
        let key = loop {
            let mut secret = [0u8; 32];
            rng.fill(&mut secret)
                .expect("the system random generator works");
            if let Ok(key) = sm2::dsa::SigningKey::from_slice(SM2_DISTID, &secret) {
                break key;
            }
        };
        let point = key.verifying_key().to_sec1_bytes();
        let public = ecc_public_area(ALG_SM2, CURVE_SM2_P256, &point);
        Self::with_key(Key::Sm2(key), public)
    }

    fn with_key(key: Key, public: Vec<u8>) -> Self {
        Self {
            key,
            public,
            clock: ClockInfo {
                clock: 1_000,
                reset_count: 1,
                restart_count: 0,
                safe: true,
            },
        }
    }

    /// The signing scheme and curve, for reports: `ECDSA P-256` or `SM2 P-256`.
    pub fn algorithm(&self) -> &'static str {
        match self.key {
            Key::Ecdsa { .. } => "ECDSA P-256",
            Key::Sm2(_) => "SM2 P-256",
        }
    }

    /// The AK's TPMT_PUBLIC bytes.
    pub fn public_area(&self) -> &[u8] {
        &self.public
    }

    pub fn public(&self) -> Public {
        Public::parse(&self.public).expect("a TPMT_PUBLIC built above")
    }

    /// Quotes `values` for `selection` with `nonce`: TPMS_ATTEST and TPMT_SIGNATURE
    /// bytes. The clock advances by one second per quote.
    pub fn quote(
        &mut self,
        nonce: &[u8],
        selection: &[PcrSelection],
        values: &PcrValues,
    ) -> (Vec<u8>, Vec<u8>) {
        let pcr_digest = tpm::pcr_digest(HashAlg::Sha256, selection, values)
            .expect("values cover the selection");
        let attest = Attest {
            magic: TPM_GENERATED_VALUE,
            attest_type: TPM_ST_ATTEST_QUOTE,
            qualified_signer: self.public().name(),
            extra_data: nonce.to_vec(),
            clock_info: self.clock,
            firmware_version: 0,
            attested: Attested::Quote(QuoteInfo {
                pcr_select: selection.to_vec(),
                pcr_digest,
            }),
        }
        .encode();
        self.clock.clock += 1_000;
        let signature = self.sign(&attest);
        (attest, signature)
    }

    /// TPMT_SIGNATURE over `attest`: sigAlg, hash SHA-256, r and s.
    fn sign(&self, attest: &[u8]) -> Vec<u8> {
        let (sig_alg, rs) = match &self.key {
            Key::Ecdsa { key, rng, .. } => {
                let sig = key.sign(rng, attest).expect("signing with a valid key");
                (ALG_ECDSA, sig.as_ref().to_vec())
            }
            Key::Sm2(key) => {
                let prehash = HashAlg::Sha256.digest(attest);
                let sig: sm2::dsa::Signature = key
                    .sign_prehash(&prehash)
                    .expect("a 32-byte prehash with a valid key");
                (ALG_SM2, sig.to_bytes().to_vec())
            }
        };
        let (r, s) = rs.split_at(32);
        let mut signature = sig_alg.to_be_bytes().to_vec();
        signature.extend_from_slice(&[0x00, 0x0b]);
        tpm2b(&mut signature, r);
        tpm2b(&mut signature, s);
        signature
    }
}

/// A software endpoint's attestation collector: identity and quotes from a
/// [`SoftAk`] over the measurements of a simulated boot, for a device the
/// PDP has been told is enrolled (its AK lives in no TPM, so it cannot
/// activate a credential). For benchmarks and the PDP's unit tests.
pub struct SoftCollector {
    role: Role,
    pub ak: SoftAk,
    identity: Identity,
    measurements: Arc<Measurements>,
    values: Arc<PcrValues>,
    result: Option<AttestationResult>,
    /// The quote requests the PDP sent, in order.
    pub asked: Arc<Mutex<Vec<QuoteRequest>>>,
    /// What its Hello names as the host it runs on.
    pub host: Option<tnc_proto::attestation::HostLabel>,
    /// Sends the Hello alone and its Identity only when asked, as the first
    /// clients did.
    pub identity_on_request: bool,
}

impl SoftCollector {
    pub fn new(
        role: Role,
        ak: SoftAk,
        identity: Identity,
        measurements: Arc<Measurements>,
        values: Arc<PcrValues>,
    ) -> Self {
        Self {
            role,
            ak,
            identity,
            measurements,
            values,
            result: None,
            asked: Arc::default(),
            host: None,
            identity_on_request: false,
        }
    }

    fn quote(&mut self, q: &QuoteRequest) -> AttestationAttribute {
        let selection: Vec<PcrSelection> = q
            .selection
            .iter()
            .map(|b| PcrSelection {
                hash: b.alg,
                pcrs: b.pcrs.iter().map(|&p| u32::from(p)).collect(),
                size_of_select: 3,
            })
            .collect();
        let (attest, signature) = self.ak.quote(&q.nonce, &selection, &self.values);
        AttestationAttribute::QuoteEvidence(QuoteEvidence {
            attest,
            signature,
            event_log: self.measurements.event_log.clone(),
            ima: self.measurements.ima_from(q.ima_offset as usize),
            ima_offset: q.ima_offset,
        })
    }
}

impl Collector for SoftCollector {
    fn opening(&mut self) -> Vec<AttestationAttribute> {
        let hello = AttestationAttribute::Hello(Hello {
            role: self.role,
            tpm: true,
            software: "testnet (software AK)".into(),
            host: self.host.clone(),
        });
        if self.identity_on_request {
            vec![hello]
        } else {
            vec![hello, AttestationAttribute::Identity(self.identity.clone())]
        }
    }

    fn receive(&mut self, attrs: Vec<AttestationAttribute>) -> Vec<AttestationAttribute> {
        let mut out = Vec::new();
        for a in attrs {
            match a {
                AttestationAttribute::IdentityRequest => {
                    out.push(AttestationAttribute::Identity(self.identity.clone()))
                }
                AttestationAttribute::QuoteRequest(q) => {
                    out.push(self.quote(&q));
                    self.asked.lock().unwrap_or_else(|p| p.into_inner()).push(q);
                }
                AttestationAttribute::Result(r) => self.result = Some(r),
                _ => {}
            }
        }
        out
    }

    fn result(&self) -> Option<AttestationResult> {
        self.result.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::quote::{verify_quote, QuoteExpectation};
    use policy::tpm::{parse_selection, Signature};

    /// Both key types make quotes the policy verifies, and only for their own AK.
    #[test]
    fn ecdsa_and_sm2_quotes_verify() {
        let selection = parse_selection("sha256:0,1,10").unwrap();
        let mut values = PcrValues::new();
        for pcr in [0, 1, 10] {
            values.insert(HashAlg::Sha256, pcr, vec![pcr as u8; 32]);
        }
        let mut ecdsa = SoftAk::generate();
        let mut sm2 = SoftAk::generate_sm2();
        let expectation = QuoteExpectation {
            nonce: b"nonce",
            selection: Some(&selection),
            pcr_values: Some(&values),
            allow_sha1: false,
        };
        for (ak, other) in [
            (&mut ecdsa, SoftAk::generate_sm2()),
            (&mut sm2, SoftAk::generate()),
        ] {
            let (attest, sig) = ak.quote(b"nonce", &selection, &values);
            let sig = Signature::parse(&sig).unwrap();
            let verified = verify_quote(&ak.public(), &attest, &sig, &expectation);
            assert!(verified.is_ok(), "{}: {verified:?}", ak.algorithm());
            assert!(verify_quote(&other.public(), &attest, &sig, &expectation).is_err());
        }
        assert_eq!(sm2.public_area()[12..14], ALG_SM2.to_be_bytes());
        assert_eq!(sm2.public_area()[16..18], CURVE_SM2_P256.to_be_bytes());
    }
}
