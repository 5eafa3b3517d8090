//! `testnet bench continuous` (issue 13, item 6): continuous trust at scale.
//!
//! 1. Persistent sessions: a PDP (in this process, alone, so that its CPU
//!    time and memory are this process's) keeps `--endpoints` sessions open
//!    and re-assesses each every `--interval` seconds (jitter 10 %). The
//!    endpoints run in a child process (this binary, `bench
//!    continuous-clients`): SOFTWARE attestation keys enrolled in the PDP's
//!    store, as `bench handshake` uses, labelled so. Printed: the PDP's CPU
//!    over a measured window, its memory per idle session (RSS growth with
//!    every session open, over their number), and the re-assessment latency
//!    the endpoints saw (SRETRY in to RESULT in), p50/p99.
//! 2. Revocation fan-out: `--subscribers` subscribers to the PDP's
//!    revocation stream (in this process), each carrying a connection of the
//!    ticket revoked; from the revocation committed (as a decision of the PDP
//!    commits it) to each connection cut, p50/p99 over `--revocations`.

use crate::bench::{cpu_seconds, percentile, rss_kib};
use anyhow::{anyhow, Context};
use std::sync::Arc;
use std::time::{Duration, Instant};
use testnet::e2e::{PdpOptions, TestPdp};
use tnc_proto::attestation::Role;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Sessions kept open and re-assessed.
    #[arg(long, default_value_t = 10_000)]
    endpoints: usize,
    /// Seconds between re-assessments of a session.
    #[arg(long, default_value_t = 60)]
    interval: u64,
    /// Seconds measured once every session is open (default: 2 intervals).
    #[arg(long)]
    window: Option<u64>,
    /// Subscribers to the revocation stream.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Revocations timed.
    #[arg(long, default_value_t = 20)]
    revocations: usize,
}

const GOAL_KIB_PER_SESSION: f64 = 16.0;
const GOAL_REVOCATION_P99_MS: f64 = 1000.0;

pub fn run(args: &Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let sessions = persistent(args).await?;
        let fanout = fan_out(args).await?;
        print_table(args, &sessions, &fanout);
        Ok(())
    })
}

struct Sessions {
    open: usize,
    connect_s: f64,
    kib_per_session: f64,
    cpu_percent: f64,

    rounds: usize,
    rounds_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    failed: usize,
}

struct FanOut {
    samples: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

async fn persistent(args: &Args) -> anyhow::Result<Sessions> {
    let profile = testnet::e2e::profile("good-terminal")?;
    let store_dir = testnet::swtpm::scratch_dir("bench-continuous")?;
    let mut limits = tnc_server::config::Limits {
        max_sessions: args.endpoints + 64,
        sessions_per_peer_per_minute: 0,
        max_pending: 8192,
        pending_per_address: 8192,
        handshake_timeout_secs: 300,
        ..Default::default()
    };
    limits.auth_timeout_secs = 120;
    limits.tls_timeout_secs = 60;
    let pdp = TestPdp::start_raw(
        &[(Role::Terminal, &profile)],
        (Vec::new(), Vec::new()),
        PdpOptions {
            limits,
            report: false,
            store_dir: Some(store_dir.clone()),
            reassessment: tnc_server::config::Reassessment {
                interval_secs: args.interval,
                ..Default::default()
            },
            ..PdpOptions::default()
        },
    )
    .await?;
    let window = args.window.unwrap_or(2 * args.interval);
    let rss0 = rss_kib().context("no /proc/self/status")?;
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(exe)
        .args(["bench", "continuous-clients", "--addr"])
        .arg(pdp.addr.to_string())
        .arg("--ca")
        .arg(&pdp.tls.ca)
        .arg("--store")
        .arg(format!("sqlite://{}", store_dir.join("tnc.db").display()))
        .arg("--count")
        .arg(args.endpoints.to_string())
        .arg("--window")
        .arg(window.to_string())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let ready = lines
        .next_line()
        .await?
        .ok_or_else(|| anyhow!("the endpoints' process ended"))?;
    let open: usize = ready
        .strip_prefix("ready ")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow!("endpoints: {ready:?}"))?;
    let connect_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = rss_kib().context("no /proc/self/status")?;
    let cpu0 = cpu_seconds().context("no /proc/self/stat")?;
    let window_started = Instant::now();
    let stats = lines
        .next_line()
        .await?
        .ok_or_else(|| anyhow!("the endpoints' process ended without its figures"))?;
    let window_s = window_started.elapsed().as_secs_f64();
    let cpu = cpu_seconds().context("no /proc/self/stat")? - cpu0;
    let _ = child.wait().await;
    // rounds N p50 X p99 Y failed F
    let f: Vec<&str> = stats.split_whitespace().collect();
    let num = |key: &str| -> anyhow::Result<f64> {
        let i = f
            .iter()
            .position(|w| *w == key)
            .ok_or_else(|| anyhow!("endpoints' figures: {stats:?}"))?;
        Ok(f.get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN))
    };
    let rounds = num("rounds")? as usize;
    pdp.stop().await?;
    let _ = std::fs::remove_dir_all(&store_dir);
    Ok(Sessions {
        open,
        connect_s,
        kib_per_session: (rss1 - rss0).max(0.0) / open.max(1) as f64,
        cpu_percent: 100.0 * cpu / window_s,

        rounds,
        rounds_per_s: rounds as f64 / window as f64,
        p50_ms: num("p50")?,
        p99_ms: num("p99")?,
        failed: num("failed")? as usize,
    })
}

/// The child side of [`persistent`].
#[derive(clap::Args, Debug)]
pub struct ClientArgs {
    #[arg(long)]
    addr: std::net::SocketAddr,
    #[arg(long)]
    ca: std::path::PathBuf,
    /// The PDP's store, where the software devices are enrolled.
    #[arg(long)]
    store: String,
    #[arg(long)]
    count: usize,
    /// Seconds to gather re-assessments once all are open.
    #[arg(long)]
    window: u64,
}

pub fn clients(args: &ClientArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = tnc_server::store::Store::open(&args.store).await?;
        let measurements = Arc::new(
            testnet::e2e::profile("good-terminal")?
                .measure()
                .map_err(|e| anyhow!(e))?,
        );
        let values = Arc::new(measurements.pcr_values_after(measurements.ima_entries()));
        let dir = testnet::swtpm::scratch_dir("bench-continuous-clients")?;
        let os = tnc_client::os::OsFacts::collect(&testnet::e2e::write_host_files(&dir)?, false)?;
        let target = tnc_client::pairing::Pdp {
            addr: args.addr,
            server_name: "localhost".into(),
            tls: tnc_client::agent::tls_client_config(&args.ca)?,
            quic: false,
        };
        // Enrol every device, then open the sessions, 64 at a time.
        let mut collectors = Vec::with_capacity(args.count);
        for i in 0..args.count {
            let ak = testnet::soft_ak::SoftAk::generate();
            let identity = testnet::e2e::enrol_software_ak(
                &store,
                Role::Terminal,
                &ak,
                &format!("software endpoint {i} (bench continuous)"),
            )
            .await?;
            collectors.push(testnet::soft_ak::SoftCollector::new(
                Role::Terminal,
                ak,
                identity,
                measurements.clone(),
                values.clone(),
            ));
        }
        store.close().await;
        let mut kept = Vec::with_capacity(args.count);
        let mut pending = Vec::new();
        for c in collectors {
            let (target, os) = (target.clone(), os.clone());
            pending.push(tokio::spawn(async move {
                let agent = tnc_client::agent::Agent::new(os, c);
                tnc_client::pairing::KeptSession::open(
                    std::slice::from_ref(&target),
                    agent,
                    None,
                    Duration::from_secs(300),
                    None,
                    false,
                )
                .await
            }));
            if pending.len() == 64 {
                for p in pending.drain(..) {
                    if let Ok((_, s)) = p.await? {
                        kept.push(s);
                    }
                }
            }
        }
        for p in pending.drain(..) {
            if let Ok((_, s)) = p.await? {
                kept.push(s);
            }
        }
        println!("ready {}", kept.len());
        // Gather every re-assessment's latency for the window.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<f64>>();
        let mut watchers = Vec::new();
        for mut s in kept {
            let tx = tx.clone();
            watchers.push(tokio::spawn(async move {
                while let Some(o) = s.reassessed().await {
                    let ms = match (o.round_started, o.decided_at, o.allowed()) {
                        (Some(a), Some(b), true) => Some((b - a).as_secs_f64() * 1e3),
                        _ => None,
                    };
                    if tx.send(ms).is_err() {
                        break;
                    }
                }
            }));
        }
        drop(tx);
        let until = tokio::time::Instant::now() + Duration::from_secs(args.window);
        let mut samples = Vec::new();
        let mut failed = 0usize;
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Some(Some(ms)) => samples.push(ms),
                    Some(None) => failed += 1,
                    None => break,
                },
                _ = tokio::time::sleep_until(until) => break,
            }
        }
        samples.sort_by(f64::total_cmp);
        println!(
            "rounds {} p50 {:.2} p99 {:.2} failed {failed}",
            samples.len(),
            percentile(&samples, 0.5),
            percentile(&samples, 0.99)
        );
        for w in watchers {
            w.abort();
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
}

async fn fan_out(args: &Args) -> anyhow::Result<FanOut> {
    let pdp = TestPdp::start_raw(
        &[],
        (Vec::new(), Vec::new()),
        PdpOptions {
            issue_credentials: true,
            report: false,
            revocations: Some("127.0.0.1:0".parse()?),
            ..PdpOptions::default()
        },
    )
    .await?;
    let at = pdp.revocations_addr.context("no revocation stream")?;
    let (ca_pem, key_pem) = pdp.session_ca().context("no session CA")?;
    let ca = pki::ca::Sm2Ca::from_pem(&ca_pem, &key_pem)?;
    let mut sets = Vec::new();
    for i in 0..args.subscribers {
        let key = pki::ca::Sm2Key::generate()?;
        let cert = ca.issue(
            &key.public_key(),
            &pki::ca::LeafSpec {
                common_name: format!("gw-{i}"),
                subject_extra: vec![(pki::ca::NameAttr::OrganizationalUnit, "gateway".into())],
                dns_names: Vec::new(),
                ips: Vec::new(),
                usage: pki::ca::Usage::Client,
                lifetime: Duration::from_secs(3600),
            },
            std::time::SystemTime::now(),
        )?;
        let der = pki::ca::pem_or_der(key.to_pem()?.as_bytes())?;
        let one = pki::tls::OneKey::load(
            &pki::tls::shangmi::strict_provider(),
            vec![rustls::pki_types::CertificateDer::from(cert)],
            rustls::pki_types::PrivateKeyDer::Pkcs8(der.into()),
        )?;
        let sub = tnc_gateway::revocation::Subscription::new(
            at,
            "tnc-pdp",
            ca.certificate_der(),
            Arc::new(one),
        )
        .map_err(|e| anyhow!(e))?;
        let set = tnc_gateway::revocation::Revoked::new();
        tokio::spawn(tnc_gateway::revocation::subscribe(sub, set.clone(), None));
        sets.push(set);
    }
    let until = Instant::now() + Duration::from_secs(30);
    while sets.iter().any(|s| s.silence().is_none()) {
        anyhow::ensure!(Instant::now() < until, "subscribers did not connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut samples = Vec::new();
    for r in 0..args.revocations {
        let ticket = vec![r as u8; 16];
        let device = testnet::e2e::held_ticket(&pdp.store, r as u8).await?;
        let now = tnc_server::pdp::system_clock();
        let mut tracked = Vec::new();
        for s in &sets {
            tracked.push(s.track(&ticket, &[r as u8; 32]).map_err(|e| anyhow!(e))?);
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let started = Instant::now();
        for mut t in tracked {
            let tx = tx.clone();
            tokio::spawn(async move {
                t.cut().await;
                let _ = tx.send(started.elapsed().as_secs_f64() * 1e3);
            });
        }
        drop(tx);
        // Committed as a decision of this PDP commits it: the watcher is
        // woken at once.
        pdp.store.revoke_device(&device, now, "bench").await?;
        pdp.ctx.revoked.notify_one();
        let mut got = 0;
        while let Ok(Some(ms)) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            samples.push(ms);
            got += 1;
            if got == sets.len() {
                break;
            }
        }
    }
    samples.sort_by(f64::total_cmp);
    pdp.stop().await?;
    Ok(FanOut {
        samples: samples.len(),
        p50_ms: percentile(&samples, 0.5),
        p99_ms: percentile(&samples, 0.99),
        max_ms: samples.last().copied().unwrap_or(f64::NAN),
    })
}

fn print_table(args: &Args, s: &Sessions, f: &FanOut) {
    println!("\n=== bench continuous (software AKs: keys in memory, not TPMs; loopback; SQLite)");
    println!(
        "{} endpoints re-assessed every {} s (jitter 10 %), one PDP on this machine's cores",
        args.endpoints, args.interval
    );
    println!("| figure | measured | goal |");
    println!("|---|---|---|");
    println!(
        "| sessions open (connect all: {:.0} s) | {} | {} |",
        s.connect_s, s.open, args.endpoints
    );
    println!(
        "| re-assessments in {} s ({:.1}/s; expected {:.1}/s) | {} (failed {}) | |",
        args.window.unwrap_or(2 * args.interval),
        s.rounds_per_s,
        s.open as f64 / args.interval as f64,
        s.rounds,
        s.failed
    );
    println!(
        "| re-assessment latency p50 / p99 (SRETRY in -> RESULT in, at the endpoint) | {:.1} / {:.1} ms | |",
        s.p50_ms, s.p99_ms
    );
    println!(
        "| PDP CPU over the window (100 % = one core) | {:.1} % | sustained on 2 cores |",
        s.cpu_percent
    );
    println!(
        "| PDP memory per idle session (RSS growth / sessions) | {:.1} KiB | <= {GOAL_KIB_PER_SESSION} KiB: {} |",
        s.kib_per_session,
        if s.kib_per_session <= GOAL_KIB_PER_SESSION { "met" } else { "NOT met" }
    );
    println!(
        "| revocation fan-out to {} subscribers, committed -> cut, p50 / p99 / max ({} samples) | {:.1} / {:.1} / {:.1} ms | p99 < {GOAL_REVOCATION_P99_MS} ms: {} |",
        args.subscribers,
        f.samples,
        f.p50_ms,
        f.p99_ms,
        f.max_ms,
        if f.p99_ms < GOAL_REVOCATION_P99_MS { "met" } else { "NOT met" }
    );
}
