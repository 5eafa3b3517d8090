//! The SM2 curve's field and points for verification: variable time (every
//! input is public), 64-bit limbs, Montgomery multiplication, Jacobian
//! coordinates with a = -3. Hand-written because the generic arithmetic
//! the `sm2` crate is built on (`primeorder`'s complete formulas over
//! `crypto-bigint` Montgomery elements) costs 560 ns per mixed addition,
//! 760 ns per doubling and 21 us per inversion here, which alone puts a
//! verification over the 50 us the goal allows; the formulas below need
//! 7M+4S and 3M+5S. Tested against the `sm2` crate's arithmetic (the unit
//! tests below) and, through verification, against it and OpenSSL.
//!
//! On x86-64 with BMI2 and ADX (detected at run time), `mul` and `square`
//! run `super::x86`'s assembly, 25-35% faster than the Rust below, which
//! every other CPU runs and a test compares the assembly with. Addition
//! and subtraction select with masks, not branches: which of two results
//! is kept is a coin toss per operation, and the mispredictions cost a
//! doubling a quarter of its time.
//!
//! p = 2^256 - 2^224 - 2^96 + 2^64 - 1 (GB/T 32918.5); since p = -1 mod
//! 2^64, Montgomery reduction's per-limb factor is the low limb itself.

/// p, little-endian limbs.
const P: [u64; 4] = [
    0xFFFF_FFFF_FFFF_FFFF,
    0xFFFF_FFFF_0000_0000,
    0xFFFF_FFFF_FFFF_FFFF,
    0xFFFF_FFFE_FFFF_FFFF,
];
/// 2^512 mod p: `to_montgomery(x) = x * R2 / R`.
const R2: [u64; 4] = [0x2_0000_0003, 0x2_FFFF_FFFF, 0x1_0000_0001, 0x4_0000_0002];
/// 2^256 mod p: one, in Montgomery form.
const ONE: Fe = Fe([1, 0xFFFF_FFFF, 0, 0x1_0000_0000]);

/// A field element in Montgomery form, fully reduced (< p).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fe([u64; 4]);

#[inline(always)]
fn adc(a: u64, b: u64, carry: u64) -> (u64, u64) {
    let t = a as u128 + b as u128 + carry as u128;
    (t as u64, (t >> 64) as u64)
}

#[inline(always)]
fn sbb(a: u64, b: u64, borrow: u64) -> (u64, u64) {
    let t = (a as u128).wrapping_sub(b as u128 + (borrow >> 63) as u128);
    (t as u64, (t >> 64) as u64)
}

#[inline(always)]
fn mac(a: u64, b: u64, c: u64, carry: u64) -> (u64, u64) {
    let t = a as u128 + (b as u128) * (c as u128) + carry as u128;
    (t as u64, (t >> 64) as u64)
}

/// `(l - P, borrow)`; borrow is all ones when l < P.
#[inline(always)]
fn sub_p(l: [u64; 4]) -> ([u64; 4], u64) {
    let (r0, b) = sbb(l[0], P[0], 0);
    let (r1, b) = sbb(l[1], P[1], b);
    let (r2, b) = sbb(l[2], P[2], b);
    let (r3, b) = sbb(l[3], P[3], b);
    ([r0, r1, r2, r3], b)
}

/// Montgomery reduction of a 512-bit value below p·2^256: `t / 2^256 mod
/// p`, four rounds of adding m·p·2^(64i) with m the lowest limb left.
#[inline(always)]
fn reduce(t: [u64; 8]) -> Fe {
    let [t0, t1, t2, t3, t4, t5, t6, t7] = t;
    let (_, c) = mac(t0, t0, P[0], 0);
    let (t1, c) = mac(t1, t0, P[1], c);
    let (t2, c) = mac(t2, t0, P[2], c);
    let (t3, c) = mac(t3, t0, P[3], c);
    let (t4, c4) = adc(t4, c, 0);
    let (_, c) = mac(t1, t1, P[0], 0);
    let (t2, c) = mac(t2, t1, P[1], c);
    let (t3, c) = mac(t3, t1, P[2], c);
    let (t4, c) = mac(t4, t1, P[3], c);
    let (t5, c5) = adc(t5, c, c4);
    let (_, c) = mac(t2, t2, P[0], 0);
    let (t3, c) = mac(t3, t2, P[1], c);
    let (t4, c) = mac(t4, t2, P[2], c);
    let (t5, c) = mac(t5, t2, P[3], c);
    let (t6, c6) = adc(t6, c, c5);
    let (_, c) = mac(t3, t3, P[0], 0);
    let (t4, c) = mac(t4, t3, P[1], c);
    let (t5, c) = mac(t5, t3, P[2], c);
    let (t6, c) = mac(t6, t3, P[3], c);
    let (t7, c7) = adc(t7, c, c6);
    let l = [t4, t5, t6, t7];
    let (s, borrow) = sub_p(l);
    if c7 != 0 || borrow == 0 {
        Fe(s)
    } else {
        Fe(l)
    }
}

impl Fe {
    pub const ZERO: Fe = Fe([0; 4]);

    /// From 32 big-endian bytes; None unless the value is below p.
    pub fn from_bytes(b: &[u8; 32]) -> Option<Fe> {
        let mut l = [0u64; 4];
        for (i, chunk) in b.chunks(8).rev().enumerate() {
            l[i] = u64::from_be_bytes(chunk.try_into().ok()?);
        }
        let (_, borrow) = sub_p(l);
        (borrow != 0).then(|| Fe(l).mul(&Fe(R2)))
    }

    /// 32 big-endian bytes of the value.
    #[cfg(test)]
    pub fn to_bytes(self) -> [u8; 32] {
        let l = self.mul(&Fe([1, 0, 0, 0])).0;
        let mut b = [0u8; 32];
        for (i, chunk) in b.chunks_mut(8).rev().enumerate() {
            chunk.copy_from_slice(&l[i].to_be_bytes());
        }
        b
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 4]
    }

    /// `self + o mod p`. No branch on the values: which of the sum and
    /// the sum less p is kept differs from one addition to the next, and a
    /// mispredicted branch costs more than computing both (the same in
    /// `sub`).
    pub fn add(&self, o: &Fe) -> Fe {
        #[cfg(target_arch = "x86_64")]
        return Fe(super::x86::add(&self.0, &o.0));
        #[cfg(not(target_arch = "x86_64"))]
        self.add_portable(o)
    }

    #[cfg(any(test, not(target_arch = "x86_64")))]
    fn add_portable(&self, o: &Fe) -> Fe {
        let (r0, c) = adc(self.0[0], o.0[0], 0);
        let (r1, c) = adc(self.0[1], o.0[1], c);
        let (r2, c) = adc(self.0[2], o.0[2], c);
        let (r3, c) = adc(self.0[3], o.0[3], c);
        let l = [r0, r1, r2, r3];
        let (s, borrow) = sub_p(l);
        // Keep l (all ones) only when it did not overflow and is below p.
        let keep = borrow & c.wrapping_sub(1);
        Fe(core::array::from_fn(|i| (l[i] & keep) | (s[i] & !keep)))
    }

    pub fn sub(&self, o: &Fe) -> Fe {
        #[cfg(target_arch = "x86_64")]
        return Fe(super::x86::sub(&self.0, &o.0));
        #[cfg(not(target_arch = "x86_64"))]
        self.sub_portable(o)
    }

    #[cfg(any(test, not(target_arch = "x86_64")))]
    fn sub_portable(&self, o: &Fe) -> Fe {
        let (r0, b) = sbb(self.0[0], o.0[0], 0);
        let (r1, b) = sbb(self.0[1], o.0[1], b);
        let (r2, b) = sbb(self.0[2], o.0[2], b);
        let (r3, b) = sbb(self.0[3], o.0[3], b);
        // p added back (b is all ones) when that borrowed.
        let (r0, c) = adc(r0, P[0] & b, 0);
        let (r1, c) = adc(r1, P[1] & b, c);
        let (r2, c) = adc(r2, P[2] & b, c);
        let (r3, _) = adc(r3, P[3] & b, c);
        Fe([r0, r1, r2, r3])
    }

    pub fn neg(&self) -> Fe {
        Fe::ZERO.sub(self)
    }

    pub fn double(&self) -> Fe {
        self.add(self)
    }

    /// Montgomery product `self * o / 2^256 mod p` (CIOS; the factor of
    /// each step is the low limb, as -1/p = 1 mod 2^64).
    pub fn mul(&self, o: &Fe) -> Fe {
        #[cfg(target_arch = "x86_64")]
        if let Some(adx) = super::x86::Adx::detect() {
            return Fe(adx.mul(&self.0, &o.0));
        }
        self.mul_portable(o)
    }

    /// [`Fe::mul`] in Rust, for any CPU.
    fn mul_portable(&self, o: &Fe) -> Fe {
        let a = &self.0;
        let b = &o.0;
        let mut t = [0u64; 6];
        for &bi in b.iter() {
            let (t0, c) = mac(t[0], a[0], bi, 0);
            let (t1, c) = mac(t[1], a[1], bi, c);
            let (t2, c) = mac(t[2], a[2], bi, c);
            let (t3, c) = mac(t[3], a[3], bi, c);
            let (t4, t5) = adc(t[4], c, 0);
            // m = t0; t + m*p is divisible by 2^64.
            let m = t0;
            let (_, c) = mac(t0, m, P[0], 0);
            let (u0, c) = mac(t1, m, P[1], c);
            let (u1, c) = mac(t2, m, P[2], c);
            let (u2, c) = mac(t3, m, P[3], c);
            let (u3, c) = adc(t4, c, 0);
            let (u4, _) = adc(t5, c, 0);
            t = [u0, u1, u2, u3, u4, 0];
        }
        let l = [t[0], t[1], t[2], t[3]];
        let (s, borrow) = sub_p(l);
        // t < 2p: subtract p once when t >= p (a carry into t[4] or no
        // borrow).
        if t[4] != 0 || borrow == 0 {
            Fe(s)
        } else {
            Fe(l)
        }
    }

    /// The Montgomery square: the cross products once, doubled (10
    /// multiplications for the 512-bit square instead of 16).
    pub fn square(&self) -> Fe {
        #[cfg(target_arch = "x86_64")]
        if let Some(adx) = super::x86::Adx::detect() {
            return Fe(adx.square(&self.0));
        }
        self.square_portable()
    }

    fn square_portable(&self) -> Fe {
        let a = &self.0;
        // Cross products a_i a_j, i < j.
        let (t1, c) = mac(0, a[0], a[1], 0);
        let (t2, c) = mac(0, a[0], a[2], c);
        let (t3, t4) = mac(0, a[0], a[3], c);
        let (t3, c) = mac(t3, a[1], a[2], 0);
        let (t4, t5) = mac(t4, a[1], a[3], c);
        let (t5, t6) = mac(t5, a[2], a[3], 0);
        // Doubled.
        let t7 = t6 >> 63;
        let t6 = (t6 << 1) | (t5 >> 63);
        let t5 = (t5 << 1) | (t4 >> 63);
        let t4 = (t4 << 1) | (t3 >> 63);
        let t3 = (t3 << 1) | (t2 >> 63);
        let t2 = (t2 << 1) | (t1 >> 63);
        let t1 = t1 << 1;
        // The squares a_i^2 on the diagonal.
        let (t0, c) = mac(0, a[0], a[0], 0);
        let (t1, c) = adc(t1, 0, c);
        let (t2, c) = mac(t2, a[1], a[1], c);
        let (t3, c) = adc(t3, 0, c);
        let (t4, c) = mac(t4, a[2], a[2], c);
        let (t5, c) = adc(t5, 0, c);
        let (t6, c) = mac(t6, a[3], a[3], c);
        let (t7, _) = adc(t7, 0, c);
        reduce([t0, t1, t2, t3, t4, t5, t6, t7])
    }

    /// `self^(p-2)`, the inverse (0 for 0), by an addition chain for
    /// p - 2 = [31 ones][0][128 ones][32 zeros][62 ones][0][1] (bits from
    /// the top): 256 squarings and 15 multiplications, against the 223
    /// multiplications of plain square-and-multiply.
    pub fn invert(&self) -> Fe {
        let sq = |x: Fe, n: usize| (0..n).fold(x, |acc, _| acc.square());
        let x1 = *self;
        let x2 = sq(x1, 1).mul(&x1);
        let x3 = sq(x2, 1).mul(&x1);
        let x6 = sq(x3, 3).mul(&x3);
        let x12 = sq(x6, 6).mul(&x6);
        let x24 = sq(x12, 12).mul(&x12);
        let x30 = sq(x24, 6).mul(&x6);
        let x31 = sq(x30, 1).mul(&x1);
        let x32 = sq(x31, 1).mul(&x1);
        // 31 ones, then a 0.
        let mut r = sq(x31, 1);
        // 128 ones.
        for _ in 0..4 {
            r = sq(r, 32).mul(&x32);
        }
        // 32 zeros, then 62 ones.
        r = sq(r, 32);
        r = sq(r, 32).mul(&x32);
        r = sq(r, 30).mul(&x30);
        // 0, then 1.
        sq(r, 2).mul(&x1)
    }

    /// The inverse by square-and-multiply over the bits of p - 2, to test
    /// the chain against.
    #[cfg(test)]
    fn invert_plain(&self) -> Fe {
        const E: [u64; 4] = [
            0xFFFF_FFFF_FFFF_FFFD,
            0xFFFF_FFFF_0000_0000,
            0xFFFF_FFFF_FFFF_FFFF,
            0xFFFF_FFFE_FFFF_FFFF,
        ];
        let mut r = ONE;
        for limb in E.iter().rev() {
            for bit in (0..64).rev() {
                r = r.square();
                if (limb >> bit) & 1 == 1 {
                    r = r.mul(self);
                }
            }
        }
        r
    }
}

/// A point in affine coordinates, never the point at infinity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Affine {
    pub x: Fe,
    pub y: Fe,
}

impl Affine {
    pub fn neg(&self) -> Affine {
        Affine {
            x: self.x,
            y: self.y.neg(),
        }
    }

    /// From SEC1 uncompressed coordinates (big-endian x and y); None if
    /// they are not on the curve.
    pub fn from_coordinates(x: &[u8; 32], y: &[u8; 32]) -> Option<Affine> {
        let (x, y) = (Fe::from_bytes(x)?, Fe::from_bytes(y)?);
        let p = Affine { x, y };
        p.is_on_curve().then_some(p)
    }

    /// y^2 = x^3 - 3x + b.
    pub fn is_on_curve(&self) -> bool {
        let b = Fe::from_bytes(&super::CURVE_B).unwrap_or(Fe::ZERO);
        let x3 = self.x.square().mul(&self.x);
        let three_x = self.x.double().add(&self.x);
        self.y.square() == x3.sub(&three_x).add(&b)
    }

    pub fn to_jacobian(self) -> Jacobian {
        Jacobian {
            x: self.x,
            y: self.y,
            z: ONE,
        }
    }
}

/// A point in Jacobian coordinates: (X/Z^2, Y/Z^3); Z = 0 is the point at
/// infinity.
#[derive(Clone, Copy, Debug)]
pub struct Jacobian {
    pub x: Fe,
    pub y: Fe,
    pub z: Fe,
}

impl Jacobian {
    pub const IDENTITY: Jacobian = Jacobian {
        x: ONE,
        y: ONE,
        z: Fe::ZERO,
    };

    pub fn is_identity(&self) -> bool {
        self.z.is_zero()
    }

    /// 2P with a = -3 (dbl-2001-b: 3M + 5S).
    pub fn double(&self) -> Jacobian {
        if self.is_identity() || self.y.is_zero() {
            return Jacobian::IDENTITY;
        }
        let delta = self.z.square();
        let gamma = self.y.square();
        let beta = self.x.mul(&gamma);
        let t = self.x.sub(&delta).mul(&self.x.add(&delta));
        let alpha = t.double().add(&t);
        let beta4 = beta.double().double();
        let x3 = alpha.square().sub(&beta4.double());
        let z3 = self.y.add(&self.z).square().sub(&gamma).sub(&delta);
        let gamma2_8 = gamma.square().double().double().double();
        let y3 = alpha.mul(&beta4.sub(&x3)).sub(&gamma2_8);
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// P + Q for an affine Q (madd-2007-bl: 7M + 4S).
    pub fn add_affine(&self, q: &Affine) -> Jacobian {
        if self.is_identity() {
            return q.to_jacobian();
        }
        let z1z1 = self.z.square();
        let u2 = q.x.mul(&z1z1);
        let s2 = q.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&self.x);
        let r = s2.sub(&self.y).double();
        if h.is_zero() {
            return if r.is_zero() {
                self.double()
            } else {
                Jacobian::IDENTITY
            };
        }
        let hh = h.square();
        let i = hh.double().double();
        let j = h.mul(&i);
        let v = self.x.mul(&i);
        let x3 = r.square().sub(&j).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&self.y.mul(&j).double());
        let z3 = self.z.add(&h).square().sub(&z1z1).sub(&hh);
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// P + Q (add-2007-bl: 11M + 5S).
    pub fn add(&self, q: &Jacobian) -> Jacobian {
        if self.is_identity() {
            return *q;
        }
        if q.is_identity() {
            return *self;
        }
        let z1z1 = self.z.square();
        let z2z2 = q.z.square();
        let u1 = self.x.mul(&z2z2);
        let u2 = q.x.mul(&z1z1);
        let s1 = self.y.mul(&q.z).mul(&z2z2);
        let s2 = q.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&u1);
        let r = s2.sub(&s1).double();
        if h.is_zero() {
            return if r.is_zero() {
                self.double()
            } else {
                Jacobian::IDENTITY
            };
        }
        let i = h.double().square();
        let j = h.mul(&i);
        let v = u1.mul(&i);
        let x3 = r.square().sub(&j).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&s1.mul(&j).double());
        let z3 = self.z.add(&q.z).square().sub(&z1z1).sub(&z2z2).mul(&h);
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// Whether the affine x coordinate is `x`, without an inversion:
    /// X = x·Z^2. False at infinity.
    pub fn has_affine_x(&self, x: &Fe) -> bool {
        !self.is_identity() && self.x == x.mul(&self.z.square())
    }

    /// The affine x coordinate, big-endian; None at infinity.
    #[cfg(test)]
    pub fn affine_x(&self) -> Option<[u8; 32]> {
        if self.is_identity() {
            return None;
        }
        let zinv = self.z.invert();
        Some(self.x.mul(&zinv.square()).to_bytes())
    }
}

/// The points in affine coordinates with one inversion (Montgomery's
/// trick). None of them may be the point at infinity.
pub fn batch_to_affine(points: &[Jacobian]) -> Option<Vec<Affine>> {
    if points.iter().any(Jacobian::is_identity) {
        return None;
    }
    // prefix[i] = z_0 * ... * z_i
    let mut prefix = Vec::with_capacity(points.len());
    let mut acc = ONE;
    for p in points {
        acc = acc.mul(&p.z);
        prefix.push(acc);
    }
    let mut inv = acc.invert();
    let mut out = vec![
        Affine {
            x: Fe::ZERO,
            y: Fe::ZERO
        };
        points.len()
    ];
    for i in (0..points.len()).rev() {
        // inv = 1 / (z_0 ... z_i)
        let zinv = if i == 0 { inv } else { inv.mul(&prefix[i - 1]) };
        inv = inv.mul(&points[i].z);
        let zinv2 = zinv.square();
        out[i] = Affine {
            x: points[i].x.mul(&zinv2),
            y: points[i].y.mul(&zinv2.mul(&zinv)),
        };
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sm2::elliptic_curve::sec1::ToSec1Point as _;
    use sm2::elliptic_curve::Group as _;
    use sm2::ProjectivePoint;

    fn ours(p: &ProjectivePoint) -> Affine {
        let e = p.to_affine().to_sec1_point(false);
        let b = e.as_bytes();
        Affine::from_coordinates(b[1..33].try_into().unwrap(), b[33..65].try_into().unwrap())
            .unwrap()
    }

    fn same(a: &Jacobian, b: &ProjectivePoint) {
        let a = batch_to_affine(&[*a]).unwrap()[0];
        assert_eq!(a, ours(b));
    }

    #[test]
    fn constants() {
        // R2 is 2^512 mod p: to and from Montgomery form round-trip, and
        // ONE is 1.
        let one = {
            let mut b = [0u8; 32];
            b[31] = 1;
            b
        };
        assert_eq!(Fe::from_bytes(&one), Some(ONE));
        assert_eq!(ONE.to_bytes(), one);
        let mut p = [0u8; 32];
        for (i, l) in P.iter().rev().enumerate() {
            p[i * 8..i * 8 + 8].copy_from_slice(&l.to_be_bytes());
        }
        assert_eq!(Fe::from_bytes(&p), None);
        let mut p1 = p;
        p1[31] -= 1;
        let minus_one = Fe::from_bytes(&p1).unwrap();
        assert_eq!(minus_one.add(&ONE), Fe::ZERO);
        assert_eq!(minus_one.mul(&minus_one), ONE);
        assert_eq!(minus_one.square(), ONE);
    }

    #[test]
    fn the_field_agrees_with_itself_and_inverts() {
        let mut x = Fe::from_bytes(&[0x5a; 32]).unwrap();
        let y = Fe::from_bytes(&[0xa5; 32]).unwrap();
        for _ in 0..500 {
            x = x.mul(&y).add(&ONE);
            assert_eq!(x.mul(&x.invert()), ONE);
            assert_eq!(x.invert(), x.invert_plain());
            assert_eq!(x.sub(&y).add(&y), x);
            assert_eq!(x.add(&x.neg()), Fe::ZERO);
            assert_eq!(x.mul(&y.add(&ONE)), x.mul(&y).add(&x));
            assert_eq!(Fe::from_bytes(&x.to_bytes()), Some(x));
            assert_eq!(x.square(), x.mul(&x));
        }
    }

    /// The x86 assembly (`super::super::x86`) against the Rust field above,
    /// on the edges (0, 1, p - 1, limbs all ones or zero) and 10^5 random
    /// pairs: addition and subtraction on any x86-64, the product and the
    /// square where BMI2 and ADX are. A quarter of random products reach
    /// 2^256 before the last subtraction of p, so that branch is covered;
    /// landing in [p, 2^256) (about 2^-32 of them) is covered by pairs made
    /// for it (their reduced product is below 2^200).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_assembly_agrees_with_the_rust_field() {
        use super::super::x86;
        let below_p = |l: [u64; 4]| sub_p(l).1 != 0;
        let mut edges = vec![[0; 4], [1, 0, 0, 0], ONE.0, R2];
        for d in [1u64, 2, 3, 0x1_0000_0000] {
            edges.push([P[0] - d, P[1], P[2], P[3]]);
        }
        edges.push([u64::MAX, 0, u64::MAX, 0]);
        edges.push([0, u64::MAX, 0, P[3]]);
        edges.push([0, 0, 0, 1 << 63]);
        let mut rng = super::super::test_rng::Rng::seeded("SM2_SEED");
        let mut next = move || rng.next();
        let mut pairs: Vec<([u64; 4], [u64; 4])> = Vec::new();
        for a in &edges {
            for b in &edges {
                pairs.push((*a, *b));
            }
        }
        while pairs.len() < 100_000 {
            let a = [next(), next(), next(), next()];
            let b = [next(), next(), next(), next()];
            if below_p(a) && below_p(b) {
                pairs.push((a, b));
            }
        }
        for (a, b) in &pairs {
            assert!(below_p(*a) && below_p(*b));
            let (fa, fb) = (Fe(*a), Fe(*b));
            assert_eq!(x86::add(a, b), fa.add_portable(&fb).0, "{a:x?} + {b:x?}");
            assert_eq!(x86::sub(a, b), fa.sub_portable(&fb).0, "{a:x?} - {b:x?}");
        }
        let Some(adx) = x86::Adx::detect() else {
            eprintln!("no BMI2 and ADX here: the product's assembly is not used");
            return;
        };
        // Products whose sum before the last subtraction lies in
        // [p, 2^256): a = c·R/b mod p for a small c (found with a model of
        // the reduction), and a square the same way.
        let window = [
            (
                [
                    0x941bfe8fca0a53c3,
                    0xaf8baf39a926a027,
                    0x65c109037286b389,
                    0x12fcefa239c7f98f,
                ],
                [
                    0x7ed4d57b1e2feb8a,
                    0x7311d8a3c2ce6f44,
                    0xa6cecc1b78e51061,
                    0xc9e9c616612e7696,
                ],
            ),
            (
                [
                    0xa0d0183d825f78b7,
                    0xfebefeb10e5b34ba,
                    0x39ff1c271eecbf6b,
                    0x31d68073179e54a5,
                ],
                [
                    0x9b810e766ec9d287,
                    0xc4647159c324c985,
                    0xb2221a58008a05a6,
                    0x442e3d437204e52d,
                ],
            ),
        ];
        let square_window = [
            0xa1035b8965e26b39,
            0xa775c75a041737b9,
            0xe7db7d33a3d5bdf9,
            0xed6346ad4cb1928d,
        ];
        for (a, b) in window {
            let product = adx.mul(&a, &b);
            assert!(product[3] >> 8 == 0, "made to be below 2^200: {product:x?}");
            pairs.push((a, b));
        }
        assert!(adx.square(&square_window)[3] >> 8 == 0);
        pairs.push((square_window, square_window));
        for (a, b) in pairs {
            let (fa, fb) = (Fe(a), Fe(b));
            assert_eq!(adx.mul(&a, &b), fa.mul_portable(&fb).0, "{a:x?} * {b:x?}");
            assert_eq!(adx.square(&a), fa.square_portable().0, "{a:x?}^2");
        }
    }

    #[test]
    fn points_agree_with_the_sm2_crate() {
        let g = ProjectivePoint::generator();
        let mut theirs = g;
        let mut mine = ours(&g).to_jacobian();
        for i in 0..300 {
            // double, add a fixed affine point, add a Jacobian point
            theirs = theirs.double();
            mine = mine.double();
            same(&mine, &theirs);
            let q = g * sm2::Scalar::from(i as u64 + 2);
            theirs += q;
            mine = mine.add_affine(&ours(&q));
            same(&mine, &theirs);
            // A Jacobian operand with Z != 1: 2q by a doubling.
            theirs += q.double();
            mine = mine.add(&ours(&q).to_jacobian().double());
            same(&mine, &theirs);
        }
        // P + P, P - P, and the identity on either side.
        let p = ours(&g);
        same(&p.to_jacobian().add_affine(&p), &g.double());
        assert!(p.to_jacobian().add_affine(&p.neg()).is_identity());
        assert!(p.to_jacobian().add(&p.neg().to_jacobian()).is_identity());
        same(&Jacobian::IDENTITY.add_affine(&p), &g);
        same(&p.to_jacobian().add(&Jacobian::IDENTITY), &g);
        assert!(Jacobian::IDENTITY.double().is_identity());
        assert_eq!(Jacobian::IDENTITY.affine_x(), None);
    }
}
