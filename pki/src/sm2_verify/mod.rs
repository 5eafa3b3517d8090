//! SM2 signature verification with precomputation (issue 15, item 2).
//!
//! Verification needs `[s]G + [t]P` (GB/T 32918.2 §7.1, B6). RustCrypto
//! `sm2` 0.14 computes it with its constant-time linear combination, about
//! 450-550 us here. Every input of a verification is public (the key, the
//! message, the signature), so this module may branch and index on them;
//! it never handles a secret. Signing stays on the constant-time `sm2`
//! crate.
//!
//! - `[s]G`: a fixed-base comb, built once: for each 9-bit window `i` of
//!   the scalar, the multiples `j·2^(9i)·G` for `j = 1..=256`, affine. The
//!   scalar is recoded into 29 signed digits in `[-256, 256]`, so the
//!   product is 29 mixed additions and no doubling.
//! - `[t]P` for a key seen before (an enrolled AK, the PDP's own CA, its
//!   ticket key at a gateway): the same comb with 7-bit windows (37
//!   windows of 64 points, 148 KiB), built the second time a key is seen
//!   and kept in a bounded cache keyed by the public key: 37 mixed
//!   additions.
//! - `[t]P` for a new key: width-5 NAF over the odd multiples `P..15P`: 256
//!   doublings and about 43 additions.
//! - B7 without an inversion: `x1 = r - e mod n` is checked as
//!   `X = x1·Z^2` in Jacobian coordinates, for both values below p.
//!
//! The field and point arithmetic is `curve` (hand-written: the generic
//! arithmetic under the `sm2` crate costs 4 times as much per operation,
//! see there). Tested against `sm2` 0.14 and Debian's OpenSSL
//! (`pki/tests/sm2_verify.rs`), timed by `testnet bench crypto`.
//!
//! Published designs this follows: the fixed-base comb (Lim and Lee,
//! 1994), signed-digit recoding, the w-NAF and the Jacobian formulas for
//! a = -3 (Hankerson, Menezes and Vanstone, "Guide to Elliptic Curve
//! Cryptography", §3.2-3.3; the formulas as the Explicit-Formulas
//! Database names them: dbl-2001-b, madd-2007-bl, add-2007-bl).

use sm2::elliptic_curve::ops::Reduce;
use sm2::elliptic_curve::sec1::ToSec1Point as _;
use sm2::elliptic_curve::PrimeField as _;
use sm2::{FieldBytes, PublicKey, Scalar};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Why a signature did not verify. Deliberately one kind: a verifier
/// tells its caller no more than "invalid".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid SM2 signature")]
pub struct InvalidSignature;

mod curve;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86;

use curve::{batch_to_affine, Affine, Jacobian};

/// A comb: for each `w`-bit window `i`, `j·2^(w·i)·P` for
/// `j = 1..=2^(w-1)`, affine, window after window.
struct Comb {
    w: usize,
    points: Vec<Affine>,
}

impl Comb {
    /// None if a table point came out at infinity, which cannot happen for
    /// a point of the curve (n is prime and divides no `j·2^(w·i)`): a
    /// verifier must never run on a short table (a missing `[s]G` or
    /// `[t]P` would let forgeries through), so it fails instead.
    fn new(p: &Affine, w: usize) -> Option<Self> {
        let half = 1usize << (w - 1);
        let count = digits_len(w);
        let mut jacobian = Vec::with_capacity(count * half);
        let mut base = p.to_jacobian();
        for window in 0..count {
            let mut m = base;
            for j in 0..half {
                jacobian.push(m);
                if j + 1 < half {
                    m = m.add(&base);
                }
            }
            if window + 1 < count {
                for _ in 0..w {
                    base = base.double();
                }
            }
        }
        let points = batch_to_affine(&jacobian)?;
        (points.len() == count * half).then_some(Self { w, points })
    }

    /// `[k]P` as a sum of one table point per window.
    fn mul(&self, k: &Scalar) -> Jacobian {
        let half = 1usize << (self.w - 1);
        let mut acc = Jacobian::IDENTITY;
        // `new` made exactly one window of `half` points per digit.
        for (i, d) in signed_digits(k, self.w).enumerate() {
            let at = i * half;
            if d != 0 {
                acc = add_signed(&acc, &self.points[at + (d.unsigned_abs() - 1) as usize], d);
            }
        }
        acc
    }
}

/// Windows of the signed recoding of a 256-bit scalar (a carry may reach
/// bit 256).
fn digits_len(w: usize) -> usize {
    257usize.div_ceil(w)
}

/// `k`'s little-endian 64-bit limbs.
fn limbs(k: &Scalar) -> [u64; 4] {
    let bytes = k.to_repr(); // big-endian
    let mut l = [0u64; 4];
    for (i, chunk) in bytes.chunks(8).rev().enumerate() {
        l[i] = u64::from_be_bytes(chunk.try_into().unwrap_or([0; 8]));
    }
    l
}

/// Bits `[at, at + w)` of `l` (w <= 16; bits past 255 are zero).
fn bits(l: &[u64; 4], at: usize, w: usize) -> u32 {
    let (limb, shift) = (at / 64, at % 64);
    if limb >= 4 {
        return 0;
    }
    let mut v = l[limb] >> shift;
    if shift + w > 64 && limb + 1 < 4 {
        v |= l[limb + 1] << (64 - shift);
    }
    (v & ((1u64 << w) - 1)) as u32
}

/// `k = Σ d_i·2^(w·i)` with every `d_i` in `[-2^(w-1), 2^(w-1)]`, least
/// significant first, [`digits_len`] of them.
fn signed_digits(k: &Scalar, w: usize) -> impl Iterator<Item = i32> {
    let l = limbs(k);
    let half = 1i32 << (w - 1);
    let mut carry = 0i32;
    (0..digits_len(w)).map(move |i| {
        let v = bits(&l, i * w, w) as i32 + carry;
        if v > half {
            carry = 1;
            v - (1 << w)
        } else {
            carry = 0;
            v
        }
    })
}

/// Digits of a 256-bit scalar's w-NAF, at most (257 bits, and a carry).
const WNAF_LEN: usize = 258;

/// The width-`w` NAF of `k`, least significant digit first, and how many
/// digits it has: every digit 0 or odd in `(-2^(w-1), 2^(w-1))`, and of any
/// `w` consecutive digits at most one is not 0.
fn wnaf(k: &Scalar, w: usize) -> ([i8; WNAF_LEN], usize) {
    debug_assert!((2..=8).contains(&w), "digits are kept as i8");
    // 257 bits: 256 and room for the top carry.
    let l = limbs(k);
    let mut n = [l[0], l[1], l[2], l[3], 0];
    let window = 1i64 << w;
    let mut out = [0i8; WNAF_LEN];
    // The bit of the original k that n's bit 0 stands for, and the length
    // so far (one past the last digit written).
    let (mut at, mut len) = (0usize, 0usize);
    while n != [0; 5] && at < WNAF_LEN {
        if n[0] & 1 == 0 {
            // Zero digits up to n's lowest set bit.
            let zeros = if n[0] == 0 {
                63
            } else {
                n[0].trailing_zeros() as usize
            };
            shr(&mut n, zeros);
            at += zeros;
            continue;
        }
        let m = (n[0] & (window as u64 - 1)) as i64;
        let d = if m >= window / 2 { m - window } else { m };
        // n -= d. A positive d is n's own low bits, so no borrow.
        if d > 0 {
            n[0] -= d as u64;
        } else {
            add_small(&mut n, (-d) as u64);
        }
        // |d| < 2^(w-1) <= 2^7 for the widths used here (w <= 8).
        out[at] = d as i8;
        len = at + 1;
        // n's low w bits are zero now: the next w - 1 digits are 0.
        shr(&mut n, w);
        at += w;
    }
    (out, len)
}

/// `n >>= by` for `by < 64`.
fn shr(n: &mut [u64; 5], by: usize) {
    if by == 0 {
        return;
    }
    for i in 0..5 {
        let high = if i < 4 { n[i + 1] << (64 - by) } else { 0 };
        n[i] = (n[i] >> by) | high;
    }
}

fn add_small(n: &mut [u64], v: u64) {
    let (r, mut carry) = n[0].overflowing_add(v);
    n[0] = r;
    for x in n.iter_mut().skip(1) {
        if !carry {
            break;
        }
        let (r, c) = x.overflowing_add(1);
        *x = r;
        carry = c;
    }
}

/// `acc + q` for a positive digit, `acc - q` for a negative one.
fn add_signed(acc: &Jacobian, q: &Affine, digit: i32) -> Jacobian {
    if digit > 0 {
        acc.add_affine(q)
    } else {
        acc.add_affine(&q.neg())
    }
}

/// `[k]P` by the width-5 NAF (a key without a comb); None only if an odd
/// multiple came out at infinity, which a point of the curve cannot give.
fn mul_wnaf(p: &Affine, k: &Scalar) -> Option<Jacobian> {
    const W: usize = 5;
    // P, 3P, ..., 15P, affine.
    let pj = p.to_jacobian();
    let two_p = pj.double();
    let mut odd = Vec::with_capacity(1 << (W - 2));
    let mut m = pj;
    for _ in 0..(1 << (W - 2)) {
        odd.push(m);
        m = m.add(&two_p);
    }
    let odd = batch_to_affine(&odd)?;
    let (digits, len) = wnaf(k, W);
    let mut acc = Jacobian::IDENTITY;
    for &d in digits[..len].iter().rev() {
        acc = acc.double();
        if d != 0 {
            acc = add_signed(&acc, &odd[usize::from(d.unsigned_abs()) / 2], d.into());
        }
    }
    Some(acc)
}

/// The generator's coordinates and the curve's b (GB/T 32918.5).
const GX: [u8; 32] = crate::ca::SM2_CURVE_PARAMS[2];
const GY: [u8; 32] = crate::ca::SM2_CURVE_PARAMS[3];
const CURVE_B: [u8; 32] = crate::ca::SM2_CURVE_PARAMS[1];

/// The generator's comb, built on first use (29 windows of 256 points,
/// 464 KiB); None only if the constants were wrong, and then every
/// verification fails.
fn generator_comb() -> Option<&'static Comb> {
    static COMB: OnceLock<Option<Comb>> = OnceLock::new();
    COMB.get_or_init(|| Comb::new(&Affine::from_coordinates(&GX, &GY)?, 9))
        .as_ref()
}

/// Keys whose comb is kept, at most (148 KiB each: 19 MiB in all).
pub const CACHED_KEYS: usize = 128;
/// Keys remembered as verified once, without a comb yet.
pub const SEEN_KEYS: usize = 4 * CACHED_KEYS;
/// Trust anchors remembered, at most ([`KeyCache::add_anchor`]).
pub const MAX_ANCHORS: usize = 64;
/// Window of the per-key combs (37 windows of 64 points: 148 KiB a key).
const KEY_WINDOW: usize = 7;

/// The per-key combs. A key gets a comb on its second verification that
/// succeeds (the same signature twice counts; a key seen once gets none,
/// as a comb costs about 3 ms to build, and a signature that does not
/// verify counts for nothing, so garbage never gets a comb). What keeps
/// keys a peer chooses out is where the cache is used: quotes by enrolled
/// AKs, certificates against the CAs, tickets, and in TLS certificate
/// signatures by a trust anchor's key ([`KeyCache::add_anchor`]); CSRs,
/// CertificateVerify and other certificate signatures verify without it.
/// Bounded: past [`CACHED_KEYS`] the least recently used comb goes, past
/// [`SEEN_KEYS`] the oldest key seen once, so the keys in constant use
/// (enrolled AKs, the PDP's own CA and ticket key) stay.
#[derive(Default)]
pub struct KeyCache {
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    /// Combs and when each was last used.
    combs: HashMap<[u8; 65], (Arc<Comb>, u64)>,
    /// Keys with one verified signature, oldest first; bounded.
    seen: std::collections::HashSet<[u8; 65]>,
    seen_order: std::collections::VecDeque<[u8; 65]>,
    /// Keys whose comb a thread is building now (others do not build it too).
    building: std::collections::HashSet<[u8; 65]>,
    /// Trust anchors' keys ([`KeyCache::add_anchor`]).
    anchors: std::collections::HashSet<[u8; 65]>,
    clock: u64,
}

impl KeyCache {
    /// The process-wide cache the PDP's verifications share.
    pub fn global() -> &'static KeyCache {
        static CACHE: OnceLock<KeyCache> = OnceLock::new();
        CACHE.get_or_init(KeyCache::default)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key's comb, if it has one (now the most recently used).
    fn comb(&self, key: &[u8; 65]) -> Option<Arc<Comb>> {
        let mut c = self.lock();
        c.clock += 1;
        let now = c.clock;
        c.combs.get_mut(key).map(|(comb, used)| {
            *used = now;
            comb.clone()
        })
    }

    /// A signature by `key` verified without its comb: remember the key,
    /// and on its second such signature say to build the comb.
    fn verified(&self, key: &[u8; 65]) -> bool {
        let mut c = self.lock();
        if c.building.contains(key) || c.combs.contains_key(key) {
            return false;
        }
        if c.seen.remove(key) {
            c.seen_order.retain(|k| k != key);
            c.building.insert(*key);
            return true;
        }
        c.seen.insert(*key);
        c.seen_order.push_back(*key);
        if c.seen_order.len() > SEEN_KEYS {
            if let Some(old) = c.seen_order.pop_front() {
                c.seen.remove(&old);
            }
        }
        false
    }

    fn insert(&self, key: [u8; 65], comb: Option<Comb>) {
        let mut c = self.lock();
        c.building.remove(&key);
        let Some(comb) = comb else { return };
        c.clock += 1;
        let now = c.clock;
        c.combs.insert(key, (Arc::new(comb), now));
        if c.combs.len() > CACHED_KEYS {
            let oldest = c
                .combs
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k);
            if let Some(old) = oldest {
                c.combs.remove(&old);
            }
        }
    }

    /// Whether `public` has a comb now.
    pub fn has_comb(&self, public: &PublicKey) -> bool {
        encode(public).is_some_and(|key| self.lock().combs.contains_key(&key))
    }

    /// Remembers `public` as a trust anchor's key: configured, not chosen by
    /// a peer (the PDP's SM2 CA as the root of a TLS configuration). TLS
    /// chain verification checks certificate signatures by an anchor's key
    /// with the cache and by any other key (an intermediate a peer
    /// presents) without it, so a peer cannot make the cache build or evict
    /// combs. Bounded by [`MAX_ANCHORS`]: false when the key was not taken
    /// (it then verifies uncached, which is slower, never wrong).
    pub fn add_anchor(&self, public: &PublicKey) -> bool {
        let Some(key) = encode(public) else {
            return false;
        };
        let mut c = self.lock();
        if c.anchors.len() >= MAX_ANCHORS && !c.anchors.contains(&key) {
            return false;
        }
        c.anchors.insert(key);
        true
    }

    /// Whether [`KeyCache::add_anchor`] took `public`.
    pub fn is_anchor(&self, public: &PublicKey) -> bool {
        encode(public).is_some_and(|key| self.lock().anchors.contains(&key))
    }

    /// Keys with a comb now.
    pub fn len(&self) -> usize {
        self.lock().combs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A key as the cache names it: its uncompressed SEC1 encoding.
fn encode(public: &PublicKey) -> Option<[u8; 65]> {
    let encoded = public.as_affine().to_sec1_point(false);
    <[u8; 65]>::try_from(encoded.as_bytes()).ok()
}

/// Verifies an SM2 signature `(r, s)` over the 32-byte message digest
/// `e` (SM3 of Z and the message, or a TPM quote's digest as the TPM
/// signed it) with `public`, with `cache`'s comb for a key verified before
/// (None: no cache, for keys a peer chooses and uses once). The same
/// answer as `sm2::dsa::VerifyingKey::verify_prehash`.
pub fn verify_prehash_with(
    cache: Option<&KeyCache>,
    public: &PublicKey,
    e: &[u8; 32],
    signature: &sm2::dsa::Signature,
) -> Result<(), InvalidSignature> {
    let g = generator_comb().ok_or(InvalidSignature)?;
    let key = encode(public).ok_or(InvalidSignature)?;
    let point = || -> Result<Affine, InvalidSignature> {
        let (x, y) = (key[1..33].try_into(), key[33..65].try_into());
        match (x, y) {
            (Ok(x), Ok(y)) => Affine::from_coordinates(x, y).ok_or(InvalidSignature),
            _ => Err(InvalidSignature),
        }
    };
    let comb = cache.and_then(|c| c.comb(&key));
    let check = |t_p: &dyn Fn(&Scalar) -> Result<Jacobian, InvalidSignature>| {
        equation(g, t_p, e, signature)
    };
    match comb {
        Some(comb) => check(&|t| Ok(comb.mul(t))),
        None => {
            let p = point()?;
            check(&|t| mul_wnaf(&p, t).ok_or(InvalidSignature))?;
            if let Some(cache) = cache {
                if cache.verified(&key) {
                    cache.insert(key, Comb::new(&p, KEY_WINDOW));
                }
            }
            Ok(())
        }
    }
}

/// GB/T 32918.2 B1-B7 with `[t]P` computed by `t_p`.
fn equation(
    g: &Comb,
    t_p: &dyn Fn(&Scalar) -> Result<Jacobian, InvalidSignature>,
    e: &[u8; 32],
    signature: &sm2::dsa::Signature,
) -> Result<(), InvalidSignature> {
    // B1, B2: r and s in [1, n-1] (the Signature type holds them so).
    let (r, s) = (*signature.r(), *signature.s());
    // B4, B5.
    let e = <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(*e));
    let t = r + s;
    if bool::from(t.is_zero()) {
        return Err(InvalidSignature);
    }
    // B6: (x1, y1) = [s]G + [t]P, not the point at infinity.
    let point = g.mul(&s).add(&t_p(&t)?);
    // B7: R = e + x1 mod n must be r, that is x1 = r - e mod n. As x1 < p
    // < 2n, x1 is v = r - e or v + n (when that is below p): compared in
    // Jacobian coordinates (X = x1·Z^2), no inversion needed.
    let v: [u8; 32] = (r - e).to_repr().into();
    let candidates = [Some(v), add_n(&v)];
    if candidates
        .iter()
        .flatten()
        .filter_map(curve::Fe::from_bytes)
        .any(|x| point.has_affine_x(&x))
    {
        Ok(())
    } else {
        Err(InvalidSignature)
    }
}

/// `v + n` as a 256-bit big-endian number, if it does not overflow (the
/// caller then drops it unless it is below p).
fn add_n(v: &[u8; 32]) -> Option<[u8; 32]> {
    const N: [u8; 32] =
        crate::ca::hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123");
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in (0..32).rev() {
        let t = u16::from(v[i]) + u16::from(N[i]) + carry;
        out[i] = t as u8;
        carry = t >> 8;
    }
    (carry == 0).then_some(out)
}

/// [`verify_prehash_with`] on the process-wide cache: for keys the PDP
/// sees again and again (enrolled AKs, its CA, its ticket key).
pub fn verify_prehash(
    public: &PublicKey,
    e: &[u8; 32],
    signature: &sm2::dsa::Signature,
) -> Result<(), InvalidSignature> {
    verify_prehash_with(Some(KeyCache::global()), public, e, signature)
}

/// e = SM3(Z || message) for the signer with `distid` (`ca::sm2_digest`).
fn digest(distid: &str, public: &PublicKey, message: &[u8]) -> Result<[u8; 32], InvalidSignature> {
    crate::ca::sm2_digest(public, distid, message).map_err(|_| InvalidSignature)
}

/// Verifies an SM2 signature over `message` as the signer with `distid`
/// made it (e = SM3(Z || message)), with the process-wide cache: for keys
/// verified again and again (the PDP's CA over certificates, its ticket
/// key at a gateway).
pub fn verify(
    distid: &str,
    public: &PublicKey,
    message: &[u8],
    signature: &sm2::dsa::Signature,
) -> Result<(), InvalidSignature> {
    verify_prehash(public, &digest(distid, public, message)?, signature)
}

/// How this CPU computes the field: for benchmarks to say what they timed.
pub fn field_arithmetic() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if x86::Adx::detect().is_some() {
        return "x86-64 assembly, MULX/ADCX/ADOX";
    }
    if cfg!(target_arch = "x86_64") {
        "x86-64 assembly for addition, Rust for the product (no BMI2/ADX)"
    } else {
        "Rust"
    }
}

/// [`verify`] without the cache: for keys a peer chooses and uses once or
/// a few times (a CSR's key, a TLS peer's certificate key), which must not
/// take the place of the keys in constant use.
pub fn verify_uncached(
    distid: &str,
    public: &PublicKey,
    message: &[u8],
    signature: &sm2::dsa::Signature,
) -> Result<(), InvalidSignature> {
    verify_prehash_with(None, public, &digest(distid, public, message)?, signature)
}

/// The integration tests' reproducible generator, for the unit tests too.
#[cfg(test)]
#[path = "../../tests/common/rng.rs"]
mod test_rng;

#[cfg(test)]
mod tests {
    use super::test_rng::Rng;
    use super::*;
    use sm2::elliptic_curve::Group as _;
    use sm2::ProjectivePoint;

    /// Scalars from the tests' shared generator (SM2_SEED replays a run).
    fn random_scalar(rng: &mut Rng) -> Scalar {
        <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(rng.bytes::<32>()))
    }

    /// At most MAX_ANCHORS keys are taken as anchors; one already taken is
    /// taken again, a new one past the bound is refused (and verifies
    /// uncached).
    #[test]
    fn anchors_are_bounded() {
        let cache = KeyCache::default();
        let key = |i: u64| {
            PublicKey::from_affine((ProjectivePoint::generator() * Scalar::from(i)).to_affine())
                .unwrap()
        };
        for i in 1..=MAX_ANCHORS as u64 {
            assert!(cache.add_anchor(&key(i)));
        }
        assert!(cache.add_anchor(&key(1)), "already an anchor");
        let past = key(MAX_ANCHORS as u64 + 1);
        assert!(!cache.add_anchor(&past));
        assert!(!cache.is_anchor(&past));
        assert!(cache.is_anchor(&key(MAX_ANCHORS as u64)));
    }

    #[test]
    fn signed_digits_and_wnaf_add_up_to_the_scalar() {
        let two = Scalar::from(2u64);
        let edge = [Scalar::ZERO, Scalar::ONE, -Scalar::ONE, -Scalar::from(2u64)];
        let mut rng = Rng::seeded("SM2_SEED");
        for k in edge
            .into_iter()
            .chain((0..200).map(|_| random_scalar(&mut rng)))
        {
            for w in [4, 5, 6, 7, 8, 9] {
                let digits: Vec<i32> = signed_digits(&k, w).collect();
                assert_eq!(digits.len(), digits_len(w));
                let half = 1 << (w - 1);
                assert!(digits.iter().all(|d| (-half..=half).contains(d)));
                let base = Scalar::from(1u64 << w);
                let sum = digits.iter().rev().fold(Scalar::ZERO, |acc, &d| {
                    acc * base
                        + if d >= 0 {
                            Scalar::from(d as u64)
                        } else {
                            -Scalar::from((-d) as u64)
                        }
                });
                assert_eq!(sum, k, "w = {w}");
            }
            let (naf, len) = wnaf(&k, 5);
            assert!(naf[len..].iter().all(|d| *d == 0));
            let naf: Vec<i32> = naf[..len].iter().map(|&d| d.into()).collect();
            assert!(naf.iter().all(|d| *d == 0 || (d % 2 != 0 && d.abs() < 16)));
            for win in naf.windows(5) {
                assert!(win.iter().filter(|d| **d != 0).count() <= 1, "{win:?}");
            }
            let sum = naf.iter().rev().fold(Scalar::ZERO, |acc, &d| {
                acc * two
                    + if d >= 0 {
                        Scalar::from(d as u64)
                    } else {
                        -Scalar::from((-d) as u64)
                    }
            });
            assert_eq!(sum, k);
        }
    }

    /// `[k]P` as the `sm2` crate computes it: its affine x, or None.
    fn theirs(p: &ProjectivePoint, k: &Scalar) -> Option<[u8; 32]> {
        use sm2::elliptic_curve::point::AffineCoordinates as _;
        let r = *p * k;
        (!bool::from(r.is_identity())).then(|| r.to_affine().x().into())
    }

    #[test]
    fn the_combs_and_the_wnaf_multiply_as_the_curve_does() {
        let g = ProjectivePoint::generator();
        assert_eq!(
            theirs(&g, &Scalar::ONE),
            generator_comb().unwrap().mul(&Scalar::ONE).affine_x()
        );
        let mut rng = Rng::seeded("SM2_SEED");
        let p = g * random_scalar(&mut rng);
        let encoded = p.to_affine().to_sec1_point(false);
        let b = encoded.as_bytes();
        let ours_p =
            Affine::from_coordinates(b[1..33].try_into().unwrap(), b[33..65].try_into().unwrap())
                .unwrap();
        let comb = Comb::new(&ours_p, KEY_WINDOW).unwrap();
        let edge = [Scalar::ZERO, Scalar::ONE, -Scalar::ONE, Scalar::from(2u64)];
        for k in edge
            .into_iter()
            .chain((0..50).map(|_| random_scalar(&mut rng)))
        {
            assert_eq!(comb.mul(&k).affine_x(), theirs(&p, &k));
            assert_eq!(mul_wnaf(&ours_p, &k).unwrap().affine_x(), theirs(&p, &k));
            assert_eq!(generator_comb().unwrap().mul(&k).affine_x(), theirs(&g, &k));
        }
    }
}
