//! `pki::sm2_verify` (SM2 verification with precomputed tables) against two
//! independent implementations:
//!
//! - RustCrypto `sm2` 0.14, over 10^5 random keys and digests: its
//!   signatures must verify, the digest with a bit flipped must not; on
//!   every 8th case the flipped digest, r or s swapped for another
//!   signature's and a random (r, s) get the same verdict as the crate's
//!   own verifier; and 100 keys seen several times, so each passes through
//!   the new-key path, the comb being built and the comb.
//! - Debian's OpenSSL 3.0 (libcrypto, through a small C program built here
//!   with cc): its keys and signatures over random digests, 10^4 by
//!   default (OpenSSL takes 1.3 ms to make a key and sign; set
//!   SM2_OPENSSL_CASES for more), and its verdict on flipped digests;
//!   every 20th OpenSSL key signs three digests, so its third signature
//!   is checked by the key's comb.
//!
//! Then the edge cases GB/T 32918.2 names: r or s zero or not below n, t = 0
//! (s = n - r), a sum at infinity, a public key off the curve.

use pki::sm2_verify::{verify, verify_prehash_with, KeyCache};
use sm2::dsa::signature::hazmat::{PrehashSigner as _, PrehashVerifier as _};
use sm2::dsa::{Signature, SigningKey, VerifyingKey};
use sm2::elliptic_curve::ops::Reduce as _;
use sm2::elliptic_curve::sec1::ToSec1Point as _;
use sm2::elliptic_curve::PrimeField as _;
use sm2::{FieldBytes, PublicKey, Scalar};
use std::path::PathBuf;
use std::process::Command;

const DISTID: &str = "1234567812345678";

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

/// The SM2 cases drawn from the shared random stream.
trait Sm2Rng {
    fn key(&mut self) -> SigningKey;
    fn key_with(&mut self, distid: &str) -> SigningKey;
    fn signed(&mut self) -> (SigningKey, PublicKey, [u8; 32], Signature);
}

impl Sm2Rng for Rng {
    fn key(&mut self) -> SigningKey {
        self.key_with(DISTID)
    }

    fn key_with(&mut self, distid: &str) -> SigningKey {
        loop {
            if let Ok(k) = SigningKey::from_bytes(distid, &FieldBytes::from(self.bytes::<32>())) {
                return k;
            }
        }
    }

    /// A key, its public key, a random digest and the key's signature of it.
    fn signed(&mut self) -> (SigningKey, PublicKey, [u8; 32], Signature) {
        let key = self.key();
        let public = public_of(&key);
        let e = self.bytes::<32>();
        let sig = key.sign_prehash(&e).unwrap();
        (key, public, e, sig)
    }
}

/// The reference: `sm2` 0.14's own verification.
fn reference(public: &PublicKey, e: &[u8; 32], sig: &Signature) -> bool {
    VerifyingKey::new(DISTID, *public)
        .unwrap()
        .verify_prehash(e, sig)
        .is_ok()
}

fn public_of(key: &SigningKey) -> PublicKey {
    PublicKey::from_affine(*key.verifying_key().as_affine()).unwrap()
}

fn ours(cache: &KeyCache, public: &PublicKey, e: &[u8; 32], sig: &Signature) -> bool {
    verify_prehash_with(Some(cache), public, e, sig).is_ok()
}

/// Where `check_case` verifies: one cache (keys go through their comb), or
/// none (the new-key path only: building a comb for each of 10^5 keys
/// would cost 3 ms each).
#[derive(Clone, Copy)]
enum Caches<'a> {
    Shared(&'a KeyCache),
    Fresh,
}

impl Caches<'_> {
    fn ours(self, public: &PublicKey, e: &[u8; 32], sig: &Signature) -> bool {
        match self {
            Caches::Shared(c) => ours(c, public, e, sig),
            Caches::Fresh => verify_prehash_with(None, public, e, sig).is_ok(),
        }
    }
}

/// One case: a key, a digest and its signature, which must verify; the
/// digest with one bit flipped, which must not. With `full` (the reference
/// verifier costs 0.45 ms a call, so not on every case): the flipped
/// digest's verdict compared with the reference's, and r or s taken from
/// another signature, and a random (r, s).
fn check_case(cache: Caches, rng: &mut Rng, key: &SigningKey, other: &Signature, full: bool) {
    let public = public_of(key);
    let e = rng.bytes::<32>();
    let sig: Signature = key.sign_prehash(&e).unwrap();
    assert!(cache.ours(&public, &e, &sig), "a valid signature refused");
    let mut flipped = e;
    flipped[(rng.next() % 32) as usize] ^= 1 << (rng.next() % 8);
    let verdict = cache.ours(&public, &flipped, &sig);
    if !full {
        // A flipped digest verifies with probability about 1/n.
        assert!(!verdict, "a flipped digest accepted");
        return;
    }
    assert_eq!(verdict, reference(&public, &flipped, &sig));
    // Another signature's r or s.
    for mixed in [
        Signature::from_scalars(sig.r(), other.s()),
        Signature::from_scalars(other.r(), sig.s()),
    ]
    .into_iter()
    .flatten()
    {
        assert_eq!(
            cache.ours(&public, &e, &mixed),
            reference(&public, &e, &mixed)
        );
    }
    if let Ok(random) = Signature::from_scalars(rng.bytes::<32>(), rng.bytes::<32>()) {
        assert_eq!(
            cache.ours(&public, &e, &random),
            reference(&public, &e, &random)
        );
    }
}

#[test]
fn agrees_with_sm2_over_100_000_random_keys() {
    let cases: usize = rng::cases("SM2_CASES", 100_000);
    // Two threads, new keys each time, no cache (the new-key path).
    std::thread::scope(|scope| {
        for t in 0..2u64 {
            scope.spawn(move || {
                let mut rng = Rng::seeded("SM2_SEED").stream(t);
                let mut other = rng.key().sign_prehash(&[7; 32]).unwrap();
                for i in 0..cases / 2 {
                    let key = rng.key();
                    check_case(Caches::Fresh, &mut rng, &key, &other, i % 8 == 0);
                    other = key.sign_prehash(&rng.bytes::<32>()).unwrap();
                }
            });
        }
    });
}

#[test]
fn keys_seen_again_go_through_their_comb_and_agree() {
    let mut rng = Rng::seeded("SM2_SEED");
    let cache = KeyCache::default();
    // A key's first verification has no comb, its second builds it.
    let (_, public, e, sig) = rng.signed();
    assert!(ours(&cache, &public, &e, &sig));
    assert_eq!(cache.len(), 0);
    assert!(ours(&cache, &public, &e, &sig));
    assert_eq!(cache.len(), 1);
    // 100 keys, each verified again and again: new, comb built, comb.
    let keys: Vec<SigningKey> = (0..100).map(|_| rng.key()).collect();
    let mut other = keys[0].sign_prehash(&[1; 32]).unwrap();
    for _ in 0..3 {
        for key in &keys {
            check_case(Caches::Shared(&cache), &mut rng, key, &other, true);
            other = key.sign_prehash(&rng.bytes::<32>()).unwrap();
        }
    }
    assert_eq!(cache.len(), 101);
    // Bounded: at most CACHED_KEYS combs, however many keys came by; a key
    // in constant use between them keeps its comb (least recently used
    // goes first).
    assert!(cache.has_comb(&public));
    for key in (0..200).map(|_| rng.key()) {
        let other = public_of(&key);
        let sig2 = key.sign_prehash(&e).unwrap();
        assert!(ours(&cache, &other, &e, &sig2));
        assert!(ours(&cache, &other, &e, &sig2));
        assert!(ours(&cache, &public, &e, &sig));
    }
    assert_eq!(cache.len(), pki::sm2_verify::CACHED_KEYS);
    assert!(cache.has_comb(&public));
    // Keys seen once are remembered up to SEEN_KEYS: a key whose first
    // verification is older than that many others starts over.
    let once = KeyCache::default();
    assert!(ours(&once, &public, &e, &sig));
    for key in (0..pki::sm2_verify::SEEN_KEYS).map(|_| rng.key()) {
        let sig2 = key.sign_prehash(&e).unwrap();
        assert!(ours(&once, &public_of(&key), &e, &sig2));
    }
    assert!(ours(&once, &public, &e, &sig));
    assert!(
        !once.has_comb(&public),
        "forgotten, so this was its first again"
    );
    assert!(ours(&once, &public, &e, &sig));
    assert!(once.has_comb(&public));
    // Signatures that do not verify never count: no comb for garbage.
    let fresh = KeyCache::default();
    let key = rng.key();
    let p = public_of(&key);
    let bad = Signature::from_scalars(rng.bytes::<32>(), rng.bytes::<32>())
        .or_else(|_| Signature::from_scalars([1; 32], [2; 32]))
        .unwrap();
    for _ in 0..5 {
        assert!(!ours(&fresh, &p, &e, &bad));
    }
    assert!(fresh.is_empty());
    // Concurrent verifications of one key: the comb is built once and
    // every verdict holds.
    let sig = key.sign_prehash(&e).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..20 {
                    assert!(ours(&fresh, &p, &e, &sig));
                    assert!(!ours(&fresh, &p, &[0xEE; 32], &sig));
                }
            });
        }
    });
    assert_eq!(fresh.len(), 1);
}

/// The OpenSSL peer, built from `tests/peers/openssl_sm2.c`.
fn openssl_peer() -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/openssl_sm2.c");
    let out = std::env::temp_dir().join(format!("openssl_sm2-{}", std::process::id()));
    let built = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .arg("-lcrypto")
        .output()
        .expect("cc (gcc) builds the OpenSSL peer");
    assert!(
        built.status.success(),
        "building the OpenSSL peer (libssl-dev; make test installs it): {}",
        String::from_utf8_lossy(&built.stderr)
    );
    out
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn agrees_with_debians_openssl() {
    let cases: usize = rng::cases("SM2_OPENSSL_CASES", 10_000);
    let peer = openssl_peer();
    // Two OpenSSL processes side by side; every 50th line with its verdict
    // on a flipped digest.
    let outputs: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let peer = &peer;
                scope.spawn(move || {
                    let out = Command::new(peer)
                        .args([(cases / 2).to_string(), "50".into(), REPEAT.to_string()])
                        .output()
                        .unwrap();
                    assert!(out.status.success(), "{out:?}");
                    String::from_utf8(out.stdout).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let _ = std::fs::remove_file(&peer);
    let cache = KeyCache::default();
    let (mut valid, mut flipped, mut by_comb) = (0, 0, 0);
    for line in outputs.iter().flat_map(|o| o.lines()) {
        let f: Vec<&str> = line.split(' ').collect();
        let public = PublicKey::from_sec1_bytes(&unhex(f[0])).unwrap();
        let e: [u8; 32] = unhex(f[1]).try_into().unwrap();
        let sig = Signature::from_der(&unhex(f[2])).unwrap();
        by_comb += usize::from(cache.has_comb(&public));
        assert!(
            ours(&cache, &public, &e, &sig),
            "OpenSSL's signature refused: {line}"
        );
        valid += 1;
        if f.len() == 5 {
            let e2: [u8; 32] = unhex(f[3]).try_into().unwrap();
            assert_eq!(ours(&cache, &public, &e2, &sig), f[4] == "1", "{line}");
            flipped += 1;
        }
    }
    // Every REPEAT-th key signed three digests: its third went through
    // the comb built on its second.
    let repeated = 2 * (cases / 2).div_ceil(REPEAT);
    assert_eq!(valid, cases / 2 * 2 + 2 * repeated);
    assert_eq!(by_comb, repeated, "OpenSSL signatures verified by a comb");
    assert!(flipped >= (cases / 50).saturating_sub(2), "{flipped}");
}

/// One OpenSSL key in this many signs three digests (the comb's check).
const REPEAT: usize = 20;

#[test]
fn the_edge_cases_of_the_standard() {
    let mut rng = Rng::seeded("SM2_SEED");
    let cache = KeyCache::default();
    let (key, public, e, sig) = rng.signed();
    // n, and n - 1 as bytes.
    let n = hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123");
    let mut n_minus_1 = n;
    n_minus_1[31] -= 1;
    let r: [u8; 32] = FieldBytes::from(sig.r()).into();
    let s: [u8; 32] = FieldBytes::from(sig.s()).into();
    // r or s zero or not below n: no Signature is made of them at all.
    for (r2, s2) in [([0; 32], s), (r, [0; 32]), (n, s), (r, n), ([0xFF; 32], s)] {
        assert!(Signature::from_scalars(r2, s2).is_err());
    }
    // t = r + s = 0 mod n: s = n - r.
    let minus_r = -*sig.r();
    let t_zero = Signature::from_scalars(r, minus_r.to_repr()).unwrap();
    assert!(!ours(&cache, &public, &e, &t_zero));
    assert!(!reference(&public, &e, &t_zero));
    // [s]G + [t]P at infinity: a key P = -G·s/t for chosen r and s. With
    // P = -(s/t)G the sum is the identity and verification must refuse
    // it whatever r is.
    let s_scalar = Scalar::reduce(&FieldBytes::from(rng.bytes::<32>()));
    let r_scalar = Scalar::reduce(&FieldBytes::from(rng.bytes::<32>()));
    let t = r_scalar + s_scalar;
    let d = -(s_scalar * Option::<Scalar>::from(t.invert()).unwrap());
    let p = sm2::ProjectivePoint::GENERATOR * d;
    let infinity_key =
        PublicKey::from_affine(sm2::elliptic_curve::group::Curve::to_affine(&p)).unwrap();
    let at_infinity = Signature::from_scalars(r_scalar.to_repr(), s_scalar.to_repr()).unwrap();
    assert!(!ours(&cache, &infinity_key, &e, &at_infinity));
    assert!(!reference(&infinity_key, &e, &at_infinity));
    // r = n - 1, s = 1: well-formed, not valid.
    let mut one = [0u8; 32];
    one[31] = 1;
    let edge = Signature::from_scalars(n_minus_1, one).unwrap();
    assert_eq!(
        ours(&cache, &public, &e, &edge),
        reference(&public, &e, &edge)
    );
    // A signature whose x1 is at least n (x1 = n + 4: only the second
    // candidate of B7 matches), made with textbook curve arithmetic; a
    // random signature has x1 >= n with probability 2^-129.
    let big_x = PublicKey::from_sec1_bytes(&unhex(
        "043690a6f286de9d446523ed7a0d1227052cf568baad935fcaa09c47f549876161\
         b337c40acfd7b8a2b0fe793f7cbee89c24f4d55d2b9770d6da8891f75af8e775",
    ))
    .unwrap();
    let mut e_big = [0u8; 32];
    e_big[28..].copy_from_slice(&[0x01, 0x23, 0x45, 0x63]);
    let mut r_big = [0u8; 32];
    r_big[28..].copy_from_slice(&[0x01, 0x23, 0x45, 0x67]);
    let mut s_big = [0u8; 32];
    s_big[28..].copy_from_slice(&[0x89, 0xab, 0xcd, 0xef]);
    let sig_big = Signature::from_scalars(r_big, s_big).unwrap();
    assert!(reference(&big_x, &e_big, &sig_big));
    assert!(ours(&cache, &big_x, &e_big, &sig_big));
    let mut e_off = e_big;
    e_off[31] ^= 1;
    assert!(!ours(&cache, &big_x, &e_off, &sig_big));
    // Digests at or above n, reduced as the standard says.
    for e_high in [[0xFF; 32], n, n_minus_1] {
        let sig = key.sign_prehash(&e_high).unwrap();
        assert!(ours(&cache, &public, &e_high, &sig));
        assert!(reference(&public, &e_high, &sig));
    }
    // A public key off the curve, or the identity: not a PublicKey.
    let mut off = public.as_affine().to_sec1_point(false).as_bytes().to_vec();
    off[64] ^= 1;
    assert!(PublicKey::from_sec1_bytes(&off).is_err());
    assert!(PublicKey::from_sec1_bytes(&[0]).is_err());
}

#[test]
fn messages_hash_with_the_signers_id_as_sm2_does() {
    use sm2::dsa::signature::{Signer as _, Verifier as _};
    let mut rng = Rng::seeded("SM2_SEED");
    for id in ["1234567812345678", "TLSv1.3+GM+Cipher+Suite", "x"] {
        let key = rng.key_with(id);
        let public = public_of(&key);
        for len in [0usize, 1, 64, 1000] {
            let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let sig: Signature = key.sign(&msg);
            assert!(key.verifying_key().verify(&msg, &sig).is_ok());
            assert!(verify(id, &public, &msg, &sig).is_ok(), "{id} {len}");
            assert!(verify("another id", &public, &msg, &sig).is_err());
        }
    }
}

fn hex32(s: &str) -> [u8; 32] {
    unhex(s).try_into().unwrap()
}
