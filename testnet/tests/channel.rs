//! The ShangMi channel between a terminal and a VM: TLS with session
//! certificates, the access ticket and the pairing proof, with credentials
//! issued by the PDP's issuer as an allow issues them and pairings made as
//! the PDP makes them, and each way of getting in without the right ones
//! refused (issue 12, item 6).

use pki::ca::Sm2Ca;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tnc_client::tunnel::{connect, ChannelIdentity, Refused, Server, TunnelError};
use tnc_proto::attestation::Role;
use tnc_proto::credential::Pairing;
use tnc_server::issue::Issuer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn issuer(vms: &[(Role, &str)]) -> Issuer {
    let ca = Sm2Ca::create(
        "session CA",
        Duration::from_secs(86_400),
        std::time::SystemTime::now(),
    )
    .unwrap();
    let mut map: BTreeMap<Role, Vec<String>> = BTreeMap::new();
    for (role, vm) in vms {
        map.entry(*role).or_default().push(vm.to_string());
    }
    Issuer::new(ca, Duration::from_secs(3600), map)
        .with_vm_names([(hex(&[0x77; 32]), "vm-1".to_string())].into())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Credentials for a device of `role` (device ID all `id` bytes).
fn credentials(issuer: &Issuer, role: Role, id: u8) -> ChannelIdentity {
    let (key, grant) = testnet::e2e::channel_credentials(issuer, role, [id; 32]).unwrap();
    ChannelIdentity {
        grant,
        key: key.into(),
    }
}

fn sha256(b: &[u8]) -> Vec<u8> {
    policy::HashAlg::Sha256.digest(b)
}

fn now() -> i64 {
    tnc_server::pdp::system_clock() as i64
}

/// What the PDP's pairing registry does: a fresh id and key, handed to the
/// VM (for `terminal`'s certificate) and to the terminal (for the VM's).
fn pair(server: &Server, vm: &ChannelIdentity, terminal: &ChannelIdentity) -> Pairing {
    let mut secret = [0u8; 32];
    pki::rand::SecureRandom::fill(&pki::rand::SystemRandom::new(), &mut secret).unwrap();
    let expires = now() + 60;
    assert!(server.add_pairing(
        Pairing {
            id: secret[..16].to_vec(),
            key: secret[16..].to_vec(),
            peer: "terminal".into(),
            peer_certificate_sha256: sha256(&terminal.grant.certificate),
            address: None,
            quic_address: None,
            expires,
        },
        now(),
    ));
    Pairing {
        id: secret[..16].to_vec(),
        key: secret[16..].to_vec(),
        peer: "vm-1".into(),
        peer_certificate_sha256: sha256(&vm.grant.certificate),
        address: None,
        quic_address: None,
        expires,
    }
}

/// The software key these tests issue credentials for.
fn software(key: &tnc_client::tunnel::ChannelSigner) -> &pki::ca::Sm2Key {
    match key {
        tnc_client::tunnel::ChannelSigner::Software(k) => k,
        tnc_client::tunnel::ChannelSigner::External { .. } => panic!("a software key"),
    }
}

/// Why `connect` gets no channel (it must not get one).
async fn refused(me: &ChannelIdentity, addr: SocketAddr, vm: &str, p: &Pairing) -> TunnelError {
    match connect(me, addr, vm, p).await {
        Ok(_) => panic!("the channel opened"),
        Err(e) => e,
    }
}

/// [`refused`] over QUIC.
async fn refused_quic(
    me: &ChannelIdentity,
    addr: SocketAddr,
    vm: &str,
    p: &Pairing,
) -> TunnelError {
    match tnc_client::tunnel::connect_quic(me, addr, vm, p).await {
        Ok(_) => panic!("the channel opened"),
        Err(e) => e,
    }
}

/// An echo service, and vm-1 serving channels to it; vm-1's address.
async fn vm(vm: &ChannelIdentity) -> (SocketAddr, Arc<Server>) {
    let echo_addr = testnet::e2e::echo_service().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Arc::new(Server::new(vm, "vm-1").unwrap());
    tokio::spawn(server.clone().run(listener, echo_addr));
    (addr, server)
}

#[tokio::test]
async fn a_terminal_with_its_credentials_reaches_the_service_behind_the_vm() {
    let issuer = issuer(&[(Role::Terminal, "vm-1")]);
    let vm_id = credentials(&issuer, Role::Vm, 0x77);
    let (addr, server) = vm(&vm_id).await;
    let terminal = credentials(&issuer, Role::Terminal, 0x01);
    let pairing = pair(&server, &vm_id, &terminal);
    let mut channel = connect(&terminal, addr, "vm-1", &pairing).await.unwrap();
    channel.write_all(b"GET / over SM4\n").await.unwrap();
    let mut back = [0u8; 15];
    channel.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"GET / over SM4\n");

    // The pairing served once: used again (a replay), it opens nothing.
    let err = refused(&terminal, addr, "vm-1", &pairing).await;
    assert!(
        matches!(err, TunnelError::Refused(Refused::NoPairing)),
        "{err}"
    );
}

#[tokio::test]
async fn without_the_pairing_key_or_with_a_relayed_proof_nothing_opens() {
    let issuer = issuer(&[(Role::Terminal, "vm-1")]);
    let vm_id = credentials(&issuer, Role::Vm, 0x77);
    let (addr, server) = vm(&vm_id).await;
    let terminal = credentials(&issuer, Role::Terminal, 0x01);

    // A valid certificate, key and ticket, and a pairing id the VM holds,
    // but not its key (the certificate was stolen, the pairing not).
    let pairing = pair(&server, &vm_id, &terminal);
    let guessed = Pairing {
        key: vec![0x55; 16],
        ..pairing.clone()
    };
    let err = refused(&terminal, addr, "vm-1", &guessed).await;
    assert!(
        matches!(err, TunnelError::Refused(Refused::BadProof)),
        "{err}"
    );
    // The failed try used the pairing up: the right key is too late now.
    let err = refused(&terminal, addr, "vm-1", &pairing).await;
    assert!(
        matches!(err, TunnelError::Refused(Refused::NoPairing)),
        "{err}"
    );

    // No pairing at all: an id the VM never got.
    let invented = Pairing {
        id: vec![0xaa; 16],
        ..pair(&server, &vm_id, &terminal)
    };
    let err = refused(&terminal, addr, "vm-1", &invented).await;
    assert!(
        matches!(err, TunnelError::Refused(Refused::NoPairing)),
        "{err}"
    );

    // A pairing made for another terminal's certificate.
    let other = credentials(&issuer, Role::Terminal, 0x02);
    let theirs = pair(&server, &vm_id, &other);
    let err = refused(&terminal, addr, "vm-1", &theirs).await;
    assert!(
        matches!(err, TunnelError::Refused(Refused::PairingCertificate)),
        "{err}"
    );
    // Presented with the wrong certificate, it is not used up: its own
    // terminal still gets through (pairing ids are in the audit log).
    let mut ok = connect(&other, addr, "vm-1", &theirs).await.unwrap();
    ok.write_all(b"x").await.unwrap();
    assert_eq!(ok.read_u8().await.unwrap(), b'x');

    // A relay: the proof made with the right key over another connection's
    // exporter (what a man in the middle forwarding a proof would hold).
    let pairing = pair(&server, &vm_id, &terminal);
    let (mut first, exporter_first) = raw_channel(&terminal, addr).await;
    let (_second, exporter_second) = raw_channel(&terminal, addr).await;
    assert_ne!(exporter_first, exporter_second);
    let key: [u8; 16] = pairing.key.as_slice().try_into().unwrap();
    let relayed =
        pki::tls::pairing::proof(&key, &exporter_second, pki::tls::pairing::Side::Terminal);
    let mut frame = (terminal.grant.ticket.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&terminal.grant.ticket);
    frame.extend_from_slice(&pairing.id);
    frame.extend_from_slice(&relayed);
    first.write_all(&frame).await.unwrap();
    assert_eq!(first.read_u8().await.unwrap(), Refused::BadProof as u8);

    // The terminal refuses a VM whose certificate is not the paired one.
    let pairing = Pairing {
        peer_certificate_sha256: vec![0; 32],
        ..pair(&server, &vm_id, &terminal)
    };
    let err = refused(&terminal, addr, "vm-1", &pairing).await;
    assert!(matches!(err, TunnelError::VmCertificate), "{err}");
}

/// A strict ShangMi TLS connection to the VM with `me`'s certificate, and
/// its exporter value for the pairing proof.
async fn raw_channel(
    me: &ChannelIdentity,
    addr: SocketAddr,
) -> (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    [u8; 32],
) {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(me.grant.ca.clone()))
        .unwrap();
    let key = pki::ca::pem_or_der(software(&me.key).to_pem().unwrap().as_bytes()).unwrap();
    let identity = pki::tls::Identity {
        chain: vec![rustls::pki_types::CertificateDer::from(
            me.grant.certificate.clone(),
        )],
        key: rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
    };
    let tls = pki::tls::client_config(
        Arc::new(pki::tls::shangmi::strict_provider()),
        roots,
        Some(identity),
    )
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(
            rustls::pki_types::ServerName::try_from("vm-1").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let exporter = stream
        .get_ref()
        .1
        .export_keying_material([0u8; 32], pki::tls::pairing::EXPORTER_LABEL, None)
        .unwrap();
    (stream, exporter)
}

#[tokio::test]
async fn tickets_for_another_vm_device_or_key_and_wrong_names_are_refused() {
    let issuer = issuer(&[(Role::Terminal, "vm-2")]);
    let vm_id = credentials(&issuer, Role::Vm, 0x77);
    let (addr, server) = vm(&vm_id).await;

    // A ticket naming another VM.
    let terminal = credentials(&issuer, Role::Terminal, 0x01);
    let pairing = pair(&server, &vm_id, &terminal);
    let err = refused(&terminal, addr, "vm-1", &pairing).await;
    assert!(
        matches!(err, TunnelError::Refused(Refused::OtherVm)),
        "{err}"
    );

    // Another device's ticket with this device's certificate.
    let good = issuer_for_vm1(&issuer);
    let a = credentials(&good, Role::Terminal, 0x01);
    let b = credentials(&good, Role::Terminal, 0x02);
    let vm_id = credentials(&good, Role::Vm, 0x77);
    let (addr, server) = vm(&vm_id).await;
    let stolen = ChannelIdentity {
        grant: tnc_proto::credential::Grant {
            ticket: b.grant.ticket.clone(),
            ..a.grant.clone()
        },
        key: a.key,
    };
    let pairing = pair(&server, &vm_id, &stolen);
    let err = refused(&stolen, addr, "vm-1", &pairing).await;
    assert!(
        matches!(err, TunnelError::Refused(Refused::OtherCertificate)),
        "{err}"
    );

    // A ticket signed by another key (a re-signed one) with a genuine
    // certificate.
    let forger = issuer_for_vm1(&issuer_with_other_ca());
    let forged = credentials(&forger, Role::Terminal, 0x01);
    let resigned = ChannelIdentity {
        grant: tnc_proto::credential::Grant {
            ticket: forged.grant.ticket.clone(),
            ..b.grant.clone()
        },
        key: b.key,
    };
    let pairing = pair(&server, &vm_id, &resigned);
    let err = refused(&resigned, addr, "vm-1", &pairing).await;
    assert!(
        matches!(err, TunnelError::Refused(Refused::BadTicket)),
        "{err}"
    );

    // The VM's certificate does not carry another name: a terminal asking
    // for vm-2 at vm-1's address gets no channel.
    let c = credentials(&good, Role::Terminal, 0x03);
    let pairing = pair(&server, &vm_id, &c);
    let err = refused(&c, addr, "vm-2", &pairing).await;
    assert!(matches!(err, TunnelError::Tls(_)), "{err}");
}

#[tokio::test]
async fn an_expired_ticket_and_a_client_without_the_shangmi_suites_are_refused() {
    let good = issuer_for_vm1(&issuer(&[]));
    let vm_id = credentials(&good, Role::Vm, 0x77);
    let server = Server::new(&vm_id, "vm-1").unwrap();
    let t = credentials(&good, Role::Terminal, 0x01);
    let now = tnc_server::pdp::system_clock() as i64;
    assert_eq!(
        server.check(&t.grant.ticket, &t.grant.certificate, now),
        Ok(())
    );
    assert_eq!(
        server.check(&t.grant.ticket, &t.grant.certificate, now + 3601),
        Err(Refused::Expired)
    );
    // A pairing unused for longer than it lives is void.
    let p = pair(&server, &vm_id, &t);
    let key: [u8; 16] = p.key.as_slice().try_into().unwrap();
    let mut presented = [0u8; 48];
    presented[..16].copy_from_slice(&p.id);
    presented[16..].copy_from_slice(&pki::tls::pairing::proof(
        &key,
        &[1; 32],
        pki::tls::pairing::Side::Terminal,
    ));
    assert_eq!(
        server.check_pairing(&presented, &t.grant.certificate, &[1; 32], now + 61),
        Err(Refused::PairingExpired)
    );

    // A standard (AES-only) TLS client gets no handshake from the VM.
    let (addr, _) = vm(&vm_id).await;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(t.grant.ca.clone()))
        .unwrap();
    let aes = pki::tls::client_config(pki::tls::default_provider(), roots, None).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let r = tokio_rustls::TlsConnector::from(aes)
        .connect(
            rustls::pki_types::ServerName::try_from("vm-1").unwrap(),
            tcp,
        )
        .await;
    assert!(r.is_err(), "an AES-only client got a channel");
}

/// The same CA as `i`, terminals' tickets naming vm-1.
fn issuer_for_vm1(i: &Issuer) -> Issuer {
    let ca = Sm2Ca::from_pem(&i.ca().certificate_pem(), &i.ca().key().to_pem().unwrap()).unwrap();
    Issuer::new(
        ca,
        Duration::from_secs(3600),
        [(Role::Terminal, vec!["vm-1".to_string()])].into(),
    )
    .with_vm_names([(hex(&[0x77; 32]), "vm-1".to_string())].into())
}

fn issuer_with_other_ca() -> Issuer {
    issuer(&[])
}

#[tokio::test]
async fn a_vm_that_does_not_hold_the_pairing_key_is_refused_by_the_terminal() {
    let issuer = issuer(&[(Role::Terminal, "vm-1")]);
    let vm_id = credentials(&issuer, Role::Vm, 0x77);
    let terminal = credentials(&issuer, Role::Terminal, 0x01);
    // An impostor with vm-1's certificate and key (stolen) but not the
    // pairing's key: it accepts whatever comes and answers a made-up proof.
    let key = pki::ca::pem_or_der(software(&vm_id.key).to_pem().unwrap().as_bytes()).unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(pki::tls::shangmi::strict_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![rustls::pki_types::CertificateDer::from(
                    vm_id.grant.certificate.clone(),
                )],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
            )
            .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = tokio_rustls::TlsAcceptor::from(Arc::new(config))
            .accept(tcp)
            .await
            .unwrap();
        let mut buf = vec![0u8; 8192];
        let _ = tls.read(&mut buf).await;
        tls.write_all(&[0u8; 33]).await.unwrap();
        tls.flush().await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let pairing = Pairing {
        id: vec![1; 16],
        key: vec![2; 16],
        peer: "vm-1".into(),
        peer_certificate_sha256: sha256(&vm_id.grant.certificate),
        address: None,
        quic_address: None,
        expires: now() + 60,
    };
    let err = refused(&terminal, addr, "vm-1", &pairing).await;
    assert!(matches!(err, TunnelError::VmProof), "{err}");
}

#[tokio::test]
async fn over_quic_too_a_paired_terminal_gets_through_and_nothing_else_does() {
    let issuer = issuer(&[(Role::Terminal, "vm-1")]);
    let vm_id = credentials(&issuer, Role::Vm, 0x77);
    let (tcp_addr, server) = vm(&vm_id).await;
    let echo_addr = testnet::e2e::echo_service().await.unwrap();
    let endpoint = server
        .quic_endpoint("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let quic_addr = endpoint.local_addr().unwrap();
    assert_ne!(quic_addr, tcp_addr);
    tokio::spawn(server.clone().run_quic(endpoint, echo_addr));
    let terminal = credentials(&issuer, Role::Terminal, 0x01);

    let pairing = pair(&server, &vm_id, &terminal);
    let mut channel = tnc_client::tunnel::connect_quic(&terminal, quic_addr, "vm-1", &pairing)
        .await
        .unwrap();
    channel.write_all(b"GET / over QUIC\n").await.unwrap();
    let mut back = [0u8; 16];
    channel.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"GET / over QUIC\n");

    // Replayed over QUIC: used already.
    let err = refused_quic(&terminal, quic_addr, "vm-1", &pairing).await;
    assert!(
        matches!(err, TunnelError::Refused(Refused::NoPairing)),
        "{err}"
    );
    // Without the pairing's key: refused, as over TCP.
    let p = pair(&server, &vm_id, &terminal);
    let wrong = Pairing {
        key: vec![9; 16],
        ..p
    };
    let err = refused_quic(&terminal, quic_addr, "vm-1", &wrong).await;
    assert!(
        matches!(err, TunnelError::Refused(Refused::BadProof)),
        "{err}"
    );

    // A standard (AES-only) QUIC client gets no handshake.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(
            terminal.grant.ca.clone(),
        ))
        .unwrap();
    let aes = pki::tls::client_config(pki::tls::default_provider(), roots, None).unwrap();
    let config = pki::tls::quic_client_config(&aes, tnc_client::tunnel::QUIC_ALPN).unwrap();
    let client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let r = client
        .connect_with(config, quic_addr, "vm-1")
        .unwrap()
        .await;
    assert!(r.is_err(), "an AES-only QUIC client got a channel");
}

#[tokio::test]
async fn a_peer_that_stalls_before_its_frames_is_cut_off() {
    let issuer = issuer(&[(Role::Terminal, "vm-1")]);
    let vm_id = credentials(&issuer, Role::Vm, 0x77);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Arc::new(
        Server::new(&vm_id, "vm-1")
            .unwrap()
            .with_admission_timeout(Duration::from_millis(300)),
    );
    tokio::spawn(server.run(listener, "127.0.0.1:9".parse().unwrap()));
    // Connects and sends nothing (no TLS, no frames): closed by the VM.
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("the VM kept a silent peer")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(started.elapsed() < Duration::from_secs(2));
}
