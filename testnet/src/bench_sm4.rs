//! The SM4 half of `testnet bench crypto` (issue 15, item 1): RustCrypto's
//! table-based `sm4` (what the channel used before) against each path of
//! `pki::sm4` this CPU runs, raw and in GCM and CCM on 16 KiB (a full TLS
//! record), next to Debian's OpenSSL measured in the same run (`openssl
//! speed -evp`: SM4-ECB and SM4-CTR; OpenSSL 3.0 has no SM4-GCM or
//! SM4-CCM) and AES-128-GCM for scale. Then a dudect-style timing check of
//! each implementation (Reparaz, Balasch, Verbauwhede, "Dude, is my code
//! constant time?", 2017): Welch's t-test between encryptions of a fixed
//! input and of random inputs, interleaved at random.
//!
//! The TLS and QUIC record layers are in `testnet bench channel`.

use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::{AeadInOut, KeyInit};
use pki::sm4::{Path, Sm4};
use std::time::Instant;

/// Issue 15's goals for SM4-GCM on one core (MB/s).
const GOAL_GCM_GFNI: f64 = 1000.0;
const GOAL_GCM_AESNI: f64 = 500.0;
/// dudect's threshold: |t| above it means the timings tell the classes apart.
const T_THRESHOLD: f64 = 4.5;

const RECORD: usize = 16 * 1024;
const KEY: [u8; 16] = *b"bench SM4 key 16";
const NONCE: [u8; 12] = *b"bench nonce!";

type Gcm<C> = aes_gcm::AesGcm<C, U12>;
type Ccm<C> = ccm::Ccm<C, U16, U12>;

/// Times of a figure in one pass over the table (s): a warm-up, then the
/// timed run.
#[derive(Clone, Copy)]
struct Timing {
    warm_up: f64,
    seconds: f64,
}

/// Passes over the whole table; each figure is the median of its passes.
/// A slow spell of the machine (here they last seconds) spoils one pass of
/// each figure rather than all of one figure, and the median drops it.
const PASSES: usize = 10;

/// One implementation's figures (MB/s of plaintext).
struct Row {
    name: String,
    raw: f64,
    gcm_seal: f64,
    gcm_open: f64,
    ccm_seal: f64,
    ccm_open: f64,
    /// The slower of GCM seal and open, pass by pass (the goal's figure).
    gcm_slower: f64,
}

impl Row {
    fn figures(&self) -> [f64; 6] {
        [
            self.raw,
            self.gcm_seal,
            self.gcm_open,
            self.ccm_seal,
            self.ccm_open,
            self.gcm_slower,
        ]
    }

    /// Each figure's median over the passes (rows of one name).
    fn median(passes: &[&Row]) -> Row {
        let [raw, gcm_seal, gcm_open, ccm_seal, ccm_open, gcm_slower] = std::array::from_fn(|i| {
            let mut v: Vec<f64> = passes.iter().map(|r| r.figures()[i]).collect();
            crate::bench::median(&mut v)
        });
        Row {
            name: passes[0].name.clone(),
            raw,
            gcm_seal,
            gcm_open,
            ccm_seal,
            ccm_open,
            gcm_slower,
        }
    }
}

fn micros(t: Timing, op: &mut dyn FnMut()) -> f64 {
    crate::bench::micros_per_op_after(t.warm_up, t.seconds, op)
}

fn mb_per_s(t: Timing, bytes: usize, op: &mut dyn FnMut()) -> f64 {
    bytes as f64 / micros(t, op)
}

/// Seal and open one record with `aead`, timed apart.
fn aead_rates<A: AeadInOut>(t: Timing, aead: &A) -> (f64, f64) {
    let mut buf = vec![0x5au8; RECORD];
    let nonce = aes_gcm::aead::Nonce::<A>::try_from(&NONCE[..]).expect("12-byte nonce");
    let seal = mb_per_s(t, RECORD, &mut || {
        let tag = aead
            .encrypt_inout_detached(&nonce, b"aad", buf.as_mut_slice().into())
            .expect("seal");
        std::hint::black_box(tag);
    });
    // A sealed record to open again and again (opening decrypts in place,
    // so each round re-seals from the same plaintext first, timed apart).
    let plain = vec![0x5au8; RECORD];
    let mut sealed = plain.clone();
    let tag = aead
        .encrypt_inout_detached(&nonce, b"aad", sealed.as_mut_slice().into())
        .expect("seal");
    let mut work = sealed.clone();
    let quarter = Timing {
        seconds: t.seconds / 4.0,
        ..t
    };
    let us_copy = micros(quarter, &mut || {
        work.copy_from_slice(&sealed);
        std::hint::black_box(&work);
    });
    let us_open = micros(t, &mut || {
        work.copy_from_slice(&sealed);
        aead.decrypt_inout_detached(&nonce, b"aad", work.as_mut_slice().into(), &tag)
            .expect("open");
    });
    (seal, RECORD as f64 / (us_open - us_copy).max(1e-3))
}

fn row_for<C>(t: Timing, name: String, cipher: impl Fn() -> C, raw: f64) -> Row
where
    C: sm4::cipher::BlockCipherEncrypt<BlockSize = U16> + Clone,
    Gcm<C>: From<C> + AeadInOut,
    Ccm<C>: From<C> + AeadInOut,
{
    let (gcm_seal, gcm_open) = aead_rates(t, &Gcm::from(cipher()));
    let (ccm_seal, ccm_open) = aead_rates(t, &Ccm::from(cipher()));
    Row {
        name,
        raw,
        gcm_seal,
        gcm_open,
        ccm_seal,
        ccm_open,
        gcm_slower: gcm_seal.min(gcm_open),
    }
}

/// `openssl speed -evp ALG` on 16 KiB, in MB/s.
fn openssl_speed(alg: &str, seconds: f64) -> Option<f64> {
    let out = std::process::Command::new("openssl")
        .args(["speed", "-evp", alg, "-bytes", "16384", "-seconds"])
        .arg(format!("{}", seconds.ceil().max(1.0) as u64))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| {
        l.to_ascii_lowercase()
            .starts_with(&alg.to_ascii_lowercase())
    })?;
    let kb: f64 = line
        .split_whitespace()
        .last()?
        .trim_end_matches('k')
        .parse()
        .ok()?;
    Some(kb / 1000.0)
}

/// Welch's t between the two classes' timings.
fn welch_t(a: &[f64], b: &[f64]) -> f64 {
    let stats = |x: &[f64]| {
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (n, mean, var)
    };
    let (na, ma, va) = stats(a);
    let (nb, mb, vb) = stats(b);
    (ma - mb) / (va / na + vb / nb).sqrt()
}

/// dudect: `samples` encryptions of 16 blocks, each of the fixed input
/// (class 0, all zero) or of a fresh random one (class 1), the class drawn
/// at random; the largest |t| over the raw timings and over the timings
/// cropped at the pooled 50th, 75th, 90th and 99th percentiles (dudect's
/// way of discarding interrupts and other noise, which is one-sided).
fn timing_check(samples: usize, mut encrypt: impl FnMut(&mut [[u8; 16]; 16])) -> f64 {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut timings: [Vec<f64>; 2] = [Vec::with_capacity(samples), Vec::with_capacity(samples)];
    // Warm-up, so both classes start from the same caches.
    for _ in 0..samples / 20 {
        encrypt(&mut [[0u8; 16]; 16]);
    }
    // As dudect does, the inputs of a batch are made before any is timed,
    // so the timed region is the encryption alone, whatever the class.
    const BATCH: usize = 4096;
    let mut inputs = vec![(0usize, [[0u8; 16]; 16]); BATCH];
    let mut done = 0;
    while done < samples {
        let n = BATCH.min(samples - done);
        for (class, blocks) in inputs[..n].iter_mut() {
            *class = (next() & 1) as usize;
            *blocks = [[0u8; 16]; 16];
            if *class == 1 {
                for b in blocks.iter_mut() {
                    b[..8].copy_from_slice(&next().to_le_bytes());
                    b[8..].copy_from_slice(&next().to_le_bytes());
                }
            }
        }
        for (class, blocks) in inputs[..n].iter_mut() {
            let start = Instant::now();
            encrypt(blocks);
            let ns = start.elapsed().as_nanos() as f64;
            timings[*class].push(ns);
        }
        done += n;
    }
    let mut pooled: Vec<f64> = timings.iter().flatten().copied().collect();
    pooled.sort_by(f64::total_cmp);
    let mut worst = welch_t(&timings[0], &timings[1]).abs();
    for pct in [0.5, 0.75, 0.9, 0.99] {
        let cut = pooled[((pooled.len() as f64) * pct) as usize];
        let crop = |v: &Vec<f64>| v.iter().copied().filter(|t| *t <= cut).collect::<Vec<_>>();
        let (a, b) = (crop(&timings[0]), crop(&timings[1]));
        if a.len() > 100 && b.len() > 100 {
            worst = worst.max(welch_t(&a, &b).abs());
        }
    }
    worst
}

/// One pass over the table: the old crate, then each path this CPU runs.
fn table(t: Timing, paths: &[Path]) -> Vec<Row> {
    use sm4::cipher::BlockCipherEncrypt as _;
    let raw_blocks = RECORD / 16;
    let mut rows = Vec::new();
    let old = sm4::Sm4::new(&KEY.into());
    let mut blocks = vec![sm4::cipher::Block::<sm4::Sm4>::default(); raw_blocks];
    let raw = mb_per_s(t, RECORD, &mut || old.encrypt_blocks(&mut blocks));
    rows.push(row_for(
        t,
        "sm4 0.6 (table by secret index; old)".into(),
        || sm4::Sm4::new(&KEY.into()),
        raw,
    ));
    for path in paths {
        let new = || Sm4::with_path(&KEY, *path).expect("an available path");
        let sm4 = new();
        let mut blocks = vec![[0u8; 16]; raw_blocks];
        let raw = mb_per_s(t, RECORD, &mut || sm4.encrypt_blocks_in_place(&mut blocks));
        rows.push(row_for(t, format!("pki::sm4, {}", path.name()), new, raw));
    }
    rows
}

pub fn run(seconds: f64) -> anyhow::Result<()> {
    use sm4::cipher::BlockCipherEncrypt as _;
    let paths: Vec<Path> = Path::ALL.into_iter().filter(|p| p.available()).collect();
    let passes: Vec<Vec<Row>> = (0..PASSES)
        .map(|pass| {
            let t = Timing {
                // The first pass warms each figure up as one long run
                // would; later ones only refill the caches.
                warm_up: if pass == 0 {
                    (seconds / 5.0).max(0.2)
                } else {
                    0.02
                },
                seconds: seconds / PASSES as f64,
            };
            table(t, &paths)
        })
        .collect();
    let rows: Vec<Row> = (0..passes[0].len())
        .map(|i| Row::median(&passes.iter().map(|p| &p[i]).collect::<Vec<_>>()))
        .collect();
    let old = sm4::Sm4::new(&KEY.into());
    let ecb = openssl_speed("sm4-ecb", seconds);
    let ctr = openssl_speed("sm4-ctr", seconds);
    let aes = openssl_speed("aes-128-gcm", seconds);

    println!();
    println!(
        "SM4 on one core, 16 KiB a call, MB/s of plaintext ({seconds} s a figure in {PASSES} passes over the table, the median); CPU: {}",
        cpu_model()
    );
    println!(
        "{:<44} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "", "raw", "GCM seal", "GCM open", "CCM seal", "CCM open"
    );
    for r in &rows {
        println!(
            "{:<44} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0}",
            r.name, r.raw, r.gcm_seal, r.gcm_open, r.ccm_seal, r.ccm_open
        );
    }
    let fig = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    println!(
        "{:<44} {:>9} {:>9}",
        "Debian's OpenSSL 3.0, one run: SM4-ECB/CTR",
        fig(ecb),
        fig(ctr)
    );
    println!(
        "{:<44} {:>9} {:>9}",
        "Debian's OpenSSL 3.0, one run: AES-128-GCM",
        "",
        fig(aes)
    );
    let verdict = |v: f64, g: f64| if v >= g { "met" } else { "NOT met" };
    // Each path has its goal line, but a CPU runs one path (the fastest it
    // has, which `Sm4::new` picks).
    let chosen = format!("pki::sm4, {}", Path::best().name());
    println!("this CPU runs {chosen}");
    for r in rows.iter().skip(1) {
        let goal = if r.name.contains("GFNI") {
            GOAL_GCM_GFNI
        } else if r.name.contains("AES-NI") {
            GOAL_GCM_AESNI
        } else {
            continue;
        };
        let gcm = r.gcm_slower;
        let runs = if r.name == chosen {
            " (the path this CPU runs)"
        } else {
            ""
        };
        println!(
            "goal, {}: SM4-GCM {gcm:.0} MB/s (the slower of seal and open, pass by pass) against {goal:.0}: {}{runs}",
            r.name,
            verdict(gcm, goal)
        );
    }

    println!();
    println!(
        "Timing check (dudect: Welch's t, fixed against random input, 16 blocks a call; |t| > {T_THRESHOLD} means the timings leak)"
    );
    println!("{:<44} {:>9} {:>9}  verdict", "", "samples", "max |t|");
    let report = |name: &str, samples: usize, t: f64| {
        let v = if t > T_THRESHOLD {
            "timings differ"
        } else {
            "no difference found"
        };
        println!("{name:<44} {samples:>9} {t:>9.2}  {v}");
    };
    let samples = 200_000;
    let t = timing_check(samples, |b| {
        let mut blocks: Vec<sm4::cipher::Block<sm4::Sm4>> = b.iter().map(|x| (*x).into()).collect();
        old.encrypt_blocks(&mut blocks);
        std::hint::black_box(&blocks);
    });
    report("sm4 0.6 (table by secret index; old)", samples, t);
    for path in &paths {
        let sm4 = Sm4::with_path(&KEY, *path).expect("an available path");
        let samples = if *path == Path::Portable {
            20_000
        } else {
            samples
        };
        let t = timing_check(samples, |b| sm4.encrypt_blocks_in_place(b));
        report(&format!("pki::sm4, {}", path.name()), samples, t);
    }
    // The key varies too: a fixed (zero) key against random ones, timing the
    // key schedule and one block (the narrow pass), as a TLS or QUIC key
    // is set up and first used.
    println!("with the key as input too: key schedule + one block");
    let t = timing_check(samples / 4, |b| {
        let sm4 = sm4::Sm4::new(&b[0].into());
        let mut one = sm4::cipher::Block::<sm4::Sm4>::from(b[1]);
        sm4.encrypt_block(&mut one);
        std::hint::black_box(&one);
    });
    report("sm4 0.6 (table by secret index; old)", samples / 4, t);
    for path in &paths {
        let samples = if *path == Path::Portable {
            20_000
        } else {
            samples / 4
        };
        let t = timing_check(samples, |b| {
            let sm4 = Sm4::with_path(&b[0], *path).expect("an available path");
            let mut one = [b[1]];
            sm4.encrypt_blocks_in_place(&mut one);
            std::hint::black_box(&one);
        });
        report(&format!("pki::sm4, {}", path.name()), samples, t);
    }
    // Positive controls: code that leaks by design, timed the same way, so a
    // reader can see the check tells a leak when there is one. (The old
    // crate's table is 256 bytes, which stay in L1, so it shows none.)
    println!("controls that leak by design (the check should say \"timings differ\")");
    let t = timing_check(samples, |b| {
        let b = std::hint::black_box(b);
        // A compare against zero that stops at the first nonzero byte.
        let scanned = b.as_flattened().iter().take_while(|&&x| x == 0).count();
        std::hint::black_box(scanned);
    });
    report("early-exit compare of 256 bytes", samples, t);
    let t = timing_check(samples, |b| {
        // One branch on one input bit, taken half the time by random input
        // and never by the fixed one, with a few dependent multiplies behind
        // it (a few dozen cycles, counting the mispredictions).
        let b = std::hint::black_box(b);
        let mut acc = u64::from(b[0][0]);
        if std::hint::black_box(b[0][0] & 1) == 1 {
            for _ in 0..4 {
                acc = std::hint::black_box(acc.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            }
        }
        std::hint::black_box(acc);
    });
    report("one branch on a secret bit", samples, t);
    println!(
        "(what this check cannot see: a secret index into a table that stays in L1, as the old crate's"
    );
    println!(
        "256-byte S-box does; pki::sm4's paths have no secret index by construction, not by this check)"
    );
    Ok(())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}
