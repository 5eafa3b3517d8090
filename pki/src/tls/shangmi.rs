//! The ShangMi cipher suites for TLS 1.3 (RFC 8998) as a rustls 0.23
//! `CryptoProvider`.
//!
//! Hand-written because no maintained crate provides them for rustls 0.23
//! (the one published provider targets an unreleased rustls, encodes the
//! certificate algorithm identifiers so that no SM2 chain verifies, and signs
//! CertificateVerify under the wrong SM2 ID). SM3, SM2 and the AEAD modes
//! are RustCrypto's (`sm3`, `aes-gcm` and `ccm` generic over the block
//! cipher, `hmac`, `sm2`); SM4 is ours ([`crate::sm4`]: constant time, 16
//! blocks wide with GFNI or AES-NI); the key schedule is rustls' own
//! (`HkdfUsingHmac` over HMAC-SM3).
//!
//! - TLS_SM4_GCM_SM3 (0x00C6) and TLS_SM4_CCM_SM3 (0x00C7), TLS 1.3 only.
//! - curveSM2 (41) ECDHE: uncompressed points, the shared secret is the x
//!   coordinate (as for the NIST curves, RFC 8446 §4.2.8.2).
//! - sm2sig_sm3 (0x0708): CertificateVerify is signed and verified with the
//!   SM2 ID "TLSv1.3+GM+Cipher+Suite" (RFC 8998 §3.2.1); certificate
//!   signatures with the default ID "1234567812345678" (GM/T 0009). So the
//!   chain verifier is in `WebPkiSupportedAlgorithms::all` and the TLS one in
//!   its `mapping`.
//!
//! [`strict_provider`] offers and accepts nothing else: a peer with only the
//! standard suites, or an ECDSA/RSA certificate, fails the handshake, and a
//! CertificateRequest lists exactly sm2sig_sm3. [`mixed_provider`] prefers
//! the ShangMi suites and also speaks ring's standard ones, for deployments
//! in transition.

use crate::sm4::Sm4;
use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::{AeadInOut, KeyInit};
use rustls::crypto::cipher::{
    make_tls13_aad, AeadKey, InboundOpaqueMessage, InboundPlainMessage, Iv, MessageDecrypter,
    MessageEncrypter, Nonce, OutboundOpaqueMessage, OutboundPlainMessage, PrefixedPayload,
    Tls13AeadAlgorithm, UnsupportedOperationError,
};
use rustls::crypto::{
    hash, hmac, tls13::HkdfUsingHmac, ActiveKeyExchange, CipherSuiteCommon, CryptoProvider,
    KeyProvider, SharedSecret, SupportedKxGroup, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::{
    AlgorithmIdentifier, InvalidSignature, PrivateKeyDer, SignatureVerificationAlgorithm,
};
use rustls::sign::{Signer, SigningKey};
use rustls::{
    CipherSuite, ConnectionTrafficSecrets, ContentType, Error, NamedGroup, PeerMisbehaved,
    ProtocolVersion, SignatureAlgorithm, SignatureScheme, SupportedCipherSuite, Tls13CipherSuite,
};
use sm3::Digest as _;
use std::sync::Arc;

/// TLS_SM4_GCM_SM3 (RFC 8998 §2).
pub const TLS_SM4_GCM_SM3: CipherSuite = CipherSuite::Unknown(0x00C6);
/// TLS_SM4_CCM_SM3 (RFC 8998 §2).
pub const TLS_SM4_CCM_SM3: CipherSuite = CipherSuite::Unknown(0x00C7);
/// curveSM2 (RFC 8998 §2).
pub const CURVE_SM2: NamedGroup = NamedGroup::Unknown(0x0029);
/// sm2sig_sm3 (RFC 8998 §2).
pub const SM2SIG_SM3: SignatureScheme = SignatureScheme::Unknown(0x0708);

/// The SM2 ID of TLS 1.3 handshake signatures (RFC 8998 §3.2.1).
pub const TLS_SM2_ID: &str = "TLSv1.3+GM+Cipher+Suite";
/// The default SM2 ID (GM/T 0009), under which certificates are signed.
pub const CERT_SM2_ID: &str = "1234567812345678";

/// Which suites a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Only the ShangMi suites, curveSM2 and sm2sig_sm3.
    Strict,
    /// The ShangMi suites first, then ring's standard ones.
    Mixed,
}

/// Only TLS_SM4_GCM_SM3 and TLS_SM4_CCM_SM3, curveSM2, sm2sig_sm3, SM2 keys.
pub fn strict_provider() -> CryptoProvider {
    provider(Mode::Strict)
}

/// The ShangMi suites preferred, ring's standard suites, groups, signature
/// schemes and keys as well.
pub fn mixed_provider() -> CryptoProvider {
    provider(Mode::Mixed)
}

pub fn provider(mode: Mode) -> CryptoProvider {
    let ring = rustls::crypto::ring::default_provider();
    let sm_suites = [TLS13_SM4_GCM_SM3, TLS13_SM4_CCM_SM3];
    let sm_groups: [&'static dyn SupportedKxGroup; 1] = [&CurveSm2];
    match mode {
        Mode::Strict => CryptoProvider {
            cipher_suites: sm_suites.to_vec(),
            kx_groups: sm_groups.to_vec(),
            signature_verification_algorithms: STRICT_ALGORITHMS,
            secure_random: ring.secure_random,
            key_provider: &STRICT_KEYS,
        },
        Mode::Mixed => CryptoProvider {
            cipher_suites: sm_suites
                .into_iter()
                .chain(
                    super::standard_suites()
                        .into_iter()
                        .filter(|s| s.version() == &rustls::version::TLS13),
                )
                .collect(),
            kx_groups: sm_groups.into_iter().chain(ring.kx_groups).collect(),
            signature_verification_algorithms: MIXED_ALGORITHMS,
            secure_random: ring.secure_random,
            key_provider: &MIXED_KEYS,
        },
    }
}

// ---- SM3 and HMAC-SM3 ----

/// SM3 for rustls' transcript hash.
struct Sm3Hash;

/// SM3 has no TLS 1.2 HashAlgorithm code: a private-use value (RFC 5246
/// §12 reserves 224-255) keeps it distinct from every other hash, which is
/// what rustls compares it for (resumption across suites).
const SM3_HASH_ALGORITHM: rustls::crypto::hash::HashAlgorithm =
    rustls::crypto::hash::HashAlgorithm::Unknown(0xE0);

impl hash::Hash for Sm3Hash {
    fn start(&self) -> Box<dyn hash::Context> {
        Box::new(Sm3Context(sm3::Sm3::new()))
    }

    fn hash(&self, data: &[u8]) -> hash::Output {
        hash::Output::new(&sm3::Sm3::digest(data))
    }

    fn output_len(&self) -> usize {
        32
    }

    fn algorithm(&self) -> rustls::crypto::hash::HashAlgorithm {
        SM3_HASH_ALGORITHM
    }
}

struct Sm3Context(sm3::Sm3);

impl hash::Context for Sm3Context {
    fn fork_finish(&self) -> hash::Output {
        hash::Output::new(&self.0.clone().finalize())
    }

    fn fork(&self) -> Box<dyn hash::Context> {
        Box::new(Sm3Context(self.0.clone()))
    }

    fn finish(self: Box<Self>) -> hash::Output {
        hash::Output::new(&self.0.finalize())
    }

    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
}

/// HMAC-SM3, for HKDF and Finished.
struct HmacSm3;

type HmacSm3Impl = ::hmac::Hmac<sm3::Sm3>;

impl hmac::Hmac for HmacSm3 {
    fn with_key(&self, key: &[u8]) -> Box<dyn hmac::Key> {
        // HMAC takes keys of any length (longer ones are hashed first).
        #[allow(clippy::expect_used)]
        let mac = <HmacSm3Impl as ::hmac::KeyInit>::new_from_slice(key)
            .expect("HMAC accepts any key length");
        Box::new(HmacSm3Key(mac))
    }

    fn hash_output_len(&self) -> usize {
        32
    }
}

struct HmacSm3Key(HmacSm3Impl);

impl hmac::Key for HmacSm3Key {
    fn sign_concat(&self, first: &[u8], middle: &[&[u8]], last: &[u8]) -> hmac::Tag {
        use ::hmac::Mac;
        let mut mac = self.0.clone();
        mac.update(first);
        for m in middle {
            mac.update(m);
        }
        mac.update(last);
        hmac::Tag::new(&mac.finalize().into_bytes())
    }

    fn tag_len(&self) -> usize {
        32
    }
}

// ---- SM4-GCM and SM4-CCM ----

type Sm4Gcm = aes_gcm::AesGcm<Sm4, U12>;
type Sm4Ccm = ccm::Ccm<Sm4, U16, U12>;

const TAG_LEN: usize = 16;

/// An SM4 AEAD for TLS 1.3 records: `A` is SM4-GCM or SM4-CCM.
struct Sm4Aead<A>(core::marker::PhantomData<fn() -> A>);

impl<A> Tls13AeadAlgorithm for Sm4Aead<A>
where
    A: AeadInOut<NonceSize = U12, TagSize = U16> + KeyInit + Send + Sync + 'static,
{
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        Box::new(Sm4Records::<A> {
            aead: new_aead(&key),
            iv,
        })
    }

    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        Box::new(Sm4Records::<A> {
            aead: new_aead(&key),
            iv,
        })
    }

    fn key_len(&self) -> usize {
        16
    }

    fn extract_keys(
        &self,
        _key: AeadKey,
        _iv: Iv,
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        // No kernel TLS offload knows SM4.
        Err(UnsupportedOperationError)
    }
}

fn new_aead<A: KeyInit>(key: &AeadKey) -> A {
    // rustls hands over exactly `key_len()` bytes.
    #[allow(clippy::expect_used)]
    A::new_from_slice(key.as_ref()).expect("a 16-byte SM4 key")
}

/// One direction's record protection.
struct Sm4Records<A> {
    aead: A,
    iv: Iv,
}

impl<A> MessageEncrypter for Sm4Records<A>
where
    A: AeadInOut<NonceSize = U12, TagSize = U16> + Send + Sync,
{
    fn encrypt(
        &mut self,
        msg: OutboundPlainMessage<'_>,
        seq: u64,
    ) -> Result<OutboundOpaqueMessage, Error> {
        let total_len = self.encrypted_payload_len(msg.payload.len());
        let mut payload = PrefixedPayload::with_capacity(total_len);
        payload.extend_from_chunks(&msg.payload);
        payload.extend_from_slice(&msg.typ.to_array());
        let nonce = Nonce::new(&self.iv, seq).0;
        let aad = make_tls13_aad(total_len);
        // In place: the plaintext is encrypted where it lies, the tag appended.
        let tag = self
            .aead
            .encrypt_inout_detached(&nonce.into(), &aad, payload.as_mut().into())
            .map_err(|_| Error::EncryptError)?;
        payload.extend_from_slice(&tag);
        Ok(OutboundOpaqueMessage::new(
            ContentType::ApplicationData,
            // TLS 1.3 records carry the legacy version 0x0303 (RFC 8446 §5.1).
            ProtocolVersion::TLSv1_2,
            payload,
        ))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + 1 + TAG_LEN
    }
}

impl<A> MessageDecrypter for Sm4Records<A>
where
    A: AeadInOut<NonceSize = U12, TagSize = U16> + Send + Sync,
{
    fn decrypt<'a>(
        &mut self,
        mut msg: InboundOpaqueMessage<'a>,
        seq: u64,
    ) -> Result<InboundPlainMessage<'a>, Error> {
        let payload = &mut msg.payload;
        let Some(body_len) = payload.len().checked_sub(TAG_LEN) else {
            return Err(Error::DecryptError);
        };
        let nonce = Nonce::new(&self.iv, seq).0;
        let aad = make_tls13_aad(payload.len());
        let (body, tag) = payload.split_at_mut(body_len);
        let tag = aes_gcm::aead::Tag::<A>::try_from(&*tag).map_err(|_| Error::DecryptError)?;
        self.aead
            .decrypt_inout_detached(&nonce.into(), &aad, body.into(), &tag)
            .map_err(|_| Error::DecryptError)?;
        payload.truncate(body_len);
        msg.into_tls13_unpadded_message()
    }
}

/// TLS_SM4_GCM_SM3.
pub static TLS13_SM4_GCM_SM3: SupportedCipherSuite =
    SupportedCipherSuite::Tls13(&Tls13CipherSuite {
        common: CipherSuiteCommon {
            suite: TLS_SM4_GCM_SM3,
            hash_provider: &Sm3Hash,
            // SM4 is a 128-bit block cipher in GCM as AES is in AES-GCM: the same
            // bound on records under one key applies (rustls uses 2^24 for
            // AES-GCM, after draft-irtf-cfrg-aead-limits).
            confidentiality_limit: 1 << 24,
        },
        hkdf_provider: &HkdfUsingHmac(&HmacSm3),
        aead_alg: &Sm4Aead::<Sm4Gcm>(core::marker::PhantomData),
        quic: Some(&Sm4GcmQuic),
    });

/// TLS_SM4_CCM_SM3.
pub static TLS13_SM4_CCM_SM3: SupportedCipherSuite =
    SupportedCipherSuite::Tls13(&Tls13CipherSuite {
        common: CipherSuiteCommon {
            suite: TLS_SM4_CCM_SM3,
            hash_provider: &Sm3Hash,
            // CCM spends two block-cipher calls per block (CBC-MAC and CTR), so
            // half of GCM's bound.
            confidentiality_limit: 1 << 23,
        },
        hkdf_provider: &HkdfUsingHmac(&HmacSm3),
        aead_alg: &Sm4Aead::<Sm4Ccm>(core::marker::PhantomData),
        quic: None,
    });

// ---- SM4-GCM for QUIC: this project's profile ----
//
// No standard defines SM4 for QUIC, so this interoperates only with itself
// (docs/shangmi.md). Initial packets stay AES-128-GCM as RFC 9001 §5.2 fixes
// them (`pki::tls` gives quinn ring's Initial suite); Handshake and 1-RTT
// packets use SM4-GCM with keys from HKDF-SM3 (the "quic key", "quic iv" and
// "quic hp" labels of RFC 9001 §5.1), and header protection is RFC 9001
// §5.4.3's construction with SM4 in place of AES: the mask is the first five
// bytes of SM4-ECB(hp_key, sample), the sample 16 bytes.

/// SM4-GCM packet protection and SM4 header protection for QUIC.
struct Sm4GcmQuic;

impl rustls::quic::Algorithm for Sm4GcmQuic {
    fn packet_key(&self, key: AeadKey, iv: Iv) -> Box<dyn rustls::quic::PacketKey> {
        Box::new(Sm4QuicPacketKey {
            aead: new_aead::<Sm4Gcm>(&key),
            iv,
        })
    }

    fn header_protection_key(&self, key: AeadKey) -> Box<dyn rustls::quic::HeaderProtectionKey> {
        Box::new(Sm4HeaderProtection(new_aead::<Sm4>(&key)))
    }

    fn aead_key_len(&self) -> usize {
        16
    }
}

struct Sm4QuicPacketKey {
    aead: Sm4Gcm,
    iv: Iv,
}

impl rustls::quic::PacketKey for Sm4QuicPacketKey {
    fn encrypt_in_place(
        &self,
        packet_number: u64,
        header: &[u8],
        payload: &mut [u8],
    ) -> Result<rustls::quic::Tag, Error> {
        let nonce = Nonce::new(&self.iv, packet_number).0;
        let tag = self
            .aead
            .encrypt_inout_detached(&nonce.into(), header, payload.into())
            .map_err(|_| Error::EncryptError)?;
        Ok(rustls::quic::Tag::from(&tag[..]))
    }

    fn decrypt_in_place<'a>(
        &self,
        packet_number: u64,
        header: &[u8],
        payload: &'a mut [u8],
    ) -> Result<&'a [u8], Error> {
        let Some(body_len) = payload.len().checked_sub(TAG_LEN) else {
            return Err(Error::DecryptError);
        };
        let nonce = Nonce::new(&self.iv, packet_number).0;
        let (body, tag) = payload.split_at_mut(body_len);
        let tag = aes_gcm::aead::Tag::<Sm4Gcm>::try_from(&*tag).map_err(|_| Error::DecryptError)?;
        self.aead
            .decrypt_inout_detached(&nonce.into(), header, body.into(), &tag)
            .map_err(|_| Error::DecryptError)?;
        Ok(&payload[..body_len])
    }

    fn tag_len(&self) -> usize {
        TAG_LEN
    }

    /// RFC 9001 §6.6 and Appendix B.1 for a 128-bit-block cipher in GCM, as
    /// for AEAD_AES_128_GCM.
    fn confidentiality_limit(&self) -> u64 {
        1 << 23
    }

    fn integrity_limit(&self) -> u64 {
        1 << 52
    }
}

struct Sm4HeaderProtection(Sm4);

impl Sm4HeaderProtection {
    /// RFC 9001 §5.4.1, with the mask of §5.4.3 made by SM4.
    fn apply(
        &self,
        sample: &[u8],
        first: &mut u8,
        packet_number: &mut [u8],
        unmasking: bool,
    ) -> Result<(), Error> {
        use cipher::BlockCipherEncrypt as _;
        let sample: [u8; 16] = sample
            .try_into()
            .map_err(|_| Error::General("header protection sample of invalid length".into()))?;
        let mut block = cipher::Block::<Sm4>::from(sample);
        self.0.encrypt_block(&mut block);
        let (first_mask, pn_mask) = (block[0], &block[1..5]);
        if packet_number.len() > pn_mask.len() {
            return Err(Error::General("packet number too long".into()));
        }
        // Long header: the low 4 bits are protected; short header: 5.
        let bits = if *first & 0x80 == 0x80 { 0x0f } else { 0x1f };
        let first_plain = if unmasking {
            *first ^ (first_mask & bits)
        } else {
            *first
        };
        let pn_len = usize::from(first_plain & 0x03) + 1;
        *first ^= first_mask & bits;
        for (dst, m) in packet_number.iter_mut().zip(pn_mask).take(pn_len) {
            *dst ^= m;
        }
        Ok(())
    }
}

impl rustls::quic::HeaderProtectionKey for Sm4HeaderProtection {
    fn encrypt_in_place(
        &self,
        sample: &[u8],
        first: &mut u8,
        packet_number: &mut [u8],
    ) -> Result<(), Error> {
        self.apply(sample, first, packet_number, false)
    }

    fn decrypt_in_place(
        &self,
        sample: &[u8],
        first: &mut u8,
        packet_number: &mut [u8],
    ) -> Result<(), Error> {
        self.apply(sample, first, packet_number, true)
    }

    fn sample_len(&self) -> usize {
        16
    }
}

// ---- curveSM2 ----

#[derive(Debug)]
struct CurveSm2;

impl SupportedKxGroup for CurveSm2 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let secret = random_secret_key()?;
        let public = secret.public_key().to_sec1_bytes().to_vec();
        Ok(Box::new(Sm2KeyExchange { secret, public }))
    }

    fn name(&self) -> NamedGroup {
        CURVE_SM2
    }

    fn usable_for_version(&self, version: ProtocolVersion) -> bool {
        version == ProtocolVersion::TLSv1_3
    }
}

/// A uniformly random SM2 private key from the system's CSPRNG (32 random
/// bytes, drawn again in the rare case they are 0 or not below the order).
fn random_secret_key() -> Result<sm2::SecretKey, Error> {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    for _ in 0..64 {
        let mut bytes = [0u8; 32];
        rng.fill(&mut bytes)
            .map_err(|_| Error::FailedToGetRandomBytes)?;
        if let Ok(key) = sm2::SecretKey::from_slice(&bytes) {
            return Ok(key);
        }
    }
    Err(Error::FailedToGetRandomBytes)
}

struct Sm2KeyExchange {
    secret: sm2::SecretKey,
    /// SEC1 uncompressed: 0x04 || x || y.
    public: Vec<u8>,
}

impl ActiveKeyExchange for Sm2KeyExchange {
    fn complete(self: Box<Self>, peer_pub_key: &[u8]) -> Result<SharedSecret, Error> {
        // Only the uncompressed form is allowed in TLS 1.3 key shares.
        if peer_pub_key.len() != 65 || peer_pub_key[0] != 0x04 {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        let peer = sm2::PublicKey::from_sec1_bytes(peer_pub_key)
            .map_err(|_| Error::from(PeerMisbehaved::InvalidKeyShare))?;
        let shared =
            elliptic_curve::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), peer.as_affine());
        Ok(SharedSecret::from(&shared.raw_secret_bytes()[..]))
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn group(&self) -> NamedGroup {
        CURVE_SM2
    }
}

// ---- sm2sig_sm3: signing ----

/// SM2 keys as rustls signing keys; in mixed mode ring loads the others.
#[derive(Debug)]
struct Keys(Mode);

static STRICT_KEYS: Keys = Keys(Mode::Strict);
static MIXED_KEYS: Keys = Keys(Mode::Mixed);

impl KeyProvider for Keys {
    fn load_private_key(
        &self,
        key_der: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, Error> {
        if let Some(key) = sm2_secret_key(&key_der) {
            return Ok(Arc::new(Sm2SigningKey::new(&key)?));
        }
        match self.0 {
            Mode::Mixed => rustls::crypto::ring::default_provider()
                .key_provider
                .load_private_key(key_der),
            Mode::Strict => Err(Error::General(
                "the ShangMi suites need an SM2 private key (PKCS#8 or SEC1 on curve SM2)".into(),
            )),
        }
    }
}

/// The SM2 key in a PKCS#8 or SEC1 private key, if it holds one.
pub fn sm2_secret_key(key_der: &PrivateKeyDer<'_>) -> Option<sm2::SecretKey> {
    use sm2::pkcs8::DecodePrivateKey;
    match key_der {
        PrivateKeyDer::Pkcs8(k) => sm2::SecretKey::from_pkcs8_der(k.secret_pkcs8_der()).ok(),
        PrivateKeyDer::Sec1(k) => sm2::SecretKey::from_sec1_der(k.secret_sec1_der()).ok(),
        _ => None,
    }
}

/// An SM2 private key that signs CertificateVerify with the TLS SM2 ID.
pub struct Sm2SigningKey {
    key: sm2::dsa::SigningKey,
}

impl std::fmt::Debug for Sm2SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sm2SigningKey")
    }
}

impl Sm2SigningKey {
    pub fn new(secret: &sm2::SecretKey) -> Result<Self, Error> {
        let key = sm2::dsa::SigningKey::new(TLS_SM2_ID, secret)
            .map_err(|_| Error::General("unusable SM2 private key".into()))?;
        Ok(Self { key })
    }
}

impl SigningKey for Sm2SigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered.contains(&SM2SIG_SM3).then(|| {
            Box::new(Sm2Signer {
                key: self.key.clone(),
            }) as Box<dyn Signer>
        })
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        // SM2 has no TLS 1.2 SignatureAlgorithm code; the value only
        // matters to TLS 1.2, which these suites never use.
        SignatureAlgorithm::Unknown(0xE0)
    }
}

struct Sm2Signer {
    key: sm2::dsa::SigningKey,
}

impl std::fmt::Debug for Sm2Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sm2Signer")
    }
}

impl Signer for Sm2Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        use sm2::dsa::signature::Signer as _;
        let signature: sm2::dsa::Signature = self
            .key
            .try_sign(message)
            .map_err(|_| Error::General("SM2 signing failed".into()))?;
        Ok(signature.to_der().to_vec())
    }

    fn scheme(&self) -> SignatureScheme {
        SM2SIG_SM3
    }
}

/// Signs a 32-byte SM2 digest e = SM3(Z_A || M), returning (r, s): a key
/// whose private half is elsewhere (a TPM).
pub type Sm2DigestSigner =
    Arc<dyn Fn(&[u8; 32]) -> Result<([u8; 32], [u8; 32]), String> + Send + Sync>;

/// An SM2 key that signs CertificateVerify through a [`Sm2DigestSigner`]:
/// the digest under the TLS SM2 ID is computed here, the signature made
/// there and checked here before it is sent.
pub struct ExternalSm2SigningKey {
    public: sm2::PublicKey,
    sign: Sm2DigestSigner,
}

impl ExternalSm2SigningKey {
    pub fn new(public: sm2::PublicKey, sign: Sm2DigestSigner) -> Self {
        Self { public, sign }
    }
}

impl std::fmt::Debug for ExternalSm2SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExternalSm2SigningKey")
    }
}

impl SigningKey for ExternalSm2SigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered.contains(&SM2SIG_SM3).then(|| {
            Box::new(ExternalSm2Signer {
                public: self.public,
                sign: self.sign.clone(),
            }) as Box<dyn Signer>
        })
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::Unknown(0xE0)
    }
}

struct ExternalSm2Signer {
    public: sm2::PublicKey,
    sign: Sm2DigestSigner,
}

impl std::fmt::Debug for ExternalSm2Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExternalSm2Signer")
    }
}

impl Signer for ExternalSm2Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        use sm2::dsa::signature::Verifier as _;
        let e = crate::ca::sm2_digest(&self.public, TLS_SM2_ID, message)
            .map_err(|e| Error::General(e.to_string()))?;
        let (r, s) = (self.sign)(&e).map_err(Error::General)?;
        let signature = sm2::dsa::Signature::from_scalars(r, s)
            .map_err(|_| Error::General("the SM2 signer returned values out of range".into()))?;
        sm2::dsa::VerifyingKey::new(TLS_SM2_ID, self.public)
            .and_then(|k| k.verify(message, &signature))
            .map_err(|_| Error::General("the SM2 signer signed with another key".into()))?;
        Ok(signature.to_der().to_vec())
    }

    fn scheme(&self) -> SignatureScheme {
        SM2SIG_SM3
    }
}

// ---- sm2sig_sm3: verification ----

/// AlgorithmIdentifier contents (no outer SEQUENCE, as webpki compares
/// them) of an SM2 public key: id-ecPublicKey, namedCurve SM2
/// (1.2.156.10197.1.301).
const SM2_PUBLIC_KEY_ALG: &[u8] = &[
    0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, // 1.2.840.10045.2.1
    0x06, 0x08, 0x2A, 0x81, 0x1C, 0xCF, 0x55, 0x01, 0x82, 0x2D, // 1.2.156.10197.1.301
];
/// AlgorithmIdentifier contents of SM2-with-SM3 (1.2.156.10197.1.501),
/// parameters absent.
const SM2_WITH_SM3_ALG: &[u8] = &[0x06, 0x08, 0x2A, 0x81, 0x1C, 0xCF, 0x55, 0x01, 0x83, 0x75];

/// Registers the SM2 keys among `roots` as trust anchors
/// ([`crate::sm2_verify::KeyCache::add_anchor`]), so that certificate
/// signatures by them (the PDP's SM2 CA's, on every ShangMi handshake with
/// a certificate) verify with a cached comb: about a fifth of the time.
/// Other roots are skipped. The configurations `pki::tls` builds call it;
/// a verifier built elsewhere from configured roots should too.
pub fn remember_sm2_anchors(roots: &rustls::RootCertStore) {
    // webpki keeps a SubjectPublicKeyInfo's contents: an SM2 key's are the
    // AlgorithmIdentifier the verifier is matched on (DER is canonical, so
    // byte for byte), then a BIT STRING of the uncompressed point.
    let mut prefix = vec![0x30, SM2_PUBLIC_KEY_ALG.len() as u8];
    prefix.extend_from_slice(SM2_PUBLIC_KEY_ALG);
    prefix.extend_from_slice(&[0x03, 0x42, 0x00]);
    for anchor in &roots.roots {
        let spki = anchor.subject_public_key_info.as_ref();
        if let Some(point) = spki.strip_prefix(prefix.as_slice()) {
            if let Ok(key) = sm2::PublicKey::from_sec1_bytes(point) {
                crate::sm2_verify::KeyCache::global().add_anchor(&key);
            }
        }
    }
}

/// SM2-with-SM3 verification under one SM2 ID.
#[derive(Debug)]
struct Sm2Verifier {
    id: &'static str,
    /// Whether a signature by a trust anchor's key (registered when a
    /// configuration is built, [`remember_sm2_anchors`]) uses the
    /// process-wide comb cache.
    anchors_cached: bool,
}

/// Certificate signatures (the default SM2 ID): the issuer's key, which is
/// a trust anchor's (cached) or an intermediate the peer presents (not).
static SM2_SM3_CERTIFICATES: Sm2Verifier = Sm2Verifier {
    id: CERT_SM2_ID,
    anchors_cached: true,
};
/// CertificateVerify (the TLS 1.3 SM2 ID): always the peer's own key.
static SM2_SM3_HANDSHAKE: Sm2Verifier = Sm2Verifier {
    id: TLS_SM2_ID,
    anchors_cached: false,
};

impl SignatureVerificationAlgorithm for Sm2Verifier {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let public = sm2::PublicKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let signature = sm2::dsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
        // Cached only for a trust anchor's key (the PDP's SM2 CA, which
        // signs every peer's certificate): any other key here is one a
        // peer chose (its own, an intermediate it presents).
        let verify =
            if self.anchors_cached && crate::sm2_verify::KeyCache::global().is_anchor(&public) {
                crate::sm2_verify::verify
            } else {
                crate::sm2_verify::verify_uncached
            };
        verify(self.id, &public, message, &signature).map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        AlgorithmIdentifier::from_slice(SM2_PUBLIC_KEY_ALG)
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        AlgorithmIdentifier::from_slice(SM2_WITH_SM3_ALG)
    }
}

static STRICT_ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[&SM2_SM3_CERTIFICATES],
    mapping: &[(SM2SIG_SM3, &[&SM2_SM3_HANDSHAKE])],
};

static MIXED_ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        &SM2_SM3_CERTIFICATES,
        webpki::ring::ECDSA_P256_SHA256,
        webpki::ring::ECDSA_P256_SHA384,
        webpki::ring::ECDSA_P384_SHA256,
        webpki::ring::ECDSA_P384_SHA384,
        webpki::ring::ED25519,
        webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        webpki::ring::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        webpki::ring::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        webpki::ring::RSA_PKCS1_2048_8192_SHA256,
        webpki::ring::RSA_PKCS1_2048_8192_SHA384,
        webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    ],
    mapping: &[
        (SM2SIG_SM3, &[&SM2_SM3_HANDSHAKE]),
        (
            SignatureScheme::ECDSA_NISTP384_SHA384,
            &[
                webpki::ring::ECDSA_P384_SHA384,
                webpki::ring::ECDSA_P256_SHA384,
            ],
        ),
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[
                webpki::ring::ECDSA_P256_SHA256,
                webpki::ring::ECDSA_P384_SHA256,
            ],
        ),
        (SignatureScheme::ED25519, &[webpki::ring::ED25519]),
        (
            SignatureScheme::RSA_PSS_SHA512,
            &[webpki::ring::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA384,
            &[webpki::ring::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA256,
            &[webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA512,
            &[webpki::ring::RSA_PKCS1_2048_8192_SHA512],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA384,
            &[webpki::ring::RSA_PKCS1_2048_8192_SHA384],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA256,
            &[webpki::ring::RSA_PKCS1_2048_8192_SHA256],
        ),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 8998 Appendix A: the common inputs.
    fn appendix_a() -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
        (
            unhex("0123456789ABCDEFFEDCBA9876543210"),
            unhex("00001234567800000000ABCD"),
            unhex(
                "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB CCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD
                 EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFF EEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA",
            ),
            unhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2"),
        )
    }

    fn seal<A: AeadInOut<NonceSize = U12> + KeyInit>(
        key: &[u8],
        iv: &[u8],
        pt: &[u8],
        aad: &[u8],
    ) -> Vec<u8> {
        let aead = A::new_from_slice(key).unwrap();
        let mut buf = pt.to_vec();
        let nonce: [u8; 12] = iv.try_into().unwrap();
        let tag = aead
            .encrypt_inout_detached(&nonce.into(), aad, buf.as_mut_slice().into())
            .unwrap();
        buf.extend_from_slice(&tag);
        buf
    }

    #[test]
    fn rfc8998_appendix_a_sm4_gcm_and_ccm() {
        let (key, iv, pt, aad) = appendix_a();
        let gcm = seal::<Sm4Gcm>(&key, &iv, &pt, &aad);
        assert_eq!(
            gcm,
            unhex(
                "17F399F08C67D5EE19D0DC9969C4BB7D 5FD46FD3756489069157B282BB200735
                 D82710CA5C22F0CCFA7CBF93D496AC15 A56834CBCF98C397B4024A2691233B8D
                 83DE3541E4C2B58177E065A9BF7B62EC"
            )
        );
        let ccm = seal::<Sm4Ccm>(&key, &iv, &pt, &aad);
        assert_eq!(
            ccm,
            unhex(
                "48AF93501FA62ADBCD414CCE6034D895 DDA1BF8F132F042098661572E7483094
                 FD12E518CE062C98ACEE28D95DF4416B ED31A2F04476C18BB40C84A74B97DC5B
                 16842D4FA186F56AB33256971FA110F4"
            )
        );
    }

    #[test]
    fn sm3_and_hmac_sm3_known_answers() {
        use rustls::crypto::hash::Hash as _;
        use rustls::crypto::hmac::Hmac as _;
        // GB/T 32905 "abc".
        assert_eq!(
            Sm3Hash.hash(b"abc").as_ref(),
            &unhex("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")[..]
        );
        let mut ctx = Sm3Hash.start();
        ctx.update(b"a");
        let forked = ctx.fork_finish();
        ctx.update(b"bc");
        assert_eq!(forked.as_ref(), Sm3Hash.hash(b"a").as_ref());
        assert_eq!(ctx.finish().as_ref(), Sm3Hash.hash(b"abc").as_ref());
        // HMAC-SM3 by its definition over SM3 (RFC 2104), a key longer than
        // the block hashed first.
        let hmac_by_hand = |key: &[u8], msg: &[u8]| {
            let key = if key.len() > 64 {
                sm3::Sm3::digest(key).to_vec()
            } else {
                key.to_vec()
            };
            let mut k = [0u8; 64];
            k[..key.len()].copy_from_slice(&key);
            let inner: Vec<u8> = k
                .iter()
                .map(|b| b ^ 0x36)
                .chain(msg.iter().copied())
                .collect();
            let inner = sm3::Sm3::digest(&inner);
            let outer: Vec<u8> = k
                .iter()
                .map(|b| b ^ 0x5c)
                .chain(inner.iter().copied())
                .collect();
            sm3::Sm3::digest(&outer).to_vec()
        };
        for key in [&b"k"[..], &[0x0b; 32][..], &[0xaa; 100][..]] {
            let tag = HmacSm3.with_key(key).sign(&[b"Hi ", b"There"]);
            assert_eq!(tag.as_ref(), &hmac_by_hand(key, b"Hi There")[..]);
        }
    }

    /// One direction's record protection under a fixed key and IV, as rustls
    /// builds it from the traffic secret.
    fn records<A: KeyInit>() -> Sm4Records<A> {
        Sm4Records {
            aead: A::new_from_slice(&[7u8; 16]).unwrap(),
            iv: Iv::from([9u8; 12]),
        }
    }

    #[test]
    fn records_round_trip_and_refuse_tampering() {
        type Pair = (Box<dyn MessageEncrypter>, Box<dyn MessageDecrypter>);
        let pairs: [Pair; 2] = [
            (Box::new(records::<Sm4Gcm>()), Box::new(records::<Sm4Gcm>())),
            (Box::new(records::<Sm4Ccm>()), Box::new(records::<Sm4Ccm>())),
        ];
        for (mut enc, mut dec) in pairs {
            let data = b"attestation over ShangMi";
            let chunks = [&data[..]];
            let plain = OutboundPlainMessage {
                typ: ContentType::ApplicationData,
                version: ProtocolVersion::TLSv1_3,
                payload: rustls::crypto::cipher::OutboundChunks::new(&chunks),
            };
            let sealed = enc.encrypt(plain, 5).unwrap().encode();
            assert_eq!(sealed.len(), 5 + data.len() + 1 + TAG_LEN);
            let mut body = sealed[5..].to_vec();
            let opened = dec
                .decrypt(
                    InboundOpaqueMessage::new(
                        ContentType::ApplicationData,
                        ProtocolVersion::TLSv1_2,
                        &mut body,
                    ),
                    5,
                )
                .unwrap();
            assert_eq!(opened.payload, &data[..]);
            assert_eq!(opened.typ, ContentType::ApplicationData);
            // Another sequence number, a flipped bit, a cut tag: refused.
            for (seq, flip, cut) in [(6, None, 0), (5, Some(3), 0), (5, None, 1)] {
                let mut body = sealed[5..sealed.len() - cut].to_vec();
                if let Some(i) = flip {
                    body[i] ^= 1;
                }
                let r = dec.decrypt(
                    InboundOpaqueMessage::new(
                        ContentType::ApplicationData,
                        ProtocolVersion::TLSv1_2,
                        &mut body,
                    ),
                    seq,
                );
                assert!(matches!(r, Err(Error::DecryptError)));
            }
            let mut short = vec![0u8; TAG_LEN - 1];
            assert!(dec
                .decrypt(
                    InboundOpaqueMessage::new(
                        ContentType::ApplicationData,
                        ProtocolVersion::TLSv1_2,
                        &mut short
                    ),
                    0
                )
                .is_err());
        }
    }

    #[test]
    fn curve_sm2_agrees_and_refuses_bad_shares() {
        let a = CurveSm2.start().unwrap();
        let b = CurveSm2.start().unwrap();
        assert_eq!(a.pub_key().len(), 65);
        let (a_pub, b_pub) = (a.pub_key().to_vec(), b.pub_key().to_vec());
        let s1 = a.complete(&b_pub).unwrap();
        let s2 = b.complete(&a_pub).unwrap();
        assert_eq!(s1.secret_bytes(), s2.secret_bytes());
        assert_eq!(s1.secret_bytes().len(), 32);
        let mut off_curve = a_pub.clone();
        off_curve[64] ^= 1;
        for bad in [&a_pub[..33], &off_curve[..], &[0u8; 65][..]] {
            let c = CurveSm2.start().unwrap();
            assert!(c.complete(bad).is_err());
        }
    }

    #[test]
    fn sm2_signatures_are_bound_to_their_id() {
        let secret = random_secret_key().unwrap();
        let public = secret.public_key().to_sec1_bytes();
        let signer = Sm2SigningKey::new(&secret)
            .unwrap()
            .choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256, SM2SIG_SM3])
            .unwrap();
        assert_eq!(signer.scheme(), SM2SIG_SM3);
        let sig = signer.sign(b"transcript").unwrap();
        assert!(SM2_SM3_HANDSHAKE
            .verify_signature(&public, b"transcript", &sig)
            .is_ok());
        assert!(SM2_SM3_HANDSHAKE
            .verify_signature(&public, b"transcripT", &sig)
            .is_err());
        // Made under the TLS ID, so not a certificate signature.
        assert!(SM2_SM3_CERTIFICATES
            .verify_signature(&public, b"transcript", &sig)
            .is_err());
        // A key offered no sm2sig_sm3 has nothing to sign with.
        assert!(Sm2SigningKey::new(&secret)
            .unwrap()
            .choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
            .is_none());
    }

    /// Certificate signatures keep a comb only for a trust anchor's key: a
    /// CA's signature verified twice builds none until its certificate is
    /// a root of a configuration, and CertificateVerify (a peer's own key)
    /// never does.
    #[test]
    fn only_trust_anchors_keys_get_a_comb() {
        use crate::ca::{LeafSpec, Sm2Ca, Sm2Key, Usage};
        use crate::sm2_verify::KeyCache;
        use std::time::{Duration, SystemTime};
        let now = SystemTime::now();
        let ca = Sm2Ca::create("anchor test CA", Duration::from_secs(3600), now).unwrap();
        let ca_public = ca.key().public_key();
        let leaf_key = Sm2Key::generate().unwrap();
        let spec = LeafSpec {
            common_name: "leaf".into(),
            subject_extra: Vec::new(),
            dns_names: vec!["localhost".into()],
            ips: Vec::new(),
            usage: Usage::Client,
            lifetime: Duration::from_secs(3600),
        };
        let leaf = ca.issue(&leaf_key.public_key(), &spec, now).unwrap();
        let parsed = crate::ca::parse(&leaf).unwrap();
        let (tbs, signature) = (
            parsed.tbs_certificate.as_ref(),
            parsed.signature_value.data.as_ref(),
        );
        let cache = KeyCache::global();
        let verify_twice = || {
            for _ in 0..2 {
                SM2_SM3_CERTIFICATES
                    .verify_signature(&ca.key().public_sec1(), tbs, signature)
                    .unwrap();
            }
        };
        verify_twice();
        assert!(!cache.is_anchor(&ca_public));
        assert!(!cache.has_comb(&ca_public), "a key no configuration trusts");

        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(
                ca.certificate_der().to_vec(),
            ))
            .unwrap();
        remember_sm2_anchors(&roots);
        assert!(cache.is_anchor(&ca_public));
        verify_twice();
        assert!(cache.has_comb(&ca_public), "the anchor's key");

        // A TLS signature by the anchor's key still goes uncached, and by
        // any other key too.
        let secret = leaf_key.secret().clone();
        let signer = Sm2SigningKey::new(&secret)
            .unwrap()
            .choose_scheme(&[SM2SIG_SM3])
            .unwrap();
        let sig = signer.sign(b"transcript").unwrap();
        for _ in 0..2 {
            SM2_SM3_HANDSHAKE
                .verify_signature(&leaf_key.public_sec1(), b"transcript", &sig)
                .unwrap();
        }
        assert!(!cache.has_comb(&leaf_key.public_key()));
    }
}
