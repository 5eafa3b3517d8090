//! The integrity handshake over the ShangMi suites (RFC 8998): PT-TLS over
//! TCP and over QUIC to a PDP with `tls.suites = "shangmi"` (the SM2
//! certificate of `tnc-server init`'s layout), standard clients refused by
//! it, and a PDP with `"both"` serving each client the suite it can speak.
//! The endpoints have no TPM (isolate: no evidence): the channel is the
//! subject here, the appraisal is the same as over the standard suites.

use pki::tls::Suites;
use testnet::e2e::{agent_without_tpm, PdpOptions, TestPdp};
use tnc_proto::pb_tnc::AccessRecommendation;

async fn pdp(suites: Suites) -> TestPdp {
    TestPdp::start_raw(
        &[],
        (Vec::new(), Vec::new()),
        PdpOptions {
            suites,
            ..PdpOptions::default()
        },
    )
    .await
    .unwrap()
}

fn agent(name: &str) -> tnc_client::agent::Agent {
    agent_without_tpm(&testnet::swtpm::scratch_dir(name).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shangmi_pdp_decides_over_sm4_on_tcp_and_quic() {
    let pdp = pdp(Suites::Shangmi).await;
    let tcp = pdp
        .log_in_agent(agent("sm-tcp"), Suites::Shangmi, None, false)
        .await
        .unwrap();
    assert_eq!(tcp.recommendation, Some(AccessRecommendation::Quarantined));
    assert_eq!(tcp.tls_suite.as_deref(), Some("TLS_SM4_GCM_SM3"));
    assert!(tcp
        .to_string()
        .contains("channel: TLS 1.3, TLS_SM4_GCM_SM3"));
    // QUIC: Initial packets in AES-128-GCM (RFC 9001), the rest in SM4-GCM.
    let quic = pdp
        .log_in_agent(agent("sm-quic"), Suites::Shangmi, None, true)
        .await
        .unwrap();
    assert_eq!(quic.recommendation, Some(AccessRecommendation::Quarantined));
    pdp.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shangmi_pdp_refuses_standard_clients_on_tcp_and_quic() {
    let pdp = pdp(Suites::Shangmi).await;
    for quic in [false, true] {
        let err = pdp
            .log_in_agent(agent("std-refused"), Suites::Standard, None, quic)
            .await
            .expect_err("a client without the ShangMi suites gets no session");
        let text = format!("{err:#}");
        assert!(
            text.contains("HandshakeFailure") || text.contains("handshake"),
            "quic {quic}: {text}"
        );
    }
    pdp.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdp_with_both_serves_each_client_its_suite() {
    let pdp = pdp(Suites::Both).await;
    for (client, want) in [
        (Suites::Standard, "TLS13_AES_128_GCM_SHA256"),
        (Suites::Shangmi, "TLS_SM4_GCM_SM3"),
        (Suites::Both, "TLS_SM4_GCM_SM3"),
    ] {
        let out = pdp
            .log_in_agent(agent("both"), client, None, false)
            .await
            .unwrap_or_else(|e| panic!("{client:?}: {e:#}"));
        assert_eq!(out.tls_suite.as_deref(), Some(want), "{client:?}");
        assert_eq!(out.recommendation, Some(AccessRecommendation::Quarantined));
    }
    // QUIC to a PDP with both, from a ShangMi-only client.
    let out = pdp
        .log_in_agent(agent("both-quic"), Suites::Shangmi, None, true)
        .await
        .unwrap();
    assert_eq!(out.recommendation, Some(AccessRecommendation::Quarantined));
    pdp.stop().await.unwrap();
}
