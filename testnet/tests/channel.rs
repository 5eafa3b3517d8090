//! The ShangMi channel between a terminal and a VM (first slice: TLS with
//! session certificates and the access ticket), with credentials issued by
//! the PDP's issuer as an allow issues them, and each way of getting in
//! without the right ones refused.

use pki::ca::Sm2Ca;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tnc_client::tunnel::{connect, ChannelIdentity, Refused, Server, TunnelError};
use tnc_proto::attestation::Role;
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
    ChannelIdentity { grant, key }
}

/// An echo service, and vm-1 serving channels to it; vm-1's address.
async fn vm(vm: ChannelIdentity) -> SocketAddr {
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Arc::new(Server::new(&vm, "vm-1").unwrap());
    tokio::spawn(server.run(listener, echo_addr));
    addr
}

#[tokio::test]
async fn a_terminal_with_its_credentials_reaches_the_service_behind_the_vm() {
    let issuer = issuer(&[(Role::Terminal, "vm-1")]);
    let addr = vm(credentials(&issuer, Role::Vm, 0x77)).await;
    let terminal = credentials(&issuer, Role::Terminal, 0x01);
    let mut channel = connect(&terminal, addr, "vm-1").await.unwrap();
    channel.write_all(b"GET / over SM4\n").await.unwrap();
    let mut back = [0u8; 15];
    channel.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"GET / over SM4\n");
}

#[tokio::test]
async fn tickets_for_another_vm_device_or_key_and_wrong_names_are_refused() {
    let issuer = issuer(&[(Role::Terminal, "vm-2")]);
    let addr = vm(credentials(&issuer, Role::Vm, 0x77)).await;

    // A ticket naming another VM.
    let terminal = credentials(&issuer, Role::Terminal, 0x01);
    let err = connect(&terminal, addr, "vm-1").await.err().unwrap();
    assert!(
        matches!(err, TunnelError::Refused(Refused::OtherVm)),
        "{err}"
    );

    // Another device's ticket with this device's certificate.
    let good = issuer_for_vm1(&issuer);
    let a = credentials(&good, Role::Terminal, 0x01);
    let b = credentials(&good, Role::Terminal, 0x02);
    let addr = vm(credentials(&good, Role::Vm, 0x77)).await;
    let stolen = ChannelIdentity {
        grant: tnc_proto::credential::Grant {
            ticket: b.grant.ticket.clone(),
            ..a.grant.clone()
        },
        key: a.key,
    };
    let err = connect(&stolen, addr, "vm-1").await.err().unwrap();
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
    let err = connect(&resigned, addr, "vm-1").await.err().unwrap();
    assert!(
        matches!(err, TunnelError::Refused(Refused::BadTicket)),
        "{err}"
    );

    // The VM's certificate does not carry another name: a terminal asking
    // for vm-2 at vm-1's address gets no channel.
    let c = credentials(&good, Role::Terminal, 0x03);
    let err = connect(&c, addr, "vm-2").await.err().unwrap();
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
    // A standard (AES-only) TLS client gets no handshake from the VM.
    let addr = vm(vm_id).await;
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
