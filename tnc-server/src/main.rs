//! `tnc-server`: the policy decision point and its operator tools.
//!
//! `run` is the daemon; `dissect` and `evidence` are the operator's tools for
//! protocol bytes and TPM evidence.

#![forbid(unsafe_code)]

mod cmd;

use cmd::{admin, admins, ca, dissect, ek_roots, evidence, init, run};

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc rather than glibc's malloc, which took 11-12 % of the CPU of
/// concurrent handshakes (see the workspace's Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "tnc-server",
    version,
    about = "Trusted Network Connect policy decision point"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the policy decision point: PT-TLS over TCP + TLS 1.3, the OS and
    /// attestation validators. Stops cleanly on SIGTERM or SIGINT.
    Run(run::Args),
    /// Create a CA, the server certificate, the store, example reference
    /// values, server.toml and client.toml in a directory.
    Init(init::Args),
    /// Users for SASL PLAIN.
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Enrolled devices.
    #[command(subcommand)]
    Device(admin::DeviceCommand),
    /// Reference values (policy versions).
    #[command(subcommand)]
    Policy(admin::PolicyCommand),
    /// The hash-chained audit log.
    #[command(subcommand)]
    Audit(admin::AuditCommand),
    /// Network access gateways: enrolment tokens, and what each subscriber
    /// to the revocation stream acknowledged.
    #[command(subcommand)]
    Gateway(admin::GatewayCommand),
    /// The admin API's callers: issue their certificates.
    #[command(subcommand)]
    Admin(admins::Command),
    /// The CAs trusted for TPM endorsement key certificates: the TPM
    /// manufacturers' and cloud vTPMs' shipped with tnc-server, and your own.
    #[command(subcommand, name = "ek-roots")]
    EkRoots(ek_roots::Command),
    /// The PDP's SM2 certificate authority ([ca] in server.toml): show it,
    /// issue SM2 certificates for requests or new keys.
    #[command(subcommand)]
    Ca(ca::Command),
    /// Print every field of raw PT-TLS, PB-TNC or PA-TNC bytes by its RFC name.
    ///
    /// Reads a PT-TLS byte stream (the TLS plaintext of one direction of a
    /// session), a single PB-TNC batch or a single PA-TNC message. Malformed input
    /// is reported with its byte offset and the protocol error a receiver would
    /// answer with; the exit status is then 1. SASL PLAIN passwords are redacted.
    Dissect(dissect::Args),
    /// Read TPM evidence (event logs, IMA lists, quotes) as the PDP reads it.
    #[command(subcommand)]
    Evidence(evidence::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Init(args) => init::run(&args),
        Command::User(cmd) => admin::user(&cmd),
        Command::Device(cmd) => admin::device(&cmd),
        Command::Gateway(cmd) => admin::gateway(&cmd),
        Command::Admin(cmd) => admins::run(&cmd),
        Command::Policy(cmd) => admin::policy(&cmd),
        Command::Audit(cmd) => admin::audit(&cmd),
        Command::EkRoots(cmd) => ek_roots::run(&cmd),
        Command::Ca(cmd) => ca::run(&cmd),
        Command::Dissect(args) => dissect::run(&args),
        Command::Evidence(cmd) => evidence::run(&cmd),
    };
    match result {
        Ok(code) => code,
        // `tnc-server dissect big.bin | head` is normal use, not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tnc-server: {e:#}");
            ExitCode::from(2)
        }
    }
}
