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
use tnc_server::ek_trust::{lab_ca_files, read_cas, swtpm_local_ca, EkTrust, Origin, Status};
use tnc_server::pdp::system_clock;

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
            if let Some(files) = lab_ca_files(lab_swtpm_ca) {
                certs.extend(swtpm_local_ca(&files)?);
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
    let count = |s: Status| trust.entries.iter().filter(|e| e.status == s).count();
    let (trusted, expired) = (count(Status::Trusted), count(Status::Expired));
    println!(
        "{} certificates: {trusted} trusted, {expired} expired, {} not used",
        trust.entries.len(),
        trust.entries.len() - trusted - expired
    );
    if trust.usable() == 0 {
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
        Origin::Intermediate(p) => ("(config, chain)".into(), p.display().to_string()),
    }
}

fn kind(c: &CaCertificate) -> &'static str {
    if c.self_signed() {
        "root"
    } else {
        "intermediate"
    }
}

/// The file and config edits a command makes, written only once all of
/// them are known, each through a temporary file and a rename (a crash
/// leaves the old file or the new one, never half of one).
struct Edits {
    config_path: PathBuf,
    doc: toml_edit::DocumentMut,
    config_changed: bool,
    files: Vec<(PathBuf, String)>,
}

impl Edits {
    fn new(config_path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(config_path)
            .with_context(|| format!("reading the server config {}", config_path.display()))?;
        let doc = text
            .parse::<toml_edit::DocumentMut>()
            .map_err(|e| anyhow!("{}: {e}", config_path.display()))?;
        Ok(Self {
            config_path: config_path.to_path_buf(),
            doc,
            config_changed: false,
            files: Vec::new(),
        })
    }

    /// `[attestation] KEY`, an array of strings, created if missing.
    fn array(&mut self, key: &str) -> anyhow::Result<&mut toml_edit::Array> {
        let attestation = self
            .doc
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

    fn set_distrusted(&mut self, fingerprints: &[String]) -> anyhow::Result<()> {
        let array = self.array("distrusted_ek_roots")?;
        let now: Vec<String> = array
            .iter()
            .filter_map(|v| v.as_str().map(str::to_ascii_lowercase))
            .collect();
        if now != fingerprints {
            array.clear();
            for f in fingerprints {
                array.push(f.as_str());
            }
            self.config_changed = true;
        }
        Ok(())
    }

    fn write(self) -> anyhow::Result<()> {
        for (path, text) in &self.files {
            replace_file(path, text.as_bytes())?;
        }
        if self.config_changed {
            replace_file(&self.config_path, self.doc.to_string().as_bytes())?;
        }
        Ok(())
    }
}

/// Writes `path` through `path.tmp` and a rename, keeping its mode.
fn replace_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

/// The fingerprints in `distrusted` that name the CA of `c` (this
/// certificate or another of the same name and key).
fn distrust_of<'t>(trust: &'t EkTrust, c: &CaCertificate) -> Vec<&'t String> {
    trust
        .distrusted()
        .iter()
        .filter(|fp| {
            **fp == c.fingerprint()
                || trust
                    .entries
                    .iter()
                    .any(|e| e.certificate.fingerprint() == **fp && e.certificate.same_ca(c))
        })
        .collect()
}

fn add(config_path: &Path, certs: Vec<CaCertificate>, now: i64) -> anyhow::Result<()> {
    let config = ServerConfig::load(config_path)?;
    let trust = EkTrust::load(&config, now)?;
    // The audit entry must be possible before anything changes.
    let store = Audit::open(config_path)?;
    let mut edits = Edits::new(config_path)?;
    // The operator's file: the first ek_roots entry, or a new ek-roots.pem
    // (whose certificates, if it exists, the config did not load).
    let (file, in_file) = match config.attestation.ek_roots.first() {
        Some(p) => {
            let path = config.path(p);
            let certs: Vec<CaCertificate> = trust
                .entries
                .iter()
                .filter(|e| e.origin == Origin::File(path.clone()))
                .map(|e| e.certificate.clone())
                .collect();
            (path, certs)
        }
        None => {
            edits.array("ek_roots")?.push("ek-roots.pem");
            edits.config_changed = true;
            let path = config.path(Path::new("ek-roots.pem"));
            let certs = match path.exists() {
                true => read_cas("ek-roots.pem", &path)?,
                false => Vec::new(),
            };
            (path, certs)
        }
    };
    let mut pem = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => bail!("attestation.ek_roots: reading {}: {e}", file.display()),
    };
    for c in &certs {
        if !c.is_ca {
            bail!(
                "{:?} is not a CA certificate (basicConstraints): give the CA that issues EK \
                 certificates, not an EK certificate",
                c.subject
            );
        }
    }
    // First: the operator trusts these CAs, so none of them stays distrusted.
    let undone: Vec<String> = certs
        .iter()
        .flat_map(|c| distrust_of(&trust, c))
        .cloned()
        .collect();
    let distrusted: Vec<String> = trust
        .distrusted()
        .iter()
        .filter(|f| !undone.contains(f))
        .cloned()
        .collect();
    edits.set_distrusted(&distrusted)?;
    let after = trust.with_distrusted(distrusted);
    // Then: what is not an anchor by then goes into the operator's file
    // (where no distrust of an issuer reaches it).
    let mut added: Vec<&CaCertificate> = Vec::new();
    let mut pem_changed = false;
    for c in &certs {
        let anchor = after.entries.iter().find(|e| {
            e.certificate.sha256 == c.sha256
                && matches!(e.origin, Origin::Shipped { .. } | Origin::File(_))
                && matches!(e.status, Status::Trusted | Status::Expired)
        });
        let was_distrusted = !distrust_of(&trust, c).is_empty();
        match anchor {
            Some(e) if was_distrusted => {
                println!(
                    "{}: no longer distrusted ({})",
                    c.fingerprint(),
                    origin(&e.origin).0
                );
                added.push(c);
            }
            Some(e) => println!(
                "{}: already trusted ({}: {})",
                c.fingerprint(),
                origin(&e.origin).0,
                c.subject
            ),
            None if in_file.iter().any(|f| f.sha256 == c.sha256)
                || added.iter().any(|a| a.sha256 == c.sha256) =>
            {
                println!("{}: already in {}", c.fingerprint(), file.display());
            }
            None => {
                if !pem.is_empty() && !pem.ends_with('\n') {
                    pem.push('\n');
                }
                pem.push_str(&format!("# {}\n# sha256 {}\n", c.subject, c.fingerprint()));
                pem.push_str(&c.pem());
                pem_changed = true;
                added.push(c);
            }
        }
    }
    if added.is_empty() && !edits.config_changed {
        println!("nothing changed");
        return Ok(());
    }
    if pem_changed {
        edits.files.push((file.clone(), pem));
    }
    edits.write()?;
    let detail: Vec<String> = added
        .iter()
        .map(|c| format!("{} {}", c.fingerprint(), c.subject))
        .collect();
    store.record("ek-root-add", &detail.join("; "))?;
    for c in &added {
        let expired = if c.expired(now) {
            " (EXPIRED: no EK certificate chains through it)"
        } else {
            ""
        };
        println!("trusted {} {}{expired}", c.fingerprint(), c.subject);
    }
    println!("the PDP uses the change from its next start");
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
    fingerprints.sort();
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
    let store = Audit::open(config_path)?;
    let mut edits = Edits::new(config_path)?;
    let cert = &entry.certificate;
    let fp = cert.fingerprint();
    // Out of the operator's files, each once.
    let mut files: Vec<&PathBuf> = found
        .iter()
        .filter_map(|e| match &e.origin {
            Origin::File(p) | Origin::Intermediate(p) => Some(p),
            Origin::Shipped { .. } => None,
        })
        .collect();
    files.sort();
    files.dedup();
    for path in files {
        edits
            .files
            .push((path.clone(), pem_file_without(path, cert)?));
        println!("removing {fp} from {}", path.display());
    }
    // A shipped one: distrusted in the config (with its twins and what it
    // issued, see `ek-roots list` afterwards).
    let shipped = found
        .iter()
        .any(|e| matches!(e.origin, Origin::Shipped { .. }));
    if shipped && !trust.distrusted().contains(&fp) {
        let mut distrusted = trust.distrusted().to_vec();
        distrusted.push(fp.clone());
        edits.set_distrusted(&distrusted)?;
        println!(
            "distrusting {fp} (shipped): attestation.distrusted_ek_roots in {}",
            config_path.display()
        );
    }
    if edits.files.is_empty() && !edits.config_changed {
        println!("{fp} is distrusted already");
        return Ok(());
    }
    edits.write()?;
    store.record("ek-root-remove", &format!("{fp} {}", cert.subject))?;
    // Another certificate of the same CA may still anchor it.
    let after = EkTrust::load(&ServerConfig::load(config_path)?, now)?;
    for e in after.entries.iter().filter(|e| {
        e.certificate.same_ca(cert)
            && matches!(e.status, Status::Trusted | Status::Expired)
            && !matches!(e.origin, Origin::Intermediate(_))
    }) {
        println!(
            "note: the same CA is still trusted through {} ({}): remove {} too to stop trusting it",
            origin(&e.origin).1,
            origin(&e.origin).0,
            e.certificate.fingerprint()
        );
    }
    println!(
        "{}: no longer an EK trust anchor from the PDP's next start (devices enrolled under it \
         stay enrolled: tnc-server device forget DEVICE makes one enroll again)",
        cert.subject
    );
    Ok(())
}

/// The text of a PEM file without the blocks that encode `cert` (and the
/// two comment lines `add` writes above one), the rest kept as it was.
/// Fails if the certificate would still be in it.
fn pem_file_without(path: &Path, cert: &CaCertificate) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = String::new();
    let mut block = String::new();
    let mut in_block = false;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "-----BEGIN CERTIFICATE-----" {
            in_block = true;
        }
        if !in_block {
            out.push_str(line);
            continue;
        }
        block.push_str(line);
        if line.trim_end() != "-----END CERTIFICATE-----" {
            continue;
        }
        in_block = false;
        let same = pki::ek::certificates_in_pem(block.as_bytes())
            .is_ok_and(|d| d.first() == Some(&cert.der));
        if !same {
            out.push_str(&block);
        } else {
            for comment in [
                format!("# sha256 {}\n", cert.fingerprint()),
                format!("# {}\n", cert.subject),
            ] {
                if out.ends_with(&comment) {
                    out.truncate(out.len() - comment.len());
                }
            }
        }
        block.clear();
    }
    out.push_str(&block);
    let left = CaCertificate::all_from_pem_or_der(out.as_bytes(), &path.display().to_string())
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if left.iter().any(|c| c.sha256 == cert.sha256) {
        bail!(
            "{}: the certificate {} is in a form this command does not edit: remove it by hand",
            path.display(),
            cert.fingerprint()
        );
    }
    Ok(out)
}

/// The store's audit log, opened before a change so that a change is never
/// made without its entry.
struct Audit {
    runtime: tokio::runtime::Runtime,
    store: tnc_server::store::Store,
}

impl Audit {
    fn open(config: &Path) -> anyhow::Result<Self> {
        let runtime = super::runtime()?;
        let store = runtime.block_on(super::open_store(config))?;
        Ok(Self { runtime, store })
    }

    fn record(self, action: &str, detail: &str) -> anyhow::Result<()> {
        self.runtime.block_on(async {
            self.store
                .audit(system_clock(), action, "operator", detail)
                .await?;
            self.store.close().await;
            Ok(())
        })
    }
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
