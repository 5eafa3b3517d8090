//! `testnet bench`: benchmarks that print a table.
//!
//! `bench appraise` measures `policy::appraise` on one core for one quote with a
//! 60-event boot log and a 5,000-entry IMA list, cold (the whole list, no earlier
//! state) and incremental (100 new entries after a remembered state), for an
//! ECDSA P-256 and an SM2 AK. Next to it, it times a bound: the work no
//! appraisal of that evidence can skip, the signature verification and the
//! hashing that ties the logs to the quoted PCRs. The goal (issue 3) is to stay
//! within 2x of that bound, and at 5,000 incremental appraisals/s or more.
//!
//! The evidence comes from the measured-boot simulator and a SOFTWARE AK
//! (`testnet::soft_ak`): keys in memory, not a TPM. Verification costs the same.

use anyhow::{ensure, Context};
use policy::appraisal::{appraise, Challenge, DeviceState, Evidence};
use policy::eventlog::{EventLog, EV_IPL, EV_NO_ACTION};
use policy::ima::{self, ImaEntries, ImaRecord};
use policy::quote::{sm2_verify_prehash_vartime, verify_quote, QuoteExpectation};
use policy::reference::{CompiledReference, CMDLINE_PCR, IMA_PCR};
use policy::tpm::{parse_selection, EccSignature, PcrSelection, Public, PublicKey, Signature};
use policy::{HashAlg, Verdict};
use ring::digest::{digest, Context as HashContext, SHA256};
use std::hint::black_box;
use std::ops::Range;
use std::time::{Duration, Instant};
use testnet::simulator::{Blob, Measurements, Profile};
use testnet::soft_ak::SoftAk;

/// The PCRs a verifier asks for: the boot chain (0-7), GRUB (8, 9) and IMA (10).
const SELECTION: &str = "sha256:0,1,2,3,4,5,6,7,8,9,10";
/// Measured boot events in the generated event log (the Spec ID header aside).
const BOOT_EVENTS: usize = 60;
/// IMA entries, boot_aggregate included.
const IMA_ENTRIES: usize = 5_000;
/// New IMA entries an incremental appraisal sees.
const INCREMENT: usize = 100;
/// The caller's clock passed to `appraise` (it is only stored in the state).
const NOW: u64 = 1_800_000_000;
/// Goals from issue 3.
const GOAL_RATIO: f64 = 2.0;
const GOAL_INCREMENTAL_PER_S: f64 = 5_000.0;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Appraisals per second on one core, cold and incremental, for ECDSA and
    /// SM2 AKs, next to the bound of signature verification plus PCR hashing.
    Appraise(AppraiseArgs),
    /// Whole integrity handshakes against the PDP on loopback: 1, 10 and 100
    /// concurrent clients over TCP and QUIC, p50/p99, memory per idle session.
    Handshake(crate::bench_handshake::Args),
    /// Genuine login latency under an idle flood and a guessing flood, next
    /// to the quiet figure (attackers on 127.0.0.2-5).
    Door(crate::bench_door::Args),
    /// The ShangMi channel next to the standard one: handshakes per second
    /// and their public-key bound, bulk MB/s over TLS and QUIC next to the
    /// raw AEAD.
    Channel(crate::bench_channel::Args),
    /// (Internal) the idle sessions of `bench handshake`'s memory figure.
    #[command(hide = true)]
    IdleClients(crate::bench_handshake::IdleArgs),
    /// Continuous trust at scale: persistent sessions re-assessed on an
    /// interval (PDP CPU, memory per idle session, round latency) and the
    /// revocation fan-out to subscribers.
    Continuous(crate::bench_continuous::Args),
    /// The admin API's latency over a fleet of enrolled devices (10,000 by
    /// default): the whole device list, a filtered one, a device's detail.
    Admin(crate::bench_admin::Args),
    /// (Internal) the endpoints of `bench continuous`.
    #[command(hide = true)]
    ContinuousClients(crate::bench_continuous::ClientArgs),
    /// The ShangMi primitives, old and new, next to Debian's OpenSSL: SM2
    /// verification for a new key and a key seen before.
    Crypto(crate::bench_crypto::Args),
}

#[derive(clap::Args, Debug)]
pub struct AppraiseArgs {
    /// Seconds each case is timed, after a warm-up of a fifth of that (0.2 s at least).
    #[arg(long, default_value_t = 3.0, value_parser = positive_seconds)]
    seconds: f64,
    /// Also time the phases of an appraisal (quote, event log, IMA parse, IMA
    /// replay, the rest), to show where the time goes.
    #[arg(long)]
    phases: bool,
    /// Only this case (for profiling one path with `perf record`).
    #[arg(long, value_enum)]
    case: Option<CaseFilter>,
    /// Only this AK.
    #[arg(long, value_enum)]
    ak: Option<AkFilter>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum CaseFilter {
    Cold,
    Incremental,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum AkFilter {
    Ecdsa,
    Sm2,
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 3_600.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds in (0, 3600]")),
    }
}

pub fn run(command: &Command) -> anyhow::Result<()> {
    match command {
        Command::Appraise(args) => appraise_bench(args),
        Command::Handshake(args) => crate::bench_handshake::run(args),
        Command::Door(args) => crate::bench_door::run(args),
        Command::Channel(args) => crate::bench_channel::run(args),
        Command::IdleClients(args) => crate::bench_handshake::idle_clients(args),
        Command::Continuous(args) => crate::bench_continuous::run(args),
        Command::Admin(args) => crate::bench_admin::run(args),
        Command::ContinuousClients(args) => crate::bench_continuous::clients(args),
        Command::Crypto(args) => crate::bench_crypto::run(args),
    }
}

/// A profile of a busy endpoint: 20 firmware volumes, 12 Secure Boot variables
/// and 15 boot applications make, with the S-CRTM version, the EFI action, the
/// 8 separators, the command line, the kernel and the initrd, 60 boot events;
/// 4,999 files after boot_aggregate make 5,000 IMA entries.
fn busy_profile() -> Profile {
    let blob = |path: String, content: String| Blob { path, content };
    let firmware = (0..20)
        .map(|i| {
            blob(
                format!("FV{i:02}"),
                format!("firmware volume {i} of release 2024.05"),
            )
        })
        .collect();
    let secure_boot = (0..12)
        .map(|i| {
            (
                format!("BenchVar{i:02}"),
                format!("secure boot variable {i}"),
            )
        })
        .collect();
    let bootloader = (0..15)
        .map(|i| {
            blob(
                format!("\\EFI\\bench\\app{i:02}.efi"),
                format!("boot application {i}, signed by the distribution"),
            )
        })
        .collect();
    let key_applications = vec![
        "/usr/lib/systemd/systemd".to_string(),
        "/usr/sbin/sshd".to_string(),
        "/usr/bin/tnc-client".to_string(),
    ];
    let mut ima: Vec<Blob> = key_applications
        .iter()
        .map(|p| blob(p.clone(), format!("{p} 1.0")))
        .collect();
    let mut i = 0;
    while ima.len() < IMA_ENTRIES - 1 {
        ima.push(blob(
            format!("/usr/lib/x86_64-linux-gnu/libbench{i:04}.so.1"),
            format!("shared object {i}"),
        ));
        i += 1;
    }
    Profile {
        name: "bench-busy".into(),
        role: "terminal".into(),
        banks: vec!["sha1".into(), "sha256".into()],
        firmware_version: "Bench firmware 2024.05".into(),
        firmware,
        secure_boot,
        bootloader,
        kernel: blob(
            "/boot/vmlinuz-6.1.0-27-amd64".into(),
            "linux 6.1.0-27 kernel image".into(),
        ),
        initrd: blob(
            "/boot/initrd.img-6.1.0-27-amd64".into(),
            "initramfs for 6.1.0-27".into(),
        ),
        cmdline: "BOOT_IMAGE=/vmlinuz-6.1.0-27-amd64 root=/dev/sda1 ro quiet ima_policy=tcb".into(),
        ima,
        key_applications,
    }
}

/// One appraisal's inputs, ready to be appraised again and again.
struct Case {
    name: &'static str,
    ak: Public,
    nonce: Vec<u8>,
    attest: Vec<u8>,
    signature: Vec<u8>,
    ima: Vec<u8>,
    ima_offset: usize,
    prior: Option<DeviceState>,
}

impl Case {
    fn evidence<'a>(&'a self, m: &'a Measurements) -> Evidence<'a> {
        Evidence {
            attest: &self.attest,
            signature: &self.signature,
            event_log: &m.event_log,
            ima: &self.ima,
            ima_offset: self.ima_offset,
        }
    }

    fn appraise(
        &self,
        m: &Measurements,
        selection: &[PcrSelection],
        reference: &CompiledReference,
    ) -> policy::Appraisal {
        let challenge = Challenge {
            nonce: &self.nonce,
            selection,
            allow_sha1: false,
        };
        appraise(
            &self.ak,
            &self.evidence(m),
            &challenge,
            reference,
            self.prior.as_ref(),
            NOW,
        )
    }
}

/// Everything one AK needs: the cold case and the incremental one.
fn cases(
    ak: &mut SoftAk,
    m: &Measurements,
    selection: &[PcrSelection],
    reference: &CompiledReference,
) -> anyhow::Result<[Case; 2]> {
    let total = m.ima_entries();
    let public = ak.public();
    let quote = |ak: &mut SoftAk, nonce: &[u8], ima_entries: usize| {
        ak.quote(nonce, selection, &m.pcr_values_after(ima_entries))
    };

    let nonce = b"bench-cold-0001".to_vec();
    let (attest, signature) = quote(ak, &nonce, total);
    let cold = Case {
        name: "cold",
        ak: public.clone(),
        nonce,
        attest,
        signature,
        ima: m.ima.clone(),
        ima_offset: 0,
        prior: None,
    };

    // The state of an earlier round that saw all but the last INCREMENT entries.
    let earlier_entries = total - INCREMENT;
    let nonce = b"bench-earlier-01".to_vec();
    let (attest, signature) = quote(ak, &nonce, earlier_entries);
    let earlier = Case {
        name: "earlier",
        ak: public.clone(),
        nonce,
        attest,
        signature,
        ima: m.ima_range(0, earlier_entries),
        ima_offset: 0,
        prior: None,
    };
    let prior = checked(&earlier, m, selection, reference)?;
    ensure!(prior.ima_entries == earlier_entries);

    let nonce = b"bench-incr-00001".to_vec();
    let (attest, signature) = quote(ak, &nonce, total);
    let incremental = Case {
        name: "incremental",
        ak: public,
        nonce,
        attest,
        signature,
        ima: m.ima_range(earlier_entries, total),
        ima_offset: earlier_entries,
        prior: Some(prior),
    };
    Ok([cold, incremental])
}

/// Appraises once and insists on Allow: a benchmark of a refusal would measure
/// an early return.
fn checked(
    case: &Case,
    m: &Measurements,
    selection: &[PcrSelection],
    reference: &CompiledReference,
) -> anyhow::Result<DeviceState> {
    let a = case.appraise(m, selection, reference);
    let findings: Vec<String> = a.findings.iter().map(ToString::to_string).collect();
    ensure!(
        a.verdict == Verdict::Allow && findings.is_empty(),
        "the {} appraisal is {}, not allow:\n{}",
        case.name,
        a.verdict,
        findings.join("\n")
    );
    a.next_state
        .with_context(|| format!("the {} appraisal remembered no state", case.name))
}

/// Runs `op` for `limit`; the mean time of one run, in µs.
fn run_for(limit: Duration, op: &mut impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut runs = 0u64;
    loop {
        op();
        runs += 1;
        let elapsed = start.elapsed();
        if elapsed >= limit {
            return elapsed.as_secs_f64() * 1e6 / runs as f64;
        }
    }
}

/// Runs `op` for `seconds` after a warm-up; the mean time of one run, in µs.
pub(crate) fn micros_per_op(seconds: f64, op: impl FnMut()) -> f64 {
    micros_per_op_after((seconds / 5.0).max(0.2), seconds, op)
}

/// Runs `op` for `warm_up`, then for `seconds`; the mean time of one run of
/// the second, in µs.
pub(crate) fn micros_per_op_after(warm_up: f64, seconds: f64, mut op: impl FnMut()) -> f64 {
    run_for(Duration::from_secs_f64(warm_up), &mut op);
    run_for(Duration::from_secs_f64(seconds), &mut op)
}

/// Rounds in which an appraisal and its bound take turns.
const ROUNDS: u32 = 10;

/// Times `a` and `b` for `seconds` each, in [`ROUNDS`] alternating slices,
/// and returns the median µs per run of each. A ratio of two figures taken
/// one after the other drifts with whatever else the machine does meanwhile;
/// taken in turns, both see the same machine, and a burst of load spoils one
/// slice of each, which the median drops.
fn interleaved_micros(seconds: f64, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    let warm_up = Duration::from_secs_f64((seconds / 10.0).max(0.1));
    run_for(warm_up, &mut a);
    run_for(warm_up, &mut b);
    let slice = Duration::from_secs_f64(seconds / f64::from(ROUNDS));
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        xs.push(run_for(slice, &mut a));
        ys.push(run_for(slice, &mut b));
    }
    (median(&mut xs), median(&mut ys))
}

/// The value at `p` (0..=1) of sorted samples, NaN for none.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// This process's resident memory, from /proc/self/status.
pub(crate) fn rss_kib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// This process's CPU time (user + system, all threads), from
/// /proc/self/stat, in seconds (10 ms resolution).
pub(crate) fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The work no appraisal of this evidence can skip, on raw bytes located
/// beforehand: verifying the signature (which hashes TPMS_ATTEST), and
/// recomputing the quoted PCRs, i.e. SHA-256 of each IMA entry's template data
/// and one SHA-256 extend per entry and per sha256-bank boot event, then
/// boot_aggregate (cold), the command line digest and the quote's PCR digest.
struct Bound {
    signature: SignatureCheck,
    attest: Vec<u8>,
    ima: Vec<u8>,
    /// Template data of each new IMA entry, within `ima`.
    template_data: Vec<Range<usize>>,
    /// PCR 10 before the new entries.
    pcr10_start: [u8; 32],
    /// (PCR, SHA-256 digest) of each boot event, in log order.
    boot_extends: Vec<(u32, [u8; 32])>,
    /// The EV_IPL data whose digest must be checked before its text is trusted.
    cmdline: Vec<u8>,
    /// Whether the list starts with boot_aggregate (cold).
    boot_aggregate: bool,
}

enum SignatureCheck {
    /// Uncompressed point; r || s.
    Ecdsa { point: Vec<u8>, rs: Vec<u8> },
    Sm2 {
        key: Box<sm2::PublicKey>,
        sig: sm2::dsa::Signature,
    },
}

fn left_pad_32(v: &[u8]) -> anyhow::Result<[u8; 32]> {
    let start = v.iter().position(|&b| b != 0).unwrap_or(v.len());
    let v = &v[start..];
    ensure!(v.len() <= 32, "a 256-bit value is {} bytes long", v.len());
    let mut out = [0u8; 32];
    out[32 - v.len()..].copy_from_slice(v);
    Ok(out)
}

fn sha256_array(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = HashContext::new(&SHA256);
    parts.iter().for_each(|p| ctx.update(p));
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

impl Bound {
    fn new(case: &Case, m: &Measurements) -> anyhow::Result<Self> {
        let PublicKey::Ecc(key) = &case.ak.key else {
            anyhow::bail!("the bench AKs are ECC keys");
        };
        let mut point = vec![0x04];
        point.extend_from_slice(&left_pad_32(&key.x)?);
        point.extend_from_slice(&left_pad_32(&key.y)?);
        let rs = |s: &EccSignature| -> anyhow::Result<Vec<u8>> {
            Ok([left_pad_32(&s.r)?, left_pad_32(&s.s)?].concat())
        };
        let signature = match Signature::parse(&case.signature)? {
            Signature::Ecdsa(s) => SignatureCheck::Ecdsa { rs: rs(&s)?, point },
            Signature::Sm2(s) => {
                let public = sm2::PublicKey::from_sec1_bytes(&point)
                    .map_err(|_| anyhow::anyhow!("not an SM2 point"))?;
                let sig = sm2::dsa::Signature::from_slice(&rs(&s)?)
                    .map_err(|_| anyhow::anyhow!("not an SM2 signature"))?;
                SignatureCheck::Sm2 {
                    key: Box::new(public),
                    sig,
                }
            }
            other => anyhow::bail!("unexpected signature {other:?}"),
        };

        let mut template_data = Vec::new();
        let mut entries = ImaEntries::new(&case.ima);
        for entry in entries.by_ref() {
            let entry = entry?;
            // ima-ng: PCR, digest, name length, name, data length, data.
            let start = entry.offset + 4 + 20 + 4 + entry.template.name().len() + 4;
            let range = start..start + entry.template_data.len();
            ensure!(case.ima.get(range.clone()) == Some(&entry.template_data[..]));
            template_data.push(range);
        }
        let pcr10_start = match &case.prior {
            None => [0; 32],
            Some(p) => left_pad_32(p.pcr10.get(&HashAlg::Sha256).context("no sha256 PCR 10")?)?,
        };

        let log = EventLog::parse(&m.event_log)?;
        let mut boot_extends = Vec::new();
        let mut cmdline = Vec::new();
        for e in &log.events {
            if e.event_type == EV_NO_ACTION {
                continue;
            }
            let d = e.digest(HashAlg::Sha256).context("a sha256 digest")?;
            boot_extends.push((e.pcr, left_pad_32(d)?));
            if e.pcr == CMDLINE_PCR && e.event_type == EV_IPL {
                cmdline = e.data.to_vec();
            }
        }
        Ok(Self {
            signature,
            attest: case.attest.clone(),
            ima: case.ima.clone(),
            template_data,
            pcr10_start,
            boot_extends,
            cmdline,
            boot_aggregate: case.ima_offset == 0,
        })
    }

    fn boot_event_count(&self) -> usize {
        self.boot_extends.len()
    }

    /// The signature verification alone.
    fn verify(&self) -> bool {
        match &self.signature {
            SignatureCheck::Ecdsa { point, rs } => ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                point,
            )
            .verify(&self.attest, rs)
            .is_ok(),
            SignatureCheck::Sm2 { key, sig } => {
                let mut prehash = [0u8; 32];
                prehash.copy_from_slice(digest(&SHA256, &self.attest).as_ref());
                sm2_verify_prehash_vartime(key, &prehash, sig)
            }
        }
    }

    /// One run of the bound; returns something the optimiser must compute.
    fn run(&self) -> bool {
        let signed = self.verify();
        let mut pcrs = [[0u8; 32]; 11];
        for (pcr, d) in &self.boot_extends {
            let p = &mut pcrs[*pcr as usize];
            *p = sha256_array(&[p, d]);
        }
        let cmdline = digest(&SHA256, &self.cmdline);
        let mut pcr10 = self.pcr10_start;
        for range in &self.template_data {
            let template_hash = digest(&SHA256, &self.ima[range.clone()]);
            pcr10 = sha256_array(&[&pcr10, template_hash.as_ref()]);
        }
        pcrs[IMA_PCR as usize] = pcr10;
        let aggregate = if self.boot_aggregate {
            let parts: Vec<&[u8]> = pcrs[..10].iter().map(|p| &p[..]).collect();
            sha256_array(&parts)[0]
        } else {
            0
        };
        let parts: Vec<&[u8]> = pcrs.iter().map(|p| &p[..]).collect();
        let pcr_digest = sha256_array(&parts);
        black_box((cmdline.as_ref()[0], aggregate, pcr_digest));
        signed
    }
}

/// The entries of an IMA list, borrowed, numbered from `first_index`.
fn records(ima: &[u8], first_index: usize) -> Result<Vec<ImaRecord<'_>>, ima::ImaError> {
    let mut entries = ImaEntries::new(ima).starting_at_index(first_index);
    std::iter::from_fn(|| entries.next_record()).collect()
}

/// The phases of `appraise`, each timed alone through policy's public functions.
/// `appraise` runs the IMA phases as one pass over the list; here each is timed
/// on its own (the replay over records parsed beforehand).
fn print_phases(
    case: &Case,
    ak_name: &str,
    total_us: f64,
    seconds: f64,
    m: &Measurements,
    selection: &[PcrSelection],
) -> anyhow::Result<()> {
    let signature = Signature::parse(&case.signature)?;
    let expectation = QuoteExpectation {
        nonce: &case.nonce,
        selection: Some(selection),
        pcr_values: None,
        allow_sha1: false,
    };
    let parsed = records(&case.ima, case.ima_offset)?;
    let start = case.prior.as_ref().map(|p| &p.pcr10);
    let banks = [HashAlg::Sha256];
    let unchecked = ima::ReplayOptions {
        check_template_digests: false,
        ..ima::ReplayOptions::default()
    };
    let log = EventLog::parse(&m.event_log)?;
    let seconds = (seconds / 3.0).max(0.3);

    let sha1_us = micros_per_op(seconds, || {
        for r in &parsed {
            black_box(r.template_hash(HashAlg::Sha1));
        }
    });
    let phases: Vec<(&str, f64)> = vec![
        (
            "quote: parse + verify_quote",
            micros_per_op(seconds, || {
                let s = Signature::parse(black_box(&case.signature));
                let q = verify_quote(&case.ak, &case.attest, &signature, &expectation);
                black_box((s.is_ok(), q.is_ok()));
            }),
        ),
        (
            "event log: EventLog::parse",
            micros_per_op(seconds, || {
                black_box(EventLog::parse(black_box(&m.event_log)).is_ok());
            }),
        ),
        (
            "event log: replay (quoted sha256 bank)",
            micros_per_op(seconds, || {
                black_box(log.replay_banks(&banks));
            }),
        ),
        (
            "IMA: parse (borrowed records, none kept)",
            micros_per_op(seconds, || {
                let mut entries =
                    ImaEntries::new(black_box(&case.ima)).starting_at_index(case.ima_offset);
                while let Some(record) = entries.next_record() {
                    black_box(record.is_ok());
                }
            }),
        ),
        (
            "IMA: replay (sha256 bank, no SHA-1 check)",
            micros_per_op(seconds, || {
                let replay = ima::ImaReplay::new(&banks, start, unchecked).map(|mut r| {
                    parsed
                        .iter()
                        .try_for_each(|e| r.extend(e))
                        .map(|()| r.finish())
                });
                black_box(replay.is_ok());
            }),
        ),
    ];
    let measured: f64 = phases.iter().map(|(_, us)| us).sum();
    println!();
    println!("phases of one {} appraisal, {ak_name} AK:", case.name);
    println!("  {:<44} | {:>9} | {:>5}", "phase", "µs", "share");
    for (name, us) in &phases {
        println!("  {name:<44} | {us:>9.1} | {:>4.0}%", 100.0 * us / total_us);
    }
    let rest = total_us - measured;
    println!(
        "  {:<44} | {rest:>9.1} | {:>4.0}%",
        "rest: reference comparison, findings, state",
        100.0 * rest / total_us
    );
    println!(
        "  {:<44} | {sha1_us:>9.1} |",
        "not done: SHA-1 of template data (ring)"
    );
    Ok(())
}

struct Row {
    case: &'static str,
    ak: &'static str,
    appraisal_us: f64,
    bound_us: f64,
    signature_us: f64,
}

fn appraise_bench(args: &AppraiseArgs) -> anyhow::Result<()> {
    let profile = busy_profile();
    let m = profile
        .measure()
        .map_err(anyhow::Error::msg)
        .context("measuring the bench profile")?;
    let reference = profile
        .reference_values()
        .map_err(anyhow::Error::msg)?
        .compile()
        .context("compiling the bench reference values")?;
    let selection = parse_selection(SELECTION).context("the bench PCR selection")?;
    ensure!(
        m.ima_entries() == IMA_ENTRIES,
        "{} IMA entries",
        m.ima_entries()
    );

    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let mut rows = Vec::new();
    let mut phase_inputs = Vec::new();
    let aks = [
        (AkFilter::Ecdsa, SoftAk::generate()),
        (AkFilter::Sm2, SoftAk::generate_sm2()),
    ];
    for (ak_kind, mut ak) in aks {
        if args.ak.is_some_and(|only| only != ak_kind) {
            continue;
        }
        let ak_name = ak.algorithm();
        for (case_kind, case) in [CaseFilter::Cold, CaseFilter::Incremental]
            .into_iter()
            .zip(cases(&mut ak, &m, &selection, &reference)?)
        {
            if args.case.is_some_and(|only| only != case_kind) {
                continue;
            }
            checked(&case, &m, &selection, &reference)?;
            let bound = Bound::new(&case, &m)?;
            ensure!(bound.run(), "the bound's signature check fails");
            ensure!(
                bound.boot_event_count() == BOOT_EVENTS,
                "{} boot events",
                bound.boot_event_count()
            );
            let (appraisal_us, bound_us) = interleaved_micros(
                args.seconds,
                || {
                    black_box(case.appraise(&m, black_box(&selection), &reference));
                },
                || {
                    black_box(bound.run());
                },
            );
            let signature_us = micros_per_op(args.seconds / 3.0, || {
                black_box(bound.verify());
            });
            rows.push(Row {
                case: case.name,
                ak: ak_name,
                appraisal_us,
                bound_us,
                signature_us,
            });
            phase_inputs.push((case, ak_name, appraisal_us));
        }
    }

    println!(
        "testnet bench appraise: policy::appraise on one quote ({SELECTION}; banks sha1+sha256),"
    );
    println!(
        "  a {BOOT_EVENTS}-event boot log and a {IMA_ENTRIES}-entry ima-ng list; incremental = \
         {INCREMENT} new entries after a remembered state."
    );
    println!(
        "machine: {cpus} CPUs (nproc); timed on ONE thread, i.e. one core; {:.1} s per figure after a warm-up,\n  appraisal and bound in {ROUNDS} alternating slices, median of the slices.",
        args.seconds
    );
    println!("AKs are SOFTWARE keys (testnet::soft_ak), not a TPM; verification costs the same.");
    println!();
    println!(
        "{:<12} | {:<11} | {:>12} | {:>12} | {:>8} | {:>5} | {:>19}",
        "case", "AK", "appraisals/s", "µs/appraisal", "bound µs", "ratio", "of bound: sig µs"
    );
    println!("{}", "-".repeat(12 + 11 + 12 + 12 + 8 + 5 + 19 + 18));
    for r in &rows {
        println!(
            "{:<12} | {:<11} | {:>12.0} | {:>12.1} | {:>8.1} | {:>5.2} | {:>19.1}",
            r.case,
            r.ak,
            1e6 / r.appraisal_us,
            r.appraisal_us,
            r.bound_us,
            r.appraisal_us / r.bound_us,
            r.signature_us
        );
    }
    println!();
    println!(
        "bound = the signature verification (ring ECDSA_P256_SHA256_FIXED / policy's variable-time SM2 verifier, \
         SHA-256 of TPMS_ATTEST included)"
    );
    println!(
        "  + SHA-256 of each new IMA entry's template data + one SHA-256 extend per new entry"
    );
    println!(
        "  + one SHA-256 extend per boot event (sha256 bank) + the command line digest + \
         boot_aggregate (cold) + the PCR digest."
    );
    println!(
        "  Not in the bound: parsing, reference lookups, findings. (appraise checks the logged \
         SHA-1 template digests only to name an altered entry after a replay mismatch.)"
    );
    println!();
    let worst_ratio = rows
        .iter()
        .map(|r| r.appraisal_us / r.bound_us)
        .fold(0.0, f64::max);
    let slowest_incremental = rows
        .iter()
        .filter(|r| r.case == "incremental")
        .map(|r| 1e6 / r.appraisal_us)
        .reduce(f64::min);
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "goal: within {GOAL_RATIO}x of the bound: {} (worst ratio {worst_ratio:.2})",
        verdict(worst_ratio <= GOAL_RATIO)
    );
    if let Some(slowest) = slowest_incremental {
        println!(
            "goal: incremental >= {GOAL_INCREMENTAL_PER_S:.0} appraisals/s: {} (slowest {slowest:.0}/s)",
            verdict(slowest >= GOAL_INCREMENTAL_PER_S)
        );
    }

    if args.phases {
        for (case, ak_name, total_us) in &phase_inputs {
            print_phases(case, ak_name, *total_us, args.seconds, &m, &selection)?;
        }
    }
    Ok(())
}
