//! `testnet demo`: the PDP and three endpoints, end to end on loopback.
//!
//! A PDP (in this process) serves PT-TLS over TCP + TLS 1.3 with a fresh TLS
//! CA; three endpoints, each a real swtpm whose PCRs the measured-boot
//! simulator extended from a profile, log in with the login agent: a good
//! terminal, a terminal with a tampered kernel, and a VM. Each enrolls its AK
//! (EK certificate from a swtpm local CA, credential activation), quotes PCRs
//! 0-10 over the PDP's nonce and sends its UEFI event log and IMA list; the PDP
//! appraises them against the reference values of its role. Everything lives
//! in temporary directories removed at the end; the swtpm processes stop.

use anyhow::Context;
use pki::tls::Suites;
use std::time::Instant;
use testnet::e2e::{profile, Endpoint, PdpOptions, TestPdp};
use testnet::swtpm::LocalCa;
use tnc_client::agent::Outcome;
use tnc_proto::attestation::Role;

struct Row {
    endpoint: &'static str,
    profile: &'static str,
    outcome: Outcome,
    ms: f64,
}

pub fn run() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(demo())
}

async fn demo() -> anyhow::Result<()> {
    println!("TNC demo: a PDP and three swtpm-backed endpoints on loopback.");
    let ca = LocalCa::create()?;
    // The VM speaks the ShangMi suites (RFC 8998), the terminals the
    // standard ones; the PDP serves both.
    let endpoints = [
        (
            "terminal-1",
            "good-terminal",
            Role::Terminal,
            Suites::Standard,
        ),
        (
            "terminal-2",
            "tampered-kernel",
            Role::Terminal,
            Suites::Standard,
        ),
        ("vm-1", "good-vm", Role::Vm, Suites::Shangmi),
    ];
    let mut booted = Vec::new();
    for (name, prof, role, suites) in endpoints {
        let e = Endpoint::boot(prof, role, &ca).with_context(|| format!("booting {name}"))?;
        println!(
            "  {name}: swtpm on port {} booted as {prof:?} ({} PCR extends, {} IMA entries)",
            e.swtpm.port(),
            e.measurements.extends.len(),
            e.measurements.ima_entries()
        );
        booted.push((name, prof, suites, e));
    }
    let (terminal_ref, vm_ref) = (profile("good-terminal")?, profile("good-vm")?);
    let pdp = TestPdp::start_raw(
        &[(Role::Terminal, &terminal_ref), (Role::Vm, &vm_ref)],
        ca.roots()?,
        PdpOptions {
            suites: Suites::Both,
            ..PdpOptions::default()
        },
    )
    .await?;
    println!(
        "  PDP: PT-TLS on {} (TLS 1.3: the standard suites and the ShangMi ones, RFC 8998),\n       reference values: terminal = good-terminal, vm = good-vm",
        pdp.addr
    );

    let mut rows = Vec::new();
    for (name, prof, suites, endpoint) in &booted {
        println!(
            "\n=== {name} ({prof}) logs in, offering the {} suites",
            suites.name()
        );
        let start = Instant::now();
        let outcome = pdp
            .log_in_agent(endpoint.agent()?, *suites, None, false)
            .await?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        print!("{outcome}");
        rows.push(Row {
            endpoint: name,
            profile: prof,
            outcome,
            ms,
        });
    }

    println!("\n=== Summary");
    println!(
        "{:<11} | {:<16} | {:<9} | {:<24} | {:>7} | first finding",
        "endpoint", "profile", "verdict", "TLS 1.3 suite", "ms"
    );
    println!("{}", "-".repeat(110));
    for r in &rows {
        let first = r
            .outcome
            .attestation
            .as_ref()
            .and_then(|a| a.findings.first().cloned())
            .unwrap_or_default();
        println!(
            "{:<11} | {:<16} | {:<9} | {:<24} | {:>7.1} | {}",
            r.endpoint,
            r.profile,
            r.outcome.verdict_name(),
            r.outcome.tls_suite.as_deref().unwrap_or("?"),
            r.ms,
            shorten(&first, 60)
        );
    }
    let devices = pdp.store.devices().await?;
    println!(
        "\nPDP: {} devices enrolled (AKs proven by credential activation).",
        devices.len()
    );
    let expected = ["allow", "isolate", "allow"];
    let got: Vec<&str> = rows.iter().map(|r| r.outcome.verdict_name()).collect();
    let vm_suite = rows.last().and_then(|r| r.outcome.tls_suite.clone());
    pdp.stop().await?;
    drop(booted);
    anyhow::ensure!(
        got == expected,
        "expected verdicts {expected:?}, got {got:?}"
    );
    anyhow::ensure!(
        vm_suite.as_deref() == Some("TLS_SM4_GCM_SM3"),
        "vm-1 should have logged in over TLS_SM4_GCM_SM3, not {vm_suite:?}"
    );
    Ok(())
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}
