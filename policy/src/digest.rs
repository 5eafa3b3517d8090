//! Hex for digests. The hash algorithm itself ([`HashAlg`]) lives in
//! `pki::alg`, the one home of the project's algorithm identifiers.

pub use pki::alg::{Digest, HashAlg, MAX_DIGEST_LEN};

/// Lower-case hex, for findings and CLI output.
pub use pki::alg::hex;

/// Parses hex (upper or lower case, no separators).
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
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
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 0xff, 0xa0]), "00ffa0");
        assert_eq!(from_hex("00ffA0"), Some(vec![0, 0xff, 0xa0]));
        assert_eq!(from_hex("0"), None);
        assert_eq!(from_hex("zz"), None);
    }
}
