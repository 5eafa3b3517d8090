//! The gateway's admission rules on loopback, without a PDP (tickets made
//! with a session CA of the test's own; the "VM" is an echo service, since
//! the gateway relays bytes it cannot read): a good ticket is relayed;
//! every bad one is refused with its code and a connection that says
//! nothing is cut; a revocation cuts a live connection; limits, idle
//! connections, an unreachable VM, and a gateway that never heard its PDP.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tnc_gateway::config::Limits;
use tnc_gateway::gate::Gateway;
use tnc_gateway::revocation::Revoked;
use tnc_proto::gateway::{Admission, Refusal};
use tnc_proto::revocation::RevokedTicket;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn ca() -> pki::ca::Sm2Ca {
    pki::ca::Sm2Ca::create(
        "test session CA",
        Duration::from_secs(86_400),
        std::time::SystemTime::now(),
    )
    .unwrap()
}

/// A ticket for `vms`, valid from `nbf` to `exp`, id `id`, bound to a
/// certificate whose SHA-256 is `[id; 32]`.
fn ticket(ca: &pki::ca::Sm2Ca, vms: &[&str], nbf: i64, exp: i64, id: u8) -> Vec<u8> {
    use pki::ticket::{Claims, Justification, Tier, TrustVector};
    let claims = Claims {
        id: vec![id; 16],
        issuer: "test".into(),
        device: format!("{id:02x}").repeat(32),
        user: None,
        role: "terminal".into(),
        certificate_sha256: vec![id; 32],
        vms: vms.iter().map(|v| v.to_string()).collect(),
        issued_at: nbf,
        not_before: nbf,
        expires: exp,
        justification: Justification {
            attestation: 1,
            verdict: "allow".into(),
            policy_version: 1,
            at: nbf,
        },
        trust: TrustVector {
            hardware: Tier::Affirming,
            boot: Tier::Affirming,
            kernel: Tier::Affirming,
            applications: Tier::Affirming,
        },
    };
    pki::ticket::issue(&claims, ca.key()).unwrap()
}

async fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A port nothing listens on.
async fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

struct Bed {
    ca: pki::ca::Sm2Ca,
    revoked: Arc<Revoked>,
    gateway: Arc<Gateway>,
    addr: SocketAddr,
}

async fn bed(limits: Limits) -> Bed {
    let ca = ca();
    let vms: BTreeMap<String, SocketAddr> = [
        ("vm-1".to_string(), echo().await),
        ("vm-2".to_string(), dead_port().await),
    ]
    .into();
    let revoked = Revoked::new();
    let gateway =
        Arc::new(Gateway::new(ca.certificate_der(), vms, limits, revoked.clone()).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let g = gateway.clone();
    tokio::spawn(async move {
        // Never stopped: the test's runtime ends it.
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        g.run(listener, stopped).await
    });
    Bed {
        ca,
        revoked,
        gateway,
        addr,
    }
}

fn open_limits() -> Limits {
    Limits {
        per_ticket: 1,
        first_frame_secs: 1,
        idle_secs: 3,
        fail_open: true,
        ..Limits::default()
    }
}

/// Connects and asks for `vm` with `ticket`: the stream once admitted, or
/// the refusal.
async fn ask(addr: SocketAddr, vm: &str, ticket: &[u8]) -> Result<TcpStream, Refusal> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let frame = Admission {
        vm: vm.into(),
        ticket: ticket.to_vec(),
    }
    .encode()
    .unwrap();
    s.write_all(&frame).await.unwrap();
    let code = s.read_u8().await.unwrap();
    match code {
        0 => Ok(s),
        c => Err(Refusal::from_code(c)),
    }
}

#[tokio::test]
async fn a_good_ticket_is_relayed_and_every_bad_one_refused_with_its_code() {
    let b = bed(open_limits()).await;
    let t = now();
    let good = ticket(&b.ca, &["vm-1", "vm-2"], t - 10, t + 3600, 1);
    let mut s = ask(b.addr, "vm-1", &good).await.unwrap();
    s.write_all(b"through").await.unwrap();
    let mut back = [0u8; 7];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"through");
    assert_eq!(b.gateway.carried(), 1);

    // The same ticket again while the first is open: one per ticket here.
    assert_eq!(ask(b.addr, "vm-1", &good).await.err(), Some(Refusal::Busy));
    // Signed by another CA (a forger's PDP key).
    let forged = ticket(&ca(), &["vm-1"], t - 10, t + 3600, 2);
    assert_eq!(
        ask(b.addr, "vm-1", &forged).await.err(),
        Some(Refusal::BadTicket)
    );
    // A ticket with one byte changed.
    let mut tampered = ticket(&b.ca, &["vm-1"], t - 10, t + 3600, 3);
    let at = tampered.len() / 2;
    tampered[at] ^= 1;
    assert_eq!(
        ask(b.addr, "vm-1", &tampered).await.err(),
        Some(Refusal::BadTicket)
    );
    // Expired, and not yet valid.
    let expired = ticket(&b.ca, &["vm-1"], t - 7200, t - 3600, 4);
    assert_eq!(
        ask(b.addr, "vm-1", &expired).await.err(),
        Some(Refusal::Expired)
    );
    let early = ticket(&b.ca, &["vm-1"], t + 3600, t + 7200, 5);
    assert_eq!(
        ask(b.addr, "vm-1", &early).await.err(),
        Some(Refusal::Expired)
    );
    // Another VM than the ticket names; a VM the gateway does not know.
    let only_1 = ticket(&b.ca, &["vm-1"], t - 10, t + 3600, 6);
    assert_eq!(
        ask(b.addr, "vm-2", &only_1).await.err(),
        Some(Refusal::NotForVm)
    );
    let vm9 = ticket(&b.ca, &["vm-9"], t - 10, t + 3600, 7);
    assert_eq!(
        ask(b.addr, "vm-9", &vm9).await.err(),
        Some(Refusal::UnknownVm)
    );
    // A VM that does not answer.
    let to_2 = ticket(&b.ca, &["vm-2"], t - 10, t + 3600, 8);
    assert_eq!(
        ask(b.addr, "vm-2", &to_2).await.err(),
        Some(Refusal::Unreachable)
    );
    // Bytes that are no admission.
    let mut s2 = TcpStream::connect(b.addr).await.unwrap();
    s2.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    assert_eq!(s2.read_u8().await.unwrap(), Refusal::Malformed as u8);
    // None of the refused ones holds a slot.
    assert_eq!(b.gateway.carried(), 1);
    drop(s);
}

#[tokio::test]
async fn a_revocation_cuts_a_live_connection_and_refuses_the_ticket_after() {
    let b = bed(Limits {
        per_ticket: 4,
        ..open_limits()
    })
    .await;
    let t = now();
    let good = ticket(&b.ca, &["vm-1"], t - 10, t + 3600, 1);
    let other = ticket(&b.ca, &["vm-1"], t - 10, t + 3600, 2);
    let mut s = ask(b.addr, "vm-1", &good).await.unwrap();
    let mut s_other = ask(b.addr, "vm-1", &other).await.unwrap();
    s.write_all(b"x").await.unwrap();
    assert_eq!(s.read_u8().await.unwrap(), b'x');
    let revoked_at = Instant::now();
    let cut = revoke_ticket_1(&b.revoked, t);
    assert_eq!(cut, 1);
    // The terminal sees its connection end.
    let mut rest = Vec::new();
    // Closed (end of stream or reset), within a second.
    let _closed = tokio::time::timeout(Duration::from_secs(1), s.read_to_end(&mut rest))
        .await
        .expect("not cut within 1 s");
    assert!(rest.is_empty());
    let latency = revoked_at.elapsed();
    assert!(latency < Duration::from_secs(1), "{latency:?}");
    // The other ticket's connection stays.
    s_other.write_all(b"y").await.unwrap();
    assert_eq!(s_other.read_u8().await.unwrap(), b'y');
    // And the revoked ticket gets no new connection.
    assert_eq!(
        ask(b.addr, "vm-1", &good).await.err(),
        Some(Refusal::Revoked)
    );
    eprintln!("revocation to connection closed at the gateway: {latency:?}");
}

#[tokio::test]
async fn a_terminal_that_stops_reading_is_cut_on_revocation_all_the_same() {
    let b = bed(Limits {
        idle_secs: 30,
        ..open_limits()
    })
    .await;
    let t = now();
    let good = ticket(&b.ca, &["vm-1"], t - 10, t + 3600, 1);
    let s = ask(b.addr, "vm-1", &good).await.unwrap();
    // It sends and never reads: the VM's echo fills the buffers back to
    // it, and the gateway's write to it waits.
    let (_r, mut w) = s.into_split();
    tokio::spawn(async move {
        let chunk = vec![0x5a; 64 * 1024];
        while w.write_all(&chunk).await.is_ok() {}
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.gateway.carried(), 1);
    let revoked_at = Instant::now();
    revoke_ticket_1(&b.revoked, t);
    while b.gateway.carried() > 0 {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "a connection whose terminal does not read was not cut within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn connections_still_without_an_admission_count_in_the_limits() {
    let b = bed(Limits {
        per_source: 2,
        first_frame_secs: 2,
        ..open_limits()
    })
    .await;
    let t = now();
    let good = ticket(&b.ca, &["vm-1"], t - 10, t + 3600, 1);
    // Two connections that say nothing hold this source's share.
    let silent_1 = TcpStream::connect(b.addr).await.unwrap();
    let silent_2 = TcpStream::connect(b.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(b.gateway.carried(), 2);
    assert_eq!(
        ask(b.addr, "vm-1", &good).await.err(),
        Some(Refusal::Busy),
        "a third from the same source is refused at once"
    );
    // One goes: room for one.
    drop(silent_1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut s = ask(b.addr, "vm-1", &good).await.unwrap();
    s.write_all(b"z").await.unwrap();
    assert_eq!(s.read_u8().await.unwrap(), b'z');
    drop(silent_2);
}

#[tokio::test]
async fn silent_peers_and_idle_connections_are_cut() {
    let b = bed(open_limits()).await;
    // Says nothing: cut after first_frame_secs (1 s) without an answer.
    let mut s = TcpStream::connect(b.addr).await.unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf))
        .await
        .expect("a silent peer was kept")
        .unwrap();
    assert!(buf.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900));
    // Admitted, then silent both ways for idle_secs (3 s): cut.
    let t = now();
    let good = ticket(&b.ca, &["vm-1"], t - 10, t + 3600, 1);
    let mut s = ask(b.addr, "vm-1", &good).await.unwrap();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(6), s.read_to_end(&mut buf))
        .await
        .expect("an idle connection was kept")
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(2900));
    assert_eq!(b.gateway.carried(), 0);
}

#[tokio::test]
async fn a_gateway_that_never_heard_its_pdp_admits_nobody() {
    let b = bed(Limits {
        fail_open: false,
        ..open_limits()
    })
    .await;
    let t = now();
    let good = ticket(&b.ca, &["vm-1"], t - 10, t + 3600, 1);
    assert!(!b.gateway.available());
    assert_eq!(
        ask(b.addr, "vm-1", &good).await.err(),
        Some(Refusal::Unavailable)
    );
}

/// A PDP that takes the subscription and then says nothing (gone without
/// closing the stream): the subscriber gives the stream up after its
/// silence limit instead of waiting forever, so it can go on with the next
/// PDP.
#[tokio::test]
async fn a_silent_revocation_stream_is_given_up() {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let ca = ca();
    let leaf = |name: &str, usage| {
        let key = pki::ca::Sm2Key::generate().unwrap();
        let cert = ca
            .issue(
                &key.public_key(),
                &pki::ca::LeafSpec {
                    common_name: name.into(),
                    subject_extra: vec![(pki::ca::NameAttr::OrganizationalUnit, "gateway".into())],
                    dns_names: vec![name.into()],
                    ips: Vec::new(),
                    usage,
                    lifetime: Duration::from_secs(3600),
                },
                std::time::SystemTime::now(),
            )
            .unwrap();
        let der = pki::ca::pem_or_der(key.to_pem().unwrap().as_bytes()).unwrap();
        Arc::new(
            pki::tls::OneKey::load(
                &pki::tls::shangmi::strict_provider(),
                vec![CertificateDer::from(cert)],
                PrivateKeyDer::Pkcs8(der.into()),
            )
            .unwrap(),
        )
    };
    let server_key = leaf("tnc-pdp", pki::ca::Usage::Server);
    let mut tls =
        rustls::ServerConfig::builder_with_provider(Arc::new(pki::tls::shangmi::strict_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(server_key);
    tls.alpn_protocols = vec![tnc_proto::revocation::ALPN.to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut s = acceptor.accept(tcp).await.unwrap();
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf).await; // the subscribe frame
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let mut sub = tnc_gateway::revocation::Subscription::new(
        at,
        "tnc-pdp",
        ca.certificate_der(),
        leaf("gw-1", pki::ca::Usage::Client),
    )
    .unwrap();
    sub.silence = Duration::from_millis(400);
    let set = Revoked::new();
    let started = Instant::now();
    let err = tokio::time::timeout(
        Duration::from_secs(5),
        tnc_gateway::revocation::run_once(&sub, &set, &|_| {}),
    )
    .await
    .expect("the silent stream was kept")
    .unwrap_err();
    assert!(err.contains("nothing from the PDP"), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(400));
}

/// Revokes the ticket `ticket(.., 1)` made (id 1 x 16) at `t`; how many
/// connections it cut.
fn revoke_ticket_1(revoked: &Revoked, t: i64) -> usize {
    revoked.apply(
        &RevokedTicket {
            seq: 1,
            at: t,
            device: "01".repeat(32),
            ticket: vec![1; 16],
            certificate_sha256: vec![1; 32],
            not_after: t + 3600,
            reason: "isolate: test".into(),
        },
        t,
    )
}
