//! `tnc-server run` as an operator starts it: a TOML config naming the TLS
//! identity, the EK roots and the reference values; a swtpm terminal logs in;
//! SIGTERM stops the daemon cleanly. Config mistakes name the key.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use testnet::e2e::{make_tls_files, profile, Endpoint};
use testnet::swtpm::{scratch_dir, LocalCa};
use tnc_client::agent::{login, tls_client_config};
use tnc_proto::attestation::Role;

fn tnc_server() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tnc-server"))
}

#[test]
fn daemon_serves_a_terminal_and_stops_on_sigterm() {
    let ca = LocalCa::create().unwrap();
    let terminal = Endpoint::boot("good-terminal", Role::Terminal, &ca).unwrap();
    let dir = scratch_dir("run-cli").unwrap();
    let tls = make_tls_files(&dir).unwrap();
    let reference = profile("good-terminal")
        .unwrap()
        .reference_values()
        .unwrap();
    std::fs::write(dir.join("terminal.toml"), reference.to_toml()).unwrap();
    std::fs::write(
        dir.join("server.toml"),
        format!(
            r#"[listen]
tcp = "127.0.0.1:0"

[tls]
certificate = "server.pem"
private_key = "server.key"

[attestation]
ek_roots = ["{root}"]
ek_intermediates = ["{issuer}"]
reference_values = {{ terminal = "terminal.toml" }}
"#,
            root = ca.root_cert().display(),
            issuer = ca.issuer_cert().display()
        ),
    )
    .unwrap();
    let mut daemon = tnc_server()
        .args(["run", "--config"])
        .arg(dir.join("server.toml"))
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

    let mut agent = terminal.agent().unwrap();
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(login(
            addr,
            "localhost",
            tls_client_config(&tls.ca).unwrap(),
            &mut agent,
            None,
        ))
        .unwrap();
    assert!(outcome.allowed(), "{outcome:?}");

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
