//! Encodings OpenSSL needs to act as the independent checker of SM2 quotes
//! (`openssl pkeyutl -verify` on the digest), which tpm2_checkquote cannot check.

use policy::tpm::{Public, PublicKey};

/// SubjectPublicKeyInfo DER of an SM2 key: id-ecPublicKey with curve sm2
/// (1.2.156.10197.1.301), uncompressed point. `None` for a non-ECC key.
pub fn sm2_spki(ak: &Public) -> Option<Vec<u8>> {
    let PublicKey::Ecc(k) = &ak.key else {
        return None;
    };
    // SEQUENCE { SEQUENCE { id-ecPublicKey, sm2 }, BIT STRING 04 || x || y }
    let mut der =
        policy::digest::from_hex("3059301306072a8648ce3d020106082a811ccf5501822d03420004")?;
    der.extend_from_slice(&k.x);
    der.extend_from_slice(&k.y);
    Some(der)
}

/// An ECDSA/SM2 signature `(r, s)` as DER `SEQUENCE { INTEGER r, INTEGER s }`
/// (short-form lengths: enough for 256-bit curves).
pub fn der_signature(r: &[u8], s: &[u8]) -> Vec<u8> {
    let int = |v: &[u8]| {
        let start = v.iter().position(|&b| b != 0).unwrap_or(v.len());
        let mut v = v[start..].to_vec();
        if v.first().is_none_or(|&b| b & 0x80 != 0) {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend_from_slice(&v);
        out
    };
    let body = [int(r), int(s)].concat();
    let mut out = vec![0x30, body.len() as u8];
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_integers_are_minimal_and_positive() {
        assert_eq!(
            der_signature(&[0, 0, 1], &[0x80]),
            [0x30, 7, 2, 1, 1, 2, 2, 0, 0x80]
        );
        assert_eq!(der_signature(&[0], &[5]), [0x30, 6, 2, 1, 0, 2, 1, 5]);
    }
}
