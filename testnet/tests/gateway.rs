//! The network access gateway and the revocation stream end to end (issue
//! 13, items 1 and 3), on loopback with software AKs and keys: a PDP issuing
//! credentials with its revocation listener; vm-1 serving (subscribed with
//! its channel certificate); a gateway enrolled with a one-time token;
//! terminal-1 reaching vm-1 through the gateway, terminal-2 directly. A
//! revocation stored on the PDP cuts each channel within a second, at the
//! gateway and at the VM; the subscribers' acknowledgements are recorded.
//! A gateway whose PDP is gone admits nobody after its grace period and
//! catches up on reconnecting; subscribers with the wrong certificates and
//! forged or replayed acknowledgements are refused.

use std::sync::Arc;
use std::time::{Duration, Instant};
use testnet::e2e::{soft_device, soft_device_id, write_host_files, PdpOptions, TestPdp};
use tnc_client::agent::Agent;
use tnc_client::pairing::{ConnectOptions, RevocationsAt};
use tnc_gateway::config::GatewayConfig;
use tnc_proto::attestation::Role;
use tnc_proto::revocation::{Frame, FrameReader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn unix_now() -> u64 {
    tnc_server::pdp::system_clock()
}

fn id_of(name: &str) -> [u8; 32] {
    policy::digest::from_hex(&soft_device_id(name))
        .unwrap()
        .try_into()
        .unwrap()
}

fn continuous() -> tnc_server::config::Reassessment {
    tnc_server::config::Reassessment {
        poll_ms: 50,
        ..Default::default()
    }
}

/// Writes `gateway.toml` in `dir` for gateway `gw-1` of `pdp`, reaching
/// vm-1 at `vm`; enrols it with a token the PDP's store makes.
async fn enrolled_gateway(
    dir: &std::path::Path,
    pdp: &TestPdp,
    revocations: std::net::SocketAddr,
    vm: std::net::SocketAddr,
) -> GatewayConfig {
    std::fs::write(dir.join("session-ca.pem"), pdp.session_ca().unwrap().0).unwrap();
    let path = dir.join("gateway.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\nlisten_quic = \"127.0.0.1:0\"\n\
             [pdp]\nrevocations = \"{revocations}\"\n\
             [identity]\nname = \"gw-1\"\nca = \"session-ca.pem\"\n\
             [vms]\nvm-1 = \"{vm}\"\n\
             [limits]\npdp_grace_secs = 2\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    let config = GatewayConfig::load(&path).unwrap();
    let now = unix_now();
    let token = pdp
        .store
        .new_enrolment_token("gw-1", 600, now)
        .await
        .unwrap();
    let token = token.as_str();
    // A wrong token is refused and leaves the right one usable.
    let wrong = tnc_gateway::enrol::enrol(&config, "0000").await;
    assert!(
        matches!(wrong, Err(tnc_gateway::enrol::EnrolError::Refused(ref m)) if m.contains("no such token")),
        "{wrong:?}"
    );
    let done = tnc_gateway::enrol::enrol(&config, token).await.unwrap();
    assert!(done.not_after > now as i64);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("gateway.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the gateway's key is {mode:o}");
    // Used up.
    let again = tnc_gateway::enrol::enrol(&config, token).await;
    assert!(
        matches!(again, Err(tnc_gateway::enrol::EnrolError::Refused(_))),
        "{again:?}"
    );
    config
}

async fn until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `s` ends (closed or reset); how long it took.
async fn ended<S: tokio::io::AsyncRead + Unpin>(s: &mut S, within: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(within, s.read(&mut buf)).await {
            Err(_) => panic!("the channel was not cut within {within:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

async fn echoes<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(s: &mut S) {
    s.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_cuts_channels_at_the_gateway_and_at_the_vm_within_a_second() {
    let profile = testnet::e2e::profile("good-terminal").unwrap();
    let measurements = Arc::new(profile.measure().unwrap());
    let pdp = TestPdp::start_raw(
        &[(Role::Terminal, &profile), (Role::Vm, &profile)],
        (Vec::new(), Vec::new()),
        PdpOptions {
            issue_credentials: true,
            vm_names: [(soft_device_id("vm"), "vm-1".to_string())].into(),
            revocations: Some("127.0.0.1:0".parse().unwrap()),
            reassessment: continuous(),
            metrics: true,
            ..PdpOptions::default()
        },
    )
    .await
    .unwrap();
    let revocations = pdp.revocations_addr.unwrap();
    let vm = soft_device(&pdp, Role::Vm, "vm", &measurements)
        .await
        .unwrap();
    let t1 = soft_device(&pdp, Role::Terminal, "terminal-1", &measurements)
        .await
        .unwrap();
    let t2 = soft_device(&pdp, Role::Terminal, "terminal-2", &measurements)
        .await
        .unwrap();
    let t3 = soft_device(&pdp, Role::Terminal, "terminal-3", &measurements)
        .await
        .unwrap();
    let dir = testnet::swtpm::scratch_dir("gateway").unwrap();
    let os = tnc_client::os::OsFacts::collect(&write_host_files(&dir).unwrap(), false).unwrap();
    let target = pdp.target(pki::tls::Suites::Standard).unwrap();
    let echo = testnet::e2e::echo_service().await.unwrap();
    let (serving, _) = testnet::e2e::serve_in_thread(
        &target,
        Agent::with_collector(os.clone(), Box::new(vm())),
        tnc_client::channel::ChannelKey::load_or_create(&dir.join("vm")).unwrap(),
        "vm-1",
        echo,
        Some(RevocationsAt {
            addr: revocations,
            server_name: "tnc-pdp".into(),
        }),
    )
    .await
    .unwrap();
    let config = enrolled_gateway(&dir, &pdp, revocations, serving.addr).await;
    let gw = tnc_gateway::gate::start(&config).await.unwrap();
    until("the gateway hears its PDP", Duration::from_secs(5), || {
        gw.gateway.available()
    })
    .await;

    // terminal-1 through the gateway, terminal-2 straight to vm-1.
    let mut one = tnc_client::pairing::connect(
        &target,
        Agent::with_collector(os.clone(), Box::new(t1())),
        tnc_client::channel::ChannelKey::load_or_create(&dir.join("t1")).unwrap(),
        ConnectOptions {
            via: Some(gw.addr),
            ..ConnectOptions::new("vm-1")
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(one.address, gw.addr);
    echoes(&mut one.stream).await;
    assert_eq!(gw.gateway.carried(), 1);
    let mut two = tnc_client::pairing::connect(
        &target,
        Agent::with_collector(os.clone(), Box::new(t2())),
        tnc_client::channel::ChannelKey::load_or_create(&dir.join("t2")).unwrap(),
        ConnectOptions::new("vm-1"),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    echoes(&mut two.stream).await;
    // terminal-3 through the gateway over QUIC: the gateway's enrolled
    // certificate outside, the channel's TLS end to end inside.
    let quic_gw = gw.quic_addr.unwrap();
    let quic_options = |name: &str| ConnectOptions {
        via: Some(quic_gw),
        via_name: Some(name.into()),
        transport: tnc_client::pairing::Transport::Quic,
        ..ConnectOptions::new("vm-1")
    };
    let wrong = tnc_client::pairing::connect(
        &target,
        Agent::with_collector(os.clone(), Box::new(t3())),
        tnc_client::channel::ChannelKey::load_or_create(&dir.join("t3")).unwrap(),
        quic_options("gw-9"),
    )
    .await;
    assert!(
        matches!(wrong, Err(ref e) if e.to_string().contains("QUIC to the gateway")),
        "a gateway certificate of another name: {:?}",
        wrong.as_ref().err()
    );
    let mut three = tnc_client::pairing::connect(
        &target,
        Agent::with_collector(os.clone(), Box::new(t3())),
        tnc_client::channel::ChannelKey::load_or_create(&dir.join("t3")).unwrap(),
        quic_options("gw-1"),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    echoes(&mut three.stream).await;
    assert_eq!(gw.gateway.carried(), 2);

    // The operator revokes terminal-1: stored, pushed, its channel cut.
    let started = Instant::now();
    let n = pdp
        .store
        .revoke_device(&id_of("terminal-1"), unix_now(), "operator: lost laptop")
        .await
        .unwrap();
    assert_eq!(n, 1);
    ended(&mut one.stream, Duration::from_secs(2)).await;
    let through_gateway = started.elapsed();
    until(
        "the gateway lets the connection go",
        Duration::from_secs(1),
        || gw.gateway.carried() == 1,
    )
    .await;
    // terminal-2's channel is untouched ...
    echoes(&mut two.stream).await;
    // ... until it is revoked too: the VM cuts it (no gateway on its path).
    let started = Instant::now();
    pdp.store
        .revoke_device(&id_of("terminal-2"), unix_now(), "operator: test")
        .await
        .unwrap();
    ended(&mut two.stream, Duration::from_secs(2)).await;
    let at_vm = started.elapsed();
    assert!(
        through_gateway < Duration::from_secs(1),
        "{through_gateway:?}"
    );
    assert!(at_vm < Duration::from_secs(1), "{at_vm:?}");
    // terminal-3's QUIC connection through the gateway, likewise.
    let started = Instant::now();
    pdp.store
        .revoke_device(&id_of("terminal-3"), unix_now(), "operator: test")
        .await
        .unwrap();
    ended(&mut three.stream, Duration::from_secs(2)).await;
    let over_quic = started.elapsed();
    assert!(over_quic < Duration::from_secs(1), "{over_quic:?}");

    // Both subscribers acknowledged the newest revocation, and the store
    // says so.
    let newest = pdp.store.last_revocation_seq().await.unwrap();
    let vm_id = soft_device_id("vm");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let subs = pdp.store.subscribers().await.unwrap();
        let acked = |name: &str| {
            subs.iter()
                .find(|(n, ..)| n == name)
                .map(|(_, role, seq, _)| (role.clone(), *seq))
        };
        if acked("gw-1") == Some(("gateway".into(), newest))
            && acked(&vm_id) == Some(("vm".into(), newest))
        {
            break;
        }
        assert!(Instant::now() < deadline, "acknowledgements: {subs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The revoked ticket gets no new connection at the gateway.
    let ticket = one.fresh.as_ref().unwrap().ticket.clone();
    let mut tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let refused = tnc_client::tunnel::through_gateway(&mut tcp, "vm-1", &ticket).await;
    assert!(
        matches!(
            refused,
            Err(tnc_client::tunnel::TunnelError::Gateway(
                tnc_proto::gateway::Refusal::Revoked
            ))
        ),
        "{refused:?}"
    );
    eprintln!(
        "revocation stored -> channel cut: through the gateway {through_gateway:?} (QUIC {over_quic:?}), at the VM {at_vm:?}"
    );
    // The gateway's metrics tell the same story: two connections relayed
    // (TCP and QUIC), both cut on revocation, the revoked ticket refused.
    let (_, gw_metrics) = testnet::e2e::scrape_metrics(gw.metrics_addr.unwrap())
        .await
        .unwrap();
    for line in [
        "tnc_gateway_admitted_total 2",
        "tnc_gateway_connections_ended_total{how=\"revoked\"} 2",
        "tnc_gateway_refused_total{reason=\"revoked\"} 1",
        "tnc_gateway_connections_open 0",
        "tnc_gateway_admitting 1",
        &format!("tnc_gateway_revoked_tickets {newest}"),
        &format!("tnc_gateway_revocation_seq {newest}"),
    ] {
        assert!(
            testnet::e2e::has_line(&gw_metrics, line),
            "{line} not in\n{gw_metrics}"
        );
    }
    // And the PDP timed the subscribers' acknowledgements: every
    // revocation, acknowledged by the gateway and by the VM.
    let (_, pdp_metrics) = testnet::e2e::scrape_metrics(pdp.metrics_addr.unwrap())
        .await
        .unwrap();
    assert!(
        testnet::e2e::has_line(
            &pdp_metrics,
            &format!("tnc_revocation_ack_seconds_count {}", 2 * newest)
        ),
        "{pdp_metrics}"
    );
    assert!(
        testnet::e2e::has_line(&pdp_metrics, &format!("tnc_revocations_newest {newest}")),
        "{pdp_metrics}"
    );
    gw.stop().await;
    serving.stop();
    pdp.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_without_its_pdp_fails_closed_and_catches_up_when_it_returns() {
    let store_dir = testnet::swtpm::scratch_dir("gateway-restart").unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let revocations = free.local_addr().unwrap();
    drop(free);
    let options = |session_ca| PdpOptions {
        issue_credentials: true,
        revocations: Some(revocations),
        reassessment: continuous(),
        store_dir: Some(store_dir.clone()),
        session_ca,
        ..PdpOptions::default()
    };
    let pdp = TestPdp::start_raw(&[], (Vec::new(), Vec::new()), options(None))
        .await
        .unwrap();
    let session_ca = pdp.session_ca();
    let dir = testnet::swtpm::scratch_dir("gateway-restart-gw").unwrap();
    let nowhere = "127.0.0.1:9".parse().unwrap();
    let config = enrolled_gateway(&dir, &pdp, revocations, nowhere).await;
    let gw = tnc_gateway::gate::start(&config).await.unwrap();
    until("the gateway hears its PDP", Duration::from_secs(5), || {
        gw.gateway.available()
    })
    .await;
    // A ticket to revoke later: as a decision records it.
    let device = testnet::e2e::held_ticket(&pdp.store, 0x42).await.unwrap();

    // The PDP goes away; after the grace period (2 s) nobody is admitted.
    pdp.stop().await.unwrap();
    let admission = || async {
        let mut tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        tnc_client::tunnel::through_gateway(&mut tcp, "vm-1", b"any ticket").await
    };
    let gone = Instant::now();
    until("the gateway fails closed", Duration::from_secs(5), || {
        !gw.gateway.available()
    })
    .await;
    assert!(gone.elapsed() >= Duration::from_millis(1500));
    let refused = admission().await;
    assert!(
        matches!(
            refused,
            Err(tnc_client::tunnel::TunnelError::Gateway(
                tnc_proto::gateway::Refusal::Unavailable
            ))
        ),
        "{refused:?}"
    );
    // A revocation decided while no PDP pushes (the operator's `device
    // revoke` on the store) ...
    let store =
        tnc_server::store::Store::open(&format!("sqlite://{}", store_dir.join("tnc.db").display()))
            .await
            .unwrap();
    assert_eq!(
        store
            .revoke_device(&device, unix_now(), "while away")
            .await
            .unwrap(),
        1
    );
    let seq = store.last_revocation_seq().await.unwrap();
    assert!(gw.revoked.last_seq() < seq);
    // ... reaches the gateway when a PDP is back on the store.
    let back = TestPdp::start_raw(&[], (Vec::new(), Vec::new()), options(session_ca))
        .await
        .unwrap();
    until("the gateway catches up", Duration::from_secs(10), || {
        gw.revoked.last_seq() == seq && gw.gateway.available()
    })
    .await;
    assert!(gw
        .revoked
        .check(&[0x42; 16], &[0x42; 32])
        .unwrap_err()
        .contains("while away"));
    gw.stop().await;
    back.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_with_the_wrong_certificate_or_forged_acknowledgements_are_refused() {
    let pdp = TestPdp::start_raw(
        &[],
        (Vec::new(), Vec::new()),
        PdpOptions {
            issue_credentials: true,
            revocations: Some("127.0.0.1:0".parse().unwrap()),
            reassessment: continuous(),
            ..PdpOptions::default()
        },
    )
    .await
    .unwrap();
    let at = pdp.revocations_addr.unwrap();
    let (ca_pem, key_pem) = pdp.session_ca().unwrap();
    let ca = pki::ca::Sm2Ca::from_pem(&ca_pem, &key_pem).unwrap();
    // A certificate with role `role` from `issuer`, as a subscriber's key.
    let subscriber = |issuer: &pki::ca::Sm2Ca, role: &str| {
        let key = pki::ca::Sm2Key::generate().unwrap();
        let cert = issuer
            .issue(
                &key.public_key(),
                &pki::ca::LeafSpec {
                    common_name: format!("a {role}"),
                    subject_extra: vec![(pki::ca::NameAttr::OrganizationalUnit, role.into())],
                    dns_names: Vec::new(),
                    ips: Vec::new(),
                    usage: pki::ca::Usage::Client,
                    lifetime: Duration::from_secs(3600),
                },
                std::time::SystemTime::now(),
            )
            .unwrap();
        let der = pki::ca::pem_or_der(key.to_pem().unwrap().as_bytes()).unwrap();
        let one = pki::tls::OneKey::load(
            &pki::tls::shangmi::strict_provider(),
            vec![rustls::pki_types::CertificateDer::from(cert)],
            rustls::pki_types::PrivateKeyDer::Pkcs8(der.into()),
        )
        .unwrap();
        tnc_gateway::revocation::Subscription::new(
            at,
            "tnc-pdp",
            ca.certificate_der(),
            Arc::new(one),
        )
        .unwrap()
    };
    let set = tnc_gateway::revocation::Revoked::new();
    let quiet = |_: tnc_gateway::revocation::Notice| {};
    // From another CA: the TLS handshake fails.
    let other = pki::ca::Sm2Ca::create(
        "another CA",
        Duration::from_secs(3600),
        std::time::SystemTime::now(),
    )
    .unwrap();
    let err = tokio::time::timeout(
        Duration::from_secs(5),
        tnc_gateway::revocation::run_once(&subscriber(&other, "gateway"), &set, &quiet),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(
        err.to_lowercase().contains("tls") || err.contains("reset") || err.contains("alert"),
        "{err}"
    );
    // The right CA but a terminal's role: refused by the PDP.
    let err = tokio::time::timeout(
        Duration::from_secs(5),
        tnc_gateway::revocation::run_once(&subscriber(&ca, "terminal"), &set, &quiet),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(err.contains("only gateways and VMs subscribe"), "{err}");

    // A gateway's own stream: revocations, then a replayed and a forged
    // acknowledgement.
    for n in [0x51u8, 0x52] {
        let device = testnet::e2e::held_ticket(&pdp.store, n).await.unwrap();
        pdp.store
            .revoke_device(&device, unix_now(), "test")
            .await
            .unwrap();
    }
    let newest = pdp.store.last_revocation_seq().await.unwrap();
    let sub = subscriber(&ca, "gateway");
    let tcp = tokio::net::TcpStream::connect(at).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(sub.tls.clone())
        .connect("tnc-pdp".try_into().unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(&Frame::Subscribe { after: 0 }.encode())
        .await
        .unwrap();
    let mut reader = FrameReader::default();
    let mut buf = vec![0u8; 8192];
    let mut next = async || loop {
        if let Some(f) = reader.next_frame().unwrap() {
            return Some(f);
        }
        let n = tls.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return None;
        }
        reader.push(&buf[..n]);
    };
    let mut seqs = Vec::new();
    while seqs.len() < 2 {
        match next().await {
            Some(Frame::Revoked(r)) => seqs.push(r.seq),
            Some(Frame::Heartbeat { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(*seqs.last().unwrap(), newest);
    let name = "a gateway";
    let acked = |store: Arc<tnc_server::store::Store>| async move {
        store
            .subscribers()
            .await
            .unwrap()
            .into_iter()
            .find(|(n, ..)| n == name)
            .map(|s| s.2)
    };
    tls.write_all(&Frame::Ack { seq: newest }.encode())
        .await
        .unwrap();
    until(
        "the acknowledgement is recorded",
        Duration::from_secs(3),
        || futures_lite_block(acked(pdp.store.clone())) == Some(newest),
    )
    .await;
    // Replayed: ignored, the record stays.
    tls.write_all(&Frame::Ack { seq: seqs[0] }.encode())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(acked(pdp.store.clone()).await, Some(newest));
    // Ahead of what was sent: an error frame, and the stream ends.
    tls.write_all(&Frame::Ack { seq: newest + 100 }.encode())
        .await
        .unwrap();
    let mut reader = FrameReader::default();
    let ended_with = loop {
        let n = tls.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            break None;
        }
        reader.push(&buf[..n]);
        let mut last = None;
        while let Some(f) = reader.next_frame().unwrap() {
            last = Some(f);
        }
        if let Some(Frame::Error { message }) = last {
            break Some(message);
        }
    };
    let why = ended_with.expect("an error frame before the end");
    assert!(why.contains("only up to"), "{why}");
    assert_eq!(acked(pdp.store.clone()).await, Some(newest));
    pdp.stop().await.unwrap();
}

/// Runs a future to completion from a synchronous check (the store's
/// query is quick; the test's runtime has two threads).
fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}
