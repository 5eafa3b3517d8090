//! `testnet`: demos, scenarios and benchmarks for the TNC system.

#![forbid(unsafe_code)]

mod bench;
mod bench_admin;
mod bench_channel;
mod bench_continuous;
mod bench_crypto;
mod bench_door;
mod bench_handshake;
mod bench_sm4;
mod boot;
mod demo;
mod demo_pdp;
mod up;

use clap::{Parser, Subcommand};

/// The PDP's allocator, as in `tnc-server` (see the workspace's
/// Cargo.toml): the benchmarks run the PDP in this process.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "testnet",
    version,
    about = "Demos, scenarios and benchmarks for the TNC system"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The PDP and three swtpm-backed endpoints (good terminal, tampered
    /// kernel, VM) logging in over PT-TLS on loopback, with a summary table.
    Demo,
    /// Measure a boot into a software TPM (PCRs, UEFI event log, IMA list)
    /// from a profile, for a lab endpoint run by hand (README: Quickstart).
    Boot(boot::Args),
    /// A whole PT-TLS + PB-TNC + PA-TNC exchange in memory, printed message by
    /// message as the dissector reads it.
    DemoWire(demo::Args),
    /// The demo's topology left running for trying things by hand: a PDP,
    /// swtpm terminals, vm-1 serving a web service; writes DIR/topology.json
    /// and stays until SIGTERM or Ctrl-C.
    Up(up::Args),
    /// Benchmarks that print a table (one core, release build recommended).
    Bench {
        #[command(subcommand)]
        command: bench::Command,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Demo => demo_pdp::run(),
        Command::DemoWire(args) => demo::run(&args),
        Command::Boot(args) => boot::run(&args),
        Command::Up(args) => up::run(&args),
        Command::Bench { command } => bench::run(&command),
    }
}
