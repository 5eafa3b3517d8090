//! The SM2 CA against an independent implementation, Debian's OpenSSL 3.0:
//! it accepts our certificates and requests (`-vfyopt distid:…`), we accept
//! its, and each side refuses what is signed under another SM2 ID or with
//! another kind of key. Then a strict ShangMi TLS handshake on our own
//! certificates.

mod common;

use common::{openssl, scratch, sm2_ca, sm2_leaf};
use pki::ca::{make_request, verify_issued_by, verify_request, LeafSpec, Sm2Ca, Sm2Key, Usage};
use std::path::Path;
use std::time::{Duration, SystemTime};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn der_of_pem(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(text.as_bytes()).unwrap();
    pem.contents
}

fn leaf_spec(usage: Usage) -> LeafSpec {
    LeafSpec {
        common_name: "localhost".into(),
        subject_extra: Vec::new(),
        dns_names: vec!["localhost".into()],
        ips: vec!["127.0.0.1".parse().unwrap()],
        usage,
        lifetime: Duration::from_secs(3600),
    }
}

#[test]
fn openssl_accepts_our_ca_our_leaves_and_our_requests() {
    let dir = scratch("ours-in-openssl");
    let ca = Sm2Ca::create(
        "TNC test SM2 CA",
        Duration::from_secs(86_400),
        SystemTime::now(),
    )
    .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.certificate_pem()).unwrap();
    let key = Sm2Key::generate().unwrap();
    let leaf = ca
        .issue(
            &key.public_key(),
            &leaf_spec(Usage::Server),
            SystemTime::now(),
        )
        .unwrap();
    std::fs::write(
        dir.join("leaf.pem"),
        pki::ca::pem_encode("CERTIFICATE", &leaf),
    )
    .unwrap();
    openssl(
        &dir,
        &[
            "verify",
            "-vfyopt",
            "distid:1234567812345678",
            "-CAfile",
            "ca.pem",
            "-purpose",
            "sslserver",
            "leaf.pem",
        ],
    );
    // OpenSSL reads the names, usages and the key as we meant them.
    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in", "leaf.pem"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    for want in [
        "SM2-with-SM3",
        "ASN1 OID: SM2",
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "TLS Web Server Authentication",
        "Digital Signature",
        "CA:FALSE",
    ] {
        assert!(text.contains(want), "{want} not in:\n{text}");
    }
    // Our request, checked by OpenSSL.
    let csr = make_request(&key, "terminal 7").unwrap();
    std::fs::write(
        dir.join("req.pem"),
        pki::ca::pem_encode("CERTIFICATE REQUEST", &csr),
    )
    .unwrap();
    openssl(
        &dir,
        &[
            "req",
            "-verify",
            "-vfyopt",
            "distid:1234567812345678",
            "-noout",
            "-in",
            "req.pem",
        ],
    );
    // A leaf from our CA under another SM2 ID is refused by OpenSSL: make
    // one by signing with OpenSSL under the wrong ID with our CA's key.
    std::fs::write(dir.join("ca.key"), ca.key().to_pem().unwrap()).unwrap();
    sm2_leaf(&dir, "ca", "wrong-id", "TLSv1.3+GM+Cipher+Suite");
    let out = std::process::Command::new("openssl")
        .args([
            "verify",
            "-vfyopt",
            "distid:1234567812345678",
            "-CAfile",
            "ca.pem",
            "wrong-id.pem",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "OpenSSL took a leaf signed under another ID"
    );
    // And so do we.
    let wrong = der_of_pem(&dir.join("wrong-id.pem"));
    assert!(verify_issued_by(&wrong, ca.certificate_der(), now()).is_err());
    // The same CA key under the right ID: we accept OpenSSL's leaf.
    sm2_leaf(&dir, "ca", "right-id", "1234567812345678");
    verify_issued_by(
        &der_of_pem(&dir.join("right-id.pem")),
        ca.certificate_der(),
        now(),
    )
    .unwrap();
}

#[test]
fn we_accept_openssl_certificates_and_requests_and_refuse_non_sm2_ones() {
    let dir = scratch("openssl-in-ours");
    sm2_ca(&dir, "ca");
    sm2_leaf(&dir, "ca", "leaf", "1234567812345678");
    let ca = der_of_pem(&dir.join("ca.pem"));
    verify_issued_by(&der_of_pem(&dir.join("leaf.pem")), &ca, now()).unwrap();
    // OpenSSL's SM2 request verifies; its key is the leaf's.
    let csr = der_of_pem(&dir.join("leaf.csr"));
    let verified = verify_request(&csr).unwrap();
    assert!(verified.subject.contains("leaf"), "{}", verified.subject);
    // An ECDSA request: not an SM2 key.
    openssl(
        &dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ec.key",
            "-subj",
            "/CN=ecdsa",
            "-out",
            "ec.csr",
        ],
    );
    let err = verify_request(&der_of_pem(&dir.join("ec.csr"))).unwrap_err();
    assert!(err.to_string().contains("not an SM2 key"), "{err}");
    // An SM2 request signed under another ID does not verify.
    openssl(&dir, &["genpkey", "-algorithm", "SM2", "-out", "odd.key"]);
    openssl(
        &dir,
        &[
            "req",
            "-new",
            "-key",
            "odd.key",
            "-sm3",
            "-sigopt",
            "distid:someone-else",
            "-subj",
            "/CN=odd",
            "-out",
            "odd.csr",
        ],
    );
    assert!(matches!(
        verify_request(&der_of_pem(&dir.join("odd.csr"))),
        Err(pki::ca::CaError::BadSignature)
    ));
    // Our CA issues for OpenSSL's request.
    let ours = Sm2Ca::create(
        "TNC test SM2 CA",
        Duration::from_secs(86_400),
        SystemTime::now(),
    )
    .unwrap();
    let leaf = ours
        .issue_for_request(&verified, &leaf_spec(Usage::Client), SystemTime::now())
        .unwrap();
    verify_issued_by(&leaf, ours.certificate_der(), now()).unwrap();
}

#[test]
fn a_strict_shangmi_handshake_on_our_own_certificates() {
    use pki::tls::shangmi::strict_provider;
    use pki::tls::{client_config, server_config, Identity};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use std::sync::Arc;

    let ca = Sm2Ca::create(
        "TNC test SM2 CA",
        Duration::from_secs(86_400),
        SystemTime::now(),
    )
    .unwrap();
    let identity = |usage| {
        let key = Sm2Key::generate().unwrap();
        let cert = ca
            .issue(&key.public_key(), &leaf_spec(usage), SystemTime::now())
            .unwrap();
        let pem_key = key.to_pem().unwrap();
        let (_, der) = x509_parser::pem::parse_x509_pem(pem_key.as_bytes()).unwrap();
        Identity {
            chain: vec![CertificateDer::from(cert)],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.contents)),
        }
    };
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.certificate_der().to_vec()))
        .unwrap();
    let server = server_config(
        Arc::new(strict_provider()),
        identity(Usage::Server),
        Some(roots.clone()),
    )
    .unwrap();
    let client = client_config(
        Arc::new(strict_provider()),
        roots,
        Some(identity(Usage::Client)),
    )
    .unwrap();
    let mut c =
        rustls::ClientConnection::new(client, ServerName::try_from("localhost").unwrap()).unwrap();
    let mut s = rustls::ServerConnection::new(server).unwrap();
    for _ in 0..8 {
        let mut buf = Vec::new();
        c.write_tls(&mut buf).unwrap();
        s.read_tls(&mut &buf[..]).unwrap();
        s.process_new_packets().unwrap();
        let mut buf = Vec::new();
        s.write_tls(&mut buf).unwrap();
        c.read_tls(&mut &buf[..]).unwrap();
        c.process_new_packets().unwrap();
    }
    assert!(!c.is_handshaking() && !s.is_handshaking());
    assert!(s.peer_certificates().is_some(), "the client authenticated");
    // Both configurations took the CA as a trust anchor, and its two
    // certificate signatures (one checked by each side) got its key a comb.
    let cache = pki::sm2_verify::KeyCache::global();
    assert!(cache.is_anchor(&ca.key().public_key()));
    assert!(cache.has_comb(&ca.key().public_key()));
}
