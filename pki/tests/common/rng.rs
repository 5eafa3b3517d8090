//! A reproducible stream of random bytes for the differential tests: seeded
//! from an environment variable (hex, as a failure prints it) or the clock.

#![allow(dead_code)]

pub struct Rng(u64);

/// A test's case count: `var` if set to a number, else `default`.
pub fn cases(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Rng {
    /// From the hex seed in `var`, or the clock; the seed is printed so a
    /// failing run can be repeated.
    pub fn seeded(var: &str) -> Self {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            })
            | 1;
        eprintln!("seed {seed:#x} ({var}={seed:x} repeats it)");
        Self(seed)
    }

    /// An independent stream of the same seed (one per thread).
    pub fn stream(mut self, n: u64) -> Self {
        self.0 ^= n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self
    }

    pub fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for c in out.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }

    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        self.fill(&mut b);
        b
    }

    /// Uniform enough below `n` for test sizes.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
