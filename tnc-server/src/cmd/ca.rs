//! `tnc-server ca show|issue`: the PDP's SM2 certificate authority (`[ca]`
//! in server.toml, made by `init`).

use super::input::read_file;
use anyhow::{anyhow, bail, Context};
use pki::ca::{describe, CertificateInfo, LeafSpec, Sm2Key, Usage};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};
use tnc_server::config::ServerConfig;
use tnc_server::issue::Issuer;
use tnc_server::pdp::system_clock;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// The SM2 CA: subject, validity, SHA-256 fingerprint, and whether its
    /// key file is private.
    Show {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Issue an SM2 certificate (SM2-with-SM3) for a PKCS#10 request, or
    /// for a new key written 0600 beside it.
    Issue(IssueArgs),
}

#[derive(clap::Args, Debug)]
pub struct IssueArgs {
    #[arg(long)]
    config: PathBuf,
    /// The PKCS#10 request (PEM or DER): an SM2 key, signed by itself.
    #[arg(long, conflicts_with = "new_key")]
    csr: Option<PathBuf>,
    /// Make a new SM2 key here (PKCS#8 PEM, 0600; never over a file).
    #[arg(long, required_unless_present = "csr")]
    new_key: Option<PathBuf>,
    /// The certificate's common name.
    #[arg(long)]
    name: String,
    /// DNS names for its subjectAltName.
    #[arg(long)]
    dns: Vec<String>,
    /// IP addresses for its subjectAltName.
    #[arg(long)]
    ip: Vec<IpAddr>,
    /// What it may be used for: server, client or both.
    #[arg(long, default_value = "client", value_parser = ["server", "client", "both"])]
    usage: String,
    /// Seconds it is valid (default: ca.lifetime_secs).
    #[arg(long)]
    lifetime_secs: Option<u64>,
    /// Where to write the certificate (PEM).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(command: &Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Show { config, json } => show(config, *json),
        Command::Issue(args) => issue(args),
    }
}

/// The CA of `[ca]`, loaded (its key must be private).
fn load(config: &ServerConfig) -> anyhow::Result<Issuer> {
    Issuer::from_config(config)?.ok_or_else(|| {
        anyhow!(
            "the config has no [ca] section: tnc-server init writes one (certificate, private_key)"
        )
    })
}

fn when(unix: i64) -> String {
    // RFC 3339 in UTC, without a date crate: days since the epoch to a date.
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn print_info(info: &CertificateInfo, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({
                "subject": info.subject,
                "issuer": info.issuer,
                "serial": info.serial,
                "not_before": when(info.not_before),
                "not_after": when(info.not_after),
                "sha256": info.sha256,
                "ca": info.is_ca,
                "signature_algorithm": info.signature_algorithm,
            })
        );
    } else {
        println!("subject:    {}", info.subject);
        println!("issuer:     {}", info.issuer);
        println!("serial:     {}", info.serial);
        println!(
            "valid:      {} to {}",
            when(info.not_before),
            when(info.not_after)
        );
        println!("sha256:     {}", info.sha256);
        println!(
            "signature:  SM2-with-SM3 ({}), SM2 ID 1234567812345678",
            info.signature_algorithm
        );
    }
}

fn show(config_path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let config = ServerConfig::load(config_path)?;
    let issuer = load(&config)?;
    let lifetime = issuer.lifetime.as_secs();
    let info = describe(issuer.ca_certificate())?;
    print_info(&info, json);
    if !json {
        println!("issues:     certificates valid {lifetime} s (ca.lifetime_secs)");
        if info.not_after < system_clock() as i64 {
            println!("warning:    the CA has expired: what it issues will not verify");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn issue(args: &IssueArgs) -> anyhow::Result<ExitCode> {
    let config = ServerConfig::load(&args.config)?;
    let issuer = load(&config)?;
    let (ca, default_lifetime) = (issuer.ca(), issuer.lifetime.as_secs());
    let public = match (&args.csr, &args.new_key) {
        (Some(csr), _) => {
            let der = pki::ca::pem_or_der(&read_file(csr)?)
                .with_context(|| format!("--csr {}", csr.display()))?;
            pki::ca::verify_request(&der)
                .with_context(|| format!("--csr {}", csr.display()))?
                .public_key
        }
        (None, Some(path)) => {
            let key = Sm2Key::generate()?;
            key.write_new(path)
                .with_context(|| format!("--new-key {}", path.display()))?;
            key.public_key()
        }
        (None, None) => bail!("give --csr FILE or --new-key FILE"),
    };
    let usage = match args.usage.as_str() {
        "server" => Usage::Server,
        "both" => Usage::ServerAndClient,
        _ => Usage::Client,
    };
    let spec = LeafSpec {
        common_name: args.name.clone(),
        subject_extra: Vec::new(),
        dns_names: args.dns.clone(),
        ips: args.ip.clone(),
        usage,
        lifetime: Duration::from_secs(args.lifetime_secs.unwrap_or(default_lifetime)),
    };
    let der = ca.issue(&public, &spec, SystemTime::now())?;
    let pem = pki::ca::pem_certificate(&der);
    std::fs::write(&args.out, pem).with_context(|| format!("--out {}", args.out.display()))?;
    let info = describe(&der)?;
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let store = super::open_store(&args.config).await?;
        store
            .audit(
                system_clock(),
                "ca-issue",
                &info.subject,
                &format!(
                    "serial {}, sha256 {}, until {}",
                    info.serial,
                    info.sha256,
                    when(info.not_after)
                ),
            )
            .await?;
        store.close().await;
        Ok::<_, anyhow::Error>(())
    })?;
    print_info(&info, false);
    println!("written:    {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::when;

    #[test]
    fn dates_are_rfc3339_utc() {
        assert_eq!(when(0), "1970-01-01T00:00:00Z");
        assert_eq!(when(1_796_342_400), "2026-12-04T00:00:00Z");
        assert_eq!(when(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(when(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
