//! The swtpm test bed itself: parallel TPMs on their own ports, provisioned EK
//! certificates from a CA the test owns, and clean-up on drop.

use std::process::Command;
use testnet::swtpm::{LocalCa, Swtpm, SwtpmOptions};

fn tpm2(tool: &str, tpm: &Swtpm, args: &[&str]) -> std::process::Output {
    Command::new(tool)
        .args(args)
        .env("TPM2TOOLS_TCTI", tpm.tcti())
        .output()
        .unwrap()
}

#[test]
fn provisioned_tpm_holds_ek_certificates_from_our_ca() {
    let ca = LocalCa::create().unwrap();
    let tpm = Swtpm::start(&SwtpmOptions {
        pcr_banks: vec!["sha1".into(), "sha256".into()],
        ek_certs_from: Some(ca.dir().to_path_buf()),
    })
    .unwrap();
    assert!(
        ca.issuer_cert().exists(),
        "the CA was created in the test's directory"
    );
    let out = tpm2("tpm2_nvread", &tpm, &["-C", "o", "0x01c00002"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout[0], 0x30, "DER certificate (SEQUENCE)");
    let out = tpm2("tpm2_pcrread", &tpm, &["sha1:0"]);
    assert!(out.status.success());
}

#[test]
fn tpms_run_side_by_side_and_stop_on_drop() {
    let a = Swtpm::start(&SwtpmOptions::default()).unwrap();
    let b = Swtpm::start(&SwtpmOptions::default()).unwrap();
    assert_ne!(a.port(), b.port());
    let out = tpm2("tpm2_getrandom", &a, &["--hex", "8"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (port, dir) = (a.port(), a.state_dir().to_path_buf());
    drop(a);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "stopped"
    );
    assert!(!dir.exists(), "state removed");
    assert!(tpm2("tpm2_getrandom", &b, &["--hex", "8"]).status.success());
}
