//! `tnc-server ek-roots list|add|remove`: the CAs the PDP trusts for EK
//! certificates. The shipped vendor CAs are part of the binary; the
//! operator's own live in the PEM file `attestation.ek_roots` names, and
//! distrusted ones in `attestation.distrusted_ek_roots`. Changes are edits of
//! those two (the config keeps its comments) with an audit entry; the PDP
//! reads them when it starts.

use anyhow::{anyhow, bail, Context};
use pki::ek_roots::CaCertificate;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tnc_server::config::ServerConfig;
use tnc_server::ek_trust::{EkTrust, Origin, Status};
use tnc_server::pdp::system_clock;

/// Where `swtpm_setup --create-ek-cert` keeps its local CA: the `statedir`
/// of the `swtpm-localca.conf` swtpm reads (the user's own under
/// `$XDG_CONFIG_HOME` or `~/.config` when not root, else `/etc`'s), or
/// `/var/lib/swtpm-localca`.
pub fn swtpm_localca_dir() -> PathBuf {
    let mut confs = Vec::new();
    // swtpm_setup uses the user's files for everyone but root.
    if !is_root() {
        if let Some(x) = std::env::var_os("XDG_CONFIG_HOME") {
            confs.push(PathBuf::from(x).join("swtpm-localca.conf"));
        }
        if let Some(h) = std::env::var_os("HOME") {
            confs.push(PathBuf::from(h).join(".config/swtpm-localca.conf"));
        }
    }
    confs.push(PathBuf::from("/etc/swtpm-localca.conf"));
    confs
        .iter()
        .filter_map(|c| std::fs::read_to_string(c).ok())
        .find_map(|text| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == "statedir").then(|| PathBuf::from(v.trim()))
            })
        })
        .unwrap_or_else(|| PathBuf::from("/var/lib/swtpm-localca"))
}

fn is_root() -> bool {
    // The owner of /proc/self is this process's user; no libc call needed.
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `--lab-swtpm-ca[=DIR]`: the directory given, or swtpm's own.
pub fn lab_ca_dir(arg: &Option<Option<PathBuf>>) -> Option<PathBuf> {
    arg.as_ref()
        .map(|d| d.clone().unwrap_or_else(swtpm_localca_dir))
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Every EK CA the PDP knows: shipped (by vendor) and the config's own,
    /// with its status (trusted, expired, distrusted), expiry and SHA-256
    /// fingerprint. Without --config: the shipped set.
    List {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Trust CA certificates (PEM or DER files) for EK certificates: they are
    /// appended to the first file `attestation.ek_roots` names.
    Add {
        #[arg(long)]
        config: PathBuf,
        files: Vec<PathBuf>,
        /// Also trust swtpm's local CA (root and issuer), which signs the EK
        /// certificates `swtpm_setup --create-ek-cert` makes: for labs only,
        /// it is a CA every user of this machine can sign with.
        #[arg(long, value_name = "DIR", num_args = 0..=1, require_equals = true)]
        lab_swtpm_ca: Option<Option<PathBuf>>,
    },
    /// Stop trusting a CA, named by its SHA-256 fingerprint or a unique prefix
    /// of at least 8 hex digits: removed from the config's file, or, if
    /// shipped, added to `attestation.distrusted_ek_roots`.
    Remove {
        #[arg(long)]
        config: PathBuf,
        fingerprint: String,
    },
}

pub fn run(cmd: &Command) -> anyhow::Result<ExitCode> {
    let now = system_clock() as i64;
    match cmd {
        Command::List { config, json } => {
            let trust = match config {
                Some(c) => EkTrust::load(&ServerConfig::load(c)?, now)?,
                None => EkTrust::shipped_only(now)?,
            };
            list(&trust, *json);
        }
        Command::Add {
            config,
            files,
            lab_swtpm_ca,
        } => {
            let mut certs = Vec::new();
            for f in files {
                let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
                certs.extend(
                    CaCertificate::all_from_pem_or_der(&bytes, &f.display().to_string())
                        .map_err(|e| anyhow!("{}: {e}", f.display()))?,
                );
            }
            if let Some(dir) = lab_ca_dir(lab_swtpm_ca) {
                certs.extend(swtpm_local_ca(&dir)?);
            }
            if certs.is_empty() {
                bail!("nothing to add: name PEM or DER files, or --lab-swtpm-ca");
            }
            add(config, certs, now)?;
        }
        Command::Remove {
            config,
            fingerprint,
        } => remove(config, fingerprint, now)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The swtpm local CA's root and issuer certificates in `dir`.
pub fn swtpm_local_ca(dir: &Path) -> anyhow::Result<Vec<CaCertificate>> {
    let mut out = Vec::new();
    for name in ["swtpm-localca-rootca-cert.pem", "issuercert.pem"] {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| {
            anyhow!(
                "--lab-swtpm-ca: reading {}: {e} (swtpm_setup --create-ek-cert creates the local \
                 CA the first time it runs; or name the CA's directory: --lab-swtpm-ca=DIR)",
                path.display()
            )
        })?;
        out.extend(
            CaCertificate::all_from_pem_or_der(&bytes, &path.display().to_string())
                .map_err(|e| anyhow!("{}: {e}", path.display()))?,
        );
    }
    Ok(out)
}

fn list(trust: &EkTrust, as_json: bool) {
    if as_json {
        let rows: Vec<_> = trust
            .entries
            .iter()
            .map(|e| {
                let (vendor, source) = origin(&e.origin);
                json!({
                    "sha256": e.certificate.fingerprint(),
                    "subject": e.certificate.subject,
                    "issuer": e.certificate.issuer,
                    "kind": kind(&e.certificate),
                    "not_after": utc_date(e.certificate.not_after),
                    "status": e.status.name(),
                    "vendor": vendor,
                    "source": source,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
        return;
    }
    println!(
        "{:<10} | {:<18} | {:<12} | {:<10} | {:<16} | subject",
        "status", "vendor", "kind", "not after", "sha256"
    );
    for e in &trust.entries {
        let (vendor, _) = origin(&e.origin);
        println!(
            "{:<10} | {:<18} | {:<12} | {:<10} | {:<16} | {}",
            short_status(e.status),
            vendor,
            kind(&e.certificate),
            utc_date(e.certificate.not_after),
            &e.certificate.fingerprint()[..16],
            e.certificate.subject
        );
    }
    let trusted = trust.usable();
    let expired = trust
        .entries
        .iter()
        .filter(|e| e.status == Status::Expired)
        .count();
    println!(
        "{} certificates: {trusted} trusted, {expired} expired, {} not used",
        trust.entries.len(),
        trust.entries.len() - trusted - expired
    );
    if trusted == 0 {
        println!(
            "no EK CA is trusted: no TPM can enroll (tnc-server ek-roots add --config F FILE)"
        );
    }
}

fn short_status(s: Status) -> &'static str {
    match s {
        Status::VendorSetOff => "off",
        Status::IssuerDistrusted => "distrusted",
        other => other.name(),
    }
}

fn origin(o: &Origin) -> (String, String) {
    match o {
        Origin::Shipped { vendor, file } => (vendor.to_string(), format!("pki/ek-roots/{file}")),
        Origin::File(p) => ("(config)".into(), p.display().to_string()),
    }
}

fn kind(c: &CaCertificate) -> &'static str {
    if c.self_signed() {
        "root"
    } else {
        "intermediate"
    }
}

fn add(config_path: &Path, certs: Vec<CaCertificate>, now: i64) -> anyhow::Result<()> {
    let config = ServerConfig::load(config_path)?;
    let trust = EkTrust::load(&config, now)?;
    let mut doc = edit_config(config_path)?;
    // The operator's file: the first ek_roots entry, or a new ek-roots.pem.
    let file = match config.attestation.ek_roots.first() {
        Some(p) => config.path(p),
        None => {
            array(&mut doc, "ek_roots")?.push("ek-roots.pem");
            config.path(Path::new("ek-roots.pem"))
        }
    };
    let mut pem = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => bail!("attestation.ek_roots: reading {}: {e}", file.display()),
    };
    let mut added = Vec::new();
    for c in certs {
        if !c.is_ca {
            bail!(
                "{:?} is not a CA certificate (basicConstraints): give the CA that issues EK \
                 certificates, not an EK certificate",
                c.subject
            );
        }
        let fp = c.fingerprint();
        let distrusted = array(&mut doc, "distrusted_ek_roots")?;
        let before = distrusted.len();
        distrusted.retain(|v| v.as_str().is_none_or(|s| !s.eq_ignore_ascii_case(&fp)));
        let was_distrusted = distrusted.len() != before;
        let known = trust.entries.iter().find(|e| {
            e.certificate.sha256 == c.sha256
                && (matches!(e.origin, Origin::File(_)) || config.attestation.vendor_ek_roots)
        });
        match known {
            // Shipped (and the vendor set on), or in the operator's file
            // already: leaving the distrusted list is all it takes.
            Some(e) if was_distrusted => {
                println!("{fp}: no longer distrusted ({})", origin(&e.origin).0);
                added.push(c);
            }
            Some(e) => println!(
                "{fp}: already trusted ({}: {})",
                origin(&e.origin).0,
                c.subject
            ),
            None if added.iter().any(|a: &CaCertificate| a.sha256 == c.sha256) => {}
            None => {
                if !pem.is_empty() && !pem.ends_with('\n') {
                    pem.push('\n');
                }
                pem.push_str(&format!("# {}\n# sha256 {fp}\n", c.subject));
                pem.push_str(&c.pem());
                added.push(c);
            }
        }
    }
    if added.is_empty() {
        println!("nothing changed");
        return Ok(());
    }
    std::fs::write(&file, &pem).with_context(|| format!("writing {}", file.display()))?;
    write_config(config_path, &doc)?;
    let detail: Vec<String> = added
        .iter()
        .map(|c| format!("{} {}", c.fingerprint(), c.subject))
        .collect();
    audit(config_path, "ek-root-add", &detail.join("; "))?;
    for c in &added {
        let expired = if c.expired(now) {
            " (EXPIRED: no EK certificate chains through it)"
        } else {
            ""
        };
        println!("trusted {} {}{expired}", c.fingerprint(), c.subject);
    }
    println!(
        "{} in {}; the PDP uses it from its next start",
        if added.len() == 1 {
            "1 CA certificate"
        } else {
            "the CA certificates"
        },
        file.display()
    );
    Ok(())
}

fn remove(config_path: &Path, prefix: &str, now: i64) -> anyhow::Result<()> {
    if prefix.len() < 8 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "{prefix:?}: name the CA by its SHA-256 fingerprint or at least its first 8 hex \
             digits (tnc-server ek-roots list)"
        );
    }
    let config = ServerConfig::load(config_path)?;
    let trust = EkTrust::load(&config, now)?;
    let found = trust.matching(prefix);
    let mut fingerprints: Vec<String> = found.iter().map(|e| e.certificate.fingerprint()).collect();
    fingerprints.dedup();
    let entry = match (found.first(), fingerprints.len()) {
        (None, _) => {
            bail!("no EK CA has a fingerprint starting with {prefix} (tnc-server ek-roots list)")
        }
        (Some(e), 1) => *e,
        _ => bail!(
            "{prefix} matches several CAs: {}; give more digits",
            fingerprints.join(", ")
        ),
    };
    let fp = entry.certificate.fingerprint();
    let mut changed = false;
    // From the operator's files.
    for e in found.iter().filter(|e| e.certificate.fingerprint() == fp) {
        if let Origin::File(path) = &e.origin {
            remove_from_pem_file(path, &e.certificate)?;
            println!("removed {fp} from {}", path.display());
            changed = true;
        }
    }
    // A shipped one: distrusted in the config.
    if found
        .iter()
        .any(|e| matches!(e.origin, Origin::Shipped { .. }) && e.status != Status::Distrusted)
    {
        let mut doc = edit_config(config_path)?;
        array(&mut doc, "distrusted_ek_roots")?.push(fp.as_str());
        write_config(config_path, &doc)?;
        println!(
            "distrusted {fp} (shipped): added to attestation.distrusted_ek_roots in {}",
            config_path.display()
        );
        changed = true;
    }
    if !changed {
        println!("{fp} is distrusted already");
        return Ok(());
    }
    audit(
        config_path,
        "ek-root-remove",
        &format!("{fp} {}", entry.certificate.subject),
    )?;
    println!(
        "{}: no longer an EK trust anchor from the PDP's next start (devices enrolled under it \
         stay enrolled: tnc-server device forget DEVICE makes one enroll again)",
        entry.certificate.subject
    );
    Ok(())
}

/// Rewrites a PEM file without the blocks that encode `cert`, keeping the
/// rest (other certificates, comments) as it was.
fn remove_from_pem_file(path: &Path, cert: &CaCertificate) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = String::new();
    let mut block = String::new();
    let mut in_block = false;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "-----BEGIN CERTIFICATE-----" {
            in_block = true;
        }
        if in_block {
            block.push_str(line);
            if line.trim_end() == "-----END CERTIFICATE-----" {
                in_block = false;
                let same = pki::ek::certificates_in_pem(block.as_bytes())
                    .is_ok_and(|d| d.first() == Some(&cert.der));
                if !same {
                    out.push_str(&block);
                } else {
                    // Drop the comment lines `add` wrote just above it.
                    let fp_line = format!("# sha256 {}\n", cert.fingerprint());
                    if out.ends_with(&fp_line) {
                        out.truncate(out.len() - fp_line.len());
                        let subject_line = format!("# {}\n", cert.subject);
                        if out.ends_with(&subject_line) {
                            out.truncate(out.len() - subject_line.len());
                        }
                    }
                }
                block.clear();
            }
        } else {
            out.push_str(line);
        }
    }
    out.push_str(&block);
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

fn edit_config(path: &Path) -> anyhow::Result<toml_edit::DocumentMut> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the server config {}", path.display()))?;
    text.parse::<toml_edit::DocumentMut>()
        .map_err(|e| anyhow!("{}: {e}", path.display()))
}

fn write_config(path: &Path, doc: &toml_edit::DocumentMut) -> anyhow::Result<()> {
    std::fs::write(path, doc.to_string()).with_context(|| format!("writing {}", path.display()))
}

/// `[attestation] KEY`, an array of strings, created if missing.
fn array<'d>(
    doc: &'d mut toml_edit::DocumentMut,
    key: &str,
) -> anyhow::Result<&'d mut toml_edit::Array> {
    let attestation = doc
        .get_mut("attestation")
        .and_then(|a| a.as_table_like_mut())
        .ok_or_else(|| anyhow!("the config has no [attestation] table"))?;
    if attestation.get(key).is_none() {
        attestation.insert(key, toml_edit::value(toml_edit::Array::new()));
    }
    attestation
        .get_mut(key)
        .and_then(|v| v.as_array_mut())
        .ok_or_else(|| anyhow!("attestation.{key} is not an array"))
}

fn audit(config: &Path, action: &str, detail: &str) -> anyhow::Result<()> {
    crate::admin_cmd::runtime()?.block_on(async {
        let store = crate::admin_cmd::open(config).await?;
        store
            .audit(system_clock(), action, "operator", detail)
            .await?;
        store.close().await;
        Ok(())
    })
}

/// `YYYY-MM-DD` (UTC) of unix seconds.
fn utc_date(unix: i64) -> String {
    let mut t = tnc_proto::pa_tnc::OperationalStatus::last_use_at(unix.max(0) as u64);
    t.truncate(10);
    t
}

#[cfg(test)]
mod tests {
    use super::utc_date;

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_796_342_400), "2026-12-04");
        assert_eq!(utc_date(4_102_444_799), "2099-12-31");
        // 9999-12-31T23:59:59Z: "no well-defined expiration" (RFC 5280).
        assert_eq!(utc_date(253_402_300_799), "9999-12-31");
    }
}
