//! `tnc-server init --dir DIR`: everything a first PDP needs, in one
//! directory, and what to do next.

use anyhow::{bail, Context};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tnc_server::certs;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The directory to create the files in (created if missing; existing
    /// files are never overwritten).
    #[arg(long)]
    dir: PathBuf,
    /// More names for the server certificate, besides this host's name,
    /// localhost, 127.0.0.1 and ::1.
    #[arg(long = "san")]
    sans: Vec<String>,
    /// Also trust swtpm's local CA for EK certificates (for a lab of software
    /// TPMs; the CA `swtpm_setup --create-ek-cert` signs with, by default in
    /// /var/lib/swtpm-localca, or as swtpm-localca.conf says). Never on a
    /// production PDP.
    #[arg(long, value_name = "DIR", num_args = 0..=1, require_equals = true)]
    lab_swtpm_ca: Option<Option<PathBuf>>,
}

/// The operator's own EK CA file as `init` leaves it: no certificate yet
/// (the shipped vendor CAs need none here).
const EK_ROOTS_HEADER: &str = "\
# Your own EK CA certificates (PEM), trusted besides the TPM vendors' CAs that
# ship with tnc-server (tnc-server ek-roots list). Add with
#   tnc-server ek-roots add --config server.toml FILE
# A file without any certificate is fine.
";

/// Reference values an operator starts from: no boot events or allowlist yet,
/// so nothing is allowed until they are filled in (from a known-good
/// endpoint: `tnc-server evidence eventlog/ima`).
const EXAMPLE_REFERENCE: &str = r#"# Reference values for terminals (see policy/src/reference.rs for the format).
# Until the sections below list a known-good endpoint's boot events, kernel and
# files, every terminal is isolated: missing reference values never allow.
name = "terminals"
bank = "sha256"

# [boot]
# pcrs = [0, 1, 2, 3, 4, 5, 6, 7]
# [[boot.events]]
# pcr = 4
# type = "EV_EFI_BOOT_SERVICES_APPLICATION"
# digest = "<sha256 hex>"
# note = "shim"
#
# [kernel]
# images = ["<sha256 hex of the kernel image event>"]
# cmdlines = ["root=/dev/vda2 ro quiet ima_policy=tcb"]
#
# [ima]
# excluded_prefixes = ["/tmp/", "/var/log/"]
# key_applications = ["/usr/sbin/nginx"]
# [ima.allow]
# "/usr/sbin/nginx" = ["<sha256 hex>"]
"#;

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {} (init never overwrites)", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if dir.join("server.toml").exists() {
        bail!(
            "{} already holds a server.toml: init makes a new PDP, it does not change one",
            dir.display()
        );
    }
    let dir = dir
        .canonicalize()
        .with_context(|| dir.display().to_string())?;
    // Read before anything is written: a missing lab CA leaves no half-made PDP.
    let mut ek_roots = EK_ROOTS_HEADER.to_string();
    if let Some(files) = tnc_server::ek_trust::lab_ca_files(&args.lab_swtpm_ca) {
        for c in tnc_server::ek_trust::swtpm_local_ca(&files)? {
            ek_roots.push_str(&format!(
                "# lab only: swtpm local CA {}\n# sha256 {}\n",
                c.subject,
                c.fingerprint()
            ));
            ek_roots.push_str(&c.pem());
        }
    }

    // The CA that signs the PDP's certificate; endpoints trust it.
    let ca = certs::new_ca(&format!("TNC PDP CA ({})", host_name()))?;
    let mut names = vec![host_name(), "localhost".into()];
    names.extend(args.sans.iter().cloned());
    names.extend(["127.0.0.1".to_string(), "::1".to_string()]);
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    let (cert, key) = certs::issue(&format!("TNC PDP {}", host_name()), names.clone(), &ca)
        .context("the certificate's names (the host name and --san)")?;
    let (ca, ca_key) = ca;
    // The same for the ShangMi suites: an SM2 CA and server certificate.
    let (sm2_ca, sm2_cert, sm2_key) = certs::sm2_server(
        &format!("TNC PDP SM2 CA ({})", host_name()),
        &format!("TNC PDP {}", host_name()),
        &names,
    )
    .context("the SM2 certificate's names (the host name and --san)")?;

    // Endpoints trust both CAs: choosing the suites is then a one-word edit.
    write_new(
        &dir.join("ca.pem"),
        format!("{}{}", ca.pem(), sm2_ca.certificate_pem()).as_bytes(),
        0o644,
    )?;
    write_new(
        &dir.join("sm2-ca.pem"),
        sm2_ca.certificate_pem().as_bytes(),
        0o644,
    )?;
    write_new(
        &dir.join("sm2-ca.key"),
        sm2_ca.key().to_pem()?.as_bytes(),
        0o600,
    )?;
    write_new(
        &dir.join("server-sm2.pem"),
        pki::ca::pem_certificate(&sm2_cert).as_bytes(),
        0o644,
    )?;
    write_new(
        &dir.join("server-sm2.key"),
        sm2_key.to_pem()?.as_bytes(),
        0o600,
    )?;
    write_new(
        &dir.join("ca.key"),
        ca_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_new(&dir.join("server.pem"), cert.pem().as_bytes(), 0o644)?;
    write_new(
        &dir.join("server.key"),
        key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_new(
        &dir.join("reference-terminal.toml"),
        EXAMPLE_REFERENCE.as_bytes(),
        0o644,
    )?;
    write_new(&dir.join("ek-roots.pem"), ek_roots.as_bytes(), 0o644)?;
    write_new(
        &dir.join("server.toml"),
        br#"# tnc-server configuration (README: "Running the PDP and the agent").
[listen]
tcp = "[::]:271"

[tls]
certificate = "server.pem"
private_key = "server.key"
suites = "standard"             # "shangmi": RFC 8998 only (SM4, curveSM2, SM2); "both": SM2 to clients that ask
sm2_certificate = "server-sm2.pem"
sm2_private_key = "server-sm2.key"

[store]
url = "sqlite://tnc.db"
audit_key = "audit.key"         # keys the audit log's chain (HMAC-SM3); keep a copy off this host

[ca]                            # the SM2 CA (tnc-server ca show|issue)
certificate = "sm2-ca.pem"
private_key = "sm2-ca.key"
lifetime_secs = 3600            # of the certificates and tickets it issues
# role_lifetime_secs = { vm = 28800 }   # per role, over lifetime_secs
# vms = { terminal = ["vm-1"] }         # the VMs each role's tickets name
# vm_names = { "<device id>" = "vm-1" } # a VM's name, by its device ID (device list)

[auth]
sasl = "plain"                  # users: tnc-server user add

[admin]                         # the admin API (docs/admin-api.md): HTTPS, admin certificates only
listen = "127.0.0.1:9271"       # loopback; remove the line to turn it off
ca_certificate = "ca.pem"       # admin certificates are let in from this CA ...
ca_private_key = "ca.key"       # ... and issued with its key: tnc-server admin issue NAME

[metrics]                       # Prometheus, plain HTTP GET /metrics (docs/metrics.md)
# listen = "127.0.0.1:9272"

[attestation]
vendor_ek_roots = true          # the TPM vendors' EK CAs shipped with tnc-server (ek-roots list)
ek_roots = ["ek-roots.pem"]     # your own EK CAs (PEM): tnc-server ek-roots add
distrusted_ek_roots = []        # SHA-256 fingerprints not to trust: tnc-server ek-roots remove
ek_intermediates = []
allow_sha1_quotes = false       # true only for fleets of old vTPMs that sign quotes over SHA-1
reference_values = { terminal = "reference-terminal.toml" }
pcrs = "sha256:0,1,2,3,4,5,6,7,8,9,10"
no_evidence = "isolate"

[os]
products = []
forbid_forwarding = true
forbid_default_password = true

[limits]
max_sessions = 1024
max_message_len = 16777216
handshake_timeout_secs = 30
"#,
        0o644,
    )?;
    write_new(
        &dir.join("client.toml"),
        format!(
            r#"# tnc-client configuration: copy it with ca.pem to the endpoint.
role = "terminal"
server = "{host}:271"
# server_name = "{host}"         # the name on the PDP's certificate; default: the host of server (or --server)
ca = "ca.pem"
suites = "standard"              # "shangmi" or "both", as the PDP's tls.suites
state_dir = "/var/lib/tnc-client"

[tpm]
tcti = "device:/dev/tpmrm0"
ak_kind = "ecdsa-p256"
"#,
            host = host_name()
        )
        .as_bytes(),
        0o644,
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // The audit chain is keyed from its first entry.
        let key = tnc_server::store::AuditKey::create(&dir.join("audit.key"), 1)?;
        let store = tnc_server::store::Store::open_keyed(
            &format!("sqlite://{}", dir.join("tnc.db").display()),
            Some(key),
        )
        .await?;
        store
            .audit(
                tnc_server::pdp::system_clock(),
                "init",
                &host_name(),
                "PDP created",
            )
            .await?;
        store.close().await;
        Ok::<_, anyhow::Error>(())
    })?;

    let d = dir.display();
    println!("created in {d}:");
    println!("  ca.pem, ca.key (0600)         the CAs endpoints trust for the PDP's certificates");
    println!(
        "  sm2-ca.pem, sm2-ca.key (0600) the SM2 CA (also in ca.pem): tnc-server ca show|issue"
    );
    println!("  server-sm2.pem, server-sm2.key (0600)  the PDP's SM2 certificate, for tls.suites = \"shangmi\" or \"both\"");
    println!(
        "  server.pem, server.key (0600) the PDP's certificate for {}",
        names.join(", ")
    );
    println!("  tnc.db (0600)                 the store: users, devices, attestations, audit log");
    println!(
        "  audit.key (0600)              keys the audit log (HMAC-SM3): keep a copy off this host"
    );
    println!("  reference-terminal.toml       reference values to fill in (nothing is allowed until then)");
    println!(
        "  ek-roots.pem                  your own EK CAs ({})",
        if args.lab_swtpm_ca.is_some() {
            "the swtpm local CA, for a lab"
        } else {
            "none yet"
        }
    );
    println!("  server.toml, client.toml");
    println!("EK certificates: the TPM vendors' CAs shipped with tnc-server are trusted (tnc-server ek-roots list --config {d}/server.toml)");
    println!("next:");
    println!("  1. tnc-server user add --config {d}/server.toml NAME");
    println!("  2. tnc-server run --config {d}/server.toml");
    println!("  3. on a terminal: tnc-client login --config client.toml --user NAME");
    println!("     (copy client.toml and ca.pem there; without a TPM it is isolated: no evidence)");
    println!("  4. once a known-good terminal has logged in: tnc-server policy learn --config {d}/server.toml DEVICE");
    println!("     turns its evidence into reference values (or fill in {d}/reference-terminal.toml by hand)");
    println!("  5. the admin API (https://127.0.0.1:9271): tnc-server admin issue --config {d}/server.toml NAME");
    Ok(ExitCode::SUCCESS)
}
