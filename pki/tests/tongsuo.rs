//! Interop with an independent RFC 8998 implementation: Tongsuo 8.3 (PyPI
//! `tongsuopy`, driven by `scripts/tongsuo_peer.py` in its strict SM mode),
//! over TCP on loopback, with SM2 certificates from our CA (and once from
//! Debian's OpenSSL). Our
//! client to a Tongsuo server and a Tongsuo client to our server, with
//! TLS_SM4_GCM_SM3 and TLS_SM4_CCM_SM3, mutual SM2 authentication, data both
//! ways, and the traffic secrets of our key schedule compared with Tongsuo's
//! key log.
//!
//! `make test` (scripts/setup.sh) creates the Python environment in `.venv`
//! of the workspace; `TNC_TONGSUO_PYTHON` names another interpreter.

mod common;

use common::{identity, pki, roots};
use pki::tls::shangmi::{strict_provider, TLS_SM4_CCM_SM3, TLS_SM4_GCM_SM3};
use pki::tls::{client_config, server_config};
use rustls::pki_types::ServerName;
use rustls::CipherSuite;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("TNC_TONGSUO_PYTHON") {
        return p.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: `make test` (scripts/setup.sh) creates the venv with tongsuopy",
        venv.display()
    );
    venv
}

fn peer(args: &[&str], dir: &Path, keylog: &Path) -> Child {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/tongsuo_peer.py");
    Command::new(python())
        .arg(script)
        .args(args)
        .args(["--ca", "ca.pem", "--keylog"])
        .arg(keylog)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the Tongsuo peer starts")
}

/// Tongsuo's name of a suite.
fn name(suite: CipherSuite) -> &'static str {
    if suite == TLS_SM4_GCM_SM3 {
        "TLS_SM4_GCM_SM3"
    } else {
        "TLS_SM4_CCM_SM3"
    }
}

fn json_field(line: &str, key: &str) -> Option<String> {
    // The peer prints flat JSON objects of strings and numbers.
    let at = line.find(&format!("\"{key}\": "))? + key.len() + 4;
    let rest = &line[at..];
    if let Some(s) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Some(out),
                '\\' => match chars.next()? {
                    'n' => out.push('\n'),
                    other => out.push(other),
                },
                c => out.push(c),
            }
        }
        None
    } else {
        Some(rest.split([',', '}']).next()?.trim().to_string())
    }
}

/// A logged secret: (client random, secret).
type Secret = (Vec<u8>, Vec<u8>);

/// Our secrets, as rustls logs them, by label.
#[derive(Debug, Default)]
struct Log(Mutex<BTreeMap<String, Secret>>);

impl rustls::KeyLog for Log {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .insert(label.to_string(), (client_random.to_vec(), secret.to_vec()));
    }

    fn will_log(&self, _label: &str) -> bool {
        true
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every secret we logged is in Tongsuo's key log, for the same client
/// random, with the same value.
fn same_secrets(ours: &Log, theirs: &Path) {
    let text = std::fs::read_to_string(theirs).unwrap();
    let ours = ours.0.lock().unwrap();
    for label in [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
        "EXPORTER_SECRET",
    ] {
        let (random, secret) = ours
            .get(label)
            .unwrap_or_else(|| panic!("we logged {label}"));
        let line = format!("{label} {} {}", hex(random), hex(secret));
        assert!(
            text.lines().any(|l| l.trim() == line),
            "Tongsuo's key log has no {line}"
        );
    }
}

/// Our client (certificate `client`) to a Tongsuo server (certificate
/// `server`), both from `ca` in `dir`, with `suite`.
fn client_to_tongsuo(dir: &Path, suite: CipherSuite) {
    let keylog = dir.join(format!("server-{}.keylog", name(suite)));
    let mut child = peer(
        &[
            "server",
            "--cert",
            "server.pem",
            "--key",
            "server.key",
            "--suite",
            name(suite),
        ],
        dir,
        &keylog,
    );
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let port: u16 = json_field(&line, "port")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the peer says its port: {line:?}"));

    let log = Arc::new(Log::default());
    let mut config = (*client_config(
        Arc::new(strict_provider()),
        roots(dir, "ca"),
        Some(identity(dir, "client")),
    )
    .unwrap())
    .clone();
    config.key_log = log.clone();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(b"hello from rustls\n").unwrap();
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\n") {
        tls.read_exact(&mut byte).unwrap();
        reply.push(byte[0]);
    }
    assert_eq!(reply, b"tongsuo: hello from rustls\n");
    assert_eq!(tls.conn.negotiated_cipher_suite().unwrap().suite(), suite);
    tls.conn.send_close_notify();
    let _ = tls.flush();

    let mut result = String::new();
    out.read_line(&mut result).unwrap();
    assert!(child.wait().unwrap().success(), "{result}");
    assert_eq!(json_field(&result, "suite").as_deref(), Some(name(suite)));
    assert_eq!(
        json_field(&result, "read").as_deref(),
        Some("hello from rustls\n")
    );
    same_secrets(&log, &keylog);
}

#[test]
fn our_client_to_a_tongsuo_server() {
    let dir = our_pki("tongsuo-server");
    for suite in [TLS_SM4_GCM_SM3, TLS_SM4_CCM_SM3] {
        client_to_tongsuo(&dir, suite);
    }
}

/// The PKI of these tests: our SM2 CA (`pki::ca`), a server and a client
/// certificate from it, as PEM files in a scratch folder.
fn our_pki(name: &str) -> PathBuf {
    use pki::ca::{LeafSpec, Sm2Ca, Sm2Key, Usage};
    use std::time::SystemTime;
    let dir = common::scratch(name);
    let ca = Sm2Ca::create(
        "TNC test SM2 CA",
        Duration::from_secs(86_400),
        SystemTime::now(),
    )
    .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.certificate_pem()).unwrap();
    for (who, usage) in [("server", Usage::Server), ("client", Usage::Client)] {
        let key = Sm2Key::generate().unwrap();
        let spec = LeafSpec {
            common_name: who.into(),
            subject_extra: Vec::new(),
            dns_names: vec!["localhost".into()],
            ips: Vec::new(),
            usage,
            lifetime: Duration::from_secs(3600),
        };
        let cert = ca
            .issue(&key.public_key(), &spec, SystemTime::now())
            .unwrap();
        std::fs::write(
            dir.join(format!("{who}.pem")),
            pki::ca::pem_certificate(&cert),
        )
        .unwrap();
        std::fs::write(dir.join(format!("{who}.key")), key.to_pem().unwrap()).unwrap();
    }
    dir
}

/// Certificates made by a third implementation (OpenSSL) work as well.
#[test]
fn openssl_made_certificates_with_a_tongsuo_server() {
    let dir = pki("tongsuo-openssl-certs");
    client_to_tongsuo(&dir, TLS_SM4_GCM_SM3);
}

#[test]
fn a_tongsuo_client_to_our_server() {
    let dir = our_pki("tongsuo-client");
    for suite in [TLS_SM4_GCM_SM3, TLS_SM4_CCM_SM3] {
        let mut provider = strict_provider();
        provider.cipher_suites.retain(|s| s.suite() == suite);
        let log = Arc::new(Log::default());
        let mut config = (*server_config(
            Arc::new(provider),
            identity(&dir, "server"),
            Some(roots(&dir, "ca")),
        )
        .unwrap())
        .clone();
        config.key_log = log.clone();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let keylog = dir.join(format!("client-{}.keylog", name(suite)));
        let mut child = peer(
            &[
                "client",
                "--port",
                &port,
                "--cert",
                "client.pem",
                "--key",
                "client.key",
                "--suite",
                name(suite),
            ],
            &dir,
            &keylog,
        );
        let (sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\n") {
            tls.read_exact(&mut byte).unwrap();
            line.push(byte[0]);
        }
        assert_eq!(line, b"hello from tongsuo\n");
        // Tongsuo authenticated with its SM2 certificate.
        let peer_cert = tls.conn.peer_certificates().expect("client certificate");
        assert_eq!(
            peer_cert[0].as_ref(),
            identity(&dir, "client").chain[0].as_ref()
        );
        assert_eq!(tls.conn.negotiated_cipher_suite().unwrap().suite(), suite);
        tls.write_all(b"hello from rustls\n").unwrap();
        tls.flush().unwrap();

        let mut result = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut result)
            .unwrap();
        assert!(child.wait().unwrap().success(), "{result}");
        assert_eq!(json_field(&result, "suite").as_deref(), Some(name(suite)));
        assert_eq!(
            json_field(&result, "read").as_deref(),
            Some("hello from rustls\n")
        );
        same_secrets(&log, &keylog);
    }
}
