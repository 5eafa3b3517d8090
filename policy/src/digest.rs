//! Hash algorithms of TPM 2.0 PCR banks (TPM_ALG_ID) and one way to compute them.

use core::fmt;
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

/// Lower-case hex, for findings and CLI output.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses hex (upper or lower case, no separators).
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(from_hex("00ffA0"), Some(vec![0, 0xff, 0xa0]));
        assert_eq!(from_hex("0"), None);
        assert_eq!(from_hex("zz"), None);
    }
}
