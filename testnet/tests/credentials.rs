//! Channel credentials end to end, on swtpm: an allowed terminal that asked
//! for them gets an SM2 certificate for its channel key and an access ticket
//! bound to it; an isolated one gets a refusal and nothing else.

use pki::tls::Suites;
use testnet::e2e::{profile, Endpoint, PdpOptions, TestPdp};
use testnet::swtpm::{scratch_dir, LocalCa};
use tnc_client::agent::Credential;
use tnc_client::channel::ChannelKey;
use tnc_proto::attestation::Role;
use tnc_proto::pb_tnc::AccessRecommendation;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_grants_credentials_and_isolate_refuses_them() {
    let ca = LocalCa::create().unwrap();
    let good = Endpoint::boot("good-terminal", Role::Terminal, &ca).unwrap();
    let tampered = Endpoint::boot("tampered-kernel", Role::Terminal, &ca).unwrap();
    let reference = profile("good-terminal").unwrap();
    let pdp = TestPdp::start_raw(
        &[(Role::Terminal, &reference)],
        ca.roots().unwrap(),
        PdpOptions {
            issue_credentials: true,
            ..PdpOptions::default()
        },
    )
    .await
    .unwrap();

    let state = scratch_dir("credentials-good").unwrap();
    let key = ChannelKey::load_or_create(&state).unwrap();
    let mut agent = good.agent().unwrap();
    agent.key_request = Some(key.request("channel").unwrap());
    let out = pdp
        .log_in_agent(agent, Suites::Standard, None, false)
        .await
        .unwrap();
    assert_eq!(
        out.recommendation,
        Some(AccessRecommendation::Allowed),
        "{out}"
    );
    let Some(Credential::Granted(grant)) = out.credential.clone() else {
        panic!("{out}");
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // The certificate: the channel key's, from the session CA; the ticket:
    // signed by that CA's key, bound to the certificate, for this device.
    pki::ca::verify_issued_by(&grant.certificate, &grant.ca, now).unwrap();
    let ca_key = pki::ca::certificate_public_key(&grant.ca).unwrap();
    let claims = pki::ticket::verify(&grant.ticket, &ca_key, now).unwrap();
    assert_eq!(
        claims.certificate_sha256,
        policy::HashAlg::Sha256.digest(&grant.certificate)
    );
    let devices = pdp.store.devices().await.unwrap();
    assert_eq!(claims.device, policy::digest::hex(&devices[0].device_id));
    assert_eq!(claims.vms, ["vm-1"]);
    assert!(out.to_string().contains("credentials: an SM2 certificate"));
    assert_eq!(
        pdp.store
            .credentials(&devices[0].device_id)
            .await
            .unwrap()
            .len(),
        1
    );
    tnc_client::channel::save(&state, &grant).unwrap();
    assert_eq!(tnc_client::channel::load(&state), Some(grant));

    let state = scratch_dir("credentials-tampered").unwrap();
    let key = ChannelKey::load_or_create(&state).unwrap();
    let mut agent = tampered.agent().unwrap();
    agent.key_request = Some(key.request("channel").unwrap());
    let out = pdp
        .log_in_agent(agent, Suites::Standard, None, false)
        .await
        .unwrap();
    assert_eq!(out.recommendation, Some(AccessRecommendation::Quarantined));
    assert_eq!(
        out.credential,
        Some(Credential::Refused(
            "no credentials: the verdict is isolate".into()
        ))
    );
    pdp.stop().await.unwrap();
}
