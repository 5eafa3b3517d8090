//! `testnet demo`: the PDP and three endpoints, end to end on loopback.
//!
//! A PDP (in this process) serves PT-TLS over TCP + TLS 1.3 with a fresh TLS
//! CA; three endpoints, each a real swtpm whose PCRs the measured-boot
//! simulator extended from a profile, log in with the login agent: a good
//! terminal, a terminal with a tampered kernel, and a VM. Each enrolls its AK
//! (EK certificate from a swtpm local CA, credential activation), quotes PCRs
//! 0-10 over the PDP's nonce and sends its UEFI event log and IMA list; the PDP
//! appraises them against the reference values of its role.
//!
//! The second act is the ShangMi channel: vm-1 serves a small web service
//! (`tnc-client serve`'s flow), terminal-1 asks the PDP for a pairing and
//! reaches the service through strict TLS_SM4_GCM_SM3 with the pairing proof
//! (`connect`'s flow), terminal-2 is isolated and gets nothing. The third
//! act is continuous trust (`testnet::act3`): terminal-1, connected to vm-1
//! through a gateway, runs an unapproved program; its next re-assessment
//! isolates it and the gateway cuts its channel. Everything
//! lives in temporary directories removed at the end; the swtpm processes
//! stop.

use anyhow::Context;
use pki::tls::Suites;
use std::time::Instant;
use testnet::e2e::{profile, serve_in_thread, Endpoint, PdpOptions, TestPdp};
use testnet::swtpm::LocalCa;
use tnc_client::agent::Outcome;
use tnc_client::pairing::{self, Pdp};
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
    // The operator names the VM by its device ID (`[ca] vm_names`).
    let vm_device = booted[2].3.device_id()?;
    let pdp = TestPdp::start_raw(
        &[(Role::Terminal, &terminal_ref), (Role::Vm, &vm_ref)],
        ca.roots()?,
        PdpOptions {
            suites: Suites::Both,
            // Act 3's: credentials, vm-1 named, revocations pushed,
            // terminals re-assessed every 2 s (the default is 5 min).
            ..testnet::act3::pdp_options(vm_device)?
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
    let act_two = second_act(&pdp, &booted).await;
    let act_three = match act_two {
        Ok(()) => third_act(&pdp, &mut booted).await,
        Err(e) => Err(e),
    };
    pdp.stop().await?;
    drop(booted);
    act_three?;
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

const WEB_ANSWER: &str = "hello from the web service behind vm-1\n";

/// What a terminal's `connect` gave: the web answer and the figures, or
/// why not.
struct Connected {
    answer: String,
    pairing: String,
    address: std::net::SocketAddr,
    handshake_ms: f64,
    channel_ms: f64,
    first_byte_ms: f64,
}

/// `tnc-client connect`'s flow for `terminal` to vm-1, then one request.
async fn connect_terminal(
    pdp: &Pdp,
    terminal: &Endpoint,
) -> anyhow::Result<Result<Connected, pairing::Failure>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let agent = terminal.agent()?;
    let key = terminal.channel_key()?;
    let pdp = pdp.clone();
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let started = Instant::now();
            let options = pairing::ConnectOptions::new("vm-1");
            let opened = match pairing::connect(&pdp, agent, key, options).await {
                Ok(o) => o,
                Err(e) => return Ok(Err(e)),
            };
            let mut stream = opened.stream;
            stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
            let mut first = [0u8; 1];
            stream.read_exact(&mut first).await?;
            let first_byte_ms = started.elapsed().as_secs_f64() * 1e3;
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).await?;
            let _ = stream.shutdown().await;
            let mut answer = first.to_vec();
            answer.extend(rest);
            Ok(Ok(Connected {
                answer: String::from_utf8_lossy(&answer).into_owned(),
                pairing: policy::digest::hex(&opened.pairing.id[..4]),
                address: opened.address,
                handshake_ms: opened.handshake.as_secs_f64() * 1e3,
                channel_ms: opened.channel.as_secs_f64() * 1e3,
                first_byte_ms,
            }))
        })
    })
    .await?
}

async fn second_act(
    pdp: &TestPdp,
    booted: &[(&str, &str, Suites, Endpoint)],
) -> anyhow::Result<()> {
    println!("\n=== Act 2: the ShangMi channel between terminals and vm-1");
    let target = Pdp {
        addr: pdp.addr,
        server_name: "localhost".into(),
        tls: tnc_client::agent::tls_client_config_for(&pdp.tls.ca, None, Suites::Shangmi)?,
        quic: false,
    };
    let service = testnet::e2e::web_service(WEB_ANSWER).await?;
    let vm_endpoint = &booted[2].3;
    let (vm, vm_outcome) = serve_in_thread(
        &target,
        vm_endpoint.agent()?,
        vm_endpoint.channel_key()?,
        "vm-1",
        service,
        None,
    )
    .await?;
    println!(
        "  vm-1: {}, channel certificate granted for its SM2 key in its TPM; its PT-TLS session to the PDP stays open for pairings;\n        serves strict TLS_SM4_GCM_SM3 on {} and relays to the web service on {service}",
        vm_outcome.verdict_name(),
        vm.addr
    );
    let mut checks = Vec::new();
    for (name, _, _, endpoint) in &booted[..2] {
        println!("\n  {name}$ tnc-client connect vm-1");
        match connect_terminal(&target, endpoint).await? {
            Ok(c) => {
                println!(
                    "    allowed; credentials granted for its SM2 key in its TPM; the PDP paired it with vm-1 (pairing {}, 60 s, single use)",
                    c.pairing
                );
                println!(
                    "    channel: TLS 1.3, TLS_SM4_GCM_SM3, to {}; certificates from the session CA, ticket and pairing proofs checked both ways",
                    c.address
                );
                println!("    > GET / HTTP/1.0");
                for line in c.answer.lines() {
                    println!("    < {line}");
                }
                println!(
                    "    integrity handshake (TPM quote included) {:.1} ms, channel {:.1} ms, first byte after {:.1} ms",
                    c.handshake_ms, c.channel_ms, c.first_byte_ms
                );
                checks.push(c.answer.ends_with(WEB_ANSWER));
            }
            Err(e) => {
                println!(
                    "    tnc-client connect: no access to vm-1: {}",
                    shorten(&e.to_string(), 100)
                );
                println!("    (no credentials and no pairing were issued)");
                checks.push(matches!(e, pairing::Failure::NotAllowed(_)));
            }
        }
    }
    vm.stop();
    let pairings = pdp
        .store
        .audit_entries()
        .await?
        .into_iter()
        .filter(|e| e.kind == "pairing")
        .count();
    println!("\nPDP: {pairings} pairing(s) in the audit log.");
    anyhow::ensure!(
        checks == [true, true] && pairings == 1,
        "act 2: terminal-1 should reach the web service and terminal-2 be refused (got {checks:?}, {pairings} pairings)"
    );
    Ok(())
}

async fn third_act(
    pdp: &TestPdp,
    booted: &mut [(&str, &str, Suites, Endpoint)],
) -> anyhow::Result<()> {
    println!("\n=== Act 3: continuous trust: a re-assessment isolates terminal-1 and its live channel is cut");
    let (first, rest) = booted.split_at_mut(1);
    let (terminal, vm) = (&mut first[0].3, &rest[1].3);
    let say = |line: String| println!("{line}");
    let f = testnet::act3::run(pdp, terminal, vm, &say).await?;
    println!(
        "  the PDP re-assessed terminal-1 on its open session (every 2 s): {} ({}),\n    {:.0} ms after the program ran",
        f.verdict,
        shorten(&f.reason, 90),
        f.to_verdict_ms
    );
    for r in &f.revoked {
        println!(
            "  revoked with that decision, in its transaction: ticket {}… (revocation {}), pushed to gw-1 and vm-1",
            &r.ticket[..8],
            r.seq
        );
    }
    println!(
        "  gw-1 cut terminal-1's channel; it carries {} connection(s) now",
        f.carried_after
    );
    println!(
        "  revocation latency, verdict at terminal-1 -> its channel closed: {:.0} ms",
        f.verdict_to_cut_ms
    );
    anyhow::ensure!(
        f.verdict == "isolate" && f.reason.contains(testnet::act3::UNAPPROVED),
        "act 3: terminal-1 should be isolated for {}, got {} ({})",
        testnet::act3::UNAPPROVED,
        f.verdict,
        f.reason
    );
    anyhow::ensure!(
        !f.revoked.is_empty() && f.carried_after == 0,
        "act 3: the ticket should be revoked and the channel cut ({} revoked, {} carried)",
        f.revoked.len(),
        f.carried_after
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
