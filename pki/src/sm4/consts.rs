//! SM4's constants (GB/T 32907-2016) and the affine maps that let an AES
//! inversion compute its S-box, derived here by `const fn` rather than
//! pasted as magic numbers.
//!
//! SM4's S-box is an inversion in GF(2^8) between two affine maps (Liu, Ji,
//! Hu, Wu, "Analysis of the SM4 block cipher S-box", 2007):
//!
//! ```text
//! S(x) = A · inv_F(A · x ⊕ C) ⊕ C,   F = GF(2)[z] / (z^8+z^7+z^6+z^5+z^4+z^2+1)
//! ```
//!
//! with `A` the circulant matrix whose row `i` is `0xA7` rotated left by `i`
//! (bit `j` of a row is the coefficient of input bit `j`, bit 0 the least
//! significant) and `C = 0xD3`. Every field of 256 elements is isomorphic to
//! every other: with `φ` the linear map sending `z` to a root of SM4's
//! polynomial in AES's field (mod `x^8+x^4+x^3+x+1`),
//! `inv_F(y) = φ⁻¹(inv_AES(φ(y)))`, so
//!
//! ```text
//! S(x) = POST(inv_AES(PRE(x))),  PRE = φ·A ⊕ φ(C),  POST = A·φ⁻¹ ⊕ C
//! ```
//!
//! which GFNI computes in two instructions (an affine map, then an inversion
//! with an affine map; the rounds fold in more, see [`GFNI_T0`] and
//! [`AESNI_T0`]) and AES-NI
//! in one AESENCLAST between two 4-bit table lookups (its SubBytes adds
//! AES's own affine map, undone in `POST`). The unit tests check each form
//! against the S-box table for all 256 inputs; the table itself is only in
//! the tests.

/// SM4's field polynomial (`z^8+z^7+z^6+z^5+z^4+z^2+1`).
pub(crate) const SM4_POLY: u16 = 0x1F5;
/// AES's field polynomial (`x^8+x^4+x^3+x+1`).
const AES_POLY: u16 = 0x11B;

/// A GF(2)-linear map on bytes as 8 rows: output bit `i` is the parity of
/// `rows[i] & x`.
pub(crate) type Matrix = [u8; 8];

/// SM4's `A`.
pub(crate) const A: Matrix = circulant(0xA7);
/// SM4's `C`.
pub(crate) const C: u8 = 0xD3;
/// AES's SubBytes affine map: row `i` is `0xF1` rotated left by `i`, plus 0x63.
const AES_AFFINE: Matrix = circulant(0xF1);
const AES_CONST: u8 = 0x63;

/// The system parameter FK and the constant keys CK of the key schedule.
pub(crate) const FK: [u32; 4] = [0xa3b1bac6, 0x56aa3350, 0x677d9197, 0xb27022dc];
pub(crate) const CK: [u32; 32] = ck();

/// `CK[i]` byte `j` is `(4i + j) · 7 mod 256` (GB/T 32907 §7.3).
const fn ck() -> [u32; 32] {
    let mut ck = [0u32; 32];
    let mut i = 0;
    while i < 32 {
        let mut word = 0u32;
        let mut j = 0;
        while j < 4 {
            let byte = (((4 * i + j) * 7) % 256) as u32;
            word = (word << 8) | byte;
            j += 1;
        }
        ck[i] = word;
        i += 1;
    }
    ck
}

const fn circulant(row0: u8) -> Matrix {
    let mut m = [0u8; 8];
    let mut i = 0;
    while i < 8 {
        m[i] = row0.rotate_left(i as u32);
        i += 1;
    }
    m
}

pub(crate) const fn gf_mul(mut a: u8, mut b: u8, poly: u16) -> u8 {
    let mut r = 0u8;
    while b != 0 {
        if b & 1 == 1 {
            r ^= a;
        }
        b >>= 1;
        let carry = a & 0x80 != 0;
        a <<= 1;
        if carry {
            a ^= (poly & 0xff) as u8;
        }
    }
    r
}

pub(crate) const fn apply(m: &Matrix, x: u8) -> u8 {
    let mut out = 0u8;
    let mut i = 0;
    while i < 8 {
        out |= (((m[i] & x).count_ones() & 1) as u8) << i;
        i += 1;
    }
    out
}

/// `a · b`: `b` first, then `a`.
const fn mul(a: &Matrix, b: &Matrix) -> Matrix {
    // Column j of the product is a(b(e_j)).
    let mut cols = [0u8; 8];
    let mut j = 0;
    while j < 8 {
        cols[j] = apply(a, apply(b, 1 << j));
        j += 1;
    }
    from_columns(&cols)
}

/// The matrix whose column `j` (the image of bit `j`) is `cols[j]`.
pub(crate) const fn from_columns(cols: &[u8; 8]) -> Matrix {
    let mut m = [0u8; 8];
    let mut i = 0;
    while i < 8 {
        let mut j = 0;
        while j < 8 {
            m[i] |= ((cols[j] >> i) & 1) << j;
            j += 1;
        }
        i += 1;
    }
    m
}

/// Gauss-Jordan elimination over GF(2); the maps inverted here are
/// bijections, and a compile-time panic says otherwise.
const fn inverse(m: &Matrix) -> Matrix {
    let mut a = *m;
    let mut inv = circulant(0x01);
    let mut col = 0;
    while col < 8 {
        let mut pivot = col;
        while pivot < 8 && (a[pivot] >> col) & 1 == 0 {
            pivot += 1;
        }
        assert!(pivot < 8, "singular matrix");
        let (t, u) = (a[col], inv[col]);
        a[col] = a[pivot];
        inv[col] = inv[pivot];
        a[pivot] = t;
        inv[pivot] = u;
        let mut row = 0;
        while row < 8 {
            if row != col && (a[row] >> col) & 1 == 1 {
                a[row] ^= a[col];
                inv[row] ^= inv[col];
            }
            row += 1;
        }
        col += 1;
    }
    inv
}

/// `φ`: SM4's field to AES's, `z` to the smallest root of SM4's polynomial.
const fn isomorphism() -> Matrix {
    let mut beta = 2u16;
    while beta < 256 {
        // Evaluate SM4's polynomial at beta in AES's field.
        let mut value = 0u8;
        let mut power = 1u8;
        let mut k = 0;
        while k < 9 {
            if (SM4_POLY >> k) & 1 == 1 {
                value ^= power;
            }
            power = gf_mul(power, beta as u8, AES_POLY);
            k += 1;
        }
        if value == 0 {
            let mut cols = [0u8; 8];
            let mut p = 1u8;
            let mut j = 0;
            while j < 8 {
                cols[j] = p;
                p = gf_mul(p, beta as u8, AES_POLY);
                j += 1;
            }
            return from_columns(&cols);
        }
        beta += 1;
    }
    panic!("SM4's polynomial has no root in AES's field")
}

const PHI: Matrix = isomorphism();
const PHI_INV: Matrix = inverse(&PHI);

/// `PRE`: into AES's field, before the inversion.
pub(crate) const PRE: Matrix = mul(&PHI, &A);
pub(crate) const PRE_CONST: u8 = apply(&PHI, C);
/// `POST`: back from AES's field, after the inversion.
pub(crate) const POST: Matrix = mul(&A, &PHI_INV);
pub(crate) const POST_CONST: u8 = C;
/// `POST` after AESENCLAST: SubBytes' affine map undone first.
const POST_AESNI: Matrix = mul(&POST, &inverse(&AES_AFFINE));
const POST_AESNI_CONST: u8 = apply(&POST_AESNI, AES_CONST) ^ POST_CONST;

/// A matrix as GF2P8AFFINEQB takes it: output bit `i` from byte `7 - i` of
/// the quadword.
pub(crate) const fn gfni_matrix(m: &Matrix) -> u64 {
    let mut q = 0u64;
    let mut i = 0;
    while i < 8 {
        q |= (m[i] as u64) << (8 * (7 - i));
        i += 1;
    }
    q
}

pub(crate) const GFNI_PRE: u64 = gfni_matrix(&PRE);
pub(crate) const GFNI_POST: u64 = gfni_matrix(&POST);

/// The vector paths' rounds keep each state word in `PRE`'s linear part's
/// image (`P`, per byte): then `P·(x1 ⊕ x2 ⊕ x3 ⊕ rk) ⊕ PRE_CONST`, the
/// inversion's input, is the XOR of the stored words and a round key mapped
/// once by `PRE`, and the `PRE` map leaves the round.
///
/// SM4's `L` folds into the inversion's output map too. With the bytes of a
/// native-order word numbered from the least significant, `rol(s, 2)` is
/// `SHL2·s_i ⊕ SHR6·s_{i-1}` in byte `i` (`SHL2` and `SHR6` the byte maps
/// `b << 2` and `b >> 6`), so
///
/// ```text
/// L(s) = C0·s ⊕ rol8(C1·s) ⊕ rol16(C1·s) ⊕ rol24(C3·s),
/// C0 = I ⊕ SHL2,  C1 = SHL2 ⊕ SHR6,  C3 = I ⊕ SHR6
/// ```
///
/// (rotations by whole bytes of per-byte maps). The round's output in the
/// stored form is `P·L(POST(inv(y)))`, and since `P` acts on each byte
/// alike, that is `T0 ⊕ rol8(T1) ⊕ rol16(T1) ⊕ rol24(T3)` with
/// `Tk = (P·Ck·POST)·inv(y) ⊕ P·Ck·POST_CONST`: with GFNI, three
/// GF2P8AFFINEINVQB and three byte shuffles, no shifts and no separate
/// `PRE`; with AES-NI, three table maps of AESENCLAST's output
/// ([`AESNI_T0`]).
const SHL2: Matrix = shift_map(2);
const SHR6: Matrix = shift_map(-6);
const IDENTITY: Matrix = circulant(0x01);
const P_LINEAR: Matrix = PRE;
const P_INV: Matrix = inverse(&P_LINEAR);
const C0: Matrix = xor(&IDENTITY, &SHL2);
const C1: Matrix = xor(&SHL2, &SHR6);
const C3: Matrix = xor(&IDENTITY, &SHR6);

/// The byte map `b << by` (`b >> -by` when negative).
const fn shift_map(by: i32) -> Matrix {
    let mut cols = [0u8; 8];
    let mut j = 0usize;
    while j < 8 {
        let to = j as i32 + by;
        if to >= 0 && to < 8 {
            cols[j] = 1 << to;
        }
        j += 1;
    }
    from_columns(&cols)
}

const fn xor(a: &Matrix, b: &Matrix) -> Matrix {
    let mut m = [0u8; 8];
    let mut i = 0;
    while i < 8 {
        m[i] = a[i] ^ b[i];
        i += 1;
    }
    m
}

/// `P·Ck` after an output map: the map `P·Ck·post` and its constant
/// `P·Ck·post_const`.
const fn fold(ck: &Matrix, post: &Matrix, post_const: u8) -> (Matrix, u8) {
    let pc = mul(&P_LINEAR, ck);
    (mul(&pc, post), apply(&pc, post_const))
}

/// `P·Ck·POST` as GF2P8AFFINEINVQB's matrix and constant.
const fn round_term(ck: &Matrix) -> (u64, u8) {
    let (m, c) = fold(ck, &POST, POST_CONST);
    (gfni_matrix(&m), c)
}

/// Into and out of the stored form (constant 0).
pub(crate) const GFNI_INTO: u64 = gfni_matrix(&P_LINEAR);
pub(crate) const GFNI_OUT_OF: u64 = gfni_matrix(&P_INV);
pub(crate) const GFNI_T0: (u64, u8) = round_term(&C0);
pub(crate) const GFNI_T1: (u64, u8) = round_term(&C1);
pub(crate) const GFNI_T3: (u64, u8) = round_term(&C3);

/// An affine map as two 16-entry PSHUFB tables, on the low and the high
/// nibble: `f(x) = lo[x & 15] ^ hi[x >> 4]` (the constant goes into `lo`
/// alone, as the two lookups are XORed).
const fn nibble_tables(m: &Matrix, constant: u8) -> ([u8; 16], [u8; 16]) {
    let mut lo = [0u8; 16];
    let mut hi = [0u8; 16];
    let mut n = 0;
    while n < 16 {
        lo[n] = apply(m, n as u8) ^ constant;
        hi[n] = apply(m, (n as u8) << 4);
        n += 1;
    }
    (lo, hi)
}

pub(crate) const AESNI_PRE: ([u8; 16], [u8; 16]) = nibble_tables(&PRE, PRE_CONST);
pub(crate) const AESNI_POST: ([u8; 16], [u8; 16]) = nibble_tables(&POST_AESNI, POST_AESNI_CONST);

/// The AES-NI paths' round terms in the same stored form as the GFNI ones
/// ([`GFNI_T0`]): `Tk = (P·Ck·POST_AESNI)·a ⊕ P·Ck·POST_AESNI_CONST` of
/// AESENCLAST's output `a`, as nibble tables. The round key goes through
/// [`AESNI_PRE`].
const fn aesni_round_term(ck: &Matrix) -> ([u8; 16], [u8; 16]) {
    let (m, c) = fold(ck, &POST_AESNI, POST_AESNI_CONST);
    nibble_tables(&m, c)
}

/// Into and out of the stored form on the AES-NI paths (constant 0).
pub(crate) const AESNI_INTO: ([u8; 16], [u8; 16]) = nibble_tables(&P_LINEAR, 0);
pub(crate) const AESNI_OUT_OF: ([u8; 16], [u8; 16]) = nibble_tables(&P_INV, 0);
pub(crate) const AESNI_T0: ([u8; 16], [u8; 16]) = aesni_round_term(&C0);
pub(crate) const AESNI_T1: ([u8; 16], [u8; 16]) = aesni_round_term(&C1);
pub(crate) const AESNI_T3: ([u8; 16], [u8; 16]) = aesni_round_term(&C3);

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// GB/T 32907-2016's S-box table, for the checks only.
    pub(crate) const SBOX: [u8; 256] = [
        0xd6, 0x90, 0xe9, 0xfe, 0xcc, 0xe1, 0x3d, 0xb7, 0x16, 0xb6, 0x14, 0xc2, 0x28, 0xfb, 0x2c,
        0x05, 0x2b, 0x67, 0x9a, 0x76, 0x2a, 0xbe, 0x04, 0xc3, 0xaa, 0x44, 0x13, 0x26, 0x49, 0x86,
        0x06, 0x99, 0x9c, 0x42, 0x50, 0xf4, 0x91, 0xef, 0x98, 0x7a, 0x33, 0x54, 0x0b, 0x43, 0xed,
        0xcf, 0xac, 0x62, 0xe4, 0xb3, 0x1c, 0xa9, 0xc9, 0x08, 0xe8, 0x95, 0x80, 0xdf, 0x94, 0xfa,
        0x75, 0x8f, 0x3f, 0xa6, 0x47, 0x07, 0xa7, 0xfc, 0xf3, 0x73, 0x17, 0xba, 0x83, 0x59, 0x3c,
        0x19, 0xe6, 0x85, 0x4f, 0xa8, 0x68, 0x6b, 0x81, 0xb2, 0x71, 0x64, 0xda, 0x8b, 0xf8, 0xeb,
        0x0f, 0x4b, 0x70, 0x56, 0x9d, 0x35, 0x1e, 0x24, 0x0e, 0x5e, 0x63, 0x58, 0xd1, 0xa2, 0x25,
        0x22, 0x7c, 0x3b, 0x01, 0x21, 0x78, 0x87, 0xd4, 0x00, 0x46, 0x57, 0x9f, 0xd3, 0x27, 0x52,
        0x4c, 0x36, 0x02, 0xe7, 0xa0, 0xc4, 0xc8, 0x9e, 0xea, 0xbf, 0x8a, 0xd2, 0x40, 0xc7, 0x38,
        0xb5, 0xa3, 0xf7, 0xf2, 0xce, 0xf9, 0x61, 0x15, 0xa1, 0xe0, 0xae, 0x5d, 0xa4, 0x9b, 0x34,
        0x1a, 0x55, 0xad, 0x93, 0x32, 0x30, 0xf5, 0x8c, 0xb1, 0xe3, 0x1d, 0xf6, 0xe2, 0x2e, 0x82,
        0x66, 0xca, 0x60, 0xc0, 0x29, 0x23, 0xab, 0x0d, 0x53, 0x4e, 0x6f, 0xd5, 0xdb, 0x37, 0x45,
        0xde, 0xfd, 0x8e, 0x2f, 0x03, 0xff, 0x6a, 0x72, 0x6d, 0x6c, 0x5b, 0x51, 0x8d, 0x1b, 0xaf,
        0x92, 0xbb, 0xdd, 0xbc, 0x7f, 0x11, 0xd9, 0x5c, 0x41, 0x1f, 0x10, 0x5a, 0xd8, 0x0a, 0xc1,
        0x31, 0x88, 0xa5, 0xcd, 0x7b, 0xbd, 0x2d, 0x74, 0xd0, 0x12, 0xb8, 0xe5, 0xb4, 0xb0, 0x89,
        0x69, 0x97, 0x4a, 0x0c, 0x96, 0x77, 0x7e, 0x65, 0xb9, 0xf1, 0x09, 0xc5, 0x6e, 0xc6, 0x84,
        0x18, 0xf0, 0x7d, 0xec, 0x3a, 0xdc, 0x4d, 0x20, 0x79, 0xee, 0x5f, 0x3e, 0xd7, 0xcb, 0x39,
        0x48,
    ];

    fn inv(x: u8, poly: u16) -> u8 {
        (0..=255u8).find(|&y| gf_mul(x, y, poly) == 1).unwrap_or(0)
    }

    /// GF2P8AFFINEQB's definition (Intel SDM), on one byte.
    fn gfni_affine(x: u8, q: u64, b: u8) -> u8 {
        let mut out = 0u8;
        for i in 0..8 {
            let row = (q >> (8 * (7 - i))) as u8;
            out |= (((row & x).count_ones() & 1) as u8) << i;
        }
        out ^ b
    }

    /// AES's S-box from its definition.
    fn aes_sbox(x: u8) -> u8 {
        apply(&AES_AFFINE, inv(x, AES_POLY)) ^ AES_CONST
    }

    #[test]
    fn the_sm4_field_form_is_the_table() {
        for x in 0..=255u8 {
            let s = apply(&A, inv(apply(&A, x) ^ C, SM4_POLY)) ^ C;
            assert_eq!(s, SBOX[usize::from(x)], "x = {x:#04x}");
        }
    }

    #[test]
    fn aes_sbox_definition_matches_fips197() {
        assert_eq!(aes_sbox(0x00), 0x63);
        assert_eq!(aes_sbox(0x01), 0x7c);
        assert_eq!(aes_sbox(0x53), 0xed);
    }

    #[test]
    fn the_gfni_form_is_the_table() {
        for x in 0..=255u8 {
            let y = gfni_affine(x, GFNI_PRE, PRE_CONST);
            let s = gfni_affine(inv(y, AES_POLY), GFNI_POST, POST_CONST);
            assert_eq!(s, SBOX[usize::from(x)], "x = {x:#04x}");
        }
    }

    #[test]
    fn the_aesni_form_is_the_table() {
        for x in 0..=255u8 {
            let s = nib(&AESNI_POST, aes_sbox(nib(&AESNI_PRE, x)));
            assert_eq!(s, SBOX[usize::from(x)], "x = {x:#04x}");
        }
    }

    /// SM4's `L` on a native-order word.
    fn linear(s: u32) -> u32 {
        s ^ s.rotate_left(2) ^ s.rotate_left(10) ^ s.rotate_left(18) ^ s.rotate_left(24)
    }

    fn bytewise(w: u32, f: impl Fn(u8) -> u8) -> u32 {
        u32::from_le_bytes(w.to_le_bytes().map(f))
    }

    fn nib(t: &([u8; 16], [u8; 16]), x: u8) -> u8 {
        t.0[usize::from(x & 15)] ^ t.1[usize::from(x >> 4)]
    }

    /// A folded round as the intrinsics compute it (stored form in, stored
    /// form out), against `P·L(S(x1 ⊕ x2 ⊕ x3 ⊕ rk))` from the table, for
    /// every byte value in every position and 20,000 random words. Per
    /// byte: `into` and `out_of` the stored form, `key` the round key's map,
    /// `core` the step between (AES's inversion, or its S-box), `terms` the
    /// maps giving T0, T1 and T3.
    fn check_folded_round(
        into: impl Fn(u8) -> u8,
        out_of: impl Fn(u8) -> u8,
        key: impl Fn(u8) -> u8,
        core: impl Fn(u8) -> u8,
        terms: [&dyn Fn(u8) -> u8; 3],
    ) {
        let into = |w: u32| bytewise(w, &into);
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng as u32
        };
        let random: Vec<u32> = (0..20_000).map(|_| next()).collect();
        for t in (0..=255u32).map(|b| b * 0x0101_0101).chain(random) {
            let (x1, x2, rk) = (next(), next(), next());
            let x3 = t ^ x1 ^ x2 ^ rk;
            let expect = into(linear(bytewise(t, |b| SBOX[usize::from(b)])));
            let y = into(x1) ^ into(x2) ^ into(x3) ^ bytewise(rk, &key);
            let a = bytewise(y, &core);
            let [t0, t1, t3] = terms.map(|f| bytewise(a, f));
            let got = t0 ^ t1.rotate_left(8) ^ t1.rotate_left(16) ^ t3.rotate_left(24);
            assert_eq!(got, expect, "t = {t:#010x}");
            assert_eq!(bytewise(into(t), &out_of), t);
        }
    }

    #[test]
    fn the_folded_gfni_round_is_l_of_the_table() {
        let term = |(q, c): (u64, u8)| move |b: u8| gfni_affine(b, q, c);
        check_folded_round(
            |b| gfni_affine(b, GFNI_INTO, 0),
            |b| gfni_affine(b, GFNI_OUT_OF, 0),
            |b| gfni_affine(b, GFNI_PRE, PRE_CONST),
            |b| inv(b, AES_POLY),
            [&term(GFNI_T0), &term(GFNI_T1), &term(GFNI_T3)],
        );
    }

    #[test]
    fn the_folded_aesni_round_is_l_of_the_table() {
        let term = |t| move |b: u8| nib(&t, b);
        check_folded_round(
            |b| nib(&AESNI_INTO, b),
            |b| nib(&AESNI_OUT_OF, b),
            |b| nib(&AESNI_PRE, b),
            aes_sbox,
            [&term(AESNI_T0), &term(AESNI_T1), &term(AESNI_T3)],
        );
    }

    #[test]
    fn inverse_inverts() {
        let i = mul(&PHI, &PHI_INV);
        assert_eq!(i, circulant(1));
        assert_eq!(mul(&A, &inverse(&A)), circulant(1));
    }

    #[test]
    fn ck_is_the_standards_table() {
        assert_eq!(CK[0], 0x00070e15);
        assert_eq!(CK[9], 0xfc030a11);
        assert_eq!(CK[31], 0x646b7279);
    }
}
