//! A serving VM's control session on the PDP (software AKs, no swtpm): the
//! VM's pairings reach its newest session, and an older session of the same
//! VM (a VM that restarted `serve` while the PDP never saw the old
//! connection end) is closed by the PDP rather than kept.

use std::sync::Arc;
use std::time::Duration;
use testnet::e2e::{soft_device, soft_device_id, write_host_files, PdpOptions, TestPdp};
use tnc_client::agent::Agent;
use tnc_client::pairing::{serve, Advertise, ConnectOptions, ServeOptions};
use tnc_proto::admin as api;
use tnc_proto::attestation::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_control_session_supersedes_the_older_one() {
    let Pairable {
        pdp,
        vm,
        terminal,
        dir,
        os,
        target,
    } = pairable("control-sessions").await;
    let echo_addr = testnet::e2e::echo_service().await.unwrap();

    let mut sessions = Vec::new();
    for _ in 0..2 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let advertise = Advertise {
            tcp: listener.local_addr().unwrap().to_string(),
            quic: None,
        };
        let key = tnc_client::channel::ChannelKey::load_or_create(&dir.join("vm")).unwrap();
        let mut collector = vm();
        collector.host = Some("hv-7".parse().unwrap());
        let s = serve(
            &target,
            Agent::with_collector(os.clone(), Box::new(collector)),
            key,
            ServeOptions {
                name: Some("vm-1".into()),
                deadline: Duration::from_secs(30),
                ..ServeOptions::new(advertise)
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(s.server.clone().run(listener, echo_addr));
        sessions.push(s);
    }
    let newer = sessions.pop().unwrap();
    let mut older = sessions.pop().unwrap();
    // The PDP ends the older session (CLOSE), so its control task ends.
    let ended = tokio::time::timeout(Duration::from_secs(10), older.control.ended())
        .await
        .expect("the superseded control session was kept open");
    let _ = ended;
    assert!(!newer.control.is_finished());

    // A terminal's pairing reaches the newer session's server.
    let key = tnc_client::channel::ChannelKey::load_or_create(&dir.join("terminal")).unwrap();
    let opened = tnc_client::pairing::connect(
        &target,
        Agent::with_collector(os.clone(), Box::new(terminal())),
        key,
        ConnectOptions::new("vm-1"),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut s = opened.stream;
    s.write_all(b"x").await.unwrap();
    assert_eq!(s.read_u8().await.unwrap(), b'x');

    // The operator's view of it through the admin API.
    let admin = pdp
        .admin_client("ops", tnc_proto::admin::AdminRole::ReadWrite)
        .unwrap();
    let (vm_id, terminal_id) = (soft_device_id("vm"), soft_device_id("terminal"));
    // The VM serving (its newer session only) and the pairing, no key.
    let pairings: api::Pairings = admin.get("/v1/pairings").await.unwrap();
    assert_eq!(pairings.serving.len(), 1, "{pairings:?}");
    assert_eq!(
        (
            pairings.serving[0].name.as_str(),
            pairings.serving[0].device.as_str()
        ),
        ("vm-1", vm_id.as_str())
    );
    assert_eq!(pairings.recent.len(), 1, "{pairings:?}");
    let p = &pairings.recent[0];
    assert_eq!(
        (p.vm.as_str(), p.terminal.as_str(), p.outcome.as_str()),
        ("vm-1", terminal_id.as_str(), "acknowledged")
    );
    assert_eq!(p.id.as_ref().map(String::len), Some(32));
    // The open sessions: the VM's control session, decided, with the host
    // its Hello named; the device list shows the host too.
    let sessions: Vec<api::Session> = admin.get("/v1/sessions").await.unwrap();
    let control = sessions
        .iter()
        .find(|x| x.device.as_deref() == Some(vm_id.as_str()))
        .unwrap_or_else(|| panic!("no session of the VM in {sessions:?}"));
    assert_eq!(
        (
            control.role.as_deref(),
            control.verdict.as_deref(),
            control.transport.as_str()
        ),
        (Some("vm"), Some("allow"), "tcp")
    );
    let vm_device: api::DeviceDetail = admin.get(&format!("/v1/devices/{vm_id}")).await.unwrap();
    assert_eq!(vm_device.device.host.as_deref(), Some("hv-7"));
    assert_eq!(vm_device.device.drift, 0);
    // Credentials: two VM sessions and the terminal each got one.
    let all: Vec<api::Credential> = admin.get("/v1/credentials").await.unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    let mine = format!("/v1/credentials?active=true&device={}", &terminal_id[..16]);
    let active: Vec<api::Credential> = admin.get(&mine).await.unwrap();
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0].device, terminal_id);
    assert_eq!(active[0].revoked, None);
    let _: api::ActionResult = admin
        .post(
            &format!("/v1/devices/{terminal_id}/revoke"),
            &api::RevokeRequest {
                reason: "test".into(),
            },
        )
        .await
        .unwrap();
    assert!(admin
        .get::<Vec<api::Credential>>(&mine)
        .await
        .unwrap()
        .is_empty());
    let revoked: Vec<api::Credential> = admin
        .get(&format!("/v1/credentials?device={terminal_id}"))
        .await
        .unwrap();
    assert!(revoked[0].revoked.is_some(), "{revoked:?}");
    // Bad filters: 400 and 404 with what was wrong.
    for (path, status) in [
        ("/v1/credentials?active=maybe", 400),
        ("/v1/credentials?limit=0", 400),
        ("/v1/credentials?colour=red", 400),
        ("/v1/credentials?device=ffffffffffffffff", 404),
    ] {
        let answer = admin.send(hyper::Method::GET, path, None).await.unwrap();
        assert_eq!(answer.status(), status, "{path}");
    }
    newer.control.abort();
    pdp.stop().await.unwrap();
}

/// A VM (or gateway) that takes the channel's connection and then says
/// nothing cannot hold the terminal: opening the channel times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_that_never_answers_times_out() {
    let Pairable {
        pdp,
        vm,
        terminal,
        dir,
        os,
        target,
    } = pairable("channel-timeout").await;
    let (served, _) = testnet::e2e::serve_in_thread(
        &target,
        Agent::with_collector(os.clone(), Box::new(vm())),
        tnc_client::channel::ChannelKey::load_or_create(&dir.join("vm")).unwrap(),
        "vm-1",
        testnet::e2e::echo_service().await.unwrap(),
        None,
    )
    .await
    .unwrap();
    // Accepts, holds, never answers the channel's TLS: the pairing is
    // real, the channel goes there instead of to the VM.
    let (hung_addr, holder) = testnet::e2e::silent_listener().await.unwrap();
    let started = std::time::Instant::now();
    let failed = tnc_client::pairing::connect(
        &target,
        Agent::with_collector(os.clone(), Box::new(terminal())),
        tnc_client::channel::ChannelKey::load_or_create(&dir.join("terminal")).unwrap(),
        ConnectOptions {
            to: Some(hung_addr),
            channel_timeout: Duration::from_secs(1),
            ..ConnectOptions::new("vm-1")
        },
    )
    .await;
    let Err(e) = failed else {
        panic!("a channel to a peer that never answers opened")
    };
    assert!(
        matches!(
            e,
            tnc_client::pairing::Failure::Channel(tnc_client::tunnel::TunnelError::Timeout(1))
        ),
        "{e}"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    holder.abort();
    served.stop();
    pdp.stop().await.unwrap();
}

/// A PDP that pairs `vm-1` (a software VM) with a software terminal, both
/// enrolled, and what their agents need.
struct Pairable<V, T> {
    pdp: TestPdp,
    vm: V,
    terminal: T,
    dir: std::path::PathBuf,
    os: tnc_client::os::OsFacts,
    target: tnc_client::pairing::Pdp,
}

async fn pairable(
    name: &str,
) -> Pairable<
    impl Fn() -> testnet::soft_ak::SoftCollector,
    impl Fn() -> testnet::soft_ak::SoftCollector,
> {
    let profile = testnet::e2e::profile("good-terminal").unwrap();
    let measurements = Arc::new(profile.measure().unwrap());
    let pdp = TestPdp::start_raw(
        &[(Role::Terminal, &profile), (Role::Vm, &profile)],
        (Vec::new(), Vec::new()),
        PdpOptions {
            issue_credentials: true,
            vm_names: [(soft_device_id("vm"), "vm-1".to_string())].into(),
            admin: true,
            ..PdpOptions::default()
        },
    )
    .await
    .unwrap();
    let vm = soft_device(&pdp, Role::Vm, "vm", &measurements)
        .await
        .unwrap();
    let terminal = soft_device(&pdp, Role::Terminal, "terminal", &measurements)
        .await
        .unwrap();
    let dir = testnet::swtpm::scratch_dir(name).unwrap();
    let os = tnc_client::os::OsFacts::collect(&write_host_files(&dir).unwrap(), false).unwrap();
    let target = pdp.target(pki::tls::Suites::Standard).unwrap();
    Pairable {
        pdp,
        vm,
        terminal,
        dir,
        os,
        target,
    }
}

/// Kept-open sessions hold no session slot between rounds: with
/// `max_sessions = 1`, a second endpoint is decided while the first stays
/// open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_sessions_leave_the_session_slots_to_new_exchanges() {
    let profile = testnet::e2e::profile("good-terminal").unwrap();
    let measurements = Arc::new(profile.measure().unwrap());
    let pdp = TestPdp::start_raw(
        &[(Role::Terminal, &profile)],
        (Vec::new(), Vec::new()),
        PdpOptions {
            limits: tnc_server::config::Limits {
                max_sessions: 1,
                ..Default::default()
            },
            ..PdpOptions::default()
        },
    )
    .await
    .unwrap();
    let dir = testnet::swtpm::scratch_dir("kept-slots").unwrap();
    let os = tnc_client::os::OsFacts::collect(&write_host_files(&dir).unwrap(), false).unwrap();
    let target = pdp.target(pki::tls::Suites::Standard).unwrap();
    let mut kept = Vec::new();
    for name in ["terminal-1", "terminal-2", "terminal-3"] {
        let device = soft_device(&pdp, Role::Terminal, name, &measurements)
            .await
            .unwrap();
        let (outcome, session) = tnc_client::pairing::KeptSession::open(
            std::slice::from_ref(&target),
            Agent::with_collector(os.clone(), Box::new(device())),
            None,
            Duration::from_secs(10),
            None,
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(outcome.allowed(), "{name}");
        kept.push(session);
    }
    assert!(kept.iter().all(|s| !s.is_finished()), "all three stay open");
    drop(kept);
    pdp.stop().await.unwrap();
}
