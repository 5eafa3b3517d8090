//! The TPM algorithm and curve identifiers (TPM 2.0 Library Part 2,
//! TPM_ALG_ID and TPM_ECC_CURVE): the one hash-algorithm type and the one
//! curve type of the project, with their conversions at the edges (TPM
//! identifiers, kernel and tpm2-tools names, certificate OIDs).

use core::fmt;
use ring::{digest, hmac};
use sm3::Digest as _;

/// A hash algorithm a PCR bank, an event log or a quote may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
    Sm3,
}

impl HashAlg {
    pub const ALL: [HashAlg; 5] = [
        Self::Sha1,
        Self::Sha256,
        Self::Sha384,
        Self::Sha512,
        Self::Sm3,
    ];

    /// From a TPM_ALG_ID (TPM 2.0 Library Part 2, table 9).
    pub fn from_tpm_alg(id: u16) -> Option<Self> {
        Some(match id {
            0x0004 => Self::Sha1,
            0x000B => Self::Sha256,
            0x000C => Self::Sha384,
            0x000D => Self::Sha512,
            0x0012 => Self::Sm3,
            _ => return None,
        })
    }

    pub fn tpm_alg(self) -> u16 {
        match self {
            Self::Sha1 => 0x0004,
            Self::Sha256 => 0x000B,
            Self::Sha384 => 0x000C,
            Self::Sha512 => 0x000D,
            Self::Sm3 => 0x0012,
        }
    }

    /// Digest length in bytes.
    pub fn size(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 | Self::Sm3 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// The name tpm2-tools and the kernel use: `sha1`, `sha256`, `sha384`, `sha512`, `sm3`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
            Self::Sm3 => "sm3",
        }
    }

    /// From a kernel or tpm2-tools name (`sha256`, `sm3-256` and `sm3` both accepted).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "sha1" => Self::Sha1,
            "sha256" => Self::Sha256,
            "sha384" => Self::Sha384,
            "sha512" => Self::Sha512,
            "sm3" | "sm3-256" | "sm3_256" => Self::Sm3,
            _ => return None,
        })
    }

    /// Hashes the concatenation of `parts`.
    pub fn digest_parts(self, parts: &[&[u8]]) -> Vec<u8> {
        self.hash_parts(parts).as_ref().to_vec()
    }

    /// [`Self::digest_parts`] into a value on the stack, for loops that hash
    /// once per IMA entry or boot event and should not allocate each time.
    pub fn hash_parts(self, parts: &[&[u8]]) -> Digest {
        let ring_alg = match self {
            Self::Sha1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => &ring::digest::SHA256,
            Self::Sha384 => &ring::digest::SHA384,
            Self::Sha512 => &ring::digest::SHA512,
            Self::Sm3 => {
                let mut h = sm3::Sm3::new();
                parts.iter().for_each(|p| h.update(p));
                return Digest(DigestValue::Sm3(h.finalize().into()));
            }
        };
        let mut ctx = ring::digest::Context::new(ring_alg);
        parts.iter().for_each(|p| ctx.update(p));
        Digest(DigestValue::Ring(ctx.finish()))
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        self.digest_parts(&[data])
    }

    /// HMAC (RFC 2104) with this hash over the concatenation of `parts`;
    /// SM3 only (the keyed audit chain; TLS keeps its own).
    pub fn hmac_sm3(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        use ::hmac::{KeyInit, Mac};
        // HMAC takes any key length: new_from_slice cannot fail here.
        let mut mac = match <::hmac::Hmac<sm3::Sm3> as KeyInit>::new_from_slice(key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        parts.iter().for_each(|p| mac.update(p));
        mac.finalize().into_bytes().into()
    }

    /// `H(old || digest)`: one PCR extend, in place.
    pub fn extend(self, pcr: &mut [u8], digest: &[u8]) {
        let new = self.hash_parts(&[pcr, digest]);
        pcr.copy_from_slice(&new);
    }
}

/// A digest of any [`HashAlg`], held inline (no allocation, and no copy of
/// ring's output).
#[derive(Clone, Copy)]
pub struct Digest(DigestValue);

#[derive(Clone, Copy)]
enum DigestValue {
    Ring(ring::digest::Digest),
    Sm3([u8; 32]),
}

/// The longest digest a [`HashAlg`] produces (SHA-512).
pub const MAX_DIGEST_LEN: usize = 64;

impl AsRef<[u8]> for Digest {
    fn as_ref(&self) -> &[u8] {
        match &self.0 {
            DigestValue::Ring(d) => d.as_ref(),
            DigestValue::Sm3(d) => d,
        }
    }
}

impl core::ops::Deref for Digest {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_ref()
    }
}

impl PartialEq for Digest {
    fn eq(&self, other: &Self) -> bool {
        self.as_ref() == other.as_ref()
    }
}

impl Eq for Digest {}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", hex(self))
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl HashAlg {
    /// SHA-256, SHA-384 or SHA-512: the hashes ring computes HMACs with, so
    /// the EK nameAlgs MakeCredential works with here.
    pub fn is_sha2(self) -> bool {
        Sha2::of(self).is_some()
    }
}

/// The SHA-2 view of a [`HashAlg`], for KDFa, KDFe and the credential's
/// HMAC (ring has no SM3, and no EK template uses SHA-1 or SM3 as nameAlg).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sha2 {
    Sha256,
    Sha384,
    Sha512,
}

impl Sha2 {
    pub(crate) fn of(h: HashAlg) -> Option<Self> {
        match h {
            HashAlg::Sha256 => Some(Self::Sha256),
            HashAlg::Sha384 => Some(Self::Sha384),
            HashAlg::Sha512 => Some(Self::Sha512),
            HashAlg::Sha1 | HashAlg::Sm3 => None,
        }
    }

    pub(crate) fn hash(self) -> HashAlg {
        match self {
            Self::Sha256 => HashAlg::Sha256,
            Self::Sha384 => HashAlg::Sha384,
            Self::Sha512 => HashAlg::Sha512,
        }
    }

    pub(crate) fn size(self) -> usize {
        self.hash().size()
    }

    pub(crate) fn digest_alg(self) -> &'static digest::Algorithm {
        match self {
            Self::Sha256 => &digest::SHA256,
            Self::Sha384 => &digest::SHA384,
            Self::Sha512 => &digest::SHA512,
        }
    }

    pub(crate) fn hmac_alg(self) -> hmac::Algorithm {
        match self {
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha384 => hmac::HMAC_SHA384,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }
}

/// TPM_ECC_CURVE: the curve of a TPM key or of an EK certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EccCurve {
    NistP256,
    NistP384,
    NistP521,
    BnP256,
    Sm2P256,
    /// A curve ID no TPM specification of ours names.
    Unknown(u16),
}

impl EccCurve {
    /// From a TPM_ECC_CURVE (TPM 2.0 Library Part 2, table 10).
    pub fn from_tpm_curve(id: u16) -> Self {
        match id {
            0x0003 => Self::NistP256,
            0x0004 => Self::NistP384,
            0x0005 => Self::NistP521,
            0x0010 => Self::BnP256,
            0x0020 => Self::Sm2P256,
            other => Self::Unknown(other),
        }
    }

    pub fn tpm_curve(self) -> u16 {
        match self {
            Self::NistP256 => 0x0003,
            Self::NistP384 => 0x0004,
            Self::NistP521 => 0x0005,
            Self::BnP256 => 0x0010,
            Self::Sm2P256 => 0x0020,
            Self::Unknown(id) => id,
        }
    }

    /// Bytes of a field element (and of the order, for these curves), so of
    /// each coordinate of a point; `None` for an unknown curve.
    pub fn field_size(self) -> Option<usize> {
        match self {
            Self::NistP256 | Self::BnP256 | Self::Sm2P256 => Some(32),
            Self::NistP384 => Some(48),
            Self::NistP521 => Some(66),
            Self::Unknown(_) => None,
        }
    }

    /// The named-curve OID in a certificate's SubjectPublicKeyInfo, dotted.
    pub fn from_oid(oid: &str) -> Option<Self> {
        match oid {
            "1.2.840.10045.3.1.7" => Some(Self::NistP256),
            "1.3.132.0.34" => Some(Self::NistP384),
            "1.3.132.0.35" => Some(Self::NistP521),
            "1.2.156.10197.1.301" => Some(Self::Sm2P256),
            _ => None,
        }
    }
}

impl fmt::Display for EccCurve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NistP256 => f.write_str("NIST P-256"),
            Self::NistP384 => f.write_str("NIST P-384"),
            Self::NistP521 => f.write_str("NIST P-521"),
            Self::BnP256 => f.write_str("BN P-256"),
            Self::Sm2P256 => f.write_str("SM2 P-256"),
            Self::Unknown(id) => write!(f, "curve {id:#06x}"),
        }
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // One allocation: appraisal hexes digests on every handshake, and a
    // `format!` per byte was the PDP's most frequent allocation.
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sm3_matches_openssl() {
        // `openssl dgst -sm3 -hmac KEY` of Debian's OpenSSL 3, run once:
        // a short key, a key longer than SM3's 64-byte block (hashed
        // first), and an empty message.
        let fox = b"The quick brown fox jumps over the lazy dog";
        assert_eq!(
            hex(&HashAlg::hmac_sm3(b"key", &[&fox[..10], &fox[10..]])),
            "bd4a34077888162b210645b8ebf74b9af357303789357a27c7fc457244ebd398"
        );
        assert_eq!(
            hex(&HashAlg::hmac_sm3(&[b'k'; 100], &[b"abc"])),
            "2d87dd3ffa1452e8e40d9123a02824fb7dd98ae4a52683287245f1736dc610ef"
        );
        assert_eq!(
            hex(&HashAlg::hmac_sm3(b"key", &[])),
            "4deb29b9be17bd4fd2aca21f908885b9f849bc61e8fbd101e04fd9987528d4df"
        );
    }

    #[test]
    fn known_answers() {
        // FIPS 180 "abc" vectors and the GB/T 32905 SM3 "abc" vector.
        assert_eq!(
            hex(&HashAlg::Sha1.digest(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(&HashAlg::Sha256.digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&HashAlg::Sm3.digest_parts(&[b"a", b"bc"])),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        for alg in HashAlg::ALL {
            assert_eq!(alg.digest(b"").len(), alg.size());
            assert_eq!(HashAlg::from_tpm_alg(alg.tpm_alg()), Some(alg));
            assert_eq!(HashAlg::from_name(alg.name()), Some(alg));
        }
    }

    #[test]
    fn extend_and_hex() {
        let mut pcr = vec![0u8; 32];
        HashAlg::Sha256.extend(&mut pcr, &[0u8; 32]);
        assert_eq!(pcr, HashAlg::Sha256.digest(&[0u8; 64]));
        for alg in HashAlg::ALL {
            let mut pcr = vec![1u8; alg.size()];
            alg.extend(&mut pcr, b"x");
            assert_eq!(pcr, alg.digest_parts(&[&vec![1u8; alg.size()], b"x"]));
            assert_eq!(&*alg.hash_parts(&[b"a", b"bc"]), &alg.digest(b"abc")[..]);
        }
    }

    #[test]
    fn curves_round_trip_through_tpm_ids_and_sha2_is_what_ring_has() {
        for id in [0x0003, 0x0004, 0x0005, 0x0010, 0x0020, 0x0099] {
            assert_eq!(EccCurve::from_tpm_curve(id).tpm_curve(), id);
        }
        assert_eq!(EccCurve::from_tpm_curve(0x0099), EccCurve::Unknown(0x0099));
        assert_eq!(EccCurve::Unknown(7).field_size(), None);
        assert_eq!(
            EccCurve::from_oid("1.2.156.10197.1.301"),
            Some(EccCurve::Sm2P256)
        );
        let sha2: Vec<HashAlg> = HashAlg::ALL.into_iter().filter(|h| h.is_sha2()).collect();
        assert_eq!(sha2, [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512]);
        for h in sha2 {
            assert_eq!(Sha2::of(h).map(Sha2::hash), Some(h));
        }
    }
}
