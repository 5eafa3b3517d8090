//! The TPM algorithm and curve identifiers this crate works with (TPM 2.0 Library
//! Part 2, TPM_ALG_ID and TPM_ECC_CURVE).

use ring::{digest, hmac};

/// A hash algorithm usable as an EK's nameAlg, so for KDFa, KDFe and the
/// credential's HMAC. SHA-1 and SM3 are not offered: no EK template uses them as
/// nameAlg, and the software side here has no SM3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    /// From a TPM_ALG_ID (0x000B, 0x000C, 0x000D).
    pub fn from_tpm_alg(id: u16) -> Option<Self> {
        match id {
            0x000B => Some(Self::Sha256),
            0x000C => Some(Self::Sha384),
            0x000D => Some(Self::Sha512),
            _ => None,
        }
    }

    pub fn tpm_alg(self) -> u16 {
        match self {
            Self::Sha256 => 0x000B,
            Self::Sha384 => 0x000C,
            Self::Sha512 => 0x000D,
        }
    }

    /// Digest size in bytes.
    pub fn size(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
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

/// Digest size of a TPM_ALG_ID that may appear as the algorithm of an object Name,
/// whether or not this crate can compute it (SHA-1 and SM3 included).
pub(crate) fn name_digest_size(alg: u16) -> Option<usize> {
    match alg {
        0x0004 => Some(20),
        0x000B | 0x0012 => Some(32),
        0x000C => Some(48),
        0x000D => Some(64),
        _ => None,
    }
}

/// An elliptic curve an EK or its certificate may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EccCurve {
    NistP256,
    NistP384,
    NistP521,
    Sm2P256,
}

impl EccCurve {
    /// From a TPM_ECC_CURVE.
    pub fn from_tpm_curve(id: u16) -> Option<Self> {
        match id {
            0x0003 => Some(Self::NistP256),
            0x0004 => Some(Self::NistP384),
            0x0005 => Some(Self::NistP521),
            0x0020 => Some(Self::Sm2P256),
            _ => None,
        }
    }

    pub fn tpm_curve(self) -> u16 {
        match self {
            Self::NistP256 => 0x0003,
            Self::NistP384 => 0x0004,
            Self::NistP521 => 0x0005,
            Self::Sm2P256 => 0x0020,
        }
    }

    /// Bytes of a field element, so of each coordinate of a point.
    pub fn field_size(self) -> usize {
        match self {
            Self::NistP256 | Self::Sm2P256 => 32,
            Self::NistP384 => 48,
            Self::NistP521 => 66,
        }
    }

    /// The named-curve OID in a certificate's SubjectPublicKeyInfo, dotted.
    pub(crate) fn from_oid(oid: &str) -> Option<Self> {
        match oid {
            "1.2.840.10045.3.1.7" => Some(Self::NistP256),
            "1.3.132.0.34" => Some(Self::NistP384),
            "1.3.132.0.35" => Some(Self::NistP521),
            "1.2.156.10197.1.301" => Some(Self::Sm2P256),
            _ => None,
        }
    }
}
