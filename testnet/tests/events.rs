//! The PDP's session events, as a subscriber of `daemon::Pdp` sees them:
//! opened, then decided (with the user, the device and its role, the
//! verdict and the findings) or failed (with why). (Their JSON form is
//! tested beside `tnc_server::events`.)

use testnet::e2e::{agent_without_tpm, profile, Endpoint, PdpOptions, TestPdp};
use testnet::swtpm::{scratch_dir, LocalCa};
use tnc_client::agent::{login, tls_client_config};
use tnc_proto::attestation::Role;
use tnc_proto::pt_tls::sasl::PlainCredentials;
use tnc_server::events::SessionEvent;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_published_as_events() {
    let ca = LocalCa::create().unwrap();
    let terminal = Endpoint::boot("good-terminal", Role::Terminal, &ca).unwrap();
    let pdp = TestPdp::start_raw(
        &[(Role::Terminal, &profile("good-terminal").unwrap())],
        ca.roots().unwrap(),
        PdpOptions {
            sasl: tnc_server::config::Sasl::Plain,
            ..PdpOptions::default()
        },
    )
    .await
    .unwrap();
    pdp.add_user("alice", "right").await.unwrap();
    let mut events = pdp.events();
    let next = async |events: &mut tokio::sync::broadcast::Receiver<SessionEvent>| {
        tokio::time::timeout(std::time::Duration::from_secs(20), events.recv())
            .await
            .expect("an event")
            .expect("not lagging")
    };

    // A terminal with its TPM, as alice.
    let outcome = pdp
        .log_in_as(&terminal, Some(PlainCredentials::new("alice", "right")))
        .await
        .unwrap();
    assert!(outcome.allowed(), "{outcome:?}");
    let opened = next(&mut events).await;
    let SessionEvent::Opened {
        session, transport, ..
    } = opened
    else {
        panic!("{opened:?}")
    };
    assert_eq!(transport, "tcp");
    match next(&mut events).await {
        SessionEvent::Decided {
            session: s,
            device,
            role,
            user,
            verdict,
            ..
        } => {
            assert_eq!(s, session);
            assert_eq!(user.as_deref(), Some("alice"));
            assert_eq!(role.as_deref(), Some("terminal"));
            assert_eq!(device.map(|d| d.len()), Some(64));
            assert_eq!(verdict, "allow");
        }
        other => panic!("{other:?}"),
    }

    // A wrong password: failed, with why.
    let dir = scratch_dir("events-host").unwrap();
    let mut agent = agent_without_tpm(&dir).unwrap();
    let tls = tls_client_config(&pdp.tls.ca).unwrap();
    let refused = login(
        pdp.addr,
        "localhost",
        tls,
        &mut agent,
        Some(PlainCredentials::new("alice", "wrong")),
    )
    .await;
    assert!(refused.is_err());
    assert!(matches!(
        next(&mut events).await,
        SessionEvent::Opened { .. }
    ));
    let failed = next(&mut events).await;
    match &failed {
        SessionEvent::Failed { why, user, .. } => {
            assert!(why.contains("SASL"), "{why}");
            assert_eq!(user, &None);
        }
        other => panic!("{other:?}"),
    }
    pdp.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
