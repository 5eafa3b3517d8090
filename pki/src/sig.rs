//! Signature verification over public data, in the shapes TPMs and
//! certificates give it (big-endian integers that may carry leading zeros,
//! points as separate coordinates): ECDSA on the NIST curves, SM2 over a
//! TPM's prehash, RSASSA-PKCS1-v1_5 and RSASSA-PSS with any salt length.
//! `policy` verifies quotes with these; the TLS provider will verify SM2
//! with them too. Nothing here handles a secret, so nothing here needs to
//! be constant-time.

use crate::alg::{EccCurve, HashAlg};
use ring::signature::{self as rsig, RsaPublicKeyComponents, UnparsedPublicKey};

/// Why a signature was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// The algorithm, curve or hash is one this module does not verify.
    #[error("{0}")]
    Unsupported(String),
    /// The public key is malformed for its algorithm.
    #[error("{0}")]
    BadKey(String),
    #[error("the signature does not verify")]
    BadSignature,
}

/// ECDSA by the key `(x, y)` on `curve`, over `msg` hashed with `hash`;
/// `r` and `s` big-endian.
pub fn verify_ecdsa(
    curve: EccCurve,
    (x, y): (&[u8], &[u8]),
    hash: HashAlg,
    msg: &[u8],
    (r, s): (&[u8], &[u8]),
) -> Result<(), SigError> {
    let algorithm: &'static rsig::EcdsaVerificationAlgorithm = match (curve, hash) {
        (EccCurve::NistP256, HashAlg::Sha256) => &rsig::ECDSA_P256_SHA256_ASN1,
        (EccCurve::NistP256, HashAlg::Sha384) => &rsig::ECDSA_P256_SHA384_ASN1,
        (EccCurve::NistP384, HashAlg::Sha256) => &rsig::ECDSA_P384_SHA256_ASN1,
        (EccCurve::NistP384, HashAlg::Sha384) => &rsig::ECDSA_P384_SHA384_ASN1,
        (curve, hash) => {
            return Err(SigError::Unsupported(format!(
                "ECDSA on {curve} with {hash}"
            )))
        }
    };
    let width = curve.field_size().unwrap_or(0);
    let point = sec1_point(curve, x, y, width)?;
    if r.len() > width + 1 || s.len() > width + 1 {
        return Err(SigError::BadSignature);
    }
    UnparsedPublicKey::new(algorithm, &point)
        .verify(msg, &ecdsa_der(r, s))
        .map_err(|_| SigError::BadSignature)
}

/// SM2 as a TPM signs: e = H_scheme(msg), with no Z_A prefix (measured
/// against swtpm; see IMPLEMENTATION-NOTES "Verifying quotes in pure Rust").
pub fn verify_sm2_tpm(
    (x, y): (&[u8], &[u8]),
    hash: HashAlg,
    msg: &[u8],
    (r, s): (&[u8], &[u8]),
) -> Result<(), SigError> {
    if hash.size() != 32 {
        return Err(SigError::Unsupported(format!(
            "SM2 with {hash}: the prehash must be 256 bits"
        )));
    }
    let point = sec1_point(EccCurve::Sm2P256, x, y, 32)?;
    let public = sm2::PublicKey::from_sec1_bytes(&point)
        .map_err(|_| SigError::BadKey("not a point on the SM2 curve".into()))?;
    let (Some(r), Some(s)) = (left_pad(r, 32), left_pad(s, 32)) else {
        return Err(SigError::BadSignature);
    };
    let rs = [r, s].concat();
    let signature = sm2::dsa::Signature::from_slice(&rs).map_err(|_| SigError::BadSignature)?;
    let mut prehash = [0u8; 32];
    prehash.copy_from_slice(&hash.digest(msg));
    if sm2_verify_prehash_vartime(&public, &prehash, &signature) {
        Ok(())
    } else {
        Err(SigError::BadSignature)
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Left-pads an unsigned big-endian integer to `width`; `None` if it does not fit.
fn left_pad(bytes: &[u8], width: usize) -> Option<Vec<u8>> {
    let bytes = strip_leading_zeros(bytes);
    let pad = width.checked_sub(bytes.len())?;
    let mut out = vec![0u8; pad];
    out.extend_from_slice(bytes);
    Some(out)
}

/// SEC1 uncompressed point `04 || x || y`.
fn sec1_point(curve: EccCurve, x: &[u8], y: &[u8], width: usize) -> Result<Vec<u8>, SigError> {
    let (Some(x), Some(y)) = (left_pad(x, width), left_pad(y, width)) else {
        return Err(SigError::BadKey(format!(
            "point coordinates longer than the {curve} field"
        )));
    };
    let mut point = vec![0x04];
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok(point)
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` for ring's ASN.1 ECDSA verifiers, which
/// cover every NIST-curve/hash pair ring knows (the FIXED ones only the matching pairs).
fn ecdsa_der(r: &[u8], s: &[u8]) -> Vec<u8> {
    fn integer(out: &mut Vec<u8>, v: &[u8]) {
        let v = strip_leading_zeros(v);
        let pad = v.first().is_none_or(|&b| b & 0x80 != 0);
        out.push(0x02);
        // r, s < 2^528: lengths stay under 128, so one length byte suffices.
        out.push((v.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
    }
    let mut body = Vec::new();
    integer(&mut body, r);
    integer(&mut body, s);
    let mut out = vec![0x30];
    if body.len() >= 0x80 {
        out.push(0x81);
    }
    out.push(body.len() as u8);
    out.extend_from_slice(&body);
    out
}

/// GB/T 32918.2 verification (steps B1-B7) of a signature over a prehash `e`,
/// in variable time (all of it is public): [`crate::sm2_verify`], with the
/// generator's comb and, for an AK seen before, the AK's own (a differential
/// test keeps it equal to the `sm2` crate's verifier and to OpenSSL's).
pub fn sm2_verify_prehash_vartime(
    public: &sm2::PublicKey,
    prehash: &[u8; 32],
    signature: &sm2::dsa::Signature,
) -> bool {
    crate::sm2_verify::verify_prehash(public, prehash, signature).is_ok()
}

/// RSASSA-PKCS1-v1_5 (`pss` false) or RSASSA-PSS by the key (`modulus`,
/// `exponent`; 0 stands for 65537 as in TPMS_RSA_PARMS) over `msg` hashed
/// with `hash`. SHA-1 PKCS#1 v1.5 is verified (ring's legacy verifier): the
/// caller decides whether to allow it.
///
/// ring's PSS verifier insists on a salt as long as the hash (what
/// swtpm/libtpms and FIPS 186-4 TPMs use); TPMs built to older library
/// revisions use the longest salt that fits, so PSS falls back to a verifier
/// that reads the salt length from the encoding.
pub fn verify_rsa(
    (modulus, exponent): (&[u8], u32),
    pss: bool,
    hash: HashAlg,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), SigError> {
    let params: &'static rsig::RsaParameters = match (pss, hash) {
        // Reached only when the caller allows SHA-1.
        (false, HashAlg::Sha1) => &rsig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        (false, HashAlg::Sha256) => &rsig::RSA_PKCS1_2048_8192_SHA256,
        (false, HashAlg::Sha384) => &rsig::RSA_PKCS1_2048_8192_SHA384,
        (false, HashAlg::Sha512) => &rsig::RSA_PKCS1_2048_8192_SHA512,
        (true, HashAlg::Sha256) => &rsig::RSA_PSS_2048_8192_SHA256,
        (true, HashAlg::Sha384) => &rsig::RSA_PSS_2048_8192_SHA384,
        (true, HashAlg::Sha512) => &rsig::RSA_PSS_2048_8192_SHA512,
        (_, hash) => {
            return Err(SigError::Unsupported(format!(
                "RSA {} with {hash}",
                if pss { "PSS" } else { "PKCS#1 v1.5" }
            )))
        }
    };
    let exponent = if exponent == 0 { 65537 } else { exponent };
    let n = strip_leading_zeros(modulus);
    let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
    if !(2048..=8192).contains(&bits) {
        return Err(SigError::BadKey(format!(
            "RSA modulus of {bits} bits (2048 to 8192 accepted)"
        )));
    }
    let e_bytes = exponent.to_be_bytes();
    let e = strip_leading_zeros(&e_bytes);
    if (RsaPublicKeyComponents { n, e })
        .verify(params, msg, sig)
        .is_ok()
    {
        return Ok(());
    }
    if pss && rsa_raw::pss_verify_any_salt(n, exponent, hash, msg, sig) {
        return Ok(());
    }
    Err(SigError::BadSignature)
}

/// Just enough RSA for EMSA-PSS with any salt length: the public operation
/// (Montgomery multiplication on u32 limbs) and RFC 8017 §9.1.2 verification.
/// Nothing here is secret, so nothing here is constant-time.
mod rsa_raw {
    use crate::alg::HashAlg;
    use core::cmp::Ordering;

    /// Little-endian u32 limbs of a big-endian integer, `k` limbs; `None` if it needs more.
    fn to_limbs(be: &[u8], k: usize) -> Option<Vec<u32>> {
        let be = super::strip_leading_zeros(be);
        if be.len() > 4 * k {
            return None;
        }
        let mut out = vec![0u32; k];
        for (i, &b) in be.iter().rev().enumerate() {
            out[i / 4] |= u32::from(b) << (8 * (i % 4));
        }
        Some(out)
    }

    fn to_be(limbs: &[u32], len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        for (i, byte) in out.iter_mut().rev().enumerate() {
            let limb = limbs.get(i / 4).copied().unwrap_or(0);
            *byte = (limb >> (8 * (i % 4))) as u8;
        }
        out
    }

    fn cmp(a: &[u32], b: &[u32]) -> Ordering {
        a.iter().rev().cmp(b.iter().rev())
    }

    /// a -= b (same length), wrapping; returns the borrow.
    fn sub_assign(a: &mut [u32], b: &[u32]) -> bool {
        let mut borrow = 0u64;
        for (x, &y) in a.iter_mut().zip(b) {
            let d = u64::from(*x)
                .wrapping_sub(u64::from(y))
                .wrapping_sub(borrow);
            *x = d as u32;
            borrow = (d >> 63) & 1;
        }
        borrow != 0
    }

    struct Modulus {
        n: Vec<u32>,
        /// -n^-1 mod 2^32.
        n0inv: u32,
        /// R^2 mod n, R = 2^(32k).
        r2: Vec<u32>,
    }

    impl Modulus {
        fn new(n: Vec<u32>) -> Option<Self> {
            if n.first().is_none_or(|&l| l & 1 == 0) {
                return None;
            }
            // Newton's iteration doubles the correct low bits each round: 1→2→…→32.
            let mut inv: u32 = 1;
            for _ in 0..5 {
                inv = inv.wrapping_mul(2u32.wrapping_sub(n[0].wrapping_mul(inv)));
            }
            let k = n.len();
            let mut r2 = vec![0u32; k];
            r2[0] = 1;
            // 1 doubled 64k times is R^2; reduce after each doubling.
            for _ in 0..64 * k {
                let mut carry = 0u32;
                for limb in r2.iter_mut() {
                    let next = *limb >> 31;
                    *limb = (*limb << 1) | carry;
                    carry = next;
                }
                if carry != 0 || cmp(&r2, &n) != Ordering::Less {
                    sub_assign(&mut r2, &n);
                }
            }
            Some(Self {
                n0inv: inv.wrapping_neg(),
                n,
                r2,
            })
        }

        /// a·b·R^-1 mod n (CIOS), for a, b < n.
        fn mul(&self, a: &[u32], b: &[u32]) -> Vec<u32> {
            let k = self.n.len();
            let mut t = vec![0u32; k + 2];
            for &bi in b {
                let mut carry = 0u64;
                for j in 0..k {
                    let x = u64::from(t[j]) + u64::from(a[j]) * u64::from(bi) + carry;
                    t[j] = x as u32;
                    carry = x >> 32;
                }
                let x = u64::from(t[k]) + carry;
                t[k] = x as u32;
                t[k + 1] = (x >> 32) as u32;

                let m = t[0].wrapping_mul(self.n0inv);
                let x = u64::from(t[0]) + u64::from(m) * u64::from(self.n[0]);
                let mut carry = x >> 32;
                for j in 1..k {
                    let x = u64::from(t[j]) + u64::from(m) * u64::from(self.n[j]) + carry;
                    t[j - 1] = x as u32;
                    carry = x >> 32;
                }
                let x = u64::from(t[k]) + carry;
                t[k - 1] = x as u32;
                t[k] = t[k + 1] + (x >> 32) as u32;
                t[k + 1] = 0;
            }
            let mut out = t[..k].to_vec();
            if t[k] != 0 || cmp(&out, &self.n) != Ordering::Less {
                sub_assign(&mut out, &self.n);
            }
            out
        }
    }

    /// s^e mod n as big-endian bytes of n's length; `None` unless n is odd and s < n.
    pub fn public_op(n: &[u8], e: u32, s: &[u8]) -> Option<Vec<u8>> {
        let n_be = super::strip_leading_zeros(n);
        let k = n_be.len().div_ceil(4);
        let modulus = Modulus::new(to_limbs(n_be, k)?)?;
        let s = to_limbs(s, k)?;
        if e == 0 || cmp(&s, &modulus.n) != Ordering::Less {
            return None;
        }
        let base = modulus.mul(&s, &modulus.r2);
        let mut acc = base.clone();
        for bit in (0..31 - e.leading_zeros()).rev() {
            acc = modulus.mul(&acc, &acc);
            if e >> bit & 1 == 1 {
                acc = modulus.mul(&acc, &base);
            }
        }
        let mut one = vec![0u32; k];
        one[0] = 1;
        Some(to_be(&modulus.mul(&acc, &one), n_be.len()))
    }

    fn mgf1(hash: HashAlg, seed: &[u8], len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + hash.size());
        let mut counter = 0u32;
        while out.len() < len {
            out.extend_from_slice(&hash.digest_parts(&[seed, &counter.to_be_bytes()]));
            counter += 1;
        }
        out.truncate(len);
        out
    }

    /// RSASSA-PSS verification (RFC 8017 §8.1.2, §9.1.2) with MGF1 over `hash`, the
    /// salt length read from the encoding rather than fixed.
    pub(super) fn pss_verify_any_salt(
        n: &[u8],
        e: u32,
        hash: HashAlg,
        msg: &[u8],
        sig: &[u8],
    ) -> bool {
        let n = super::strip_leading_zeros(n);
        let Some(&top) = n.first() else { return false };
        if sig.len() != n.len() {
            return false;
        }
        let mod_bits = n.len() * 8 - top.leading_zeros() as usize;
        let em_bits = mod_bits - 1;
        let em_len = em_bits.div_ceil(8);
        let Some(m) = public_op(n, e, sig) else {
            return false;
        };
        let (lead, em) = m.split_at(m.len() - em_len);
        let h_len = hash.size();
        if lead.iter().any(|&b| b != 0) || em_len < h_len + 2 || em[em_len - 1] != 0xbc {
            return false;
        }
        let (masked_db, rest) = em.split_at(em_len - h_len - 1);
        let h = &rest[..h_len];
        let top_mask = 0xffu8 >> (8 * em_len - em_bits);
        if masked_db[0] & !top_mask != 0 {
            return false;
        }
        let mut db = mgf1(hash, h, masked_db.len());
        db.iter_mut().zip(masked_db).for_each(|(d, m)| *d ^= m);
        db[0] &= top_mask;
        let Some(one) = db.iter().position(|&b| b != 0) else {
            return false;
        };
        if db[one] != 0x01 {
            return false;
        }
        let m_hash = hash.digest(msg);
        hash.digest_parts(&[&[0u8; 8], &m_hash, &db[one + 1..]]) == h
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn small_modexp() {
            // 4^13 mod 497 = 445; 5^3 mod 2^61-1 (a prime with a full top limb).
            assert_eq!(public_op(&[0x01, 0xf1], 13, &[4]), Some(vec![0x01, 0xbd]));
            let p = (1u64 << 61) - 1;
            assert_eq!(public_op(&p.to_be_bytes(), 3, &[5]), Some(to_be(&[125], 8)));
            assert_eq!(public_op(&[0x01, 0xf1], 1, &[0x01, 0xf1]), None, "s = n");
            assert_eq!(public_op(&[0x01, 0xf0], 3, &[4]), None, "even n");
        }
    }
}

/// s^e mod n, big-endian, of n's length: the RSA public operation (variable
/// time: public data only); `None` unless n is odd and s < n.
pub fn rsa_public_op(n: &[u8], e: u32, s: &[u8]) -> Option<Vec<u8>> {
    rsa_raw::public_op(n, e, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_der_encoding() {
        assert_eq!(
            ecdsa_der(&[0x01], &[0x80]),
            vec![0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x02, 0x00, 0x80]
        );
        assert_eq!(
            ecdsa_der(&[0x00, 0x00, 0x7f], &[]),
            vec![0x30, 0x06, 0x02, 0x01, 0x7f, 0x02, 0x01, 0x00]
        );
    }
}
