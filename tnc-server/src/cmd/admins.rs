//! `tnc-server admin issue`: certificates for the admin API's callers
//! (docs/admin-api.md); `admin openapi`: the API's OpenAPI document.

use super::{open_store, runtime};
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tnc_proto::admin::AdminRole;
use tnc_server::config::ServerConfig;
use tnc_server::pdp::system_clock;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Issue an admin certificate and a new key (0600) from [admin]
    /// ca_certificate / ca_private_key, for tnc-monitor, curl or
    /// `--server`: NAME.pem and NAME.key in --out.
    Issue {
        #[arg(long)]
        config: PathBuf,
        /// The admin's name (letters, digits, '.', '_', '-'): the subject
        /// CN, and who the audit log says acted.
        name: String,
        /// May read only (OU tnc-admin-read); without it the certificate
        /// may also act: re-assess, revoke, forget, load a policy.
        #[arg(long)]
        read_only: bool,
        /// Where to write NAME.pem and NAME.key (default: the current
        /// directory).
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Days the certificate is valid (at most 825).
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=825))]
        days: u32,
    },
    /// Print the admin API's OpenAPI 3.1 document (what a running PDP
    /// serves at /v1/openapi.json).
    Openapi,
}

pub fn run(cmd: &Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Openapi => {
            println!("{}", tnc_server::admin::openapi::json());
            Ok(ExitCode::SUCCESS)
        }
        Command::Issue {
            config: config_path,
            name,
            read_only,
            out,
            days,
        } => {
            let config = ServerConfig::load(config_path)?;
            let ca_path = config.path(&config.admin.ca_certificate);
            let key_path = config.path(&config.admin.ca_private_key);
            let ca = std::fs::read_to_string(&ca_path)
                .with_context(|| format!("admin.ca_certificate {}", ca_path.display()))?;
            let ca_key = std::fs::read_to_string(&key_path)
                .with_context(|| format!("admin.ca_private_key {}", key_path.display()))?;
            let role = if *read_only {
                AdminRole::ReadOnly
            } else {
                AdminRole::ReadWrite
            };
            let (cert, key) = tnc_server::certs::issue_admin(
                &ca,
                &ca_key,
                name,
                role,
                Duration::from_secs(u64::from(*days) * 86_400),
            )
            .with_context(|| {
                format!(
                    "issuing with {} and {}",
                    ca_path.display(),
                    key_path.display()
                )
            })?;
            let (cert_path, key_file) = (
                out.join(format!("{name}.pem")),
                out.join(format!("{name}.key")),
            );
            if cert_path.exists() {
                bail!(
                    "{} exists: give another NAME or --out, or remove it",
                    cert_path.display()
                );
            }
            tnc_server::certs::write_private(&key_file, key.as_bytes(), false).with_context(
                || format!("writing {} (it must not exist yet)", key_file.display()),
            )?;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&cert_path)
                .and_then(|mut f| std::io::Write::write_all(&mut f, cert.as_bytes()))
                .with_context(|| format!("writing {}", cert_path.display()))?;
            runtime()?.block_on(async {
                open_store(config_path)
                    .await?
                    .audit(
                        system_clock(),
                        "admin-issue",
                        name,
                        &format!("{} certificate, {days} days", role.ou()),
                    )
                    .await?;
                Ok::<_, anyhow::Error>(())
            })?;
            println!(
                "admin certificate for {name} ({}), valid {days} days:",
                role.ou()
            );
            println!("  {}", cert_path.display());
            println!("  {} (0600)", key_file.display());
            match config.admin.listen {
                Some(at) => println!(
                    "try: curl --cacert {} --cert {} --key {} https://{}/v1/whoami",
                    ca_path.display(),
                    cert_path.display(),
                    key_file.display(),
                    at
                ),
                None => println!("the admin API is off: set [admin] listen in the config"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
