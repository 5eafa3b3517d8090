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
use std::time::Instant;
use testnet::e2e::{profile, Endpoint, TestPdp};
use testnet::swtpm::LocalCa;
use tnc_client::agent::Outcome;
use tnc_proto::attestation::Role;
use tnc_server::config::Limits;

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
    let endpoints = [
        ("terminal-1", "good-terminal", Role::Terminal),
        ("terminal-2", "tampered-kernel", Role::Terminal),
        ("vm-1", "good-vm", Role::Vm),
    ];
    let mut booted = Vec::new();
    for (name, prof, role) in endpoints {
        let e = Endpoint::boot(prof, role, &ca).with_context(|| format!("booting {name}"))?;
        println!(
            "  {name}: swtpm on port {} booted as {prof:?} ({} PCR extends, {} IMA entries)",
            e.swtpm.port(),
            e.measurements.extends.len(),
            e.measurements.ima_entries()
        );
        booted.push((name, prof, e));
    }
    let (terminal_ref, vm_ref) = (profile("good-terminal")?, profile("good-vm")?);
    let pdp = TestPdp::start(
        &[(Role::Terminal, &terminal_ref), (Role::Vm, &vm_ref)],
        &ca,
        Limits::default(),
    )
    .await?;
    println!(
        "  PDP: PT-TLS on {} (TLS 1.3), reference values: terminal = good-terminal, vm = good-vm",
        pdp.addr
    );

    let mut rows = Vec::new();
    for (name, prof, endpoint) in &booted {
        println!("\n=== {name} ({prof}) logs in");
        let start = Instant::now();
        let outcome = pdp.log_in(endpoint).await?;
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
        "{:<11} | {:<16} | {:<9} | {:>7} | first finding",
        "endpoint", "profile", "verdict", "ms"
    );
    println!("{}", "-".repeat(90));
    for r in &rows {
        let first = r
            .outcome
            .attestation
            .as_ref()
            .and_then(|a| a.findings.first().cloned())
            .unwrap_or_default();
        println!(
            "{:<11} | {:<16} | {:<9} | {:>7.1} | {}",
            r.endpoint,
            r.profile,
            r.outcome.verdict_name(),
            r.ms,
            shorten(&first, 80)
        );
    }
    let devices = pdp.store.devices().await?;
    println!(
        "\nPDP: {} devices enrolled (AKs proven by credential activation).",
        devices.len()
    );
    let expected = ["allow", "isolate", "allow"];
    let got: Vec<&str> = rows.iter().map(|r| r.outcome.verdict_name()).collect();
    pdp.stop().await?;
    drop(booted);
    anyhow::ensure!(
        got == expected,
        "expected verdicts {expected:?}, got {got:?}"
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
