//! `testnet up --dir D`: the topology comes up, `D/topology.json` names what
//! the README says (the PDP's address and config, each endpoint's role,
//! config, profile and device, vm-1's serve address and service), a terminal
//! config from it reaches the service behind vm-1 through a pairing, and
//! SIGTERM stops everything and removes what `up` made.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn up_writes_the_topology_serves_vm1_and_cleans_up_on_sigterm() {
    let dir = testnet::swtpm::scratch_dir("up").unwrap().join("lab");
    let mut up = Command::new(env!("CARGO_BIN_EXE_testnet"))
        .args(["up", "--dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let topology = dir.join("topology.json");
    let start = Instant::now();
    while !topology.exists() {
        assert!(up.try_wait().unwrap().is_none(), "testnet up ended early");
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no topology.json"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(200));
    let t: serde_json::Value = serde_json::from_slice(&std::fs::read(&topology).unwrap()).unwrap();
    let pdp_config = t["pdp"]["config"].as_str().unwrap();
    assert!(std::path::Path::new(pdp_config).exists());
    let pdp: std::net::SocketAddr = t["pdp"]["address"].as_str().unwrap().parse().unwrap();
    let endpoints = &t["endpoints"];
    for (name, role, profile) in [
        ("terminal-1", "terminal", "good-terminal"),
        ("terminal-2", "terminal", "tampered-kernel"),
        ("vm-1", "vm", "good-vm"),
    ] {
        let e = &endpoints[name];
        assert_eq!(e["role"], role, "{e}");
        assert_eq!(e["profile"], profile, "{e}");
        assert!(std::path::Path::new(e["config"].as_str().unwrap()).exists());
        assert_eq!(e["device"].as_str().map(str::len), Some(64), "{e}");
    }
    let vm = &endpoints["vm-1"];
    let serve: std::net::SocketAddr = vm["serve"].as_str().unwrap().parse().unwrap();
    assert!(vm["service"].as_str().is_some());

    let gateway: std::net::SocketAddr = t["gateway"]["address"].as_str().unwrap().parse().unwrap();
    assert!(t["pdp"]["revocations"].as_str().is_some());

    // The admin API with the lab's admin certificate, as tnc-monitor
    // --topology takes it; the metrics listener.
    let admin = &t["admin"];
    let client = tnc_server::admin::client::AdminClient::new(
        admin["url"].as_str().unwrap(),
        admin["ca"].as_str().unwrap().as_ref(),
        Some((
            admin["certificate"].as_str().unwrap().as_ref(),
            admin["key"].as_str().unwrap().as_ref(),
        )),
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let devices: Vec<tnc_proto::admin::Device> =
        runtime.block_on(client.get("/v1/devices")).unwrap();
    assert!(devices.len() >= 2, "{devices:?}");
    // Each names the host it runs on (the monitor groups VMs by it).
    let hosts: Vec<Option<&str>> = devices.iter().map(|d| d.host.as_deref()).collect();
    assert!(hosts.contains(&Some("terminal-1")), "{devices:?}");
    let me: tnc_proto::admin::WhoAmI = runtime.block_on(client.get("/v1/whoami")).unwrap();
    assert_eq!(me.role, tnc_proto::admin::AdminRole::ReadWrite);
    let metrics: std::net::SocketAddr = t["metrics"].as_str().unwrap().parse().unwrap();
    let (_, text) = runtime
        .block_on(testnet::e2e::scrape_metrics(metrics))
        .unwrap();
    assert!(text.contains("tnc_sessions_open"), "{text}");

    // terminal-1, as `tnc-client connect` does it, from its config: to
    // vm-1 directly, and through the gateway.
    let config = tnc_client::config::ClientConfig::load(
        endpoints["terminal-1"]["config"].as_str().unwrap().as_ref(),
    )
    .unwrap();
    for via in [None, Some(gateway)] {
        let answer = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let os = tnc_client::os::OsFacts::collect(&config.os_paths(), false).unwrap();
                let agent = tnc_client::agent::Agent::new(
                    os,
                    tnc_client::attest::AttestationCollector::new(config.attestation()),
                );
                let state = config.path(&config.state_dir);
                let key = tnc_client::channel::ChannelKey::load_or_create(&state).unwrap();
                let target = tnc_client::pairing::Pdp {
                    addr: pdp,
                    server_name: config.server_name(),
                    tls: tnc_client::agent::tls_client_config_for(
                        &config.path(&config.ca),
                        None,
                        config.suites,
                    )
                    .unwrap(),
                    quic: config.transport.as_deref() == Some("quic"),
                };
                let options = tnc_client::pairing::ConnectOptions {
                    via,
                    ..tnc_client::pairing::ConnectOptions::new("vm-1")
                };
                let opened = tnc_client::pairing::connect(&target, agent, key, options)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(opened.address, via.unwrap_or(serve));
                let mut s = opened.stream;
                s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
                let mut answer = String::new();
                s.read_to_string(&mut answer).await.unwrap();
                answer
            });
        assert!(
            answer.ends_with("hello from the web service behind vm-1\n"),
            "{answer:?}"
        );
    }

    let status = Command::new("kill")
        .args(["-TERM", &up.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let exit = loop {
        if let Some(s) = up.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "up did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "{exit}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "left behind");
    assert!(!std::path::Path::new(endpoints["vm-1"]["config"].as_str().unwrap()).exists());
    assert!(
        std::net::TcpStream::connect(pdp).is_err(),
        "the PDP still listens"
    );
    assert!(
        std::net::TcpStream::connect(serve).is_err(),
        "vm-1 still serves"
    );
    assert!(
        std::net::TcpStream::connect(gateway).is_err(),
        "the gateway still listens"
    );
}
