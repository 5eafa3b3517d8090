//! SM4 on 64 blocks at once in AVX-512 registers or 32 in AVX2 ones (8 for
//! a single block), with the S-box computed by GFNI or by AES-NI: one of the
//! two modules of `pki` with `unsafe` code (the other is `sm2_verify::x86`).
//!
//! Why by hand: no maintained crate computes SM4 this way (RustCrypto's `sm4`
//! looks up a table by secret bytes, one block at a time). The technique is
//! published (Saarinen's sm4ni for AES-NI; libgcrypt and Botan for GFNI);
//! the affine maps are derived in [`super::consts`].
//!
//! Layout: each 256-bit register holds one 32-bit word of eight blocks (a
//! 512-bit one of sixteen), in native order (the big-endian words are
//! byte-swapped on load), so a round is the same operations for all of them;
//! four groups of eight (of sixteen on AVX-512) run interleaved to hide the
//! S-box's latency. Every path keeps the words in the image of the S-box
//! input map's linear part, so that map leaves the rounds, and folds `L`'s
//! rotation by two bits into the S-box's output maps ([`super::consts`]
//! derives them): with GFNI a round is three GF2P8AFFINEINVQB, three byte
//! shuffles and XORs; with AES-NI, an AESENCLAST (two without VAES) and
//! three table maps sharing its output's nibbles, then the same shuffles.
//! The S-box applies to each byte alone, so its results need no particular
//! lane order (the AES-NI paths pre-shuffle by the inverse of ShiftRows,
//! which AESENCLAST then undoes). Nothing here indexes memory or branches on
//! data.
//!
//! Safety: the intrinsics are only reached through [`Avx512Gfni`], [`Gfni`],
//! [`Vaes`] and [`AesNi`], values that exist only once the CPU features they
//! need were detected. Memory is only read and written through the
//! references passed in, 16 bytes per block.

#![deny(unsafe_op_in_unsafe_fn)]

use super::consts::{
    AESNI_INTO, AESNI_OUT_OF, AESNI_POST, AESNI_PRE, AESNI_T0, AESNI_T1, AESNI_T3, GFNI_INTO,
    GFNI_OUT_OF, GFNI_POST, GFNI_PRE, GFNI_T0, GFNI_T1, GFNI_T3, POST_CONST, PRE_CONST,
};
use core::arch::x86_64::*;

/// The CPU can run the AVX-512 GFNI path (AVX-512 F and BW, GFNI).
#[derive(Clone, Copy, Debug)]
pub(super) struct Avx512Gfni(Gfni);

/// The CPU can run the GFNI path (AVX2 and GFNI).
#[derive(Clone, Copy, Debug)]
pub(super) struct Gfni(());

/// The CPU can run the AES-NI path (AVX2 and AES-NI).
#[derive(Clone, Copy, Debug)]
pub(super) struct AesNi(());

/// The CPU can run the AES-NI path on 256-bit registers (AVX2, AES-NI and
/// VAES).
#[derive(Clone, Copy, Debug)]
pub(super) struct Vaes(());

impl Avx512Gfni {
    pub(super) fn detect() -> Option<Self> {
        let gfni = Gfni::detect()?;
        (std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw"))
            .then_some(Self(gfni))
    }

    pub(super) fn crypt32(self, rk: &[u32; 32], blocks: &mut [[u8; 16]; 32]) {
        // SAFETY: `self` exists only if AVX-512 F and BW and GFNI were detected.
        unsafe { crypt32_avx512(rk, blocks) }
    }

    pub(super) fn crypt64(self, rk: &[u32; 32], blocks: &mut [[u8; 16]; 64]) {
        // SAFETY: `self` exists only if AVX-512 F and BW and GFNI were detected.
        unsafe { crypt64_avx512(rk, blocks) }
    }

    /// The AVX2 GFNI path, for a single block and the key schedule.
    pub(super) fn avx2(self) -> Gfni {
        self.0
    }
}

impl Gfni {
    pub(super) fn detect() -> Option<Self> {
        (std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("gfni"))
            .then_some(Self(()))
    }
}

impl AesNi {
    pub(super) fn detect() -> Option<Self> {
        (std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("aes"))
            .then_some(Self(()))
    }
}

impl Vaes {
    pub(super) fn detect() -> Option<Self> {
        AesNi::detect()?;
        std::is_x86_feature_detected!("vaes").then_some(Self(()))
    }
}

/// Byte orders within a 32-bit lane (PSHUFB indices): the byte swap
/// (big-endian words), and the rotations left by 8, 16 and 24 bits.
const BSWAP: [i8; 4] = [3, 2, 1, 0];
const ROL8: [i8; 4] = [3, 0, 1, 2];
const ROL16: [i8; 4] = [2, 3, 0, 1];
const ROL24: [i8; 4] = [1, 2, 3, 0];

/// PSHUFB indices applying `order` to every 32-bit lane of an `N`-byte
/// register (PSHUFB indexes within each 128-bit lane); evaluated at compile
/// time, so a call only loads them.
const fn lane_indices<const N: usize>(order: [i8; 4]) -> [i8; N] {
    let mut idx = [0i8; N];
    let mut i = 0;
    while i < N {
        idx[i] = order[i % 4] + 4 * ((i % 16) / 4) as i8;
        i += 1;
    }
    idx
}

/// [`lane_indices`] in an AVX2 register.
#[inline]
#[target_feature(enable = "avx2")]
fn lane_shuffle(idx: &[i8; 32]) -> __m256i {
    // SAFETY: reads 32 bytes through a reference to 32 bytes.
    unsafe { _mm256_loadu_si256(idx.as_ptr().cast()) }
}

/// [`lane_indices`] in an AVX-512 register.
#[inline]
#[target_feature(enable = "avx512f")]
fn lane_shuffle512(idx: &[i8; 64]) -> __m512i {
    // SAFETY: reads 64 bytes through a reference to 64 bytes.
    unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) }
}

/// Constants of a round, loaded once per call.
struct Shuffles {
    bswap: __m256i,
    rol8: __m256i,
    rol16: __m256i,
    rol24: __m256i,
}

impl Shuffles {
    #[inline]
    #[target_feature(enable = "avx2")]
    fn new() -> Self {
        // Opaque to the optimiser, which would otherwise turn the rotation
        // by 16 into PSHUFLW and PSHUFHW: two shuffles where one does.
        core::hint::black_box(Self {
            bswap: lane_shuffle(&const { lane_indices(BSWAP) }),
            rol8: lane_shuffle(&const { lane_indices(ROL8) }),
            rol16: lane_shuffle(&const { lane_indices(ROL16) }),
            rol24: lane_shuffle(&const { lane_indices(ROL24) }),
        })
    }
}

/// 4x4 transposition of 32-bit words within each 128-bit half.
#[inline]
#[target_feature(enable = "avx2")]
fn transpose(r: [__m256i; 4]) -> [__m256i; 4] {
    let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
    let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
    let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    [
        _mm256_unpacklo_epi64(t0, t2),
        _mm256_unpackhi_epi64(t0, t2),
        _mm256_unpacklo_epi64(t1, t3),
        _mm256_unpackhi_epi64(t1, t3),
    ]
}

/// Loads blocks `k` and `k + 4` of a group of eight as words, transposed.
#[inline]
#[target_feature(enable = "avx2")]
fn load8(group: &[[u8; 16]], k: &Shuffles) -> [__m256i; 4] {
    let mut r = [_mm256_setzero_si256(); 4];
    for (j, reg) in r.iter_mut().enumerate() {
        // SAFETY: each block is 16 readable bytes; loadu has no alignment need.
        let (lo, hi) = unsafe {
            (
                _mm_loadu_si128(group[j].as_ptr().cast()),
                _mm_loadu_si128(group[j + 4].as_ptr().cast()),
            )
        };
        let both = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi);
        *reg = _mm256_shuffle_epi8(both, k.bswap);
    }
    transpose(r)
}

/// Stores the output words `(X35, X34, X33, X32)` of a group of eight.
#[inline]
#[target_feature(enable = "avx2")]
fn store8(x: [__m256i; 4], group: &mut [[u8; 16]], k: &Shuffles) {
    let r = transpose([x[3], x[2], x[1], x[0]]);
    for (j, reg) in r.iter().enumerate() {
        let v = _mm256_shuffle_epi8(*reg, k.bswap);
        // SAFETY: each block is 16 writable bytes; storeu has no alignment need.
        unsafe {
            _mm_storeu_si128(group[j].as_mut_ptr().cast(), _mm256_castsi256_si128(v));
            _mm_storeu_si128(
                group[j + 4].as_mut_ptr().cast(),
                _mm256_extracti128_si256::<1>(v),
            );
        }
    }
}

/// The 32 rounds on `$groups` groups of eight blocks, interleaved, with the
/// round kit `$kit` (a value with the methods `enter` and `leave`, the
/// words' stored form; `key`, a round key in every lane as that form needs
/// it; and `round`, the word a round XORs in, from the XOR of the other
/// three and the key). Each round key is mapped where it is used and no
/// code here stores one; the compiler may still spill a register holding
/// one to the stack when registers run short (the AES-NI kits, with more
/// tables, do), as any implementation that keeps keys in registers may. A
/// macro rather than a generic function so each expansion lives in one
/// function with its target features, where every helper inlines (and the
/// constant loops unroll into registers).
macro_rules! rounds {
    ($rk:expr, $blocks:expr, $kit:expr, $groups:literal) => {{
        let k = Shuffles::new();
        let kit = $kit;
        let mut x = [[_mm256_setzero_si256(); 4]; $groups];
        for (g, xg) in x.iter_mut().enumerate() {
            *xg = load8(&$blocks[8 * g..8 * g + 8], &k);
            for w in xg.iter_mut() {
                *w = kit.enter(*w);
            }
        }
        for four in $rk.chunks_exact(4) {
            // X[i+4] = X[i] ^ L(S(X[i+1] ^ X[i+2] ^ X[i+3] ^ rk[i])), two
            // rounds at a time: rounds i and i+1 share X[i+2] ^ X[i+3].
            for j in [0, 2] {
                let (r0, r1) = (kit.key(four[j]), kit.key(four[j + 1]));
                let mut pair = [_mm256_setzero_si256(); $groups];
                for (xg, p) in x.iter_mut().zip(pair.iter_mut()) {
                    *p = _mm256_xor_si256(xg[(j + 2) % 4], xg[(j + 3) % 4]);
                    let t = _mm256_xor_si256(_mm256_xor_si256(xg[j + 1], r0), *p);
                    xg[j] = _mm256_xor_si256(xg[j], kit.round(t, &k));
                }
                for (xg, p) in x.iter_mut().zip(pair.iter()) {
                    let t = _mm256_xor_si256(_mm256_xor_si256(xg[j], r1), *p);
                    xg[j + 1] = _mm256_xor_si256(xg[j + 1], kit.round(t, &k));
                }
            }
        }
        for (g, xg) in x.iter_mut().enumerate() {
            for w in xg.iter_mut() {
                *w = kit.leave(*w);
            }
            store8(*xg, &mut $blocks[8 * g..8 * g + 8], &k);
        }
    }};
}

/// The entry points of an AVX2 path whose rounds (and S-box, for `τ`) are
/// `$kit`'s, compiled with `$features` and reached through the detection
/// token `$token`: 32 blocks; one group of eight, the shortest path for a single block (CCM's
/// CBC-MAC), whose time is the rounds' latency; and `τ` on one word (the
/// key schedule: 32 S-box layers in sequence), in every lane of a register,
/// read back from the first.
macro_rules! avx2_path {
    ($token:ident, $features:literal, $needs:literal, $kit:ident,
     $crypt32:ident, $crypt8:ident, $tau:ident) => {
        impl $token {
            pub(super) fn crypt32(self, rk: &[u32; 32], blocks: &mut [[u8; 16]; 32]) {
                // SAFETY: `self` (the token) exists only if the CPU features
                // the function is compiled with were detected.
                unsafe { $crypt32(rk, blocks) }
            }

            pub(super) fn crypt8(self, rk: &[u32; 32], blocks: &mut [[u8; 16]; 8]) {
                // SAFETY: as in `crypt32`.
                unsafe { $crypt8(rk, blocks) }
            }

            pub(super) fn tau(self, word: u32) -> u32 {
                // SAFETY: as in `crypt32`.
                unsafe { $tau(word) }
            }
        }

        /// # Safety
        #[doc = concat!("The CPU must have ", $needs, ".")]
        #[target_feature(enable = $features)]
        unsafe fn $crypt32(rk: &[u32; 32], blocks: &mut [[u8; 16]; 32]) {
            rounds!(rk, blocks, $kit::new(), 4);
        }

        /// # Safety
        #[doc = concat!("The CPU must have ", $needs, ".")]
        #[target_feature(enable = $features)]
        unsafe fn $crypt8(rk: &[u32; 32], blocks: &mut [[u8; 16]; 8]) {
            rounds!(rk, blocks, $kit::new(), 1);
        }

        /// # Safety
        #[doc = concat!("The CPU must have ", $needs, ".")]
        #[target_feature(enable = $features)]
        unsafe fn $tau(word: u32) -> u32 {
            let s = $kit::new().sbox(_mm256_set1_epi32(word as i32));
            _mm256_cvtsi256_si32(s) as u32
        }
    };
}

// ---- GFNI ----

const PRE_IMM: i32 = PRE_CONST as i32;
const POST_IMM: i32 = POST_CONST as i32;

/// The GFNI rounds, on words kept in the image of `PRE`'s linear part
/// ([`super::consts`] derives the maps): the inversion's input is the XOR of
/// three words and the round key, and three inversions, each with its own
/// output map, give the terms of `L` whole bytes apart.
struct GfniRound {
    into: __m256i,
    out_of: __m256i,
    pre: __m256i,
    post: __m256i,
    t0: __m256i,
    t1: __m256i,
    t3: __m256i,
}

const T0_IMM: i32 = GFNI_T0.1 as i32;
const T1_IMM: i32 = GFNI_T1.1 as i32;
const T3_IMM: i32 = GFNI_T3.1 as i32;

impl GfniRound {
    #[inline]
    #[target_feature(enable = "avx2")]
    fn new() -> Self {
        let q = |m: u64| _mm256_set1_epi64x(m as i64);
        Self {
            into: q(GFNI_INTO),
            out_of: q(GFNI_OUT_OF),
            pre: q(GFNI_PRE),
            post: q(GFNI_POST),
            t0: q(GFNI_T0.0),
            t1: q(GFNI_T1.0),
            t3: q(GFNI_T3.0),
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,gfni")]
    fn enter(&self, w: __m256i) -> __m256i {
        _mm256_gf2p8affine_epi64_epi8::<0>(w, self.into)
    }

    #[inline]
    #[target_feature(enable = "avx2,gfni")]
    fn leave(&self, w: __m256i) -> __m256i {
        _mm256_gf2p8affine_epi64_epi8::<0>(w, self.out_of)
    }

    /// The S-box alone (the key schedule's), `POST(inv(PRE(x)))`:
    /// GF2P8AFFINEQB with `PRE`, then GF2P8AFFINEINVQB (AES's field
    /// inversion, then `POST`).
    #[inline]
    #[target_feature(enable = "avx2,gfni")]
    fn sbox(&self, x: __m256i) -> __m256i {
        let y = _mm256_gf2p8affine_epi64_epi8::<PRE_IMM>(x, self.pre);
        _mm256_gf2p8affineinv_epi64_epi8::<POST_IMM>(y, self.post)
    }

    /// A round key through `PRE` (with its constant), in every lane.
    #[inline]
    #[target_feature(enable = "avx2,gfni")]
    fn key(&self, rk: u32) -> __m256i {
        _mm256_gf2p8affine_epi64_epi8::<PRE_IMM>(_mm256_set1_epi32(rk as i32), self.pre)
    }

    #[inline]
    #[target_feature(enable = "avx2,gfni")]
    fn round(&self, y: __m256i, k: &Shuffles) -> __m256i {
        let t0 = _mm256_gf2p8affineinv_epi64_epi8::<T0_IMM>(y, self.t0);
        let t1 = _mm256_gf2p8affineinv_epi64_epi8::<T1_IMM>(y, self.t1);
        let t3 = _mm256_gf2p8affineinv_epi64_epi8::<T3_IMM>(y, self.t3);
        combine(t0, t1, t3, k)
    }
}

/// A folded round's output, `T0 ^ rol8(T1) ^ rol16(T1) ^ rol24(T3)`.
#[inline]
#[target_feature(enable = "avx2")]
fn combine(t0: __m256i, t1: __m256i, t3: __m256i, k: &Shuffles) -> __m256i {
    _mm256_xor_si256(
        _mm256_xor_si256(t0, _mm256_shuffle_epi8(t3, k.rol24)),
        _mm256_xor_si256(
            _mm256_shuffle_epi8(t1, k.rol8),
            _mm256_shuffle_epi8(t1, k.rol16),
        ),
    )
}

avx2_path!(
    Gfni,
    "avx2,gfni",
    "AVX2 and GFNI",
    GfniRound,
    crypt32_gfni,
    crypt8_gfni,
    tau_gfni
);

// ---- AES-NI ----

/// Pairs of 16-entry tables for [`affine`] and [`lookup`], each in both
/// 128-bit halves.
#[derive(Clone, Copy)]
struct Tables {
    lo: __m256i,
    hi: __m256i,
}

impl Tables {
    #[inline]
    #[target_feature(enable = "avx2")]
    fn new(t: &([u8; 16], [u8; 16])) -> Self {
        Self {
            lo: table(&t.0),
            hi: table(&t.1),
        }
    }
}

struct AesNiConsts {
    nibble: __m256i,
    pre: Tables,
    post: Tables,
    inv_shift_rows: __m256i,
}

#[inline]
#[target_feature(enable = "avx2")]
fn table(t: &[u8; 16]) -> __m256i {
    // SAFETY: reads 16 bytes from a reference to 16 bytes.
    _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(t.as_ptr().cast()) })
}

/// An affine map on 32 bytes by two 16-entry lookups (PSHUFB), on the low
/// and on the high nibbles: the tables are constants and the indices live
/// in registers, so nothing is loaded from an address that depends on data.
#[inline]
#[target_feature(enable = "avx2")]
fn affine(x: __m256i, t: Tables, nibble: __m256i) -> __m256i {
    let (l, h) = nibbles(x, nibble);
    lookup(l, h, t)
}

/// The low and the high nibbles of 32 bytes, as PSHUFB indices.
#[inline]
#[target_feature(enable = "avx2")]
fn nibbles(x: __m256i, nibble: __m256i) -> (__m256i, __m256i) {
    (
        _mm256_and_si256(x, nibble),
        _mm256_and_si256(_mm256_srli_epi16::<4>(x), nibble),
    )
}

#[inline]
#[target_feature(enable = "avx2")]
fn lookup(l: __m256i, h: __m256i, t: Tables) -> __m256i {
    _mm256_xor_si256(_mm256_shuffle_epi8(t.lo, l), _mm256_shuffle_epi8(t.hi, h))
}

/// AESENCLAST with a zero round key on each 128-bit half: SubBytes and
/// ShiftRows (which commute).
#[inline]
#[target_feature(enable = "avx2,aes")]
fn enclast_aesni(y: __m256i) -> __m256i {
    let zero = _mm_setzero_si128();
    let lo = _mm_aesenclast_si128(_mm256_castsi256_si128(y), zero);
    let hi = _mm_aesenclast_si128(_mm256_extracti128_si256::<1>(y), zero);
    _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi)
}

/// [`enclast_aesni`] as one 256-bit AESENCLAST (VAES), without the moves
/// between the halves.
#[inline]
#[target_feature(enable = "avx2,aes,vaes")]
fn enclast_vaes(y: __m256i) -> __m256i {
    _mm256_aesenclast_epi128(y, _mm256_setzero_si256())
}

/// The rounds of the AES-NI paths, on words in the GFNI rounds' stored
/// form ([`GfniRound`]): the inversion's input is the XOR of three words
/// and the key mapped by `PRE`, and the S-box's output map with `L`'s terms
/// is three table maps of AESENCLAST's output, sharing its nibbles
/// ([`super::consts`] derives the tables).
macro_rules! aesni_round {
    ($kit:ident, $features:literal, $enclast:ident) => {
        struct $kit {
            c: AesNiConsts,
            into: Tables,
            out_of: Tables,
            t0: Tables,
            t1: Tables,
            t3: Tables,
        }

        impl $kit {
            #[inline]
            #[target_feature(enable = "avx2")]
            fn new() -> Self {
                Self {
                    c: AesNiConsts::new(),
                    into: Tables::new(&AESNI_INTO),
                    out_of: Tables::new(&AESNI_OUT_OF),
                    t0: Tables::new(&AESNI_T0),
                    t1: Tables::new(&AESNI_T1),
                    t3: Tables::new(&AESNI_T3),
                }
            }

            /// The S-box alone (the key schedule's),
            /// `POST'(SubBytes(PRE(x)))`: the bytes are first moved by the
            /// inverse of ShiftRows, which AESENCLAST then undoes, and
            /// `POST'` undoes SubBytes' affine map.
            #[inline]
            #[target_feature(enable = $features)]
            fn sbox(&self, x: __m256i) -> __m256i {
                let c = &self.c;
                let y = _mm256_shuffle_epi8(affine(x, c.pre, c.nibble), c.inv_shift_rows);
                affine($enclast(y), c.post, c.nibble)
            }

            #[inline]
            #[target_feature(enable = "avx2")]
            fn enter(&self, w: __m256i) -> __m256i {
                affine(w, self.into, self.c.nibble)
            }

            #[inline]
            #[target_feature(enable = "avx2")]
            fn leave(&self, w: __m256i) -> __m256i {
                affine(w, self.out_of, self.c.nibble)
            }

            #[inline]
            #[target_feature(enable = "avx2")]
            fn key(&self, rk: u32) -> __m256i {
                affine(_mm256_set1_epi32(rk as i32), self.c.pre, self.c.nibble)
            }

            #[inline]
            #[target_feature(enable = $features)]
            fn round(&self, y: __m256i, k: &Shuffles) -> __m256i {
                let a = $enclast(_mm256_shuffle_epi8(y, self.c.inv_shift_rows));
                let (l, h) = nibbles(a, self.c.nibble);
                let t0 = lookup(l, h, self.t0);
                let t1 = lookup(l, h, self.t1);
                let t3 = lookup(l, h, self.t3);
                combine(t0, t1, t3, k)
            }
        }
    };
}

aesni_round!(AesNiRound, "avx2,aes", enclast_aesni);
aesni_round!(VaesRound, "avx2,aes,vaes", enclast_vaes);

avx2_path!(
    AesNi,
    "avx2,aes",
    "AVX2 and AES-NI",
    AesNiRound,
    crypt32_aesni,
    crypt8_aesni,
    tau_aesni
);

avx2_path!(
    Vaes,
    "avx2,aes,vaes",
    "AVX2, AES-NI and VAES",
    VaesRound,
    crypt32_vaes,
    crypt8_vaes,
    tau_vaes
);

impl AesNiConsts {
    #[inline]
    #[target_feature(enable = "avx2")]
    fn new() -> Self {
        // ShiftRows moves byte r + 4c to r + 4((c - r) mod 4); this is its
        // inverse.
        let mut isr = [0u8; 16];
        for (i, v) in isr.iter_mut().enumerate() {
            let (r, col) = (i % 4, i / 4);
            *v = (r + 4 * ((col + 4 - r) % 4)) as u8;
        }
        Self {
            nibble: _mm256_set1_epi8(0x0f),
            pre: Tables::new(&AESNI_PRE),
            post: Tables::new(&AESNI_POST),
            inv_shift_rows: table(&isr),
        }
    }
}

// ---- AVX-512 with GFNI ----

/// Loads 16 blocks as words, transposed: register `w` holds word `w` of
/// blocks `l`, `4 + l`, `8 + l` and `12 + l` in its 128-bit lane `l`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn load16(group: &[[u8; 16]], bswap: __m512i) -> [__m512i; 4] {
    let mut r = [_mm512_setzero_si512(); 4];
    for (j, reg) in r.iter_mut().enumerate() {
        let four = &group[4 * j..4 * j + 4];
        // SAFETY: four consecutive blocks are 64 readable bytes (a slice of
        // arrays is contiguous); loadu has no alignment need.
        let v = unsafe { _mm512_loadu_si512(four.as_ptr().cast()) };
        *reg = _mm512_shuffle_epi8(v, bswap);
    }
    transpose512(r)
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn store16(x: [__m512i; 4], group: &mut [[u8; 16]], bswap: __m512i) {
    let r = transpose512([x[3], x[2], x[1], x[0]]);
    for (j, reg) in r.iter().enumerate() {
        let four = &mut group[4 * j..4 * j + 4];
        let v = _mm512_shuffle_epi8(*reg, bswap);
        // SAFETY: four consecutive blocks are 64 writable bytes.
        unsafe { _mm512_storeu_si512(four.as_mut_ptr().cast(), v) };
    }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn transpose512(r: [__m512i; 4]) -> [__m512i; 4] {
    let t0 = _mm512_unpacklo_epi32(r[0], r[1]);
    let t1 = _mm512_unpackhi_epi32(r[0], r[1]);
    let t2 = _mm512_unpacklo_epi32(r[2], r[3]);
    let t3 = _mm512_unpackhi_epi32(r[2], r[3]);
    [
        _mm512_unpacklo_epi64(t0, t2),
        _mm512_unpackhi_epi64(t0, t2),
        _mm512_unpacklo_epi64(t1, t3),
        _mm512_unpackhi_epi64(t1, t3),
    ]
}

/// 32 blocks as two interleaved groups of 16 ([`crypt_avx512`]).
///
/// # Safety
/// The CPU must have AVX-512 F and BW, and GFNI.
#[target_feature(enable = "avx512f,avx512bw,gfni")]
unsafe fn crypt32_avx512(rk: &[u32; 32], blocks: &mut [[u8; 16]; 32]) {
    crypt_avx512::<2>(rk, blocks)
}

/// 64 blocks as four interleaved groups of 16 ([`crypt_avx512`]).
///
/// # Safety
/// The CPU must have AVX-512 F and BW, and GFNI.
#[target_feature(enable = "avx512f,avx512bw,gfni")]
unsafe fn crypt64_avx512(rk: &[u32; 32], blocks: &mut [[u8; 16]; 64]) {
    crypt_avx512::<4>(rk, blocks)
}

/// `G` groups of 16 blocks (`blocks` holds exactly 16·G) interleaved, one
/// 32-bit word of 16 blocks per register, kept in the image of `PRE`'s
/// linear part as on the AVX2 GFNI path ([`GfniRound`]): the XORs of three terms are VPTERNLOGD
/// and the whole-byte rotations of `L`'s terms VPSHUFB.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,gfni")]
fn crypt_avx512<const G: usize>(rk: &[u32; 32], blocks: &mut [[u8; 16]]) {
    let bswap = lane_shuffle512(&const { lane_indices(BSWAP) });
    let q = |m: u64| _mm512_set1_epi64(m as i64);
    let (into, out_of, pre) = (q(GFNI_INTO), q(GFNI_OUT_OF), q(GFNI_PRE));
    let (t0m, t1m, t3m) = (q(GFNI_T0.0), q(GFNI_T1.0), q(GFNI_T3.0));
    let (rot8, rot16, rot24) = core::hint::black_box((
        lane_shuffle512(&const { lane_indices(ROL8) }),
        lane_shuffle512(&const { lane_indices(ROL16) }),
        lane_shuffle512(&const { lane_indices(ROL24) }),
    ));
    // a ^ b ^ c as VPTERNLOGD's truth table.
    const XOR3: i32 = 0x96;
    let mut x = [[_mm512_setzero_si512(); 4]; G];
    let mut pair = [_mm512_setzero_si512(); G];
    for (g, xg) in x.iter_mut().enumerate() {
        *xg = load16(&blocks[16 * g..16 * g + 16], bswap);
        for w in xg.iter_mut() {
            *w = _mm512_gf2p8affine_epi64_epi8::<0>(*w, into);
        }
    }
    for four in rk.chunks_exact(4) {
        // Two rounds at a time, as on AVX2 (`rounds!`).
        for j in 0..4 {
            // The round key through `PRE` (with its constant).
            let r =
                _mm512_gf2p8affine_epi64_epi8::<PRE_IMM>(_mm512_set1_epi32(four[j] as i32), pre);
            for (xg, p) in x.iter_mut().zip(pair.iter_mut()) {
                let y = if j % 2 == 0 {
                    *p = _mm512_xor_si512(xg[(j + 2) % 4], xg[(j + 3) % 4]);
                    _mm512_ternarylogic_epi32::<XOR3>(xg[j + 1], *p, r)
                } else {
                    _mm512_ternarylogic_epi32::<XOR3>(xg[(j + 3) % 4], *p, r)
                };
                let t0 = _mm512_gf2p8affineinv_epi64_epi8::<T0_IMM>(y, t0m);
                let t1 = _mm512_gf2p8affineinv_epi64_epi8::<T1_IMM>(y, t1m);
                let t3 = _mm512_gf2p8affineinv_epi64_epi8::<T3_IMM>(y, t3m);
                let l =
                    _mm512_ternarylogic_epi32::<XOR3>(xg[j], t0, _mm512_shuffle_epi8(t3, rot24));
                xg[j] = _mm512_ternarylogic_epi32::<XOR3>(
                    l,
                    _mm512_shuffle_epi8(t1, rot8),
                    _mm512_shuffle_epi8(t1, rot16),
                );
            }
        }
    }
    for (g, xg) in x.iter_mut().enumerate() {
        for w in xg.iter_mut() {
            *w = _mm512_gf2p8affine_epi64_epi8::<0>(*w, out_of);
        }
        store16(*xg, &mut blocks[16 * g..16 * g + 16], bswap);
    }
}
