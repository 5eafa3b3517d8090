//! `testnet demo`'s third act in the test suite (issue 13, item 5), on
//! swtpm: terminal-1 connected to vm-1 through the gateway runs a program
//! outside the reference values (measured into its live swtpm's PCR 10 and
//! its IMA list); the next re-assessment isolates it, its ticket is revoked
//! with the decision and the gateway cuts the channel within a second of the
//! verdict.

use testnet::e2e::{profile, Endpoint, TestPdp};
use testnet::swtpm::LocalCa;
use tnc_proto::attestation::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unapproved_program_isolates_terminal_1_and_the_gateway_cuts_its_channel() {
    let ca = LocalCa::create().unwrap();
    let mut terminal = Endpoint::boot("good-terminal", Role::Terminal, &ca).unwrap();
    let vm = Endpoint::boot("good-vm", Role::Vm, &ca).unwrap();
    let (t_ref, vm_ref) = (
        profile("good-terminal").unwrap(),
        profile("good-vm").unwrap(),
    );
    let pdp = TestPdp::start_raw(
        &[(Role::Terminal, &t_ref), (Role::Vm, &vm_ref)],
        ca.roots().unwrap(),
        testnet::act3::pdp_options(vm.device_id().unwrap()).unwrap(),
    )
    .await
    .unwrap();
    let say = |line: String| eprintln!("{line}");
    let f = testnet::act3::run(&pdp, &mut terminal, &vm, &say)
        .await
        .unwrap();
    eprintln!("{f:#?}");
    assert_eq!(f.verdict, "isolate");
    assert!(f.reason.contains(testnet::act3::UNAPPROVED), "{}", f.reason);
    assert_eq!(f.revoked.len(), 1, "{:?}", f.revoked);
    assert!(f.revoked[0].reason.contains("cryptominer"));
    assert_eq!(f.carried_after, 0);
    // The next round comes within an interval (2 s ± 10 %) and a round.
    assert!(f.to_verdict_ms < 10_000.0, "{f:?}");
    // Pushed and applied within a second of the verdict (it may even
    // arrive first: the revocation is committed before RESULT is sent).
    assert!(f.verdict_to_cut_ms < 1_000.0, "{f:?}");
    pdp.stop().await.unwrap();
}
