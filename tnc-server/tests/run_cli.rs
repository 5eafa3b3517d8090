//! `tnc-server run` as an operator starts it: a TOML config naming the TLS
//! identity, the EK roots and the reference values; a swtpm terminal logs in;
//! SIGTERM stops the daemon cleanly. Config mistakes name the key.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use testnet::e2e::{make_tls_files, Endpoint};
use testnet::swtpm::{scratch_dir, LocalCa};
use tnc_client::agent::{login, tls_client_config};
use tnc_proto::attestation::Role;
use tnc_proto::pt_tls::sasl::PlainCredentials;

fn tnc_server() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tnc-server"))
}

/// Runs `tnc-server ARGS --config CONFIG`, expecting success; its stdout.
fn admin(args: &[&str], config: &std::path::Path) -> String {
    let out = tnc_server()
        .args(args)
        .arg("--config")
        .arg(config)
        .env("TNC_PASSWORD", "s3cret pass")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tnc-server {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An operator's first day: `init`, the EK roots put in place, `user add`,
/// `run`; a swtpm terminal logs in as that user and is isolated (the example
/// reference values name nothing); `policy learn` turns its evidence into
/// reference values and its next login is allowed; `device list` shows it,
/// `audit verify` checks the chain; SIGTERM stops the daemon.
#[test]
fn init_user_run_learn_device_audit() {
    let ca = LocalCa::create().unwrap();
    let mut terminal = Endpoint::boot("good-terminal", Role::Terminal, &ca).unwrap();
    terminal.host = Some("ws-9".parse().unwrap());
    let dir = scratch_dir("run-cli").unwrap();
    let out = tnc_server()
        .args(["init", "--dir"])
        .arg(&dir)
        .args(["--san", "pdp.example"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("next:"));
    use std::os::unix::fs::PermissionsExt;
    for private in ["ca.key", "server.key", "tnc.db"] {
        let mode = std::fs::metadata(dir.join(private))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{private} is {mode:o}");
    }
    // A second init into the same directory is refused.
    let again = tnc_server()
        .args(["init", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));

    // The operator's part: the EK roots and a listen address.
    let roots = [ca.root_cert(), ca.issuer_cert()]
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<String>();
    std::fs::write(dir.join("ek-roots.pem"), roots).unwrap();
    let config = dir.join("server.toml");
    any_ports(&config);
    assert!(admin(&["user", "add", "alice"], &config).contains("added"));
    assert!(admin(&["user", "list"], &config).contains("alice"));
    let users: serde_json::Value =
        serde_json::from_str(&admin(&["user", "list", "--json"], &config)).unwrap();
    assert_eq!(users[0]["name"], "alice");
    // An admin certificate, its key private.
    let issued = tnc_server()
        .args(["admin", "issue", "ops", "--out"])
        .arg(&dir)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(issued.status.success(), "{issued:?}");
    assert!(String::from_utf8_lossy(&issued.stdout).contains("tnc-admin-write"));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("ops.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "ops.key is {mode:o}");
    }

    let (daemon, addr, admin_url) = start_daemon_with_admin(&config, true);
    let admin_url = admin_url.unwrap();

    let log_in = || {
        log_in_as(
            &terminal,
            addr,
            &dir,
            Some(PlainCredentials::new("alice", "s3cret pass")),
        )
        .unwrap()
    };
    let first = log_in();
    assert!(
        !first.allowed(),
        "nothing is allowed before reference values exist: {first:?}"
    );
    assert!(first.reason.unwrap().contains("no reference values"));

    let devices = admin(&["device", "list", "--json"], &config);
    let id = devices.split("\"device\": \"").nth(1).unwrap()[..12].to_string();
    let learned = admin(&["policy", "learn", &id, "--yes"], &config);
    assert!(
        learned.contains("boot events") && learned.contains("recorded as version"),
        "{learned}"
    );

    let second = log_in();
    assert!(second.allowed(), "{second:?}");
    // The admin API of the running daemon, with the certificate the CLI
    // issued, sees the device and its verdict.
    let client = tnc_server::admin::client::AdminClient::new(
        &admin_url,
        &dir.join("ca.pem"),
        Some((&dir.join("ops.pem"), &dir.join("ops.key"))),
    )
    .unwrap();
    let listed: Vec<tnc_proto::admin::Device> = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(client.get("/v1/devices"))
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_verdict.as_deref(), Some("allow"));
    // The store commands against the running daemon with --server: the
    // same answers as on the local store.
    let url = admin_url.clone();
    let remote = |args: &[&str]| {
        let out = tnc_server()
            .args(args)
            .args(["--server", &url, "--certificate"])
            .arg(dir.join("ops.pem"))
            .arg("--key")
            .arg(dir.join("ops.key"))
            .arg("--ca")
            .arg(dir.join("ca.pem"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let over_api = remote(&["device", "list", "--json"]);
    assert_eq!(over_api, admin(&["device", "list", "--json"], &config));
    let shown = remote(&["device", "show", &id]);
    assert!(
        shown.contains("attestation at") && shown.contains("allow"),
        "{shown}"
    );
    assert!(remote(&["audit", "list"]).contains("policy-learn"));
    // --json on the other listings, local and remote alike.
    let lines = remote(&["audit", "list", "--json"]);
    let entries: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        entries.iter().any(|e| e["kind"] == "policy-learn"),
        "{lines}"
    );
    assert_eq!(lines, admin(&["audit", "list", "--json"], &config));
    let policies = remote(&["policy", "list", "--json"]);
    assert_eq!(policies, admin(&["policy", "list", "--json"], &config));
    let policies: serde_json::Value = serde_json::from_str(&policies).unwrap();
    assert_eq!(policies[0]["role"], "terminal");
    assert!(admin(&["policy", "list"], &config).contains("terminal |"));
    // Neither --config nor --server: clap says what to give.
    let neither = tnc_server().args(["device", "list"]).output().unwrap();
    assert_eq!(neither.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&neither.stderr).contains("--config"));
    // The client returns once it wrote its CLOSE; the PDP logs the session
    // when it has read it. A SIGTERM before that ends the session as "server
    // shutting down" (seen once on a loaded CI machine).
    std::thread::sleep(std::time::Duration::from_millis(500));
    let log = stop_daemon(daemon);
    assert!(log.contains("session decided"), "{log}");
    assert!(log.contains("verdict=allow"), "{log}");
    assert!(log.contains("shutting down"), "{log}");
    assert!(!log.contains("s3cret"), "a password in the log: {log}");

    let devices = admin(&["device", "list"], &config);
    assert!(
        devices.contains("terminal") && devices.contains("allow"),
        "{devices}"
    );
    // Who logged in on it, and the host its Hello named.
    assert!(devices.contains("| alice "), "{devices}");
    assert!(devices.contains("| ws-9 "), "{devices}");
    // init, user-add, admin-issue, policy-load, enroll, verdict,
    // policy-learn, verdict.
    let audit = admin(&["audit", "verify"], &config);
    assert!(audit.contains("8 entries"), "{audit}");
    assert!(
        audit.contains("HMAC-SM3 chain verified with the key"),
        "{audit}"
    );
    // An anchor elsewhere, then entries dropped after it: found.
    let anchors = dir.join("anchors");
    let anchored = admin(
        &["audit", "anchor", "--to", anchors.to_str().unwrap()],
        &config,
    );
    assert!(anchored.contains("anchored entry 8"), "{anchored}");
    let audit = admin(
        &["audit", "verify", "--anchor", anchors.to_str().unwrap()],
        &config,
    );
    assert!(audit.contains("the anchor taken at"), "{audit}");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let db = format!("sqlite://{}", dir.join("tnc.db").display());
            let store = tnc_server::store::Store::open(&db).await.unwrap();
            store
                .execute_raw("DELETE FROM audit WHERE seq >= 7")
                .await
                .unwrap();
            store.close().await;
        });
    let out = tnc_server()
        .args(["audit", "verify", "--anchor"])
        .arg(&anchors)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("entries 7 to 8 are gone"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_errors_name_the_key() {
    let dir = scratch_dir("run-cli-bad").unwrap();
    let tls = make_tls_files(&dir).unwrap();
    let write = |text: &str| {
        std::fs::write(dir.join("server.toml"), text).unwrap();
        let out = tnc_server()
            .args(["run", "--config"])
            .arg(dir.join("server.toml"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let base = "[tls]\ncertificate = \"server.pem\"\nprivate_key = \"server.key\"\n";
    // A file the config names must be there (an empty one is fine).
    let err = write(&format!(
        "{base}[attestation]\nek_roots = [\"missing.pem\"]\nreference_values = {{}}\n"
    ));
    assert!(
        err.contains("attestation.ek_roots") && err.contains("missing.pem"),
        "{err}"
    );
    assert!(err.ends_with('\n'), "{err:?}");
    // An EK certificate is no trust anchor.
    std::fs::write(dir.join("leaf.pem"), std::fs::read(&tls.cert).unwrap()).unwrap();
    let err = write(&format!(
        "{base}[attestation]\nek_roots = [\"leaf.pem\"]\nreference_values = {{}}\n"
    ));
    assert!(err.contains("not a CA certificate"), "{err}");
    let err = write(&format!(
        "{base}[attestation]\ndistrusted_ek_roots = [\"abc\"]\nreference_values = {{}}\n"
    ));
    assert!(err.contains("attestation.distrusted_ek_roots"), "{err}");
    let err = write(&format!(
        "{base}[attestation]\nek_roots = [\"{}\"]\nreference_values = {{}}\npcrs = \"sha256:0,x\"\n",
        tls.ca.display()
    ));
    assert!(err.contains("attestation.pcrs"), "{err}");
    let err = write(&format!(
        "{base}[attestation]\nek_roots = [\"{}\"]\nreference_values = {{}}\nno_evidence = \"maybe\"\n",
        tls.ca.display()
    ));
    assert!(
        err.contains("no_evidence") && err.contains("maybe"),
        "{err}"
    );
    // Continuous trust and the revocation stream.
    let attestation = format!(
        "[attestation]\nek_roots = [\"{}\"]\nreference_values = {{}}\n",
        tls.ca.display()
    );
    for (section, key) in [
        (
            "[reassessment]\ninterval_secs = 0\n",
            "reassessment.interval_secs",
        ),
        (
            "[reassessment]\nrole_interval_secs = { vm = 0 }\n",
            "role_interval_secs",
        ),
        (
            "[reassessment]\njitter_percent = 60\n",
            "reassessment.jitter_percent",
        ),
        ("[reassessment]\npoll_ms = 0\n", "reassessment.poll_ms"),
        (
            "[reassessment]\nstale_intervals = 1\n",
            "reassessment.stale_intervals",
        ),
        (
            "[revocations]\nlisten = \"127.0.0.1:0\"\n",
            "revocations.listen needs [ca]",
        ),
    ] {
        let err = write(&format!("{base}{attestation}{section}"));
        assert!(err.contains(key), "{section}: {err}");
    }
    // A private key others can read is refused.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tls.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = write(&format!(
        "{base}[attestation]\nek_roots = [\"{}\"]\nreference_values = {{}}\n",
        tls.ca.display()
    ));
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Starts `tnc-server run` on the config (its listen address replaced by a
/// free loopback port) and returns it with the address it listens on.
fn start_daemon(config: &std::path::Path) -> (std::process::Child, std::net::SocketAddr) {
    let (daemon, addr, _) = start_daemon_with_admin(config, false);
    (daemon, addr)
}

/// [`start_daemon`]; with `admin`, also the admin API's URL (its line comes
/// after the PT-TLS one).
fn start_daemon_with_admin(
    config: &std::path::Path,
    admin: bool,
) -> (std::process::Child, std::net::SocketAddr, Option<String>) {
    let mut daemon = tnc_server()
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("TNC_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(daemon.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {line:?}"))
        .parse()
        .unwrap();
    let url = admin.then(|| {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        line.trim()
            .strip_prefix("admin API on ")
            .unwrap_or_else(|| panic!("second line: {line:?}"))
            .to_string()
    });
    (daemon, addr, url)
}

/// `tnc-server init`'s server.toml with the PT-TLS and admin listeners on
/// any free loopback port (tests run side by side).
fn any_ports(config: &std::path::Path) {
    let text = std::fs::read_to_string(config)
        .unwrap()
        .replace("tcp = \"[::]:271\"", "tcp = \"127.0.0.1:0\"")
        .replace("listen = \"127.0.0.1:9271\"", "listen = \"127.0.0.1:0\"");
    std::fs::write(config, text).unwrap();
}

/// One login of `terminal` to the PDP `init` made in `dir`.
fn log_in_as(
    terminal: &Endpoint,
    addr: std::net::SocketAddr,
    dir: &std::path::Path,
    credentials: Option<PlainCredentials>,
) -> Result<tnc_client::agent::Outcome, tnc_client::agent::AgentError> {
    let mut agent = terminal.agent().unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(login(
            addr,
            "localhost",
            tls_client_config(&dir.join("ca.pem")).unwrap(),
            &mut agent,
            credentials,
        ))
}

/// A new PDP directory: `tnc-server init --dir` in a scratch directory.
fn init(name: &str) -> std::path::PathBuf {
    let dir = scratch_dir(name).unwrap();
    let out = tnc_server()
        .args(["init", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    any_ports(&dir.join("server.toml"));
    dir
}

/// SIGTERM, then the daemon's log.
fn stop_daemon(daemon: std::process::Child) -> String {
    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    let out = daemon.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A PDP that trusts no EK CA at all still starts, says so, and gives a TPM
/// endpoint the no_evidence verdict with the reason; `ek-roots add` of the
/// endpoint's CA lets it enroll from the next start; `ek-roots remove` takes
/// an operator's CA out of its file and distrusts a shipped one; both are in
/// the audit log.
#[test]
fn no_ek_root_then_ek_roots_add_and_remove() {
    let ca = LocalCa::create().unwrap();
    let terminal = Endpoint::boot("good-terminal", Role::Terminal, &ca).unwrap();
    let dir = init("run-cli-ek");
    let config = dir.join("server.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("vendor_ek_roots = true", "vendor_ek_roots = false")
        .replace("sasl = \"plain\"", "sasl = \"none\"");
    std::fs::write(&config, text).unwrap();
    let list = admin(&["ek-roots", "list"], &config);
    assert!(list.contains("no EK CA is trusted"), "{list}");

    let log_in = |addr| log_in_as(&terminal, addr, &dir, None).unwrap();
    let (daemon, addr) = start_daemon(&config);
    let first = log_in(addr);
    let log = stop_daemon(daemon);
    assert_eq!(first.verdict_name(), "isolate", "{first:?}");
    assert!(
        first.reason.as_deref().unwrap().contains("trusts no EK CA"),
        "{first:?}"
    );
    assert!(log.contains("no EK CA is trusted"), "{log}");

    let ca_dir = format!("--lab-swtpm-ca={}", ca.dir().display());
    let added = admin(&["ek-roots", "add", &ca_dir], &config);
    assert!(
        added.contains("trusted") && added.contains("swtpm-localca"),
        "{added}"
    );
    let again = admin(&["ek-roots", "add", &ca_dir], &config);
    assert!(again.contains("already trusted"), "{again}");

    let (daemon, addr) = start_daemon(&config);
    let second = log_in(addr);
    stop_daemon(daemon);
    let reason = second.reason.unwrap_or_default();
    assert!(
        reason.contains("no reference values"),
        "enrolled now: {reason}"
    );

    let rows: serde_json::Value =
        serde_json::from_str(&admin(&["ek-roots", "list", "--json"], &config)).unwrap();
    let rows = rows.as_array().unwrap();
    let own: Vec<_> = rows.iter().filter(|r| r["vendor"] == "(config)").collect();
    assert_eq!(own.len(), 2, "{own:?}");
    assert!(own.iter().all(|r| r["status"] == "trusted"));
    assert!(rows
        .iter()
        .filter(|r| r["vendor"] != "(config)")
        .all(|r| r["status"] == "off (vendor_ek_roots = false)"));

    // An operator's CA leaves its file.
    let root = own.iter().find(|r| r["kind"] == "root").unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let removed = admin(&["ek-roots", "remove", &root[..12]], &config);
    assert!(removed.contains("removing"), "{removed}");
    let pem = std::fs::read_to_string(dir.join("ek-roots.pem")).unwrap();
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 1, "{pem}");
    assert!(!pem.contains(&root));

    // A shipped one is distrusted in the config, which keeps its comments.
    let shipped = rows.iter().find(|r| r["vendor"] == "Infineon").unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    admin(&["ek-roots", "remove", &shipped], &config);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(&shipped) && text.contains("# tnc-server configuration"));
    let list = admin(&["ek-roots", "list"], &config);
    assert!(
        list.lines()
            .any(|l| l.starts_with("distrusted") && l.contains(&shipped[..16])),
        "{list}"
    );

    // Refusals name what to fix.
    for (args, want) in [
        (vec!["ek-roots", "remove", "abc"], "at least its first 8"),
        (vec!["ek-roots", "remove", "00000000"], "no EK CA"),
        (vec!["ek-roots", "add"], "nothing to add"),
    ] {
        let out = tnc_server()
            .args(&args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            err.contains(want) && err.ends_with('\n'),
            "{args:?}: {err:?}"
        );
    }
    let audit = admin(&["audit", "list"], &config);
    assert!(
        audit.contains("ek-root-add") && audit.matches("ek-root-remove").count() == 2,
        "{audit}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// With the shipped set on: `ek-roots remove` of one certificate of an
/// Infineon CA distrusts its re-issued twin too (the chain check would take
/// either); `ek-roots add` of the twin undoes the distrust of both.
#[test]
fn distrust_follows_the_ca_not_the_file() {
    let dir = init("run-cli-twins");
    let config = dir.join("server.toml");
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../pki/ek-roots/infineon");
    let fingerprint = |file: &str| {
        let pem = std::fs::read(shipped.join(file)).unwrap();
        pki::ek_roots::CaCertificate::all_from_pem_or_der(&pem, file).unwrap()[0].fingerprint()
    };
    let (old, new) = (
        fingerprint("ifx_rsa_034.pem"),
        fingerprint("optigarsamfrca034.pem"),
    );
    let status = |fp: &str| -> String {
        let rows: serde_json::Value =
            serde_json::from_str(&admin(&["ek-roots", "list", "--json"], &config)).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["sha256"] == fp)
            .unwrap()["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(status(&old), "trusted");
    assert_eq!(status(&new), "trusted");

    admin(&["ek-roots", "remove", &old], &config);
    assert_eq!(status(&old), "distrusted");
    assert_eq!(status(&new), "distrusted", "the twin of a distrusted CA");

    let out = admin(
        &[
            "ek-roots",
            "add",
            shipped.join("optigarsamfrca034.pem").to_str().unwrap(),
        ],
        &config,
    );
    assert!(out.contains("no longer distrusted"), "{out}");
    assert_eq!(status(&old), "trusted");
    assert_eq!(status(&new), "trusted");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(!text.contains(&old), "{text}");
    // Nothing was appended: the shipped certificates anchor it again.
    let pem = std::fs::read_to_string(dir.join("ek-roots.pem")).unwrap();
    assert!(!pem.contains("BEGIN CERTIFICATE"), "{pem}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A SASL user name carrying a newline, a forged log record, CR and ESC
/// stays inside its own record of the daemon's log, escaped.
#[test]
fn a_hostile_user_name_cannot_forge_a_log_line() {
    let ca = LocalCa::create().unwrap();
    let terminal = Endpoint::boot("good-terminal", Role::Terminal, &ca).unwrap();
    let dir = init("run-cli-log");
    let config = dir.join("server.toml");
    let (daemon, addr) = start_daemon(&config);
    let forged = "mallory\n2026-12-04T00:00:00.000000Z  INFO tnc_server::net: session decided \
                  peer=10.0.0.9:1 verdict=allow\r\x1b[2J";
    let refused = log_in_as(
        &terminal,
        addr,
        &dir,
        Some(PlainCredentials::new(forged, "guess")),
    );
    assert!(refused.is_err(), "{refused:?}");
    let log = stop_daemon(daemon);
    assert!(log.contains("mallory\\n2026-12-04"), "{log}");
    assert!(
        !log.lines()
            .any(|l| l.contains("verdict=allow") && !l.contains("mallory")),
        "a forged record: {log}"
    );
    assert!(!log.contains('\r') && !log.contains('\x1b'), "{log:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `init` writes the SM2 CA and certificate beside the others: turning the
/// PDP to the ShangMi suites is one word in server.toml, and a client that
/// asks for them gets them (a standard one no longer gets in). `ca show` and
/// `ca issue` work the SM2 CA, and OpenSSL verifies what it issues.
#[test]
fn shangmi_is_one_word_and_the_sm2_ca_issues() {
    use pki::tls::Suites;
    let dir = init("run-cli-shangmi");
    let config = dir.join("server.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("suites = \"standard\""), "{text}");
    std::fs::write(
        &config,
        text.replace("suites = \"standard\"", "suites = \"shangmi\""),
    )
    .unwrap();
    admin(&["user", "add", "alice"], &config);
    let (daemon, addr) = start_daemon(&config);
    let login_with = |suites| {
        let mut agent =
            testnet::e2e::agent_without_tpm(&scratch_dir("shangmi-agent").unwrap()).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(login(
                addr,
                "localhost",
                tnc_client::agent::tls_client_config_for(&dir.join("ca.pem"), None, suites)
                    .unwrap(),
                &mut agent,
                Some(PlainCredentials::new("alice", "s3cret pass")),
            ))
    };
    let outcome = login_with(Suites::Shangmi).unwrap();
    assert_eq!(outcome.tls_suite.as_deref(), Some("TLS_SM4_GCM_SM3"));
    assert_eq!(outcome.verdict_name(), "isolate", "no TPM: no evidence");
    assert!(login_with(Suites::Standard).is_err());
    stop_daemon(daemon);

    let shown = admin(&["ca", "show"], &config);
    assert!(shown.contains("TNC PDP SM2 CA"), "{shown}");
    let issued = admin(
        &[
            "ca",
            "issue",
            "--new-key",
            dir.join("vm.key").to_str().unwrap(),
            "--name",
            "vm-1",
            "--dns",
            "vm-1.example",
            "--usage",
            "both",
            "--out",
            dir.join("vm.pem").to_str().unwrap(),
        ],
        &config,
    );
    assert!(issued.contains("CN=vm-1"), "{issued}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("vm.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let verify = Command::new("openssl")
        .args(["verify", "-vfyopt", "distid:1234567812345678", "-CAfile"])
        .arg(dir.join("sm2-ca.pem"))
        .arg(dir.join("vm.pem"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(admin(&["audit", "list"], &config).contains("ca-issue"));

    // A request for an ECDSA key is not the CA's to sign.
    let ec = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=ec",
            "-keyout",
        ])
        .arg(dir.join("ec.key"))
        .arg("-out")
        .arg(dir.join("ec.csr"))
        .output()
        .unwrap();
    assert!(ec.status.success());
    let refused = tnc_server()
        .args(["ca", "issue", "--name", "ec", "--csr"])
        .arg(dir.join("ec.csr"))
        .arg("--out")
        .arg(dir.join("ec.pem"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("not an SM2 key"), "{err}");
    // The CA key readable by others: refused, with the fix.
    std::fs::set_permissions(
        dir.join("sm2-ca.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = tnc_server()
        .args(["ca", "show", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
    std::fs::remove_dir_all(&dir).unwrap();
}
