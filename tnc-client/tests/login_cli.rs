//! `tnc-client login` and `status` as an endpoint runs them, against a PDP on
//! loopback, with a swtpm terminal: exit status 0 on allow, 3 on isolate; the
//! server certificate is checked against the configured CA only.

use std::path::Path;
use std::process::Command;
use testnet::e2e::{make_tls_files, profile, Endpoint, TestPdp};
use testnet::swtpm::{scratch_dir, LocalCa};
use tnc_proto::attestation::Role;
use tnc_server::config::Limits;

fn write_config(
    endpoint: &Endpoint,
    server: std::net::SocketAddr,
    ca: &Path,
) -> std::path::PathBuf {
    endpoint.write_client_config(server, ca).unwrap()
}

fn tnc_client(args: &[&str], config: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tnc-client"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

async fn login(config: &Path) -> std::process::Output {
    let config = config.to_path_buf();
    tokio::task::spawn_blocking(move || tnc_client(&["login"], &config))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_prints_the_verdict_and_status_remembers_it() {
    let ca = LocalCa::create().unwrap();
    let good = Endpoint::boot("good-terminal", Role::Terminal, &ca).unwrap();
    let bad = Endpoint::boot("tampered-keyapp", Role::Terminal, &ca).unwrap();
    let pdp = TestPdp::start(
        &[(Role::Terminal, &profile("good-terminal").unwrap())],
        &ca,
        Limits::default(),
    )
    .await
    .unwrap();

    let config = write_config(&good, pdp.addr, &pdp.tls.ca);
    let out = login(&config).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("verdict: allow"), "{stdout}");
    assert!(good.dir.join("state/ak.bin").exists(), "the AK is kept");
    let status = tnc_client(&["status"], &config);
    assert_eq!(status.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&status.stdout).contains("verdict: allow"));

    // Again over QUIC, to the PDP's QUIC port.
    let cfg = config.clone();
    let quic = pdp.quic_addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tnc-client"))
            .args(["login", "--quic", "--server", &quic, "--config"])
            .arg(&cfg)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("verdict: allow"), "{stdout}");

    // The device ID the PDP knows it by is printed and remembered.
    let devices = pdp.store.devices().await.unwrap();
    assert_eq!(devices.len(), 1);
    let device = policy::digest::hex(&devices[0].device_id);
    assert!(stdout.contains(&format!("device: {device}")), "{stdout}");
    let status = tnc_client(&["status"], &config);
    assert!(String::from_utf8_lossy(&status.stdout).contains(&device));

    // The name checked on the PDP's certificate follows --server (the
    // config's server names a host the certificate does not carry) unless
    // --server-name says otherwise; a wrong one is named with the right ones.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("server_name = \"localhost\"\n", "")
        .replace(
            &format!("server = \"{}\"", pdp.addr),
            "server = \"pdp.example:271\"",
        );
    let moved = good.dir.join("moved.toml");
    std::fs::write(&moved, text).unwrap();
    let port = pdp.addr.port();
    let run = move |args: Vec<String>, cfg: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_tnc-client"))
                .args(&args)
                .arg("--config")
                .arg(&cfg)
                .output()
                .unwrap()
        })
    };
    let out = run(
        vec![
            "login".into(),
            "--server".into(),
            format!("localhost:{port}"),
        ],
        moved.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        vec![
            "login".into(),
            "--server".into(),
            format!("127.0.0.1:{port}"),
            "--server-name".into(),
            "pdp.example".into(),
        ],
        moved,
    )
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("\"pdp.example\"")
            && stderr.contains("localhost, 127.0.0.1")
            && stderr.contains("--server-name")
            && stderr.ends_with('\n'),
        "{stderr}"
    );

    let config = write_config(&bad, pdp.addr, &pdp.tls.ca);
    let out = login(&config).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("verdict: isolate") && stdout.contains("modified file"),
        "{stdout}"
    );

    // A PDP certificate from another CA: refused before any PT-TLS byte.
    let other = scratch_dir("other-ca").unwrap();
    let other_tls = make_tls_files(&other).unwrap();
    let config = write_config(&good, pdp.addr, &other_tls.ca);
    let out = login(&config).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    std::fs::remove_dir_all(&other).unwrap();
    pdp.stop().await.unwrap();
}
