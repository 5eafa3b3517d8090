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
    let terminal = Endpoint::boot("good-terminal", Role::Terminal, &ca).unwrap();
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
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("tcp = \"[::]:271\"", "tcp = \"127.0.0.1:0\"");
    std::fs::write(&config, text).unwrap();
    assert!(admin(&["user", "add", "alice"], &config).contains("added"));
    assert!(admin(&["user", "list"], &config).contains("alice"));

    let mut daemon = tnc_server()
        .args(["run", "--config"])
        .arg(&config)
        .env("TNC_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(daemon.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {line:?}"))
        .parse()
        .unwrap();

    let log_in = || {
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
                Some(PlainCredentials::new("alice", "s3cret pass")),
            ))
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
    let pid = daemon.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = daemon.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("session decided"), "{log}");
    assert!(log.contains("verdict=allow"), "{log}");
    assert!(log.contains("shutting down"), "{log}");
    assert!(!log.contains("s3cret"), "a password in the log: {log}");

    let devices = admin(&["device", "list"], &config);
    assert!(
        devices.contains("terminal") && devices.contains("allow"),
        "{devices}"
    );
    // init, user-add, policy-load, enroll, verdict, policy-learn, verdict.
    let audit = admin(&["audit", "verify"], &config);
    assert!(audit.contains("7 entries"), "{audit}");
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
    let err = write(&format!(
        "{base}[attestation]\nek_roots = []\nreference_values = {{}}\n"
    ));
    assert!(err.contains("attestation.ek_roots"), "{err}");
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
