//! Kept sessions: each PDP gets a share of the deadline for its first
//! decision (one that takes the connection and then says nothing, hung or
//! an impostor that never finishes TLS, loses its turn to the next); they
//! run over QUIC as over TCP; a PDP shutting down closes them with a word.

use std::time::{Duration, Instant};
use tnc_client::pairing::{KeptSession, Pdp};
use tnc_proto::attestation::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_pdp_loses_its_turn_to_the_next_within_its_share() {
    let dir = std::env::temp_dir().join(format!("tnc-kept-failover-{}", std::process::id()));
    let (pdp, agent) = pdp_and_allowed_agent(&dir, testnet::e2e::PdpOptions::default()).await;
    let (hung_addr, holder) = testnet::e2e::silent_listener().await.unwrap();
    let tls = tnc_client::agent::tls_client_config(&pdp.tls.ca).unwrap();
    let pdps = [hung_addr, pdp.addr].map(|addr| Pdp {
        addr,
        server_name: "localhost".into(),
        tls: tls.clone(),
        quic: false,
    });
    let started = Instant::now();
    let (outcome, session) =
        KeptSession::open(&pdps, agent, None, Duration::from_secs(12), None, true)
            .await
            .expect("the second PDP decides within the deadline");
    let took = started.elapsed();
    assert!(outcome.recommendation.is_some(), "{outcome:?}");
    // The hung PDP had its half (6 s), not the whole deadline.
    assert!(
        took >= Duration::from_secs(6) && took < Duration::from_secs(10),
        "{took:?}"
    );
    session.abort();
    holder.abort();
    pdp.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `transport = "quic"` holds for kept sessions too: the PDP is reached
/// only at its QUIC address (a TCP connect there is refused), and it
/// re-assesses the session on its interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_session_over_quic_is_reassessed() {
    let dir = std::env::temp_dir().join(format!("tnc-kept-quic-{}", std::process::id()));
    let (pdp, agent) = pdp_and_allowed_agent(
        &dir,
        testnet::e2e::PdpOptions {
            reassessment: tnc_server::config::Reassessment {
                role_interval_secs: [(Role::Terminal, 1)].into(),
                poll_ms: 100,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await;
    let pdps = [Pdp {
        addr: pdp.quic_addr,
        server_name: "localhost".into(),
        tls: tnc_client::agent::tls_client_config(&pdp.tls.ca).unwrap(),
        quic: true,
    }];
    let (outcome, mut session) =
        KeptSession::open(&pdps, agent, None, Duration::from_secs(20), None, false)
            .await
            .expect("a decision over QUIC");
    assert!(outcome.allowed(), "{outcome:?}");
    let again = tokio::time::timeout(Duration::from_secs(10), session.reassessed())
        .await
        .expect("re-assessed within 10 s")
        .expect("the session is still open");
    assert_eq!(again.recommendation, outcome.recommendation);
    session.abort();
    pdp.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A PDP shutting down ends its kept sessions with a CLOSE, and each
/// session's report still carries the decision it stood on (it was cut
/// off, decision and all, as "server shutting down" before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdp_shutting_down_closes_kept_sessions_and_reports_their_decision() {
    let dir = std::env::temp_dir().join(format!("tnc-kept-shutdown-{}", std::process::id()));
    let (mut pdp, agent) = pdp_and_allowed_agent(&dir, testnet::e2e::PdpOptions::default()).await;
    let pdps = [Pdp {
        addr: pdp.addr,
        server_name: "localhost".into(),
        tls: tnc_client::agent::tls_client_config(&pdp.tls.ca).unwrap(),
        quic: false,
    }];
    let (outcome, mut session) =
        KeptSession::open(&pdps, agent, None, Duration::from_secs(20), None, false)
            .await
            .expect("a decision");
    assert!(outcome.allowed(), "{outcome:?}");
    let (_, none) = tokio::sync::mpsc::unbounded_channel();
    let mut reports = std::mem::replace(&mut pdp.reports, none);
    let started = Instant::now();
    pdp.stop().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let report = reports.recv().await.expect("the kept session's report");
    let decision = report.decision.expect("the decision it stood on");
    assert_eq!(decision.verdict, policy::Verdict::Allow);
    assert_eq!(report.error.as_deref(), Some("the PDP is shutting down"));
    // The client heard the CLOSE: the session is over.
    let end = tokio::time::timeout(Duration::from_secs(5), session.reassessed()).await;
    assert!(matches!(end, Ok(None)), "{end:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A PDP for good terminals, and an agent it allows: a software AK enrolled
/// in its store, quoting the good terminal's measurements.
async fn pdp_and_allowed_agent(
    dir: &std::path::Path,
    options: testnet::e2e::PdpOptions,
) -> (testnet::e2e::TestPdp, tnc_client::agent::Agent) {
    std::fs::create_dir_all(dir).unwrap();
    let profile = testnet::e2e::profile("good-terminal").unwrap();
    let pdp = testnet::e2e::TestPdp::start_raw(
        &[(Role::Terminal, &profile)],
        (Vec::new(), Vec::new()),
        options,
    )
    .await
    .unwrap();
    let measurements = std::sync::Arc::new(profile.measure().unwrap());
    let device = testnet::e2e::soft_device(&pdp, Role::Terminal, "kept", &measurements)
        .await
        .unwrap();
    let os = tnc_client::os::OsFacts::collect(&testnet::e2e::write_host_files(dir).unwrap(), false)
        .unwrap();
    (pdp, tnc_client::agent::Agent::new(os, device()))
}
