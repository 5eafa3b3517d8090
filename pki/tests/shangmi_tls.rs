//! TLS 1.3 handshakes over the ShangMi provider (RFC 8998), in memory,
//! with SM2 certificates made by an independent implementation: Debian's
//! OpenSSL 3.0 (`openssl genpkey -algorithm SM2`, SM2-with-SM3 signatures
//! under the default SM2 ID). Good handshakes move data both ways; each way
//! of failing is refused with the TLS error a peer would see.

use pki::tls::shangmi::{
    mixed_provider, strict_provider, CURVE_SM2, SM2SIG_SM3, TLS_SM4_CCM_SM3, TLS_SM4_GCM_SM3,
};
mod common;

use common::{ecdsa_leaf, identity, pki, roots, sm2_ca, sm2_leaf};
use pki::tls::{client_config, server_config};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CipherSuite, ClientConfig, ServerConfig};
use std::io::{Read as _, Write as _};
use std::sync::Arc;

/// One provider with only `suite` of its cipher suites.
fn only(mut provider: CryptoProvider, suite: CipherSuite) -> Arc<CryptoProvider> {
    provider.cipher_suites.retain(|s| s.suite() == suite);
    Arc::new(provider)
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
        CipherSuite::TLS13_AES_128_GCM_SHA256
    );
}

/// A server key that signs CertificateVerify under the certificate SM2 ID
/// instead of the TLS one (RFC 8998 §3.2.1): what the one published rustls
/// provider does, and what a correct client must refuse.
#[derive(Debug)]
struct WrongIdKey(sm2::SecretKey);

#[derive(Debug)]
struct WrongIdSigner(sm2::SecretKey);

impl rustls::sign::SigningKey for WrongIdKey {
    fn choose_scheme(
        &self,
        offered: &[rustls::SignatureScheme],
    ) -> Option<Box<dyn rustls::sign::Signer>> {
        offered
            .contains(&SM2SIG_SM3)
            .then(|| Box::new(WrongIdSigner(self.0.clone())) as Box<dyn rustls::sign::Signer>)
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        rustls::SignatureAlgorithm::Unknown(0xE0)
    }
}

impl rustls::sign::Signer for WrongIdSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        use sm2::dsa::signature::Signer as _;
        let key = sm2::dsa::SigningKey::new(pki::tls::shangmi::CERT_SM2_ID, &self.0).unwrap();
        let sig: sm2::dsa::Signature = key.sign(message);
        Ok(sig.to_der().to_vec())
    }

    fn scheme(&self) -> rustls::SignatureScheme {
        SM2SIG_SM3
    }
}

#[derive(Debug)]
struct Fixed(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Fixed {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[test]
fn a_certificate_verify_under_the_wrong_sm2_id_is_refused() {
    let dir = pki("wrong-id");
    let id = identity(&dir, "server");
    let secret = pki::tls::shangmi::sm2_secret_key(&id.key).unwrap();
    let key = Arc::new(rustls::sign::CertifiedKey::new(
        id.chain,
        Arc::new(WrongIdKey(secret)),
    ));
    let server = ServerConfig::builder_with_provider(Arc::new(strict_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(key)));
    let client = client_config(Arc::new(strict_provider()), roots(&dir, "ca"), None).unwrap();
    let err = handshake(client, Arc::new(server)).unwrap_err();
    assert!(format!("{err:?}").contains("BadSignature"), "{err:?}");
}

#[test]
fn truncated_and_oversized_records_are_refused_with_an_alert() {
    let dir = pki("records");
    let server =
        server_config(Arc::new(strict_provider()), identity(&dir, "server"), None).unwrap();
    let client = client_config(Arc::new(strict_provider()), roots(&dir, "ca"), None).unwrap();
    let (mut c, mut s) = handshake(client.clone(), server.clone()).unwrap();
    c.writer().write_all(b"0123456789").unwrap();
    let mut wire = Vec::new();
    c.write_tls(&mut wire).unwrap();
    // The record cut short by one byte of its tag, with its header saying so:
    // the AEAD check fails.
    let mut cut = wire[..wire.len() - 1].to_vec();
    let len = u16::from_be_bytes([cut[3], cut[4]]) - 1;
    cut[3..5].copy_from_slice(&len.to_be_bytes());
    let mut r = &cut[..];
    s.read_tls(&mut r).unwrap();
    assert_eq!(
        s.process_new_packets().unwrap_err(),
        rustls::Error::DecryptError
    );

    // A record longer than TLS 1.3 allows (2^14 + 256 bytes of ciphertext;
    // rustls refuses at the header what exceeds its own, larger, bound and
    // the rest at the AEAD): refused either way, whatever its content.
    for len in [(1u16 << 14) + 257, u16::MAX] {
        let (_c, mut s) = handshake(client.clone(), server.clone()).unwrap();
        let mut huge = vec![0x17, 0x03, 0x03];
        huge.extend_from_slice(&len.to_be_bytes());
        huge.resize(5 + usize::from(len), 0);
        let mut r = &huge[..];
        let mut refused = false;
        while !r.is_empty() && !refused {
            refused = s.read_tls(&mut r).is_err() || s.process_new_packets().is_err();
        }
        assert!(refused, "a record of {len} bytes is not taken");
    }
}

#[test]
fn our_servers_never_resume_a_session_and_send_no_tickets() {
    let dir = pki("no-resumption");
    let server = server_config(
        Arc::new(strict_provider()),
        identity(&dir, "server"),
        Some(roots(&dir, "ca")),
    )
    .unwrap();
    // A client that would resume if it could (rustls's default cache, as a
    // client other than ours has it).
    let mut client = (*client_config(
        Arc::new(strict_provider()),
        roots(&dir, "ca"),
        Some(identity(&dir, "client")),
    )
    .unwrap())
    .clone();
    client.resumption = rustls::client::Resumption::in_memory_sessions(8);
    let client = Arc::new(client);
    for round in 0..2 {
        let (mut c, mut s) = handshake(client.clone(), server.clone()).expect("handshake");
        assert_eq!(
            s.handshake_kind(),
            Some(rustls::HandshakeKind::Full),
            "connection {round}: every connection is a full handshake"
        );
        // The server's post-handshake bytes reach the client: no
        // NewSessionTicket among them, only the data.
        assert_eq!(send(&mut s, &mut c, b"data"), b"data");
        assert!(
            s.peer_certificates().is_some(),
            "the client certificate, checked anew"
        );
    }
}
