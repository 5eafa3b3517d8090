//! TLS 1.3 handshakes over the ShangMi provider (RFC 8998), in memory,
//! with SM2 certificates made by an independent implementation: Debian's
//! OpenSSL 3.0 (`openssl genpkey -algorithm SM2`, SM2-with-SM3 signatures
//! under the default SM2 ID). Good handshakes move data both ways; each way
//! of failing is refused with the TLS error a peer would see.

use pki::tls::shangmi::{
    mixed_provider, strict_provider, CURVE_SM2, SM2SIG_SM3, TLS_SM4_CCM_SM3, TLS_SM4_GCM_SM3,
};
use pki::tls::{client_config, server_config, Identity};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CipherSuite, ClientConfig, RootCertStore, ServerConfig};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// A scratch folder for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pki-shangmi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (Debian's openssl package)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An SM2 CA, self-signed under `id` (the default SM2 ID unless a test
/// says otherwise).
fn sm2_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "SM2",
            "-out",
            &format!("{name}.key"),
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-sm3",
            "-sigopt",
            "distid:1234567812345678",
            "-subj",
            &format!("/CN={name}"),
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// A leaf for `localhost` from `ca`, signed under the SM2 ID `id`.
fn sm2_leaf(dir: &Path, ca: &str, name: &str, id: &str) {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "SM2",
            "-out",
            &format!("{name}.key"),
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-sm3",
            "-sigopt",
            "distid:1234567812345678",
            "-subj",
            &format!("/CN={name}"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-sm3",
            "-sigopt",
            &format!("distid:{id}"),
            "-vfyopt",
            "distid:1234567812345678",
            "-days",
            "30",
            "-extfile",
            "leaf.ext",
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// An ECDSA P-256 leaf for `localhost`, self-signed.
fn ecdsa_leaf(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-days",
            "30",
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

fn identity(dir: &Path, name: &str) -> Identity {
    Identity {
        chain: CertificateDer::pem_file_iter(dir.join(format!("{name}.pem")))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap(),
        key: PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key"))).unwrap(),
    }
}

fn roots(dir: &Path, name: &str) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.join(format!("{name}.pem"))).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

/// One provider with only `suite` of its cipher suites.
fn only(mut provider: CryptoProvider, suite: CipherSuite) -> Arc<CryptoProvider> {
    provider.cipher_suites.retain(|s| s.suite() == suite);
    Arc::new(provider)
}

/// The PKI most tests use: a CA, a server and a client leaf.
fn pki(name: &str) -> PathBuf {
    let dir = scratch(name);
    sm2_ca(&dir, "ca");
    sm2_leaf(&dir, "ca", "server", "1234567812345678");
    sm2_leaf(&dir, "ca", "client", "1234567812345678");
    dir
}

/// Runs the handshake in memory; then, if it completed, sends `ping` from
/// the client and `pong` back. The error of whichever side failed first.
fn handshake(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
) -> Result<(rustls::ClientConnection, rustls::ServerConnection), rustls::Error> {
    let mut c =
        rustls::ClientConnection::new(client, ServerName::try_from("localhost").unwrap()).unwrap();
    let mut s = rustls::ServerConnection::new(server).unwrap();
    let mut buf = Vec::new();
    for _ in 0..16 {
        buf.clear();
        c.write_tls(&mut buf).unwrap();
        let mut r = &buf[..];
        while !r.is_empty() {
            s.read_tls(&mut r).unwrap();
        }
        if let Err(e) = s.process_new_packets() {
            // Let the client read the alert the server sends.
            buf.clear();
            s.write_tls(&mut buf).unwrap();
            let mut r = &buf[..];
            while !r.is_empty() && c.read_tls(&mut r).is_ok() {}
            let _ = c.process_new_packets();
            return Err(e);
        }
        buf.clear();
        s.write_tls(&mut buf).unwrap();
        let mut r = &buf[..];
        while !r.is_empty() {
            c.read_tls(&mut r).unwrap();
        }
        c.process_new_packets()?;
        if !c.is_handshaking() && !s.is_handshaking() {
            break;
        }
    }
    // Flush the client's Finished (and any alert) to the server.
    buf.clear();
    c.write_tls(&mut buf).unwrap();
    let mut r = &buf[..];
    while !r.is_empty() {
        s.read_tls(&mut r).unwrap();
    }
    s.process_new_packets()?;
    Ok((c, s))
}

/// Moves `data` from `from` to `to` through records, and returns what `to` read.
fn send(
    from: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
    to: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
    data: &[u8],
) -> Vec<u8> {
    from.writer().write_all(data).unwrap();
    let mut wire = Vec::new();
    from.write_tls(&mut wire).unwrap();
    // Record by record: the receiver buffers at most a few records.
    let mut r = &wire[..];
    let mut got = Vec::new();
    while !r.is_empty() {
        to.read_tls(&mut r).unwrap();
        to.process_new_packets().unwrap();
        let mut chunk = [0u8; 16_384];
        while let Ok(n) = to.reader().read(&mut chunk) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
    }
    got
}

#[test]
fn strict_mutual_handshakes_with_both_suites_move_data() {
    let dir = pki("mutual");
    for suite in [TLS_SM4_GCM_SM3, TLS_SM4_CCM_SM3] {
        let server = server_config(
            Arc::new(strict_provider()),
            identity(&dir, "server"),
            Some(roots(&dir, "ca")),
        )
        .unwrap();
        let client = client_config(
            only(strict_provider(), suite),
            roots(&dir, "ca"),
            Some(identity(&dir, "client")),
        )
        .unwrap();
        let (mut c, mut s) = handshake(client, server).expect("handshake");
        assert_eq!(c.negotiated_cipher_suite().unwrap().suite(), suite);
        assert_eq!(s.negotiated_key_exchange_group().unwrap().name(), CURVE_SM2);
        // The server saw the client's SM2 certificate.
        let peer = s.peer_certificates().expect("client certificate");
        assert_eq!(peer[0].as_ref(), identity(&dir, "client").chain[0].as_ref());
        assert_eq!(send(&mut c, &mut s, b"ping over SM4"), b"ping over SM4");
        let big = vec![0x5a; 40_000];
        assert_eq!(send(&mut s, &mut c, &big), big);
    }
}

#[test]
fn a_strict_server_asks_clients_for_sm2sig_sm3_alone() {
    let dir = pki("request");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots(&dir, "ca")),
        Arc::new(strict_provider()),
    )
    .build()
    .unwrap();
    // What rustls puts in CertificateRequest.signature_algorithms: a strict
    // Tongsuo client refuses anything more than sm2sig_sm3.
    assert_eq!(verifier.supported_verify_schemes(), vec![SM2SIG_SM3]);
}

#[test]
fn a_client_with_only_the_standard_suites_is_refused_by_a_strict_server() {
    let dir = pki("aes-only");
    let server =
        server_config(Arc::new(strict_provider()), identity(&dir, "server"), None).unwrap();
    let client = client_config(pki::tls::default_provider(), roots(&dir, "ca"), None).unwrap();
    let err = handshake(client, server).unwrap_err();
    // rustls looks at the groups first: the client offered no curveSM2 share
    // (and no SM suite); it gets a handshake_failure alert.
    assert_eq!(
        err,
        rustls::Error::PeerIncompatible(rustls::PeerIncompatible::NoKxGroupsInCommon)
    );
}

#[test]
fn a_strict_client_refuses_a_server_with_an_ecdsa_certificate() {
    let dir = pki("ecdsa");
    ecdsa_leaf(&dir, "ecdsa");
    let mut roots_both = roots(&dir, "ca");
    for c in CertificateDer::pem_file_iter(dir.join("ecdsa.pem")).unwrap() {
        roots_both.add(c.unwrap()).unwrap();
    }
    // The server would speak the SM suites, but its key is ECDSA.
    let server = server_config(Arc::new(mixed_provider()), identity(&dir, "ecdsa"), None).unwrap();
    let client = client_config(Arc::new(strict_provider()), roots_both, None).unwrap();
    let err = handshake(client, server).unwrap_err();
    assert_eq!(
        err,
        rustls::Error::PeerIncompatible(rustls::PeerIncompatible::NoSignatureSchemesInCommon)
    );
}

#[test]
fn certificates_signed_under_another_sm2_id_or_ca_or_expired_are_refused() {
    let dir = pki("refusals");
    // Signed by the right CA key, but under an SM2 ID other than the default.
    sm2_leaf(&dir, "ca", "other-id", "TLSv1.3+GM+Cipher+Suite");
    sm2_ca(&dir, "stranger");
    sm2_leaf(&dir, "stranger", "foreign", "1234567812345678");
    let strict = || Arc::new(strict_provider());
    for (leaf, want) in [("other-id", "BadSignature"), ("foreign", "UnknownIssuer")] {
        let server = server_config(strict(), identity(&dir, leaf), None).unwrap();
        let client = client_config(strict(), roots(&dir, "ca"), None).unwrap();
        let err = handshake(client, server).unwrap_err();
        assert!(format!("{err:?}").contains(want), "{leaf}: {err:?}");
    }
    // The good leaf, 60 days on (it was issued for 30).
    #[derive(Debug)]
    struct Later;
    impl rustls::time_provider::TimeProvider for Later {
        fn current_time(&self) -> Option<UnixTime> {
            Some(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                UnixTime::now().as_secs() + 60 * 86_400,
            )))
        }
    }
    let server = server_config(strict(), identity(&dir, "server"), None).unwrap();
    let client = client_config(strict(), roots(&dir, "ca"), None).unwrap();
    let mut client = (*client).clone();
    client.time_provider = Arc::new(Later);
    let err = handshake(Arc::new(client), server).unwrap_err();
    assert!(format!("{err:?}").contains("Expired"), "{err:?}");
}

#[test]
fn a_mixed_pair_prefers_the_shangmi_suite_and_still_speaks_the_standard_ones() {
    let dir = pki("mixed");
    ecdsa_leaf(&dir, "ecdsa");
    let server = server_config(Arc::new(mixed_provider()), identity(&dir, "server"), None).unwrap();
    let client = client_config(Arc::new(mixed_provider()), roots(&dir, "ca"), None).unwrap();
    let (c, _) = handshake(client, server).unwrap();
    assert_eq!(
        c.negotiated_cipher_suite().unwrap().suite(),
        TLS_SM4_GCM_SM3
    );
    // A mixed server with an ECDSA identity and a standard client: AES.
    let server = server_config(Arc::new(mixed_provider()), identity(&dir, "ecdsa"), None).unwrap();
    let client = client_config(pki::tls::default_provider(), roots(&dir, "ecdsa"), None).unwrap();
    let (c, _) = handshake(client, server).unwrap();
    assert_eq!(
        c.negotiated_cipher_suite().unwrap().suite(),
        CipherSuite::TLS13_AES_256_GCM_SHA384
    );
}
