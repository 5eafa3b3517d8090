//! SM4 (GB/T 32907-2016) in constant time, 64 blocks at a time, behind the
//! RustCrypto `cipher` 0.5 traits, so `aes-gcm`'s GCM and `ccm`'s CCM (and
//! through them the TLS and QUIC record layers) use it unchanged, and CTR
//! runs 64 blocks wide.
//!
//! Five paths compute the same function; the fastest the CPU runs is
//! detected once per process:
//! - [`Path::Avx512Gfni`]: AVX-512 and GFNI, 16 blocks a register, the
//!   S-box and the linear map's bit rotation in three inversions
//!   (GF2P8AFFINEINVQB) per 64 bytes;
//! - [`Path::Gfni`]: the same on AVX2, per 32 bytes;
//! - [`Path::Vaes`]: as [`Path::AesNi`] with VAES, one AESENCLAST per 32
//!   bytes (CPUs with VAES but no GFNI: AMD Zen 3);
//! - [`Path::AesNi`]: AVX2 and AES-NI, the S-box through AESENCLAST, then
//!   three table maps that fold in the linear map's bit rotation;
//! - [`Path::Portable`]: bitsliced Rust, on any CPU.
//!
//! None indexes memory or branches by a key or a block, the key schedule
//! included (it runs on the path's own S-box). RustCrypto's `sm4`, which looks
//! up a table by secret bytes, is only a test oracle and the benchmarks'
//! baseline.

use cipher::consts::U16;
use cipher::{
    AlgorithmName, Array, Block, BlockCipherDecBackend, BlockCipherDecClosure, BlockCipherDecrypt,
    BlockCipherEncBackend, BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, InOut,
    InOutBuf, Key, KeyInit, KeySizeUser, ParBlocks, ParBlocksSizeUser,
};
use core::fmt;
use zeroize::Zeroize as _;

mod consts;
mod soft;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86;

/// How a key's blocks are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    /// AVX-512 (F, BW) with GFNI.
    Avx512Gfni,
    /// AVX2 with GFNI.
    Gfni,
    /// AVX2 with AES-NI on 256-bit registers (VAES).
    Vaes,
    /// AVX2 with AES-NI.
    AesNi,
    /// Bitsliced, portable.
    Portable,
}

impl Path {
    /// Every path, fastest first.
    pub const ALL: [Path; 5] = [
        Path::Avx512Gfni,
        Path::Gfni,
        Path::Vaes,
        Path::AesNi,
        Path::Portable,
    ];

    /// The fastest path this CPU runs.
    pub fn best() -> Path {
        best_engine().path()
    }

    /// Whether this CPU runs the path.
    pub fn available(self) -> bool {
        Engine::new(self).is_some()
    }

    /// The path's name in benchmarks and logs.
    pub fn name(self) -> &'static str {
        match self {
            Path::Avx512Gfni => "GFNI (AVX-512)",
            Path::Gfni => "GFNI (AVX2)",
            Path::Vaes => "AES-NI, VAES (AVX2)",
            Path::AesNi => "AES-NI (AVX2)",
            Path::Portable => "portable (bitsliced)",
        }
    }
}

/// A path with the proof that the CPU runs it.
#[derive(Clone, Copy, Debug)]
enum Engine {
    #[cfg(target_arch = "x86_64")]
    Avx512Gfni(x86::Avx512Gfni),
    #[cfg(target_arch = "x86_64")]
    Gfni(x86::Gfni),
    #[cfg(target_arch = "x86_64")]
    Vaes(x86::Vaes),
    #[cfg(target_arch = "x86_64")]
    AesNi(x86::AesNi),
    Portable,
}

impl Engine {
    fn new(path: Path) -> Option<Engine> {
        match path {
            #[cfg(target_arch = "x86_64")]
            Path::Avx512Gfni => x86::Avx512Gfni::detect().map(Engine::Avx512Gfni),
            #[cfg(target_arch = "x86_64")]
            Path::Gfni => x86::Gfni::detect().map(Engine::Gfni),
            #[cfg(target_arch = "x86_64")]
            Path::Vaes => x86::Vaes::detect().map(Engine::Vaes),
            #[cfg(target_arch = "x86_64")]
            Path::AesNi => x86::AesNi::detect().map(Engine::AesNi),
            #[cfg(not(target_arch = "x86_64"))]
            Path::Avx512Gfni | Path::Gfni | Path::Vaes | Path::AesNi => None,
            Path::Portable => Some(Engine::Portable),
        }
    }

    fn path(self) -> Path {
        match self {
            #[cfg(target_arch = "x86_64")]
            Engine::Avx512Gfni(_) => Path::Avx512Gfni,
            #[cfg(target_arch = "x86_64")]
            Engine::Gfni(_) => Path::Gfni,
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes(_) => Path::Vaes,
            #[cfg(target_arch = "x86_64")]
            Engine::AesNi(_) => Path::AesNi,
            Engine::Portable => Path::Portable,
        }
    }

    fn crypt64(self, rk: &[u32; 32], blocks: &mut [[u8; 16]; WIDEST]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Engine::Avx512Gfni(e) => e.crypt64(rk, blocks),
            _ => {
                for half in blocks.as_chunks_mut::<WIDE>().0 {
                    self.crypt32(rk, half);
                }
            }
        }
    }

    fn crypt32(self, rk: &[u32; 32], blocks: &mut [[u8; 16]; WIDE]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Engine::Avx512Gfni(e) => e.crypt32(rk, blocks),
            #[cfg(target_arch = "x86_64")]
            Engine::Gfni(e) => e.crypt32(rk, blocks),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes(e) => e.crypt32(rk, blocks),
            #[cfg(target_arch = "x86_64")]
            Engine::AesNi(e) => e.crypt32(rk, blocks),
            Engine::Portable => {
                for half in blocks.chunks_mut(16) {
                    soft::crypt16(rk, half);
                }
            }
        }
    }

    /// `τ` (the S-box on each byte of a word), for the key schedule.
    fn tau(self, word: u32) -> u32 {
        match self {
            #[cfg(target_arch = "x86_64")]
            Engine::Avx512Gfni(e) => e.avx2().tau(word),
            #[cfg(target_arch = "x86_64")]
            Engine::Gfni(e) => e.tau(word),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes(e) => e.tau(word),
            #[cfg(target_arch = "x86_64")]
            Engine::AesNi(e) => e.tau(word),
            Engine::Portable => soft::tau(word),
        }
    }

    /// Eight blocks in one group: a single block's shortest path.
    fn crypt8(self, rk: &[u32; 32], blocks: &mut [[u8; 16]; NARROW]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Engine::Avx512Gfni(e) => e.avx2().crypt8(rk, blocks),
            #[cfg(target_arch = "x86_64")]
            Engine::Gfni(e) => e.crypt8(rk, blocks),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes(e) => e.crypt8(rk, blocks),
            #[cfg(target_arch = "x86_64")]
            Engine::AesNi(e) => e.crypt8(rk, blocks),
            Engine::Portable => soft::crypt16(rk, blocks),
        }
    }
}

/// Blocks per call of the AVX-512 path: four groups of 16 in flight
/// together, as a round's S-box and linear map take longer than two groups'
/// instructions (64 blocks run 45-50% faster than 32 there). The other
/// paths take them as two calls of [`WIDE`].
const WIDEST: usize = 64;
/// Blocks per call of a path: 32 (two groups of 16 in AVX-512 registers,
/// four of eight in AVX2 ones, in flight together to hide the S-box's
/// latency).
const WIDE: usize = 32;
/// Blocks per call when there are few: one group in flight, so a single
/// block (CCM's CBC-MAC, QUIC's header protection) waits for the rounds'
/// latency only.
const NARROW: usize = 8;

/// The best path, detected once.
fn best_engine() -> Engine {
    static BEST: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
    *BEST.get_or_init(|| {
        Path::ALL
            .into_iter()
            .find_map(Engine::new)
            .unwrap_or(Engine::Portable)
    })
}

/// SM4 with a 128-bit key.
#[derive(Clone)]
pub struct Sm4 {
    enc: [u32; 32],
    dec: [u32; 32],
    engine: Engine,
}

impl Sm4 {
    /// The key on a given path; `None` if this CPU does not run it.
    pub fn with_path(key: &[u8; 16], path: Path) -> Option<Sm4> {
        Some(Self::schedule(key, Engine::new(path)?))
    }

    /// The path this key's blocks take.
    pub fn path(&self) -> Path {
        self.engine.path()
    }

    fn schedule(key: &[u8; 16], engine: Engine) -> Sm4 {
        let mut k = [0u32; 4];
        for (i, w) in k.iter_mut().enumerate() {
            let bytes = [key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]];
            *w = u32::from_be_bytes(bytes) ^ consts::FK[i];
        }
        let mut enc = [0u32; 32];
        for (i, rk) in enc.iter_mut().enumerate() {
            let t = engine.tau(k[(i + 1) % 4] ^ k[(i + 2) % 4] ^ k[(i + 3) % 4] ^ consts::CK[i]);
            k[i % 4] ^= t ^ t.rotate_left(13) ^ t.rotate_left(23);
            *rk = k[i % 4];
        }
        let mut dec = enc;
        dec.reverse();
        k.zeroize();
        Sm4 { enc, dec, engine }
    }

    /// Encrypts or decrypts any number of blocks in place: 64 at a time
    /// where they are, then 32, and a last few (or a single one) through a
    /// buffer, in a narrow pass if it holds them.
    fn crypt_in_place(&self, rk: &[u32; 32], blocks: &mut [[u8; 16]]) {
        let (widest, rest) = blocks.as_chunks_mut::<WIDEST>();
        for chunk in widest {
            self.engine.crypt64(rk, chunk);
        }
        let (wide, rest) = rest.as_chunks_mut::<WIDE>();
        for chunk in wide {
            self.engine.crypt32(rk, chunk);
        }
        if rest.is_empty() {
            return;
        }
        // Fewer than 32 left: through a buffer.
        let mut buf = [[0u8; 16]; WIDE];
        buf[..rest.len()].copy_from_slice(rest);
        match buf.first_chunk_mut::<NARROW>() {
            Some(narrow) if rest.len() <= NARROW => self.engine.crypt8(rk, narrow),
            _ => self.engine.crypt32(rk, &mut buf),
        }
        rest.copy_from_slice(&buf[..rest.len()]);
        // The spare lanes hold E(0), GCM's hash key: wiped, with `black_box`
        // as an observer so the stores are not dropped (zeroize's byte-wise
        // volatile writes cost a CCM block a third of its time).
        buf.fill([0; 16]);
        core::hint::black_box(&buf);
    }

    /// Encrypts blocks in place (the benchmarks' and tests' raw form).
    pub fn encrypt_blocks_in_place(&self, blocks: &mut [[u8; 16]]) {
        self.crypt_in_place(&self.enc, blocks);
    }
}

impl Drop for Sm4 {
    fn drop(&mut self) {
        // Volatile writes the compiler keeps (zeroize's), so round keys do
        // not outlive the key in freed memory.
        self.enc.zeroize();
        self.dec.zeroize();
    }
}

impl fmt::Debug for Sm4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sm4")
            .field("path", &self.path())
            .finish_non_exhaustive()
    }
}

impl AlgorithmName for Sm4 {
    fn write_alg_name(f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sm4")
    }
}

impl KeySizeUser for Sm4 {
    type KeySize = U16;
}

impl KeyInit for Sm4 {
    fn new(key: &Key<Self>) -> Self {
        let mut k = [0u8; 16];
        k.copy_from_slice(key);
        let sm4 = Self::schedule(&k, best_engine());
        k.zeroize();
        sm4
    }
}

impl BlockSizeUser for Sm4 {
    type BlockSize = U16;
}

impl BlockCipherEncrypt for Sm4 {
    fn encrypt_with_backend(&self, f: impl BlockCipherEncClosure<BlockSize = U16>) {
        f.call(&Backend {
            sm4: self,
            rk: &self.enc,
        })
    }
}

impl BlockCipherDecrypt for Sm4 {
    fn decrypt_with_backend(&self, f: impl BlockCipherDecClosure<BlockSize = U16>) {
        f.call(&Backend {
            sm4: self,
            rk: &self.dec,
        })
    }
}

/// One direction of a key, as the `cipher` traits' backends: 64 blocks in
/// parallel (`ParBlocksSize`), so CTR and the tails go through the vector
/// paths whole.
struct Backend<'a> {
    sm4: &'a Sm4,
    rk: &'a [u32; 32],
}

impl BlockSizeUser for Backend<'_> {
    type BlockSize = U16;
}

impl ParBlocksSizeUser for Backend<'_> {
    type ParBlocksSize = cipher::consts::U64;
}

/// The `cipher` traits hand over blocks as in/out pairs: the input is
/// copied to the output (unless they are the same memory) and the blocks
/// are encrypted there.
impl Backend<'_> {
    fn one(&self, block: InOut<'_, '_, Block<Sm4>>) {
        let out: &mut [u8; 16] = block.into_out_with_copied_in().as_mut();
        self.sm4.crypt_in_place(self.rk, core::slice::from_mut(out));
    }

    fn par(&self, blocks: InOut<'_, '_, ParBlocks<Self>>) {
        let out = blocks.into_out_with_copied_in();
        self.sm4
            .crypt_in_place(self.rk, Array::cast_slice_to_core_mut(out.as_mut_slice()));
    }

    fn tail(&self, blocks: InOutBuf<'_, '_, Block<Sm4>>) {
        let out = blocks.into_out_with_copied_in();
        self.sm4
            .crypt_in_place(self.rk, Array::cast_slice_to_core_mut(out));
    }
}

impl BlockCipherEncBackend for Backend<'_> {
    fn encrypt_block(&self, block: InOut<'_, '_, Block<Self>>) {
        self.one(block)
    }

    fn encrypt_par_blocks(&self, blocks: InOut<'_, '_, ParBlocks<Self>>) {
        self.par(blocks)
    }

    fn encrypt_tail_blocks(&self, blocks: InOutBuf<'_, '_, Block<Self>>) {
        self.tail(blocks)
    }
}

impl BlockCipherDecBackend for Backend<'_> {
    fn decrypt_block(&self, block: InOut<'_, '_, Block<Self>>) {
        self.one(block)
    }

    fn decrypt_par_blocks(&self, blocks: InOut<'_, '_, ParBlocks<Self>>) {
        self.par(blocks)
    }

    fn decrypt_tail_blocks(&self, blocks: InOutBuf<'_, '_, Block<Self>>) {
        self.tail(blocks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex16(s: &str) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    /// GB/T 32907-2016 Appendix A, example 1, on every path this CPU runs.
    #[test]
    fn standard_vector_on_every_path() {
        let key = hex16("0123456789abcdeffedcba9876543210");
        let expect = hex16("681edf34d206965e86b3e94f536e4246");
        for path in Path::ALL.into_iter().filter(|p| p.available()) {
            let sm4 = Sm4::with_path(&key, path).unwrap();
            let mut blocks = [key; 3];
            sm4.encrypt_blocks_in_place(&mut blocks);
            assert_eq!(blocks, [expect; 3], "{path:?}");
            let mut b = Block::<Sm4>::from(expect);
            sm4.decrypt_block(&mut b);
            assert_eq!(b.as_slice(), key.as_slice(), "{path:?}");
        }
    }

    /// Example 2: the plaintext encrypted 1,000,000 times.
    #[test]
    fn standard_vector_a_million_times() {
        let key = hex16("0123456789abcdeffedcba9876543210");
        let sm4 = Sm4::new(&Key::<Sm4>::from(key));
        let mut one = [key];
        for _ in 0..1_000_000 {
            sm4.encrypt_blocks_in_place(&mut one);
        }
        assert_eq!(one[0], hex16("595298c7c6fd271f0402f804c33d3f66"));
    }
}
