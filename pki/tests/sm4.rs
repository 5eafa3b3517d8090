//! `pki::sm4` (constant-time SM4, 64 blocks wide) against RustCrypto's
//! table-based `sm4` 0.6, on every path this CPU runs (GFNI on AVX-512 and
//! on AVX2, AES-NI with VAES and without, portable; SM4_REQUIRE_ALL=1 fails
//! the run if one is missing):
//!
//! - over 10^6 random key/block pairs per path (62,500 keys, each with 1,
//!   8, 9, 16, 32, 33, 64 or 97 blocks in turn: the narrow pass, the
//!   buffered tail, a full batch of 32 and of 64 in place and more than
//!   one), decrypted back through the `cipher` traits; SM4_CASES sets the
//!   number of keys, SM4_SEED replays a run;
//! - SM4-GCM (`aes-gcm`) and SM4-CCM (`ccm`) over random lengths, so CTR's
//!   64-block batches and every tail length go through each path: the same
//!   ciphertext and tag as with RustCrypto's SM4, and a flipped bit refused;
//! - proptest: any key and 0 to 100 blocks through the traits, in place and
//!   from one buffer to another.
//!
//! The published vectors (GB/T 32907 Appendix A, RFC 8998 Appendix A) are
//! unit tests beside the code; `unsafe_boundary.rs` holds the intrinsics'
//! module boundary.
#![cfg(feature = "tls")]

use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::{AeadInOut, KeyInit};
use cipher::{Block, BlockCipherDecrypt as _, BlockCipherEncrypt as _};
use pki::sm4::{Path, Sm4};
use proptest::prelude::*;

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

fn paths() -> Vec<Path> {
    let paths: Vec<Path> = Path::ALL.into_iter().filter(|p| p.available()).collect();
    eprintln!("paths on this CPU: {paths:?}");
    if std::env::var("SM4_REQUIRE_ALL").is_ok_and(|v| v == "1") {
        assert_eq!(paths, Path::ALL, "SM4_REQUIRE_ALL: a path this CPU lacks");
    }
    paths
}

fn reference(key: &[u8; 16]) -> sm4::Sm4 {
    sm4::Sm4::new(&(*key).into())
}

#[test]
fn every_path_matches_rustcrypto_over_a_million_pairs() {
    let keys: usize = rng::cases("SM4_CASES", 62_500);
    for path in paths() {
        let mut rng = Rng::seeded("SM4_SEED");
        for n in [1, 8, 9, 16, 32, 33, 64, 97].into_iter().cycle().take(keys) {
            let key = rng.bytes::<16>();
            let ours = Sm4::with_path(&key, path).unwrap();
            assert_eq!(ours.path(), path);
            let theirs = reference(&key);
            let plain: Vec<[u8; 16]> = (0..n).map(|_| rng.bytes::<16>()).collect();
            let mut blocks = plain.clone();
            ours.encrypt_blocks_in_place(&mut blocks);
            for (p, c) in plain.iter().zip(&blocks) {
                let mut expect = Block::<sm4::Sm4>::from(*p);
                theirs.encrypt_block(&mut expect);
                assert_eq!(
                    c.as_slice(),
                    expect.as_slice(),
                    "{path:?} key {key:02x?} block {p:02x?}"
                );
            }
            let mut back: Vec<Block<Sm4>> = blocks.iter().map(|b| (*b).into()).collect();
            ours.decrypt_blocks(&mut back);
            for (p, b) in plain.iter().zip(&back) {
                assert_eq!(
                    p.as_slice(),
                    b.as_slice(),
                    "{path:?} decrypt, key {key:02x?}"
                );
            }
        }
    }
}

type Gcm<C> = aes_gcm::AesGcm<C, U12>;
type Ccm<C> = ccm::Ccm<C, U16, U12>;

fn seal<A: AeadInOut>(aead: &A, nonce: &[u8; 12], aad: &[u8], pt: &[u8]) -> Vec<u8> {
    let mut buf = pt.to_vec();
    let nonce = aes_gcm::aead::Nonce::<A>::try_from(&nonce[..]).unwrap();
    let tag = aead
        .encrypt_inout_detached(&nonce, aad, buf.as_mut_slice().into())
        .unwrap();
    buf.extend_from_slice(&tag);
    buf
}

fn open<A: AeadInOut>(aead: &A, nonce: &[u8; 12], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let (ct, tag) = sealed.split_at(sealed.len() - 16);
    let mut buf = ct.to_vec();
    let nonce = aes_gcm::aead::Nonce::<A>::try_from(&nonce[..]).unwrap();
    let tag = aes_gcm::aead::Tag::<A>::try_from(tag).unwrap();
    aead.decrypt_inout_detached(&nonce, aad, buf.as_mut_slice().into(), &tag)
        .ok()?;
    Some(buf)
}

/// One AEAD case: ours on `path` against RustCrypto's SM4 in the same mode.
fn check_aead<A, R>(
    path: Path,
    rng: &mut Rng,
    ours: impl Fn(Sm4) -> A,
    theirs: impl Fn(sm4::Sm4) -> R,
) where
    A: AeadInOut,
    R: AeadInOut,
{
    let key = rng.bytes::<16>();
    let nonce = rng.bytes::<12>();
    let mut pt = vec![0u8; rng.below(2100)];
    rng.fill(&mut pt);
    let mut aad = vec![0u8; rng.below(40)];
    rng.fill(&mut aad);
    let a = ours(Sm4::with_path(&key, path).unwrap());
    let r = theirs(reference(&key));
    let sealed = seal(&a, &nonce, &aad, &pt);
    assert_eq!(
        sealed,
        seal(&r, &nonce, &aad, &pt),
        "{path:?}, {} bytes",
        pt.len()
    );
    assert_eq!(open(&a, &nonce, &aad, &sealed).as_deref(), Some(&pt[..]));
    let mut tampered = sealed.clone();
    let bit = rng.below(tampered.len() * 8);
    tampered[bit / 8] ^= 1 << (bit % 8);
    assert_eq!(
        open(&a, &nonce, &aad, &tampered),
        None,
        "{path:?}: a flipped bit opened"
    );
}

#[test]
fn gcm_and_ccm_match_rustcrypto_on_every_path() {
    for path in paths() {
        let mut rng = Rng::seeded("SM4_SEED");
        for _ in 0..1500 {
            check_aead(path, &mut rng, Gcm::<Sm4>::from, Gcm::<sm4::Sm4>::from);
            check_aead(path, &mut rng, Ccm::<Sm4>::from, Ccm::<sm4::Sm4>::from);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_blocks_through_the_traits(key in any::<[u8; 16]>(), plain in proptest::collection::vec(any::<[u8; 16]>(), 0..100)) {
        let theirs = reference(&key);
        let mut expect: Vec<Block<sm4::Sm4>> = plain.iter().map(|b| (*b).into()).collect();
        theirs.encrypt_blocks(&mut expect);
        for path in Path::ALL.into_iter().filter(|p| p.available()) {
            let ours = Sm4::with_path(&key, path).unwrap();
            let mut got: Vec<Block<Sm4>> = plain.iter().map(|b| (*b).into()).collect();
            ours.encrypt_blocks(&mut got);
            for (g, e) in got.iter().zip(&expect) {
                prop_assert_eq!(g.as_slice(), e.as_slice());
            }
            ours.decrypt_blocks(&mut got);
            for (g, p) in got.iter().zip(&plain) {
                prop_assert_eq!(g.as_slice(), p.as_slice());
            }
            // From one buffer to another: the input stays, the output is
            // written whole.
            let input: Vec<Block<Sm4>> = plain.iter().map(|b| (*b).into()).collect();
            let mut out = vec![Block::<Sm4>::from([0xa5; 16]); input.len()];
            ours.encrypt_blocks_b2b(&input, &mut out).unwrap();
            for (o, e) in out.iter().zip(&expect) {
                prop_assert_eq!(o.as_slice(), e.as_slice());
            }
            for (i, p) in input.iter().zip(&plain) {
                prop_assert_eq!(i.as_slice(), p.as_slice());
            }
            let mut back = vec![Block::<Sm4>::default(); out.len()];
            ours.decrypt_blocks_b2b(&out, &mut back).unwrap();
            for (b, p) in back.iter().zip(&plain) {
                prop_assert_eq!(b.as_slice(), p.as_slice());
            }
            if let (Some(first), Some(e)) = (input.first(), expect.first()) {
                let mut one = Block::<Sm4>::default();
                ours.encrypt_block_b2b(first, &mut one);
                prop_assert_eq!(one.as_slice(), e.as_slice());
            }
        }
    }
}
