//! Our standard-suite TLS configuration against Debian's OpenSSL: an
//! OpenSSL client gets no session ticket from our server (every login is a
//! full handshake), and our client gets TLS_AES_128_GCM_SHA256 from an
//! OpenSSL server that follows the client's order.

mod common;

use common::{ecdsa_leaf, identity, roots, scratch};
use pki::tls::{client_config, default_provider, server_config};
use rustls::pki_types::ServerName;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn an_openssl_client_gets_no_session_ticket_from_our_server() {
    let dir = scratch("openssl-no-ticket");
    ecdsa_leaf(&dir, "server");
    let config = server_config(default_provider(), identity(&dir, "server"), None).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let conn = rustls::ServerConnection::new(config).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        // After the handshake: data, then close_notify; the client reads
        // everything the server sent after its Finished (tickets would
        // come there) until the close.
        tls.write_all(b"hello from rustls\n").unwrap();
        tls.conn.send_close_notify();
        tls.flush().unwrap();
    });
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args([
            "-tls1_3",
            "-servername",
            "localhost",
            "-verify_return_error",
            // Reads until the server closes, not until its stdin ends.
            "-ign_eof",
        ])
        .arg("-CAfile")
        .arg(dir.join("server.pem"))
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs (Debian's openssl package)");
    let text = String::from_utf8_lossy(&out.stdout);
    server.join().unwrap();
    assert!(text.contains("hello from rustls"), "{text}");
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    assert!(
        !text.contains("New Session Ticket"),
        "our server sent a session ticket: {text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn our_client_asks_an_openssl_server_for_aes_128_gcm_first() {
    let dir = scratch("openssl-suite");
    ecdsa_leaf(&dir, "server");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &port.to_string(),
            "-tls1_3",
            "-naccept",
            "1",
        ])
        .args(["-cert", "server.pem", "-key", "server.key", "-www"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl runs (Debian's openssl package)");
    let config = client_config(default_provider(), roots(&dir, "server"), None).unwrap();
    let started = Instant::now();
    let tcp = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(t) => break t,
            Err(_) if started.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("openssl s_server did not listen: {e}"),
        }
    };
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new((*config).clone()), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut page = Vec::new();
    let _ = tls.read_to_end(&mut page);
    let page = String::from_utf8_lossy(&page);
    assert_eq!(
        tls.conn.negotiated_cipher_suite().map(|s| s.suite()),
        Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256),
        "{page}"
    );
    // OpenSSL's own account of the connection (s_server -www).
    assert!(page.contains("TLS_AES_128_GCM_SHA256"), "{page}");
    let _ = server.kill();
    let _ = server.wait();
    std::fs::remove_dir_all(&dir).unwrap();
}
