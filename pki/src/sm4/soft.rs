//! The portable path: SM4 in constant time without a table.
//!
//! The S-box is computed, not looked up: the 64 bytes of a round's 16 blocks
//! are bitsliced into eight `u64` planes (plane `i` holds bit `i` of every
//! byte), and the S-box is SM4's own algebraic form,
//! `S(x) = A · inv(A · x ⊕ C) ⊕ C` in SM4's field, with the inversion as
//! `y^254` (four multiplications; the squarings are linear maps). Every
//! operation is an AND, XOR or shift of whole words, whatever the data: no
//! index and no branch depends on a key or a block. It is the slowest path
//! (tens of MB/s) and the one every CPU has; the x86 paths compute the same
//! S-box in vector registers.

use super::consts::{self, Matrix, A, C, SM4_POLY};

type Planes = [u64; 8];

/// A linear map on bitsliced bytes: plane `i` of the result is the XOR of the
/// input planes the matrix's row `i` names. The matrices are constants, so
/// the branches are on public data only.
#[inline(always)]
fn linear(m: &Matrix, x: &Planes) -> Planes {
    let mut out = [0u64; 8];
    for (i, o) in out.iter_mut().enumerate() {
        for (j, plane) in x.iter().enumerate() {
            if (m[i] >> j) & 1 == 1 {
                *o ^= plane;
            }
        }
    }
    out
}

/// `x ↦ x^(2^k)` in SM4's field, a linear map.
const fn frobenius(k: u32) -> Matrix {
    let mut cols = [0u8; 8];
    let mut j = 0;
    while j < 8 {
        let mut v = 1u8 << j;
        let mut n = 0;
        while n < k {
            v = consts::gf_mul(v, v, SM4_POLY);
            n += 1;
        }
        cols[j] = v;
        j += 1;
    }
    consts::from_columns(&cols)
}

const SQUARE: Matrix = frobenius(1);
const SQUARE2: Matrix = frobenius(2);
const SQUARE4: Matrix = frobenius(4);

/// Multiplication in SM4's field on bitsliced bytes: the schoolbook product
/// of degree 14, then `z^8 = z^7 + z^6 + z^5 + z^4 + z^2 + 1` folds the high
/// planes down, highest first.
#[inline(always)]
fn mul(a: &Planes, b: &Planes) -> Planes {
    let mut p = [0u64; 15];
    for i in 0..8 {
        for j in 0..8 {
            p[i + j] ^= a[i] & b[j];
        }
    }
    for k in (8..15).rev() {
        let high = p[k];
        for bit in 0..8 {
            if (SM4_POLY >> bit) & 1 == 1 {
                p[k - 8 + bit] ^= high;
            }
        }
    }
    let mut out = [0u64; 8];
    out.copy_from_slice(&p[..8]);
    out
}

/// The S-box on 64 bitsliced bytes.
#[inline(always)]
fn sbox(x: &Planes) -> Planes {
    let mut y = linear(&A, x);
    for (i, plane) in y.iter_mut().enumerate() {
        if (C >> i) & 1 == 1 {
            *plane = !*plane;
        }
    }
    // y^254 = y^-1 (0 maps to 0): y^2, y^3, y^12, y^15, y^240, y^252, y^254.
    let y2 = linear(&SQUARE, &y);
    let y3 = mul(&y2, &y);
    let y12 = linear(&SQUARE2, &y3);
    let y15 = mul(&y12, &y3);
    let y240 = linear(&SQUARE4, &y15);
    let y252 = mul(&y240, &y12);
    let inv = mul(&y252, &y2);
    let mut out = linear(&A, &inv);
    for (i, plane) in out.iter_mut().enumerate() {
        if (C >> i) & 1 == 1 {
            *plane = !*plane;
        }
    }
    out
}

/// Transposes the 8x8 bit matrix in `x` (byte `r`, bit `c` to byte `c`,
/// bit `r`).
#[inline(always)]
fn transpose_bits(mut x: u64) -> u64 {
    let t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x ^= t ^ (t << 7);
    let t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x ^= t ^ (t << 14);
    let t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^= t ^ (t << 28);
    x
}

/// Transposes the 8x8 byte matrix in `w` (word `r`, byte `c` to word `c`,
/// byte `r`).
#[inline(always)]
fn transpose_bytes(w: &mut [u64; 8]) {
    for (shift, mask, step) in [
        (32, 0x0000_0000_FFFF_FFFFu64, 4),
        (16, 0x0000_FFFF_0000_FFFF, 2),
        (8, 0x00FF_00FF_00FF_00FF, 1),
    ] {
        for r in 0..8 {
            if r & step == 0 {
                let t = ((w[r] >> shift) ^ w[r + step]) & mask;
                w[r + step] ^= t;
                w[r] ^= t << shift;
            }
        }
    }
}

/// 64 bytes (16 words) to planes; the layout only has to be undone by
/// [`from_planes`], as the S-box works on each byte alone.
#[inline(always)]
fn to_planes(words: &[u32; 16]) -> Planes {
    let mut w = [0u64; 8];
    for (i, x) in w.iter_mut().enumerate() {
        *x = transpose_bits(u64::from(words[2 * i]) | (u64::from(words[2 * i + 1]) << 32));
    }
    transpose_bytes(&mut w);
    w
}

#[inline(always)]
fn from_planes(mut w: Planes) -> [u32; 16] {
    transpose_bytes(&mut w);
    let mut words = [0u32; 16];
    for (i, x) in w.iter().enumerate() {
        let x = transpose_bits(*x);
        words[2 * i] = x as u32;
        words[2 * i + 1] = (x >> 32) as u32;
    }
    words
}

/// `τ` on 16 words at once.
#[inline(always)]
fn tau16(words: &[u32; 16]) -> [u32; 16] {
    from_planes(sbox(&to_planes(words)))
}

/// `τ` on one word (the key schedule).
pub(super) fn tau(word: u32) -> u32 {
    let mut words = [0u32; 16];
    words[0] = word;
    tau16(&words)[0]
}

#[inline(always)]
fn l(b: u32) -> u32 {
    b ^ b.rotate_left(2) ^ b.rotate_left(10) ^ b.rotate_left(18) ^ b.rotate_left(24)
}

/// Encrypts (with the encryption round keys) or decrypts (with them
/// reversed) up to 16 blocks in place, all in the same bitsliced pass.
pub(super) fn crypt16(rk: &[u32; 32], blocks: &mut [[u8; 16]]) {
    debug_assert!(blocks.len() <= 16);
    let mut x = [[0u32; 16]; 4];
    for (b, block) in blocks.iter().enumerate() {
        for (w, word) in x.iter_mut().enumerate() {
            let bytes = [
                block[4 * w],
                block[4 * w + 1],
                block[4 * w + 2],
                block[4 * w + 3],
            ];
            word[b] = u32::from_be_bytes(bytes);
        }
    }
    for (i, k) in rk.iter().enumerate() {
        let [a, b, c, d] = [i % 4, (i + 1) % 4, (i + 2) % 4, (i + 3) % 4];
        let mut t = [0u32; 16];
        for (lane, v) in t.iter_mut().enumerate() {
            *v = x[b][lane] ^ x[c][lane] ^ x[d][lane] ^ k;
        }
        let s = tau16(&t);
        for (lane, v) in s.iter().enumerate() {
            x[a][lane] ^= l(*v);
        }
    }
    for (b, block) in blocks.iter_mut().enumerate() {
        for w in 0..4 {
            block[4 * w..4 * w + 4].copy_from_slice(&x[3 - w][b].to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::consts::tests::SBOX;
    use super::*;

    #[test]
    fn bitsliced_sbox_is_the_table() {
        // Four passes of 64 bytes: every input, in every lane position.
        for shift in 0..4u32 {
            let mut words = [0u32; 16];
            let mut expect = [0u32; 16];
            for (n, w) in words.iter_mut().enumerate() {
                let mut bytes = [0u8; 4];
                for (k, b) in bytes.iter_mut().enumerate() {
                    *b = ((n * 4 + k) as u8).wrapping_add((shift * 64) as u8);
                }
                *w = u32::from_le_bytes(bytes);
                expect[n] = u32::from_le_bytes(bytes.map(|b| SBOX[usize::from(b)]));
            }
            assert_eq!(tau16(&words), expect);
        }
    }

    #[test]
    fn planes_round_trip() {
        let mut words = [0u32; 16];
        for (i, w) in words.iter_mut().enumerate() {
            *w = 0x9E37_79B9u32.wrapping_mul(i as u32 + 1);
        }
        assert_eq!(from_planes(to_planes(&words)), words);
    }
}
