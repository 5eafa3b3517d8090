//! `tnc-client serve` and `connect` as a VM and terminals run them, end to
//! end on swtpm (issue 12, item 5): a PDP on loopback issuing credentials;
//! vm-1 (a swtpm booted as good-vm) serves a small HTTP service; the allowed
//! terminal-1 connects with standard input and output, is paired with vm-1
//! by the PDP and gets the service's answer through the ShangMi channel,
//! over TCP twice (the second time with the credentials it kept) and over
//! QUIC; the isolated
//! terminal-2 gets no credentials, no pairing, and `connect` says why.
//! Both ends' channel keys are in their TPMs (client.toml's default
//! `channel_key = "auto"`): the requests, and every CertificateVerify of the
//! channel, are signed by swtpm.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use testnet::e2e::{profile, Endpoint, PdpOptions, TestPdp};
use testnet::swtpm::LocalCa;
use tnc_proto::attestation::Role;

/// A one-line HTTP/1.0 service: answers every request with its own name.
fn http_service() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut line = String::new();
            let _ = BufReader::new(&s).read_line(&mut line);
            let body = "hello from the service behind vm-1\n";
            let _ = write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

/// `tnc-client connect --config C vm-1 -` with a request on standard input.
fn connect(config: &Path, extra: &[&str]) -> (std::process::ExitStatus, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tnc-client"))
        .args(["connect", "--config"])
        .arg(config)
        .args(["vm-1", "--local-port", "-"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paired_terminal_reaches_the_service_behind_serve_and_an_isolated_one_is_told_why() {
    let ca = LocalCa::create().unwrap();
    let vm = Endpoint::boot("good-vm", Role::Vm, &ca).unwrap();
    let good = Endpoint::boot("good-terminal", Role::Terminal, &ca).unwrap();
    let bad = Endpoint::boot("tampered-kernel", Role::Terminal, &ca).unwrap();
    let (t_ref, vm_ref) = (
        profile("good-terminal").unwrap(),
        profile("good-vm").unwrap(),
    );
    let pdp = TestPdp::start_raw(
        &[(Role::Terminal, &t_ref), (Role::Vm, &vm_ref)],
        ca.roots().unwrap(),
        PdpOptions {
            issue_credentials: true,
            vm_names: [(vm.device_id().unwrap(), "vm-1".to_string())].into(),
            ..PdpOptions::default()
        },
    )
    .await
    .unwrap();
    let service = http_service();

    let vm_config = vm.write_client_config(pdp.addr, &pdp.tls.ca).unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_tnc-client"))
        .args(["serve", "--config"])
        .arg(&vm_config)
        .args(["--forward", &service.to_string()])
        .args(["--listen", "127.0.0.1:0", "--quic-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(serve.stdout.take().unwrap());
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    if !line.starts_with("serving vm-1 on 127.0.0.1:") {
        let _ = serve.kill();
        let mut err = String::new();
        serve
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        panic!("serve: {line:?} {err}");
    }

    // terminal-1: attested, credentials granted, paired, through.
    let t1 = good.write_client_config(pdp.addr, &pdp.tls.ca).unwrap();
    for round in [
        "with new credentials",
        "with the credentials it kept",
        "over QUIC",
    ] {
        let t1 = t1.clone();
        let extra: &[&str] = if round == "over QUIC" {
            &["--quic"]
        } else {
            &[]
        };
        let (status, out, err) = tokio::task::spawn_blocking(move || connect(&t1, extra))
            .await
            .unwrap();
        assert!(status.success(), "{round}: {err}");
        assert!(out.starts_with("HTTP/1.0 200 OK\r\n"), "{round}: {out:?}");
        assert!(
            out.ends_with("hello from the service behind vm-1\n"),
            "{out:?}"
        );
        assert!(
            err.contains("channel to vm-1 at 127.0.0.1:")
                && err.contains("TLS_SM4_GCM_SM3, pairing"),
            "{round}: {err}"
        );
        assert_eq!(err.contains("over QUIC"), round == "over QUIC", "{err}");
        assert!(err.contains("channel key: in the TPM"), "{err}");
        assert_eq!(
            err.contains("credentials kept"),
            round == "with new credentials",
            "{round}: {err}"
        );
    }
    // The channel keys live in the TPMs (swtpm makes SM2 keys): only the
    // value the TPM derives each from is on disk, no private key.
    for dir in [&good.dir, &vm.dir] {
        assert!(dir.join("state/channel.tpm").exists());
        assert!(!dir.join("state/channel.key").exists());
    }
    let pairings = pdp
        .store
        .audit_entries()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "pairing")
        .count();
    assert_eq!(pairings, 3);
    // The PDP's audit log says where each certified key lives.
    let entries = pdp.store.audit_entries().await.unwrap();
    let keys: Vec<&str> = entries
        .iter()
        .filter(|e| e.kind == "credential")
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys.iter().all(|d| d.contains("for a key in tpm")),
        "{keys:?}"
    );

    // terminal-2: isolated, so no credentials and no pairing.
    let t2 = bad.write_client_config(pdp.addr, &pdp.tls.ca).unwrap();
    let (status, out, err) = tokio::task::spawn_blocking(move || connect(&t2, &[]))
        .await
        .unwrap();
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("no access to vm-1: the verdict is isolate"),
        "{err}"
    );
    assert!(!bad.dir.join("state/ticket.cose").exists());

    let _ = serve.kill();
    let _ = serve.wait();

    // serve took its name from its certificate; a --name the PDP did not
    // give it is refused, saying which it has.
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tnc-client"))
            .args(["serve", "--config"])
            .arg(&vm_config)
            .args(["--forward", &service.to_string()])
            .args(["--listen", "127.0.0.1:0", "--name", "vm-9"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(r#"names this VM ["vm-1"], not "vm-9""#),
        "{err}"
    );
    pdp.stop().await.unwrap();
}
