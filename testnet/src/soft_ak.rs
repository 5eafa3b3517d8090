//! A SOFTWARE attestation key: an ECDSA P-256 key held in memory that signs
//! TPMS_ATTEST structures as a TPM would.
//!
//! It proves nothing about any machine. It exists so that appraisal tests can
//! cover paths a real TPM cannot easily be made to take (rewound counters,
//! arbitrary PCR values), and so that benchmarks can load the verifier beyond
//! what swtpm produces, with pre-recorded evidence and fresh nonces. Everything
//! it signs is labelled as such by its callers; product code never uses it.

use policy::tpm::{
    self, Attest, Attested, ClockInfo, PcrSelection, PcrValues, Public, QuoteInfo,
    TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE,
};
use policy::HashAlg;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

/// A software stand-in for a TPM's ECDSA P-256 AK (restricted, sign, fixedTPM...).
pub struct SoftAk {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    public: Vec<u8>,
    /// The TPM clock the next quote reports; tests move it as they please.
    pub clock: ClockInfo,
}

impl std::fmt::Debug for SoftAk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftAk")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

fn tpm2b(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

impl SoftAk {
    pub fn generate() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("ring generates P-256 keys");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("a key ring just generated");
        // TPMT_PUBLIC: ECC, nameAlg SHA-256, the attributes of a TPM AK
        // (fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|restricted|sign),
        // no policy, symmetric NULL, ECDSA/SHA-256, NIST P-256, KDF NULL, point.
        let point = key.public_key().as_ref();
        let mut public = Vec::new();
        public.extend_from_slice(&[0x00, 0x23, 0x00, 0x0b, 0x00, 0x05, 0x00, 0x72]);
        public.extend_from_slice(&[
            0x00, 0x00, 0x00, 0x10, 0x00, 0x18, 0x00, 0x0b, 0x00, 0x03, 0x00, 0x10,
        ]);
        tpm2b(&mut public, &point[1..33]);
        tpm2b(&mut public, &point[33..65]);
        Self {
            key,
            rng,
            public,
            clock: ClockInfo {
                clock: 1_000,
                reset_count: 1,
                restart_count: 0,
                safe: true,
            },
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
            clock_info: self.clock.clone(),
            firmware_version: 0,
            attested: Attested::Quote(QuoteInfo {
                pcr_select: selection.to_vec(),
                pcr_digest,
            }),
        }
        .encode();
        self.clock.clock += 1_000;
        let sig = self
            .key
            .sign(&self.rng, &attest)
            .expect("signing with a valid key");
        let (r, s) = sig.as_ref().split_at(32);
        let mut signature = vec![0x00, 0x18, 0x00, 0x0b];
        tpm2b(&mut signature, r);
        tpm2b(&mut signature, s);
        (attest, signature)
    }
}
