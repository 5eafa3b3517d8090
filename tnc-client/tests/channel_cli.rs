//! `tnc-client serve` and `connect` as a VM and a terminal run them, with
//! the credentials a login kept in their state directories (issued here by
//! the PDP's issuer, as an allow issues them): bytes from the terminal's
//! standard input reach the service behind the VM and come back; without
//! credentials, connect says what to do.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use testnet::swtpm::scratch_dir;
use tnc_client::channel::save;
use tnc_proto::attestation::Role;
use tnc_server::issue::Issuer;

fn config(dir: &Path, role: &str) -> PathBuf {
    let path = dir.join("client.toml");
    std::fs::write(
        &path,
        format!(
            "role = \"{role}\"\nserver = \"127.0.0.1:271\"\nca = \"ca.pem\"\nstate_dir = \"state\"\n"
        ),
    )
    .unwrap();
    path
}

/// What an allow gives a device: its channel key in state/, and the grant.
fn credentials(issuer: &Issuer, dir: &Path, role: Role, id: u8) {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let (key, grant) = testnet::e2e::channel_credentials(issuer, role, [id; 32]).unwrap();
    key.write_new(&state.join("channel.key")).unwrap();
    save(&state, &grant).unwrap();
}

#[test]
fn connect_reaches_the_service_behind_serve_through_the_channel() {
    let ca = pki::ca::Sm2Ca::create(
        "session CA",
        Duration::from_secs(86_400),
        std::time::SystemTime::now(),
    )
    .unwrap();
    let vm_id = [0x77u8; 32];
    let issuer = Issuer::new(
        ca,
        Duration::from_secs(3600),
        [(Role::Terminal, vec!["vm-1".to_string()])].into(),
    )
    .with_vm_names([(policy::digest::hex(&vm_id), "vm-1".to_string())].into());
    let (vm_dir, term_dir) = (
        scratch_dir("serve").unwrap(),
        scratch_dir("connect").unwrap(),
    );
    credentials(&issuer, &vm_dir, Role::Vm, 0x77);
    credentials(&issuer, &term_dir, Role::Terminal, 0x01);

    // The service behind the VM: a line echo.
    let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in echo.incoming().flatten() {
            let mut w = s.try_clone().unwrap();
            let _ = std::io::copy(&mut &s, &mut w);
        }
    });

    let mut serve = Command::new(env!("CARGO_BIN_EXE_tnc-client"))
        .args(["serve", "--config"])
        .arg(config(&vm_dir, "vm"))
        .args(["--forward", &echo_addr.to_string()])
        .args(["--listen", "127.0.0.1:0", "--name", "vm-1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(serve.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("serving vm-1 on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_string();

    let term_config = config(&term_dir, "terminal");
    let mut connect = Command::new(env!("CARGO_BIN_EXE_tnc-client"))
        .args(["connect", "--config"])
        .arg(&term_config)
        .args(["vm-1", "--to", &addr, "--local", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    connect
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET / HTTP/1.0 over TLS_SM4_GCM_SM3\n")
        .unwrap();
    let mut out = Vec::new();
    connect
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    let status = connect.wait().unwrap();
    let mut err = String::new();
    connect
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    assert_eq!(out, b"GET / HTTP/1.0 over TLS_SM4_GCM_SM3\n");

    // A terminal that never logged in: told what to do.
    let fresh = scratch_dir("connect-fresh").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tnc-client"))
        .args(["connect", "--config"])
        .arg(config(&fresh, "terminal"))
        .args(["vm-1", "--to", &addr])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("log in first"), "{text}");

    let _ = serve.kill();
    let _ = serve.wait();
}
