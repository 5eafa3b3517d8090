//! The SM2 field's arithmetic in x86-64 assembly: the Montgomery product
//! and square with MULX, ADCX and ADOX (BMI2 and ADX), addition and
//! subtraction in the base set. The second module of `pki` with `unsafe`
//! code, next to `sm4::x86`.
//!
//! Why by hand: the same arithmetic in Rust (`curve::Fe::mul`, u128
//! products) compiles to MUL with one carry chain kept in flags by
//! SETB and ADD $0xff, about 45 ns a product here; two carry chains
//! (ADCX on CF, ADOX on OF) and a reduction without multiplications
//! (p's special form) take a third off it, and a new key's verification is
//! 3,000 of them. Neither the `sm2` crate nor any maintained crate has an
//! SM2-specific field (`primeorder` is generic over `crypto-bigint`).
//!
//! The product `a·b` is schoolbook, one row per limb of `b` with the low
//! halves on the CF chain and the high halves on the OF chain. Montgomery
//! reduction then divides the low 256 bits `T_lo` by 2^256 modulo p on
//! their own (`U = (T_lo + M·p) / 2^256 <= p`, M chosen limb by limb):
//! each of four rounds takes the lowest limb `m`, and since
//! p = 2^256 - 2^224 - 2^96 + 2^64 - 1,
//! `(s + m·p) / 2^64 = [s1, s2, s3, 0] + [m, 0, 0, m] - [m<<32, m>>32, m<<32, m>>32]`
//! (limbs little-endian), a value below 2^256 (it is below
//! `p + 2^192`), so the additions and subtractions wrap modulo 2^256 with
//! no carry out to keep. The result is `T_hi + U < 2p`, less p once when
//! that is at least p. Every input is public (verification only), but the
//! code has no data-dependent branch or index anyway.
//!
//! Safety: the product and the square (MULX, ADCX, ADOX) are reached only
//! through [`Adx`], a value that exists only once BMI2 and ADX were
//! detected; addition and subtraction use the base x86-64 set and touch no
//! memory. Each block reads at most two 32-byte arrays through references
//! and writes only the registers it declares.

#![deny(unsafe_op_in_unsafe_fn)]

use core::arch::asm;

/// The CPU has BMI2 (MULX) and ADX (ADCX, ADOX).
#[derive(Clone, Copy, Debug)]
pub(super) struct Adx(());

impl Adx {
    /// Whether this CPU has them: CPUID once, then one load a call (the
    /// field's hot path asks before every product).
    #[inline(always)]
    pub(super) fn detect() -> Option<Adx> {
        use std::sync::atomic::{AtomicU8, Ordering};
        const UNKNOWN: u8 = 0;
        const YES: u8 = 1;
        const NO: u8 = 2;
        static DETECTED: AtomicU8 = AtomicU8::new(UNKNOWN);
        let mut known = DETECTED.load(Ordering::Relaxed);
        if known == UNKNOWN {
            let has = std::arch::is_x86_feature_detected!("bmi2")
                && std::arch::is_x86_feature_detected!("adx");
            known = if has { YES } else { NO };
            DETECTED.store(known, Ordering::Relaxed);
        }
        (known == YES).then_some(Adx(()))
    }

    /// `a·b / 2^256 mod p` for `a, b < p` (little-endian limbs), fully
    /// reduced.
    #[inline(always)]
    pub(super) fn mul(self, a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
        // SAFETY: `self` exists only if BMI2 and ADX were detected
        // (`detect`), the only features `mul_adx` needs besides x86-64's
        // own; it reads a and b, 32 bytes each, through the references.
        unsafe { mul_adx(a, b) }
    }

    /// `a^2 / 2^256 mod p` for `a < p`, fully reduced: [`Adx::mul`] with
    /// the six cross products computed once and doubled (10 MULX, not 16).
    #[inline(always)]
    pub(super) fn square(self, a: &[u64; 4]) -> [u64; 4] {
        // SAFETY: as in `mul`: BMI2 and ADX were detected; the block reads
        // a[0..4] only and writes only its declared registers.
        unsafe { square_adx(a) }
    }
}

/// One row of the product: `t_0..t_4 += a·b_i` for the limb of `b` at byte
/// offset `$off`, the low halves on the CF chain (ADCX), the high halves
/// on the OF chain (ADOX). `$t4` is a new limb: zeroed by the XOR that
/// also clears both flags, and the CF chain's last carry goes into it
/// after the OF chain's (neither overflows it: the partial sum fits).
#[rustfmt::skip]
macro_rules! product_row {
    ($off:literal, $t0:literal, $t1:literal, $t2:literal, $t3:literal, $t4:literal) => {
        concat!(
            "mov rdx, [{b} + ", $off, "]\n",
            "xor {", $t4, ":e}, {", $t4, ":e}\n",
            "mulx {hi}, {lo}, [{a}]\n",
            "adcx {", $t0, "}, {lo}\n",
            "adox {", $t1, "}, {hi}\n",
            "mulx {hi}, {lo}, [{a} + 8]\n",
            "adcx {", $t1, "}, {lo}\n",
            "adox {", $t2, "}, {hi}\n",
            "mulx {hi}, {lo}, [{a} + 16]\n",
            "adcx {", $t2, "}, {lo}\n",
            "adox {", $t3, "}, {hi}\n",
            "mulx {hi}, {lo}, [{a} + 24]\n",
            "adcx {", $t3, "}, {lo}\n",
            "adox {", $t4, "}, {hi}\n",
            // MOV leaves the flags alone.
            "mov {lo}, 0\n",
            "adcx {", $t4, "}, {lo}\n",
        )
    };
}

/// One round of the reduction (see the module's doc) on the state
/// `$s0..$s3`, lowest limb first, whose lowest limb is `m`: the state
/// becomes `$s1, $s2, $s3, $s0`, so after four rounds it is back in order.
#[rustfmt::skip]
macro_rules! reduce_round {
    ($s0:literal, $s1:literal, $s2:literal, $s3:literal) => {
        concat!(
            "mov {lo}, {", $s0, "}\n",
            "shl {lo}, 32\n",
            "mov {hi}, {", $s0, "}\n",
            "shr {hi}, 32\n",
            "add {", $s1, "}, {", $s0, "}\n",
            "adc {", $s2, "}, 0\n",
            "adc {", $s3, "}, 0\n",
            "adc {", $s0, "}, 0\n",
            "sub {", $s1, "}, {lo}\n",
            "sbb {", $s2, "}, {hi}\n",
            "sbb {", $s3, "}, {lo}\n",
            "sbb {", $s0, "}, {hi}\n",
        )
    };
}

/// `s0..s3 = (r0..r3 + s0..s3) mod p` for a sum below 2p: the sum goes
/// into `r0..r3` with bit 256 in `$c`, then `s0..s3` is that less p, or the
/// sum itself if the subtraction borrows. `$p1` and `$p3` are scratch for
/// p's limbs 1 and 3 (limbs 0 and 2 are -1, an immediate). Operands are
/// given whole (`"{t4}"`, or a register's name).
#[rustfmt::skip]
macro_rules! add_mod_p {
    ([$r0:literal, $r1:literal, $r2:literal, $r3:literal],
     [$s0:literal, $s1:literal, $s2:literal, $s3:literal],
     $c:literal, $p1:literal, $p3:literal) => {
        concat!(
            "xor ", $c, ", ", $c, "\n",
            "add ", $r0, ", ", $s0, "\n",
            "adc ", $r1, ", ", $s1, "\n",
            "adc ", $r2, ", ", $s2, "\n",
            "adc ", $r3, ", ", $s3, "\n",
            "adc ", $c, ", 0\n",
            "mov ", $s0, ", ", $r0, "\n",
            "mov ", $s1, ", ", $r1, "\n",
            "mov ", $s2, ", ", $r2, "\n",
            "mov ", $s3, ", ", $r3, "\n",
            "mov ", $p1, ", 0xFFFFFFFF00000000\n",
            "mov ", $p3, ", 0xFFFFFFFEFFFFFFFF\n",
            "sub ", $s0, ", -1\n",
            "sbb ", $s1, ", ", $p1, "\n",
            "sbb ", $s2, ", -1\n",
            "sbb ", $s3, ", ", $p3, "\n",
            "sbb ", $c, ", 0\n",
            "cmovc ", $s0, ", ", $r0, "\n",
            "cmovc ", $s1, ", ", $r1, "\n",
            "cmovc ", $s2, ", ", $r2, "\n",
            "cmovc ", $s3, ", ", $r3, "\n",
        )
    };
}

/// Montgomery reduction of the 512-bit `t7..t0` by its low half, and the
/// final subtraction of p (see the module's doc): the result in t0..t3.
/// Uses `hi`, `lo` and rdx as scratch.
#[rustfmt::skip]
macro_rules! reduce_and_finish {
    () => {
        concat!(
            reduce_round!("t0", "t1", "t2", "t3"),
            reduce_round!("t1", "t2", "t3", "t0"),
            reduce_round!("t2", "t3", "t0", "t1"),
            reduce_round!("t3", "t0", "t1", "t2"),
            // t4..t7 + U (t0..t3), reduced into t0..t3.
            add_mod_p!(
                ["{t4}", "{t5}", "{t6}", "{t7}"],
                ["{t0}", "{t1}", "{t2}", "{t3}"],
                "{lo}", "{hi}", "rdx"
            ),
        )
    };
}

/// See [`Adx::mul`]. Not a `target_feature` function, so that it inlines:
/// the assembler takes MULX, ADCX and ADOX whatever the compiler targets.
///
/// # Safety
/// The CPU must support BMI2 and ADX.
#[inline(always)]
unsafe fn mul_adx(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let (r0, r1, r2, r3): (u64, u64, u64, u64);
    // SAFETY: the caller guarantees BMI2 and ADX. Memory is read only at
    // [a + 0..32] and [b + 0..32], both 32-byte arrays borrowed for the
    // call; every register written is declared as an output, and the
    // flags are clobbered (no preserves_flags).
    unsafe {
        asm!(
            // Row 0: t0..t4 = a * b0 (one carry chain).
            "mov rdx, [{b}]",
            "mulx {t1}, {t0}, [{a}]",
            "mulx {t2}, {lo}, [{a} + 8]",
            "add {t1}, {lo}",
            "mulx {t3}, {lo}, [{a} + 16]",
            "adc {t2}, {lo}",
            "mulx {t4}, {lo}, [{a} + 24]",
            "adc {t3}, {lo}",
            "adc {t4}, 0",
            product_row!("8", "t1", "t2", "t3", "t4", "t5"),
            product_row!("16", "t2", "t3", "t4", "t5", "t6"),
            product_row!("24", "t3", "t4", "t5", "t6", "t7"),
            reduce_and_finish!(),
            a = in(reg) a.as_ptr(),
            b = in(reg) b.as_ptr(),
            t0 = out(reg) r0,
            t1 = out(reg) r1,
            t2 = out(reg) r2,
            t3 = out(reg) r3,
            t4 = out(reg) _,
            t5 = out(reg) _,
            t6 = out(reg) _,
            t7 = out(reg) _,
            hi = out(reg) _,
            lo = out(reg) _,
            out("rdx") _,
            options(pure, readonly, nostack),
        );
    }
    [r0, r1, r2, r3]
}

/// See [`Adx::square`].
///
/// # Safety
/// The CPU must support BMI2 and ADX.
#[inline(always)]
unsafe fn square_adx(a: &[u64; 4]) -> [u64; 4] {
    let (r0, r1, r2, r3): (u64, u64, u64, u64);
    // SAFETY: the caller guarantees BMI2 and ADX. Memory is read only at
    // [a + 0..32], a 32-byte array borrowed for the call; every register
    // written is declared, and the flags are clobbered (no
    // preserves_flags).
    unsafe {
        asm!(
            // The cross products a_i·a_j (i < j) into t1..t6.
            "mov rdx, [{a}]",
            "mulx {t2}, {t1}, [{a} + 8]",
            "mulx {t3}, {lo}, [{a} + 16]",
            "add {t2}, {lo}",
            "mulx {t4}, {lo}, [{a} + 24]",
            "adc {t3}, {lo}",
            "adc {t4}, 0",
            "mov rdx, [{a} + 8]",
            "xor {t5:e}, {t5:e}",
            "mulx {hi}, {lo}, [{a} + 16]",
            "adcx {t3}, {lo}",
            "adox {t4}, {hi}",
            "mulx {hi}, {lo}, [{a} + 24]",
            "adcx {t4}, {lo}",
            "adox {t5}, {hi}",
            "mov {lo}, 0",
            "adcx {t5}, {lo}",
            "mov rdx, [{a} + 16]",
            "mulx {t6}, {lo}, [{a} + 24]",
            "add {t5}, {lo}",
            "adc {t6}, 0",
            // Doubled, into t1..t7.
            "xor {t7:e}, {t7:e}",
            "add {t1}, {t1}",
            "adc {t2}, {t2}",
            "adc {t3}, {t3}",
            "adc {t4}, {t4}",
            "adc {t5}, {t5}",
            "adc {t6}, {t6}",
            "adc {t7}, 0",
            // The squares a_i^2 on the diagonal (MULX leaves the flags
            // alone, so one carry chain runs through).
            "mov rdx, [{a}]",
            "mulx {hi}, {t0}, rdx",
            "add {t1}, {hi}",
            "mov rdx, [{a} + 8]",
            "mulx {hi}, {lo}, rdx",
            "adc {t2}, {lo}",
            "adc {t3}, {hi}",
            "mov rdx, [{a} + 16]",
            "mulx {hi}, {lo}, rdx",
            "adc {t4}, {lo}",
            "adc {t5}, {hi}",
            "mov rdx, [{a} + 24]",
            "mulx {hi}, {lo}, rdx",
            "adc {t6}, {lo}",
            "adc {t7}, {hi}",
            reduce_and_finish!(),
            a = in(reg) a.as_ptr(),
            t0 = out(reg) r0,
            t1 = out(reg) r1,
            t2 = out(reg) r2,
            t3 = out(reg) r3,
            t4 = out(reg) _,
            t5 = out(reg) _,
            t6 = out(reg) _,
            t7 = out(reg) _,
            hi = out(reg) _,
            lo = out(reg) _,
            out("rdx") _,
            options(pure, readonly, nostack),
        );
    }
    [r0, r1, r2, r3]
}

/// `a + b mod p` for `a, b < p` (plain x86-64: any x86-64 CPU). The Rust
/// addition with a mask compiles to about three times the instructions
/// (each carry goes through SBB and SAR), and a doubling has a dozen of
/// these.
#[inline(always)]
pub(super) fn add(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let [r0, r1, r2, r3] = *a;
    let [mut s0, mut s1, mut s2, mut s3] = *b;
    // SAFETY: registers only (no memory, no stack); every register written
    // is declared, and the flags are clobbered (no preserves_flags). The
    // instructions are x86-64's base set.
    unsafe {
        asm!(
            add_mod_p!(
                ["{r0}", "{r1}", "{r2}", "{r3}"],
                ["{s0}", "{s1}", "{s2}", "{s3}"],
                "{c}",
                "{p1}",
                "{p3}"
            ),
            r0 = inout(reg) r0 => _,
            r1 = inout(reg) r1 => _,
            r2 = inout(reg) r2 => _,
            r3 = inout(reg) r3 => _,
            s0 = inout(reg) s0,
            s1 = inout(reg) s1,
            s2 = inout(reg) s2,
            s3 = inout(reg) s3,
            c = out(reg) _,
            p1 = out(reg) _,
            p3 = out(reg) _,
            options(pure, nomem, nostack),
        );
    }
    [s0, s1, s2, s3]
}

/// `a - b mod p` for `a, b < p` (plain x86-64), p added back under a mask
/// when the subtraction borrowed.
#[inline(always)]
pub(super) fn sub(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let [mut r0, mut r1, mut r2, mut r3] = *a;
    let [s0, s1, s2, s3] = *b;
    // SAFETY: registers only (no memory, no stack); every register written
    // is declared, and the flags are clobbered (no preserves_flags). The
    // instructions are x86-64's base set.
    unsafe {
        asm!(
            "sub {r0}, {s0}",
            "sbb {r1}, {s1}",
            "sbb {r2}, {s2}",
            "sbb {r3}, {s3}",
            // m = all ones if it borrowed; p & m is [m, m << 32, m, m
            // with bit 32 clear].
            "sbb {m}, {m}",
            "mov {m1}, {m}",
            "shl {m1}, 32",
            "mov {m3}, {m}",
            "btr {m3}, 32",
            "add {r0}, {m}",
            "adc {r1}, {m1}",
            "adc {r2}, {m}",
            "adc {r3}, {m3}",
            r0 = inout(reg) r0,
            r1 = inout(reg) r1,
            r2 = inout(reg) r2,
            r3 = inout(reg) r3,
            s0 = in(reg) s0,
            s1 = in(reg) s1,
            s2 = in(reg) s2,
            s3 = in(reg) s3,
            m = out(reg) _,
            m1 = out(reg) _,
            m3 = out(reg) _,
            options(pure, nomem, nostack),
        );
    }
    [r0, r1, r2, r3]
}
