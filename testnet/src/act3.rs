//! Continuous trust end to end (issue 13, item 5): `testnet demo`'s third
//! act and the test that runs it on swtpm (`testnet/tests/act3.rs`).
//!
//! vm-1 serves (subscribed to the PDP's revocations); a gateway enrols with
//! a one-time token and subscribes; terminal-1 connects to vm-1 through the
//! gateway and keeps its integrity session open. Then a program outside the
//! reference values runs on terminal-1: the simulator measures it into the
//! live swtpm's PCR 10 and the IMA list. The PDP's next re-assessment of
//! terminal-1 isolates it and revokes its ticket in the decision's
//! transaction; the revocation is pushed; the gateway (and vm-1) cut the
//! channel. What the terminal saw is timed: the verdict after the program
//! ran, and the channel's end after the verdict.

use crate::e2e::{serve_in_thread, Endpoint, TestPdp};
use anyhow::{anyhow, Context};
use std::time::{Duration, Instant};
use tnc_client::pairing::{self, Pdp};

/// What the act measured and found.
#[derive(Debug)]
pub struct Figures {
    /// connect through the gateway: integrity handshake and channel.
    pub connect_ms: f64,
    /// From the program measured to the isolating verdict at the terminal
    /// (most of it is waiting for the next round of the interval).
    pub to_verdict_ms: f64,
    /// From that verdict at the terminal to its channel closed by the
    /// gateway (the revocation stored, pushed, applied).
    pub verdict_to_cut_ms: f64,
    pub verdict: String,
    pub reason: String,
    /// The revoked tickets of terminal-1.
    pub revoked: Vec<tnc_server::store::Revocation>,
    /// Connections the gateway carried after the cut.
    pub carried_after: usize,
}

/// What the act needs of the PDP: credentials issued, vm-1 named by
/// `vm_device`, the revocation stream, terminals re-assessed every 2 s.
pub fn pdp_options(vm_device: String) -> anyhow::Result<crate::e2e::PdpOptions> {
    Ok(crate::e2e::PdpOptions {
        issue_credentials: true,
        vm_names: [(vm_device, "vm-1".to_string())].into(),
        revocations: Some("127.0.0.1:0".parse()?),
        reassessment: tnc_server::config::Reassessment {
            role_interval_secs: [(tnc_proto::attestation::Role::Terminal, 2)].into(),
            poll_ms: 100,
            ..Default::default()
        },
        ..Default::default()
    })
}

/// The file the act runs on terminal-1.
pub const UNAPPROVED: &str = "/home/user/.local/bin/cryptominer";

/// Runs the act: `pdp` issues credentials and runs its revocation stream,
/// re-assessing terminals on a short interval; `terminal` boots as
/// good-terminal, `vm` as good-vm and is named vm-1. `say` gets the lines
/// the demo prints.
pub async fn run(
    pdp: &TestPdp,
    terminal: &mut Endpoint,
    vm: &Endpoint,
    say: &(dyn Fn(String) + Sync),
) -> anyhow::Result<Figures> {
    let revocations = pdp
        .revocations_addr
        .context("the PDP runs no revocation stream")?;
    let target = pdp.target(pki::tls::Suites::Standard)?;
    let echo = crate::e2e::echo_service().await?;
    let (serving, _) = serve_in_thread(
        &target,
        vm.agent()?,
        vm.channel_key()?,
        "vm-1",
        echo,
        Some(pairing::RevocationsAt {
            addr: revocations,
            server_name: "tnc-pdp".into(),
        }),
    )
    .await?;
    say(format!(
        "  vm-1 serves on {} and subscribes to the PDP's revocations on {revocations}",
        serving.addr
    ));

    // The gateway: a one-time token from the PDP's store, enrolment, run.
    let dir = crate::swtpm::scratch_dir("act3-gateway")?;
    let (ca_pem, _) = pdp.session_ca().context("the PDP issues no credentials")?;
    std::fs::write(dir.join("session-ca.pem"), ca_pem)?;
    std::fs::write(
        dir.join("gateway.toml"),
        format!(
            "listen = \"127.0.0.1:0\"\n\
             [pdp]\nrevocations = \"{revocations}\"\n\
             [identity]\nname = \"gw-1\"\nca = \"session-ca.pem\"\n\
             [vms]\nvm-1 = \"{}\"\n",
            serving.addr
        ),
    )?;
    let config = tnc_gateway::config::GatewayConfig::load(&dir.join("gateway.toml"))?;
    let token = pdp
        .store
        .new_enrolment_token("gw-1", 600, tnc_server::pdp::system_clock())
        .await?;
    let enrolled = tnc_gateway::enrol::enrol(&config, &token)
        .await
        .map_err(|e| anyhow!("enrolling the gateway: {e}"))?;
    let gateway = tnc_gateway::gate::start(&config)
        .await
        .map_err(|e| anyhow!("starting the gateway: {e}"))?;
    let until = Instant::now() + Duration::from_secs(10);
    while !gateway.gateway.available() {
        anyhow::ensure!(Instant::now() < until, "the gateway never heard its PDP");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    say(format!(
        "  gw-1 enrolled with a one-time token (certificate until {}), listens on {}, subscribed",
        enrolled.not_after, gateway.addr
    ));

    // terminal-1 connects through the gateway, on a thread of its own (its
    // TPM is blocking I/O), and reports what it sees.
    let agent = terminal.agent()?;
    let key = terminal.channel_key()?;
    let via = gateway.addr;
    let (up_tx, up) = tokio::sync::oneshot::channel::<anyhow::Result<f64>>();
    let (seen_tx, seen) = tokio::sync::oneshot::channel::<anyhow::Result<Seen>>();
    let thread = std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = up_tx.send(Err(e.into()));
                return;
            }
        };
        rt.block_on(terminal_side(target, agent, key, via, up_tx, seen_tx));
    });
    let connect_ms = up
        .await
        .map_err(|_| anyhow!("terminal-1's thread ended"))??;
    say(format!(
        "  terminal-1$ tnc-client connect vm-1 --via {via}: channel up in {connect_ms:.0} ms (TLS_SM4_GCM_SM3 end to end, through gw-1);\n              its integrity session stays open: the PDP re-assesses it"
    ));

    // An unapproved program runs on terminal-1.
    let ran = Instant::now();
    terminal.measure_more(&[(UNAPPROVED, b"mines something")])?;
    say(format!(
        "  terminal-1 runs {UNAPPROVED}: measured into PCR 10 of its swtpm and its IMA list"
    ));
    let seen = tokio::time::timeout(Duration::from_secs(60), seen)
        .await
        .map_err(|_| anyhow!("no isolating verdict and cut within 60 s"))?
        .map_err(|_| anyhow!("terminal-1's thread ended"))??;
    let _ = thread.join();
    let to_verdict_ms = seen.verdict_at.duration_since(ran).as_secs_f64() * 1e3;
    let verdict_to_cut_ms = if seen.cut_at >= seen.verdict_at {
        seen.cut_at.duration_since(seen.verdict_at).as_secs_f64() * 1e3
    } else {
        -(seen.verdict_at.duration_since(seen.cut_at).as_secs_f64() * 1e3)
    };
    let device: [u8; 32] = policy::digest::from_hex(&terminal.device_id()?)
        .context("device id")?
        .try_into()
        .map_err(|_| anyhow!("device id"))?;
    let revoked = pdp.store.revocations_of(&device).await?;
    // The gateway lets the connection go once its relay ends.
    let until = Instant::now() + Duration::from_secs(2);
    while gateway.gateway.carried() > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let carried_after = gateway.gateway.carried();
    gateway.stop().await;
    serving.stop();
    Ok(Figures {
        connect_ms,
        to_verdict_ms,
        verdict_to_cut_ms,
        verdict: seen.verdict,
        reason: seen.reason,
        revoked,
        carried_after,
    })
}

/// What terminal-1 saw after the program ran.
struct Seen {
    verdict: String,
    reason: String,
    verdict_at: Instant,
    cut_at: Instant,
}

async fn terminal_side(
    target: Pdp,
    agent: tnc_client::agent::Agent,
    key: tnc_client::channel::ChannelKey,
    via: std::net::SocketAddr,
    up: tokio::sync::oneshot::Sender<anyhow::Result<f64>>,
    seen: tokio::sync::oneshot::Sender<anyhow::Result<Seen>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = Instant::now();
    let options = pairing::ConnectOptions {
        via: Some(via),
        ..pairing::ConnectOptions::new("vm-1")
    };
    let mut opened = match pairing::connect(&target, agent, key, options).await {
        Ok(o) => o,
        Err(e) => {
            let _ = up.send(Err(anyhow!("connect: {e}")));
            return;
        }
    };
    let echoed = async {
        opened.stream.write_all(b"ping").await?;
        let mut back = [0u8; 4];
        opened.stream.read_exact(&mut back).await?;
        anyhow::ensure!(&back == b"ping", "the echo came back wrong");
        Ok(())
    };
    if let Err(e) = echoed.await {
        let _ = up.send(Err(e));
        return;
    }
    let _ = up.send(Ok(started.elapsed().as_secs_f64() * 1e3));
    // Re-assessments that still say allow (a round before the program
    // ran), then the one that does not; and the channel's end.
    let mut verdict = None;
    let mut cut_at = None;
    let mut buf = [0u8; 64];
    let result = loop {
        if let (Some((v, r, at)), Some(cut)) = (&verdict, cut_at) {
            break Ok(Seen {
                verdict: String::clone(v),
                reason: String::clone(r),
                verdict_at: *at,
                cut_at: cut,
            });
        }
        tokio::select! {
            o = opened.session.reassessed(), if verdict.is_none() => match o {
                Some(o) if o.allowed() => {}
                Some(o) => {
                    verdict = Some((
                        o.verdict_name().to_string(),
                        o.reason.clone().unwrap_or_default(),
                        Instant::now(),
                    ));
                }
                None => break Err(anyhow!("the integrity session ended without a verdict")),
            },
            r = opened.stream.read(&mut buf), if cut_at.is_none() => match r {
                Ok(0) | Err(_) => cut_at = Some(Instant::now()),
                Ok(_) => {}
            },
        }
    };
    let _ = seen.send(result);
}
