//! `tnc-gateway`: the network access gateway (docs/gateway.md).

#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tnc_gateway::config::GatewayConfig;

#[derive(Parser, Debug)]
#[command(
    name = "tnc-gateway",
    version,
    about = "Network access gateway: admits terminals to VMs on their access tickets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve terminals: check each connection's access ticket offline, relay
    /// it to the VM, cut it when its ticket is revoked. Stops on SIGTERM or
    /// SIGINT.
    Run {
        #[arg(long)]
        config: PathBuf,
        /// Instead of `listen` in the config.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Get this gateway's certificate from the PDP with a one-time token
    /// (`tnc-server gateway token NAME` on the PDP). Makes the private key
    /// (0600) if there is none.
    ///
    /// Exit status: 0 enrolled, 1 refused or the PDP unreachable, 2 usage
    /// or configuration errors.
    Enrol {
        #[arg(long)]
        config: PathBuf,
        /// The token; default: the TNC_GATEWAY_TOKEN environment variable.
        #[arg(long)]
        token: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tnc-gateway: {e}");
            return ExitCode::from(1);
        }
    };
    match cli.command {
        Command::Run { config, listen } => runtime.block_on(run(&config, listen)),
        Command::Enrol { config, token } => runtime.block_on(enrol(&config, token)),
    }
}

fn load(path: &std::path::Path) -> Result<GatewayConfig, ExitCode> {
    GatewayConfig::load(path).map_err(|e| {
        eprintln!("tnc-gateway: {e}");
        ExitCode::from(2)
    })
}

async fn run(path: &std::path::Path, listen: Option<std::net::SocketAddr>) -> ExitCode {
    let mut config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(l) = listen {
        config.listen = l;
    }
    let running = match tnc_gateway::gate::start(&config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tnc-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(
        addr = %running.addr,
        pdp = %config.pdp.revocations,
        vms = config.vms.len(),
        fail_open = config.limits.fail_open,
        "gateway listening"
    );
    // For scripts that start it on port 0.
    println!("listening on {}", running.addr);
    if let Some(at) = running.metrics_addr {
        tracing::info!(%at, "Prometheus metrics ready (GET /metrics)");
    }
    wait_for_signal().await;
    tracing::info!("signal received: stopping");
    running.stop().await;
    ExitCode::SUCCESS
}

async fn enrol(path: &std::path::Path, token: Option<String>) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(token) = token.or_else(|| std::env::var("TNC_GATEWAY_TOKEN").ok()) else {
        eprintln!("tnc-gateway enrol: give --token (or TNC_GATEWAY_TOKEN): `tnc-server gateway token {}` on the PDP makes one", config.identity.name);
        return ExitCode::from(2);
    };
    match tnc_gateway::enrol::enrol(&config, &token).await {
        Ok(e) => {
            println!(
                "enrolled as {}: certificate in {} until {} (unix seconds){}",
                config.identity.name,
                e.certificate.display(),
                e.not_after,
                if e.new_key { ", new key" } else { "" }
            );
            ExitCode::SUCCESS
        }
        Err(tnc_gateway::enrol::EnrolError::Local(e)) => {
            eprintln!("tnc-gateway enrol: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("tnc-gateway enrol: {e}");
            ExitCode::from(1)
        }
    }
}

/// SIGTERM or SIGINT, whichever comes first.
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
