//! `tnc-server run`: the PDP daemon.

use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tnc_server::config::ServerConfig;
use tnc_server::store::Store;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The server configuration (TOML; `tnc-server init` writes one).
    #[arg(long)]
    config: PathBuf,
    /// Listen here for PT-TLS over TCP instead of `listen.tcp`.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Also serve PT-TLS over QUIC (UDP) here, instead of `listen.quic`.
    #[arg(long)]
    quic_listen: Option<SocketAddr>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    tnc_server::log::init();
    let config = ServerConfig::load(&args.config)?;
    let tls = tnc_server::net::server_tls(&config)?;
    tracing::info!(suites = config.tls.suites.name(), "TLS 1.3 suites");
    let addr = args.listen.unwrap_or(config.listen.tcp);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let store = Arc::new(
            Store::open_keyed(&config.store_url(), config.audit_key()?)
                .await
                .with_context(|| format!("store.url {:?}", config.store.url))?,
        );
        let ctx = Arc::new(tnc_server::pdp::PdpContext::from_config(
            &config,
            store.clone(),
        )?);
        // The config's reference values become the current policy version
        // when they changed since the store last recorded them.
        for (role, text) in config.reference_files()? {
            if let Some(v) = store
                .seed_policy(role, &text, tnc_server::pdp::system_clock())
                .await?
            {
                tracing::info!(
                    role = role.name(),
                    version = v,
                    "reference values recorded from the config"
                );
            }
        }
        let roles: Vec<&str> = store
            .policy_versions()
            .await?
            .keys()
            .map(|r| r.name())
            .collect();
        let pdp = tnc_server::daemon::Pdp::builder(ctx, tls, config.limits.clone())
            .tcp(addr)
            .quic(args.quic_listen.or(config.listen.quic))
            .revocations(
                config
                    .revocations
                    .listen
                    .map(|at| (at, config.revocations.clone())),
            )
            .admin(tnc_server::daemon::AdminListen::from_config(&config, &store)?)
            .metrics(config.metrics.listen.map(|at| (at, store.clone())))
            .start()
            .await?;
        if let Some(at) = pdp.revocations_addr {
            tracing::info!(%at, name = %config.revocations.name, "revocation stream ready");
        }
        let stop = pdp.shutdown_handle();
        tokio::spawn(async move {
            tnc_server::daemon::wait_for_signal().await;
            tracing::info!("signal received: shutting down");
            stop.stop();
        });
        tracing::info!(
            addr = %pdp.tcp_addr,
            roles = ?roles,
            pcrs = %config.attestation.pcrs,
            max_sessions = config.limits.max_sessions,
            "PT-TLS listener ready"
        );
        // For scripts that start the daemon on port 0.
        say(format_args!("listening on {}", pdp.tcp_addr));
        if let Some(quic) = pdp.quic_addr {
            tracing::info!(addr = %quic, "PT-TLS over QUIC listener ready");
            say(format_args!("listening on quic {quic}"));
        }
        if let Some(at) = pdp.admin_addr {
            tracing::info!(%at, "admin API ready (HTTPS, admin certificates: tnc-server admin issue)");
            say(format_args!("admin API on https://{at}"));
        }
        if let Some(at) = pdp.metrics_addr {
            tracing::info!(%at, "Prometheus metrics ready (GET /metrics)");
            say(format_args!("metrics on http://{at}/metrics"));
        }
        pdp.join().await?;
        store.close().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A line on standard output for scripts, which may have stopped reading
/// (closed the pipe after the line they wanted): the daemon carries on
/// where `println!` would panic.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}
