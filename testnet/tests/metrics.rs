//! The PDP's Prometheus metrics after real sessions: a terminal that stays
//! logged in, a re-assessment the operator asks for through the admin API,
//! and the session's end, each read back from `GET /metrics` as
//! Prometheus would.

use std::sync::Arc;
use std::time::Duration;
use testnet::e2e::{soft_device, write_host_files, PdpOptions, TestPdp};
use tnc_client::agent::Agent;
use tnc_proto::admin::{self as api, AdminRole};
use tnc_proto::attestation::Role;

async fn scrape(addr: std::net::SocketAddr) -> (String, String) {
    testnet::e2e::scrape_metrics(addr).await.unwrap()
}

/// Scrapes until `line` shows (the metrics are updated as sessions go).
async fn until(addr: std::net::SocketAddr, line: &str) -> String {
    for _ in 0..100 {
        let (_, body) = scrape(addr).await;
        if body.lines().any(|l| l == line) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, body) = scrape(addr).await;
    panic!("{line:?} never showed; last scrape:\n{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_decisions_and_a_reassessment_show_in_the_metrics() {
    let profile = testnet::e2e::profile("good-terminal").unwrap();
    let measurements = Arc::new(profile.measure().unwrap());
    let pdp = TestPdp::start_raw(
        &[(Role::Terminal, &profile)],
        (Vec::new(), Vec::new()),
        PdpOptions {
            admin: true,
            metrics: true,
            reassessment: tnc_server::config::Reassessment {
                poll_ms: 100,
                ..Default::default()
            },
            ..PdpOptions::default()
        },
    )
    .await
    .unwrap();
    let metrics = pdp.metrics_addr.unwrap();

    let (head, body) = scrape(metrics).await;
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(body.contains("tnc_sessions_open 0"), "{body}");

    // A terminal logs in and stays.
    let dir = testnet::swtpm::scratch_dir("metrics-kept").unwrap();
    let os = tnc_client::os::OsFacts::collect(&write_host_files(&dir).unwrap(), false).unwrap();
    let device = soft_device(&pdp, Role::Terminal, "terminal", &measurements)
        .await
        .unwrap();
    let (outcome, session) = tnc_client::pairing::KeptSession::open(
        &[pdp.target(pki::tls::Suites::Standard).unwrap()],
        Agent::with_collector(os, Box::new(device())),
        None,
        Duration::from_secs(10),
        None,
        false,
    )
    .await
    .unwrap();
    assert!(outcome.allowed());
    let body = until(
        metrics,
        "tnc_decisions_total{verdict=\"allow\",role=\"terminal\",kind=\"first\"} 1",
    )
    .await;
    for line in [
        "tnc_sessions_open 1",
        "tnc_handshake_seconds_count 1",
        "tnc_appraisal_seconds_count 1",
        "tnc_devices{role=\"terminal\",verdict=\"allow\"} 1",
        "tnc_decisions_unrecorded_total 0",
    ] {
        assert!(body.lines().any(|l| l == line), "{line} not in\n{body}");
    }

    // The operator asks for a re-assessment through the admin API; the
    // event bus (the API's /v1/events) tells of it as it is decided.
    let mut events = pdp.events();
    let admin = pdp.admin_client("ops", AdminRole::ReadWrite).unwrap();
    let devices: Vec<api::Device> = admin.get("/v1/devices").await.unwrap();
    let _: api::ActionResult = admin
        .post(&format!("/v1/devices/{}/reassess", devices[0].device), &())
        .await
        .unwrap();
    let body = until(
        metrics,
        "tnc_decisions_total{verdict=\"allow\",role=\"terminal\",kind=\"reassessment\"} 1",
    )
    .await;
    assert!(
        body.lines().any(|l| l == "tnc_appraisal_seconds_count 2"),
        "{body}"
    );
    // Still one handshake: a re-assessment is not a login.
    assert!(
        body.lines().any(|l| l == "tnc_handshake_seconds_count 1"),
        "{body}"
    );
    let reassessed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let tnc_server::events::SessionEvent::Reassessed {
                device,
                verdict,
                round,
                why,
                ..
            } = events.recv().await.unwrap()
            {
                return (device, verdict, round, why);
            }
        }
    })
    .await
    .expect("a reassessed event");
    assert_eq!(reassessed.0.as_deref(), Some(devices[0].device.as_str()));
    assert_eq!(reassessed.1, "allow");
    assert_eq!(reassessed.2, 1);
    assert!(reassessed.3.contains("operator"), "{}", reassessed.3);
    // The admin API's open sessions: this one, decided and re-assessed once.
    let open: Vec<api::Session> = admin.get("/v1/sessions").await.unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].device.as_deref(), Some(devices[0].device.as_str()));
    assert_eq!(
        (
            open[0].role.as_deref(),
            open[0].verdict.as_deref(),
            open[0].reassessments
        ),
        (Some("terminal"), Some("allow"), 1)
    );
    assert!(open[0].assessed_at >= Some(open[0].opened_at), "{open:?}");

    // The session ends.
    drop(session);
    until(metrics, "tnc_sessions_open 0").await;
    let open: Vec<api::Session> = admin.get("/v1/sessions").await.unwrap();
    assert!(open.is_empty(), "{open:?}");
    let _ = std::fs::remove_dir_all(&dir);
    pdp.stop().await.unwrap();
}

/// The Grafana dashboard in docs/ asks only for metrics the PDP and the
/// gateway export (a renamed metric would leave an empty panel).
#[test]
fn the_dashboard_uses_only_metrics_that_exist() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana/tnc.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    assert!(exprs.len() >= 14, "{exprs:?}");

    // Every family with a sample: each labelled family once.
    let pdp = tnc_server::metrics::Metrics::default();
    pdp.decision(
        "allow",
        Some("terminal"),
        tnc_server::metrics::Kind::first,
        true,
    );
    let gateway = tnc_gateway::metrics::GatewayMetrics::default();
    gateway.refused(tnc_proto::gateway::Refusal::Revoked);
    gateway.ended("closed");
    let exported = pdp.render(&tnc_server::metrics::StoreGauges {
        devices: vec![(("terminal".into(), "allow".into()), 1)],
        stale: 0,
        newest_revocation: 0,
    }) + &gateway.render(true, 0, 0);
    let samples: std::collections::BTreeSet<&str> = exported
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for expr in &exprs {
        let mut rest = expr.as_str();
        while let Some(i) = rest.find("tnc_") {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                samples.contains(name.as_str()),
                "{name} (in {expr:?}) is not exported; exported: {samples:?}"
            );
            rest = &rest[i + name.len()..];
        }
    }
}
