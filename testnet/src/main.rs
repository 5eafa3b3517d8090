//! `testnet`: demos, scenarios and benchmarks for the TNC system.

#![forbid(unsafe_code)]

mod bench;
mod demo;

use clap::{Parser, Subcommand};

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
    /// Run a whole PT-TLS + PB-TNC + PA-TNC exchange in memory and print it.
    Demo(demo::Args),
    /// Benchmarks that print a table (one core, release build recommended).
    Bench {
        #[command(subcommand)]
        command: bench::Command,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Demo(args) => demo::run(&args),
        Command::Bench { command } => bench::run(&command),
    }
}
