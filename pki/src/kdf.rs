//! The TPM's key derivation functions (TPM 2.0 Library Part 1, §11.4.9).
//!
//! Labels are given without their terminating NUL; both functions add it, as the
//! TPM does for the constant labels ("STORAGE", "INTEGRITY", "IDENTITY").

use crate::alg::Sha2;
use ring::{digest, hmac};

/// KDFa (§11.4.9.2), SP 800-108 counter mode with HMAC:
/// `K_i = HMAC(key, u32be(i) || label || 0 || context_u || context_v || u32be(bits))`,
/// concatenated and cut to `bits` (the surplus high bits of the first byte cleared).
pub(crate) fn kdf_a(
    hash: Sha2,
    key: &[u8],
    label: &str,
    context_u: &[u8],
    context_v: &[u8],
    bits: u32,
) -> Vec<u8> {
    let key = hmac::Key::new(hash.hmac_alg(), key);
    expand(bits, hash.size(), |counter| {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(&counter.to_be_bytes());
        ctx.update(label.as_bytes());
        ctx.update(&[0]);
        ctx.update(context_u);
        ctx.update(context_v);
        ctx.update(&bits.to_be_bytes());
        ctx.sign().as_ref().to_vec()
    })
}

/// KDFe (§11.4.9.3), SP 800-56A concatenation KDF with the hash:
/// `K_i = H(u32be(i) || z || label || 0 || party_u || party_v)`, concatenated and cut
/// to `bits`.
pub(crate) fn kdf_e(
    hash: Sha2,
    z: &[u8],
    label: &str,
    party_u: &[u8],
    party_v: &[u8],
    bits: u32,
) -> Vec<u8> {
    expand(bits, hash.size(), |counter| {
        let mut ctx = digest::Context::new(hash.digest_alg());
        ctx.update(&counter.to_be_bytes());
        ctx.update(z);
        ctx.update(label.as_bytes());
        ctx.update(&[0]);
        ctx.update(party_u);
        ctx.update(party_v);
        ctx.finish().as_ref().to_vec()
    })
}

/// Runs `block(1)`, `block(2)`, ... until `bits` are produced, then truncates.
fn expand(bits: u32, block_len: usize, mut block: impl FnMut(u32) -> Vec<u8>) -> Vec<u8> {
    let bytes = bits.div_ceil(8) as usize;
    let mut out = Vec::with_capacity(bytes + block_len);
    let mut counter = 1u32;
    while out.len() < bytes {
        out.extend_from_slice(&block(counter));
        counter += 1;
    }
    out.truncate(bytes);
    if !bits.is_multiple_of(8) {
        // The result is a big-endian number of `bits` bits.
        out[0] &= 0xFF >> (8 - bits % 8);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // Expected values computed independently with Python's hmac/hashlib
    // (pki/tests/data/vectors.py prints them).

    #[test]
    fn kdf_a_storage_key_sha256() {
        let seed = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
        let name = hex("000b1111111111111111111111111111111111111111111111111111111111111111");
        let out = kdf_a(Sha2::Sha256, &seed, "STORAGE", &name, &[], 128);
        assert_eq!(out, hex(KDFA_STORAGE_SHA256));
    }

    #[test]
    fn kdf_a_two_blocks_sha384() {
        let key = b"a key";
        let out = kdf_a(Sha2::Sha384, key, "INTEGRITY", b"u", b"v", 8 * 80);
        assert_eq!(out, hex(KDFA_TWO_BLOCKS_SHA384));
        // A shorter request is a prefix only when `bits` is the same: it is hashed in.
        let shorter = kdf_a(Sha2::Sha384, key, "INTEGRITY", b"u", b"v", 8 * 48);
        assert_ne!(shorter[..], out[..48]);
    }

    #[test]
    fn kdf_a_masks_odd_bit_counts() {
        let out = kdf_a(Sha2::Sha256, b"k", "L", &[], &[], 12);
        assert_eq!(out, hex(KDFA_12_BITS_SHA256));
        assert_eq!(out[0] & 0xF0, 0);
    }

    #[test]
    fn kdf_e_identity_seed_sha256() {
        let z = hex("5f3a0c0e2b6d1a5e8c7f4e3d2c1b0a99887766554433221100ffeeddccbbaa98");
        let qe_x = hex("1111111111111111111111111111111111111111111111111111111111111111");
        let qek_x = hex("2222222222222222222222222222222222222222222222222222222222222222");
        let out = kdf_e(Sha2::Sha256, &z, "IDENTITY", &qe_x, &qek_x, 256);
        assert_eq!(out, hex(KDFE_IDENTITY_SHA256));
    }

    #[test]
    fn kdf_e_two_blocks_sha256() {
        let out = kdf_e(Sha2::Sha256, b"zz", "IDENTITY", b"U", b"V", 8 * 40);
        assert_eq!(out, hex(KDFE_TWO_BLOCKS_SHA256));
    }

    const KDFA_STORAGE_SHA256: &str = "4b6977df7782a6d0312cc5f537456667";
    const KDFA_TWO_BLOCKS_SHA384: &str = "030040c66b1d428a26f2edb5bc238fec304ad4970e513076e3632435c25721d7cf29a5699d9634dd07e4a5166cec6e94c4b84827f88f2608084c8a04e3cbe44f72b9544ce6c6785ea3f2cb699ea64cf1";
    const KDFA_12_BITS_SHA256: &str = "0960";
    const KDFE_IDENTITY_SHA256: &str =
        "d30a219e5688affd4ed867d3f2080438b5c73abe3c582d79475e6c140e4d105e";
    const KDFE_TWO_BLOCKS_SHA256: &str =
        "a12374e09c2d069436cfef7a6e42637c4a4c4d167b103909ef0730978948916a5997ed455f229be7";
}
