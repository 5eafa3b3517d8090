//! `testnet bench admin`: the admin API's latency over a fleet of
//! `--devices` enrolled devices (default 10,000) in the PDP's SQLite store:
//! the whole device list (what `tnc-monitor` reads each refresh), a
//! filtered list and one device's detail. Each request is a new TLS
//! connection with the admin certificate, as the client makes them.

use crate::bench::percentile;
use anyhow::Context;
use std::time::Instant;
use testnet::e2e::{PdpOptions, TestPdp};
use tnc_proto::admin::{self as api, AdminRole};
use tnc_proto::attestation::Role;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Enrolled devices in the store.
    #[arg(long, default_value_t = 10_000)]
    devices: usize,
    /// Requests timed per row.
    #[arg(long, default_value_t = 30)]
    requests: usize,
}

/// The monitor refreshes its fleet table once a second.
const REFRESH_MS: f64 = 1000.0;

pub fn run(args: &Args) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(bench(args))
}

async fn bench(args: &Args) -> anyhow::Result<()> {
    let profile = testnet::e2e::profile("good-terminal").map_err(|e| anyhow::anyhow!(e))?;
    let pdp = TestPdp::start_raw(
        &[(Role::Terminal, &profile)],
        (Vec::new(), Vec::new()),
        PdpOptions {
            admin: true,
            report: false,
            ..PdpOptions::default()
        },
    )
    .await?;
    let filled = Instant::now();
    // One real login first: its device's appraisal state (counters, PCR
    // 10, key applications) is copied to every bench device, so that the
    // list parses what a real fleet's rows hold.
    let state = real_state(&pdp, &profile).await?;
    let (isolated, sample) = fill(&pdp, args.devices, &state).await?;
    let fill_s = filled.elapsed().as_secs_f64();
    let client = pdp.admin_client("bench", AdminRole::ReadOnly)?;

    let detail = format!("/v1/devices/{}", &sample[..16]);
    let rows = [
        (
            "GET /v1/devices (all)",
            "/v1/devices".to_string(),
            args.devices,
        ),
        (
            "GET /v1/devices?verdict=isolate",
            "/v1/devices?verdict=isolate".to_string(),
            isolated,
        ),
        ("GET /v1/devices/{prefix}", detail, 1),
    ];
    println!(
        "testnet bench admin: the admin API over {} enrolled devices (SQLite store, {fill_s:.1} s to fill;",
        args.devices
    );
    println!(
        "  each row with the appraisal state of a real login, {} bytes of JSON);",
        state.len()
    );
    println!("  each request a new TLS 1.3 connection with a read-only admin certificate, as AdminClient makes them");
    println!();
    println!(
        "{:<34} | {:>8} | {:>8} | {:>8} | {:>8} | {:>10}",
        "request", "devices", "requests", "p50 ms", "p99 ms", "body KiB"
    );
    println!("{}", "-".repeat(90));
    let mut list_p99 = f64::NAN;
    for (name, path, expect) in rows {
        let mut ms = Vec::with_capacity(args.requests);
        let mut bytes = 0;
        for i in 0..=args.requests {
            let start = Instant::now();
            let (status, body) = client
                .call(tnc_server::admin::client::Method::GET, &path, None)
                .await?;
            let took = start.elapsed().as_secs_f64() * 1e3;
            anyhow::ensure!(status == 200, "{path}: {status}");
            if i == 0 {
                // The first (warm-up) answer is checked, not timed.
                let n = if expect == 1 {
                    serde_json::from_slice::<api::DeviceDetail>(&body).map(|_| 1)?
                } else {
                    serde_json::from_slice::<Vec<api::Device>>(&body)?.len()
                };
                anyhow::ensure!(n == expect, "{path}: {n} devices, expected {expect}");
                bytes = body.len();
                continue;
            }
            ms.push(took);
        }
        ms.sort_by(f64::total_cmp);
        let (p50, p99) = (percentile(&ms, 0.5), percentile(&ms, 0.99));
        if path == "/v1/devices" {
            list_p99 = p99;
        }
        println!(
            "{name:<34} | {expect:>8} | {:>8} | {p50:>8.1} | {p99:>8.1} | {:>10.0}",
            ms.len(),
            bytes as f64 / 1024.0
        );
    }
    println!();
    println!(
        "the whole list within the monitor's {REFRESH_MS:.0} ms refresh: {} (p99 {list_p99:.1} ms)",
        if list_p99 < REFRESH_MS { "yes" } else { "NO" }
    );
    pdp.stop().await?;
    Ok(())
}

/// The stored appraisal state (JSON) of a software terminal after one
/// login; the device is forgotten again.
async fn real_state(
    pdp: &TestPdp,
    profile: &testnet::simulator::Profile,
) -> anyhow::Result<String> {
    let measurements = std::sync::Arc::new(profile.measure().map_err(|e| anyhow::anyhow!(e))?);
    let device = testnet::e2e::soft_device(pdp, Role::Terminal, "state", &measurements).await?;
    let dir = testnet::swtpm::scratch_dir("bench-admin")?;
    let os = tnc_client::os::OsFacts::collect(&testnet::e2e::write_host_files(&dir)?, false)?;
    let mut agent = tnc_client::agent::Agent::with_collector(os, Box::new(device()));
    let outcome = tnc_client::agent::login(
        pdp.addr,
        "localhost",
        tnc_client::agent::tls_client_config(&pdp.tls.ca)?,
        &mut agent,
        None,
    )
    .await?;
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(outcome.allowed(), "the state's login: {outcome:?}");
    let id: [u8; 32] = policy::digest::from_hex(&testnet::e2e::soft_device_id("state"))
        .and_then(|d| d.try_into().ok())
        .context("the soft device's ID")?;
    let record = pdp.store.device(&id).await?.context("the soft device")?;
    anyhow::ensure!(record.state.is_some(), "no state after the login");
    let state = pdp
        .store
        .device_state_json(&id)
        .await?
        .context("its state")?;
    pdp.store.forget_device(&id).await?;
    Ok(state)
}

/// `n` devices in the store, in statements of 500 rows, each with `state`:
/// 80 % terminals, 20 % VMs; 1 in 25 isolated, 1 in 100 refused, the rest
/// allowed. Returns how many are isolated and one device's ID (hex).
async fn fill(pdp: &TestPdp, n: usize, state: &str) -> anyhow::Result<(usize, String)> {
    let state = state.replace('\'', "''");
    let mut isolated = 0;
    let mut sample = String::new();
    let hex = policy::digest::hex;
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut values = Vec::with_capacity(chunk.len());
        for &i in chunk {
            let id = policy::HashAlg::Sha256.digest(format!("bench device {i}").as_bytes());
            let ak = policy::HashAlg::Sha256.digest(format!("bench ak {i}").as_bytes());
            let role = if i % 5 == 0 { "vm" } else { "terminal" };
            let verdict = match i {
                i if i % 100 == 1 => "no-access",
                i if i % 25 == 2 => {
                    isolated += 1;
                    "isolate"
                }
                _ => "allow",
            };
            if i == n / 2 {
                sample = hex(&id);
            }
            values.push(format!(
                "(X'{}', '{role}', X'{}', X'000b{}', X'{}', '{state}', '{verdict}', {}, 1800000000)",
                hex(&id),
                hex(format!("bench EK certificate {i}").as_bytes()),
                hex(&ak),
                hex(&ak),
                1_800_000_000 + i as i64
            ));
        }
        pdp.store
            .execute_raw(&format!(
                "INSERT INTO devices (device_id, role, ek_certificate, ak_name, ak_public, state,
                                      last_verdict, last_seen, enrolled_at) VALUES {}",
                values.join(", ")
            ))
            .await
            .context("filling the store")?;
    }
    Ok((isolated, sample))
}
