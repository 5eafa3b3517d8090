//! `testnet bench crypto`: the ShangMi primitives, old and new side by
//! side, next to Debian's OpenSSL measured in the same run (issue 15). SM4
//! is in `bench_sm4`. Here, SM2 verification: the `sm2` crate's constant-time verifier
//! (what the PDP used for certificates, tickets and TLS), its variable-time
//! form (what the PDP used for quotes), and `pki::sm2_verify` for a key
//! seen for the first time and for a key whose comb is cached; OpenSSL's
//! figure is `openssl speed sm2`.

use pki::sm2_verify::{verify_prehash_with, KeyCache};
use sm2::dsa::signature::hazmat::{PrehashSigner as _, PrehashVerifier as _};
use sm2::dsa::{Signature, SigningKey, VerifyingKey};
use sm2::{FieldBytes, PublicKey};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds each figure is timed: SM2's rows in one run after a warm-up
    /// of a fifth of that, SM4's in ten passes over the table.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
}

/// The goals of issue 15, item 2 (verifications per second on one core).
const GOAL_CACHED: f64 = 20_000.0;
const GOAL_NEW: f64 = 8_000.0;

/// The variable-time verification the PDP used for quotes before
/// `pki::sm2_verify`: the crate's `sG + tP` by its basepoint table and
/// wNAF.
fn previous_vartime(public: &PublicKey, e: &[u8; 32], sig: &Signature) -> bool {
    use sm2::elliptic_curve::group::Group as _;
    use sm2::elliptic_curve::ops::{MulByGeneratorVartime as _, Reduce as _};
    use sm2::elliptic_curve::point::AffineCoordinates as _;
    use sm2::{ProjectivePoint, Scalar};
    let (r, s) = (*sig.r(), *sig.s());
    let e = Scalar::reduce(&FieldBytes::from(*e));
    let t = r + s;
    if bool::from(t.is_zero()) {
        return false;
    }
    let point = ProjectivePoint::mul_by_generator_and_mul_add_vartime(
        &s,
        &t,
        &ProjectivePoint::from(public.as_affine()),
    );
    !bool::from(point.is_identity()) && e + Scalar::reduce(&point.to_affine().x()) == r
}

/// OpenSSL's SM2 verifications per second (`openssl speed sm2`).
fn openssl_sm2(seconds: f64) -> Option<f64> {
    let out = std::process::Command::new("openssl")
        .args([
            "speed",
            "-seconds",
            &format!("{}", seconds.ceil() as u64),
            "sm2",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("SM2"))?;
    line.split_whitespace().last()?.parse().ok()
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let micros = |op: &mut dyn FnMut()| crate::bench::micros_per_op(args.seconds, op);
    // 256 keys with a signature each, used in turn.
    let keys: Vec<(PublicKey, [u8; 32], Signature)> = (0..256u32)
        .map(|i| {
            let mut d = [0x11u8; 32];
            d[..4].copy_from_slice(&i.to_be_bytes());
            let key = SigningKey::from_bytes("1234567812345678", &FieldBytes::from(d))?;
            let e = {
                let mut e = [0x5au8; 32];
                e[..4].copy_from_slice(&i.to_le_bytes());
                e
            };
            let sig: Signature = key.sign_prehash(&e)?;
            Ok((
                PublicKey::from_affine(*key.verifying_key().as_affine())?,
                e,
                sig,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut i = 0usize;
    let mut next = || {
        i = (i + 1) % keys.len();
        &keys[i]
    };
    let constant_time = micros(&mut || {
        let (p, e, s) = next();
        let ok = VerifyingKey::new("1234567812345678", *p)
            .map(|k| k.verify_prehash(e, s).is_ok())
            .unwrap_or(false);
        assert!(ok);
    });
    let vartime = micros(&mut || {
        let (p, e, s) = next();
        assert!(previous_vartime(p, e, s));
    });
    let new_key = micros(&mut || {
        let (p, e, s) = next();
        // No cache: the w-NAF path.
        assert!(verify_prehash_with(None, p, e, s).is_ok());
    });
    // One key, its comb built (seen twice), as the PDP's enrolled AKs and
    // ticket key are.
    let cache = KeyCache::default();
    let (p, e, s) = &keys[0];
    for _ in 0..2 {
        verify_prehash_with(Some(&cache), p, e, s).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let cached = micros(&mut || {
        assert!(verify_prehash_with(Some(&cache), p, e, s).is_ok());
    });
    // 100 keys in turn, each with its comb (15 MiB of tables: a PDP with
    // many enrolled AKs, out of the CPU's caches).
    let many = KeyCache::default();
    for (p, e, s) in &keys[..100] {
        for _ in 0..2 {
            verify_prehash_with(Some(&many), p, e, s).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    let mut j = 0usize;
    let cached_many = micros(&mut || {
        j = (j + 1) % 100;
        let (p, e, s) = &keys[j];
        assert!(verify_prehash_with(Some(&many), p, e, s).is_ok());
    });
    let openssl = openssl_sm2(args.seconds);

    let per_s = |us: f64| 1e6 / us;
    println!(
        "SM2 verification, one core ({} s a row); pki::sm2_verify's field: {}",
        args.seconds,
        pki::sm2_verify::field_arithmetic()
    );
    println!("{:<58} {:>9} {:>12} {:>9}", "", "us", "per second", "goal");
    let row = |name: &str, us: f64, goal: Option<f64>| {
        println!(
            "{name:<58} {us:>9.1} {:>12.0} {:>9}",
            per_s(us),
            goal.map_or("-".to_string(), |g| format!(">= {g:.0}"))
        );
    };
    row(
        "sm2 0.14 verify_prehash (constant time; old)",
        constant_time,
        None,
    );
    row(
        "sm2 0.14 variable-time sG + tP (quotes, old)",
        vartime,
        None,
    );
    row(
        "pki::sm2_verify, a new key (G comb + w-NAF)",
        new_key,
        Some(GOAL_NEW),
    );
    row(
        "pki::sm2_verify, a key seen before (G comb + key comb)",
        cached,
        Some(GOAL_CACHED),
    );
    row(
        "pki::sm2_verify, 100 keys seen before, in turn",
        cached_many,
        Some(GOAL_CACHED),
    );
    match openssl {
        Some(v) => println!(
            "{:<58} {:>9.1} {:>12.0} {:>9}",
            "Debian's OpenSSL 3.0 (openssl speed sm2)",
            1e6 / v,
            v,
            "-"
        ),
        None => println!("Debian's OpenSSL: openssl speed sm2 gave no figure"),
    }
    let verdict = |v: f64, g: f64| if v >= g { "met" } else { "NOT met" };
    println!(
        "goal, keys seen before: {:.0}/s (one key) and {:.0}/s (100 in turn) against {GOAL_CACHED:.0}/s: {}; a new key: {:.0}/s against {GOAL_NEW:.0}/s: {}",
        per_s(cached),
        per_s(cached_many),
        verdict(per_s(cached_many).min(per_s(cached)), GOAL_CACHED),
        per_s(new_key),
        verdict(per_s(new_key), GOAL_NEW),
    );
    crate::bench_sm4::run(args.seconds)
}
