//! `testnet bench door`: genuine login latency while the door is under
//! attack, next to the quiet figure. A PDP on loopback with SASL PLAIN; the
//! genuine terminal logs in from 127.0.0.1 (TPM-less: the figure is the
//! door's, not the appraisal's), the attackers come from 127.0.0.2-5:
//! - idle flood: 2,200 TCP connections that send nothing, and more opened
//!   every 2 ms for as long as the genuine logins run;
//! - guessing flood: 4 x 8 connections guessing passwords as fast as the PDP
//!   answers.
//!
//! The goal (issue "Holding the door"): a genuine login within 2 s under the
//! idle flood, and at most 60 guesses a minute per address and per user.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use testnet::e2e::{agent_without_tpm, PdpOptions, TestPdp};
use testnet::swtpm::scratch_dir;
use tnc_client::agent::{login, run_session, tls_client_config};
use tnc_proto::pt_tls::sasl::PlainCredentials;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Genuine logins timed per scenario.
    #[arg(long, default_value_t = 20)]
    logins: usize,
}

struct Row {
    scenario: &'static str,
    latencies: Vec<Duration>,
    failed: usize,
    note: String,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut rows = Vec::new();
        rows.push(scenario(args, Attack::None).await?);
        rows.push(scenario(args, Attack::IdleFlood).await?);
        rows.push(scenario(args, Attack::Guessing).await?);
        print(&rows);
        Ok(())
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Attack {
    None,
    IdleFlood,
    Guessing,
}

async fn scenario(args: &Args, attack: Attack) -> anyhow::Result<Row> {
    let pdp = TestPdp::start_raw(
        &[],
        (Vec::new(), Vec::new()),
        PdpOptions {
            sasl: tnc_server::config::Sasl::Plain,
            report: false,
            ..PdpOptions::default()
        },
    )
    .await?;
    pdp.add_user("alice", "right").await?;
    pdp.add_user("bob", "right").await?;
    let addr = pdp.addr;
    let tls = tls_client_config(&pdp.tls.ca)?;
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let mut attackers = tokio::task::JoinSet::new();
    let mut idle = Vec::new();
    let started = Instant::now();
    match attack {
        Attack::None => {}
        Attack::IdleFlood => {
            for i in 0..2_200usize {
                if let Some(s) = open(source(i), addr).await {
                    idle.push(s);
                }
            }
            let (stop, counter) = (stop.clone(), counter.clone());
            attackers.spawn(async move {
                let mut more = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(s) = open(source(i), addr).await {
                        more.push(s);
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            });
        }
        Attack::Guessing => {
            for i in 0..32usize {
                let (stop, counter, tls) = (stop.clone(), counter.clone(), tls.clone());
                let dir = scratch_dir("bench-door-guess")?;
                attackers.spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let Some(tcp) = open(source(i), addr).await else {
                            continue;
                        };
                        let Ok(io) = tokio_rustls::TlsConnector::from(tls.clone())
                            .connect("localhost".try_into().expect("a DNS name"), tcp)
                            .await
                        else {
                            continue;
                        };
                        let Ok(mut agent) = agent_without_tpm(&dir) else {
                            continue;
                        };
                        let guess = PlainCredentials::new("bob", &format!("guess{i}"));
                        let _ = run_session(io, &mut agent, Some(guess), 1 << 20).await;
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = std::fs::remove_dir_all(&dir);
                });
            }
        }
    }
    // The attack under way, the genuine terminal logs in, one at a time.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dir = scratch_dir("bench-door")?;
    let mut latencies = Vec::new();
    let mut failed = 0;
    for _ in 0..args.logins {
        let mut agent = agent_without_tpm(&dir)?;
        let t = Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(30),
            login(
                addr,
                "localhost",
                tls.clone(),
                &mut agent,
                Some(PlainCredentials::new("alice", "right")),
            ),
        )
        .await;
        match r {
            Ok(Ok(o)) if o.verdict_name() == "isolate" => latencies.push(t.elapsed()),
            _ => failed += 1,
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    while attackers.join_next().await.is_some() {}
    let n = counter.load(Ordering::Relaxed);
    let note = match attack {
        Attack::None => String::new(),
        Attack::IdleFlood => format!("{} idle connections, then {n} more", idle.len()),
        Attack::Guessing => {
            let audit = pdp.store.audit_entries().await?;
            let entries = audit.iter().filter(|e| e.kind == "sasl-failed").count();
            format!(
                "{n} guesses in {:.1} s from 4 addresses; {entries} audit entries",
                elapsed.as_secs_f64()
            )
        }
    };
    drop(idle);
    pdp.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    latencies.sort();
    Ok(Row {
        scenario: match attack {
            Attack::None => "quiet",
            Attack::IdleFlood => "idle flood",
            Attack::Guessing => "guessing flood",
        },
        latencies,
        failed,
        note,
    })
}

/// 127.0.0.2-5, in turn.
fn source(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + (i % 4) as u8)
}

async fn open(from: Ipv4Addr, to: SocketAddr) -> Option<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind((from, 0).into()).ok()?;
    tokio::time::timeout(Duration::from_secs(2), socket.connect(to))
        .await
        .ok()?
        .ok()
}

fn print(rows: &[Row]) {
    println!("genuine SASL login from 127.0.0.1, attackers from 127.0.0.2-5 (debug builds are slower; use --release)");
    println!(
        "{:<15} | {:>6} | {:>6} | {:>8} | {:>8} | {:>8} | {:>12} | attack",
        "scenario", "logins", "failed", "p50 ms", "p99 ms", "max ms", "goal"
    );
    for r in rows {
        let pct = |p: f64| {
            r.latencies
                .get(((r.latencies.len() as f64 - 1.0) * p).round() as usize)
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
        };
        let goal = match r.scenario {
            "idle flood" => "max < 2,000",
            _ => "",
        };
        println!(
            "{:<15} | {:>6} | {:>6} | {:>8.1} | {:>8.1} | {:>8.1} | {:>12} | {}",
            r.scenario,
            r.latencies.len() + r.failed,
            r.failed,
            pct(0.5),
            pct(0.99),
            pct(1.0),
            goal,
            r.note
        );
    }
}
