//! The simulator's profiles on a real swtpm: its PCRs are extended with the
//! simulated boot, our client quotes them with a real AK, and the appraisal
//! decides. tpm2_eventlog, an independent parser, reads the simulator's event
//! log and computes the same PCRs.

use policy::appraisal::{appraise, Area, Challenge, Evidence};
use policy::tpm::{parse_selection, Public};
use policy::HashAlg;
use policy::Verdict;
use std::path::Path;
use std::process::Command;
use testnet::simulator::{Measurements, Profile};
use testnet::swtpm::{scratch_dir, Swtpm, SwtpmOptions};
use tnc_client::tpm::{AkKind, EkKind, Tpm, TpmConfig};

fn profile(name: &str) -> Profile {
    Profile::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("profiles/{name}.toml")))
        .unwrap()
}

fn boot(tpm: &mut Tpm, m: &Measurements) {
    for e in &m.extends {
        for (bank, digest) in &e.digests {
            let bank = HashAlg::from_tpm_alg(bank.tpm_alg()).unwrap();
            tpm.pcr_extend(e.pcr, bank, digest).unwrap();
        }
    }
}

/// Boots `name` on a fresh swtpm, quotes PCRs 0-10 and appraises against the good
/// terminal's reference values.
fn attest_on_swtpm(name: &str) -> policy::Appraisal {
    let swtpm = Swtpm::start(&SwtpmOptions {
        pcr_banks: vec!["sha1".into(), "sha256".into()],
        ek_certs_from: None,
    })
    .unwrap();
    let m = profile(name).measure().unwrap();
    let mut tpm = Tpm::open(&TpmConfig::parse(&swtpm.tcti()).unwrap()).unwrap();
    boot(&mut tpm, &m);
    tpm.endorsement_key(EkKind::EccP256).unwrap();
    let ak = tpm
        .create_ak(EkKind::EccP256, AkKind::EcdsaP256Sha256)
        .unwrap();
    let nonce = b"swtpm-appraisal-nonce";
    let pcrs: Vec<u32> = (0..=10).collect();
    let quote = tpm.quote(&ak, nonce, &[(HashAlg::Sha256, pcrs)]).unwrap();
    let selection = parse_selection("sha256:0,1,2,3,4,5,6,7,8,9,10").unwrap();
    let reference = profile("good-terminal")
        .reference_values()
        .unwrap()
        .compile()
        .unwrap();
    let evidence = Evidence {
        attest: &quote.attest,
        signature: &quote.signature,
        event_log: &m.event_log,
        ima: &m.ima,
        ima_offset: 0,
    };
    let challenge = Challenge {
        nonce,
        selection: &selection,
        allow_sha1: false,
    };
    let ak_public = Public::parse(ak.public_area()).unwrap();
    appraise(
        &ak_public,
        &evidence,
        &challenge,
        &reference,
        None,
        1_800_000_000,
    )
}

#[test]
fn good_terminal_on_swtpm_is_allowed() {
    let a = attest_on_swtpm("good-terminal");
    assert_eq!(a.verdict, Verdict::Allow, "{:?}", a.findings);
    assert_eq!(a.next_state.unwrap().ima_entries, 6);
}

#[test]
fn tampered_kernel_on_swtpm_is_isolated() {
    let a = attest_on_swtpm("tampered-kernel");
    assert_eq!(a.verdict, Verdict::Isolate, "{:?}", a.findings);
    assert!(a
        .findings
        .iter()
        .any(|f| f.area == Area::Kernel && f.pcr == Some(9)));
}

/// tpm2_eventlog prints `pcrs:` then `  sha256:` then `    N  : 0x…` lines.
#[test]
fn tpm2_eventlog_reads_the_simulated_log_with_the_same_pcrs() {
    for name in ["good-terminal", "good-vm", "tampered-kernel"] {
        let m = profile(name).measure().unwrap();
        let dir = scratch_dir("eventlog").unwrap();
        let path = dir.join("log.bin");
        std::fs::write(&path, &m.event_log).unwrap();
        let out = Command::new("tpm2_eventlog").arg(&path).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let pcrs = text.split("\npcrs:\n").nth(1).expect("a pcrs section");
        let theirs = policy::tpm::PcrValues::parse_text(pcrs).unwrap();
        let ours = m.pcr_values_after(0);
        let mut compared = 0;
        for (bank, pcr, value) in ours.iter() {
            assert_eq!(
                theirs.get(bank, pcr),
                Some(value),
                "{name}: {bank} PCR {pcr}"
            );
            compared += 1;
        }
        assert_eq!(
            compared,
            theirs.iter().count(),
            "{name}: same PCRs on both sides"
        );
        assert!(compared >= 20, "{name}: {compared} values");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
